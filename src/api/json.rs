//! `ApiJson`: the JSON body extractor of the API. It parses with
//! `serde_path_to_error`, so errors name the field (`domains[0].host`), and
//! turns every failure into an [`ApiError`] with code and message.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
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
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document into `T`, naming the field on error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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
            (r#""just text""#, "invalid_field", None),
        ];
        for (json, code, field) in cases {
            let err = parse::<AppInput>(json.as_bytes()).err().unwrap();
            let body = body_of(err).await;
            assert_eq!(body["error"]["code"], code, "{json}: {body}");
            assert_eq!(body["error"]["field"].as_str(), field, "{json}: {body}");
        }
    }
}
