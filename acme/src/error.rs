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
    /// The CA tried to validate the host and could not.
    #[error("the CA could not validate {host} over {challenge}: {detail}")]
    Validation {
        /// The host ordered.
        host: String,
        /// `http-01` or `tls-alpn-01`.
        challenge: &'static str,
        /// The CA's explanation (its problem document), or what is known.
        detail: String,
    },
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
            // The cause is deep in the source chain ("client error
            // (Connect)" says nothing of a refused connection).
            other => AcmeError::Client(chain(&other)),
        }
    }
}

/// `err` followed by its sources, joined with ": ", leaving out a source
/// whose text the message before it already contains.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn the_chain_names_the_cause_once() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = chain(&Outer("client error (Connect)", refused()));
        assert_eq!(text, format!("client error (Connect): {}", refused()));
        // A message that already says its source does not say it twice.
        let text = chain(&Repeats(refused()));
        assert_eq!(text, format!("wrapped: {}", refused()));
    }
}
