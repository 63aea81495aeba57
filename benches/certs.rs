//! The certificate store at scale: SNI lookups among 10,000 certificates,
//! the time to install one more (what an issuance or renewal does to the
//! snapshot every handshake reads), memory per certificate, and a whole
//! TLS 1.3 handshake (in memory, rustls on both ends) through the resolver
//! with 10 and with 10,000 certificates in the store.
//!
//! Run: `cargo bench --bench certs`

#[path = "results/mod.rs"]
mod results;

use std::hint::black_box;
use std::sync::Arc;

use berth_acme::{CertStore, Certificate, Resolver, UnknownName};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;

/// Certificates in the large store (`BERTH_BENCH_CERTS` to change).
fn count() -> usize {
    std::env::var("BERTH_BENCH_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A CA and `n` leaves signed by it: `site<i>.example.com`, and every
/// hundredth a wildcard `*.tenant<i>.example.net`.
fn leaves(n: usize) -> (String, Vec<Certificate>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(params, ca_key);
    let certs = (0..n)
        .map(|i| {
            let name = if i % 100 == 99 {
                format!("*.tenant{i}.example.net")
            } else {
                format!("site{i}.example.com")
            };
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            Certificate::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
        })
        .collect();
    (ca_pem, certs)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn store_of(certs: &[Certificate]) -> Arc<CertStore> {
    let store = Arc::new(CertStore::new(UnknownName::Refuse).unwrap());
    for (i, c) in certs.iter().enumerate() {
        store.install(&format!("c{i}"), c.clone());
    }
    store
}

fn scale(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let before = rss_kib();
    let n = count();
    let (ca_pem, certs) = leaves(n);
    let parsed = rss_kib();
    let store = store_of(&certs);
    let stored = rss_kib();
    let memory = format!(
        "{n} certificates: {:.1} KiB each parsed (chain, key, names), {:.2} KiB each in the store's snapshot",
        (parsed.saturating_sub(before)) as f64 / n as f64,
        (stored.saturating_sub(parsed)) as f64 / n as f64,
    );
    eprintln!("{memory}");
    results::record("certs", &format!("```\n{memory}\n```\n"));

    let mut g = c.benchmark_group("certs_10k");
    g.bench_function("lookup_exact", |b| {
        b.iter(|| black_box(store.lookup(black_box("site42.example.com")).is_some()))
    });
    g.bench_function("lookup_wildcard", |b| {
        b.iter(|| {
            black_box(
                store
                    .lookup(black_box("shop.tenant199.example.net"))
                    .is_some(),
            )
        })
    });
    g.bench_function("lookup_unknown", |b| {
        b.iter(|| black_box(store.lookup(black_box("nobody.example.org")).is_none()))
    });
    g.sample_size(20);
    g.bench_function("install_one_more", |b| {
        b.iter_batched(
            || certs[0].clone(),
            |cert| store.install("renewed", cert),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // A full handshake through the resolver, small store against large.
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    roots.add(ca).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut g = c.benchmark_group("tls13_handshake");
    for (label, store) in [
        ("store_10", store_of(&certs[..10])),
        ("store_10k", store.clone()),
    ] {
        let server = berth_proxy::tls_config(Arc::new(Resolver(store)));
        let name = ServerName::try_from("site7.example.com").unwrap();
        g.bench_function(label, |b| {
            b.iter(|| handshake(&client, &server, name.clone()))
        });
    }
    g.finish();
}

/// Runs one handshake between in-memory rustls endpoints.
fn handshake(
    client: &Arc<rustls::ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: ServerName<'static>,
) {
    let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
    }
    black_box((c, s));
}

criterion_group!(benches, scale);
criterion_main!(benches);
