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
use bytes::{Buf, Bytes};
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
    tcp: SocketAddr,
    udp: SocketAddr,
    ca_der: Vec<u8>,
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
        tcp,
        udp,
        ca_der,
        _keep: Box::new(keep),
        _stop: stop,
    }
}

/// One request of the table, as each protocol carries it.
#[derive(Clone, Copy)]
struct Ask {
    method: &'static str,
    /// The host in the request target: h2's and HTTP/3's `:authority`;
    /// over HTTP/1.1 the `Host` header (an absolute-form target too when
    /// `host` is given besides).
    authority: Option<&'static str>,
    /// A `Host` header besides (h2, HTTP/3), or alone.
    host: Option<&'static str>,
    path: &'static str,
}

impl Ask {
    fn get(authority: &'static str) -> Self {
        Ask {
            method: "GET",
            authority: Some(authority),
            host: None,
            path: "/x",
        }
    }

    fn head(authority: &'static str) -> Self {
        Ask {
            method: "HEAD",
            ..Ask::get(authority)
        }
    }

    /// The name the TLS handshake asks for.
    fn sni(&self) -> &'static str {
        self.authority.or(self.host).unwrap_or("app.test")
    }
}

/// What one protocol brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// The response ended cleanly (not cut short or reset).
    complete: bool,
}

impl Answer {
    fn failed(why: String) -> Self {
        Answer {
            status: 0,
            headers: BTreeMap::from([("client error".to_string(), why)]),
            body: Vec::new(),
            complete: false,
        }
    }
}

fn relevant(name: &str) -> bool {
    RELEVANT.contains(&name)
}

fn tls_client(ca_der: &[u8], alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// The request over HTTP/1.1 on TLS (SNI: the authority), read until the
/// edge closes the connection.
async fn over_h1(edges: &Edges, ask: Ask, request_id: &str) -> Answer {
    let config = tls_client(&edges.ca_der, b"http/1.1");
    let tcp = tokio::net::TcpStream::connect(edges.tcp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ask.sni()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (target, host) = match (ask.authority, ask.host) {
        (Some(authority), Some(host)) => (format!("https://{authority}{}", ask.path), host),
        (Some(host), None) | (None, Some(host)) => (ask.path.to_string(), host),
        (None, None) => (ask.path.to_string(), ""),
    };
    let raw = format!(
        "{} {target} HTTP/1.1\r\nhost: {host}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        ask.method
    );
    tls.write_all(raw.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let mut clean = false;
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => {
                clean = true;
                break;
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = resp.parse(&bytes) else {
        return Answer::failed(format!(
            "no response head: {:?}",
            String::from_utf8_lossy(&bytes)
        ));
    };
    let mut headers = BTreeMap::new();
    for h in resp.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if relevant(&name) {
            headers.insert(name, String::from_utf8_lossy(h.value).into_owned());
        }
    }
    let body = bytes[len..].to_vec();
    let expected = match headers.get("content-length") {
        Some(n) if ask.method != "HEAD" => n.parse().ok(),
        _ => None,
    };
    Answer {
        status: resp.code.unwrap_or(0),
        headers,
        complete: clean && expected.is_none_or(|n: usize| n == body.len()),
        body,
    }
}

fn relevant_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| relevant(name.as_str()))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.to_string(), value)
        })
        .collect()
}

fn request(ask: Ask, request_id: &str) -> http::Request<()> {
    let mut req = http::Request::builder()
        .method(ask.method)
        .uri(match ask.authority {
            Some(authority) => format!("https://{authority}{}", ask.path),
            None => ask.path.to_string(),
        })
        .header("x-request-id", request_id);
    if let Some(host) = ask.host {
        req = req.header("host", host);
    }
    req.body(()).unwrap()
}

/// The request over h2 on TLS (SNI: the authority).
async fn over_h2(edges: &Edges, ask: Ask, request_id: &str) -> Answer {
    let config = tls_client(&edges.ca_der, b"h2");
    let tcp = tokio::net::TcpStream::connect(edges.tcp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ask.sni()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut sender = sender.ready().await.unwrap();
    let (answer, _) = match sender.send_request(request(ask, request_id), true) {
        Ok(pair) => pair,
        Err(e) => return Answer::failed(e.to_string()),
    };
    let resp = match answer.await {
        Ok(resp) => resp,
        Err(e) => return Answer::failed(e.to_string()),
    };
    let headers = relevant_headers(resp.headers());
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    let mut complete = true;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    Answer {
        status,
        headers,
        body: bytes,
        complete,
    }
}

/// The request over HTTP/3 (SNI: the authority).
async fn over_h3(edges: &Edges, ask: Ask, request_id: &str) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(edges.ca_der.clone().into()).unwrap();
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(edges.udp, ask.sni())
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let mut stream = match sender.send_request(request(ask, request_id)).await {
        Ok(stream) => stream,
        Err(e) => return Answer::failed(e.to_string()),
    };
    if let Err(e) = stream.finish().await {
        return Answer::failed(e.to_string());
    }
    let resp = match stream.recv_response().await {
        Ok(resp) => resp,
        Err(e) => return Answer::failed(e.to_string()),
    };
    let headers = relevant_headers(resp.headers());
    let mut body = Vec::new();
    let mut complete = true;
    loop {
        match stream.recv_data().await {
            Ok(Some(chunk)) => body.extend_from_slice(chunk.chunk()),
            Ok(None) => break,
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    drop(endpoint);
    Answer {
        status: resp.status().as_u16(),
        headers,
        body,
        complete,
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
        for proto in ["HTTP/1.1", "h2", "HTTP/3"] {
            let request_id = format!("parity-{i}");
            let answer = match proto {
                "HTTP/1.1" => tokio::time::timeout(CLIENT, over_h1(&edges, ask, &request_id)).await,
                "h2" => tokio::time::timeout(CLIENT, over_h2(&edges, ask, &request_id)).await,
                _ => tokio::time::timeout(CLIENT, over_h3(&edges, ask, &request_id)).await,
            }
            .unwrap_or_else(|_| Answer::failed("no answer in time".into()));
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
