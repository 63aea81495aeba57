//! The certificates being served: an immutable snapshot behind `ArcSwap`,
//! read without locks by every TLS handshake (TCP and QUIC), replaced whole
//! when a certificate is added, renewed or removed. [`Resolver`] is the
//! rustls side: SNI → exact name, then a one-label wildcard, then the
//! unknown-name policy; TLS-ALPN-01 validation handshakes get their
//! challenge certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::{names, CertError, Certificate};

/// ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// What the edge does with a handshake for a name it has no certificate for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownName {
    /// Answer with a self-signed certificate for `berth.invalid`.
    SelfSigned,
    /// Abort the handshake.
    Refuse,
}

/// One installed certificate.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its id in the store (`acme:<host>` or the custom certificate's name).
    pub id: String,
    /// The certificate.
    pub cert: Certificate,
}

/// The certificate serving one name, with its validity.
struct Serving {
    key: Arc<CertifiedKey>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

#[derive(Default)]
struct Snapshot {
    /// Name (lowercase, `*.parent` for wildcards) → the certificate serving it.
    by_name: HashMap<String, Serving>,
    /// Everything installed, by id.
    by_id: HashMap<String, Installed>,
}

impl Snapshot {
    fn build(by_id: HashMap<String, Installed>) -> Self {
        // Where two certificates cover one name, the one valid longest wins.
        let mut best: HashMap<String, (&Installed, OffsetDateTime)> = HashMap::new();
        for installed in by_id.values() {
            for name in &installed.cert.names {
                let later = best
                    .get(name)
                    .is_none_or(|(_, until)| installed.cert.not_after > *until);
                if later {
                    best.insert(name.clone(), (installed, installed.cert.not_after));
                }
            }
        }
        let by_name = best
            .into_iter()
            .map(|(name, (i, _))| {
                let serving = Serving {
                    key: i.cert.key.clone(),
                    not_before: i.cert.not_before,
                    not_after: i.cert.not_after,
                };
                (name, serving)
            })
            .collect();
        Self { by_name, by_id }
    }
}

/// The served certificates and the TLS-ALPN-01 challenge certificates.
pub struct CertStore {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes writers so no update is lost between load and swap.
    write: Mutex<()>,
    challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("certificates", &self.snapshot.load().by_id.len())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// An empty store with the given policy for unknown names.
    pub fn new(unknown: UnknownName) -> Result<Self, CertError> {
        let fallback = match unknown {
            UnknownName::SelfSigned => Some(Arc::new(self_signed("berth.invalid")?)),
            UnknownName::Refuse => None,
        };
        Ok(Self {
            snapshot: ArcSwap::default(),
            write: Mutex::new(()),
            challenges: ArcSwap::default(),
            fallback,
        })
    }

    fn update(&self, change: impl FnOnce(&mut HashMap<String, Installed>)) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_id = self.snapshot.load().by_id.clone();
        change(&mut by_id);
        self.snapshot.store(Arc::new(Snapshot::build(by_id)));
    }

    /// Installs (or replaces) the certificate `id`; it serves from the next
    /// handshake on. Connections already open keep the one they have.
    pub fn install(&self, id: &str, cert: Certificate) {
        let installed = Installed {
            id: id.to_string(),
            cert,
        };
        self.update(|m| {
            m.insert(id.to_string(), installed);
        });
    }

    /// Removes the certificate `id`.
    pub fn remove(&self, id: &str) {
        self.update(|m| {
            m.remove(id);
        });
    }

    /// The certificate `id`, if installed.
    pub fn get(&self, id: &str) -> Option<Installed> {
        self.snapshot.load().by_id.get(id).cloned()
    }

    /// Every installed certificate.
    pub fn all(&self) -> Vec<Installed> {
        self.snapshot.load().by_id.values().cloned().collect()
    }

    /// The certificate serving `host` (lowercase), if any.
    pub fn lookup(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.snapshot.load();
        serving(&snapshot, host).map(|s| s.key.clone())
    }

    /// Whether the certificate a handshake for `host` (lowercase; a route's
    /// `*.parent` wildcard host is looked up as is) gets is one installed
    /// here and valid at `now`: not the unknown-name fallback, not expired.
    pub fn serves_valid(&self, host: &str, now: OffsetDateTime) -> bool {
        let snapshot = self.snapshot.load();
        serving(&snapshot, host).is_some_and(|s| s.not_before <= now && now <= s.not_after)
    }

    /// Serves `key` to TLS-ALPN-01 validation handshakes for `host`.
    pub fn set_alpn_challenge(&self, host: &str, key: Arc<CertifiedKey>) {
        self.challenges.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(host.to_string(), key.clone());
            m
        });
    }

    /// Stops answering TLS-ALPN-01 validation for `host`.
    pub fn clear_alpn_challenge(&self, host: &str) {
        self.challenges.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(host);
            m
        });
    }

    /// The certificate for a handshake: the challenge certificate for a
    /// TLS-ALPN-01 validation, else by SNI, else the unknown-name policy.
    fn resolve(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello
            .server_name()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            return self.challenges.load().get(&host?).cloned();
        }
        host.and_then(|h| self.lookup(&h))
            .or_else(|| self.fallback.clone())
    }
}

/// The certificate serving `host`: its exact name, else the wildcard of
/// its parent.
fn serving<'s>(snapshot: &'s Snapshot, host: &str) -> Option<&'s Serving> {
    if let Some(serving) = snapshot.by_name.get(host) {
        return Some(serving);
    }
    let wildcard = names::wildcard_of(host)?;
    snapshot.by_name.get(&wildcard)
}

/// The rustls certificate resolver over a [`CertStore`].
#[derive(Debug, Clone)]
pub struct Resolver(pub Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.resolve(&hello)
    }
}

/// A self-signed certificate for `name`, for the unknown-name fallback.
pub fn self_signed(name: &str) -> Result<CertifiedKey, CertError> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    let cert = params.self_signed(&key)?;
    let parsed = Certificate::from_pem(&cert.pem(), &key.serialize_pem())?;
    Ok(CertifiedKey::clone(&parsed.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str], days: i64) -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(days);
        let c = params.self_signed(&key).unwrap();
        Certificate::from_pem(&c.pem(), &key.serialize_pem()).unwrap()
    }

    #[test]
    fn exact_names_win_over_wildcards_and_later_expiry_wins_ties() {
        let store = CertStore::new(UnknownName::Refuse).unwrap();
        let wild = cert(&["*.example.com"], 30);
        let exact = cert(&["a.example.com"], 10);
        store.install("wild", wild.clone());
        store.install("exact", exact.clone());
        let got = store.lookup("a.example.com").unwrap();
        assert!(Arc::ptr_eq(&got, &exact.key));
        let got = store.lookup("b.example.com").unwrap();
        assert!(Arc::ptr_eq(&got, &wild.key));
        assert!(store.lookup("example.com").is_none());
        let longer = cert(&["a.example.com"], 60);
        store.install("longer", longer.clone());
        assert!(Arc::ptr_eq(
            &store.lookup("a.example.com").unwrap(),
            &longer.key
        ));
        store.remove("longer");
        assert!(Arc::ptr_eq(
            &store.lookup("a.example.com").unwrap(),
            &exact.key
        ));
        // Replacing by id keeps one entry.
        store.install("exact", longer.clone());
        assert_eq!(store.all().len(), 2);
    }

    #[test]
    fn serves_valid_only_while_an_installed_certificate_is_in_date() {
        let store = CertStore::new(UnknownName::SelfSigned).unwrap();
        let now = OffsetDateTime::now_utc();
        // The fallback serves every name but is no certificate for it.
        assert!(!store.serves_valid("a.example.com", now));
        store.install("wild", cert(&["*.example.com"], 30));
        assert!(store.serves_valid("a.example.com", now));
        assert!(store.serves_valid("*.example.com", now));
        assert!(!store.serves_valid("example.com", now));
        assert!(!store.serves_valid("a.example.com", now + time::Duration::days(31)));
        store.remove("wild");
        assert!(!store.serves_valid("a.example.com", now));
    }
}
