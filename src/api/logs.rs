//! `GET /api/v1/apps/{name}/logs`: the last lines of each of the app's
//! containers as JSON, or with `follow=true` its replicas' output live as
//! Server-Sent Events. The orchestrator follows; this maps its events to
//! SSE.

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::views::LogsView;
use super::ApiState;
use berth::orchestrator::{FollowError, FollowEvent, FollowFrom};

/// Default and largest `tail`.
const DEFAULT_TAIL: usize = 100;
const MAX_TAIL: usize = 10_000;

/// Query of the logs endpoint.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// `true`: stream the replicas' output live as Server-Sent Events
    /// (`text/event-stream`) until the app is deleted or berth shuts down;
    /// `false` (default): the last lines once, as JSON.
    #[param(value_type = Option<bool>)]
    follow: Option<String>,
    /// Only lines written at or after this time: RFC 3339
    /// (`2026-12-05T10:00:00Z`) or UNIX seconds (`1796464800`).
    #[param(value_type = Option<String>)]
    since: Option<String>,
    /// Lines per container, 1-10000, default 100; with `follow=true` also
    /// 0 (only lines written from now on). Applies to the replicas running
    /// when the stream starts; replicas that join later come from their start.
    #[param(value_type = Option<usize>, minimum = 0, maximum = 10000)]
    tail: Option<String>,
}

/// The query, checked.
#[derive(Debug, PartialEq)]
struct LogsRequest {
    follow: bool,
    since: Option<OffsetDateTime>,
    tail: usize,
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
}

impl LogsQuery {
    /// Checks each parameter; an error names the one at fault.
    fn check(&self) -> Result<LogsRequest, ApiError> {
        let follow = match self.follow.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(bad(
                    "follow",
                    format!("{other:?} is not a boolean; give true or false"),
                ))
            }
        };
        let since = self
            .since
            .as_deref()
            .map(parse_since)
            .transpose()
            .map_err(|e| bad("since", e))?;
        let tail = match self.tail.as_deref() {
            None => DEFAULT_TAIL,
            Some(t) => t.parse::<usize>().map_err(|_| {
                bad(
                    "tail",
                    format!("{t:?} is not a number of lines; give 1-{MAX_TAIL}"),
                )
            })?,
        };
        let least = if follow { 0 } else { 1 };
        if tail < least || tail > MAX_TAIL {
            return Err(bad(
                "tail",
                format!("{tail} is out of range; give {least}-{MAX_TAIL}"),
            ));
        }
        Ok(LogsRequest {
            follow,
            since,
            tail,
        })
    }
}

/// A `since` value: an RFC 3339 time or UNIX seconds (a fraction allowed).
fn parse_since(text: &str) -> Result<OffsetDateTime, String> {
    let hint = "give an RFC 3339 time (2026-12-05T10:00:00Z) or UNIX seconds";
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
        if secs.is_empty() || frac.contains('.') || frac.len() > 9 {
            return Err(format!("{text:?} is not a time; {hint}"));
        }
        let secs: i64 = secs
            .parse()
            .map_err(|_| format!("{text:?} is out of range; {hint}"))?;
        let nanos: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
        let at = OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| format!("{text:?} is out of range; {hint}"))?;
        return Ok(at + time::Duration::nanoseconds(nanos));
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| format!("{text:?} is not a time; {hint}"))
}

/// An app's container logs: the last lines of each container as JSON, or
/// with `follow=true` a Server-Sent Events stream of its replicas' output.
///
/// The stream follows every running replica and picks up replicas that
/// start later (a redeploy's, a restarted one). Each unnamed event is one
/// line, its data a `ReplicaLine` (`{"replica", "container", "deployment",
/// "stream", "line", "at"}`); `event: replica` (a `ReplicaChange`) says a
/// replica joined (`following`) or left (`ended`); `event: skipped` (a
/// `Skipped`) says how many lines of a replica were dropped because the
/// client read too slowly; the last event is `event: end` with
/// `{"reason"}` (the app was deleted, berth is shutting down), then the
/// stream closes. Comments keep the connection alive. At most 64 streams
/// are open at once: beyond, 503.
#[utoipa::path(get, path = "/api/v1/apps/{name}/logs", tag = "apps",
    params(("name" = String, Path, description = "App name"), LogsQuery),
    responses(
        (status = 200, description = "JSON; with follow=true a text/event-stream",
            content((LogsView = "application/json"),
                    (String = "text/event-stream", example = json!(
                        "data: {\"replica\":0,\"container\":\"3f2a1c9b7d10\",\"deployment\":\"d-1\",\"stream\":\"stdout\",\"line\":\"GET / 200\",\"at\":\"2026-12-05T10:00:00.1Z\"}\n\n\
                         event: end\ndata: {\"reason\":\"the app was deleted\"}\n\n")))),
        (status = 400, body = ErrorBody, description = "follow, since or tail is invalid (the error names it)"),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many log streams are open, or berth is shutting down")))]
pub async fn logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let request = query.check()?;
    let orchestrator = &state.orchestrator;
    if !request.follow {
        let containers = orchestrator
            .logs(&name, request.tail, request.since)
            .await?;
        return Ok(Json(LogsView { containers }).into_response());
    }
    let from = FollowFrom {
        since: request.since,
        tail: Some(request.tail),
    };
    let follow = orchestrator
        .follow_logs(&name, from)
        .await
        .map_err(|e| match e {
            FollowError::Op(op) => op.into(),
            e @ (FollowError::TooMany | FollowError::ShuttingDown) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
        })?;
    let events = follow.map(|e| Ok::<_, Infallible>(sse_event(e)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One follower event as an SSE event.
fn sse_event(event: FollowEvent) -> Event {
    let (name, data) = match event {
        FollowEvent::Line(line) => (None, serde_json::to_string(&line)),
        FollowEvent::Replica(change) => (Some("replica"), serde_json::to_string(&change)),
        FollowEvent::Skipped(skipped) => (Some("skipped"), serde_json::to_string(&skipped)),
        FollowEvent::End(reason) => (
            Some("end"),
            serde_json::to_string(&serde_json::json!({ "reason": reason })),
        ),
    };
    let event = Event::default().data(data.unwrap_or_else(|_| "{}".into()));
    match name {
        Some(name) => event.event(name),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(follow: Option<&str>, since: Option<&str>, tail: Option<&str>) -> LogsQuery {
        LogsQuery {
            follow: follow.map(String::from),
            since: since.map(String::from),
            tail: tail.map(String::from),
        }
    }

    async fn field_of(q: LogsQuery) -> String {
        let response = q.check().unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["error"]["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn the_document_describes_the_stream_and_its_parameters() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(crate::api::ApiDoc::openapi()).unwrap();
        let op = &doc["paths"]["/api/v1/apps/{name}/logs"]["get"];
        let content = &op["responses"]["200"]["content"];
        assert!(content["text/event-stream"].is_object(), "{content}");
        assert!(content["application/json"].is_object(), "{content}");
        assert!(op["responses"]["503"].is_object(), "{op}");
        let params: Vec<_> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["follow", "since", "tail"], "{op}");
        let follow = &op["parameters"][1];
        assert!(follow["schema"].to_string().contains("boolean"), "{follow}");
        for schema in ["ReplicaLine", "ReplicaChange", "Skipped"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }

    #[test]
    fn since_takes_rfc3339_or_unix_seconds() {
        let at = parse_since("2026-12-05T10:00:00Z").unwrap();
        assert_eq!(at.unix_timestamp(), 1_796_464_800);
        let at = parse_since("2026-12-05T11:00:00.25+01:00").unwrap();
        assert_eq!(at.unix_timestamp(), 1_796_464_800);
        assert_eq!(at.millisecond(), 250);
        assert_eq!(
            parse_since("1796464800").unwrap().unix_timestamp(),
            1_796_464_800
        );
        let at = parse_since("1796464800.5").unwrap();
        assert_eq!(
            (at.unix_timestamp(), at.millisecond()),
            (1_796_464_800, 500)
        );
        assert_eq!(parse_since("0").unwrap(), OffsetDateTime::UNIX_EPOCH);
        for bad in [
            "",
            "yesterday",
            "-5",
            "1.2.3",
            ".5",
            "1.0000000001",
            "2026-12-05",
            "2026-12-05 10:00:00",
            "99999999999999999999",
            "9999999999999",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn each_bad_parameter_is_named() {
        assert_eq!(field_of(query(Some("yes"), None, None)).await, "follow");
        assert_eq!(field_of(query(Some("1"), None, None)).await, "follow");
        assert_eq!(field_of(query(None, Some("soon"), None)).await, "since");
        assert_eq!(field_of(query(None, None, Some("ten"))).await, "tail");
        assert_eq!(field_of(query(None, None, Some("-1"))).await, "tail");
        assert_eq!(field_of(query(None, None, Some("0"))).await, "tail");
        assert_eq!(
            field_of(query(Some("true"), None, Some("10001"))).await,
            "tail"
        );
    }

    #[test]
    fn good_queries_and_defaults() {
        assert_eq!(
            query(None, None, None).check().unwrap(),
            LogsRequest {
                follow: false,
                since: None,
                tail: 100
            }
        );
        let r = query(Some("true"), Some("1796464800"), Some("0"))
            .check()
            .unwrap();
        assert!(r.follow);
        assert_eq!(r.tail, 0);
        assert_eq!(r.since.map(|s| s.unix_timestamp()), Some(1_796_464_800));
        assert!(
            !query(Some("false"), None, Some("5"))
                .check()
                .unwrap()
                .follow
        );
    }
}
