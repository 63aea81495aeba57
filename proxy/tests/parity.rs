//! The three front ends side by side: one table of cases sent over
//! HTTP/1.1 (TLS), h2 (TLS) and HTTP/3 to one edge (the same route table,
//! the same certificate, the same deadlines), each expecting the same
//! status, the same relevant headers and the same body whichever protocol
//! carried it. Real sockets throughout, as in `edge.rs` and `h3.rs`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::policy::{self, ErrorPage};
use berth_proxy::{
    Backend, EdgeOptions, EdgeProxy, H3Options, HostCertificates, ProxyMetrics, RouteSpec,
    RouteTable, Router,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// Shared with `edge.rs` and `h3.rs`; this binary uses part of it.
#[allow(dead_code)]
mod support;

use support::clients::{send, Answer, Ask, Target, PROTOCOLS};

/// Deadline to connect to a replica: short, so a replica that never
/// accepts costs the test little.
const CONNECT: Duration = Duration::from_millis(300);
/// Deadline for a replica's next bytes.
const READ: Duration = Duration::from_millis(600);
/// Longest a client waits for a whole answer.
const CLIENT: Duration = Duration::from_secs(10);

/// The headers compared across protocols (hop-by-hop ones, `date` and
/// `server` are not).
const RELEVANT: [&str; 8] = [
    "content-type",
    "content-length",
    "cache-control",
    "x-request-id",
    "location",
    "strict-transport-security",
    "alt-svc",
    "x-seen-host",
];

/// The body the echo replica answers with.
const HELLO: &str = "hello from the replica\n";

/// A replica answering `HELLO` with the host it was asked for.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let resp = Response::builder()
                        .header("content-type", "text/plain")
                        .header("x-seen-host", host)
                        .body(Full::new(Bytes::from_static(HELLO.as_bytes())))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An address nothing listens on: connecting is refused.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener that never accepts, its queue full: a connect to it gets no
/// answer at all and times out. Kept alive by the returned handles.
fn blackhole() -> (SocketAddr, impl Send + 'static) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // One connection fills a queue of length 0; SYNs after it are dropped.
    let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    (addr, (listener, filler))
}

/// A replica that reads requests and never answers.
async fn silent_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A replica that sends a response head and part of the body it
/// announced, then goes quiet with the connection open.
async fn stalling_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n";
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(b"0123456789").await;
                // Quiet, open, until the edge gives up.
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The hosts of the table (and one without a route); one certificate
/// serves them all.
const HOSTS: [&str; 9] = [
    "nobody.test",
    "app.test",
    "other.test",
    "empty.test",
    "stopped.test",
    "refused.test",
    "blackhole.test",
    "silent.test",
    "stalling.test",
];

struct Edges {
    target: Target,
    _keep: Box<dyn Send>,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn route(host: &str, backend: Backend) -> RouteSpec {
    RouteSpec {
        host: host.into(),
        path_prefix: "/".into(),
        strip_prefix: false,
        redirect_https: false,
        hsts: false,
        certified: true,
        backend: Arc::new(backend),
        rules: None,
    }
}

/// One edge on TCP (HTTP/1.1 and h2 over TLS) and UDP (HTTP/3), sharing
/// its route table, certificate and deadlines.
async fn start() -> Edges {
    let (blackhole, keep) = blackhole();
    let router = Arc::new(Router::new(RouteTable::build([
        route("app.test", Backend::new("app", vec![echo_upstream().await])),
        route("other.test", Backend::new("other", vec![dead_addr()])),
        route("empty.test", Backend::new("empty", vec![])),
        route("stopped.test", Backend::stopped("stopped")),
        route("refused.test", Backend::new("refused", vec![dead_addr()])),
        route("blackhole.test", Backend::new("blackhole", vec![blackhole])),
        route(
            "silent.test",
            Backend::new("silent", vec![silent_upstream().await]),
        ),
        route(
            "stalling.test",
            Backend::new("stalling", vec![stalling_upstream().await]),
        ),
    ])));
    let hosts = HOSTS.iter().map(|h| h.to_string()).collect();
    let (resolver, ca_der) = support::self_signed(hosts);
    let (stop, watch) = tokio::sync::watch::channel(false);

    let mut registry = Registry::default();
    let proxy = EdgeProxy::new(
        router.clone(),
        ProxyMetrics::register(&mut registry),
        EdgeOptions {
            tls: true,
            connect_timeout: CONNECT,
            read_timeout: READ,
            https_port: 443,
            h3_port: None,
            certificates: Some(resolver.clone() as Arc<dyn HostCertificates>),
            tunnel_idle: Duration::from_secs(3600),
        },
        Arc::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    let tls = berth_proxy::tls_config(resolver.clone());
    tokio::spawn(berth_proxy::serve(
        listener,
        proxy,
        Some(tls),
        watch.clone(),
    ));

    let mut registry = Registry::default();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = socket.local_addr().unwrap();
    tokio::spawn(berth_proxy::serve_h3(
        socket,
        resolver,
        router,
        ProxyMetrics::register(&mut registry),
        H3Options {
            connect_timeout: CONNECT,
            read_timeout: READ,
        },
        watch,
    ));
    Edges {
        target: Target { tcp, udp, ca_der },
        _keep: Box::new(keep),
        _stop: stop,
    }
}

/// What a case expects, on every protocol.
struct Expect {
    status: u16,
    /// The exact body; `None`: whatever the replica had sent when it
    /// stalled (compared across protocols only).
    body: Option<&'static str>,
    /// The relevant headers, exactly (besides `x-request-id`, which every
    /// answer echoes).
    headers: &'static [(&'static str, &'static str)],
    complete: bool,
}

const HTML: &str = "text/html; charset=utf-8";

/// The headers and body of one of berth's pages; `head`: answered to a
/// HEAD (the same headers, no body).
fn page(page: ErrorPage, head: bool) -> Expect {
    let length: &'static str = page.body.len().to_string().leak();
    let headers: &'static [(&'static str, &'static str)] = vec![
        ("content-type", HTML),
        ("cache-control", "no-store"),
        ("content-length", length),
    ]
    .leak();
    Expect {
        status: page.status,
        body: Some(if head { "" } else { page.body }),
        headers,
        complete: true,
    }
}

fn replica_hello(host: &'static str) -> Expect {
    let length: &'static str = HELLO.len().to_string().leak();
    let headers: &'static [(&'static str, &'static str)] = vec![
        ("content-type", "text/plain"),
        ("content-length", length),
        ("x-seen-host", host),
    ]
    .leak();
    Expect {
        status: 200,
        body: Some(HELLO),
        headers,
        complete: true,
    }
}

/// The table: a name, the request, what every protocol must answer.
fn cases() -> Vec<(&'static str, Ask, Expect)> {
    vec![
        ("forwarded", Ask::get("app.test"), replica_hello("app.test")),
        (
            "unknown host",
            Ask::get("nobody.test"),
            page(policy::NOT_FOUND, false),
        ),
        (
            "no replica",
            Ask::get("empty.test"),
            page(policy::NO_REPLICA, false),
        ),
        (
            "stopped app",
            Ask::get("stopped.test"),
            page(policy::STOPPED, false),
        ),
        (
            "connect refused",
            Ask::get("refused.test"),
            page(policy::BAD_GATEWAY, false),
        ),
        (
            "connect timeout",
            Ask::get("blackhole.test"),
            page(policy::GATEWAY_TIMEOUT, false),
        ),
        (
            "replica read timeout",
            Ask::get("silent.test"),
            page(policy::GATEWAY_TIMEOUT, false),
        ),
        (
            "HEAD of a 404 page",
            Ask::head("nobody.test"),
            page(policy::NOT_FOUND, true),
        ),
        (
            "HEAD of a 503 page",
            Ask::head("stopped.test"),
            page(policy::STOPPED, true),
        ),
        (
            "HEAD of a 502 page",
            Ask::head("refused.test"),
            page(policy::BAD_GATEWAY, true),
        ),
        (
            "Host alone names the app",
            Ask {
                authority: None,
                host: Some("app.test"),
                ..Ask::get("app.test")
            },
            replica_hello("app.test"),
        ),
        (
            "replica stalls mid-body",
            Ask::get("stalling.test"),
            Expect {
                status: 200,
                body: None,
                headers: &[("content-type", "text/plain"), ("content-length", "100")],
                complete: false,
            },
        ),
    ]
}

/// What `answer` gets wrong against `expect`, if anything.
fn check(expect: &Expect, request_id: &str, answer: &Answer) -> Option<String> {
    let mut headers: BTreeMap<String, String> = expect
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    headers.insert("x-request-id".into(), request_id.into());
    let body_ok = expect
        .body
        .is_none_or(|body| body.as_bytes() == answer.body.as_slice());
    let ok = answer.status == expect.status
        && answer.headers == headers
        && body_ok
        && answer.complete == expect.complete;
    (!ok).then(|| {
        format!(
            "status {} (want {}), headers {:?} (want {:?}), body {:?}{}, complete {} (want {})",
            answer.status,
            expect.status,
            answer.headers,
            headers,
            String::from_utf8_lossy(&answer.body),
            if body_ok { "" } else { " (wrong)" },
            answer.complete,
            expect.complete,
        )
    })
}

#[tokio::test]
async fn every_front_end_answers_the_table_alike() {
    let edges = start().await;
    let mut drifts = Vec::new();
    for (i, (name, ask, expect)) in cases().into_iter().enumerate() {
        let mut answers = Vec::new();
        for proto in PROTOCOLS {
            let request_id = format!("parity-{i}");
            let answer = tokio::time::timeout(CLIENT, send(proto, &edges.target, ask, &request_id))
                .await
                .unwrap_or_else(|_| Answer::failed("no answer in time".into()));
            let answer = Answer {
                headers: answer
                    .headers
                    .into_iter()
                    .filter(|(name, _)| RELEVANT.contains(&name.as_str()) || name == "client error")
                    .collect(),
                ..answer
            };
            if let Some(wrong) = check(&expect, &request_id, &answer) {
                drifts.push(format!("{name} over {proto}: {wrong}"));
            }
            answers.push((proto, answer));
        }
        // Whatever the expectation leaves open (a stalled body) is still
        // the same on every protocol.
        let (first, rest) = answers.split_first().unwrap();
        for (proto, answer) in rest {
            if (answer.status, &answer.headers) != (first.1.status, &first.1.headers) {
                drifts.push(format!(
                    "{name}: {proto} answers {} {:?}, {} answers {} {:?}",
                    answer.status, answer.headers, first.0, first.1.status, first.1.headers
                ));
            }
        }
    }
    assert!(
        drifts.is_empty(),
        "the front ends drift:\n{}",
        drifts.join("\n")
    );
}
