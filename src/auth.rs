//! The admin token: created once, kept only as a SHA-256 in the store,
//! handed to the operator in `<data-dir>/admin-token` (mode 0600), and
//! checked in constant time on every admin request.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::Store;

/// File name of the token in the data directory.
pub const TOKEN_FILE: &str = "admin-token";
/// Prefix that makes berth tokens recognisable to secret scanners.
const TOKEN_PREFIX: &str = "berth_";

/// Verifies bearer tokens against the stored hash.
#[derive(Clone)]
pub struct AdminAuth {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminAuth(..)")
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AdminAuth {
    /// Checks a presented token; constant time in the token's content.
    pub fn verify(&self, presented: &str) -> bool {
        sha256(presented).ct_eq(&self.hash).into()
    }
}

/// Where the token went, for the start-up log.
pub enum TokenOrigin {
    /// A hash was already in the store.
    Existing,
    /// A new token was written to this file.
    Created(PathBuf),
}

/// Loads the admin token's hash, creating a token on first start.
pub fn ensure_admin_token(
    store: &Store,
    data_dir: &Path,
) -> anyhow::Result<(AdminAuth, TokenOrigin)> {
    if let Some(hash) = store.admin_token_hash()? {
        return Ok((AdminAuth { hash }, TokenOrigin::Existing));
    }
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let path = data_dir.join(TOKEN_FILE);
    // File first, hash second: a crash in between leaves no hash, so the
    // next start makes a new token instead of locking the operator out.
    write_private(&path, &token)?;
    let hash = sha256(&token);
    store.set_admin_token_hash(&hash)?;
    Ok((AdminAuth { hash }, TokenOrigin::Created(path)))
}

/// Writes `secret` and a newline to `path`, readable by berth's user only
/// (mode 0600, also when the file existed with a wider mode), synced.
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only to a new file; an old one may be wider.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (auth, origin) = ensure_admin_token(&store, dir.path()).unwrap();
        let TokenOrigin::Created(path) = origin else {
            panic!("expected a new token")
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap();
        let token = token.trim();
        assert!(auth.verify(token));
        assert!(!auth.verify("berth_wrong"));
        let (again, origin) = ensure_admin_token(&store, dir.path()).unwrap();
        assert!(matches!(origin, TokenOrigin::Existing));
        assert!(again.verify(token));
    }
}
