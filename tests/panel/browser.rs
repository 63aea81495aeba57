//! The browser side of the panel tests: chromedriver on a free loopback
//! port, chromium sessions with their own profiles, screenshots at desktop
//! width and at 375 px, and small waits on what the page shows; plus an
//! RFC 6238 code generator for two-factor sign-in.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support;

/// chromedriver on a free port, killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver)");
        support::wait_listening(port, 20, || "chromedriver did not listen".into());
        Driver { child, port }
    }

    /// A new browser session: its own profile, so no cookies.
    pub async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// Like [`Driver::browser`], with more chromium flags.
    pub async fn browser_with(&self, extra: &[&str]) -> Client {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ];
        args.extend_from_slice(extra);
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("panel-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page at desktop width and at 375 px.
pub async fn shoot(c: &Client, name: &str) {
    let dir = shots_dir();
    for (suffix, w, h) in [("desktop", 1280, 1000), ("375", 375, 900)] {
        c.set_window_size(w, h).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
    }
    c.set_window_size(1280, 1000).await.unwrap();
}

/// Like [`shoot`], plus the end of the page at 375 px (`<name>-375-end`),
/// for pages taller than a phone's screen.
pub async fn shoot_long(c: &Client, name: &str) {
    shoot(c, name).await;
    let dir = shots_dir();
    c.set_window_size(375, 900).await.unwrap();
    c.execute("window.scrollTo(0, document.body.scrollHeight)", Vec::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}-375-end.png")), png).unwrap();
    c.execute("window.scrollTo(0, 0)", Vec::new())
        .await
        .unwrap();
    c.set_window_size(1280, 1000).await.unwrap();
}

pub async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks a button that asks for confirmation, and confirms.
pub async fn click_confirmed(c: &Client, css: &str) {
    click(c, css).await;
    wait_until(10, || async { c.accept_alert().await.is_ok() }).await;
}

pub async fn wait_until<F, Fut>(secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn path_of(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

pub async fn wait_path(c: &Client, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = path_of(c).await;
        if path.starts_with(prefix) {
            return;
        }
        assert!(Instant::now() < deadline, "still at {path}, not {prefix}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub async fn wait_text(c: &Client, css: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = text(c, css).await;
        if t.contains(needle) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed {needle:?}; it shows:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn wait_nonempty(c: &Client, css: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = text(c, css).await;
        if !t.trim().is_empty() {
            return t;
        }
        assert!(Instant::now() < deadline, "{css} stayed empty");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn sign_in(c: &Client, admin: &str, user: &str, password: &str) {
    c.goto(&format!("http://{admin}/login")).await.unwrap();
    fill(c, "#username", user).await;
    fill(c, "#password", password).await;
    click(c, "#sign-in button[type=submit]").await;
}

/// RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `step`.
pub fn totp(secret: &str, step: u64) -> String {
    let mut bits = 0u64;
    let mut n = 0;
    let mut key = Vec::new();
    for ch in secret.trim().trim_end_matches('=').chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .find(ch.to_ascii_uppercase())
            .expect("base32") as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            key.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key),
        &step.to_be_bytes(),
    );
    let h = tag.as_ref();
    let off = (h[19] & 0xf) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

pub fn time_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// A code from a time step no code was given for yet (servers refuse a
/// step used before).
pub async fn fresh_code(secret: &str, used: &mut u64) -> String {
    while time_step() <= *used {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    *used = time_step();
    totp(secret, *used)
}

#[test]
fn totp_matches_rfc_6238() {
    // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp(secret, 1), "287082");
    assert_eq!(totp(secret, 1_111_111_109 / 30), "081804");
}

/// Chooses `value` in the `<select>` at `css`.
pub async fn select(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

/// Whether an element matches `css` now.
pub async fn exists(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.is_ok()
}

/// Waits until an element matches `css`.
pub async fn wait_for(c: &Client, css: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !exists(c, css).await {
        assert!(Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `berth_session` cookie of the browser, as a `Cookie` header value.
pub async fn session_cookie(c: &Client) -> String {
    let cookie = c.get_named_cookie("berth_session").await.unwrap();
    format!("berth_session={}", cookie.value())
}
