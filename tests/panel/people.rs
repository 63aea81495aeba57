//! Settings in the browser: people (a member limited to one project, her
//! grant changed, the last owner refused a step down), an API key shown
//! once, another session of one's own revoked, two-factor sign-in on and
//! off, an owner resetting a member's second factor; and the CSRF check
//! of changes made with the session's cookie.

use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::apps::wait_served;
use crate::browser::{
    click, click_confirmed, exists, fill, fresh_code, select, session_cookie, shoot, sign_in, text,
    wait_for, wait_nonempty, wait_path, wait_text, wait_until,
};
use crate::support::Berth;

/// The owner's password.
const PASSWORD: &str = "correct horse battery";

/// Whether the user `id` has two-factor sign-in on, by the API.
async fn two_factor_of(berth: &Berth, username: &str) -> bool {
    let (_, users) = berth.api("GET", "/users", None).await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap()["two_factor"]
        == true
}

/// People and keys: the member `mia` (shop, deploy, then read) and a key
/// `ci`; returns mia's id.
pub async fn people_and_keys(c: &Client, berth: &Berth) -> String {
    let admin = &berth.admin;
    // Settings: a member limited to the shop project; an API key, shown once.
    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    fill(c, "#new-username", "mia").await;
    fill(c, "#new-password", "mia's long password").await;
    select(c, "#grant-project", "shop").await;
    select(c, "#grant-scope", "deploy").await;
    click(c, "form[data-api='/api/v1/users'] button[type=submit]").await;
    wait_text(c, "#people-h + .table-wrap", "mia", 10).await;
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
    click(c, &format!("#edit-{mia} > summary")).await;
    select(c, &format!("#grant-{mia}-0-scope"), "read").await;
    shoot(c, "settings-person-edit").await;
    click(
        c,
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
    shoot(c, "settings-person-edited").await;
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
    click(c, &format!("#edit-{me} > summary")).await;
    select(c, &format!("#role-{me}"), "admin").await;
    click(
        c,
        &format!("#edit-{me} form[data-edit=role] button[type=submit]"),
    )
    .await;
    wait_text(c, &format!("#role-{me} + .field-error"), "last owner", 10).await;
    fill(c, "#key-name", "ci").await;
    click(c, "form[data-api='/api/v1/api-keys'] button[type=submit]").await;
    let key = wait_text(c, "#new-key-value", "berth_key_", 10).await;
    let (status, _) = berth.api_raw("GET", "/apps", None, Some(key.trim())).await;
    assert_eq!(status, 200, "the key shown works");
    shoot(c, "settings").await;
    mia
}

/// A second sign-in of the owner (another client) is listed in Settings;
/// signing it out there ends it: its cookie gets 401 from the API.
pub async fn revoke_another_session(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    let http = reqwest::Client::new();
    let signed = http
        .post(format!("http://{admin}/api/v1/session"))
        .header("user-agent", "second-laptop/1.0")
        .json(&json!({"username": "owner", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let other = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let session: Value = signed.json().await.unwrap();
    let id = session["id"].as_str().unwrap().to_string();
    let apps = format!("http://{admin}/api/v1/apps");
    let before = http
        .get(&apps)
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200, "the other session works");

    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    let list = wait_text(c, "#sessions-h + ul", "second-laptop/1.0", 10).await;
    assert!(list.contains("this browser"), "{list}");
    shoot(c, "settings-sessions").await;
    let button = format!("button[data-api='/api/v1/sessions/{id}']");
    click(c, &button).await;
    // The page reloads without it.
    wait_until(10, || async {
        !exists(c, &button).await && !text(c, "#sessions-h + ul").await.contains("second-laptop")
    })
    .await;
    wait_text(c, "#sessions-h + ul", "this browser", 10).await;
    let after = http
        .get(&apps)
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the revoked session's cookie is dead");
    let mine = http
        .get(&apps)
        .header("cookie", session_cookie(c).await)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200, "this browser's session lives on");
}

/// Enrols the owner in two-factor sign-in (the QR's secret, a code, ten
/// backup codes); returns the secret.
pub async fn two_factor_on(c: &Client, used: &mut u64) -> String {
    // Two-factor sign-in: enrol with the QR's secret, confirm, get the
    // backup codes; then sign out and in again with a code.
    click(c, "#totp-start").await;
    let secret = wait_nonempty(c, "#totp-secret", 10).await;
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
    let code = fresh_code(&secret, used).await;
    fill(c, "#totp-code", &code).await;
    click(c, "#totp button[type=submit]").await;
    let codes = wait_nonempty(c, "#backup-codes", 10).await;
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "{codes}"
    );
    shoot(c, "settings-2fa").await;
    secret
}

/// Changes with the session's cookie but without the token, or from
/// another site, are refused.
pub async fn csrf_refused(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    // CSRF: the session's cookie without the token (or from another site)
    // cannot change anything.
    let cookie = session_cookie(c).await;
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
    wait_served(berth, "web.test", "v1").await;
}

/// Signs out (the old cookie is dead) and in again with a code.
pub async fn sign_out_and_in_with_code(c: &Client, berth: &Berth, secret: &str, used: &mut u64) {
    let admin = &berth.admin;
    let cookie = session_cookie(c).await;
    let http = reqwest::Client::new();
    click(c, "button[data-api='/api/v1/session'][data-method=DELETE]").await;
    wait_path(c, "/login").await;
    shoot(c, "login").await;
    // The old cookie is dead after signing out.
    let replay = http
        .get(format!("http://{admin}/api/v1/apps"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    sign_in(c, admin, "owner", "correct horse battery").await;
    wait_until(10, || async {
        c.find(Locator::Css("#second-factor:not([hidden])"))
            .await
            .is_ok()
    })
    .await;
    shoot(c, "login-second-factor").await;
    let code = fresh_code(secret, used).await;
    fill(c, "#code", &code).await;
    click(c, "#second-factor button[type=submit]").await;
    wait_path(c, "/").await;
    wait_text(c, "#apps", "web", 10).await;
}

/// Turns two-factor sign-in off in Settings: a wrong code is refused on
/// the form, the password and a fresh code turn it off.
pub async fn two_factor_off(c: &Client, berth: &Berth, secret: &str, used: &mut u64) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    wait_for(c, "#off-password", 10).await;
    shoot(c, "settings-2fa-on").await;
    let form = "form[data-api='/api/v1/session/totp']";
    fill(c, "#off-password", PASSWORD).await;
    fill(c, "#off-code", "000000").await;
    click_confirmed(c, &format!("{form} button[type=submit]")).await;
    wait_until(10, || async {
        !text(c, &format!("{form} .field-error")).await.is_empty()
            || !text(c, &format!("{form} .form-error")).await.is_empty()
    })
    .await;
    assert!(
        two_factor_of(berth, "owner").await,
        "a wrong code changes nothing"
    );
    let code = fresh_code(secret, used).await;
    fill(c, "#off-code", &code).await;
    click_confirmed(c, &format!("{form} button[type=submit]")).await;
    // The page reloads and offers to set it up again.
    wait_for(c, "#totp-start", 10).await;
    wait_text(c, "#tfa-h + p", "off", 10).await;
    assert!(!two_factor_of(berth, "owner").await);
    shoot(c, "settings-2fa-off").await;
}

/// An owner resets the member's second factor from her edit form in the
/// People table: it is off, and her session `m` has ended.
pub async fn owner_resets_two_factor(c: &Client, berth: &Berth, mia: &str, m: &Client) {
    let admin = &berth.admin;
    assert!(two_factor_of(berth, "mia").await);
    c.goto(&format!("http://{admin}/settings")).await.unwrap();
    click(c, &format!("#edit-{mia} > summary")).await;
    let reset = format!("#edit-{mia} button[data-body*='two_factor']");
    wait_for(c, &reset, 10).await;
    shoot(c, "settings-person-2fa").await;
    click_confirmed(c, &reset).await;
    wait_until(10, || async { !two_factor_of(berth, "mia").await }).await;
    // The page reloads: no reset button any more.
    wait_until(10, || async {
        exists(c, &format!("#edit-{mia}:not([open])")).await && !exists(c, &reset).await
    })
    .await;
    m.goto(&format!("http://{admin}/settings")).await.unwrap();
    wait_path(m, "/login").await;
}
