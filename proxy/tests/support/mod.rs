//! What the edge's test binaries share: self-signed certificates for the
//! test hosts, served from berth's certificate store.

use std::sync::Arc;

use berth_acme::{CertStore, Certificate, Resolver, UnknownName};

pub mod clients;

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

/// A resolver serving a self-signed certificate of its own to each of
/// `hosts`; also returns the certificates (DER) for clients to trust.
pub fn self_signed_each(hosts: &[&str]) -> (Arc<Resolver>, Vec<Vec<u8>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = Arc::new(CertStore::new(UnknownName::Refuse).unwrap());
    let mut ders = Vec::new();
    for host in hosts {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        store.install(
            host,
            Certificate::from_pem(&cert.pem(), &key.serialize_pem()).unwrap(),
        );
        ders.push(cert.der().to_vec());
    }
    (Arc::new(Resolver(store)), ders)
}
