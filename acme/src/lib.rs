//! berth's certificates (HTTPS, issue #4): the SNI certificate store read
//! by the TLS listeners and the ACME flows that fill it. This foundation
//! slice has no TLS listener yet; the crate holds the shared store so the
//! edge and the ACME client can grow around one type.

#![forbid(unsafe_code)]
