//! What every HTTP/3 request needs: the listener's settings, the route
//! table, the certificates, metrics and kept replica connections, and
//! the types of the streams and bodies it carries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h3::server::RequestStream;

use crate::fronting::HostCertificates;
use crate::pool::ReplicaPool;
use crate::{ProxyMetrics, Router};

pub(super) type SendHalf =
    RequestStream<<h3_quinn::BidiStream<Bytes> as h3::quic::BidiStream<Bytes>>::SendStream, Bytes>;
pub(super) type RecvHalf =
    RequestStream<<h3_quinn::BidiStream<Bytes> as h3::quic::BidiStream<Bytes>>::RecvStream, Bytes>;
pub(super) type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
/// One HTTP/1.1 client connection to a replica.
pub(super) type Sender = hyper::client::conn::http1::SendRequest<UpstreamBody>;

/// Settings of the HTTP/3 listener.
#[derive(Debug, Clone)]
pub struct H3Options {
    /// Deadline to connect to one replica before trying the next.
    pub connect_timeout: Duration,
    /// Longest wait for a replica's next bytes: its response head, then
    /// each piece of its body ([`crate::REPLICA_READ_TIMEOUT`] by default).
    pub read_timeout: Duration,
}

/// What every HTTP/3 request needs.
pub(super) struct Front {
    pub(super) router: Arc<Router>,
    /// The served certificates by name, for the domain-fronting check.
    pub(super) certs: Arc<dyn HostCertificates>,
    pub(super) metrics: ProxyMetrics,
    pub(super) options: H3Options,
    pub(super) pool: ReplicaPool<Sender>,
}

/// What the metrics record of one request.
pub(super) struct Outcome {
    pub(super) app: Option<Arc<str>>,
    pub(super) status: u16,
}
