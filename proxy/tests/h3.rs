//! HTTP/3 end to end, in process: the edge's QUIC listener with a
//! certificate from the shared store, a quinn + h3 client, and a hyper
//! upstream that streams request bodies back as they arrive; a static
//! site answered by the edge itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{
    Backend, H3Options, ProxyMetrics, RouteSpec, RouteTable, Router, Site, SiteOptions,
};
use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

mod support;

/// An upstream that answers every request with its own body, streamed
/// back as it arrives, and `x-seen-*` headers telling what it received.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let seen = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let mut resp = Response::builder()
                        .header("x-seen-path", req.uri().to_string())
                        .header("x-seen-host", seen("host"))
                        .header("x-seen-proto", seen("x-forwarded-proto"))
                        .header("x-seen-for", seen("x-forwarded-for"))
                        .header("x-seen-real-ip", seen("x-real-ip"))
                        .header("x-seen-names", seen_names(req.headers()));
                    if let Some(len) = req.headers().get("content-length") {
                        resp = resp.header("content-length", len.clone());
                    }
                    Ok::<_, Infallible>(resp.body(req.into_body()).unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The names of `headers`, comma-separated.
fn seen_names(headers: &http::HeaderMap) -> String {
    let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
    names.join(",")
}

struct Edge {
    addr: SocketAddr,
    /// The certificates the edge serves, for clients to trust.
    ca_der: Vec<Vec<u8>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start_edge(upstreams: Vec<SocketAddr>) -> Edge {
    start_edge_with(Backend::new("app", upstreams)).await
}

/// An edge whose one route, `app.test/api` (prefix stripped, HTTPS only,
/// HSTS), goes to `backend`.
async fn start_edge_with(backend: Backend) -> Edge {
    let (resolver, ca_der) = support::self_signed(vec!["app.test".to_string()]);
    start_edge_served(backend, resolver, vec![ca_der]).await
}

/// [`start_edge_with`] serving the certificates of `resolver`.
async fn start_edge_served(
    backend: Backend,
    resolver: Arc<berth_acme::Resolver>,
    ca_der: Vec<Vec<u8>>,
) -> Edge {
    let router = Arc::new(Router::new(RouteTable::build([RouteSpec {
        host: "app.test".into(),
        path_prefix: "/api".into(),
        strip_prefix: true,
        redirect_https: true,
        hsts: true,
        certified: true,
        backend: Arc::new(backend),
        rules: None,
    }])));
    let mut registry = Registry::default();
    let metrics = ProxyMetrics::register(&mut registry);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let (stop, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(berth_proxy::serve_h3(
        socket,
        resolver,
        router,
        metrics,
        H3Options {
            connect_timeout: Duration::from_secs(1),
            read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
        },
        watch,
    ));
    Edge {
        addr,
        ca_der,
        _stop: stop,
    }
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

async fn client(edge: &Edge) -> (Sender, quinn::Endpoint) {
    let mut roots = rustls::RootCertStore::empty();
    for der in &edge.ca_der {
        roots.add(der.clone().into()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(edge.addr, "app.test")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    (sender, endpoint)
}

/// A GET of `https://app.test<path>`; returns status and body.
async fn get(sender: &mut Sender, path: &str) -> (u16, String) {
    let req = http::Request::get(format!("https://app.test{path}"))
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let status = stream.recv_response().await.unwrap().status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(chunk.chunk());
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn requests_reach_the_replica_with_the_tcp_paths_policy() {
    let edge = start_edge(vec![echo_upstream().await]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    let req = http::Request::get("https://app.test/api/items?x=1")
        .header("x-real-ip", "6.6.6.6")
        .header("x-request-id", "abc-123")
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(
        h["x-seen-path"], "/items?x=1",
        "prefix stripped, query kept"
    );
    assert_eq!(h["x-seen-host"], "app.test");
    assert_eq!(h["x-seen-proto"], "https");
    assert_eq!(h["x-seen-for"], "127.0.0.1");
    assert_eq!(
        h["x-seen-real-ip"], "",
        "client forwarding headers are dropped"
    );
    assert_eq!(h["x-request-id"], "abc-123");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");

    // Unknown paths get the same 404 page as over TCP.
    assert_eq!(get(&mut sender, "/other").await.0, 404);
}

#[tokio::test]
async fn underscored_and_vendor_client_ip_headers_never_reach_a_replica() {
    let edge = start_edge(vec![echo_upstream().await]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    let spoofed = [
        "x_real_ip",
        "x_forwarded_for",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x_anything",
    ];
    let mut req = http::Request::get("https://app.test/api/x").header("x-kept", "yes");
    for name in spoofed {
        req = req.header(name, "6.6.6.6");
    }
    let mut stream = sender.send_request(req.body(()).unwrap()).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    assert_eq!(resp.status(), 200);
    let names = resp.headers()["x-seen-names"].to_str().unwrap();
    let names: Vec<&str> = names.split(',').collect();
    for name in spoofed {
        assert!(
            !names.contains(&name),
            "{name} reached the replica: {names:?}"
        );
    }
    assert!(names.contains(&"x-kept"), "{names:?}");
    assert_eq!(resp.headers()["x-seen-for"], "127.0.0.1");
}

/// A GET of `https://app.test<path>`; returns the status and the path the
/// replica saw, if one did.
async fn seen_path(sender: &mut Sender, path: &str) -> (u16, Option<String>) {
    let req = http::Request::get(format!("https://app.test{path}"))
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    let seen = resp.headers().get("x-seen-path");
    let seen = seen.map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), seen)
}

#[tokio::test]
async fn dot_segments_are_resolved_before_routing_and_prefix_stripping() {
    let edge = start_edge(vec![echo_upstream().await]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    assert_eq!(
        seen_path(&mut sender, "/api/v1/../items?x=/../y").await,
        (200, Some("/items?x=/../y".to_string()))
    );
    assert_eq!(
        seen_path(&mut sender, "/api/%2e/%2E%2e/api/z").await,
        (200, Some("/z".to_string()))
    );
    // Out of the route's prefix: `/x` has no route, so no replica sees it.
    assert_eq!(seen_path(&mut sender, "/api/../x").await, (404, None));
}

#[tokio::test]
async fn a_host_another_certificate_serves_is_misdirected_on_the_connection() {
    let (resolver, ders) = support::self_signed_each(&["app.test", "other.test"]);
    let backend = Backend::new("app", vec![echo_upstream().await]);
    let edge = start_edge_served(backend, resolver, ders).await;
    // The connection is made for app.test.
    let (mut sender, _endpoint) = client(&edge).await;
    let mut status_of = async |uri: &str| {
        let req = http::Request::get(uri).body(()).unwrap();
        let mut stream = sender.send_request(req).await.unwrap();
        stream.finish().await.unwrap();
        let resp = stream.recv_response().await.unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = stream.recv_data().await.unwrap() {
            body.extend_from_slice(chunk.chunk());
        }
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let (status, body) = status_of("https://other.test/api/x").await;
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("Misdirected Request"), "{body}");
    assert_eq!(status_of("https://app.test/api/x").await.0, 200);
    assert_eq!(status_of("https://APP.test:443/api/x").await.0, 200);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let edge = start_edge(vec![echo_upstream().await]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    const SIZE: usize = 32 << 20;
    let req = http::Request::post("https://app.test/api/upload")
        .header("content-length", SIZE.to_string())
        .body(())
        .unwrap();
    let stream = sender.send_request(req).await.unwrap();
    let (mut send, mut recv) = stream.split();
    // Send and receive at once: the echo streams back while the upload runs.
    let upload = tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..(SIZE >> 20) {
            send.send_data(chunk.clone()).await.unwrap();
        }
        send.finish().await.unwrap();
    });
    let resp = recv.recv_response().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut received = 0usize;
    while let Some(mut chunk) = recv.recv_data().await.unwrap() {
        assert!(chunk.chunk().iter().all(|b| *b == 7));
        received += chunk.remaining();
        chunk.advance(chunk.remaining());
    }
    upload.await.unwrap();
    assert_eq!(received, SIZE);
}

#[tokio::test]
async fn a_dead_replica_is_skipped_and_none_left_is_502() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let edge = start_edge(vec![dead, echo_upstream().await]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    for _ in 0..4 {
        let (status, _) = get(&mut sender, "/api/").await;
        assert_eq!(status, 200);
    }
    let edge = start_edge(vec![dead]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    let (status, body) = get(&mut sender, "/api/").await;
    assert_eq!(status, 502);
    assert!(body.contains("502"));
}

#[tokio::test]
async fn static_sites_are_answered_over_http3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>home</h1>").unwrap();
    let css = "main { display: grid; gap: 1rem; }\n".repeat(40);
    std::fs::write(dir.path().join("app.css"), &css).unwrap();
    let spa = SiteOptions {
        spa: true,
        ..SiteOptions::default()
    };
    let site = Arc::new(Site::load(dir.path(), spa).unwrap());
    let edge = start_edge_with(Backend::site("app", site)).await;
    let (mut sender, _endpoint) = client(&edge).await;

    // The prefix is stripped, and the edge's headers are added.
    let req = http::Request::get("https://app.test/api/app.css")
        .header("x-request-id", "site-1")
        .header("accept-encoding", "gzip")
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/css; charset=utf-8");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["x-request-id"], "site-1");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    let etag = h["etag"].clone();
    let mut gz = Vec::new();
    while let Some(chunk) = stream.recv_data().await.unwrap() {
        gz.extend_from_slice(chunk.chunk());
    }
    let mut decoded = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded)
        .unwrap();
    assert_eq!(decoded, css);

    // Revalidation, SPA fallback and the index.
    let req = http::Request::get("https://app.test/api/app.css")
        .header("if-none-match", etag)
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    assert_eq!(stream.recv_response().await.unwrap().status(), 304);
    assert_eq!(
        get(&mut sender, "/api/some/route").await,
        (200, "<h1>home</h1>".to_string())
    );
    assert_eq!(get(&mut sender, "/api").await.1, "<h1>home</h1>");
    // Dot segments are resolved before routing: this one leaves the
    // route (no route owns `/x`); one hidden behind an encoded slash
    // reaches the site, which refuses it.
    assert_eq!(get(&mut sender, "/api/%2e%2e/x").await.0, 404);
    assert_eq!(get(&mut sender, "/api/a%2f..%2f..%2fx").await.0, 400);
    assert_eq!(get(&mut sender, "/api/missing.css").await.0, 404);
}

/// A hand-written HTTP/1.1 replica: answers every request head with a
/// 200 and `body`; counts the connections it accepted and, with `close`,
/// closes each connection after one answer without saying so.
async fn counting_upstream(close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn replica_connections_are_kept_for_the_next_request() {
    let (upstream, accepted) = counting_upstream(false).await;
    let edge = start_edge(vec![upstream]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    for _ in 0..20 {
        assert_eq!(get(&mut sender, "/api/x").await, (200, "ok".to_string()));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "20 requests in turn share one replica connection"
    );
}

#[tokio::test]
async fn kept_connections_the_replica_closed_cost_no_request() {
    let (upstream, accepted) = counting_upstream(true).await;
    let edge = start_edge(vec![upstream]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    for i in 0..20 {
        assert_eq!(
            get(&mut sender, "/api/x").await,
            (200, "ok".to_string()),
            "request {i}"
        );
        // Half of them find the closed connection still in the pool.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}

/// A replica that answers the first request on each connection and, on
/// the next one, reads its head and closes without answering; counts the
/// connections and the request heads it read.
async fn one_answer_upstream() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(AtomicUsize::new(0));
    let (accepted2, heads2) = (accepted.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            accepted2.fetch_add(1, Ordering::SeqCst);
            let heads = heads2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                for answered in [false, true] {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    heads.fetch_add(1, Ordering::SeqCst);
                    if answered {
                        return;
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted, heads)
}

#[tokio::test]
async fn a_get_the_replica_dropped_unanswered_goes_again_and_a_post_does_not() {
    let (upstream, accepted, heads) = one_answer_upstream().await;
    let edge = start_edge(vec![upstream]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    assert_eq!(get(&mut sender, "/api/a").await, (200, "ok".to_string()));
    // Kept connection: the replica reads this GET and closes; the edge
    // sends it again on a new connection, which answers.
    assert_eq!(get(&mut sender, "/api/b").await, (200, "ok".to_string()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(heads.load(Ordering::SeqCst), 3);
    // A POST with a body is never sent twice: the client gets a 502.
    let req = http::Request::post("https://app.test/api/c")
        .header("content-length", "4")
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.send_data(Bytes::from_static(b"data")).await.unwrap();
    stream.finish().await.unwrap();
    let status = stream.recv_response().await.unwrap().status();
    assert_eq!(status, 502);
    assert_eq!(heads.load(Ordering::SeqCst), 4, "the POST was read once");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answered_upload_that_stalls_holds_back_no_other_request() {
    let (upstream, accepted) = counting_upstream(false).await;
    let edge = start_edge(vec![upstream]).await;
    let (mut sender, _endpoint) = client(&edge).await;
    // The replica answers at the request head; the client sends a little
    // of its body and then nothing, keeping the stream open.
    let req = http::Request::post("https://app.test/api/upload")
        .header("content-length", "100000")
        .body(())
        .unwrap();
    let mut upload = sender.send_request(req).await.unwrap();
    upload
        .send_data(Bytes::from_static(b"first bytes"))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), upload.recv_response())
        .await
        .expect("the replica's early answer reaches the client")
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The connection under the stalled upload is busy: the next requests
    // take another one and are answered at once.
    for i in 0..3 {
        let got = tokio::time::timeout(Duration::from_secs(5), get(&mut sender, "/api/next"))
            .await
            .unwrap_or_else(|_| panic!("GET {i} waited on the stalled upload"));
        assert_eq!(got, (200, "ok".to_string()));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one connection stays with the upload, the GETs share the other"
    );
    drop(upload);
}
