//! The panel in a real browser: Debian's chromium driven over WebDriver
//! (chromedriver on a free loopback port, fantoccini) against the real
//! binary. First-run setup with the setup code, the overview, an app made
//! from a local image, deployed with its live log, served through the
//! edge and rolled back; a member limited to one project who cannot see
//! the other one; two-factor sign-in; a change without the CSRF token
//! refused. Screenshots of every page, desktop and 375 px wide, go to
//! `target/panel-screenshots/`.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{Berth, Image};

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
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
    async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// Like [`Driver::browser`], with more chromium flags.
    async fn browser_with(&self, extra: &[&str]) -> Client {
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
async fn shoot(c: &Client, name: &str) {
    let dir = shots_dir();
    for (suffix, w, h) in [("desktop", 1280, 1000), ("375", 375, 900)] {
        c.set_window_size(w, h).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
    }
    c.set_window_size(1280, 1000).await.unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks a button that asks for confirmation, and confirms.
async fn click_confirmed(c: &Client, css: &str) {
    click(c, css).await;
    wait_until(10, || async { c.accept_alert().await.is_ok() }).await;
}

async fn wait_until<F, Fut>(secs: u64, mut check: F)
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

async fn path_of(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

async fn wait_path(c: &Client, prefix: &str) {
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

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_text(c: &Client, css: &str, needle: &str, secs: u64) -> String {
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

async fn wait_nonempty(c: &Client, css: &str, secs: u64) -> String {
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

async fn sign_in(c: &Client, admin: &str, user: &str, password: &str) {
    c.goto(&format!("http://{admin}/login")).await.unwrap();
    fill(c, "#username", user).await;
    fill(c, "#password", password).await;
    click(c, "#sign-in button[type=submit]").await;
}

/// RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `step`.
fn totp(secret: &str, step: u64) -> String {
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

fn time_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// A code from a time step no code was given for yet (servers refuse a
/// step used before).
async fn fresh_code(secret: &str, used: &mut u64) -> String {
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

/// Waits until the deployment on the page succeeded and the page was
/// reloaded to show the app's new state (a log followed live reloads it).
async fn wait_deployed(c: &Client) {
    wait_text(c, "#log", "succeeded", 90).await;
    wait_until(10, || async {
        c.find(Locator::Css("pre#log:not([data-live])"))
            .await
            .is_ok()
            && text(c, "pre#log").await.contains("succeeded")
    })
    .await;
    wait_text(c, "h1 + .status", "running", 10).await;
}

/// Waits until the app answers through the edge with `version`.
async fn wait_served(berth: &Berth, host: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = berth.get(host, "/").await;
        if status == 200 && body.starts_with(version) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} answers {status} {body:?}, not {version}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pages forbid framing and inline script; assets are cached for good
/// under hashed names; a page with its scripts stays under 100 KB.
async fn page_headers_and_assets(admin: &str) {
    let http = reqwest::Client::new();
    let page = http
        .get(format!("http://{admin}/setup"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    let html = page.text().await.unwrap();
    let mut total = html.len();
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "{html}");
    for a in assets {
        let r = http.get(format!("http://{admin}{a}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{a}");
        let cache = r.headers()["cache-control"].to_str().unwrap().to_string();
        assert!(cache.contains("immutable"), "{a}: {cache}");
        total += r.bytes().await.unwrap().len();
    }
    assert!(
        total < 100_000,
        "the setup page with its assets is {total} bytes"
    );
    // No session: every page sends you to setup first.
    let none = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/apps/other", "/settings", "/login"] {
        let r = none
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/setup", "{path}");
    }
}

#[tokio::test]
async fn panel_in_a_browser_from_setup_to_rollback_members_and_csrf() {
    let mut berth = Berth::start().await;
    let v1 = berth.image(Image::Web("v1"));
    let v2 = berth.image(Image::Web("v2"));
    let (status, body) = berth
        .api("POST", "/projects", Some(json!({"name": "blog"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = berth
        .api(
            "POST",
            "/apps",
            Some(json!({"name": "other", "project": "blog", "image": v1, "port": 8080})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let admin = berth.admin.clone();
    page_headers_and_assets(&admin).await;
    let driver = Driver::start();
    let c = driver.browser().await;

    // First run: the setup page, with the code from the data directory.
    c.goto(&format!("http://{admin}/")).await.unwrap();
    wait_path(&c, "/setup").await;
    shoot(&c, "setup").await;
    let code = std::fs::read_to_string(berth.data_dir().join("setup-code")).unwrap();
    fill(&c, "#setup_code", "wrong-code").await;
    fill(&c, "#username", "owner").await;
    fill(&c, "#password", "correct horse battery").await;
    click(&c, "button[type=submit]").await;
    wait_until(10, || async {
        !text(&c, ".field-error").await.is_empty() || !text(&c, ".form-error").await.is_empty()
    })
    .await;
    shoot(&c, "setup-error").await;
    fill(&c, "#setup_code", code.trim()).await;
    click(&c, "button[type=submit]").await;
    wait_path(&c, "/").await;
    wait_text(&c, "h1", "Overview", 10).await;
    wait_text(&c, "#apps", "other", 10).await;
    fill(&c, "#project-name", "shop").await;
    fill(&c, "#project-description", "the shop's apps").await;
    click(&c, "form[data-api='/api/v1/projects'] button[type=submit]").await;
    wait_text(&c, "#projects", "shop", 10).await;
    shoot(&c, "overview").await;

    // A new app: a field error first, shown beside its field.
    click(&c, "a[href='/apps/new']").await;
    wait_path(&c, "/apps/new").await;
    fill(&c, "#name", "Bad Name").await;
    fill(&c, "#image", &v1).await;
    fill(&c, "#port", "8080").await;
    c.find(Locator::Css("#project"))
        .await
        .unwrap()
        .select_by_value("shop")
        .await
        .unwrap();
    fill(&c, "#domain", "web.test").await;
    click(&c, "button[type=submit]").await;
    let error = wait_nonempty(&c, "#name + .field-error", 10).await;
    assert!(!error.is_empty());
    shoot(&c, "new-app-error").await;
    fill(&c, "#name", "web").await;
    click(&c, "button[type=submit]").await;
    wait_path(&c, "/apps/web").await;
    // The health check as the API gives it (the default: auto, 250 ms).
    let health = wait_text(&c, "#health-check", "auto", 10).await;
    assert!(
        health.contains("250 ms") && health.contains("1000 ms"),
        "{health}"
    );
    shoot(&c, "app-new").await;

    // Deploy, watch the live log to its end, see it through the edge.
    click(&c, "button[data-api$='/deployments']").await;
    wait_path(&c, "/apps/web?log=").await;
    wait_deployed(&c).await;
    wait_served(&berth, "web.test", "v1").await;
    click(&c, "#container-logs-button").await;
    wait_text(&c, "#container-logs", "== berth-", 10).await;
    // Followed live (the replica headers come from the event stream), and
    // the same button stops following.
    wait_text(&c, "#container-logs-state", "following live", 10).await;
    wait_text(&c, "#container-logs", ") following", 10).await;
    shoot(&c, "app-deployed").await;
    click(&c, "#container-logs-button").await;
    wait_text(&c, "#container-logs-state", "stopped following", 10).await;

    // A second version, then back to the first.
    fill(&c, "#new-image", &v2).await;
    click(
        &c,
        "form[data-method=PATCH]:not([data-shape]) button[type=submit]",
    )
    .await;
    wait_until(10, || async {
        let value = match c.find(Locator::Css("#new-image")).await {
            Ok(el) => el.prop("value").await.ok().flatten(),
            Err(_) => None,
        };
        value.as_deref() == Some(v2.as_str()) && text(&c, ".field-error").await.is_empty()
    })
    .await;
    // The page reloads after the change; the stored image is the new one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, app) = berth.api("GET", "/apps/web", None).await;
    assert_eq!(app["image"], v2.as_str(), "{app}");
    click(&c, "button[data-api$='/deployments']").await;
    wait_path(&c, "/apps/web?log=").await;
    wait_deployed(&c).await;
    wait_served(&berth, "web.test", "v2").await;
    c.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    click_confirmed(&c, "button[data-api$='/rollback']").await;
    wait_path(&c, "/apps/web?log=").await;
    wait_deployed(&c).await;
    wait_served(&berth, "web.test", "v1").await;
    shoot(&c, "app-rolled-back").await;
    c.goto(&format!("http://{admin}/certificates"))
        .await
        .unwrap();
    shoot(&c, "certificates").await;

    // Settings: a member limited to the shop project; an API key, shown once.
    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    fill(&c, "#new-username", "mia").await;
    fill(&c, "#new-password", "mia's long password").await;
    c.find(Locator::Css("#grant-project"))
        .await
        .unwrap()
        .select_by_value("shop")
        .await
        .unwrap();
    c.find(Locator::Css("#grant-scope"))
        .await
        .unwrap()
        .select_by_value("deploy")
        .await
        .unwrap();
    click(&c, "form[data-api='/api/v1/users'] button[type=submit]").await;
    wait_text(&c, "#people-h + .table-wrap", "mia", 10).await;
    // Her grant changes from deploy to read through the row's edit form.
    let (_, users) = berth.api("GET", "/users", None).await;
    let mia = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "mia")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == mia.as_str())
            .unwrap()["grants"],
        json!([{"project": "shop", "scope": "deploy"}])
    );
    click(&c, &format!("#edit-{mia} > summary")).await;
    c.find(Locator::Css(&format!("#grant-{mia}-0-scope")))
        .await
        .unwrap()
        .select_by_value("read")
        .await
        .unwrap();
    shoot(&c, "settings-person-edit").await;
    click(
        &c,
        &format!("#edit-{mia} form[data-edit=grants] button[type=submit]"),
    )
    .await;
    wait_until(10, || async {
        let (_, user) = berth.api("GET", "/users", None).await;
        user.as_array().is_some_and(|list| {
            list.iter().any(|u| {
                u["id"] == mia.as_str()
                    && u["grants"] == json!([{"project": "shop", "scope": "read"}])
            })
        })
    })
    .await;
    // The page reloads after the change (the edit form closed again).
    wait_until(10, || async {
        c.find(Locator::Css(&format!("#edit-{mia}:not([open])")))
            .await
            .is_ok()
    })
    .await;
    shoot(&c, "settings-person-edited").await;
    // The last owner cannot step down: the API's 409 beside the role.
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    click(&c, &format!("#edit-{me} > summary")).await;
    c.find(Locator::Css(&format!("#role-{me}")))
        .await
        .unwrap()
        .select_by_value("admin")
        .await
        .unwrap();
    click(
        &c,
        &format!("#edit-{me} form[data-edit=role] button[type=submit]"),
    )
    .await;
    wait_text(&c, &format!("#role-{me} + .field-error"), "last owner", 10).await;
    fill(&c, "#key-name", "ci").await;
    click(&c, "form[data-api='/api/v1/api-keys'] button[type=submit]").await;
    let key = wait_text(&c, "#new-key-value", "berth_key_", 10).await;
    let (status, _) = berth.api_raw("GET", "/apps", None, Some(key.trim())).await;
    assert_eq!(status, 200, "the key shown works");
    shoot(&c, "settings").await;

    // Two-factor sign-in: enrol with the QR's secret, confirm, get the
    // backup codes; then sign out and in again with a code.
    let mut used = 0;
    click(&c, "#totp-start").await;
    let secret = wait_nonempty(&c, "#totp-secret", 10).await;
    assert!(secret.len() >= 16, "{secret:?}");
    let qr = c
        .find(Locator::Css("img.qr"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(qr.starts_with("data:image/svg+xml;base64,"), "{qr}");
    let code = fresh_code(&secret, &mut used).await;
    fill(&c, "#totp-code", &code).await;
    click(&c, "#totp button[type=submit]").await;
    let codes = wait_nonempty(&c, "#backup-codes", 10).await;
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "{codes}"
    );
    shoot(&c, "settings-2fa").await;

    // CSRF: the session's cookie without the token (or from another site)
    // cannot change anything.
    let cookie = c.get_named_cookie("berth_session").await.unwrap();
    let cookie = format!("berth_session={}", cookie.value());
    let http = reqwest::Client::new();
    let session: Value = http
        .get(format!("http://{admin}/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    let stop = format!("http://{admin}/api/v1/apps/web/stop");
    let no_token = http
        .post(&stop)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    let cross_site = http
        .post(&stop)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    wait_served(&berth, "web.test", "v1").await;

    click(&c, "button[data-api='/api/v1/session'][data-method=DELETE]").await;
    wait_path(&c, "/login").await;
    shoot(&c, "login").await;
    // The old cookie is dead after signing out.
    let replay = http
        .get(format!("http://{admin}/api/v1/apps"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    sign_in(&c, &admin, "owner", "correct horse battery").await;
    wait_until(10, || async {
        c.find(Locator::Css("#second-factor:not([hidden])"))
            .await
            .is_ok()
    })
    .await;
    shoot(&c, "login-second-factor").await;
    let code = fresh_code(&secret, &mut used).await;
    fill(&c, "#code", &code).await;
    click(&c, "#second-factor button[type=submit]").await;
    wait_path(&c, "/").await;
    wait_text(&c, "#apps", "web", 10).await;
    c.close().await.unwrap();

    // The member, in a browser of their own, sees only the shop project.
    let m = driver.browser().await;
    // By keyboard alone: the username has the focus, Tab, Enter.
    m.goto(&format!("http://{admin}/login")).await.unwrap();
    let focused = m.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("username")
    );
    focused
        .send_keys(&format!(
            "mia{}mia's long password{}",
            char::from(Key::Tab),
            char::from(Key::Enter)
        ))
        .await
        .unwrap();
    wait_path(&m, "/").await;
    let apps = wait_text(&m, "#apps", "web", 10).await;
    assert!(!apps.contains("other"), "{apps}");
    let projects = text(&m, "#projects").await;
    assert!(
        projects.contains("shop") && !projects.contains("blog"),
        "{projects}"
    );
    shoot(&m, "member-overview").await;
    m.goto(&format!("http://{admin}/apps/other")).await.unwrap();
    wait_text(&m, "h1", "Not found", 10).await;
    shoot(&m, "member-404").await;
    m.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    wait_text(&m, "h1", "web", 10).await;
    // deploy, not write: no delete button.
    assert!(m
        .find(Locator::Css("button.danger[data-method=DELETE]"))
        .await
        .is_err());
    shoot(&m, "member-app").await;
    m.goto(&format!("http://{admin}/apps/new")).await.unwrap();
    shoot(&m, "member-new-app").await;
    m.close().await.unwrap();

    // The dark scheme, for the eye: the sign-in page and the member's app.
    let d = driver
        .browser_with(&[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ])
        .await;
    sign_in(&d, &admin, "mia", "mia's long password").await;
    wait_path(&d, "/").await;
    shoot(&d, "dark-overview").await;
    d.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    shoot(&d, "dark-app").await;
    d.close().await.unwrap();
}
