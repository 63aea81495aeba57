//! berth's edge proxy: the route table (an immutable snapshot swapped
//! atomically by the orchestrator), the request policy as plain functions,
//! and the thin pingora glue that serves it.
//!
//! The policy lives in [`policy`] so that other front ends (HTTP/3, a
//! pingora-core app) call the same code and cannot drift.

#![forbid(unsafe_code)]

mod metrics;
pub mod policy;
mod router;
mod service;
mod table;
mod upstream;

pub use metrics::ProxyMetrics;
pub use router::Router;
pub use service::{serve, tls_config, EdgeOptions, EdgeProxy};
pub use table::{Backend, Route, RouteSpec, RouteTable};
pub use upstream::{Upstream, UpstreamGuard, UpstreamState};
