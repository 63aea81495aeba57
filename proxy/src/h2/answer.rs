//! Responses berth makes itself over h2: its pages, short answers (a
//! challenge, a redirect) and a static site's responses.

use bytes::Bytes;
use http::header;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;

use crate::pages;
use crate::policy::{self, ErrorPage, X_REQUEST_ID};
use crate::SiteResponse;

/// Answers a request that could not be read: there is no request header
/// to consult, and the connection is closed after.
pub(super) async fn bad_request(session: &mut ServerSession) {
    let page = pages::render(policy::BAD_REQUEST, false, "");
    match page_header(&page) {
        Ok(resp) => {
            let body = Bytes::from_static(page.body);
            if let Err(e) = session.write_error_response(resp, body).await {
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
    request_id: &str,
) -> pingora_error::Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let page = pages::render(page, head, request_id);
    session
        .write_response_header(Box::new(page_header(&page)?))
        .await?;
    session
        .write_response_body(Bytes::from_static(page.body), true)
        .await
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
