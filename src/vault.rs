//! The sealed secrets of one app: its git token or SSH deploy key, its
//! build secrets, and the token and secret of its webhook. They travel as
//! one value sealed with the instance's [`SecretBox`] inside the app's
//! record, so the store file never holds them in plain text and a change
//! of app and secrets is one transaction.

use berth_config::AppSecrets;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::secrets::{SecretBox, SecretError};

/// What is sealed for one app.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Vault {
    /// Git credentials and build secrets from the app's input.
    #[serde(default)]
    pub input: AppSecrets,
    /// Path token of the webhook URL (`/api/v1/hooks/{app}/{token}`).
    #[serde(default)]
    pub hook_token: String,
    /// Key of the providers' signatures (GitHub/Gitea/Bitbucket HMAC,
    /// GitLab's `X-Gitlab-Token`).
    #[serde(default)]
    pub hook_secret: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes as 64 hex digits.
fn random_hex() -> Result<String, SecretError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SecretError::Random)?;
    Ok(hex::encode(bytes))
}

impl Vault {
    /// A vault for a new app: its input secrets and fresh webhook credentials.
    pub fn new(input: AppSecrets) -> Result<Self, SecretError> {
        let mut vault = Vault {
            input,
            ..Default::default()
        };
        vault.rotate_hook()?;
        Ok(vault)
    }

    /// New webhook token and secret; the old URL and signatures stop working.
    pub fn rotate_hook(&mut self) -> Result<(), SecretError> {
        self.hook_token = random_hex()?;
        self.hook_secret = random_hex()?;
        Ok(())
    }

    /// Whether `presented` is the webhook's URL token; constant time.
    pub fn hook_token_matches(&self, presented: &str) -> bool {
        !self.hook_token.is_empty()
            && bool::from(self.hook_token.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Opens a sealed vault; `None` opens to an empty one.
    pub fn open(secrets: &SecretBox, sealed: Option<&str>) -> Result<Self, SecretError> {
        match sealed {
            None => Ok(Vault::default()),
            Some(sealed) => {
                let plain = secrets.open(sealed)?;
                serde_json::from_slice(&plain).map_err(|_| SecretError::Open)
            }
        }
    }

    /// Seals the vault for the store.
    pub fn seal(&self, secrets: &SecretBox) -> Result<String, SecretError> {
        let plain = serde_json::to_vec(self).map_err(|_| SecretError::Open)?;
        secrets.seal(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_round_trip_and_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretBox::open_or_create(dir.path()).unwrap();
        let vault = Vault::new(AppSecrets {
            git_token: Some("ghp_topsecret".into()),
            ..Default::default()
        })
        .unwrap();
        let sealed = vault.seal(&secrets).unwrap();
        assert!(!sealed.contains("ghp_topsecret"));
        let opened = Vault::open(&secrets, Some(&sealed)).unwrap();
        assert_eq!(opened.input.git_token.as_deref(), Some("ghp_topsecret"));
        assert!(opened.hook_token_matches(&vault.hook_token));
        assert!(!opened.hook_token_matches("nope"));
        assert!(!Vault::default().hook_token_matches(""));
        assert!(!format!("{opened:?}").contains(&vault.hook_secret));
    }
}
