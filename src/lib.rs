//! berth's control plane as a library: the store (redb), the orchestrator
//! (desired state into containers and routes), builds from source, the
//! certificates (ACME and uploads), people and their sessions, and the one
//! permission check. The `berth` binary wires it to the edge, the admin
//! API and the panel.

#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod builds;
pub mod certs;
pub mod engine;
pub mod hooks;
pub mod instance;
pub mod orchestrator;
pub mod people;
pub mod secrets;
pub mod sessions;
pub mod store;
pub mod vault;
