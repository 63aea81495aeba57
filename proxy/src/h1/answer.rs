//! Responses berth makes itself on an HTTP/1.1 connection: its pages and
//! short answers (a challenge, a redirect), written in one go.

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::head;
use crate::pages;
use crate::policy::{self, X_REQUEST_ID};

use super::conn::{Conn, Outcome};
use super::io::write_all;

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Conn<'_, C> {
    /// Answers with one of berth's pages (the head was consumed).
    pub(super) async fn send_page(&mut self, page: policy::ErrorPage) -> Outcome {
        let keep = self.req.keep_alive;
        self.wbuf.clear();
        let head = self.req.method == http::Method::HEAD;
        let rendered = pages::render(page, head, &self.req.request_id);
        page_head(&mut self.wbuf, &rendered, self.req.http11, keep);
        self.wbuf.extend_from_slice(rendered.body);
        let written = write_all(&mut self.io, &self.wbuf).await;
        Outcome {
            status: page.status,
            keep: keep && written.is_ok(),
        }
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
        head::own_head(
            &mut self.wbuf,
            status,
            fields,
            Some(body.len()),
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
