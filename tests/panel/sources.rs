//! Apps that are not just an image: one from a private git repository,
//! made in the new-app form with build options (token, build context,
//! Dockerfile path, build arguments; a refused combination shown beside
//! its field first), built, deployed and served; a domain added and
//! removed (the edge answers 404 for it after), a rule set in a domain's
//! rules form; a queued and a running deployment cancelled from the
//! deployments table.

use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::json;

use crate::apps::{wait_deployed, wait_served};
use crate::browser::{
    click, click_confirmed, exists, fill, path_of, select, shoot, text, wait_for, wait_nonempty,
    wait_path, wait_text, wait_until,
};
use crate::support::git::GitServer;
use crate::support::Berth;

const TOKEN: &str = "ghp_PanelTokenThatMustNeverShow12345";

/// A Dockerfile in `web/` whose build argument ends up in the page.
const DOCKERFILE: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
ARG GREETING=hello\n\
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /www && echo \\\"$GREETING from git\\\" > /www/index.html\"]\n\
CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// The app `site` from git, built with `GREETING=hi there`, at `site.test`.
pub async fn app_from_git_with_build_options(c: &Client, berth: &Berth) -> GitServer {
    let admin = &berth.admin;
    let server = GitServer::start(Some(TOKEN)).await;
    let repo = server.create_repo("site");
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    repo.commit(
        "main",
        &[
            ("web/build.Dockerfile", Some(DOCKERFILE.as_bytes())),
            ("web/busybox", Some(&busybox)),
            ("README", Some(b"the site\n")),
        ],
        "a site",
    );

    c.goto(&format!("http://{admin}/apps/new")).await.unwrap();
    fill(c, "#name", "site").await;
    click(c, "input[name=kind][value=git]").await;
    wait_for(c, "#source-url", 10).await;
    fill(c, "#source-url", &server.url("site")).await;
    fill(c, "#source-branch", "main").await;
    // Detected builds take no Dockerfile: the API's refusal beside it.
    select(c, "#build-type", "auto").await;
    click(c, "#build-options > summary").await;
    fill(c, "#source-token", TOKEN).await;
    fill(c, "#source-path", "web").await;
    fill(c, "#build-dockerfile", "build.Dockerfile").await;
    fill(c, "#build-args", "GREETING=hi there\n").await;
    fill(c, "#port", "8080").await;
    fill(c, "#domain", "site.test").await;
    shoot(c, "new-app-git").await;
    click(c, "form button[type=submit]").await;
    let error = wait_nonempty(c, "#build-dockerfile + .field-error", 10).await;
    assert!(error.to_lowercase().contains("dockerfile"), "{error}");
    shoot(c, "new-app-git-error").await;
    select(c, "#build-type", "dockerfile").await;
    click(c, "form button[type=submit]").await;
    wait_path(c, "/apps/site").await;
    let facts = wait_text(c, "dl.facts", "dockerfile", 10).await;
    assert!(
        facts.contains(&server.url("site"))
            && facts.contains("(main)")
            && facts.contains("build.Dockerfile")
            && facts.contains("GREETING"),
        "{facts}"
    );
    let (_, app) = berth.api("GET", "/apps/site", None).await;
    assert_eq!(app["source"]["path"], "web", "{app}");
    assert_eq!(app["source"]["auth"], "token", "{app}");
    assert_eq!(app["build"]["kind"], "dockerfile", "{app}");
    assert_eq!(app["build"]["dockerfile"], "build.Dockerfile", "{app}");
    assert_eq!(
        app["build"]["args"],
        json!({"GREETING": "hi there"}),
        "{app}"
    );
    assert!(!app.to_string().contains(TOKEN));
    assert!(!c.source().await.unwrap().contains(TOKEN));

    // Built with the argument, deployed, served.
    click(c, "button[data-api$='/deployments']").await;
    wait_path(c, "/apps/site?log=").await;
    wait_deployed(c).await;
    wait_served(berth, "site.test", "hi there from git").await;
    assert!(!text(c, "#log").await.contains(TOKEN));
    shoot(c, "app-git").await;
    server
}

/// A second domain added on the app's page, served, then removed: the
/// edge answers 404 for it, and the first one still serves.
pub async fn remove_a_domain(c: &Client, berth: &Berth) {
    let admin = &berth.admin;
    c.goto(&format!("http://{admin}/apps/site")).await.unwrap();
    fill(c, "#domain-host", "www.site.test").await;
    click(c, "form[data-api$='/domains'] button[type=submit]").await;
    let remove = "button[data-api$='/domains/www.site.test']";
    wait_for(c, remove, 10).await;
    wait_served(berth, "www.site.test", "hi there from git").await;
    shoot(c, "app-two-domains").await;
    click_confirmed(c, remove).await;
    wait_until(10, || async { !exists(c, remove).await }).await;
    let list = text(c, "#domains-h ~ ul").await;
    assert!(
        list.contains("site.test") && !list.contains("www.site.test"),
        "{list}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = berth.get("www.site.test", "/").await;
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "www.site.test still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_served(berth, "site.test", "hi there from git").await;
    let (_, domains) = berth.api("GET", "/apps/site/domains", None).await;
    assert!(!domains.to_string().contains("www.site.test"), "{domains}");

    // A rule set in the domain's rules form is listed beside it.
    click(c, "#rules-0 > summary").await;
    click(c, "#r0-security").await;
    shoot(c, "app-domain-rules").await;
    click(c, "#rules-0 button[type=submit]").await;
    wait_text(c, "li.domain .rules-on", "security headers", 10).await;
    let (_, domains) = berth.api("GET", "/apps/site/domains", None).await;
    assert_eq!(domains[0]["security_headers"], true, "{domains}");
    assert_eq!(
        domains[0].as_object().unwrap().len(),
        7,
        "only it: {domains}"
    );
}

/// A build that sleeps: its deployment runs long enough to be cancelled.
const SLOW: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo started-sleeping; /bin/busybox sleep 120\"]\n\
CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\"]\n";

/// Clicks "Deploy now" on the app's page; returns the new deployment's id.
async fn deploy_from_page(c: &Client, berth: &Berth, app: &str) -> String {
    c.goto(&format!("http://{}/apps/{app}", berth.admin))
        .await
        .unwrap();
    click(c, "button[data-api$='/deployments']").await;
    wait_path(c, &format!("/apps/{app}?log=")).await;
    let path = path_of(c).await;
    path.split_once("log=").unwrap().1.to_string()
}

fn cancel_button(id: &str) -> String {
    format!("button[data-api='/api/v1/deployments/{id}/cancel']")
}

/// The app `slow` (a build that sleeps) deployed twice from its page:
/// the second deployment, queued behind the first, is cancelled from the
/// deployments table, then the first, running its build.
pub async fn cancel_deployments(c: &Client, berth: &Berth, git: &GitServer) {
    let repo = git.create_repo("slow");
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    repo.commit(
        "main",
        &[
            ("Dockerfile", Some(SLOW.as_bytes())),
            ("busybox", Some(&busybox)),
        ],
        "a slow build",
    );
    berth
        .create_app(json!({
            "name": "slow",
            "source": {"type": "git", "url": git.url("slow"), "token": TOKEN},
            "port": 8080
        }))
        .await;
    let first = deploy_from_page(c, berth, "slow").await;
    berth.wait_status(&first, "running").await;
    let second = deploy_from_page(c, berth, "slow").await;
    berth.wait_status(&second, "queued").await;
    wait_for(c, &cancel_button(&second), 10).await;
    wait_for(c, &cancel_button(&first), 10).await;
    shoot(c, "app-deploying").await;

    // The queued one: cancelled, the running one goes on.
    click_confirmed(c, &cancel_button(&second)).await;
    let d = berth.wait_deployment(&second).await;
    assert_eq!(d["status"], "cancelled", "{d}");
    let (_, d) = berth
        .api("GET", &format!("/deployments/{first}"), None)
        .await;
    assert_eq!(d["status"], "running", "{d}");
    // The page reloads with no cancel button for it.
    wait_until(10, || async { !exists(c, &cancel_button(&second)).await }).await;
    wait_text(c, "#deployments-h + .table-wrap", "cancelled", 10).await;

    // The running one, from a fresh page: the panel follows its log to
    // the end, then shows the app's state.
    c.goto(&format!("http://{}/apps/slow", berth.admin))
        .await
        .unwrap();
    click_confirmed(c, &cancel_button(&first)).await;
    wait_path(c, &format!("/apps/slow?log={first}")).await;
    let d = berth.wait_deployment(&first).await;
    assert_eq!(d["status"], "cancelled", "{d}");
    wait_until(10, || async {
        !exists(c, "button[data-api$='/cancel']").await
            && text(c, "#deployments-h + .table-wrap")
                .await
                .matches("cancelled by the user")
                .count()
                == 2
    })
    .await;
    shoot(c, "app-cancelled").await;
}
