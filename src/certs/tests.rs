//! Certificate manager tests: backoff bounds, and the change hook that
//! rebuilds routes when a certificate starts or stops being valid.

use std::sync::atomic::{AtomicUsize, Ordering};

use berth_acme::UnknownName;
use berth_config::AcmeChallenge;

use super::*;

#[test]
fn backoff_grows_and_stays_bounded() {
    let first = backoff(1);
    assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF * 5 / 4);
    let third = backoff(3);
    assert!(third >= FIRST_BACKOFF * 4);
    assert!(backoff(40) <= MAX_BACKOFF * 5 / 4);
}

/// A self-signed certificate for `host` valid until `secs` from now.
fn cert(host: &str, secs: i64) -> Certificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.not_after = OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    let c = params.self_signed(&key).unwrap();
    Certificate::from_pem(&c.pem(), &key.serialize_pem()).unwrap()
}

#[test]
fn the_change_hook_runs_when_a_certificate_comes_goes_or_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("berth.redb")).unwrap();
    let secrets = SecretBox::open_or_create(dir.path()).unwrap();
    let served = Arc::new(CertStore::new(UnknownName::SelfSigned).unwrap());
    let acme = AcmeSettings {
        directory: "https://127.0.0.1:9/dir".into(),
        email: None,
        ca_root: None,
        challenge: AcmeChallenge::Http01,
    };
    let certs = Certificates::new(
        store,
        secrets,
        served.clone(),
        Arc::new(Http01Tokens::default()),
        acme,
        &mut Registry::default(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    certs.on_change(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    // Nothing changed: no call.
    certs.notice_changes(false);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Installed: a call, whether or not the valid set changed.
    certs.install("short", cert("a.example.com", 2));
    certs.notice_changes(true);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(served.serves_valid("a.example.com", OffsetDateTime::now_utc()));
    certs.notice_changes(false);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "still valid: no call");
    // It expires: the periodic look notices, once.
    std::thread::sleep(Duration::from_millis(3100));
    certs.notice_changes(false);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    certs.notice_changes(false);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!served.serves_valid("a.example.com", OffsetDateTime::now_utc()));
}
