//! A certificate chain and its key from PEM, checked the way a user would
//! check it before serving it: it parses, the key belongs to the first
//! certificate, it is valid now, and it covers the names asked of it.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{names, CertError};

/// A validated certificate chain with its signing key.
#[derive(Clone)]
pub struct Certificate {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subject alternative names, lowercase; the
    /// common name only when there are none).
    pub names: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The chain as PEM, leaf first.
    pub chain_pem: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses and checks a PEM chain (leaf first) and its PEM private key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Pem {
                field: "cert_pem",
                why: e.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::Pem {
                field: "cert_pem",
                why: "no CERTIFICATE block found".into(),
            });
        };
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| CertError::Pem {
                field: "key_pem",
                why: e.to_string(),
            })?
            .ok_or_else(|| CertError::Pem {
                field: "key_pem",
                why: "no PRIVATE KEY block found (PKCS#8, PKCS#1 or SEC1)".into(),
            })?;
        let (names, not_before, not_after) = inspect(leaf)?;
        let key = certified_key(chain.clone(), key)?;
        Ok(Self {
            key: Arc::new(key),
            names,
            not_before,
            not_after,
            chain_pem: chain_pem.to_string(),
        })
    }

    /// Refuses a certificate that is not valid at `now`.
    pub fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), CertError> {
        if now > self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after,
            });
        }
        if now < self.not_before {
            return Err(CertError::NotYetValid {
                not_before: self.not_before,
            });
        }
        Ok(())
    }

    /// Whether the certificate covers `host` (exactly, or by a wildcard of
    /// one label).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.names.iter().any(|n| names::matches(n, &host))
    }

    /// Refuses a certificate that does not cover every one of `hosts`.
    pub fn check_covers<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CertError> {
        for host in hosts {
            if !self.covers(host) {
                return Err(CertError::NameNotCovered {
                    host: host.to_string(),
                    names: self.names.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Names and validity of a leaf certificate.
fn inspect(
    leaf: &CertificateDer<'_>,
) -> Result<(Vec<String>, OffsetDateTime, OffsetDateTime), CertError> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| CertError::Pem {
        field: "cert_pem",
        why: format!("the first certificate does not parse: {e}"),
    })?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    let validity = cert.validity();
    Ok((
        names,
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    ))
}

/// The rustls signing key for a chain, refusing a key of another certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, CertError> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Pem {
            field: "key_pem",
            why: format!("unsupported or malformed private key: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch)
        }
        Err(e) => Err(CertError::Pem {
            field: "key_pem",
            why: format!("cannot check that the key belongs to the certificate: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn make(names: &[&str], days: (i64, i64)) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_good_certificate_parses_with_its_names_and_dates() {
        let (cert, key) = make(&["Example.com", "*.example.com"], (-1, 30));
        let c = Certificate::from_pem(&cert, &key).unwrap();
        assert_eq!(c.names, ["example.com", "*.example.com"]);
        c.check_valid_at(OffsetDateTime::now_utc()).unwrap();
        assert!(c.covers("a.example.com"));
        assert!(c.covers("EXAMPLE.com"));
        assert!(!c.covers("a.b.example.com"));
        c.check_covers(["example.com", "www.example.com"]).unwrap();
        let err = c.check_covers(["other.org"]).unwrap_err();
        assert!(err.to_string().contains("other.org"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = make(&["a.test"], (-1, 30));
        let (_, other_key) = make(&["a.test"], (-1, 30));
        let err = Certificate::from_pem(&cert, &other_key).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let (cert, key) = make(&["a.test"], (-30, -1));
        let c = Certificate::from_pem(&cert, &key).unwrap();
        let err = c.check_valid_at(OffsetDateTime::now_utc()).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let (cert, key) = make(&["a.test"], (2, 30));
        let c = Certificate::from_pem(&cert, &key).unwrap();
        assert!(c.check_valid_at(OffsetDateTime::now_utc()).is_err());
    }

    #[test]
    fn garbage_names_the_field() {
        let (cert, key) = make(&["a.test"], (-1, 30));
        let err = Certificate::from_pem("not a pem", &key).unwrap_err();
        assert!(err.to_string().contains("cert_pem"), "{err}");
        let err = Certificate::from_pem(&cert, "junk").unwrap_err();
        assert!(err.to_string().contains("key_pem"), "{err}");
        let broken = cert.replace("MII", "MIX");
        assert!(Certificate::from_pem(&broken, &key).is_err());
    }
}
