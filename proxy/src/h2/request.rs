//! What the h2 front end reads of a client's request (its id, its host)
//! and the request the replica gets.

use std::borrow::Cow;

use http::{header, HeaderValue};
use pingora_core::protocols::http::ServerSession;
use pingora_error::{Error, ErrorType};
use pingora_http::RequestHeader;

use crate::policy::{self, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::Route;

/// The request id as a header value: the client's when sane (shared,
/// not copied), else a fresh one.
pub(super) fn request_id(req: &RequestHeader) -> HeaderValue {
    let incoming = req.headers.get(X_REQUEST_ID);
    match policy::request_id(incoming.map(HeaderValue::as_bytes)) {
        Cow::Borrowed(_) => incoming.cloned(),
        Cow::Owned(fresh) => HeaderValue::try_from(fresh).ok(),
    }
    .unwrap_or_else(|| HeaderValue::from_static("-"))
}

/// The host a request asked for, by [`policy::request_host`]: the h2
/// `:authority`, else `Host`.
pub(super) fn request_host(req: &RequestHeader) -> Option<&str> {
    let host = req.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    policy::request_host(req.uri.authority().map(|a| a.as_str()), host)
}

/// The request sent to the replica: HTTP/1.1 in origin form, the path
/// rewritten by the route, the client's headers but connection-specific
/// ones (RFC 9110 §7.6.1, and the ones `Connection` names; a WebSocket-
/// style upgrade is kept) and forwarding ones (replaced by berth's).
///
/// Built afresh rather than cloned and edited: a header map without
/// pingora's case map, sized once, so no header costs a rehash.
pub(super) fn upstream_request(
    session: &mut ServerSession,
    route: &Route,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora_error::Result<Box<RequestHeader>> {
    let upgrade = session.is_upgrade_req();
    let has_body = !session.is_body_empty();
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let req = session.req_header();
    let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = policy::upstream_path(route, pq);
    let capacity = req.headers.len() + 6;
    let method = req.method.clone();
    let mut up = RequestHeader::build_no_case(method, path.as_bytes(), Some(capacity))?;
    up.set_version(http::Version::HTTP_11);
    let nominated: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(policy::connection_names)
        .collect();
    for (name, value) in &req.headers {
        let lower = name.as_str();
        let named = name != header::HOST && nominated.iter().any(|n| n == lower);
        if named || !policy::forwardable(lower.as_bytes()) {
            continue;
        }
        up.append_header(name.clone(), value.clone())?;
    }
    if upgrade {
        if let Some(protocol) = req.headers.get(header::UPGRADE) {
            up.insert_header(header::CONNECTION, "upgrade")?;
            up.insert_header(header::UPGRADE, protocol.clone())?;
        }
    }
    if has_body && !up.headers.contains_key(header::CONTENT_LENGTH) {
        up.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    // The host the request is for (the rule every front end follows) is
    // the replica's Host.
    let host = match (req.uri.authority(), req.headers.get(header::HOST)) {
        (Some(authority), _) if !authority.as_str().is_empty() => {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "authority", e))?;
            up.insert_header(header::HOST, host.clone())?;
            Some(host)
        }
        (_, host) => host.cloned(),
    };
    let fwd = policy::forwarded(client, tls, None);
    if let Some(ip) = fwd.for_ip {
        up.insert_header(X_FORWARDED_FOR, ip)?;
    }
    up.insert_header(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto))?;
    if let Some(host) = host {
        up.insert_header(X_FORWARDED_HOST, host)?;
    }
    up.insert_header(X_REQUEST_ID, request_id.clone())?;
    if let Some(rules) = route.rules().filter(|r| r.edits_request()) {
        let (remove, set) = rules.request_edits();
        for name in remove {
            up.remove_header(name);
        }
        for (name, value) in set {
            up.insert_header(name.clone(), value.clone())?;
        }
    }
    Ok(Box::new(up))
}
