//! Rules for names users choose: app and project names (DNS labels), hosts
//! of domains, and path prefixes of routes.

use std::borrow::Cow;

use crate::FieldError;

/// Longest DNS label.
const MAX_LABEL: usize = 63;
/// Longest host name.
const MAX_HOST: usize = 253;
/// Longest path prefix a route may have.
const MAX_PREFIX: usize = 1024;

/// Checks that `name` is a DNS label: 1–63 of `a-z`, `0-9`, `-`, starting
/// with a letter and not ending with `-`. App and project names follow this
/// so they can appear in container names, host names and labels unchanged.
pub fn validate_name(field: &str, name: &str) -> Result<(), FieldError> {
    let fix =
        "use 1-63 lowercase letters, digits or '-', starting with a letter and not ending with '-'";
    if name.is_empty() || name.len() > MAX_LABEL {
        return Err(FieldError::new(
            field,
            format!("must be 1-63 characters long, got {}; {fix}", name.len()),
        ));
    }
    let bytes = name.as_bytes();
    let ok_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !ok_chars || !bytes[0].is_ascii_lowercase() || bytes[bytes.len() - 1] == b'-' {
        return Err(FieldError::new(
            field,
            format!("{name:?} is not a valid name; {fix}"),
        ));
    }
    Ok(())
}

/// Lowercases a host and removes a trailing dot and a port, as the proxy
/// does with the `Host` header. Returns `None` if nothing is left. Borrows
/// when the host is already in normal form (the common case on the hot path).
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = raw.trim();
    let host = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: keep the brackets' content.
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        None
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// Validates the host of a domain and returns it normalized (lowercase, no
/// trailing dot). A leading `*.` makes a wildcard for one label.
pub fn validate_host(field: &str, raw: &str) -> Result<String, FieldError> {
    let fix =
        "give a host name such as app.example.com or *.example.com, without scheme, port or path";
    let trimmed = raw.trim();
    if trimmed.contains("://") || trimmed.contains('/') || trimmed.contains(':') {
        return Err(FieldError::new(
            field,
            format!("{raw:?} is not a host name; {fix}"),
        ));
    }
    let host = trimmed
        .strip_suffix('.')
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    if host.is_empty() || host.len() > MAX_HOST {
        return Err(FieldError::new(
            field,
            format!("must be 1-253 characters long; {fix}"),
        ));
    }
    let body = host.strip_prefix("*.").unwrap_or(&host);
    for label in body.split('.') {
        let b = label.as_bytes();
        let valid = !b.is_empty()
            && b.len() <= MAX_LABEL
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if !valid {
            return Err(FieldError::new(
                field,
                format!("{raw:?} has an invalid label {label:?}; {fix}"),
            ));
        }
    }
    Ok(host)
}

/// Validates a route's path prefix and returns it normalized: it starts with
/// `/`, has no trailing `/` (except the root) and no query, fragment or
/// whitespace.
pub fn validate_path_prefix(field: &str, raw: &str) -> Result<String, FieldError> {
    let fix = "give a path such as / or /api, without query or fragment";
    if !raw.starts_with('/') {
        return Err(FieldError::new(
            field,
            format!("{raw:?} must start with '/'; {fix}"),
        ));
    }
    if raw.len() > MAX_PREFIX
        || raw
            .bytes()
            .any(|b| b == b'?' || b == b'#' || b.is_ascii_whitespace() || b.is_ascii_control())
        || raw.split('/').any(|seg| seg == ".." || seg == ".")
    {
        return Err(FieldError::new(
            field,
            format!("{raw:?} is not a valid path prefix; {fix}"),
        ));
    }
    let trimmed = raw.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_dns_label_rules() {
        assert!(validate_name("name", "web").is_ok());
        assert!(validate_name("name", "a1-b2").is_ok());
        for bad in ["", "Web", "1web", "web-", "we_b", "wéb", &"a".repeat(64)] {
            let err = validate_name("name", bad).unwrap_err();
            assert_eq!(err.field, "name");
        }
    }

    #[test]
    fn hosts_are_normalized_and_checked() {
        assert_eq!(
            validate_host("h", "App.Example.COM.").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            validate_host("h", "*.example.com").unwrap(),
            "*.example.com"
        );
        assert_eq!(validate_host("h", "localhost").unwrap(), "localhost");
        for bad in [
            "",
            "http://x.com",
            "x.com:80",
            "x.com/a",
            "a..b",
            "-a.com",
            "a b.com",
            "*",
        ] {
            assert!(validate_host("h", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_headers_lose_port_and_case() {
        assert_eq!(
            normalize_host("Example.com:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(normalize_host(":80"), None);
        assert_eq!(normalize_host(""), None);
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(validate_path_prefix("p", "/").unwrap(), "/");
        assert_eq!(validate_path_prefix("p", "/api/").unwrap(), "/api");
        assert_eq!(validate_path_prefix("p", "//").unwrap(), "/");
        for bad in ["api", "/a?b", "/a#b", "/a b", "/../x"] {
            assert!(validate_path_prefix("p", bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn normalize_host_never_panics(s in "\\PC*") {
            let _ = normalize_host(&s);
        }

        #[test]
        fn valid_hosts_round_trip(s in "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,10}){0,3}") {
            let host = validate_host("h", &s).unwrap();
            let normalized = normalize_host(&host);
            prop_assert_eq!(normalized.as_deref(), Some(host.as_str()));
        }

        #[test]
        fn validate_host_never_panics(s in "\\PC*") {
            let _ = validate_host("h", &s);
            let _ = validate_path_prefix("p", &s);
            let _ = validate_name("n", &s);
        }
    }
}
