//! Responses berth makes itself over h2: its pages, short answers (a
//! challenge, a redirect) and a static site's responses.

use bytes::Bytes;
use http::header;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;

use crate::pages;
use crate::policy::{self, ErrorPage, X_REQUEST_ID};
use crate::rules::{Ask, Outgoing, Own};
use crate::{Backend, Route, SiteResponse};

/// The route's rules (and its app's maintenance) on a request: `Err`
/// with what the edge answers instead of the app, else what the
/// response gets on the way out (`None` on a route without rules).
pub(super) async fn screen(
    session: &ServerSession,
    route: &Route,
    tls: bool,
) -> Result<Option<Outgoing>, Own> {
    if !policy::screens(route) {
        return Ok(None);
    }
    let req = session.req_header();
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let content_length = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let ask = Ask {
        method: &req.method,
        host: super::request_host(req),
        path_and_query: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        headers: &req.headers,
        client,
        tls,
        content_length,
    };
    match policy::screen(route, &ask).await {
        Some(own) => Err(own),
        None => Ok(route.rules().and_then(|r| r.outgoing(&ask))),
    }
}

/// Writes what the route's rules answer instead of the app.
pub(super) async fn send_own(
    session: &mut ServerSession,
    own: Own,
    request_id: &str,
) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(own.status, Some(own.fields.len() + 2))?;
    for (name, value) in own.fields {
        resp.insert_header(name, value)?;
    }
    if own.status != 204 {
        resp.insert_header(header::CONTENT_LENGTH, own.body.len())?;
    }
    if !request_id.is_empty() {
        resp.insert_header(X_REQUEST_ID, request_id)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp)).await?;
    let body = if head_only { Bytes::new() } else { own.body };
    session.write_response_body(body, true).await
}

/// Answers a request that could not be read: there is no request header
/// to consult, and the connection is closed after.
pub(super) async fn bad_request(session: &mut ServerSession) {
    let page = pages::render(policy::BAD_REQUEST, None, false, "");
    match page_header(&page) {
        Ok(resp) => {
            if let Err(e) = session.write_error_response(resp, page.body).await {
                tracing::debug!(err = %e, "could not answer a bad request");
            }
        }
        Err(e) => tracing::debug!(err = %e, "could not build a bad request page"),
    }
}

/// Writes one of berth's own pages, as [`pages`] renders it.
pub(super) async fn page(
    session: &mut ServerSession,
    page: ErrorPage,
    app: Option<&Backend>,
    request_id: &str,
) -> pingora_error::Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let page = pages::render(page, app, head, request_id);
    session
        .write_response_header(Box::new(page_header(&page)?))
        .await?;
    session.write_response_body(page.body, true).await
}

/// The response header of a rendered page.
fn page_header(page: &pages::Rendered<'_>) -> pingora_error::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(page.status, Some(4))?;
    for (name, value) in page.fields() {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(header::CONTENT_LENGTH, page.length)?;
    Ok(resp)
}

/// The header of a response berth makes itself.
fn own_header(
    status: u16,
    content_type: &str,
    length: usize,
    location: Option<&str>,
    request_id: &str,
) -> pingora_error::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, length)?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(location) = location {
        resp.insert_header(header::LOCATION, location)?;
    }
    if !request_id.is_empty() {
        resp.insert_header(X_REQUEST_ID, request_id)?;
    }
    Ok(resp)
}

/// Writes a whole response berth makes itself to a request it read.
pub(super) async fn answer(
    session: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Bytes,
    location: Option<&str>,
    request_id: &str,
) -> pingora_error::Result<()> {
    let resp = own_header(status, content_type, body.len(), location, request_id)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp)).await?;
    let body = if head_only { Bytes::new() } else { body };
    session.write_response_body(body, true).await
}

/// Writes a static site's response with the `extra` headers that are set.
pub(super) async fn send_site(
    session: &mut ServerSession,
    site: SiteResponse,
    extra: &[(&'static str, Option<&str>)],
) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(site.status.as_u16(), Some(site.headers.len() + 3))?;
    for (name, value) in &site.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    for (name, value) in extra {
        if let Some(value) = value {
            resp.insert_header(*name, *value)?;
        }
    }
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(site.body, true).await
}
