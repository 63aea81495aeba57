//! People's credentials: passwords hashed with argon2id, the random
//! secrets of sessions and API keys (kept as SHA-256: they are 256 random
//! bits, so a slow hash adds nothing), and the rules for usernames and
//! passwords.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use berth_config::FieldError;
use sha2::{Digest, Sha256};

/// Prefix of API keys, so secret scanners recognise them.
pub const KEY_PREFIX: &str = "berth_key_";
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds work).
pub const MAX_PASSWORD: usize = 1024;

/// The argon2id PHC string of `password` (argon2's defaults: 19 MiB, 2
/// passes, 1 lane).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches `phc`. An unparsable hash matches nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Spends the time of one verification without a user, so a missing
/// username takes as long to refuse as a wrong password.
pub fn verify_nobody(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default());
    let _ = verify_password(dummy, password);
}

/// A new secret: `prefix` and 64 hex digits (256 random bits).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The stored form of a secret: SHA-256, hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A username: 1-64 of a-z, 0-9, `.`, `_`, `-`, `@` (an email address is
/// fine), lowercased.
pub fn validate_username(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(FieldError::new(
            "username",
            "give 1-64 characters of a-z, 0-9, '.', '_', '-' or '@'",
        ))
    }
}

/// A password: 10-1024 characters.
pub fn validate_password(field: &str, password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("is {n} characters; use at least {MIN_PASSWORD} (a passphrase of four words is good)"),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("is longer than {MAX_PASSWORD} bytes; shorten it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterY"));
        assert!(!verify_password("garbage", "x"));
        assert_ne!(
            phc,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }

    #[test]
    fn secrets_are_random_and_stored_hashed() {
        let a = new_secret(KEY_PREFIX);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        assert_ne!(a, new_secret(KEY_PREFIX));
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), a);
    }

    #[test]
    fn usernames_and_passwords_follow_the_rules() {
        assert_eq!(
            validate_username(" Ann@Example.com ").unwrap(),
            "ann@example.com"
        );
        for bad in ["", "a b", "ann/x", &"a".repeat(65)] {
            assert_eq!(validate_username(bad).unwrap_err().field, "username");
        }
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "long enough!").is_ok());
        assert!(validate_password("password", &"x".repeat(2000)).is_err());
    }
}
