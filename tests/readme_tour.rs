//! The README's five-minute tour, run as written: the shell block under
//! "A five-minute tour" is taken from README.md and run with `bash -e`
//! against a real berth, with the tour's image names built locally (no
//! registry is reachable) and its git repository served on loopback. A
//! step that fails, or a tour that no longer runs as pasted, fails here.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::git::GitServer;
use support::{docker, Berth};

/// The tour's shell block.
fn tour() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split_once("## A five-minute tour")
        .expect("README.md has the tour")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the tour has a sh block")
        .1;
    block
        .split_once("\n```")
        .expect("the block ends")
        .0
        .to_string()
}

/// `traefik/whoami:<version>` as the tour names it, made locally: busybox
/// httpd on :80 answering `whoami <version> <hostname>`.
fn whoami_image(berth: &mut Berth, version: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).expect("busybox-static");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM scratch\nLABEL berth.test={instance}\nCOPY busybox /bin/busybox\n\
             CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /www && \
             echo \\\"whoami {version} $(/bin/busybox hostname)\\\" > /www/index.html && \
             exec /bin/busybox httpd -f -p 80 -h /www\"]\n",
            instance = berth.instance
        ),
    )
    .unwrap();
    let tag = format!("traefik/whoami:{version}");
    docker(&["build", "-q", "-t", &tag, ctx.path().to_str().unwrap()]);
    berth.track_image(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_pasted() {
    let server = GitServer::start(None).await;
    let repo = server.create_repo("shop");
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    repo.commit(
        "main",
        &[
            (
                "Dockerfile",
                Some(
                    b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nARG MODE=dev\n\
                      CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
                ),
            ),
            ("busybox", Some(&busybox)),
            ("www/index.html", Some(b"shop from git\n")),
            ("dist/index.html", Some(b"<!doctype html><title>docs</title>docs app\n")),
        ],
        "shop",
    );
    // ACME cannot be reached from here: the tour's Let's Encrypt step must
    // still run (the order fails in the background and shows its error).
    let mut berth = Berth::start_configured(
        "",
        "",
        vec![
            "--acme-directory".into(),
            "https://127.0.0.1:9/directory".into(),
        ],
    )
    .await;
    for version in ["v1.10", "v1.11"] {
        whoami_image(&mut berth, version);
    }
    let work = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &tour()])
        .current_dir(work.path())
        .env("DATA", berth.data_dir())
        .env("API", format!("http://{}/api/v1", berth.admin))
        .env("EDGE", format!("http://{}", berth.http))
        .env("METRICS", format!("http://{}", berth.metrics))
        .env("REPO", server.url("shop"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the tour ends within 10 minutes")
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = || {
        format!(
            "stdout:\n{stdout}\nstderr:\n{stderr}\nberth:\n{}",
            berth.log()
        )
    };
    assert!(out.status.success(), "the tour failed: {}", context());

    // What a reader sees along the way.
    let lines: Vec<&str> = stdout.lines().collect();
    let succeeded = lines.iter().filter(|l| **l == "succeeded").count();
    assert!(
        succeeded >= 6,
        "{succeeded} deployments succeeded: {}",
        context()
    );
    let served: Vec<&&str> = lines.iter().filter(|l| l.starts_with("whoami v")).collect();
    assert!(
        served.len() >= 4
            && served[0].starts_with("whoami v1.10")
            && served[2].starts_with("whoami v1.11")
            && served[3].starts_with("whoami v1.10"),
        "the first version, the new one, then the first again after the rollback: {served:?}\n{}",
        context()
    );
    // After the rollback the app's spec names the first version again.
    assert!(
        lines.contains(&"traefik/whoami:v1.10"),
        "the app's image after the rollback: {}",
        context()
    );
    for text in [
        "shop from git",
        "docs app",
        "stopped by its owner",
        "berth_apps ",
    ] {
        assert!(stdout.contains(text), "{text:?} missing: {}", context());
    }
}
