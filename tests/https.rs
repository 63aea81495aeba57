//! HTTPS at the edge against real parts: certificates from a test CA
//! uploaded through the API, and from Debian's `pebble` ACME server over
//! HTTP-01 and TLS-ALPN-01; clients are curl (h2) and rustls. A domain
//! whose order fails keeps serving plain HTTP until it has a certificate.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::pebble::{Pebble, PebblePorts};
use support::tls::{curl_https, curl_https_with, h3_get, TestCa};
use support::{Berth, Image};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

async fn upload(berth: &Berth, name: &str, cert: &str, key: &str) -> (u16, Value) {
    berth
        .api(
            "POST",
            "/certificates",
            Some(json!({"name": name, "cert_pem": cert, "key_pem": key})),
        )
        .await
}

#[tokio::test]
async fn custom_certificates_are_checked_then_served_over_h2_with_redirects_and_hsts() {
    let mut berth = Berth::start().await;
    let ca = TestCa::new("berth test CA");
    let ca_file = berth.data_dir().join("test-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();

    // Refused, each with the field and the reason; nothing is stored.
    let (cert, key) = ca.leaf(&["secure.test", "*.wild.test"], (-1, 30));
    let (status, body) = upload(&berth, "bad", "hello", &key).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "cert_pem", "{body}");
    let (_, other_key) = ca.leaf(&["secure.test"], (-1, 30));
    let (status, body) = upload(&berth, "bad", &cert, &other_key).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "key_pem", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not belong"));
    let (old, old_key) = ca.leaf(&["secure.test"], (-30, -1));
    let (status, body) = upload(&berth, "bad", &old, &old_key).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let (status, body) = upload(
        &berth,
        "bad",
        &cert,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "key_pem", "{body}");
    let (_, list) = berth.api("GET", "/certificates", None).await;
    assert_eq!(list["certificates"], json!([]), "{list}");

    // A custom domain needs a certificate that covers it.
    let app = json!({"name": "web", "image": "unused", "port": 8080,
        "domains": [{"host": "secure.test", "certificate": "custom", "hsts": true},
                    {"host": "a.wild.test", "certificate": "custom"}]});
    let (status, body) = berth.api("POST", "/apps", Some(app.clone())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "domains[0].certificate", "{body}");

    let (status, body) = upload(&berth, "secure", &cert, &key).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("PRIVATE KEY"), "{body}");
    assert_eq!(body["names"], json!(["secure.test", "*.wild.test"]));
    let v1 = berth.image(Image::Web("v1"));
    let mut app = app;
    app["image"] = json!(v1);
    berth.create_app(app).await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");

    // HTTPS with h2, for the exact name and the wildcard.
    let r = curl_https(&ca_file, "secure.test", &berth.https, "/").unwrap();
    assert_eq!((r.status, r.http_version.as_str()), (200, "2"), "{r:?}");
    assert!(r.body.starts_with("v1 "), "{r:?}");
    assert!(
        r.headers
            .contains("strict-transport-security: max-age=31536000"),
        "{r:?}"
    );
    let r = curl_https(&ca_file, "a.wild.test", &berth.https, "/").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.headers.contains("strict-transport-security"), "{r:?}");

    // HTTP/3 is advertised on TCP and answers on the same port over UDP,
    // with the same certificate and routes.
    let alt_svc = format!("alt-svc: h3=\":{}\"", port(&berth.https));
    assert!(r.headers.contains(&alt_svc), "{r:?}");
    let (status, headers, body) = h3_get(&ca_file, "secure.test", &berth.https, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("v1 "), "{body}");
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");
    let (status, _, _) = h3_get(&ca_file, "secure.test", &berth.https, "/nothing-here").await;
    assert_eq!(status, 404);

    // Plain HTTP redirects with path and query; ACME paths are not redirected.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://{}/some/path?q=1", berth.http))
        .header("host", "Secure.Test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("https://secure.test:{}/some/path?q=1", port(&berth.https)).as_str()
    );
    let resp = client
        .get(format!(
            "http://{}/.well-known/acme-challenge/x",
            berth.http
        ))
        .header("host", "secure.test")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 308);

    // A name without a certificate gets the self-signed fallback, which
    // the test CA does not vouch for.
    let err = curl_https(&ca_file, "unknown.test", &berth.https, "/").unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    // The key is stored encrypted, the certificate cannot go while used.
    let store = std::fs::read(berth.data_dir().join("berth.redb")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(
        !store
            .windows(key_line.len())
            .any(|w| w == key_line.as_bytes()),
        "the private key is in the store in plain text"
    );
    let (_, list) = berth.api("GET", "/certificates", None).await;
    assert!(!list.to_string().contains("PRIVATE KEY"));
    assert_eq!(list["domains"][0]["status"], "valid", "{list}");
    let (status, body) = berth.api("DELETE", "/certificates/secure", None).await;
    assert_eq!(status, 409, "{body}");

    // After a restart the certificate still serves (key from the store).
    assert!(berth.terminate().await);
    berth.launch().await;
    let r = curl_https(&ca_file, "secure.test", &berth.https, "/").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", berth.log());
}

/// Starts berth with pebble as its ACME server (`tables` adds TOML).
async fn berth_with_pebble(tables: &str, validity_secs: Option<u64>) -> (Berth, Pebble) {
    berth_with_pebble_validating_at(tables, validity_secs, None).await
}

/// Like [`berth_with_pebble`], with pebble's HTTP-01 validation sent to
/// `http_port` instead of berth's HTTP port when given.
async fn berth_with_pebble_validating_at(
    tables: &str,
    validity_secs: Option<u64>,
    http_port: Option<u16>,
) -> (Berth, Pebble) {
    let ports = PebblePorts::pick();
    let prepared = Pebble::prepare(&ports);
    let args = vec![
        "--acme-directory".to_string(),
        prepared.2.clone(),
        "--acme-ca-root".to_string(),
        prepared.1.display().to_string(),
        "--acme-email".to_string(),
        "ops@example.com".to_string(),
    ];
    let berth = Berth::start_configured("", tables, args).await;
    let pebble = Pebble::start(
        &ports,
        prepared,
        http_port.unwrap_or_else(|| port(&berth.http)),
        port(&berth.https),
        validity_secs,
    );
    (berth, pebble)
}

/// The certificates API's entry for `host`.
async fn domain_state(berth: &Berth, host: &str) -> Value {
    let (status, list) = berth.api("GET", "/certificates", None).await;
    assert_eq!(status, 200, "{list}");
    list["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["host"] == host)
        .cloned()
        .unwrap_or_else(|| panic!("{host} is not listed: {list}"))
}

/// Waits until the domain's last order has failed; returns its entry.
async fn wait_failed(berth: &Berth, host: &str, why: impl Fn() -> String) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let domain = domain_state(berth, host).await;
        if domain["status"] == "failed" {
            return domain;
        }
        assert!(
            Instant::now() < deadline,
            "{host}'s order did not fail: {domain}\n{}",
            why()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain HTTP GET of `path` through the edge for `host`, redirects not
/// followed.
async fn plain_get(berth: &Berth, host: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}{path}", berth.http))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

/// Forwards every connection to `port` on to `to`, from now on.
async fn forward(port: u16, to: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// A domain switched to `letsencrypt` (with HSTS) whose order fails is not
/// locked out: plain HTTP serves the app, no HSTS is sent, and the API
/// names the host, the cause and the next retry. Once the retry issues the
/// certificate, HTTP redirects with 308 and HTTPS sends HSTS.
#[tokio::test]
async fn http_serves_until_the_certificate_is_issued_then_redirects() {
    // Pebble validates HTTP-01 on a port where nothing answers yet.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let validation_port = dead.local_addr().unwrap().port();
    drop(dead);
    let (mut berth, pebble) =
        berth_with_pebble_validating_at("", None, Some(validation_port)).await;
    let v1 = berth.image(Image::Web("v1"));
    berth
        .create_app(json!({"name": "web", "image": v1, "port": 8080,
            "domains": [{"host": "web.test", "certificate": "letsencrypt", "hsts": true}]}))
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");

    let failed = wait_failed(&berth, "web.test", || {
        format!("{}\npebble:\n{}", berth.log(), pebble.log())
    })
    .await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("ordering a certificate for web.test: ")
            && error.contains(&format!("web.test:{validation_port}"))
            && error.contains("connection refused"),
        "the error names the host and the cause: {failed}"
    );
    assert_eq!(failed["failures"], 1, "{failed}");
    assert_eq!(failed["https_enforced"], false, "{failed}");
    let retry: time::OffsetDateTime = time::OffsetDateTime::parse(
        failed["next_retry_at"].as_str().expect("a next retry time"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let failed_at = time::OffsetDateTime::parse(
        failed["failed_at"].as_str().expect("when it failed"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(retry > failed_at, "{failed}");

    // Plain HTTP serves the app: no redirect, no HSTS.
    let resp = plain_get(&berth, "web.test", "/").await;
    assert_eq!(resp.status(), 200, "{}", berth.log());
    assert!(resp.headers().get("location").is_none());
    assert!(resp.headers().get("strict-transport-security").is_none());
    assert!(resp.text().await.unwrap().starts_with("v1 "));

    // The validation port answers from now on (forwarded to berth's HTTP
    // listener): the retry after the backoff gets the certificate.
    let forwarder = forward(validation_port, berth.http.clone()).await;
    wait_valid(&berth, &pebble, "web.test").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let resp = plain_get(&berth, "web.test", "/x?y=1").await;
        if resp.status() == 308 {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "HTTP is not redirected once the certificate is valid: {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        resp.headers()["location"],
        format!("https://web.test:{}/x?y=1", port(&berth.https)).as_str()
    );
    let r = curl_https(&pebble.issuing_root(), "web.test", &berth.https, "/").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("v1 "), "{r:?}");
    assert!(
        r.headers
            .contains("strict-transport-security: max-age=31536000"),
        "{r:?}"
    );
    let issued = domain_state(&berth, "web.test").await;
    assert_eq!(issued["https_enforced"], true, "{issued}");
    assert_eq!(issued["failures"], 0, "{issued}");
    assert!(
        issued["last_error"].is_null() && issued["next_retry_at"].is_null(),
        "{issued}"
    );
    forwarder.abort();
    drop(pebble);
    berth.terminate().await;
}

/// An ACME directory nobody answers: the error says which host and what
/// happened to the connection, not an opaque `client error (Connect)`.
#[tokio::test]
async fn an_unreachable_acme_directory_is_named_in_the_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let directory = format!(
        "https://127.0.0.1:{}/dir",
        dead.local_addr().unwrap().port()
    );
    drop(dead);
    let berth = Berth::start_configured(
        "",
        "",
        vec!["--acme-directory".to_string(), directory.clone()],
    )
    .await;
    berth
        .create_app(
            json!({"name": "web", "image": "berth-test/none:1", "port": 8080,
            "domains": [{"host": "web.test", "certificate": "letsencrypt"}]}),
        )
        .await;
    let failed = wait_failed(&berth, "web.test", || berth.log()).await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("ordering a certificate for web.test: ")
            && error.contains(&format!("reaching the directory {directory}")),
        "{failed}"
    );
    assert!(
        error.to_lowercase().contains("refused") || error.contains("os error"),
        "the cause under `client error (Connect)`: {failed}"
    );
    assert!(failed["next_retry_at"].is_string(), "{failed}");
    // Nothing serves yet; still no redirect to a site without a certificate.
    let resp = plain_get(&berth, "web.test", "/").await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("location").is_none());
}

/// Waits until the domain's certificate is valid; returns the listing.
async fn wait_valid(berth: &Berth, pebble: &Pebble, host: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, list) = berth.api("GET", "/certificates", None).await;
        let domain = list["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["host"] == host)
            .cloned()
            .unwrap_or_default();
        if domain["status"] == "valid" {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{host} got no certificate: {list}\nberth:\n{}\npebble:\n{}",
            berth.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deploys app `web` (v1) with `web.test` on a Let's Encrypt certificate.
async fn deploy_letsencrypt_web(berth: &mut Berth) {
    let v1 = berth.image(Image::Web("v1"));
    berth
        .create_app(json!({"name": "web", "image": v1, "port": 8080,
            "domains": [{"host": "web.test", "certificate": "letsencrypt"}]}))
        .await;
    assert_eq!(berth.deploy("web").await["status"], "succeeded");
}

async fn acme_issues_and_serves(tables: &str, challenge: &str) {
    let (mut berth, pebble) = berth_with_pebble(tables, None).await;
    deploy_letsencrypt_web(&mut berth).await;
    let list = wait_valid(&berth, &pebble, "web.test").await;
    assert_eq!(list["domains"][0]["certificate"], "acme:web.test", "{list}");
    let root = pebble.issuing_root();
    let r = curl_https(&root, "web.test", &berth.https, "/").unwrap();
    assert_eq!((r.status, r.http_version.as_str()), (200, "2"), "{r:?}");
    assert!(r.body.starts_with("v1 "), "{r:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", berth.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("berth_certificate_expiry_seconds{certificate=\"acme:web.test\"}"),
        "{metrics}"
    );
    let log = berth.log();
    assert!(
        log.contains("challenge answered") && log.contains(challenge),
        "validated over {challenge}: {log}"
    );
    // The account and the certificate survive a restart: no new order.
    assert!(berth.terminate().await);
    berth.launch().await;
    let r = curl_https(&root, "web.test", &berth.https, "/").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        !berth.log().contains("ordering a certificate"),
        "{}",
        berth.log()
    );
    drop(pebble);
}

#[tokio::test]
async fn acme_http01_certificate_is_served_over_h2() {
    acme_issues_and_serves("", "http-01").await;
}

#[tokio::test]
async fn acme_tls_alpn01_certificate_is_served_over_h2() {
    acme_issues_and_serves("[acme]\nchallenge = \"tls-alpn-01\"\n", "tls-alpn-01").await;
}

#[tokio::test]
async fn the_panel_domain_serves_the_api_over_https_with_an_acme_certificate() {
    let (mut berth, pebble) = berth_with_pebble("[panel]\ndomain = \"panel.test\"\n", None).await;
    let list = wait_valid(&berth, &pebble, "panel.test").await;
    let panel = list["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["host"] == "panel.test")
        .unwrap();
    assert_eq!(panel["app"], "-panel", "{list}");
    let root = pebble.issuing_root();
    let health = curl_https(&root, "panel.test", &berth.https, "/api/v1/health").unwrap();
    assert_eq!(health.status, 200, "{health:?}\n{}", berth.log());
    assert!(health.body.contains("\"ok\""), "{health:?}");
    let auth = format!("Authorization: Bearer {}", berth.token);
    berth
        .create_app(json!({"name": "hooked", "image": "berth-test/none:1", "port": 80}))
        .await;
    let hook = curl_https_with(
        &root,
        "panel.test",
        &berth.https,
        "/api/v1/apps/hooked/webhook",
        &[&auth],
    )
    .unwrap();
    assert_eq!(hook.status, 200, "{hook:?}");
    let hook: Value = serde_json::from_str(&hook.body).unwrap();
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .starts_with("https://panel.test/api/v1/hooks/hooked/"),
        "webhook URLs come from the public URL, not the request's Host: {hook}"
    );
    let denied = curl_https(&root, "panel.test", &berth.https, "/api/v1/apps").unwrap();
    assert_eq!(denied.status, 401, "{denied:?}");
    // Plain HTTP on the panel domain goes to HTTPS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}/api/v1/health", berth.http))
        .header("host", "panel.test")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 308);
    // No app may take the panel's domain.
    let (status, body) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({"name": "thief", "image": "x:1", "port": 80, "domains": [{"host": "panel.test"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "domains[0].host", "{body}");

    settings_change_at_run_time(&mut berth, &pebble).await;
}

/// The ACME contact and the public URL set through the API: the account
/// in use is updated at the CA, webhook URLs follow at once, bad values
/// are refused naming the field, and what was set survives a restart
/// until it is cleared.
async fn settings_change_at_run_time(berth: &mut Berth, pebble: &Pebble) {
    let (status, settings) = berth.api("GET", "/settings", None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["acme_email"], Value::Null, "{settings}");
    assert_eq!(settings["in_effect"]["acme_email"], "ops@example.com");
    assert_eq!(settings["in_effect"]["public_url"], "https://panel.test");
    assert_eq!(settings["in_effect"]["panel_domain"], "panel.test");
    let (status, changed) = berth
        .api(
            "PATCH",
            "/settings",
            Some(json!({"acme_email": "certs@example.org", "public_url": "https://Hooks.example.net/"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["acme_email"], "certs@example.org");
    assert_eq!(changed["public_url"], "https://hooks.example.net");
    assert_eq!(changed["in_effect"]["acme_email"], "certs@example.org");
    // The account made for the certificate above now has the new contact.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !berth.log().contains("updated the ACME account's contact") {
        assert!(
            Instant::now() < deadline,
            "the contact was not updated:\n{}\npebble:\n{}",
            berth.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !berth
            .log()
            .contains("could not update the ACME account's contact"),
        "{}",
        berth.log()
    );
    let (_, hook) = berth.api("GET", "/apps/hooked/webhook", None).await;
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .starts_with("https://hooks.example.net/api/v1/hooks/hooked/"),
        "{hook}"
    );
    for (body, field) in [
        (json!({"acme_email": "nobody"}), "acme_email"),
        (
            json!({"public_url": "ftp://hooks.example.net"}),
            "public_url",
        ),
        (
            json!({"public_url": "https://hooks.example.net/path"}),
            "public_url",
        ),
    ] {
        let (status, answer) = berth.api("PATCH", "/settings", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, answer) = berth
        .api(
            "PATCH",
            "/settings",
            Some(json!({"panel_domain": "x.test"})),
        )
        .await;
    assert_eq!(status, 400, "a setting the API does not change: {answer}");

    // Kept across a restart; cleared, the config's value applies again.
    assert!(berth.terminate().await);
    berth.launch().await;
    let (_, settings) = berth.api("GET", "/settings", None).await;
    assert_eq!(
        settings["public_url"], "https://hooks.example.net",
        "{settings}"
    );
    assert_eq!(settings["acme_email"], "certs@example.org", "{settings}");
    let (status, cleared) = berth
        .api("PATCH", "/settings", Some(json!({"public_url": null})))
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["public_url"], Value::Null);
    assert_eq!(cleared["acme_email"], "certs@example.org", "{cleared}");
    let (_, hook) = berth.api("GET", "/apps/hooked/webhook", None).await;
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .starts_with("https://panel.test/api/v1/hooks/hooked/"),
        "{hook}"
    );
    let (_, audit) = berth.api("GET", "/audit?limit=20", None).await;
    let changes = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "PATCH /api/v1/settings" && e["status"] == 200)
        .count();
    assert_eq!(changes, 2, "{audit}");
}

/// A TLS connection to the edge for `host`, trusting `root`.
async fn connect(
    berth: &Berth,
    root: &std::path::Path,
    host: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&berth.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    connector.connect(name, tcp).await.unwrap()
}

fn leaf_of(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One keep-alive HTTP/1.1 GET on an open connection; returns the status line.
async fn get_on(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
) -> String {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_string();
            }
        }
    }
}

#[tokio::test]
async fn renewal_replaces_the_certificate_while_a_connection_stays_open() {
    // Certificates live 30 s: renewal is due after 20 s.
    let (mut berth, pebble) = berth_with_pebble("", Some(30)).await;
    deploy_letsencrypt_web(&mut berth).await;
    let first = wait_valid(&berth, &pebble, "web.test").await;
    let first_expiry = first["domains"][0]["expires_at"].clone();
    assert!(first["domains"][0]["renew_at"].is_string(), "{first}");
    let root = pebble.issuing_root();
    let mut open = connect(&berth, &root, "web.test").await;
    let old_leaf = leaf_of(&open);
    assert!(get_on(&mut open, "web.test").await.contains("200"));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = berth.api("GET", "/certificates", None).await;
        if list["domains"][0]["expires_at"] != first_expiry
            && list["domains"][0]["status"] == "valid"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal: {list}\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The open connection goes on with the certificate it has; a new one
    // gets the successor.
    assert!(get_on(&mut open, "web.test").await.contains("200"));
    let fresh = connect(&berth, &root, "web.test").await;
    assert_ne!(
        leaf_of(&fresh),
        old_leaf,
        "a new connection gets the new certificate"
    );
    drop(pebble);
    berth.terminate().await;
}
