//! What the edge's test binaries share: a self-signed certificate for the
//! test hosts, served from berth's certificate store.

use std::sync::Arc;

use berth_acme::{CertStore, Certificate, Resolver, UnknownName};

/// A resolver serving one self-signed certificate for `hosts` (ring as
/// rustls's provider); also returns the certificate (DER) for clients to
/// trust.
pub fn self_signed(hosts: Vec<String>) -> (Arc<Resolver>, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(hosts)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let store = Arc::new(CertStore::new(UnknownName::Refuse).unwrap());
    store.install(
        "edge",
        Certificate::from_pem(&cert.pem(), &key.serialize_pem()).unwrap(),
    );
    (Arc::new(Resolver(store)), cert.der().to_vec())
}
