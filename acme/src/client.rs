//! The ACME client (RFC 8555 through instant-acme): one account, created
//! once and restored from its saved credentials; an order per host,
//! validated over HTTP-01 (answered by the edge on the HTTP address) or
//! TLS-ALPN-01 (answered by the resolver on the HTTPS address); renewal
//! windows from ACME Renewal Info when the CA offers it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::{AcmeError, CertStore, Certificate, Http01Tokens};

/// Where and as whom to ask for certificates.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// Directory URL of the CA.
    pub directory: String,
    /// Contact email for the account, if any.
    pub email: Option<String>,
    /// A CA root (PEM file) to trust for the ACME server's own HTTPS.
    pub ca_root: Option<PathBuf>,
    /// Deadline of one order, from creation to the certificate.
    pub order_timeout: Duration,
}

/// How the CA is to validate control of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A token over plain HTTP on port 80.
    Http01,
    /// A special certificate over TLS on port 443.
    TlsAlpn01,
}

impl ChallengeKind {
    fn acme_type(self) -> ChallengeType {
        match self {
            Self::Http01 => ChallengeType::Http01,
            Self::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// A certificate the CA issued, with its new key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The checked chain and key.
    pub cert: Certificate,
    /// The private key as PEM (PKCS#8), to store encrypted.
    pub key_pem: String,
}

/// An ACME account on one CA.
#[derive(Clone)]
pub struct AcmeClient {
    account: Account,
    config: AcmeConfig,
}

/// Saved account: the directory it belongs to and its credentials.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

impl AcmeClient {
    /// Restores the account from `saved` (JSON from an earlier call) when it
    /// belongs to the configured directory, else creates one. Returns the
    /// JSON to keep when an account was created (it holds the account key:
    /// store it encrypted).
    pub async fn connect(
        config: AcmeConfig,
        saved: Option<&str>,
    ) -> Result<(Self, Option<String>), AcmeError> {
        let builder = || match &config.ca_root {
            Some(path) => Account::builder_with_root(path).map_err(|e| AcmeError::CaRoot {
                path: path.display().to_string(),
                why: e.to_string(),
            }),
            None => Ok(Account::builder()?),
        };
        let saved: Option<SavedAccount> = saved.and_then(|s| serde_json::from_str(s).ok());
        if let Some(saved) = saved.filter(|s| s.directory == config.directory) {
            let account = builder()?.from_credentials(saved.credentials).await?;
            return Ok((Self { account, config }, None));
        }
        let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                config.directory.clone(),
                None,
            )
            .await?;
        let saved = SavedAccount {
            directory: config.directory.clone(),
            credentials,
        };
        let json = serde_json::to_string(&saved).map_err(|e| AcmeError::Client(e.to_string()))?;
        Ok((Self { account, config }, Some(json)))
    }

    /// Orders a certificate for `host` and answers its challenge of `kind`
    /// through `tokens` (HTTP-01) or `store` (TLS-ALPN-01) until the order
    /// ends, within the order deadline.
    pub async fn issue(
        &self,
        host: &str,
        kind: ChallengeKind,
        tokens: &Http01Tokens,
        store: &CertStore,
    ) -> Result<Issued, AcmeError> {
        let mut answered = Answered {
            tokens,
            store,
            tokens_set: Vec::new(),
            alpn_set: Vec::new(),
        };
        let work = self.order(host, kind, &mut answered);
        let result = tokio::time::timeout(self.config.order_timeout, work).await;
        answered.clear();
        match result {
            Ok(r) => r,
            Err(_) => Err(AcmeError::Client(format!(
                "the order for {host} did not complete within {}s",
                self.config.order_timeout.as_secs()
            ))),
        }
    }

    async fn order(
        &self,
        host: &str,
        kind: ChallengeKind,
        answered: &mut Answered<'_>,
    ) -> Result<Issued, AcmeError> {
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = self.account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(AcmeError::Client(format!(
                        "the authorization for {host} is {other:?}"
                    )))
                }
            }
            let mut challenge = authorization
                .challenge(kind.acme_type())
                .ok_or_else(|| AcmeError::NoChallenge(kind.name(), host.to_string()))?;
            let key_authorization = challenge.key_authorization();
            match kind {
                ChallengeKind::Http01 => {
                    answered
                        .tokens
                        .insert(&challenge.token, key_authorization.as_str());
                    answered.tokens_set.push(challenge.token.clone());
                }
                ChallengeKind::TlsAlpn01 => {
                    let key = alpn_challenge_key(host, key_authorization.digest().as_ref())?;
                    answered.store.set_alpn_challenge(host, Arc::new(key));
                    answered.alpn_set.push(host.to_string());
                }
            }
            tracing::info!(
                host,
                challenge = kind.name(),
                "challenge answered; asking the CA to validate"
            );
            challenge.set_ready().await?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order.poll_ready(&retries).await?;
        if status != OrderStatus::Ready {
            let detail = why_invalid(&mut order, kind)
                .await
                .unwrap_or_else(|| format!("the order ended {status:?} and the CA gave no reason"));
            return Err(AcmeError::Validation {
                host: host.to_string(),
                challenge: kind.name(),
                detail,
            });
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retries).await?;
        let cert = Certificate::from_pem(&chain_pem, &key_pem)?;
        cert.check_covers([host])?;
        Ok(Issued { cert, key_pem })
    }

    /// Replaces the account's contact (`None`: no contact), within the
    /// order deadline.
    pub async fn update_contact(&self, email: Option<&str>) -> Result<(), AcmeError> {
        let contact = email.map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        tokio::time::timeout(
            self.config.order_timeout,
            self.account.update_contacts(&contacts),
        )
        .await
        .map_err(|_| AcmeError::Client("the ACME server did not answer in time".into()))??;
        Ok(())
    }

    /// The CA's suggested renewal time for `cert` (ACME Renewal Info), a
    /// random moment within its window; `None` when the CA has no ARI.
    pub async fn suggested_renewal(&self, cert: &Certificate) -> Option<OffsetDateTime> {
        let leaf = cert.key.end_entity_cert().ok()?;
        let id = CertificateIdentifier::try_from(leaf).ok()?;
        let (info, _) = self.account.renewal_info(&id).await.ok()?;
        let window = info.suggested_window;
        let span = (window.end - window.start).whole_seconds().max(0);
        let offset = if span > 0 {
            rand::random_range(0..span)
        } else {
            0
        };
        Some(window.start + time::Duration::seconds(offset))
    }
}

/// Challenge answers set during one order, removed when it ends.
struct Answered<'a> {
    tokens: &'a Http01Tokens,
    store: &'a CertStore,
    tokens_set: Vec<String>,
    alpn_set: Vec<String>,
}

impl Answered<'_> {
    fn clear(&mut self) {
        for token in self.tokens_set.drain(..) {
            self.tokens.remove(&token);
        }
        for host in self.alpn_set.drain(..) {
            self.store.clear_alpn_challenge(&host);
        }
    }
}

/// The CA's reason why a failed order's `kind` challenge did not validate
/// (its problem document), read from the refreshed authorizations.
async fn why_invalid(order: &mut instant_acme::Order, kind: ChallengeKind) -> Option<String> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let Ok(mut authorization) = authorization else {
            continue;
        };
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        let problem = state
            .challenges
            .iter()
            .filter(|c| c.r#type == kind.acme_type())
            .find_map(|c| c.error.as_ref());
        if let Some(problem) = problem {
            let detail = problem.detail.as_deref().unwrap_or("no detail");
            return Some(match problem.r#type.as_deref() {
                Some(kind) => format!("{detail} ({kind})"),
                None => detail.to_string(),
            });
        }
    }
    None
}

/// The TLS-ALPN-01 certificate (RFC 8737): self-signed for `host`, with the
/// critical acmeIdentifier extension holding the key authorization digest.
fn alpn_challenge_key(host: &str, digest: &[u8]) -> Result<CertifiedKey, AcmeError> {
    let key = rcgen::KeyPair::generate().map_err(crate::CertError::from)?;
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_string()]).map_err(crate::CertError::from)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(crate::CertError::from)?;
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| AcmeError::Client(format!("challenge key: {e}")))?;
    // `from_der` would parse the certificate and refuse the critical
    // extension; the pair was made together, so no check is needed.
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}
