//! The edge proxy end to end, in process: real pingora on a loopback port,
//! real HTTP and WebSocket upstreams on loopback, a route table swapped in
//! as the orchestrator would.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{
    Backend, EdgeOptions, EdgeProxy, ProxyMetrics, RouteSpec, RouteTable, Router, Upstream,
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
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start_edge(specs: Vec<RouteSpec>) -> Edge {
    let router = Arc::new(Router::new(RouteTable::build(specs)));
    let mut registry = Registry::default();
    let metrics = ProxyMetrics::register(&mut registry);
    let proxy = EdgeProxy::new(
        router.clone(),
        metrics,
        EdgeOptions {
            tls: false,
            connect_timeout: Duration::from_secs(1),
            https_port: 443,
            h3_port: None,
        },
        Arc::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(berth_proxy::serve(listener, proxy, None, watch));
    Edge {
        addr,
        router,
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
        backend: backend.clone(),
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

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let backend = Arc::new(Backend::new("ws", vec![ws_upstream().await]));
    let edge = start_edge(vec![route("ws.test", "/", false, &backend)]).await;
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/socket", edge.addr),
    )
    .map(|mut r| {
        r.headers_mut().insert("host", "ws.test".parse().unwrap());
        r
    })
    .unwrap();
    let (mut ws, resp) = tokio_tungstenite::connect_async(request).await.unwrap();
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
    let open = || async {
        let request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{}/socket", edge.addr),
            )
            .map(|mut r| {
                r.headers_mut().insert("host", "ws.test".parse().unwrap());
                r
            })
            .unwrap();
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let mut ws = open().await;
    ws.send(Message::text("before")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:before");
    assert_eq!(state.in_flight(), 1, "the tunnel counts on its replica");
    // The drain deadline: the edge cuts the tunnel, client side included.
    assert_eq!(state.close_tunnels(), 1);
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the websocket ends promptly");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while state.in_flight() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replica's count drops to zero");
    // Plain requests on the edge are unaffected.
    let mut again = open().await;
    again.send(Message::text("after")).await.unwrap();
    let reply = again.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:after");
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
