//! Instance settings changed at run time (from the panel or
//! `PATCH /api/v1/settings`): the ACME account's contact email and the
//! public URL. A value set here wins over the config file and flags; a
//! `null` clears it, so the file's (or flag's) value applies again.

use serde::{Deserialize, Deserializer, Serialize};

use crate::public::public_url;
use crate::settings::contact_email;
use crate::FieldError;

/// A change of the instance settings as the user sends it: a field left
/// out stays as it is, `null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstanceInput {
    /// Contact email of the ACME account (expiry notices from Let's
    /// Encrypt go there); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, nullable, max_length = 254, example = "ops@example.com")
    )]
    pub acme_email: Option<Option<String>>,
    /// Where users reach berth (`scheme://host[:port]`, no path): webhook
    /// URLs are built from it; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, nullable, max_length = 300, example = "https://berth.example.com")
    )]
    pub public_url: Option<Option<String>>,
}

/// The instance settings set at run time; `None` where the config file's
/// (or flag's) value applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceSettings {
    /// The ACME account's contact email.
    pub acme_email: Option<String>,
    /// `scheme://host[:port]`, normalized.
    pub public_url: Option<String>,
}

impl InstanceInput {
    /// Applies the change to `current`, validating what it sets.
    pub fn apply(self, current: &InstanceSettings) -> Result<InstanceSettings, FieldError> {
        let mut next = current.clone();
        if let Some(email) = self.acme_email {
            next.acme_email = match email {
                Some(raw) => Some(contact_email("acme_email", &raw)?),
                None => None,
            };
        }
        if let Some(url) = self.public_url {
            next.public_url = match url {
                Some(raw) => Some(public_url("public_url", &raw)?),
                None => None,
            };
        }
        Ok(next)
    }
}

/// A field that is present: `null` becomes `Some(None)`, a value
/// `Some(Some(v))`; an absent field keeps its `Default` (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> InstanceInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn absent_fields_stay_and_null_clears() {
        let current = InstanceSettings {
            acme_email: Some("a@example.com".into()),
            public_url: Some("https://berth.example.com".into()),
        };
        assert_eq!(input("{}").apply(&current).unwrap(), current);
        let cleared = input(r#"{"acme_email": null}"#).apply(&current).unwrap();
        assert_eq!(cleared.acme_email, None);
        assert_eq!(cleared.public_url, current.public_url);
        let changed = input(r#"{"public_url": "HTTP://Berth.Example.com:8080/"}"#)
            .apply(&current)
            .unwrap();
        assert_eq!(
            changed.public_url.as_deref(),
            Some("http://berth.example.com:8080")
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let none = InstanceSettings::default();
        let err = input(r#"{"acme_email": "not an email"}"#)
            .apply(&none)
            .unwrap_err();
        assert_eq!(err.field, "acme_email");
        assert!(err.message.contains("ops@example.com"), "{}", err.message);
        let err = input(r#"{"public_url": "berth.example.com/x"}"#)
            .apply(&none)
            .unwrap_err();
        assert_eq!(err.field, "public_url");
        assert!(serde_json::from_str::<InstanceInput>(r#"{"email": "a@b.c"}"#).is_err());
    }
}
