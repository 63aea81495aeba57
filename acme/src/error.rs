//! Why a certificate was refused or could not be obtained.

use time::OffsetDateTime;

/// A certificate problem, phrased for the user who sent or asked for it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// PEM that does not parse.
    #[error("{field}: {why}")]
    Pem {
        /// `cert_pem` or `key_pem`.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The key is not the certificate's.
    #[error("key_pem: the private key does not belong to the first certificate of cert_pem")]
    KeyMismatch,
    /// Past its end of validity.
    #[error("cert_pem: the certificate expired at {not_after}")]
    Expired {
        /// End of validity.
        not_after: OffsetDateTime,
    },
    /// Before its start of validity.
    #[error("cert_pem: the certificate is not valid before {not_before}")]
    NotYetValid {
        /// Start of validity.
        not_before: OffsetDateTime,
    },
    /// Does not cover a name it is meant for.
    #[error("cert_pem: the certificate does not cover {host} (it covers {names:?})")]
    NameNotCovered {
        /// The name not covered.
        host: String,
        /// The names it covers.
        names: Vec<String>,
    },
    /// Generating a key or certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Why ACME issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem document.
    #[error("the ACME server refused: {detail} ({kind})")]
    Problem {
        /// Problem type URN.
        kind: String,
        /// Its explanation.
        detail: String,
        /// Whether it is a rate limit (retry much later).
        rate_limited: bool,
    },
    /// Anything else from the ACME client (network, TLS, JSON, timeouts).
    #[error("ACME: {0}")]
    Client(String),
    /// The CA offered no challenge type berth answers.
    #[error("the ACME server offered no {0} challenge for {1}")]
    NoChallenge(&'static str, String),
    /// The certificate it issued did not check out.
    #[error("the issued certificate is unusable: {0}")]
    Certificate(#[from] CertError),
    /// The CA root given for the ACME server itself is unusable.
    #[error("acme.ca_root {path}: {why}")]
    CaRoot {
        /// The path configured.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => {
                let kind = p.r#type.unwrap_or_default();
                AcmeError::Problem {
                    rate_limited: kind.ends_with(":rateLimited"),
                    detail: p.detail.unwrap_or_else(|| "no detail".into()),
                    kind,
                }
            }
            other => AcmeError::Client(other.to_string()),
        }
    }
}
