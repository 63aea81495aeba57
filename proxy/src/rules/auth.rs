//! Basic auth at the edge: the `Authorization: Basic` credentials of a
//! request checked against a route's users (argon2 or bcrypt hashes).
//! A hash is verified off the request threads, a few at a time per route
//! (a flood of wrong passwords cannot take the edge's CPU), and the
//! credentials that passed are remembered by their SHA-256 digest, so a
//! browser sending them on every request pays the slow hash once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use berth_config::BasicAuth;
use tokio::sync::Semaphore;

/// Credentials remembered per route; the set starts over when full.
const REMEMBERED: usize = 1024;
/// Hash verifications running at once per route.
const VERIFYING: usize = 2;

/// One route's basic auth.
#[derive(Debug)]
pub(crate) struct Auth {
    /// `Basic realm="…"`, the challenge of a 401.
    challenge: String,
    users: Arc<[(String, String)]>,
    passed: Mutex<HashSet<[u8; 32]>>,
    verifying: Semaphore,
}

impl Auth {
    pub(crate) fn new(auth: &BasicAuth) -> Self {
        Self {
            challenge: format!("Basic realm=\"{}\", charset=\"UTF-8\"", auth.realm),
            users: auth
                .users
                .iter()
                .map(|u| (u.username.clone(), u.password_hash.clone()))
                .collect(),
            passed: Mutex::default(),
            verifying: Semaphore::new(VERIFYING),
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub(crate) fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Whether the request's `Authorization` value names a user with the
    /// right password.
    pub(crate) async fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let mut decoded = [0u8; MAX_CREDENTIALS];
        let Some((user, password)) = authorization.and_then(|a| credentials(a, &mut decoded))
        else {
            return false;
        };
        let digest = digest(user, password);
        if self.remembered(&digest) {
            return true;
        }
        let password = password.to_string();
        // Every user is looked at, so the time taken does not tell which
        // names exist.
        let mut hash = None;
        for (name, h) in self.users.iter() {
            if constant_time_eq(name.as_bytes(), user.as_bytes()) {
                hash = Some(h.clone());
            }
        }
        let Some(hash) = hash else {
            return false;
        };
        let Ok(_turn) = self.verifying.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        if ok {
            let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(digest);
        }
        ok
    }

    fn remembered(&self, digest: &[u8; 32]) -> bool {
        let passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        passed.contains(digest)
    }
}

/// Longest decoded `user:password` taken (64 + 1 + 256, rounded up).
const MAX_CREDENTIALS: usize = 384;

/// The user and password of a `Basic` authorization value, decoded into
/// `buf` (no allocation).
fn credentials<'b>(value: &[u8], buf: &'b mut [u8; MAX_CREDENTIALS]) -> Option<(&'b str, &'b str)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(token.trim(), &mut buf[..])
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_once(':')
}

fn digest(user: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(user.as_bytes());
    ctx.update(&[0]);
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `password` matches an argon2 (PHC) or bcrypt hash.
fn verify(password: &str, hash: &str) -> bool {
    if berth_config::is_bcrypt(hash) {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};
    use berth_config::BasicAuthUser;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    fn auth() -> Auth {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let argon = argon2::Argon2::default()
            .hash_password(b"pw-a", &salt)
            .unwrap()
            .to_string();
        let bcrypt = bcrypt::hash("pw-b", 4).unwrap();
        Auth::new(&BasicAuth {
            realm: "staff".into(),
            users: vec![
                BasicAuthUser {
                    username: "ann".into(),
                    password_hash: argon,
                },
                BasicAuthUser {
                    username: "bob".into(),
                    password_hash: bcrypt,
                },
            ],
        })
    }

    #[tokio::test]
    async fn argon2_and_bcrypt_users_pass_and_nobody_else() {
        let a = auth();
        assert!(a.admits(Some(&basic("ann", "pw-a"))).await);
        assert!(a.admits(Some(&basic("bob", "pw-b"))).await);
        assert!(!a.admits(Some(&basic("ann", "pw-b"))).await);
        assert!(!a.admits(Some(&basic("eve", "pw-a"))).await);
        assert!(!a.admits(None).await);
        assert!(!a.admits(Some(b"Bearer abc")).await);
        assert!(!a.admits(Some(b"Basic !!!")).await);
        assert_eq!(a.challenge(), "Basic realm=\"staff\", charset=\"UTF-8\"");
    }

    #[tokio::test]
    async fn credentials_that_passed_are_remembered_by_digest_only() {
        let a = auth();
        assert!(a.admits(Some(&basic("ann", "pw-a"))).await);
        assert!(a.remembered(&digest("ann", "pw-a")));
        assert!(!a.remembered(&digest("ann", "wrong")));
        assert!(!a.admits(Some(&basic("ann", "wrong"))).await);
        assert!(
            !a.remembered(&digest("ann", "wrong")),
            "failures are not kept"
        );
    }
}
