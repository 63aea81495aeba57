//! Responses berth makes itself on an HTTP/1.1 connection: its pages and
//! short answers (a challenge, a redirect), written in one go.

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::head::{self, Framing};
use crate::pages;
use crate::policy::{self, X_REQUEST_ID};
use crate::rules::{Ask, Own};
use crate::{Backend, Route};

use super::conn::{Conn, Outcome};
use super::io::write_all;

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, C> {
    /// Answers with one of berth's pages (the head was consumed).
    pub(super) async fn send_page(
        &mut self,
        page: policy::ErrorPage,
        app: Option<&Backend>,
    ) -> Outcome {
        let keep = self.req.keep_alive;
        self.wbuf.clear();
        let head = self.req.method == http::Method::HEAD;
        let rendered = pages::render(page, app, head, &self.req.request_id);
        page_head(&mut self.wbuf, &rendered, self.req.http11, keep);
        self.wbuf.extend_from_slice(&rendered.body);
        let written = write_all(&mut self.io, &self.wbuf).await;
        Outcome {
            status: page.status,
            keep: keep && written.is_ok(),
        }
    }

    /// What the route's rules (or its app's maintenance) answer instead
    /// of the app, if anything; otherwise what its response gets on the
    /// way out is kept in `self.outgoing`. A route without rules reads
    /// nothing more of the request.
    pub(super) async fn screen(&mut self, route: &Route) -> Option<Own> {
        if !policy::screens(route) {
            return None;
        }
        let headers = head::rule_fields(&self.rbuf[..self.req.head_len]);
        let content_length = match self.req.body {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let host = (!self.req.host.is_empty()).then_some(self.req.host.as_str());
        let ask = Ask {
            method: &self.req.method,
            host,
            path_and_query: &self.req.target,
            headers: &headers,
            client: self.client,
            tls: self.edge.options().tls,
            content_length,
        };
        let own = policy::screen(route, &ask).await;
        if own.is_none() {
            self.outgoing = route.rules().and_then(|r| r.outgoing(&ask));
        }
        own
    }

    /// Answers with what the route's rules decided (the head is still in
    /// the read buffer).
    pub(super) async fn send_own(&mut self, own: Own, keep: bool) -> Outcome {
        let fields: Vec<(&[u8], &[u8])> = own
            .fields
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .collect();
        let status = http::StatusCode::from_u16(own.status).unwrap_or(http::StatusCode::FORBIDDEN);
        self.answer(status, &fields, &own.body, keep).await
    }

    /// Answers with a whole response berth makes itself.
    pub(super) async fn answer(
        &mut self,
        status: StatusCode,
        fields: &[(&[u8], &[u8])],
        body: &[u8],
        keep: bool,
    ) -> Outcome {
        self.wbuf.clear();
        let id = (X_REQUEST_ID.as_bytes(), self.req.request_id.as_bytes());
        let fields = fields.iter().copied().chain([id]);
        // A 204 has no body, nor a length (RFC 9110 §8.6).
        let length = (status != StatusCode::NO_CONTENT).then_some(body.len());
        head::own_head(
            &mut self.wbuf,
            status,
            fields,
            length,
            self.req.http11,
            keep,
        );
        if self.req.method != http::Method::HEAD {
            self.wbuf.extend_from_slice(body);
        }
        self.consume_head();
        let written = write_all(&mut self.io, &self.wbuf).await;
        Outcome {
            status: status.as_u16(),
            keep: keep && written.is_ok(),
        }
    }
}

/// Writes the head of one of berth's pages, as [`pages`] rendered it, into
/// `out`.
pub(super) fn page_head(out: &mut Vec<u8>, page: &pages::Rendered<'_>, http11: bool, keep: bool) {
    let fields = page.fields().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    head::own_head(out, page.status, fields, Some(page.length), http11, keep);
}
