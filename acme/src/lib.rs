//! berth's certificates: the store the TLS listeners read on every
//! handshake ([`CertStore`], [`Resolver`]), certificate validation
//! ([`Certificate`]), HTTP-01 answers ([`Http01Tokens`]) and the ACME client
//! that fills the store ([`AcmeClient`]). Persistence and scheduling live
//! with the caller: this crate never touches disk.

#![forbid(unsafe_code)]

mod challenge;
mod client;
mod error;
pub mod names;
mod pem;
mod store;

pub use challenge::{Http01Tokens, HTTP01_PREFIX};
pub use client::{AcmeClient, AcmeConfig, ChallengeKind, Issued};
pub use error::{chain as error_chain, AcmeError, CertError};
pub use pem::Certificate;
pub use store::{self_signed, CertStore, Installed, Resolver, UnknownName, ACME_TLS_ALPN};
