//! Encryption at rest for secrets in the store (private keys of
//! certificates, the ACME account key): ChaCha20-Poly1305 with a random
//! nonce per value, under a 256-bit key kept in `<data-dir>/secret.key`
//! (mode 0600, created on first start). The store alone reveals nothing.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// File of the key, in the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file is unreadable or malformed.
    #[error("{path}: {why}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A sealed value does not open with this key (tampered, or another
    /// data directory's key).
    #[error("a stored secret does not decrypt with {KEY_FILE}; was the key file replaced?")]
    Open,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Seals and opens secrets; cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    key: Arc<LessSafeKey>,
    rng: SystemRandom,
}

impl SecretBox {
    /// Loads the key from `dir`, creating it (0600) when absent.
    pub fn open_or_create(dir: &Path) -> Result<Self, SecretError> {
        let path = dir.join(KEY_FILE);
        let fail = |why: String| SecretError::KeyFile {
            path: path.clone(),
            why,
        };
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rng.fill(&mut key).map_err(|_| SecretError::Random)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| fail(format!("cannot create: {e}")))?;
                file.write_all(&key)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| fail(format!("cannot write: {e}")))?;
                key.to_vec()
            }
            Err(e) => return Err(fail(format!("cannot read: {e}"))),
        };
        let mode = std::fs::metadata(&path)
            .map_err(|e| fail(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "mode {:o} lets others read it; run chmod 600",
                mode & 0o777
            )));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| fail("must hold exactly 32 bytes".into()))?;
        Ok(Self {
            key: Arc::new(LessSafeKey::new(key)),
            rng,
        })
    }

    /// Encrypts `plain`; the result is hex of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| SecretError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(hex::encode(out))
    }

    /// Decrypts a value made by [`Self::seal`].
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let bytes = hex::decode(sealed).map_err(|_| SecretError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| SecretError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretBox::open_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = secrets.seal(b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!sealed.contains("BEGIN"));
        assert_ne!(
            sealed,
            secrets.seal(b"-----BEGIN PRIVATE KEY-----").unwrap()
        );
        assert_eq!(
            secrets.open(&sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // The same file opens it again; another key does not.
        let again = SecretBox::open_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"-----BEGIN PRIVATE KEY-----");
        let other = tempfile::tempdir().unwrap();
        let other = SecretBox::open_or_create(other.path()).unwrap();
        assert!(matches!(other.open(&sealed), Err(SecretError::Open)));
        let mut tampered = sealed.clone();
        tampered.replace_range(30..32, if &sealed[30..32] == "00" { "01" } else { "00" });
        assert!(secrets.open(&tampered).is_err());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SecretBox::open_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretBox::open_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
