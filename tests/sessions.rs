//! People signing in, against the real binary: first-run setup with the
//! code from the data directory, cookies and their CSRF token, TOTP
//! enrolment, the second factor (with a new cookie), backup codes,
//! signing out, the limit on failed sign-ins, and one's own sessions. The
//! admin token keeps working throughout.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use support::Berth;
use totp_rs::{Algorithm, Secret, TOTP};

/// What a browser holds: the session cookie and its CSRF token.
#[derive(Clone, Default)]
struct Jar {
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// The session secret a `Set-Cookie` carries.
    fn cookie(&self) -> String {
        let set = self
            .headers
            .get("set-cookie")
            .expect("a Set-Cookie header")
            .to_str()
            .unwrap();
        let value = set.strip_prefix("berth_session=").expect(set);
        value.split(';').next().unwrap().to_string()
    }

    /// The jar of a sign-in answer.
    fn jar(&self) -> Jar {
        Jar {
            cookie: Some(self.cookie()),
            csrf: self.body["csrf_token"].as_str().map(String::from),
        }
    }
}

async fn call(
    berth: &Berth,
    method: &str,
    path: &str,
    body: Option<Value>,
    jar: &Jar,
    extra: &[(&str, &str)],
) -> Answer {
    let url = format!("http://{}/api/v1{path}", berth.admin);
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(cookie) = &jar.cookie {
        req = req.header("cookie", format!("theme=dark; berth_session={cookie}"));
    }
    if let Some(csrf) = &jar.csrf {
        req = req.header("x-csrf-token", csrf);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn totp_code(base32: &str, unix: u64) -> String {
    let secret = Secret::Encoded(base32.to_string()).to_bytes().unwrap();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).generate(unix)
}

async fn sign_in(berth: &Berth, username: &str, password: &str) -> Answer {
    let body = json!({"username": username, "password": password});
    call(berth, "POST", "/session", Some(body), &Jar::default(), &[]).await
}

#[tokio::test]
async fn setup_sign_in_second_factor_sign_out_limits_and_sessions() {
    let berth = Berth::start().await;
    let nobody = Jar::default();
    let password = "correct horse battery";

    // ---- first run: the setup code from the data directory ----
    let a = call(&berth, "GET", "/setup", None, &nobody, &[]).await;
    assert_eq!((a.status, &a.body), (200, &json!({"needed": true})));
    let code_file = berth.data_dir().join("setup-code");
    let code = std::fs::read_to_string(&code_file)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&code_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(berth
        .log()
        .contains(&format!("give this setup code: {code}")));
    let setup = |code: &str, username: &str| json!({"setup_code": code, "username": username, "password": password});
    let a = call(
        &berth,
        "POST",
        "/setup",
        Some(setup("AAAAA-AAAAA-AAAAA-AAAAA", "ann")),
        &nobody,
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "invalid_setup_code");
    let a = call(
        &berth,
        "POST",
        "/setup",
        Some(setup(&code, "ann")),
        &nobody,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["user"]["role"], "owner");
    assert_eq!(a.body["pending_second_factor"], false);
    let set = a.headers["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{part} missing from {set}");
    }
    let max_age: i64 = set
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((604_700..=604_800).contains(&max_age), "7 days: {set}");
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!code_file.exists(), "the used code's file goes");
    let first = a.jar();
    let a = call(
        &berth,
        "POST",
        "/setup",
        Some(setup(&code, "bob")),
        &nobody,
        &[],
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("setup is done; sign in"));
    let a = call(&berth, "GET", "/setup", None, &nobody, &[]).await;
    assert_eq!(a.body["needed"], false);

    // ---- the cookie: who am I, and changes only with the CSRF token ----
    let a = call(&berth, "GET", "/session", None, &first, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["user"]["username"], "ann");
    assert_eq!(a.body["csrf_token"].as_str(), first.csrf.as_deref());
    let cross = [("sec-fetch-site", "cross-site")];
    let a = call(&berth, "POST", "/session/totp", None, &first, &cross).await;
    assert_eq!((a.status, &a.body["error"]["code"]), (403, &json!("csrf")));
    let no_token = Jar {
        csrf: None,
        ..first.clone()
    };
    let a = call(&berth, "POST", "/session/totp", None, &no_token, &[]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let evil = [("origin", "http://evil.example")];
    let a = call(&berth, "POST", "/session/totp", None, &first, &evil).await;
    assert_eq!(a.status, 403, "{}", a.body);

    // ---- TOTP enrolment ----
    let same = [("sec-fetch-site", "same-origin")];
    let a = call(&berth, "POST", "/session/totp", None, &first, &same).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let secret = a.body["secret"].as_str().unwrap().to_string();
    assert!(a.body["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/berth:ann?"));
    assert!(a.body["qr_svg"].as_str().unwrap().contains("<svg"));
    let t0 = now();
    let good = totp_code(&secret, t0);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let a = call(
        &berth,
        "POST",
        "/session/totp/confirm",
        Some(json!({"code": wrong})),
        &first,
        &[],
    )
    .await;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (401, &json!("invalid_code"))
    );
    let a = call(
        &berth,
        "POST",
        "/session/totp/confirm",
        Some(json!({"code": good})),
        &first,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let backups: Vec<String> = serde_json::from_value(a.body["backup_codes"].clone()).unwrap();
    assert_eq!(backups.len(), 10);

    // ---- signing out: the old cookie no longer works ----
    let a = call(&berth, "DELETE", "/session", None, &first, &[]).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let a = call(&berth, "GET", "/session", None, &first, &[]).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // ---- signing in with the second factor ----
    let a = sign_in(&berth, "ann", password).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["pending_second_factor"], true);
    let pending = a.jar();
    let a = call(&berth, "GET", "/apps", None, &pending, &[]).await;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (401, &json!("second_factor_required"))
    );
    let a = call(&berth, "GET", "/session", None, &pending, &[]).await;
    assert_eq!(
        (a.status, &a.body["pending_second_factor"]),
        (200, &json!(true))
    );
    let a = call(
        &berth,
        "POST",
        "/session/second-factor",
        Some(json!({"code": wrong})),
        &pending,
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    // The code that confirmed enrolment is spent; the next step's works.
    let a = call(
        &berth,
        "POST",
        "/session/second-factor",
        Some(json!({"code": good})),
        &pending,
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "a TOTP code works once: {}", a.body);
    let next = totp_code(&secret, now().max(t0) + 30);
    let a = call(
        &berth,
        "POST",
        "/session/second-factor",
        Some(json!({"code": next})),
        &pending,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["pending_second_factor"], false);
    let full = a.jar();
    assert_ne!(
        full.cookie, pending.cookie,
        "a new secret after the second factor"
    );
    let a = call(&berth, "GET", "/apps", None, &full, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call(&berth, "GET", "/session", None, &pending, &[]).await;
    assert_eq!(a.status, 401, "the pending session is gone");

    // ---- a backup code works once ----
    let a = sign_in(&berth, "ann", password).await;
    let p2 = a.jar();
    let a = call(
        &berth,
        "POST",
        "/session/second-factor",
        Some(json!({"code": backups[0]})),
        &p2,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let by_backup = a.jar();
    let a = sign_in(&berth, "ann", password).await;
    let p3 = a.jar();
    let a = call(
        &berth,
        "POST",
        "/session/second-factor",
        Some(json!({"code": backups[0]})),
        &p3,
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "a used backup code: {}", a.body);

    // ---- turning the second factor off ----
    let off = |code: &str| json!({"password": password, "code": code});
    let a = call(
        &berth,
        "DELETE",
        "/session/totp",
        Some(json!({"password": "nope nope nope", "code": backups[1]})),
        &full,
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = call(
        &berth,
        "DELETE",
        "/session/totp",
        Some(off(&backups[1])),
        &full,
        &[],
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = call(&berth, "GET", "/session", None, &full, &[]).await;
    assert_eq!(a.body["user"]["two_factor"], false);

    // ---- failed sign-ins are limited per account ----
    for i in 0..5 {
        let a = sign_in(&berth, "ann", "not the password").await;
        assert_eq!(
            (a.status, &a.body["error"]["code"]),
            (401, &json!("invalid_credentials")),
            "try {i}"
        );
    }
    let a = sign_in(&berth, "ann", password).await;
    assert_eq!(a.status, 429, "{}", a.body);
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("too many failed sign-ins; try again in 15 minutes"),
        "{message}"
    );
    // Unknown users get the same answer as a wrong password.
    let a = sign_in(&berth, "nobody", password).await;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (401, &json!("invalid_credentials"))
    );
    let (status, audit) = berth.api("GET", "/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit.as_array().unwrap();
    let seen = |actor: &str, status: u64| {
        entries.iter().any(|e| {
            e["action"] == "POST /api/v1/session" && e["actor"] == actor && e["status"] == status
        })
    };
    assert!(
        seen("user:ann", 401) && seen("user:ann", 429) && seen("anonymous", 401),
        "{audit}"
    );
    assert!(seen("user:ann", 200));

    // ---- one's own sessions ----
    let a = call(&berth, "GET", "/sessions", None, &full, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let list = a.body.as_array().unwrap();
    assert_eq!(
        list.iter().filter(|s| s["current"] == true).count(),
        1,
        "{}",
        a.body
    );
    let other = list
        .iter()
        .find(|s| s["current"] == false && s["pending_second_factor"] == false)
        .expect("the session signed in with the backup code");
    let other_id = other["id"].as_str().unwrap().to_string();
    // Someone else cannot end it.
    let (status, body) = berth
        .api(
            "POST",
            "/users",
            Some(json!({"username": "bob", "password": password})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let bob = sign_in(&berth, "bob", password).await.jar();
    let a = call(
        &berth,
        "DELETE",
        &format!("/sessions/{other_id}"),
        None,
        &bob,
        &[],
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let a = call(
        &berth,
        "DELETE",
        &format!("/sessions/{other_id}"),
        None,
        &full,
        &[],
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = call(&berth, "GET", "/session", None, &by_backup, &[]).await;
    assert_eq!(a.status, 401, "the revoked session: {}", a.body);
    let a = call(&berth, "DELETE", "/sessions/nope", None, &full, &[]).await;
    assert_eq!(a.status, 404, "{}", a.body);

    // ---- the admin token works and has no session ----
    let (status, body) = berth.api("GET", "/apps", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = berth.api("GET", "/session", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("not_a_session"))
    );
    let (status, _) = berth.api("GET", "/sessions", None).await;
    assert_eq!(status, 400);
    let (status, _) = berth.api("DELETE", "/sessions/x", None).await;
    assert_eq!(status, 404);
}
