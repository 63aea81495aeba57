//! berth's edge proxy: the route table (an immutable snapshot swapped
//! atomically by the orchestrator), the request policy as plain functions,
//! and the front ends that serve it.
//!
//! Three front ends share one policy ([`policy`], including the one
//! Host/`:authority` rule), one upstream-attempt layer (`attempt.rs`:
//! replica choice, connect, resend, deadlines, failure → status) and one
//! page renderer (`pages.rs`), so they cannot drift: the edge's own
//! HTTP/1.1 codec (`h1.rs`, the hot path), pingora-core's h2 codec for
//! clients that negotiate h2 (`h2.rs`), and quinn + h3 for HTTP/3
//! (`h3.rs`). `tests/parity.rs` holds them to one table. An app may also
//! be a static [`site`] that the edge serves from memory itself.
//!
//! The modules' imports form layers, top to bottom (`tests/layers.rs`
//! checks that none import in a circle): `service` (the TCP listeners) →
//! `h1`, `h2` and `h3` (the front ends; HTTP/3 is a listener of its own) →
//! `edge` (a TCP listener's proxy and plan) → `attempt`, `pages`, `head`,
//! `tunnel`, `chunked` → `policy`, `pool`, `fronting`, `router`,
//! `metrics`, `balance` → `table`, `upstream`, `site`, `path` → `rules`
//! (a route's compiled rules, `rules/`) → `compress` (response codings).
//! Nothing reaches up: the connection a tunnel may cut is handed down
//! explicitly.

#![forbid(unsafe_code)]

mod attempt;
mod balance;
mod chunked;
mod compress;
mod edge;
mod fronting;
mod h1;
mod h2;
mod h3;
mod head;
mod metrics;
mod pages;
mod path;
pub mod policy;
mod pool;
mod router;
mod rules;
mod service;
mod shards;
pub mod site;
mod table;
mod tunnel;
mod upstream;

/// The HTTP/1.1 codec's head and framing functions, exported for the
/// criterion benches (`benches/lookups.rs`) only: not an API.
#[doc(hidden)]
pub mod codec {
    pub use crate::chunked::Chunked;
    pub use crate::head::{parse_request, parse_response, Forwarding, Reply, Request};
}

pub use attempt::REPLICA_READ_TIMEOUT;
pub use edge::{EdgeOptions, EdgeProxy};
pub use fronting::HostCertificates;
pub use h3::{serve_h3, H3Error, H3Options};
pub use metrics::ProxyMetrics;
pub use router::Router;
pub use rules::{maintenance_page, Rules, SECURITY_HEADERS};
pub use service::{serve, serve_on_threads, tls_config, EdgeThreads};
pub use site::{Site, SiteError, SiteOptions, SiteResponse};
pub use table::{https_applies, AppPages, Backend, Route, RouteSpec, RouteTable};
pub use upstream::{Upstream, UpstreamGuard, UpstreamState};
