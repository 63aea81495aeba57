//! An app's domains: what a user sends for one (`DomainInput`), the
//! validated form (`Domain`), and the edits of the domains endpoints (add
//! one, change one, remove one) that leave the others as they are.

use serde::{Deserialize, Serialize};

use crate::names::{validate_host, validate_path_prefix};
use crate::FieldError;

/// One domain of an app as the user sends it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// Host name, e.g. `app.example.com` or `*.example.com`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 253))]
    pub host: String,
    /// Path prefix the app owns on this host; default `/`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
    pub path_prefix: Option<String>,
    /// Remove the prefix before forwarding; default false.
    #[serde(default)]
    pub strip_prefix: Option<bool>,
    /// Where the host's certificate comes from; default `none` (HTTP only).
    #[serde(default)]
    pub certificate: Option<CertificateSource>,
    /// Answer plain HTTP with a 308 to HTTPS (ACME challenges excepted);
    /// default true when the domain has a certificate.
    #[serde(default)]
    pub redirect_https: Option<bool>,
    /// Send `Strict-Transport-Security` on HTTPS responses; default false.
    #[serde(default)]
    pub hsts: Option<bool>,
}

/// Where a domain's certificate comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// No HTTPS for this domain.
    #[default]
    None,
    /// Issued and renewed by ACME (Let's Encrypt by default).
    Letsencrypt,
    /// A certificate uploaded through `POST /api/v1/certificates` that
    /// covers the host.
    Custom,
}

/// A validated domain: requests for `host` whose path starts with
/// `path_prefix` (on a segment boundary) go to the app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Domain {
    /// Lowercase host, without trailing dot; may start with `*.`.
    pub host: String,
    /// Starts with `/`, no trailing `/` except for the root.
    pub path_prefix: String,
    /// Whether the prefix is removed before the request is forwarded.
    pub strip_prefix: bool,
    /// Where the host's certificate comes from.
    #[serde(default)]
    pub certificate: CertificateSource,
    /// Whether plain HTTP is redirected to HTTPS.
    #[serde(default)]
    pub redirect_https: bool,
    /// Whether HTTPS responses carry HSTS.
    #[serde(default)]
    pub hsts: bool,
}

impl DomainInput {
    /// Checks one domain on its own (field names relative to the domain).
    pub(crate) fn validate(&self) -> Result<Domain, FieldError> {
        let host = validate_host("host", &self.host)?;
        let path_prefix =
            validate_path_prefix("path_prefix", self.path_prefix.as_deref().unwrap_or("/"))?;
        let certificate = self.certificate.unwrap_or_default();
        let tls = certificate != CertificateSource::None;
        if certificate == CertificateSource::Letsencrypt && host.starts_with("*.") {
            return Err(FieldError::new(
                "certificate",
                "wildcard hosts need a DNS-01 challenge, which berth does not do; \
                 upload a wildcard certificate and use \"custom\"",
            ));
        }
        let redirect_https = self.redirect_https.unwrap_or(tls);
        if redirect_https && !tls {
            return Err(FieldError::new(
                "redirect_https",
                "needs a certificate; set certificate to \"letsencrypt\" or \"custom\"",
            ));
        }
        let hsts = self.hsts.unwrap_or(false);
        if hsts && !tls {
            return Err(FieldError::new(
                "hsts",
                "needs a certificate; set certificate to \"letsencrypt\" or \"custom\"",
            ));
        }
        Ok(Domain {
            host,
            path_prefix,
            strip_prefix: self.strip_prefix.unwrap_or(false),
            certificate,
            redirect_https,
            hsts,
        })
    }
}

impl From<&Domain> for DomainInput {
    /// The input that validates to `domain` again, every default explicit.
    fn from(domain: &Domain) -> Self {
        Self {
            host: domain.host.clone(),
            path_prefix: Some(domain.path_prefix.clone()),
            strip_prefix: Some(domain.strip_prefix),
            certificate: Some(domain.certificate),
            redirect_https: Some(domain.redirect_https),
            hsts: Some(domain.hsts),
        }
    }
}

/// Changes to one domain (`PATCH /api/v1/apps/{name}/domains/{host}`);
/// absent fields stay. Changing the certificate without saying whether to
/// redirect or send HSTS lets those take the new certificate's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// New host name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 253))]
    pub host: Option<String>,
    /// New path prefix.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
    pub path_prefix: Option<String>,
    /// Remove the prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: Option<bool>,
    /// Where the host's certificate comes from.
    #[serde(default)]
    pub certificate: Option<CertificateSource>,
    /// Answer plain HTTP with a 308 to HTTPS.
    #[serde(default)]
    pub redirect_https: Option<bool>,
    /// Send `Strict-Transport-Security` on HTTPS responses.
    #[serde(default)]
    pub hsts: Option<bool>,
}

/// Names one domain of an app: its host and path prefix (default `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainKey {
    /// Lowercase host.
    pub host: String,
    /// Normalized prefix.
    pub path_prefix: String,
}

impl DomainKey {
    /// The key of `host` and `path_prefix` as a user writes them (any case,
    /// a trailing slash); errors name `host` or `path_prefix`.
    pub fn parse(host: &str, path_prefix: Option<&str>) -> Result<Self, FieldError> {
        Ok(Self {
            host: validate_host("host", host)?,
            path_prefix: validate_path_prefix("path_prefix", path_prefix.unwrap_or("/"))?,
        })
    }

    fn names(&self, domain: &Domain) -> bool {
        domain.host == self.host && domain.path_prefix == self.path_prefix
    }
}

impl std::fmt::Display for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path_prefix == "/" {
            f.write_str(&self.host)
        } else {
            write!(f, "{}{}", self.host, self.path_prefix)
        }
    }
}

/// One edit of an app's domains.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEdit {
    /// Add a domain; the app must not have its host and prefix yet.
    Add(DomainInput),
    /// Change the domain with this key.
    Change(DomainKey, DomainPatch),
    /// Remove the domain with this key.
    Remove(DomainKey),
}

/// Why an edit cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainEditError {
    /// No domain has the key.
    #[error("the app has no domain {0}; list its domains with GET /api/v1/apps/{{name}}")]
    NotFound(DomainKey),
    /// The app already has a domain with the key.
    #[error("the app already has the domain {0}; change it with PATCH /api/v1/apps/{{name}}/domains/{{host}}")]
    Exists(DomainKey),
    /// The input is invalid.
    #[error("{0}")]
    Invalid(FieldError),
}

impl DomainEdit {
    /// The whole new list of domains, as input for the app's validation
    /// (which checks the list as a whole, as for any change of the app).
    /// The domain edited keeps its place; an added one goes last.
    pub fn apply(self, domains: &[Domain]) -> Result<Vec<DomainInput>, DomainEditError> {
        let mut list: Vec<DomainInput> = domains.iter().map(DomainInput::from).collect();
        match self {
            Self::Add(input) => {
                let key = DomainKey::parse(&input.host, input.path_prefix.as_deref())
                    .map_err(DomainEditError::Invalid)?;
                if domains.iter().any(|d| key.names(d)) {
                    return Err(DomainEditError::Exists(key));
                }
                list.push(input);
            }
            Self::Change(key, patch) => {
                let i = position(domains, &key)?;
                let old = &domains[i];
                let certificate = patch.certificate.unwrap_or(old.certificate);
                let keeps_certificate = certificate == old.certificate;
                list[i] = DomainInput {
                    host: patch.host.unwrap_or_else(|| old.host.clone()),
                    path_prefix: Some(patch.path_prefix.unwrap_or_else(|| old.path_prefix.clone())),
                    strip_prefix: Some(patch.strip_prefix.unwrap_or(old.strip_prefix)),
                    certificate: Some(certificate),
                    redirect_https: patch
                        .redirect_https
                        .or(keeps_certificate.then_some(old.redirect_https)),
                    hsts: patch.hsts.or(keeps_certificate.then_some(old.hsts)),
                };
                let moved = DomainKey::parse(&list[i].host, list[i].path_prefix.as_deref())
                    .map_err(DomainEditError::Invalid)?;
                if moved != key && domains.iter().any(|d| moved.names(d)) {
                    return Err(DomainEditError::Exists(moved));
                }
            }
            Self::Remove(key) => {
                let i = position(domains, &key)?;
                list.remove(i);
            }
        }
        Ok(list)
    }
}

fn position(domains: &[Domain], key: &DomainKey) -> Result<usize, DomainEditError> {
    domains
        .iter()
        .position(|d| key.names(d))
        .ok_or_else(|| DomainEditError::NotFound(key.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(host: &str, prefix: &str, certificate: CertificateSource) -> Domain {
        let tls = certificate != CertificateSource::None;
        Domain {
            host: host.into(),
            path_prefix: prefix.into(),
            strip_prefix: false,
            certificate,
            redirect_https: tls,
            hsts: false,
        }
    }

    fn input(host: &str) -> DomainInput {
        DomainInput {
            host: host.into(),
            path_prefix: None,
            strip_prefix: None,
            certificate: None,
            redirect_https: None,
            hsts: None,
        }
    }

    fn validated(list: Vec<DomainInput>) -> Vec<Domain> {
        list.iter().map(|d| d.validate().unwrap()).collect()
    }

    #[test]
    fn an_added_domain_keeps_the_others() {
        let domains = [domain("a.test", "/", CertificateSource::None)];
        let list = DomainEdit::Add(input("b.test")).apply(&domains).unwrap();
        let hosts: Vec<_> = validated(list).into_iter().map(|d| d.host).collect();
        assert_eq!(hosts, ["a.test", "b.test"]);
        let again = DomainEdit::Add(input("A.test")).apply(&domains);
        assert!(
            matches!(again, Err(DomainEditError::Exists(_))),
            "{again:?}"
        );
        let bad = DomainEdit::Add(input("a b")).apply(&domains);
        assert!(
            matches!(&bad, Err(DomainEditError::Invalid(e)) if e.field == "host"),
            "{bad:?}"
        );
    }

    #[test]
    fn a_changed_domain_keeps_its_place_and_unchanged_fields() {
        let mut api = domain("a.test", "/api", CertificateSource::None);
        api.strip_prefix = true;
        let domains = [domain("a.test", "/", CertificateSource::None), api];
        let key = DomainKey::parse("A.TEST", Some("/api/")).unwrap();
        let patch = DomainPatch {
            certificate: Some(CertificateSource::Letsencrypt),
            ..Default::default()
        };
        let list = validated(DomainEdit::Change(key, patch).apply(&domains).unwrap());
        assert_eq!(list[0], domains[0]);
        assert_eq!(list[1].path_prefix, "/api");
        assert!(list[1].strip_prefix, "kept");
        assert!(
            list[1].redirect_https,
            "a new certificate redirects by default"
        );
        // Dropping the certificate drops its redirect and HSTS defaults.
        let mut tls = domain("s.test", "/", CertificateSource::Letsencrypt);
        tls.hsts = true;
        let key = DomainKey::parse("s.test", None).unwrap();
        let patch = DomainPatch {
            certificate: Some(CertificateSource::None),
            ..Default::default()
        };
        let list = validated(DomainEdit::Change(key, patch).apply(&[tls]).unwrap());
        assert!(!list[0].redirect_https && !list[0].hsts);
        // Moving onto another domain's key is refused.
        let key = DomainKey::parse("a.test", Some("/api")).unwrap();
        let patch = DomainPatch {
            path_prefix: Some("/".into()),
            ..Default::default()
        };
        assert!(matches!(
            DomainEdit::Change(key, patch).apply(&domains),
            Err(DomainEditError::Exists(_))
        ));
    }

    #[test]
    fn removing_or_changing_an_unknown_domain_says_so() {
        let domains = [
            domain("a.test", "/", CertificateSource::None),
            domain("b.test", "/", CertificateSource::None),
        ];
        let key = DomainKey::parse("a.test", None).unwrap();
        let list = validated(DomainEdit::Remove(key).apply(&domains).unwrap());
        assert_eq!(list, [domains[1].clone()]);
        let missing = DomainKey::parse("c.test", Some("/x")).unwrap();
        let err = DomainEdit::Remove(missing.clone())
            .apply(&domains)
            .unwrap_err();
        assert_eq!(err, DomainEditError::NotFound(missing.clone()));
        assert!(err.to_string().contains("c.test/x"), "{err}");
        let err = DomainEdit::Change(missing, DomainPatch::default())
            .apply(&domains)
            .unwrap_err();
        assert!(matches!(err, DomainEditError::NotFound(_)));
        assert!(DomainKey::parse("a.test", Some("api")).is_err());
    }

    #[test]
    fn every_domain_round_trips_through_its_input() {
        for certificate in [
            CertificateSource::None,
            CertificateSource::Letsencrypt,
            CertificateSource::Custom,
        ] {
            let d = domain("x.test", "/p", certificate);
            assert_eq!(DomainInput::from(&d).validate().unwrap(), d);
        }
    }
}
