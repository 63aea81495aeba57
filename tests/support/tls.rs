//! TLS helpers for tests: a throwaway CA that signs leaf certificates, and
//! curl over HTTPS with that CA pinned and the name resolved to loopback.

use std::path::Path;
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};

/// A test certificate authority.
pub struct TestCa {
    /// Its certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses), valid from
    /// `days.0` to `days.1` days from now; returns (chain PEM, key PEM).
    pub fn leaf(&self, names: &[&str], days: (i64, i64)) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now + Duration::days(days.0);
        params.not_after = now + Duration::days(days.1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What curl saw.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    /// `1.1`, `2` or `3`.
    pub http_version: String,
    /// Raw response headers.
    pub headers: String,
    pub body: String,
}

/// `curl https://<host>:<port><path>` with `ca` trusted and `host` resolved
/// to the address of `addr` (`127.0.0.1:port`).
pub fn curl_https(ca: &Path, host: &str, addr: &str, path: &str) -> Result<CurlResponse, String> {
    curl_https_with(ca, host, addr, path, &[])
}

/// [`curl_https`] with request headers (`Name: value`).
pub fn curl_https_with(
    ca: &Path,
    host: &str,
    addr: &str,
    path: &str,
    headers_sent: &[&str],
) -> Result<CurlResponse, String> {
    let port = addr.rsplit(':').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(headers_sent.iter().flat_map(|h| ["-H", h]))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl is installed");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = summary.split_once(' ').unwrap();
    Ok(CurlResponse {
        status: status.parse().unwrap(),
        http_version: version.to_string(),
        headers: std::fs::read_to_string(headers).unwrap_or_default(),
        body: std::fs::read_to_string(body).unwrap_or_default(),
    })
}

/// A QUIC client endpoint on loopback offering h3 and trusting the PEM
/// certificates in `ca_pem`.
pub fn h3_endpoint(ca_pem: &[u8]) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &*ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    endpoint
}

/// One HTTP/3 GET of `https://<host><path>` at `addr` (UDP) with `ca`
/// trusted, from a quinn + h3 client; returns status, headers and body.
pub async fn h3_get(
    ca: &Path,
    host: &str,
    addr: &str,
    path: &str,
) -> (u16, http::HeaderMap, String) {
    use bytes::Buf;
    let endpoint = h3_endpoint(&std::fs::read(ca).unwrap());
    let conn = endpoint
        .connect(addr.parse().unwrap(), host)
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let drive = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let req = http::Request::get(format!("https://{host}{path}"))
        .body(())
        .unwrap();
    let mut stream = sender.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(chunk.chunk());
    }
    drive.abort();
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}
