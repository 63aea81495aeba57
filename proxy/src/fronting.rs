//! Domain fronting: one TLS connection, made for one site (its SNI), used
//! to ask for another (its `Host` or `:authority`). The certificate the
//! client checked vouched for the first name only, so a request for a name
//! that certificate does not serve is answered 421 Misdirected Request
//! (RFC 9110 §15.5.20): the client connects again, for the right name.
//! Names one certificate serves (a wildcard, a certificate with both
//! names) may share a connection, as browsers reuse connections for them.
//!
//! [`misdirected`] is the one check the three TLS front ends (HTTP/1.1 and
//! h2 over TCP, HTTP/3 over QUIC) make before routing.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

/// Which certificate the edge serves for a name: what a TLS handshake for
/// it would get, asked by name rather than by a ClientHello.
pub trait HostCertificates: Send + Sync + std::fmt::Debug {
    /// The certificate for `host` (lowercase, no port, no trailing dot);
    /// `None` when no installed certificate serves it.
    fn certificate_for(&self, host: &str) -> Option<Arc<CertifiedKey>>;
}

impl HostCertificates for berth_acme::CertStore {
    fn certificate_for(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.lookup(host)
    }
}

impl HostCertificates for berth_acme::Resolver {
    fn certificate_for(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.0.lookup(host)
    }
}

/// Whether `host` is `sni`, maybe with a port: the common case, told
/// without allocating.
fn same_name(sni: &str, host: &str) -> bool {
    let Some(head) = host.get(..sni.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(sni) {
        return false;
    }
    let rest = &host.as_bytes()[sni.len()..];
    rest.is_empty() || (rest[0] == b':' && rest[1..].iter().all(u8::is_ascii_digit))
}

/// Whether a request for `host` on a TLS connection whose client asked for
/// `sni` must be refused with 421: the names differ and `certs` serves them
/// with different certificates (or only one of them at all). No SNI (a
/// connection to an IP address), no host, or no certificate source: not
/// misdirected. `Host == SNI` costs one string comparison.
pub fn misdirected(
    certs: Option<&dyn HostCertificates>,
    sni: Option<&str>,
    host: Option<&str>,
) -> bool {
    let (Some(certs), Some(sni), Some(host)) = (certs, sni, host) else {
        return false;
    };
    if same_name(sni, host) {
        return false;
    }
    let Some(host) = berth_config::normalize_host(host) else {
        return false;
    };
    let sni = sni.trim_end_matches('.').to_ascii_lowercase();
    if *host == *sni {
        return false;
    }
    match (certs.certificate_for(&sni), certs.certificate_for(&host)) {
        (Some(connection), Some(asked)) => !Arc::ptr_eq(&connection, &asked),
        // Neither has a certificate: the handshake got the store's
        // fallback (or none), and so would one for `host`.
        (None, None) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_acme::{CertStore, Certificate, UnknownName};

    fn cert(names: &[&str]) -> Certificate {
        let names = names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let key = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Certificate::from_pem(&c.pem(), &key.serialize_pem()).unwrap()
    }

    fn store() -> CertStore {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = CertStore::new(UnknownName::Refuse).unwrap();
        store.install("a", cert(&["a.test"]));
        store.install("b", cert(&["b.test"]));
        store.install("both", cert(&["c.test", "d.test"]));
        store.install("wild", cert(&["*.w.test"]));
        store
    }

    #[test]
    fn hosts_served_by_another_certificate_are_misdirected() {
        let store = store();
        let check = |sni: Option<&str>, host: Option<&str>| {
            misdirected(Some(&store as &dyn HostCertificates), sni, host)
        };
        assert!(check(Some("a.test"), Some("b.test")));
        assert!(check(Some("a.test"), Some("B.test:443")));
        assert!(check(Some("a.test"), Some("c.test")));
        assert!(check(Some("a.test"), Some("unknown.test")));
        assert!(check(Some("unknown.test"), Some("a.test")));
        assert!(check(Some("x.w.test"), Some("a.test")));
    }

    #[test]
    fn hosts_the_connections_certificate_serves_are_not() {
        let store = store();
        let check = |sni: Option<&str>, host: Option<&str>| {
            misdirected(Some(&store as &dyn HostCertificates), sni, host)
        };
        assert!(!check(Some("a.test"), Some("a.test")));
        assert!(!check(Some("a.test"), Some("A.Test:8443")));
        assert!(!check(Some("a.test"), Some("a.test.")));
        assert!(!check(Some("A.TEST."), Some("a.test")));
        assert!(!check(Some("c.test"), Some("d.test")));
        assert!(!check(Some("x.w.test"), Some("y.w.test:443")));
        assert!(!check(Some("one.test"), Some("two.test")));
        // No SNI (an IP address was dialled), no host, no certificates.
        assert!(!check(None, Some("b.test")));
        assert!(!check(Some("a.test"), None));
        assert!(!misdirected(None, Some("a.test"), Some("b.test")));
    }

    #[test]
    fn the_same_name_is_told_without_normalizing() {
        assert!(same_name("a.test", "a.test"));
        assert!(same_name("a.test", "A.TEST:443"));
        assert!(!same_name("a.test", "a.test:x"));
        assert!(!same_name("a.test", "a.tes"));
        assert!(!same_name("a.test", "a.test.evil"));
        assert!(!same_name("a.test", "a.testx"));
    }
}
