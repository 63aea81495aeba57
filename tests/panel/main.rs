//! The panel in a real browser: Debian's chromium driven over WebDriver
//! (chromedriver on a free loopback port, fantoccini) against the real
//! binary. First-run setup with the setup code, the overview, an app made
//! from a local image, deployed with its live log, served through the
//! edge and rolled back; its storage (a volume, the strategy); this
//! berth's settings (ACME email, public URL); a project's page (its apps, deployments and
//! people; a refused delete); a member limited to one project who cannot
//! see the other one; two-factor sign-in on and off, and an owner
//! resetting a member's; revoking another session; a change without the
//! CSRF token refused. A second run: an app from git made with build
//! options in the form, a domain removed, a queued and a running deployment
//! cancelled.
//! Screenshots of every page, desktop and 375 px wide, go to
//! `target/panel-screenshots/`.
//!
//! The tests take turns (one chromium and one berth at a time), so their
//! deadlines hold on a small machine.

#[path = "../support/mod.rs"]
mod support;

mod apps;
mod browser;
mod first_run;
mod member;
mod people;
mod projects;
mod sources;
mod storage;

use serde_json::json;
use support::{Berth, Image};

use browser::Driver;

/// One browser test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn panel_in_a_browser_from_setup_to_rollback_members_and_csrf() {
    let _turn = SERIAL.lock().await;
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
    first_run::page_headers_and_assets(&admin).await;
    let driver = Driver::start();
    let c = driver.browser().await;

    first_run::setup_and_overview(&c, &berth).await;
    apps::new_app_deploy_and_roll_back(&c, &berth, &v1, &v2).await;
    storage::volume_and_strategy(&c, &berth).await;
    storage::instance_settings(&c, &berth).await;
    let mia = people::people_and_keys(&c, &berth).await;
    projects::owner_sees_a_project(&c, &berth).await;
    people::revoke_another_session(&c, &berth).await;

    // Two-factor sign-in on; CSRF; out and in again with a code; off.
    let mut used = 0;
    let secret = people::two_factor_on(&c, &mut used).await;
    people::csrf_refused(&c, &berth).await;
    people::sign_out_and_in_with_code(&c, &berth, &secret, &mut used).await;
    people::two_factor_off(&c, &berth, &secret, &mut used).await;

    // The member, in a browser of their own, sees only the shop project.
    let m = driver.browser().await;
    member::member_sees_one_project(&m, &admin).await;
    projects::member_sees_only_granted_projects(&m, &admin).await;
    member::member_turns_two_factor_on(&m, &berth).await;
    people::owner_resets_two_factor(&c, &berth, &mia, &m).await;
    m.close().await.unwrap();
    c.close().await.unwrap();

    member::dark_scheme(&driver, &admin).await;
}

#[tokio::test]
async fn panel_app_from_git_with_build_options_domains_and_cancel() {
    let _turn = SERIAL.lock().await;
    let berth = Berth::start().await;
    let driver = Driver::start();
    let c = driver.browser().await;
    first_run::owner_signed_in(&c, &berth).await;
    let git = sources::app_from_git_with_build_options(&c, &berth).await;
    sources::remove_a_domain(&c, &berth).await;
    sources::cancel_deployments(&c, &berth, &git).await;
    c.close().await.unwrap();
}
