//! `ApiJson`: the JSON body extractor of the API. It refuses bodies that
//! are not JSON (415) or too large (413), reads within a deadline, parses
//! with `serde_path_to_error`, so errors name the field
//! (`domains[0].host`), and turns every failure into an [`ApiError`] with
//! code and message.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::ApiError;

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        let read = Bytes::from_request(req, state);
        let bytes = match tokio::time::timeout(BODY_DEADLINE, read).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the request body is larger than {} KiB; send less",
                        MAX_BODY / 1024
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    e.body_text(),
                ))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        BODY_DEADLINE.as_secs()
                    ),
                ))
            }
        };
        parse(&bytes).map(ApiJson)
    }
}

/// Largest JSON body the API reads (axum's default body limit).
pub const MAX_BODY: usize = 2 << 20;

/// How long a client may take to send a whole request body.
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// A body must be sent as JSON: `application/json` or a `+json` type. A
/// request without `Content-Type` is read as JSON too; anything else
/// (`text/plain`, a form) is refused with 415 rather than guessed at.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON; send 'Content-Type: application/json' (curl: --json or -H 'Content-Type: application/json')",
        ))
    }
}

/// Parses a JSON document into `T`, naming the field on error. Every body
/// of the API is an object: an array is not read as a struct's fields in
/// order, as serde would otherwise allow.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object ({...})",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("request body has trailing data after the JSON document: {e}"),
        )
    })?;
    Ok(value)
}

/// The field's full path: serde_path_to_error already ends the path with
/// an unknown field's name, but not with a missing one's.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() || path == "." {
        name.to_string()
    } else if path == name || path.ends_with(&format!(".{name}")) {
        path.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("request body is not valid JSON: {inner}"),
        ),
        Category::Data => {
            let message = inner.to_string();
            let quoted = |prefix: &str| {
                message
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string)
            };
            if let Some(name) = quoted("unknown field `") {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_field",
                    format!("{message}; remove the field or fix its spelling"),
                )
                .with_field(join(&path, &name))
            } else if let Some(name) = quoted("missing field `") {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "missing_field",
                    format!("{message}; the field is required"),
                )
                .with_field(join(&path, &name))
            } else {
                let field = if path == "." { String::new() } else { path };
                let err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
                if field.is_empty() {
                    err
                } else {
                    err.with_field(field)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use berth_config::AppInput;

    async fn body_of(err: ApiError) -> serde_json::Value {
        let response = err.into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn only_json_bodies_are_read() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            check_content_type(&h).map_err(|e| e.status())
        };
        assert_eq!(
            check_content_type(&HeaderMap::new()).map_err(|e| e.status()),
            Ok(())
        );
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert_eq!(with(ok), Ok(()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json+xml",
            "",
        ] {
            assert_eq!(with(bad), Err(StatusCode::UNSUPPORTED_MEDIA_TYPE), "{bad}");
        }
    }

    async fn extract(body: axum::body::Body, content_type: &str) -> Result<AppInput, StatusCode> {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap();
        ApiJson::<AppInput>::from_request(req, &())
            .await
            .map(|ApiJson(v)| v)
            .map_err(|e| e.status())
    }

    #[tokio::test]
    async fn oversized_bodies_get_413_and_text_gets_415() {
        let big = format!("{{\"name\": \"{}\"}}", "a".repeat(MAX_BODY));
        let req = Request::builder()
            .method("POST")
            .body(axum::body::Body::from(big))
            .unwrap();
        // The limit is the router's DefaultBodyLimit; here the extractor's default.
        let status = ApiJson::<AppInput>::from_request(req, &())
            .await
            .err()
            .map(|e| e.status());
        assert_eq!(status, Some(StatusCode::PAYLOAD_TOO_LARGE));
        let json = r#"{"name":"a","image":"x","port":80}"#;
        assert_eq!(
            extract(json.into(), "text/plain").await.err(),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert!(extract(json.into(), "application/json").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_gets_408_after_the_deadline() {
        let stalled = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        let status = extract(axum::body::Body::from_stream(stalled), "application/json").await;
        assert_eq!(status.err(), Some(StatusCode::REQUEST_TIMEOUT));
    }

    #[tokio::test]
    async fn errors_name_the_field() {
        let cases = [
            (
                r#"{"name":"a","image":"x","port":80,"colour":1}"#,
                "unknown_field",
                Some("colour"),
            ),
            (r#"{"image":"x","port":80}"#, "missing_field", Some("name")),
            (
                r#"{"name":"a","image":"x","port":80,"domains":[{"path_prefix":"/"}]}"#,
                "missing_field",
                Some("domains[0].host"),
            ),
            (
                r#"{"name":"a","image":"x","port":"80"}"#,
                "invalid_field",
                Some("port"),
            ),
            (
                r#"{"name":"a","image":"x","port":80,"domains":[{"host":"a.com","strip":true}]}"#,
                "unknown_field",
                Some("domains[0].strip"),
            ),
            (r#"{"name":"a","#, "invalid_json", None),
            (
                r#"{"name":"a","image":"x","port":80} x"#,
                "invalid_json",
                None,
            ),
            (r#""just text""#, "invalid_json", None),
            (r#"[null, null]"#, "invalid_json", None),
            (r#"  ["a", "x", 80]"#, "invalid_json", None),
        ];
        for (json, code, field) in cases {
            let err = parse::<AppInput>(json.as_bytes()).err().unwrap();
            let body = body_of(err).await;
            assert_eq!(body["error"]["code"], code, "{json}: {body}");
            assert_eq!(body["error"]["field"].as_str(), field, "{json}: {body}");
        }
    }
}
