//! CORS at the edge: preflights answered without the app, and the
//! headers an allowed origin's other requests get.

use berth_config::Cors;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Whether a request is a CORS preflight.
pub(crate) fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The allowed origin of a request, as the value to send back.
fn allowed<'h>(cors: &Cors, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
    let origin = headers.get(http::header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    (cors.any_origin() || cors.origins.iter().any(|o| o.eq_ignore_ascii_case(text)))
        .then_some(origin)
}

fn origin_value(cors: &Cors, origin: &HeaderValue) -> HeaderValue {
    if cors.any_origin() {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    }
}

/// The fields of a preflight's answer (204): none but `Vary` when the
/// origin is not allowed (the browser then refuses the request).
pub(crate) fn preflight(cors: &Cors, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    use http::header::*;
    let mut out = vec![(VARY, HeaderValue::from_static("Origin"))];
    let Some(origin) = allowed(cors, headers) else {
        return out;
    };
    out.push((ACCESS_CONTROL_ALLOW_ORIGIN, origin_value(cors, origin)));
    if let Ok(v) = HeaderValue::from_str(&cors.methods.join(", ")) {
        out.push((ACCESS_CONTROL_ALLOW_METHODS, v));
    }
    let asked = headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
    let allow_headers = if cors.headers.is_empty() {
        asked.cloned()
    } else {
        HeaderValue::from_str(&cors.headers.join(", ")).ok()
    };
    if let Some(v) = allow_headers {
        out.push((ACCESS_CONTROL_ALLOW_HEADERS, v));
    }
    if cors.credentials {
        out.push((
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from(cors.max_age_secs)));
    out
}

/// The fields an allowed origin's (non-preflight) response gets.
pub(crate) fn response(cors: &Cors, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    use http::header::*;
    let Some(origin) = allowed(cors, headers) else {
        return Vec::new();
    };
    let mut out = vec![(ACCESS_CONTROL_ALLOW_ORIGIN, origin_value(cors, origin))];
    if !cors.any_origin() {
        out.push((VARY, HeaderValue::from_static("Origin")));
    }
    if cors.credentials {
        out.push((
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    if !cors.expose_headers.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(", ")) {
            out.push((ACCESS_CONTROL_EXPOSE_HEADERS, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            methods: vec!["GET".into(), "POST".into()],
            headers: Vec::new(),
            expose_headers: vec!["x-total".into()],
            credentials,
            max_age_secs: 600,
        }
    }

    fn asked(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_str(origin).unwrap());
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        h.insert(
            "access-control-request-headers",
            HeaderValue::from_static("content-type"),
        );
        h
    }

    fn get<'a>(fields: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_its_grants() {
        let c = cors(&["https://app.test"], true);
        assert!(is_preflight(
            &http::Method::OPTIONS,
            &asked("https://app.test")
        ));
        let f = preflight(&c, &asked("https://app.test"));
        assert_eq!(
            get(&f, "access-control-allow-origin"),
            Some("https://app.test")
        );
        assert_eq!(get(&f, "access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(
            get(&f, "access-control-allow-headers"),
            Some("content-type")
        );
        assert_eq!(get(&f, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&f, "access-control-max-age"), Some("600"));
        let other = preflight(&c, &asked("https://evil.test"));
        assert_eq!(get(&other, "access-control-allow-origin"), None);
    }

    #[test]
    fn responses_name_the_origin_or_star() {
        let f = response(
            &cors(&["https://app.test"], true),
            &asked("https://app.test"),
        );
        assert_eq!(
            get(&f, "access-control-allow-origin"),
            Some("https://app.test")
        );
        assert_eq!(get(&f, "vary"), Some("Origin"));
        assert_eq!(get(&f, "access-control-expose-headers"), Some("x-total"));
        let any = response(&cors(&["*"], false), &asked("https://x.test"));
        assert_eq!(get(&any, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&any, "access-control-allow-credentials"), None);
        assert!(response(&cors(&["https://app.test"], false), &HeaderMap::new()).is_empty());
    }
}
