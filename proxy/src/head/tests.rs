//! Unit tests of the HTTP/1.1 heads.

use std::net::IpAddr;

use super::fields::MAX_HEADERS;
use super::response::BadResponse;
use super::*;

fn fwd() -> Forwarding {
    Forwarding::new(
        Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7))),
        false,
    )
}

fn request(raw: &str) -> Result<(Request, String), Refused> {
    let mut req = Request::default();
    let mut up = Vec::new();
    assert!(parse_request(raw.as_bytes(), &mut req, &mut up, &fwd())?);
    Ok((req, String::from_utf8(up).unwrap()))
}

#[test]
fn client_addresses_are_written_as_forwarded_for_text() {
    let text = |ip: &str| {
        let fwd = Forwarding::new(Some(ip.parse().unwrap()), false);
        String::from_utf8(fwd.client().unwrap().to_vec()).unwrap()
    };
    assert_eq!(text("203.0.113.9"), "203.0.113.9");
    assert_eq!(text("::ffff:203.0.113.9"), "203.0.113.9");
    assert_eq!(text("2001:db8::1"), "2001:db8::1");
    let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    assert_eq!(text(longest), longest);
    assert!(Forwarding::new(None, true).client().is_none());
}

#[test]
fn forwarded_heads_drop_connection_fields_and_carry_berths() {
    let (req, up) = request(
        "POST /a?b=1 HTTP/1.1\r\nHost: App.test\r\nConnection: keep-alive, X-Secret\r\n\
         X-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=x\r\n\
         X-Request-Id: abc\r\nContent-Length: 3\r\nAccept: */*\r\nX_Real_IP: 6.6.6.6\r\n\
         True-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n\r\nabc",
    )
    .unwrap();
    assert_eq!(req.target, "/a?b=1");
    assert_eq!(req.path(), "/a");
    assert_eq!(req.host, "App.test");
    assert_eq!(req.request_id, "abc");
    assert_eq!(req.body, Framing::Length(3));
    assert!(req.keep_alive && !req.upgrade && !req.retryable());
    assert_eq!(
        up,
        "Host: App.test\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.7\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: App.test\r\nx-request-id: abc\r\n\
         content-length: 3\r\n\r\n"
    );
}

#[test]
fn targets_lose_their_dot_segments_but_not_their_query() {
    let (req, _) = request("GET /api/../x?a=.. HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!((req.target.as_str(), req.path()), ("/x?a=..", "/x"));
    let (req, _) = request("GET http://a/b/%2e%2E/../c HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(req.target, "/c");
}

#[test]
fn upgrades_keep_their_protocol_and_absolute_targets_their_host() {
    let (req, up) =
        request("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .unwrap();
    assert!(req.upgrade && req.retryable());
    assert!(up.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
    let (req, up) = request("GET http://b.test:8/x HTTP/1.1\r\nHost: evil\r\n\r\n").unwrap();
    assert_eq!((req.host.as_str(), req.target.as_str()), ("b.test:8", "/x"));
    assert!(up.starts_with("host: b.test:8\r\n") && !up.contains("evil"));
    let (req, _) = request("GET http://b.test?q HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(req.target, "/?q");
    let (req, _) = request("GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(!req.keep_alive && req.host.is_empty());
    let (req, _) = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert!(req.keep_alive);
}

#[test]
fn smuggling_shapes_and_bad_heads_are_refused() {
    for (raw, status) in [
        ("GARBAGE\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ] {
        assert_eq!(request(raw).err(), Some(Refused(status)), "{raw:?}");
    }
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "X: y\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(request(&many).err(), Some(Refused(431)));
    let mut req = Request::default();
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHo", &mut req, &mut Vec::new(), &fwd()),
        Ok(false)
    );
}

proptest::proptest! {
    #[test]
    fn any_bytes_parse_or_refuse_without_panic(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
    ) {
        let mut req = Request::default();
        let mut up = Vec::new();
        let _ = parse_request(&input, &mut req, &mut up, &fwd());
        let _ = parse_response(&input, &REPLY, &mut up);
        let _ = header_map(&input);
    }

    #[test]
    fn header_fields_survive_the_rewrite(
        fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,40}"), 0..20),
    ) {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for (name, value) in &fields {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        if let Ok((_, up)) = request(&raw) {
            // Every line the replica gets is a well-formed field.
            proptest::prop_assert!(up.ends_with("\r\n\r\n"));
            for line in up[..up.len() - 4].split("\r\n") {
                proptest::prop_assert!(line.contains(':') && !line.contains('\n'), "{line:?}");
            }
        }
    }
}

const REPLY: Reply<'static> = Reply {
    head_request: false,
    http11: true,
    keep_alive: true,
    upgrade: false,
    request_id: "rid",
    hsts: Some("max-age=1"),
    alt_svc: None,
    out: None,
};

fn response(raw: &str, reply: &Reply<'_>) -> Result<(Response, String), BadResponse> {
    let mut out = Vec::new();
    let r = parse_response(raw.as_bytes(), reply, &mut out)?.expect("complete");
    Ok((r, String::from_utf8(out).unwrap()))
}

#[test]
fn responses_are_rewritten_for_the_client() {
    let raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
         Content-Length: 2\r\nX-Request-Id: theirs\r\nStrict-Transport-Security: x\r\n\r\nok";
    let (r, out) = response(raw, &REPLY).unwrap();
    assert_eq!((r.body, r.head_len), (Framing::Length(2), raw.len() - 2));
    assert!(r.client_keep && r.replica_keep);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: rid\r\n\
         strict-transport-security: max-age=1\r\n\r\n"
    );
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &REPLY,
    )
    .unwrap();
    assert_eq!(r.body, Framing::Chunked);
    assert!(out.contains("transfer-encoding: chunked\r\n") && r.client_keep);
    let old = Reply {
        http11: false,
        ..REPLY
    };
    let (r, out) = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &old,
    )
    .unwrap();
    assert!(r.dechunk && !r.client_keep && !out.contains("chunked"));
    assert!(out.contains("connection: close"));
    let (r, out) = response("HTTP/1.0 200 OK\r\n\r\nbody", &REPLY).unwrap();
    assert_eq!(r.body, Framing::Close);
    assert!(!r.client_keep && !r.replica_keep && out.contains("connection: close"));
    let head = Reply {
        head_request: true,
        ..REPLY
    };
    let (r, out) = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &head).unwrap();
    assert_eq!(r.body, Framing::Empty);
    assert!(out.contains("content-length: 9") && r.client_keep);
}

#[test]
fn informational_and_switching_heads() {
    let (r, out) = response("HTTP/1.1 100 Continue\r\n\r\n", &REPLY).unwrap();
    assert!(r.informational && out.is_empty());
    let (r, out) = response("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", &REPLY).unwrap();
    assert!(r.informational);
    assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    let raw =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(response(raw, &REPLY).err(), Some(BadResponse::Unasked));
    let upgrade = Reply {
        upgrade: true,
        ..REPLY
    };
    let (r, out) = response(raw, &upgrade).unwrap();
    assert!(!r.informational && !r.client_keep && !r.replica_keep);
    assert!(out.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
    for bad in [
        "HTTP/1.1 042 Odd\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(response(bad, &REPLY).err(), Some(BadResponse::Malformed));
    }
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        assert_eq!(response(bad, &REPLY).err(), Some(BadResponse::Length));
    }
    assert_eq!(
        response("NOT HTTP\r\n\r\n", &REPLY).err(),
        Some(BadResponse::Malformed)
    );
}
