//! Where users reach berth itself: `[server] public_url` (the address
//! webhook URLs and links are built from, never a request's `Host`) and
//! `[panel] domain` (a host the edge serves the panel and the API on, with
//! an automatic certificate, so the admin port need not be exposed).

use serde::Deserialize;

use crate::names::validate_host;
use crate::{ConfigError, FieldError};

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    /// `https://berth.example.com` (scheme, host, optional port; no path).
    pub public_url: Option<String>,
}

/// `[panel]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePanel {
    /// A host name the edge serves the panel and API on, over HTTPS with a
    /// certificate from ACME.
    pub domain: Option<String>,
}

/// How berth is reached, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicSettings {
    /// Scheme, host and port without a trailing slash, e.g.
    /// `https://berth.example.com`; with a panel domain and no URL,
    /// `https://<domain>`.
    pub public_url: Option<String>,
    /// The panel's host on the edge.
    pub panel_domain: Option<String>,
}

/// Resolves `--public-url` over `[server] public_url` and
/// `--panel-domain` over `[panel] domain`.
pub fn public_settings(
    url: Option<String>,
    domain: Option<String>,
    server: FileServer,
    panel: FilePanel,
) -> Result<PublicSettings, ConfigError> {
    let panel_domain = match domain.or(panel.domain) {
        Some(raw) => {
            let host = validate_host("panel.domain", &raw).map_err(ConfigError::Invalid)?;
            if host.starts_with("*.") {
                return Err(ConfigError::Invalid(FieldError::new(
                    "panel.domain",
                    "give one host name, not a wildcard; its certificate comes from ACME",
                )));
            }
            Some(host)
        }
        None => None,
    };
    let public_url = match url.or(server.public_url) {
        Some(raw) => Some(public_url("server.public_url", &raw).map_err(ConfigError::Invalid)?),
        None => panel_domain.as_ref().map(|d| format!("https://{d}")),
    };
    Ok(PublicSettings {
        public_url,
        panel_domain,
    })
}

/// `scheme://host[:port]`, lowercased host, no trailing slash; errors
/// name `field`.
pub(crate) fn public_url(field: &str, raw: &str) -> Result<String, FieldError> {
    let fix = "write the address users reach berth at, e.g. https://berth.example.com or http://203.0.113.7:3000";
    let trimmed = raw.trim().trim_end_matches('/');
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(FieldError::new(
            field,
            format!("{raw:?} has no scheme; {fix}"),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(FieldError::new(
            field,
            format!("{raw:?} is not http or https; {fix}"),
        ));
    }
    if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
        return Err(FieldError::new(
            field,
            format!("{raw:?} has a path, query or credentials; {fix}"),
        ));
    }
    // An IPv6 literal's colons are inside its brackets.
    let after_host = rest.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match rest[after_host..].rfind(':').map(|i| i + after_host) {
        Some(i) => match rest[i + 1..].parse::<u16>() {
            Ok(n) if n > 0 => (&rest[..i], Some(n)),
            _ => {
                return Err(FieldError::new(
                    field,
                    format!("{raw:?} has a bad port; {fix}"),
                ))
            }
        },
        None => (rest, None),
    };
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    let host = if literal || host.parse::<std::net::IpAddr>().is_ok() {
        host.to_string()
    } else {
        validate_host(field, host)?
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(url: Option<&str>, domain: Option<&str>) -> Result<PublicSettings, String> {
        public_settings(
            url.map(str::to_string),
            domain.map(str::to_string),
            FileServer::default(),
            FilePanel::default(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn public_urls_are_normalized_and_checked() {
        let ok = |raw: &str| resolve(Some(raw), None).unwrap().public_url.unwrap();
        assert_eq!(
            ok("https://Berth.Example.com/"),
            "https://berth.example.com"
        );
        assert_eq!(ok("http://203.0.113.7:3000"), "http://203.0.113.7:3000");
        assert_eq!(ok("http://[::1]:3000"), "http://[::1]:3000");
        assert_eq!(ok("https://[2001:db8::1]"), "https://[2001:db8::1]");
        for bad in [
            "berth.example.com",
            "ftp://x.com",
            "https://x.com/panel",
            "https://u:p@x.com",
            "https://x.com:0",
            "https://x.com:99999",
            "https://",
            "https://a b",
            "https://[zz]",
        ] {
            let err = resolve(Some(bad), None).unwrap_err();
            assert!(err.contains("server.public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_panel_domain_gives_the_public_url_unless_one_is_set() {
        let s = resolve(None, Some("Panel.Example.com")).unwrap();
        assert_eq!(s.panel_domain.as_deref(), Some("panel.example.com"));
        assert_eq!(s.public_url.as_deref(), Some("https://panel.example.com"));
        let s = resolve(Some("https://x.example.com"), Some("p.example.com")).unwrap();
        assert_eq!(s.public_url.as_deref(), Some("https://x.example.com"));
        assert!(resolve(None, Some("*.example.com"))
            .unwrap_err()
            .contains("panel.domain"));
        assert!(resolve(None, Some("a/b"))
            .unwrap_err()
            .contains("panel.domain"));
        assert_eq!(resolve(None, None).unwrap(), PublicSettings::default());
    }
}
