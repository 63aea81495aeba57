//! The API against its own OpenAPI document, fuzzed by schemathesis (PyPI)
//! on a real berth: no request makes a server error, every answer's status,
//! content type and body are the documented ones, and a request the schema
//! forbids is refused. (Requests the schema allows may still be refused by
//! checks no schema can state, such as a host's labels or a git URL's
//! shape: that check, `positive_data_acceptance`, is left out.)

mod support;

use std::time::Duration;

use support::Berth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_openapi_document_under_fuzzing() {
    let berth = Berth::start().await;
    let (status, doc) = berth.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, doc.to_string()).unwrap();
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(&spec)
        .args(["--url", &format!("http://{}", berth.admin)])
        .args(["-H", &format!("Authorization: Bearer {}", berth.token)])
        .args(["--max-examples", "25", "--seed", "1"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection,response_headers_conformance",
        ])
        // A followed log streams until its deployment ends, a webhook
        // needs its URL token, a rollback an earlier deployment.
        .args(["--exclude-path-regex", "hooks|rollback|logs"])
        .current_dir(work.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis ends within 10 minutes")
        .expect("schemathesis is installed (pip install schemathesis; .ci/run does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found mismatches:\n{stdout}\n{}\nberth:\n{}",
        String::from_utf8_lossy(&out.stderr),
        berth.log()
    );
    assert!(
        !berth.log().contains("panicked"),
        "berth panicked:\n{}",
        berth.log()
    );
}
