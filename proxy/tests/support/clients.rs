//! One request sent over HTTP/1.1 (TLS), h2 (TLS) or HTTP/3 to an edge,
//! and what came back, alike for every protocol: the test tables
//! (`parity.rs`, `rules.rs`) compare the three answers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where an edge listens: TCP for HTTP/1.1 and h2, UDP for HTTP/3, and
/// the certificate clients trust.
#[derive(Clone)]
pub struct Target {
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
    pub ca_der: Vec<u8>,
}

/// The three protocols, by name.
pub const PROTOCOLS: [&str; 3] = ["HTTP/1.1", "h2", "HTTP/3"];

/// One request, as each protocol carries it.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    pub method: &'static str,
    /// The host in the request target: h2's and HTTP/3's `:authority`;
    /// over HTTP/1.1 the `Host` header (an absolute-form target too when
    /// `host` is given besides).
    pub authority: Option<&'static str>,
    /// A `Host` header besides (h2, HTTP/3), or alone.
    pub host: Option<&'static str>,
    pub path: &'static str,
    /// More request header fields.
    pub headers: &'static [(&'static str, &'static str)],
    /// A request body (sent with its length).
    pub body: Option<&'static [u8]>,
    /// Send the body without a length: chunked over HTTP/1.1, plain DATA
    /// frames over h2 and HTTP/3.
    pub unsized_body: bool,
}

impl Ask {
    pub fn get(authority: &'static str) -> Self {
        Ask {
            method: "GET",
            authority: Some(authority),
            host: None,
            path: "/x",
            headers: &[],
            body: None,
            unsized_body: false,
        }
    }

    pub fn head(authority: &'static str) -> Self {
        Ask {
            method: "HEAD",
            ..Ask::get(authority)
        }
    }

    /// The name the TLS handshake asks for.
    pub fn sni(&self) -> &'static str {
        self.authority.or(self.host).unwrap_or("app.test")
    }
}

/// What one protocol brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Every field, lowercase names, repeated ones joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as it came (HTTP/1.1's chunked framing removed).
    pub body: Vec<u8>,
    /// The response ended cleanly (not cut short or reset).
    pub complete: bool,
}

impl Answer {
    pub fn failed(why: String) -> Self {
        Answer {
            status: 0,
            headers: BTreeMap::from([("client error".to_string(), why)]),
            body: Vec::new(),
            complete: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The request over `proto` (one of [`PROTOCOLS`]).
pub async fn send(proto: &str, target: &Target, ask: Ask, request_id: &str) -> Answer {
    match proto {
        "HTTP/1.1" => over_h1(target, ask, request_id).await,
        "h2" => over_h2(target, ask, request_id).await,
        _ => over_h3(target, ask, request_id).await,
    }
}

fn add(headers: &mut BTreeMap<String, String>, name: &str, value: &[u8]) {
    let value = String::from_utf8_lossy(value).into_owned();
    headers
        .entry(name.to_ascii_lowercase())
        .and_modify(|v| {
            v.push_str(", ");
            v.push_str(&value);
        })
        .or_insert(value);
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

/// The body of a chunked message, or `None` when its framing is broken
/// or cut short.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The request over HTTP/1.1 on TLS (SNI: the authority), read until the
/// edge closes the connection.
pub async fn over_h1(target: &Target, ask: Ask, request_id: &str) -> Answer {
    let config = tls_client(&target.ca_der, b"http/1.1");
    let tcp = tokio::net::TcpStream::connect(target.tcp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ask.sni()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (path, host) = match (ask.authority, ask.host) {
        (Some(authority), Some(host)) => (format!("https://{authority}{}", ask.path), host),
        (Some(host), None) | (None, Some(host)) => (ask.path.to_string(), host),
        (None, None) => (ask.path.to_string(), ""),
    };
    let mut raw = format!(
        "{} {path} HTTP/1.1\r\nhost: {host}\r\nx-request-id: {request_id}\r\nconnection: close\r\n",
        ask.method
    );
    for (name, value) in ask.headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    match ask.body {
        Some(_) if ask.unsized_body => raw.push_str("transfer-encoding: chunked\r\n"),
        Some(body) => raw.push_str(&format!("content-length: {}\r\n", body.len())),
        None => {}
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    match ask.body {
        Some(body) if ask.unsized_body => {
            // In two chunks, as a stream would come.
            let (a, b) = body.split_at(body.len() / 2);
            for part in [a, b] {
                bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                bytes.extend_from_slice(part);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        Some(body) => bytes.extend_from_slice(body),
        None => {}
    }
    tls.write_all(&bytes).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
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
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = resp.parse(&bytes) else {
        return Answer::failed(format!(
            "no response head: {:?}",
            String::from_utf8_lossy(&bytes)
        ));
    };
    let mut headers = BTreeMap::new();
    for h in resp.headers.iter() {
        add(&mut headers, h.name, h.value);
    }
    let raw_body = &bytes[len..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|te| te.contains("chunked"));
    headers.remove("transfer-encoding");
    headers.remove("connection");
    let (body, framed) = if chunked && ask.method != "HEAD" {
        match dechunk(raw_body) {
            Some(body) => (body, true),
            None => (raw_body.to_vec(), false),
        }
    } else {
        (raw_body.to_vec(), true)
    };
    let expected = match headers.get("content-length") {
        Some(n) if ask.method != "HEAD" => n.parse().ok(),
        _ => None,
    };
    Answer {
        status: resp.code.unwrap_or(0),
        headers,
        complete: clean && framed && expected.is_none_or(|n: usize| n == body.len()),
        body,
    }
}

fn all_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        add(&mut out, name.as_str(), value.as_bytes());
    }
    out
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
    for (name, value) in ask.headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = ask.body.filter(|_| !ask.unsized_body) {
        req = req.header("content-length", body.len());
    }
    req.body(()).unwrap()
}

/// The request over h2 on TLS (SNI: the authority).
pub async fn over_h2(target: &Target, ask: Ask, request_id: &str) -> Answer {
    let config = tls_client(&target.ca_der, b"h2");
    let tcp = tokio::net::TcpStream::connect(target.tcp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(ask.sni()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut sender = sender.ready().await.unwrap();
    let (answer, mut stream) =
        match sender.send_request(request(ask, request_id), ask.body.is_none()) {
            Ok(pair) => pair,
            Err(e) => return Answer::failed(e.to_string()),
        };
    if let Some(body) = ask.body {
        if let Err(e) = stream.send_data(Bytes::from_static(body), true) {
            return Answer::failed(e.to_string());
        }
    }
    let resp = match answer.await {
        Ok(resp) => resp,
        Err(e) => return Answer::failed(e.to_string()),
    };
    let headers = all_headers(resp.headers());
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
pub async fn over_h3(target: &Target, ask: Ask, request_id: &str) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(target.ca_der.clone().into()).unwrap();
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let local: SocketAddr = if target.udp.is_ipv6() {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    let mut endpoint = quinn::Endpoint::client(local).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(target.udp, ask.sni())
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
    if let Some(body) = ask.body {
        if let Err(e) = stream.send_data(Bytes::from_static(body)).await {
            return Answer::failed(e.to_string());
        }
    }
    if let Err(e) = stream.finish().await {
        return Answer::failed(e.to_string());
    }
    let resp = match stream.recv_response().await {
        Ok(resp) => resp,
        Err(e) => return Answer::failed(e.to_string()),
    };
    let headers = all_headers(resp.headers());
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
