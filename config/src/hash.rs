//! Password hashes of basic-auth users: a plain password is hashed with
//! argon2id on input; a given hash must be one the edge can verify
//! (argon2 in PHC form, or bcrypt as `htpasswd -B` writes it).

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;

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

#[cfg(test)]
mod tests {
    use super::*;

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
