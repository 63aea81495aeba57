//! The edge proxy end to end, in process: real pingora on a loopback port,
//! real HTTP and WebSocket upstreams on loopback, a route table swapped in
//! as the orchestrator would; static sites served by the edge itself.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{
    Backend, EdgeOptions, EdgeProxy, HostCertificates, ProxyMetrics, RouteSpec, RouteTable, Router,
    Site, SiteOptions, Upstream, UpstreamState,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio_tungstenite::tungstenite::Message;

mod support;

/// An upstream that answers with a JSON echo of what it received:
/// `{name, path, headers, body_len}`.
async fn echo_upstream(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let path = req.uri().to_string();
                    let headers: serde_json::Map<String, serde_json::Value> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                        .collect();
                    // Stream the body through, counting it.
                    let mut body = req.into_body();
                    let mut len = 0usize;
                    while let Some(frame) = body.frame().await {
                        if let Ok(data) = frame.unwrap().into_data() {
                            len += data.len();
                        }
                    }
                    let json = serde_json::json!({
                        "name": name, "path": path, "headers": headers, "body_len": len,
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(json.to_string()))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A WebSocket upstream that echoes text frames, prefixed with `echo:`.
async fn ws_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        ws.send(Message::text(format!("echo:{t}"))).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

struct Edge {
    addr: SocketAddr,
    router: Arc<Router>,
    registry: Registry,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start_edge(specs: Vec<RouteSpec>) -> Edge {
    start_edge_with(specs, Duration::from_secs(3600)).await
}

/// [`start_edge`] with a deadline for idle tunnels.
async fn start_edge_with(specs: Vec<RouteSpec>, tunnel_idle: Duration) -> Edge {
    start_edge_on(specs, tunnel_idle, None).await
}

/// An edge on TLS with one self-signed certificate for every route's
/// host; also returns the certificate (DER) for the client to trust.
async fn start_tls_edge(specs: Vec<RouteSpec>) -> (Edge, Vec<u8>) {
    let hosts = specs.iter().map(|s| s.host.to_string()).collect();
    let (resolver, ca_der) = support::self_signed(hosts);
    let edge = start_edge_on(specs, Duration::from_secs(3600), Some(resolver)).await;
    (edge, ca_der)
}

/// An h2 client of `edge` over TLS, trusting `ca_der`.
async fn h2_client(edge: &Edge, ca_der: &[u8]) -> h2::client::SendRequest<Bytes> {
    h2_client_for(edge, &[ca_der], "slow.test").await
}

/// A TLS connection to `edge` for the name `sni`, trusting the `ca_der`
/// certificates, offering `alpn`.
async fn tls_connect(
    edge: &Edge,
    ca_der: &[&[u8]],
    sni: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ca_der {
        roots.add(der.to_vec().into()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// An h2 client of `edge` over TLS for the name `sni`, trusting `ca_der`.
async fn h2_client_for(edge: &Edge, ca_der: &[&[u8]], sni: &str) -> h2::client::SendRequest<Bytes> {
    let tls = tls_connect(edge, ca_der, sni, b"h2").await;
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    sender.ready().await.unwrap()
}

/// Sends `req` over `h2`; returns the status and the body.
async fn h2_send(h2: &mut h2::client::SendRequest<Bytes>, req: http::Request<()>) -> (u16, String) {
    let (answer, _) = h2
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(req, true)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("the stream is answered")
        .unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn start_edge_on(
    specs: Vec<RouteSpec>,
    tunnel_idle: Duration,
    certificates: Option<Arc<berth_acme::Resolver>>,
) -> Edge {
    let tls = certificates.clone().map(|c| berth_proxy::tls_config(c));
    let router = Arc::new(Router::new(RouteTable::build(specs)));
    let mut registry = Registry::default();
    let metrics = ProxyMetrics::register(&mut registry);
    let proxy = EdgeProxy::new(
        router.clone(),
        metrics,
        EdgeOptions {
            tls: tls.is_some(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
            https_port: 443,
            h3_port: None,
            tunnel_idle,
            certificates: certificates.map(|c| c as Arc<dyn HostCertificates>),
        },
        Arc::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(berth_proxy::serve(listener, proxy, tls, watch));
    Edge {
        addr,
        router,
        registry,
        _stop: stop,
    }
}

fn route(host: &str, prefix: &str, strip: bool, backend: &Arc<Backend>) -> RouteSpec {
    RouteSpec {
        host: host.into(),
        path_prefix: prefix.into(),
        strip_prefix: strip,
        redirect_https: false,
        hsts: false,
        // The edge's own tests: a route that asks for HTTPS has its
        // certificate (the table's decision is unit-tested in table.rs).
        certified: true,
        backend: backend.clone(),
        rules: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn get(edge: &Edge, host: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://{}{path}", edge.addr))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwards_with_forwarding_headers_and_request_id() {
    let up = echo_upstream("a").await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let resp = client()
        .get(format!("http://{}/hello?x=1", edge.addr))
        .header("host", "APP.test:8080")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(request_id.len(), 32);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/hello?x=1");
    let h = &body["headers"];
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "client-sent XFF must be replaced"
    );
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "APP.test:8080");
    assert_eq!(h["x-request-id"], request_id.as_str());
    assert_eq!(h["host"], "APP.test:8080");
    assert!(
        h.get("forwarded").is_none() && h.get("x-real-ip").is_none(),
        "{h}"
    );

    // A sane client request id is kept end to end.
    let resp = client()
        .get(format!("http://{}/", edge.addr))
        .header("host", "app.test")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");

    // Connection-specific headers stop at the edge, with the ones the
    // client's `Connection` names; end-to-end ones go on.
    let resp = client()
        .get(format!("http://{}/", edge.addr))
        .header("host", "app.test")
        .header("connection", "keep-alive, X-Secret")
        .header("x-secret", "hop")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "trailers")
        .header("x-end-to-end", "kept")
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let h = &body["headers"];
    for gone in ["x-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded: {h}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(h["accept"], "text/plain");
    assert_eq!(h["host"], "app.test");
}

/// Client-address headers a replica must never see from a client: spelled
/// with underscores (which CGI-style apps read as the real ones), or a
/// CDN's or load balancer's own.
const SPOOFED: [&str; 8] = [
    "x_real_ip",
    "x_forwarded_for",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x_anything",
];

fn assert_no_spoofed_header(h: &serde_json::Value) {
    for name in SPOOFED {
        assert!(h.get(name).is_none(), "{name} reached the replica: {h}");
    }
    assert_eq!(h["x-kept"], "yes", "{h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
}

#[tokio::test]
async fn underscored_and_vendor_client_ip_headers_never_reach_a_replica() {
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let specs = vec![route("app.test", "/", false, &backend)];

    // HTTP/1.1, the edge's own codec.
    let edge = start_edge(specs.clone()).await;
    let mut req = client()
        .get(format!("http://{}/", edge.addr))
        .header("host", "app.test")
        .header("x-kept", "yes");
    for name in SPOOFED {
        req = req.header(name, "6.6.6.6");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_no_spoofed_header(&body["headers"]);

    // h2 over TLS.
    let (edge, ca) = start_tls_edge(specs).await;
    let mut h2 = h2_client_for(&edge, &[&ca], "app.test").await;
    let mut req = http::Request::get("https://app.test/").header("x-kept", "yes");
    for name in SPOOFED {
        req = req.header(name, "6.6.6.6");
    }
    let (status, body) = h2_send(&mut h2, req.body(()).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_no_spoofed_header(&body["headers"]);
}

/// Sends `raw` on a TLS connection for `sni` and reads the answer until
/// the edge closes.
async fn tls_exchange(edge: &Edge, ca_der: &[&[u8]], sni: &str, raw: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(edge, ca_der, sni, b"http/1.1").await;
    tls.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("the edge answers and closes");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_host_another_certificate_serves_is_misdirected_on_the_connection() {
    let a = Arc::new(Backend::new("a", vec![echo_upstream("a").await]));
    let b = Arc::new(Backend::new("b", vec![echo_upstream("b").await]));
    let (resolver, ders) = support::self_signed_each(&["a.test", "b.test"]);
    let specs = vec![
        route("a.test", "/", false, &a),
        route("b.test", "/", false, &b),
    ];
    let edge = start_edge_on(specs, Duration::from_secs(3600), Some(resolver)).await;
    let cas: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();

    // HTTP/1.1 over TLS: the connection was made for a.test.
    for (host, status) in [
        ("a.test", "200"),
        ("A.test:443", "200"),
        ("b.test", "421"),
        ("b.test:443", "421"),
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = tls_exchange(&edge, &cas, "a.test", &raw).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{host}: {answer}"
        );
        if status == "421" {
            assert!(answer.contains("Misdirected Request"), "{answer}");
            assert!(!answer.contains("\"name\""), "a replica answered: {answer}");
        }
    }
    // Its own connection, b.test is served.
    let raw = "GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let answer = tls_exchange(&edge, &cas, "b.test", raw).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"name\":\"b\""), "{answer}");

    // h2: one connection for a.test, streams for both names.
    let mut h2 = h2_client_for(&edge, &cas, "a.test").await;
    let get = |host: &str| {
        http::Request::get(format!("https://{host}/"))
            .body(())
            .unwrap()
    };
    let (status, body) = h2_send(&mut h2, get("b.test")).await;
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("Misdirected Request"), "{body}");
    let (status, body) = h2_send(&mut h2, get("a.test")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"a\""), "{body}");
}

#[tokio::test]
async fn longest_prefix_wins_and_prefixes_can_be_stripped() {
    let root = Arc::new(Backend::new("root", vec![echo_upstream("root").await]));
    let api = Arc::new(Backend::new("api", vec![echo_upstream("api").await]));
    let edge = start_edge(vec![
        route("site.test", "/", false, &root),
        route("site.test", "/api", true, &api),
    ])
    .await;
    let body: serde_json::Value = get(&edge, "site.test", "/api/users?q=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["name"], "api");
    assert_eq!(body["path"], "/users?q=1");
    let body: serde_json::Value = get(&edge, "site.test", "/api").await.json().await.unwrap();
    assert_eq!(body["path"], "/");
    let body: serde_json::Value = get(&edge, "site.test", "/apix").await.json().await.unwrap();
    assert_eq!(body["name"], "root");
}

/// The JSON body of a raw HTTP/1.1 answer from the echo upstream.
fn echoed(answer: &str) -> serde_json::Value {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{answer}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn dot_segments_are_resolved_before_routing_and_prefix_stripping() {
    let root = Arc::new(Backend::new("root", vec![echo_upstream("root").await]));
    let api = Arc::new(Backend::new("api", vec![echo_upstream("api").await]));
    let specs = vec![
        route("site.test", "/", false, &root),
        route("site.test", "/api", true, &api),
    ];
    // (path as sent, the app it reaches, the path the app sees)
    let cases = [
        ("/api/../x", "root", "/x"),
        ("/api/%2e%2E/x?q=/../y", "root", "/x?q=/../y"),
        ("/api/v1/../users", "api", "/users"),
        ("/../../api/./y", "api", "/y"),
    ];
    // HTTP/1.1 written by hand: HTTP clients resolve dot segments themselves.
    let edge = start_edge(specs.clone()).await;
    for (sent, app, seen) in cases {
        let raw = format!("GET {sent} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
        let body = echoed(&raw_exchange(&edge, raw.as_bytes()).await);
        assert_eq!(
            (body["name"].as_str(), body["path"].as_str()),
            (Some(app), Some(seen)),
            "{sent}"
        );
    }
    // h2 carries the path as sent, too.
    let (edge, ca) = start_tls_edge(specs).await;
    let mut h2 = h2_client_for(&edge, &[&ca], "site.test").await;
    for (sent, app, seen) in cases {
        let req = http::Request::get(format!("https://site.test{sent}"))
            .body(())
            .unwrap();
        let (status, body) = h2_send(&mut h2, req).await;
        assert_eq!(status, 200, "{sent}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (body["name"].as_str(), body["path"].as_str()),
            (Some(app), Some(seen)),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn unknown_hosts_get_404_and_apps_without_replicas_503() {
    let empty = Arc::new(Backend::new("empty", vec![]));
    let edge = start_edge(vec![route("empty.test", "/", false, &empty)]).await;
    let resp = get(&edge, "nobody.test", "/").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("No app is configured"));
    let resp = get(&edge, "empty.test", "/").await;
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("no running replica"));
}

#[tokio::test]
async fn stopped_apps_get_a_503_that_says_they_are_stopped() {
    let stopped = Arc::new(Backend::stopped("stopped"));
    let edge = start_edge(vec![route("stopped.test", "/", false, &stopped)]).await;
    let resp = get(&edge, "stopped.test", "/").await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(body.contains("stopped by its owner"), "{body}");
    assert!(!body.contains("Try again shortly"), "{body}");
}

#[tokio::test]
async fn connect_failures_retry_another_replica_and_all_dead_is_502() {
    let live = echo_upstream("live").await;
    let backend = Arc::new(Backend::new("app", vec![dead_addr(), live, dead_addr()]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    for _ in 0..9 {
        let resp = get(&edge, "app.test", "/").await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["name"], "live");
    }
    let dead = Arc::new(Backend::new("dead", vec![dead_addr(), dead_addr()]));
    edge.router.swap(RouteTable::build(vec![route(
        "app.test", "/", false, &dead,
    )]));
    let resp = get(&edge, "app.test", "/").await;
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("could not be reached"));
}

#[tokio::test]
async fn round_robin_spreads_requests() {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let backend = Arc::new(Backend::new("app", vec![a, b]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let mut names = std::collections::HashMap::new();
    for _ in 0..10 {
        let body: serde_json::Value = get(&edge, "app.test", "/").await.json().await.unwrap();
        *names
            .entry(body["name"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(names.get("a"), Some(&5));
    assert_eq!(names.get("b"), Some(&5));
}

#[tokio::test]
async fn large_bodies_stream_through() {
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    // 64 MiB sent as a chunked stream: the upstream counts what arrives.
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    let stream =
        futures_util::stream::iter((0..64).map(move |_| Ok::<_, Infallible>(chunk.clone())));
    let resp = client()
        .post(format!("http://{}/upload", edge.addr))
        .header("host", "app.test")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["body_len"], 64 << 20);
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `ws://ws.test/socket` through the edge.
async fn ws_connect(
    edge: &Edge,
) -> (
    WebSocket,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/socket", edge.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("host", "ws.test".parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap()
}

/// Waits (5 s at most) for the edge to end `ws`, then for its replica's
/// in-flight count to drop to zero.
async fn assert_ended_and_released(ws: &mut WebSocket, state: &UpstreamState, why: &str) {
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap_or_else(|_| panic!("{why}"));
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while state.in_flight() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replica's count drops to zero");
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let backend = Arc::new(Backend::new("ws", vec![ws_upstream().await]));
    let edge = start_edge(vec![route("ws.test", "/", false, &backend)]).await;
    let (mut ws, resp) = ws_connect(&edge).await;
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hi {i}"))).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("echo:hi {i}"));
    }
}

#[tokio::test]
async fn closing_a_replicas_tunnels_ends_its_websockets_and_nothing_else() {
    let upstream = Upstream::new(ws_upstream().await);
    let state = upstream.state().clone();
    let backend = Arc::new(Backend::with_upstreams("ws", vec![upstream]));
    let edge = start_edge(vec![route("ws.test", "/", false, &backend)]).await;
    let open = || async { ws_connect(&edge).await.0 };
    let mut ws = open().await;
    ws.send(Message::text("before")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:before");
    assert_eq!(state.in_flight(), 1, "the tunnel counts on its replica");
    // The drain deadline: the edge cuts the tunnel, client side included.
    assert_eq!(state.close_tunnels(), 1);
    assert_ended_and_released(&mut ws, &state, "the websocket ends promptly").await;
    // Plain requests on the edge are unaffected.
    let mut again = open().await;
    again.send(Message::text("after")).await.unwrap();
    let reply = again.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:after");
}

#[tokio::test]
async fn idle_websockets_are_closed_and_busy_ones_kept() {
    let upstream = Upstream::new(ws_upstream().await);
    let state = upstream.state().clone();
    let backend = Arc::new(Backend::with_upstreams("ws", vec![upstream]));
    let idle = Duration::from_millis(600);
    let edge = start_edge_with(vec![route("ws.test", "/", false, &backend)], idle).await;
    let (mut ws, _) = ws_connect(&edge).await;
    // Traffic more often than the deadline keeps it, well past it.
    for i in 0..6 {
        tokio::time::sleep(idle / 3).await;
        ws.send(Message::text(format!("{i}"))).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a busy tunnel stays open")
            .unwrap()
            .unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("echo:{i}"));
    }
    // Silence: the edge closes both sides.
    assert_ended_and_released(&mut ws, &state, "an idle tunnel is closed by the edge").await;
}

/// A replica that reads one request head and never answers. Tells when it
/// has read the head, and then how many more bytes it read before its
/// connection closed.
struct SilentUpstream {
    addr: SocketAddr,
    head_read: tokio::sync::oneshot::Receiver<()>,
    closed: tokio::sync::oneshot::Receiver<usize>,
}

async fn silent_upstream() -> SilentUpstream {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (head_tx, head_read) = tokio::sync::oneshot::channel();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = head_tx.send(());
        let n = conn.read(&mut buf).await.unwrap_or(0);
        let _ = closed_tx.send(n);
    });
    SilentUpstream {
        addr,
        head_read,
        closed,
    }
}

impl SilentUpstream {
    /// Waits until the replica read the request head.
    async fn head_read(&mut self) {
        tokio::time::timeout(Duration::from_secs(5), &mut self.head_read)
            .await
            .expect("the request reaches the replica")
            .unwrap();
    }

    /// Asserts the replica's connection closes within 5 s with nothing
    /// more sent on it.
    async fn assert_closed(self, why: &str) {
        let n = tokio::time::timeout(Duration::from_secs(5), self.closed)
            .await
            .expect(why)
            .unwrap();
        assert_eq!(n, 0, "nothing more was sent to the replica");
    }
}

#[tokio::test]
async fn a_client_gone_before_the_answer_frees_the_replica() {
    use tokio::io::AsyncWriteExt;
    let mut replica = silent_upstream().await;
    let backend = Arc::new(Backend::new("slow", vec![replica.addr]));
    let edge = start_edge(vec![route("slow.test", "/", false, &backend)]).await;
    let mut client = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    client
        .write_all(b"GET /long-poll HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .unwrap();
    replica.head_read().await;
    drop(client);
    replica
        .assert_closed("the edge closes the replica's connection when the client leaves")
        .await;
}

#[tokio::test]
async fn an_h2_stream_reset_before_the_answer_frees_the_replica() {
    let mut replica = silent_upstream().await;
    let slow = Arc::new(Backend::new("slow", vec![replica.addr]));
    let echo = Arc::new(Backend::new("echo", vec![echo_upstream("echo").await]));
    let (edge, ca) = start_tls_edge(vec![
        route("slow.test", "/", false, &slow),
        route("echo.test", "/", false, &echo),
    ])
    .await;
    let mut h2 = h2_client(&edge, &ca).await;
    let req = http::Request::get("https://slow.test/long-poll")
        .body(())
        .unwrap();
    let (waiting, stream) = h2.send_request(req, true).unwrap();
    replica.head_read().await;
    // Dropping both halves of the stream resets it (RST_STREAM CANCEL).
    drop((waiting, stream));
    replica
        .assert_closed("the edge closes the replica's connection when the stream is reset")
        .await;
    // The client's connection and its other streams go on.
    let req = http::Request::get("https://echo.test/next")
        .body(())
        .unwrap();
    let (answer, _) = h2.ready().await.unwrap().send_request(req, true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("the next stream is answered")
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// An upstream that answers with the request's path; paths under `/slow`
/// after `delay`.
async fn slow_upstream(delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    if path.starts_with("/slow") {
                        tokio::time::sleep(delay).await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(path))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn requests_pipelined_while_an_answer_is_awaited_are_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let slow = Arc::new(Backend::new(
        "slow",
        vec![slow_upstream(Duration::from_millis(400)).await],
    ));
    let edge = start_edge(vec![route("slow.test", "/", false, &slow)]).await;
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .unwrap();
    // The edge waits for the replica while these arrive: 40 requests,
    // over 64 KiB with their padding, so the read-ahead fills up too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pad = "x".repeat(2000);
    let mut more = String::new();
    for i in 0..40 {
        let close = if i == 39 { "Connection: close\r\n" } else { "" };
        more.push_str(&format!(
            "GET /n{i} HTTP/1.1\r\nHost: slow.test\r\nX-Pad: {pad}\r\n{close}\r\n"
        ));
    }
    conn.write_all(more.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut answer))
        .await
        .expect("all answered, then closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 41, "{answer}");
    let first = answer.find("/slow").unwrap();
    let last = answer.find("/n39").unwrap();
    assert!(first < answer.find("/n0").unwrap() && last > answer.find("/n38").unwrap());
}

#[tokio::test]
async fn route_swaps_apply_to_the_next_request() {
    let a = Arc::new(Backend::new("a", vec![echo_upstream("a").await]));
    let b = Arc::new(Backend::new("b", vec![echo_upstream("b").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &a)]).await;
    let body: serde_json::Value = get(&edge, "app.test", "/").await.json().await.unwrap();
    assert_eq!(body["name"], "a");
    edge.router
        .swap(RouteTable::build(vec![route("app.test", "/", false, &b)]));
    let body: serde_json::Value = get(&edge, "app.test", "/").await.json().await.unwrap();
    assert_eq!(body["name"], "b");
}

#[tokio::test]
async fn draining_replicas_get_no_new_requests() {
    use berth_proxy::{Upstream, UpstreamState};
    let leaving = UpstreamState::new();
    let backend = Arc::new(Backend::with_upstreams(
        "app",
        vec![
            Upstream::with_state(echo_upstream("old").await, leaving.clone()),
            Upstream::new(echo_upstream("new").await),
        ],
    ));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    leaving.drain();
    for _ in 0..6 {
        let body: serde_json::Value = get(&edge, "app.test", "/").await.json().await.unwrap();
        assert_eq!(body["name"], "new");
    }
    assert_eq!(leaving.in_flight(), 0);

    // Only draining replicas left: 503, the app has none to offer.
    let gone = UpstreamState::new();
    gone.drain();
    let only = Arc::new(Backend::with_upstreams(
        "app",
        vec![Upstream::with_state(echo_upstream("x").await, gone)],
    ));
    edge.router.swap(RouteTable::build(vec![route(
        "app.test", "/", false, &only,
    )]));
    assert_eq!(get(&edge, "app.test", "/").await.status(), 503);
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_edge_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = echo_upstream("a").await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost app.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        conn.write_all(raw).await.unwrap();
        let mut answer = Vec::new();
        let read = conn.read_to_end(&mut answer);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the edge answers or closes")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} got {answer}");
    }
    assert_eq!(get(&edge, "app.test", "/").await.status(), 200);
}

/// A hand-written HTTP/1.1 upstream: reads each request head (and as much
/// body as `Content-Length` says), counts it, and writes `answer`; with
/// `close`, it then closes the connection without saying so.
async fn raw_upstream(answer: &'static [u8], close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Head, then as much body as Content-Length says.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..head_end + length);
                    counter.fetch_add(1, Ordering::SeqCst);
                    if conn.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, requests)
}

/// Writes `raw` to the edge and reads until it closes the connection.
async fn raw_exchange(edge: &Edge, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    conn.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
        .await
        .expect("the edge answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let raw = "GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n\
               POST /2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc\
               GET /3 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(&edge, raw.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{answer}");
    let at = |needle: &str| {
        answer
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {answer}"))
    };
    assert!(at("\"path\":\"/1\"") < at("\"path\":\"/2\""));
    assert!(at("\"path\":\"/2\"") < at("\"path\":\"/3\""));
    assert!(answer.contains("\"body_len\":3"));
}

#[tokio::test]
async fn bytes_sent_after_a_closing_request_are_drained_not_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    // The edge closes after the first answer while what follows is still
    // unread in its socket. Closing outright would reset the connection,
    // and on a real network a reset can overtake the answer: the edge
    // drains instead (a lingering close), so the client may go on writing.
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let mut raw = b"GET /only HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 64 * 1024));
    conn.write_all(&raw).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
        .await
        .expect("the edge answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"path\":\"/only\""), "{answer}");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.write_all(&[b'y'; 16 * 1024])
            .await
            .expect("no reset while the edge lingers");
    }
}

#[tokio::test]
async fn chunked_responses_pass_through_and_old_clients_get_them_unwrapped() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let (up, requests) = raw_upstream(chunked, false).await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    // An HTTP/1.1 client gets the chunks as the replica sent them, and
    // keeps its connection: two requests, then close.
    let raw = "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n\
               GET /b HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(&edge, raw.as_bytes()).await;
    assert_eq!(
        answer.matches("transfer-encoding: chunked").count(),
        2,
        "{answer}"
    );
    assert_eq!(
        answer
            .matches("6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
            .count(),
        2
    );
    // An HTTP/1.0 client cannot read chunks: it gets the data, then the close.
    let answer = raw_exchange(&edge, b"GET /c HTTP/1.0\r\nHost: app.test\r\n\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(!head.to_lowercase().contains("chunked") && head.contains("connection: close"));
    assert_eq!(body, "hello world");
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn smuggling_shapes_never_reach_a_replica() {
    let (up, requests) =
        raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false).await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    for (raw, status) in [
        // CL.TE and TE.CL desync attempts.
        (&b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"[..], "400"),
        (b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", "400"),
        (b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n", "400"),
        (b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1, 2\r\n\r\n", "400"),
    ] {
        let answer = raw_exchange(&edge, raw).await;
        let status_line = format!("HTTP/1.1 {status} ");
        assert!(answer.starts_with(&status_line), "{:?} got {answer}", String::from_utf8_lossy(raw));
        assert!(answer.contains("connection: close"));
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    // A chunked body with a bare LF in its framing: its head went out, but
    // the body is cut off there and what follows is never read as a request.
    let raw = b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let answer = raw_exchange(&edge, raw).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(requests.load(Ordering::SeqCst) <= 1);
    assert_eq!(get(&edge, "app.test", "/").await.status(), 200);
}

#[tokio::test]
async fn early_answers_to_uploads_reach_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The replica refuses the upload after its head, without reading it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n";
                let _ = conn.write_all(answer).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
        }
    });
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let head = "POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 104857600\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    // The client keeps uploading; the answer comes anyway.
    let upload = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        while write.write_all(&chunk).await.is_ok() {}
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer))
        .await
        .expect("the 413 arrives while the upload goes on")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large"),
        "{answer}"
    );
    assert!(answer.contains("connection: close") && answer.ends_with("too big\n"));
    upload.abort();
}

#[tokio::test]
async fn streamed_uploads_are_rechunked_and_keep_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    // A chunked upload in pieces, with an extension and a trailer the
    // replica never sees, then a second request on the same connection.
    let head = "POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(b"5;name=x\r\nhello\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(b"6\r\n world\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        .await
        .unwrap();
    let next = "GET /next HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    conn.write_all(next.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert!(answer.contains("\"body_len\":11") && answer.contains("\"path\":\"/next\""));
    assert!(!answer.contains("6.6.6.6"));
}

#[tokio::test]
async fn replicas_answering_before_the_body_still_get_all_of_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A full-duplex replica: its response head goes out first, then it
    // reads the whole body and reports its length as the response body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let n = conn.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        conn.write_all(head).await.unwrap();
        let mut got = buf.len() - head_end;
        while got < 300_000 {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the body was cut at {got}");
            got += n;
        }
        let report = format!("{got}");
        let tail = format!("{:x}\r\n{report}\r\n0\r\n\r\n", report.len());
        conn.write_all(tail.as_bytes()).await.unwrap();
    });
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let head = "POST /duplex HTTP/1.1\r\nHost: app.test\r\nContent-Length: 300000\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    // The response head arrives before any of the body was sent.
    let mut first = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut first))
        .await
        .expect("the early head is relayed")
        .unwrap();
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    conn.write_all(&vec![b'x'; 300_000]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .expect("the rest of the response arrives and the edge closes")
        .unwrap();
    let all = first + &String::from_utf8_lossy(&rest);
    assert!(all.contains("\r\n300000\r\n0\r\n\r\n"), "{all}");
}

#[tokio::test]
async fn expect_continue_is_answered_by_the_edge() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Arc::new(Backend::new("app", vec![echo_upstream("a").await]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let mut conn = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let head = "PUT /f HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut first))
        .await
        .expect("100 Continue before the body")
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.write_all(b"hello").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"body_len\":5") && !answer.contains("\"expect\""));
}

#[tokio::test]
async fn head_requests_get_the_headers_and_keep_the_connection() {
    let up = echo_upstream("a").await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let client = client();
    for _ in 0..3 {
        let resp = client
            .head(format!("http://{}/", edge.addr))
            .header("host", "app.test")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("content-length"));
        assert_eq!(resp.bytes().await.unwrap().len(), 0);
    }
    // The same client (and kept connection) still gets a GET with its body.
    let resp = client
        .get(format!("http://{}/after", edge.addr))
        .header("host", "app.test")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/after");
}

#[tokio::test]
async fn replicas_closing_pooled_connections_cost_no_request() {
    let (up, _) = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let backend = Arc::new(Backend::new("app", vec![up]));
    let edge = start_edge(vec![route("app.test", "/", false, &backend)]).await;
    let client = client();
    for i in 0..6 {
        // The replica's close has arrived by the next request: a GET finds
        // the connection dead and goes again on a new one, a POST is never
        // sent on it.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let req = if i % 2 == 0 {
            client.get(format!("http://{}/", edge.addr))
        } else {
            client
                .post(format!("http://{}/", edge.addr))
                .body("payload")
        };
        let resp = req.header("host", "app.test").send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
}

/// A long stylesheet: over the gzip threshold.
fn stylesheet() -> String {
    ".card { display: flex; padding: 1rem; color: #333; }\n".repeat(50)
}

/// A site in `<tmp>/site` with a secret beside it in `<tmp>/secret.txt`.
fn site_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(site.join("app.css"), stylesheet()).unwrap();
    std::fs::write(site.join("assets/index-BQx8f2aZ.js"), "export default 1;\n").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "top-secret-outside").unwrap();
    tmp
}

/// A raw HTTP/1.1 request, so the path goes out exactly as written.
async fn raw_get(edge: &Edge, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn header<'r>(resp: &'r reqwest::Response, name: &str) -> &'r str {
    resp.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn static_sites_are_served_by_the_edge() {
    let tmp = site_dir();
    let dir = tmp.path().join("site");
    let plain = Arc::new(Site::load(&dir, SiteOptions::default()).unwrap());
    let spa = SiteOptions {
        spa: true,
        ..SiteOptions::default()
    };
    let spa = Arc::new(Site::load(&dir, spa).unwrap());
    assert_eq!(plain.files(), 3);
    let site = Arc::new(Backend::site("site", plain));
    let spa = Arc::new(Backend::site("spa", spa));
    assert!(site.static_site().is_some() && site.upstreams().is_empty());
    let edge = start_edge(vec![
        route("static.test", "/", false, &site),
        route("spa.test", "/", false, &spa),
        route("docs.test", "/docs", true, &site),
        RouteSpec {
            redirect_https: true,
            ..route("secure.test", "/", false, &site)
        },
    ])
    .await;

    // The index, with the edge's own headers.
    let resp = get(&edge, "static.test", "/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(&resp, "accept-ranges"), "none");
    assert_eq!(header(&resp, "x-request-id").len(), 32);
    assert_eq!(resp.text().await.unwrap(), "<h1>home</h1>");

    // Types, and caching by fingerprint.
    let css = get(&edge, "static.test", "/app.css?v=2").await;
    assert_eq!(css.status(), 200);
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    assert_eq!(header(&css, "cache-control"), "public, max-age=3600");
    assert_eq!(header(&css, "vary"), "accept-encoding");
    let etag = header(&css, "etag").to_string();
    assert_eq!(css.text().await.unwrap(), stylesheet());
    let js = get(&edge, "static.test", "/assets/index-BQx8f2aZ.js").await;
    assert_eq!(
        header(&js, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&js, "cache-control"),
        "public, max-age=31536000, immutable"
    );

    // Revalidation.
    let resp = client()
        .get(format!("http://{}/app.css", edge.addr))
        .header("host", "static.test")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(header(&resp, "etag"), etag);
    assert!(resp.bytes().await.unwrap().is_empty());

    // Gzip when asked, decoded to the same bytes.
    let resp = client()
        .get(format!("http://{}/app.css", edge.addr))
        .header("host", "static.test")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-encoding"), "gzip");
    let length: usize = header(&resp, "content-length").parse().unwrap();
    let gz = resp.bytes().await.unwrap();
    assert_eq!(gz.len(), length);
    assert!(gz.len() < stylesheet().len());
    let mut decoded = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded)
        .unwrap();
    assert_eq!(decoded, stylesheet());
    let resp = client()
        .get(format!("http://{}/app.css", edge.addr))
        .header("host", "static.test")
        .header("accept-encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.text().await.unwrap(), stylesheet());

    // HEAD: the length of GET, no body.
    let resp = client()
        .head(format!("http://{}/app.css", edge.addr))
        .header("host", "static.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-length"),
        stylesheet().len().to_string()
    );
    assert!(resp.bytes().await.unwrap().is_empty());

    // Other methods.
    let resp = client()
        .post(format!("http://{}/", edge.addr))
        .header("host", "static.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(header(&resp, "allow"), "GET, HEAD");

    // SPA fallback only where asked for.
    let resp = get(&edge, "spa.test", "/some/route").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "<h1>home</h1>");
    assert_eq!(get(&edge, "static.test", "/some/route").await.status(), 404);
    assert_eq!(get(&edge, "spa.test", "/missing.js").await.status(), 404);

    // A stripped prefix.
    let resp = get(&edge, "docs.test", "/docs/app.css").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), stylesheet());
    assert_eq!(get(&edge, "docs.test", "/docs").await.status(), 200);

    // The policy's HTTPS redirect still comes first.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}/app.css?x=1", edge.addr))
        .header("host", "secure.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(header(&resp, "location"), "https://secure.test/app.css?x=1");

    // Nothing outside the site, however the path is spelled.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/../../secret.txt",
        "/..\\secret.txt",
        "/%2e%2e%5csecret.txt",
    ] {
        for host in ["static.test", "spa.test", "docs.test"] {
            let path = if host == "docs.test" {
                format!("/docs{path}")
            } else {
                path.to_string()
            };
            let response = raw_get(&edge, host, &path).await;
            let status_line = response.lines().next().unwrap_or("");
            assert!(
                status_line.contains(" 400 ") || status_line.contains(" 404 "),
                "{host}{path}: {status_line}"
            );
            assert!(!response.contains("top-secret"), "{host}{path}: {response}");
        }
    }

    // Counted like proxied requests, by app and status class.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &edge.registry).unwrap();
    for series in [
        r#"proxy_requests_total{app="site",class="2xx"}"#,
        // The 304 and the 308.
        r#"proxy_requests_total{app="site",class="3xx"} 2"#,
        r#"proxy_requests_total{app="site",class="4xx"}"#,
        r#"proxy_requests_total{app="spa",class="2xx"} 1"#,
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }
}
