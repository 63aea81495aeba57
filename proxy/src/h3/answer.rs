//! Responses berth makes itself over HTTP/3: its pages and a static
//! site's responses.

use http::header;
use http::Response;

use crate::attempt::Failure;
use crate::pages;
use crate::policy::{self, ErrorPage};
use crate::rules::{Ask, Outgoing, Own};
use crate::{Backend, Route, SiteResponse};

/// The route's rules (and its app's maintenance) on a request: `Err`
/// with what the edge answers instead of the app, else what the
/// response gets on the way out (`None` on a route without rules).
pub(super) async fn screen(
    route: &Route,
    req: &http::Request<()>,
    host: Option<&str>,
    client: std::net::IpAddr,
) -> Result<Option<Outgoing>, Own> {
    if !policy::screens(route) {
        return Ok(None);
    }
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let ask = Ask {
        method: req.method(),
        host,
        path_and_query: req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
        headers: req.headers(),
        client: Some(client),
        tls: true,
        content_length,
    };
    match policy::screen(route, &ask).await {
        Some(own) => Err(own),
        None => Ok(route.rules().and_then(|r| r.outgoing(&ask))),
    }
}

/// Sends what the route's rules answer instead of the app.
pub(super) async fn send_own(
    send: &mut SendHalf,
    own: Own,
    answer: Answer<'_>,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    let mut head = Response::new(());
    *head.status_mut() = http::StatusCode::from_u16(own.status).unwrap_or_default();
    let h = head.headers_mut();
    for (name, value) in own.fields {
        h.insert(name, value);
    }
    if own.status != 204 {
        h.insert(header::CONTENT_LENGTH, own.body.len().into());
    }
    set(h, policy::X_REQUEST_ID, answer.request_id);
    outcome.status = own.status;
    send.send_response(head).await?;
    if !answer.head && !own.body.is_empty() {
        send.send_data(own.body).await?;
    }
    send.finish().await
}

use super::front::{Outcome, SendHalf};
use super::headers::set;

/// Sends a static site's response, with the headers the edge adds to
/// every response (request id, and HSTS when the route asks for it).
pub(super) async fn send_site(
    send: &mut SendHalf,
    site: SiteResponse,
    hsts: Option<&str>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    let mut head = Response::new(());
    *head.status_mut() = site.status;
    *head.headers_mut() = site.headers;
    set(head.headers_mut(), policy::X_REQUEST_ID, request_id);
    if let Some(value) = hsts {
        set(
            head.headers_mut(),
            header::STRICT_TRANSPORT_SECURITY.as_str(),
            value,
        );
    }
    outcome.status = site.status.as_u16();
    send.send_response(head).await?;
    if !site.body.is_empty() {
        send.send_data(site.body).await?;
    }
    send.finish().await
}

/// What berth's own answer to a request depends on.
#[derive(Clone, Copy)]
pub(super) struct Answer<'a> {
    pub(super) request_id: &'a str,
    /// The request is a HEAD: headers only.
    pub(super) head: bool,
    /// The app the request is for, whose own error pages replace berth's.
    pub(super) app: Option<&'a Backend>,
}

/// Answers a failure with its page, if the client gets one.
pub(super) async fn fail(
    send: &mut SendHalf,
    failure: Failure,
    answer: Answer<'_>,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    match failure.page() {
        Some(p) => page(send, p, answer, outcome).await,
        None => Ok(()),
    }
}

/// Sends one of berth's own pages, as [`pages`] renders it.
pub(super) async fn page(
    send: &mut SendHalf,
    page: ErrorPage,
    answer: Answer<'_>,
    outcome: &mut Outcome,
) -> Result<(), h3::error::StreamError> {
    let page = pages::render(page, answer.app, answer.head, answer.request_id);
    let mut head = Response::new(());
    *head.status_mut() = page.status;
    let h = head.headers_mut();
    for (name, value) in page.fields() {
        set(h, name, value);
    }
    set(
        h,
        header::CONTENT_LENGTH.as_str(),
        itoa::Buffer::new().format(page.length),
    );
    outcome.status = page.status.as_u16();
    send.send_response(head).await?;
    if !page.body.is_empty() {
        send.send_data(page.body).await?;
    }
    send.finish().await
}
