//! Password hashes of basic-auth users: a plain password is hashed with
//! argon2id on input; a given hash must be one the edge can verify
//! (argon2 in PHC form, or bcrypt as `htpasswd -B` writes it).
//!
//! The inputs that carry domains (`DomainInput`, `DomainPatch`,
//! `AppInput`, `AppPatch`) each have `hash_passwords`, the step that
//! puts the hashes in before validation: the API runs it before its
//! store transaction, so the transaction's validation only checks hash
//! forms (validation still hashes a plain password that reaches it).

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;

use crate::app::MAX_DOMAINS;
use crate::{AppInput, AppPatch, DomainInput, DomainPatch, FieldError};

/// Hashes `password` with argon2id (the crate's default parameters).
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("could not be hashed: {e}"))
}

/// Whether `hash` is an argon2 or bcrypt hash.
pub(crate) fn check_hash(hash: &str) -> Result<(), String> {
    if is_bcrypt(hash) {
        return Ok(());
    }
    match PasswordHash::new(hash) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") && h.hash.is_some() => Ok(()),
        _ => Err(
            "is not a bcrypt ($2y$…, from htpasswd -B) or argon2 ($argon2id$…) hash; \
             or give a plain password instead"
                .into(),
        ),
    }
}

/// Whether `hash` has bcrypt's form: `$2a$`, `$2b$`, `$2x$` or `$2y$`,
/// a two-digit cost, then 53 characters of salt and hash.
pub fn is_bcrypt(hash: &str) -> bool {
    let b = hash.as_bytes();
    b.len() == 60
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

impl DomainInput {
    /// Replaces each plain basic-auth password by its argon2id hash
    /// (see `BasicAuthInput::hash_passwords`); errors name the field
    /// within the domain (`basic_auth.users[0].password`).
    pub fn hash_passwords(&mut self) -> Result<(), FieldError> {
        match &mut self.basic_auth {
            Some(auth) => auth.hash_passwords().map_err(|e| e.within("basic_auth")),
            None => Ok(()),
        }
    }
}

impl DomainPatch {
    /// Replaces each plain basic-auth password the patch gives by its
    /// argon2id hash; users named alone keep theirs when the patch
    /// applies. Errors name the field within the domain.
    pub fn hash_passwords(&mut self) -> Result<(), FieldError> {
        match &mut self.basic_auth {
            Some(Some(auth)) => auth.hash_passwords().map_err(|e| e.within("basic_auth")),
            _ => Ok(()),
        }
    }
}

/// Hashes the plain passwords of each domain; nothing when there are
/// more domains than an app may have (validation refuses the list).
fn hash_domains(domains: &mut [DomainInput]) -> Result<(), FieldError> {
    if domains.len() > MAX_DOMAINS {
        return Ok(());
    }
    for (i, domain) in domains.iter_mut().enumerate() {
        domain
            .hash_passwords()
            .map_err(|e| e.within(&format!("domains[{i}]")))?;
    }
    Ok(())
}

impl AppInput {
    /// Replaces each plain basic-auth password of the app's domains by
    /// its argon2id hash; errors name the field
    /// (`domains[0].basic_auth.users[0].password`).
    pub fn hash_passwords(&mut self) -> Result<(), FieldError> {
        hash_domains(&mut self.domains)
    }
}

impl AppPatch {
    /// Replaces each plain basic-auth password of the domains the patch
    /// gives by its argon2id hash; errors name the field as
    /// [`AppInput::hash_passwords`] does.
    pub fn hash_passwords(&mut self) -> Result<(), FieldError> {
        match &mut self.domains {
            Some(domains) => hash_domains(domains),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;
    use crate::BasicAuthUserInput;

    /// A domain's basic-auth users as the API takes them.
    fn domain(users: &str) -> DomainInput {
        serde_json::from_str(&format!(
            r#"{{"host":"a.test","basic_auth":{{"users":{users}}}}}"#
        ))
        .unwrap()
    }

    fn users(d: &DomainInput) -> &[BasicAuthUserInput] {
        &d.basic_auth.as_ref().unwrap().users
    }

    fn verifies(hash: &str, password: &str) -> bool {
        let parsed = PasswordHash::new(hash).unwrap();
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    #[test]
    fn a_plain_password_becomes_an_argon2id_hash_that_verifies() {
        let bcrypt = "$2y$05$uZkZ3p2rWzv0QjX7n0mZxOZ4Xo5m9Xf3Yc5W4t4i2ZbH9wYvJw8Ga";
        let mut d = domain(&format!(
            r#"[{{"username":"ann","password":"pw1"}},{{"username":"bob","password_hash":"{bcrypt}"}},
                {{"username":"cy"}}]"#
        ));
        let before = d.clone();
        d.hash_passwords().unwrap();
        let [ann, bob, cy] = users(&d) else {
            panic!("{d:?}")
        };
        assert_eq!(ann.password, None);
        let hash = ann.password_hash.as_deref().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verifies(hash, "pw1") && !verifies(hash, "pw2"));
        // Hashes and users named alone are left alone.
        assert_eq!((bob, cy), (&users(&before)[1], &users(&before)[2]));
        // The domain validates to the same hash (and cy keeps its old one).
        let previous = domain(r#"[{"username":"cy","password":"c"}]"#)
            .validate(&[])
            .unwrap();
        let spec = d.clone().validate(std::slice::from_ref(&previous)).unwrap();
        let auth = spec.rules.basic_auth.unwrap();
        assert_eq!(auth.users[0].password_hash, hash);
        assert_eq!(auth.users[1].password_hash, bcrypt);
        assert_eq!(auth.users[2], previous.rules.basic_auth.unwrap().users[0]);
        // Hashing again changes nothing.
        let once = d.clone();
        d.hash_passwords().unwrap();
        assert_eq!(d, once);
    }

    #[test]
    fn what_validation_refuses_is_left_for_it_to_report() {
        let long = "x".repeat(257);
        for users in [
            r#"[{"username":"u","password":""}]"#.to_string(),
            format!(r#"[{{"username":"u","password":"{long}"}}]"#),
            r#"[{"username":"u","password":"p","password_hash":"plain"}]"#.to_string(),
        ] {
            let mut d = domain(&users);
            let before = d.clone();
            d.hash_passwords().unwrap();
            assert_eq!(d, before, "{users}");
            let err = d.validate(&[]).unwrap_err();
            assert!(
                err.field.starts_with("basic_auth.users[0].password"),
                "{err}"
            );
        }
        let many: Vec<String> = (0..=100)
            .map(|i| format!(r#"{{"username":"u{i}","password":"p"}}"#))
            .collect();
        let mut d = domain(&format!("[{}]", many.join(",")));
        let before = d.clone();
        d.hash_passwords().unwrap();
        assert_eq!(d, before, "more users than validation takes: not hashed");
    }

    #[test]
    fn apps_and_patches_hash_the_passwords_of_every_domain_they_give() {
        let mut app: AppInput = serde_json::from_str(
            r#"{"name":"a","image":"nginx","port":80,"domains":[{"host":"a.test"},
                {"host":"b.test","basic_auth":{"users":[{"username":"u","password":"p"}]}}]}"#,
        )
        .unwrap();
        app.hash_passwords().unwrap();
        let hash = users(&app.domains[1])[0].password_hash.clone().unwrap();
        assert!(verifies(&hash, "p"));
        assert_eq!(app.domains[0].basic_auth, None);
        let spec = app.validate().unwrap();
        assert_eq!(
            spec.domains[1].rules.basic_auth.as_ref().unwrap().users[0].password_hash,
            hash
        );

        let mut patch: AppPatch = serde_json::from_str(
            r#"{"domains":[{"host":"b.test","basic_auth":{"users":[{"username":"u","password":"q"}]}}]}"#,
        )
        .unwrap();
        patch.hash_passwords().unwrap();
        let domains = patch.domains.as_ref().unwrap();
        assert!(verifies(
            users(&domains[0])[0].password_hash.as_ref().unwrap(),
            "q"
        ));
        let mut none = AppPatch::default();
        none.hash_passwords().unwrap();
        assert_eq!(none, AppPatch::default());

        let mut patch: DomainPatch = serde_json::from_str(
            r#"{"basic_auth":{"users":[{"username":"u","password":"r"},{"username":"v"}]}}"#,
        )
        .unwrap();
        patch.hash_passwords().unwrap();
        let auth = patch.basic_auth.as_ref().unwrap().as_ref().unwrap();
        assert!(verifies(auth.users[0].password_hash.as_ref().unwrap(), "r"));
        assert_eq!(
            (&auth.users[1].password, &auth.users[1].password_hash),
            (&None, &None)
        );
        let mut off: DomainPatch = serde_json::from_str(r#"{"basic_auth":null}"#).unwrap();
        off.hash_passwords().unwrap();
        assert_eq!(off.basic_auth, Some(None));
    }

    #[test]
    fn hashes_of_both_kinds_are_taken_and_others_refused() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(check_hash(&hash).is_ok());
        // htpasswd -nbB u s3cret
        let bcrypt = "$2y$05$uZkZ3p2rWzv0QjX7n0mZxOZ4Xo5m9Xf3Yc5W4t4i2ZbH9wYvJw8Ga";
        assert!(check_hash(bcrypt).is_ok());
        for bad in ["", "s3cret", "$1$abc$def", "$2y$05$short", "{SHA}abc="] {
            assert!(check_hash(bad).is_err(), "{bad}");
        }
    }
}
