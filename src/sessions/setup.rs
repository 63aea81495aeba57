//! The one-time setup code of a new instance: while no user exists, berth
//! makes a code at start, logs it and writes it to `<data-dir>/setup-code`
//! (mode 0600); whoever gives it first becomes the owner. Only its SHA-256
//! stays in memory, and the file goes once it is used.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// File name of the code in the data directory.
pub const SETUP_FILE: &str = "setup-code";
/// Alphabet of the code: RFC 4648 base32 (no 0, 1, 8 or 9 to mistake for letters).
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The code, while setup is open.
#[derive(Debug)]
pub struct SetupCode {
    path: PathBuf,
    hash: Mutex<Option<[u8; 32]>>,
}

/// The code's characters as compared: upper case, no dashes or spaces.
fn digest(code: &str) -> [u8; 32] {
    let plain: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(plain.as_bytes()).into()
}

impl SetupCode {
    /// Setup is over: no code, and a stale file is removed.
    pub fn closed(data_dir: &Path) -> Self {
        let path = data_dir.join(SETUP_FILE);
        let _ = std::fs::remove_file(&path);
        Self {
            path,
            hash: Mutex::new(None),
        }
    }

    /// Opens setup with a new code (`XXXXX-XXXXX-XXXXX-XXXXX`, 100 random
    /// bits) written to the file; returns it with the code to log.
    pub fn open(data_dir: &Path) -> std::io::Result<(Self, String)> {
        let chars: String = rand::random::<[u8; 20]>()
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        let code = format!(
            "{}-{}-{}-{}",
            &chars[..5],
            &chars[5..10],
            &chars[10..15],
            &chars[15..]
        );
        let path = data_dir.join(SETUP_FILE);
        crate::auth::write_private(&path, &code)?;
        let hash = Mutex::new(Some(digest(&code)));
        Ok((Self { path, hash }, code))
    }

    /// Whether a code is waiting to be given.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.hash.lock().map(|h| h.is_some()).unwrap_or(false)
    }

    /// Takes the code if `presented` is it (constant time): only one caller
    /// ever gets `true` until [`Self::restore`].
    pub fn take(&self, presented: &str) -> bool {
        let Ok(mut hash) = self.hash.lock() else {
            return false;
        };
        let matches = hash
            .as_ref()
            .is_some_and(|h| bool::from(h.ct_eq(&digest(presented))));
        if matches {
            *hash = None;
        }
        matches
    }

    /// Puts a taken code back (setup failed after taking it).
    pub fn restore(&self, presented: &str) {
        if let Ok(mut hash) = self.hash.lock() {
            *hash = Some(digest(presented));
        }
    }

    /// Setup is over some other way (a user was made with the admin
    /// token): the code stops working and the file goes.
    pub fn close(&self) {
        if let Ok(mut hash) = self.hash.lock() {
            if hash.take().is_none() {
                return;
            }
        }
        self.finish();
    }

    /// Setup is done: the file goes.
    pub fn finish(&self) {
        if let Err(err) = std::fs::remove_file(&self.path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%err, path = %self.path.display(), "could not remove the used setup code; delete it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_code_is_written_private_taken_once_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (setup, code) = SetupCode::open(dir.path()).unwrap();
        let path = dir.path().join(SETUP_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), code);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(code.len(), 23);
        assert!(setup.is_open());
        assert!(!setup.take("AAAAA-AAAAA-AAAAA-AAAAA"));
        assert!(setup.take(&code.to_lowercase().replace('-', " ")));
        assert!(!setup.take(&code), "once");
        setup.restore(&code);
        assert!(setup.take(&code));
        setup.finish();
        assert!(!path.exists());
        assert!(!setup.is_open());
        let (_, other) = SetupCode::open(dir.path()).unwrap();
        assert_ne!(other, code);
        SetupCode::closed(dir.path());
        assert!(!path.exists(), "a stale code goes when users exist");
    }
}
