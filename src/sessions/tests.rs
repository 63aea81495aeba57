//! The sign-in flow over a real store in a temp dir.

use super::*;

fn fixture() -> (tempfile::TempDir, Sessions, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let secrets = SecretBox::open_or_create(dir.path()).unwrap();
    let sessions = Sessions::new(store, secrets, dir.path()).unwrap();
    let code = std::fs::read_to_string(dir.path().join(setup::SETUP_FILE)).unwrap();
    (dir, sessions, code.trim().to_string())
}

fn client() -> Client {
    Client {
        address: "192.0.2.7".into(),
        user_agent: "test".into(),
        action: "POST /api/v1/session".into(),
        target: "/api/v1/session".into(),
    }
}

fn now_unix() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp() as u64
}

fn code_at(sessions: &Sessions, user: &UserRecord, unix: u64) -> String {
    let user = sessions.store().user(&user.id).unwrap();
    let secret = sessions
        .inner
        .secrets
        .open(user.totp_sealed.as_deref().unwrap())
        .unwrap();
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        String::new(),
    )
    .generate(unix)
}

#[test]
fn setup_makes_the_owner_once_and_signs_them_in() {
    let (dir, sessions, code) = fixture();
    assert!(sessions.setup_needed().unwrap());
    let c = client();
    let err = sessions
        .setup("AAAAA-AAAAA-AAAAA-AAAAA", "ann", "long enough!", &c)
        .unwrap_err();
    assert!(matches!(err, SessionError::WrongSetupCode), "{err}");
    let err = sessions.setup(&code, "ann", "short", &c).unwrap_err();
    assert_eq!(err.field(), Some("password"));
    let signed = sessions.setup(&code, "Ann", "long enough!", &c).unwrap();
    assert_eq!(signed.user.username, "ann");
    assert_eq!(signed.user.role, Role::Owner);
    assert!(!signed.session.pending_second_factor);
    assert!(!dir.path().join(setup::SETUP_FILE).exists());
    assert!(!sessions.setup_needed().unwrap());
    let err = sessions
        .setup(&code, "bob", "long enough!", &c)
        .unwrap_err();
    assert!(matches!(err, SessionError::SetupDone));
    assert_eq!(err.status(), http::StatusCode::CONFLICT);
    // The stored session is found by the cookie's hash only.
    let stored = sessions
        .store()
        .session(&secret_hash(&signed.secret))
        .unwrap();
    assert_eq!(stored.unwrap().id, signed.session.id);
    let audit = sessions.store().audit(10).unwrap();
    let seen: Vec<_> = audit.iter().map(|a| (a.actor.as_str(), a.status)).collect();
    for want in [("anonymous", 401), ("user:ann", 200), ("anonymous", 409)] {
        assert!(seen.contains(&want), "{want:?} not in {seen:?}");
    }
}

#[test]
fn sign_in_limits_failures_per_account_and_clears_on_success() {
    let (_dir, sessions, code) = fixture();
    let c = client();
    sessions.setup(&code, "ann", "long enough!", &c).unwrap();
    for _ in 0..limiter::ACCOUNT_LIMIT {
        let err = sessions.sign_in("ann", "wrong password", &c).unwrap_err();
        assert!(matches!(err, SessionError::InvalidCredentials), "{err}");
    }
    // Even the right password waits now.
    let err = sessions.sign_in("ANN", "long enough!", &c).unwrap_err();
    let SessionError::TooMany(wait) = err else {
        panic!("{err}")
    };
    assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
    assert!(err.to_string().contains("try again in 15 minutes"), "{err}");
    // Unknown users get the same answer, and are limited as well.
    let err = sessions.sign_in("nobody", "long enough!", &c).unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials));
    let audit = sessions.store().audit(1).unwrap();
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].status),
        ("anonymous", 401)
    );
    sessions.clear("user:ann");
    let signed = sessions.sign_in("ann", "long enough!", &c).unwrap();
    assert!(!signed.session.pending_second_factor);
}

#[test]
fn totp_enrolment_second_factor_and_backup_codes() {
    let (_dir, sessions, code) = fixture();
    let c = client();
    let first = sessions.setup(&code, "ann", "long enough!", &c).unwrap();
    let user = first.user.clone();
    let err = sessions.confirm(&user, "123456", &c).unwrap_err();
    assert!(matches!(err, SessionError::NotEnrolling));
    let enrolment = sessions.enrol(&user).unwrap();
    assert!(enrolment.uri.contains("berth:ann"));
    let now = now_unix();
    let good = code_at(&sessions, &user, now);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        sessions.confirm(&user, wrong, &c).unwrap_err(),
        SessionError::WrongCode
    ));
    let backups = sessions.confirm(&user, &good, &c).unwrap();
    assert_eq!(backups.len(), totp::BACKUP_CODES);
    assert!(matches!(
        sessions.enrol(&user).unwrap_err(),
        SessionError::AlreadyOn
    ));

    // Sign-in now waits for the second factor.
    let pending = sessions.sign_in("ann", "long enough!", &c).unwrap();
    assert!(pending.session.pending_second_factor);
    assert!(pending.max_age() <= PENDING_TTL.as_secs() as i64);
    // The code used to confirm does not work again.
    let err = sessions
        .second_factor(&pending.user, &pending.session, &good, &c)
        .unwrap_err();
    assert!(matches!(err, SessionError::WrongCode), "{err}");
    let next = code_at(&sessions, &user, now + 30);
    let full = sessions
        .second_factor(&pending.user, &pending.session, &next, &c)
        .unwrap();
    assert!(!full.session.pending_second_factor);
    assert_ne!(full.secret, pending.secret);
    assert_ne!(full.session.id, pending.session.id);
    let store = sessions.store();
    assert!(store
        .session(&secret_hash(&pending.secret))
        .unwrap()
        .is_none());
    assert!(matches!(
        sessions
            .second_factor(&full.user, &full.session, &next, &c)
            .unwrap_err(),
        SessionError::NotPending
    ));

    // A backup code works once.
    let pending = sessions.sign_in("ann", "long enough!", &c).unwrap();
    sessions
        .second_factor(
            &pending.user,
            &pending.session,
            &backups[0].to_lowercase(),
            &c,
        )
        .unwrap();
    let pending = sessions.sign_in("ann", "long enough!", &c).unwrap();
    let err = sessions
        .second_factor(&pending.user, &pending.session, &backups[0], &c)
        .unwrap_err();
    assert!(matches!(err, SessionError::WrongCode));
    assert_eq!(store.user(&user.id).unwrap().backup_codes.len(), 9);

    // Sessions list and revoke.
    let mine = sessions.list(&user).unwrap();
    assert!(mine.iter().any(|s| s.id == first.session.id));
    sessions.revoke(&user, &first.session.id).unwrap();
    assert!(sessions.revoke(&user, &first.session.id).is_err());

    // Off with the password and a backup code.
    let err = sessions
        .disable(&user, "wrong password", &backups[1], &c)
        .unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials));
    sessions
        .disable(&user, "long enough!", &backups[1], &c)
        .unwrap();
    let after = store.user(&user.id).unwrap();
    assert!(!after.totp_enabled && after.totp_sealed.is_none() && after.backup_codes.is_empty());
    assert!(
        !sessions
            .sign_in("ann", "long enough!", &c)
            .unwrap()
            .session
            .pending_second_factor
    );
}
