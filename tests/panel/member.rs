//! A member limited to one project, in a browser of her own: signed in
//! by keyboard alone, she sees only that project's apps and gets the
//! 404 page for another's; she turns two-factor sign-in on. The dark
//! scheme, for the eye.

use fantoccini::key::Key;
use fantoccini::{Client, Locator};

use crate::browser::{
    click, fill, fresh_code, shoot, sign_in, text, wait_nonempty, wait_path, wait_text, Driver,
};
use crate::support::Berth;

/// The member `mia` signs in by keyboard and looks around.
pub async fn member_sees_one_project(m: &Client, admin: &str) {
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
    wait_path(m, "/").await;
    let apps = wait_text(m, "#apps", "web", 10).await;
    assert!(!apps.contains("other"), "{apps}");
    let projects = text(m, "#projects").await;
    assert!(
        projects.contains("shop") && !projects.contains("blog"),
        "{projects}"
    );
    shoot(m, "member-overview").await;
    m.goto(&format!("http://{admin}/apps/other")).await.unwrap();
    wait_text(m, "h1", "Not found", 10).await;
    shoot(m, "member-404").await;
    m.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    wait_text(m, "h1", "web", 10).await;
    // deploy, not write: no delete button.
    assert!(m
        .find(Locator::Css("button.danger[data-method=DELETE]"))
        .await
        .is_err());
    shoot(m, "member-app").await;
    m.goto(&format!("http://{admin}/apps/new")).await.unwrap();
    shoot(m, "member-new-app").await;
}

/// She sets up two-factor sign-in with her own authenticator secret.
pub async fn member_turns_two_factor_on(m: &Client, berth: &Berth) {
    let admin = &berth.admin;
    m.goto(&format!("http://{admin}/settings")).await.unwrap();
    click(m, "#totp-start").await;
    let secret = wait_nonempty(m, "#totp-secret", 10).await;
    let mut used = 0;
    let code = fresh_code(&secret, &mut used).await;
    fill(m, "#totp-code", &code).await;
    click(m, "#totp button[type=submit]").await;
    wait_nonempty(m, "#backup-codes", 10).await;
    shoot(m, "member-2fa").await;
}

/// The sign-in page and the member's pages in the dark scheme.
pub async fn dark_scheme(driver: &Driver, admin: &str) {
    // The dark scheme, for the eye: the sign-in page and the member's app.
    let d = driver
        .browser_with(&[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ])
        .await;
    sign_in(&d, admin, "mia", "mia's long password").await;
    wait_path(&d, "/").await;
    shoot(&d, "dark-overview").await;
    d.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    shoot(&d, "dark-app").await;
    d.goto(&format!("http://{admin}/projects/shop"))
        .await
        .unwrap();
    shoot(&d, "dark-project").await;
    d.close().await.unwrap();
}
