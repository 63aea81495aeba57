//! Unit tests of the request policy.

use super::*;
use crate::{Backend, RouteSpec};
use proptest::prelude::*;
use std::sync::Arc;

fn table(strip: bool, upstreams: usize) -> RouteTable {
    let addrs = (0..upstreams)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)))
        .collect();
    RouteTable::build([RouteSpec {
        host: "app.example.com".into(),
        path_prefix: "/api".into(),
        strip_prefix: strip,
        redirect_https: false,
        hsts: false,
        certified: false,
        backend: Arc::new(Backend::new("app", addrs)),
        rules: None,
    }])
}

#[test]
fn the_authority_names_the_host_before_host_does() {
    let both = request_host(Some("a.test"), Some("b.test"));
    assert_eq!(both, Some("a.test"));
    assert_eq!(request_host(None, Some("b.test")), Some("b.test"));
    assert_eq!(request_host(Some(""), Some("b.test")), Some("b.test"));
    assert_eq!(request_host(Some("a.test"), None), Some("a.test"));
    assert_eq!(request_host(None, Some("")), None);
}

fn tls_table() -> RouteTable {
    RouteTable::build([RouteSpec {
        host: "app.example.com".into(),
        path_prefix: "/".into(),
        strip_prefix: false,
        redirect_https: true,
        hsts: true,
        certified: true,
        backend: Arc::new(Backend::new("app", vec![])),
        rules: None,
    }])
}

#[test]
fn plain_http_redirects_keep_path_and_query_but_not_challenges() {
    let t = tls_table();
    let route = t.lookup("app.example.com", "/x").unwrap();
    assert_eq!(
        https_redirect(route, false, Some("App.Example.com:80"), "/x?a=1", 443).as_deref(),
        Some("https://app.example.com/x?a=1")
    );
    assert_eq!(
        https_redirect(route, false, Some("app.example.com"), "/", 8443).as_deref(),
        Some("https://app.example.com:8443/")
    );
    assert_eq!(
        https_redirect(route, true, Some("app.example.com"), "/", 443),
        None
    );
    assert_eq!(
        https_redirect(
            route,
            false,
            Some("app.example.com"),
            "/.well-known/acme-challenge/tok",
            443
        ),
        None
    );
    assert_eq!(hsts(route, true), Some("max-age=31536000"));
    assert_eq!(hsts(route, false), None);
    let plain = table(false, 1);
    let route = plain.lookup("app.example.com", "/api").unwrap();
    assert_eq!(
        https_redirect(route, false, Some("app.example.com"), "/api", 443),
        None
    );
    assert_eq!(hsts(route, true), None);
}

#[test]
fn challenges_are_answered_on_plain_http_only() {
    let tokens = Http01Tokens::default();
    tokens.insert("tok", "tok.key");
    let path = "/.well-known/acme-challenge/tok";
    assert_eq!(
        acme_challenge(false, path, &tokens).as_deref(),
        Some("tok.key")
    );
    assert_eq!(acme_challenge(true, path, &tokens), None);
    assert_eq!(
        acme_challenge(false, "/.well-known/acme-challenge/x", &tokens),
        None
    );
}

#[test]
fn hosts_match_without_case_and_port() {
    let t = table(false, 1);
    assert!(matches!(
        decide(&t, Some("App.Example.com:8080"), "/api/x"),
        Decision::Forward(_)
    ));
    assert!(matches!(
        decide(&t, Some("other.com"), "/api"),
        Decision::UnknownHost
    ));
    assert!(matches!(decide(&t, None, "/api"), Decision::UnknownHost));
    assert!(matches!(
        decide(&t, Some("app.example.com"), "/"),
        Decision::UnknownHost
    ));
    let empty = table(false, 0);
    assert!(matches!(
        decide(&empty, Some("app.example.com"), "/api"),
        Decision::NoReplica(_)
    ));
}

#[test]
fn stopped_apps_are_told_apart_from_apps_without_replicas() {
    let t = RouteTable::build([RouteSpec {
        host: "app.example.com".into(),
        path_prefix: "/".into(),
        strip_prefix: false,
        redirect_https: false,
        hsts: false,
        certified: false,
        backend: Arc::new(Backend::stopped("app")),
        rules: None,
    }]);
    let Decision::Stopped(route) = decide(&t, Some("app.example.com"), "/x") else {
        panic!("a stopped app's route is not forwarded");
    };
    assert_eq!(&**route.backend().app(), "app");
    assert!(route.backend().upstreams().is_empty());
    assert_eq!(STOPPED.status, 503);
    assert!(STOPPED.body.contains("stopped by its owner"));
    assert!(!STOPPED.body.contains("Try again"));
    assert_ne!(STOPPED.body, NO_REPLICA.body);
    assert!(!Backend::new("x", vec![]).is_stopped());
}

#[test]
fn prefixes_are_stripped_when_asked() {
    let t = table(true, 1);
    let route = t.lookup("app.example.com", "/api").unwrap();
    assert_eq!(upstream_path(route, "/api/users?x=1"), "/users?x=1");
    assert_eq!(upstream_path(route, "/api"), "/");
    assert_eq!(upstream_path(route, "/api?q"), "/?q");
    let keep = table(false, 1);
    let route = keep.lookup("app.example.com", "/api").unwrap();
    assert_eq!(upstream_path(route, "/api/users"), "/api/users");
}

#[test]
fn static_sites_are_served_by_the_edge_with_prefixes_stripped() {
    // An empty site: only where requests go matters here.
    let empty = tempfile::tempdir().unwrap();
    let site = Arc::new(crate::Site::load(empty.path(), Default::default()).unwrap());
    let spec = |prefix: &str, strip: bool| RouteSpec {
        host: "docs.example.com".into(),
        path_prefix: prefix.into(),
        strip_prefix: strip,
        redirect_https: false,
        hsts: false,
        certified: false,
        backend: Arc::new(Backend::site("docs", site.clone())),
        rules: None,
    };
    let t = RouteTable::build([spec("/guide", true), spec("/", false)]);
    let Decision::Static(route, served) = decide(&t, Some("docs.example.com"), "/guide/x") else {
        panic!("a site is served, not forwarded");
    };
    assert!(Arc::ptr_eq(served, &site));
    assert!(route.backend().upstreams().is_empty());
    assert_eq!(site_path(route, "/guide/a/b?q=1"), "/a/b");
    assert_eq!(site_path(route, "/guide"), "/");
    let Decision::Static(root, _) = decide(&t, Some("docs.example.com"), "/guidex") else {
        panic!("a site is served, not forwarded");
    };
    assert_eq!(site_path(root, "/guidex?a"), "/guidex");
    assert!(Backend::new("x", vec![]).static_site().is_none());
}

#[test]
fn request_ids_are_kept_only_when_sane() {
    assert_eq!(request_id(Some(b"abc-123")), "abc-123");
    assert_eq!(request_id(Some(b"a b")).len(), 32);
    assert_eq!(request_id(Some(&[b'a'; 200])).len(), 32);
    assert_eq!(request_id(None).len(), 32);
    assert_eq!(hex_id(0xab), format!("{:032x}", 0xab));
    assert_eq!(hex_id(u128::MAX), "f".repeat(32));
    assert_ne!(request_id(None), request_id(None));
    let mut out = String::from("old");
    write_request_id(Some(b"abc-123"), &mut out);
    assert_eq!(out, "abc-123");
    write_request_id(Some(b"a b"), &mut out);
    assert_eq!(out.len(), 32);
    assert!(out.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn forwarded_headers_use_canonical_ips() {
    let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    let f = forwarded(Some(ip), false, Some("a.com"));
    assert_eq!(f.for_ip.as_deref(), Some("10.1.2.3"));
    assert_eq!(f.proto, "http");
    assert_eq!(forwarded(None, true, None).proto, "https");
}

#[test]
fn spoofable_and_underscored_headers_are_not_forwardable() {
    for name in [
        "X_Real_IP",
        "x_forwarded_for",
        "X-Forwarded_Host",
        "_",
        "X-Client-IP",
        "true-client-ip",
        "CF-Connecting-IP",
        "X-Cluster-Client-Ip",
        "Fastly-Client-IP",
        "Forwarded",
        "X-Real-Ip",
        "X-Forwarded-For",
        "x-request-id",
        "Connection",
        "Transfer-Encoding",
    ] {
        assert!(!forwardable(name.as_bytes()), "{name} is forwarded");
    }
    for name in [
        "Host",
        "Accept",
        "X-Real-Ipx",
        "x-client",
        "Cookie",
        "X-Custom-Header",
    ] {
        assert!(forwardable(name.as_bytes()), "{name} is dropped");
    }
}

#[test]
fn error_pages_match_their_status() {
    for s in [400, 404, 413, 421, 500, 502, 503, 504] {
        assert_eq!(error_page(s).status, s);
    }
}

proptest! {
    #[test]
    fn policy_never_panics(host in "\\PC*", path in "\\PC*") {
        let t = table(true, 2);
        if let Decision::Forward(route) = decide(&t, Some(&host), &path) {
            let _ = upstream_path(route, &path);
        }
        let _ = request_id(Some(host.as_bytes()));
    }
}
