//! A project's page: reached from the overview and from an app's page; it
//! shows the project's apps, their deployments and who holds a grant on
//! it; its description changes; deleting it is refused while it has apps
//! (the API's reason shown on the form) and works once it has none. A
//! member sees a project she has a grant on, without the owner's parts,
//! and the same 404 page for one she has none on as for one that does
//! not exist.

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{
    click, click_confirmed, exists, fill, session_cookie, shoot, shoot_long, text, wait_path,
    wait_text,
};
use crate::support::Berth;

/// The owner on the page of `shop` (the app `web`, the member `mia`).
pub async fn owner_sees_a_project(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/")).await.unwrap();
    click(c, "#projects a[href='/projects/shop']").await;
    wait_path(c, "/projects/shop").await;
    wait_text(c, "h1", "shop", 10).await;
    wait_text(c, "#project-description-text", "the shop's apps", 10).await;
    let apps = wait_text(c, "#apps", "web", 10).await;
    assert!(
        apps.contains("running") && !apps.contains("other"),
        "{apps}"
    );
    let recent = text(c, "#recent").await;
    assert!(
        recent.contains("web") && recent.contains("succeeded"),
        "{recent}"
    );
    let grants = text(c, "#grants").await;
    assert!(
        grants.contains("mia") && grants.contains("read"),
        "{grants}"
    );
    let people = text(c, "#people-h ~ p").await;
    assert!(people.contains("owner (owner)"), "{people}");
    shoot_long(c, "project").await;

    // The description changes through the API; the page shows the new one.
    fill(c, "#description", "everything the shop runs").await;
    click(c, "#project-edit button[type=submit]").await;
    wait_text(
        c,
        "#project-description-text",
        "everything the shop runs",
        10,
    )
    .await;
    let (_, project) = berth.api("GET", "/projects/shop", None).await;
    assert_eq!(
        project["description"], "everything the shop runs",
        "{project}"
    );

    // Deleting it is refused while it has an app: the reason on the form.
    click_confirmed(c, "#project-delete button[type=submit]").await;
    let refusal = wait_text(c, "#project-delete .form-error", "still has app", 10).await;
    assert!(refusal.contains("web"), "{refusal}");
    shoot_long(c, "project-delete-refused").await;
    let (status, _) = berth.api("GET", "/projects/shop", None).await;
    assert_eq!(status, 200, "the project is still there");

    // "New app in shop" opens the form with the project chosen.
    click(c, "#new-app-here").await;
    wait_path(c, "/apps/new?project=shop").await;
    let chosen = c
        .find(Locator::Css("#project"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("shop"));

    // The app's page links back to its project.
    c.goto(&format!("http://{admin}/apps/web")).await.unwrap();
    click(c, "#app-project").await;
    wait_path(c, "/projects/shop").await;

    // A project without apps is deleted, and the overview goes on without it.
    let (status, body) = berth
        .api("POST", "/projects", Some(json!({"name": "scratch"})))
        .await;
    assert_eq!(status, 201, "{body}");
    c.goto(&format!("http://{admin}/projects/scratch"))
        .await
        .unwrap();
    wait_text(c, "#apps", "No apps in this project yet", 10).await;
    shoot(c, "project-empty").await;
    click_confirmed(c, "#project-delete button[type=submit]").await;
    wait_path(c, "/").await;
    wait_text(c, "#projects", "shop", 10).await;
    assert!(!text(c, "#projects").await.contains("scratch"));
    let (status, _) = berth.api("GET", "/projects/scratch", None).await;
    assert_eq!(status, 404);

    // One that does not exist: the 404 page, with status 404.
    let missing = reqwest::Client::new()
        .get(format!("http://{admin}/projects/nope"))
        .header("cookie", session_cookie(c).await)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The member `mia` (read on shop, nothing on blog).
pub async fn member_sees_only_granted_projects(m: &Client, admin: &str) {
    m.goto(&format!("http://{admin}/")).await.unwrap();
    click(m, "#projects a[href='/projects/shop']").await;
    wait_path(m, "/projects/shop").await;
    wait_text(m, "#apps", "web", 10).await;
    // Read only: nothing to change, and no people section.
    for part in [
        "#new-app-here",
        "#project-edit",
        "#project-delete",
        "#people-h",
    ] {
        assert!(!exists(m, part).await, "{part} is shown to a reader");
    }
    shoot(m, "member-project").await;

    // Without a grant: the same page as for a project that does not exist.
    m.goto(&format!("http://{admin}/projects/blog"))
        .await
        .unwrap();
    wait_text(m, "h1", "Not found", 10).await;
    let hidden = text(m, "main").await;
    shoot(m, "member-project-404").await;
    m.goto(&format!("http://{admin}/projects/nope"))
        .await
        .unwrap();
    wait_text(m, "h1", "Not found", 10).await;
    let missing = text(m, "main").await;
    assert_eq!(hidden.replace("blog", "nope"), missing);
    let status = reqwest::Client::new()
        .get(format!("http://{admin}/projects/blog"))
        .header("cookie", session_cookie(m).await)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}
