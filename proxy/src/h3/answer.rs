//! Responses berth makes itself over HTTP/3: its pages and a static
//! site's responses.

use bytes::Bytes;
use http::header;
use http::Response;

use crate::attempt::Failure;
use crate::pages;
use crate::policy::{self, ErrorPage};
use crate::SiteResponse;

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
    let page = pages::render(page, answer.head, answer.request_id);
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
        send.send_data(Bytes::from_static(page.body)).await?;
    }
    send.finish().await
}
