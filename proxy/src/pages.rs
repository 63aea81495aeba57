//! berth's own error pages as every front end sends them: one status, one
//! set of header fields (`Content-Type`, `Cache-Control: no-store`, the
//! request id when one is known, and the page's `Content-Length`, on a
//! HEAD too) and one body (none on a HEAD). HTTP/1.1 writes the fields
//! into its own head, h2 and HTTP/3 into their header maps; what they
//! write comes only from here. The pages themselves are [`policy`]'s.
//!
//! [`policy`]: crate::policy

use bytes::Bytes;
use http::StatusCode;

use crate::policy::{ErrorPage, X_REQUEST_ID};
use crate::table::Backend;

/// Content type of berth's own pages.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// A page ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct Rendered<'a> {
    pub(crate) status: StatusCode,
    /// The page's length, sent as `Content-Length` even when the body is
    /// not (a HEAD gets the headers a GET would).
    pub(crate) length: usize,
    /// The body to send: empty on a HEAD.
    pub(crate) body: Bytes,
    request_id: &'a str,
}

/// `page` as the answer to a request (`head`: a HEAD) with `request_id`
/// (empty when none is known, as for a request that could not be read);
/// the page of the app it was for replaces berth's own when the app has
/// one for the status (its `error_pages`).
pub(crate) fn render<'a>(
    page: ErrorPage,
    app: Option<&Backend>,
    head: bool,
    request_id: &'a str,
) -> Rendered<'a> {
    let body = match app.and_then(|b| b.error_page(page.status)) {
        Some(own) => own.clone(),
        None => Bytes::from_static(page.body.as_bytes()),
    };
    Rendered {
        status: StatusCode::from_u16(page.status).unwrap_or(StatusCode::BAD_GATEWAY),
        length: body.len(),
        body: if head { Bytes::new() } else { body },
        request_id,
    }
}

impl<'a> Rendered<'a> {
    /// The header fields but `Content-Length` (which each codec writes its
    /// own way, from [`Rendered::length`]).
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        let id = (!self.request_id.is_empty()).then_some((X_REQUEST_ID, self.request_id));
        [("content-type", HTML), ("cache-control", "no-store")]
            .into_iter()
            .chain(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    #[test]
    fn a_head_gets_the_headers_of_the_get_and_no_body() {
        let get = render(policy::NOT_FOUND, None, false, "id-1");
        let head = render(policy::NOT_FOUND, None, true, "id-1");
        assert_eq!(get.status, 404);
        assert_eq!(get.body, policy::NOT_FOUND.body.as_bytes());
        assert!(head.body.is_empty());
        assert_eq!(head.length, get.length);
        let fields: Vec<_> = head.fields().collect();
        assert_eq!(fields, get.fields().collect::<Vec<_>>());
        assert_eq!(
            fields,
            [
                ("content-type", HTML),
                ("cache-control", "no-store"),
                ("x-request-id", "id-1")
            ]
        );
    }

    #[test]
    fn an_unknown_request_id_is_left_out() {
        let page = render(policy::BAD_REQUEST, None, false, "");
        assert_eq!(page.fields().count(), 2);
    }
}
