//! What every TCP front end shares: the [`EdgeProxy`] of a listener (its
//! options, route table, metrics and replica connection pool) and the
//! [`Plan`] for a request (ACME answer, redirect, page, static site or
//! forward). HTTP/1.1 (`h1.rs`) and h2 (`h2.rs`) take their decisions
//! here; how a request reaches a replica is `attempt.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use berth_acme::Http01Tokens;

use crate::fronting::{self, HostCertificates};
use crate::policy::{self, Decision, ErrorPage};
use crate::pool::ReplicaPool;
use crate::{ProxyMetrics, Route, Router, Site};

/// Settings of one edge listener.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Whether the listener terminates TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// Deadline to connect to one replica before trying the next.
    pub connect_timeout: Duration,
    /// Longest wait for a replica's next bytes: its response head, then
    /// each piece of its body ([`crate::REPLICA_READ_TIMEOUT`] by default).
    pub read_timeout: Duration,
    /// Port of the HTTPS listener, for redirects.
    pub https_port: u16,
    /// UDP port of the HTTP/3 listener, advertised in `Alt-Svc` on TLS.
    pub h3_port: Option<u16>,
    /// The certificates the TLS listener serves, by name: a request for a
    /// host another certificate serves than the connection's (SNI) gets
    /// 421 (`fronting.rs`). `None` on plain HTTP; on TLS it turns the
    /// check off.
    pub certificates: Option<Arc<dyn HostCertificates>>,
    /// Deadline for an upgraded connection (a WebSocket) that carries no
    /// byte either way.
    pub tunnel_idle: Duration,
}

/// Idle upstream connections kept per listener (per worker). Below the
/// client concurrency, every request past it opens and closes a connection
/// to its replica: twice the CPU, and TIME_WAIT piling up until connects
/// fail (pingora's default is 128).
const UPSTREAM_POOL: usize = 2048;

/// The edge proxy of one listener (or one worker of it): routes by the
/// shared [`Router`], reaches replicas through its own connection pool.
pub struct EdgeProxy {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    options: EdgeOptions,
    challenges: Arc<Http01Tokens>,
    pool: ReplicaPool,
    /// `Alt-Svc` of TLS responses, built once.
    alt_svc: Option<String>,
}

impl EdgeProxy {
    /// A proxy reading routes from `router` and answering ACME HTTP-01
    /// validations from `challenges`.
    pub fn new(
        router: Arc<Router>,
        metrics: ProxyMetrics,
        options: EdgeOptions,
        challenges: Arc<Http01Tokens>,
    ) -> Self {
        let alt_svc = policy::alt_svc(options.tls, options.h3_port);
        Self {
            router,
            metrics,
            options,
            challenges,
            pool: ReplicaPool::new(UPSTREAM_POOL),
            alt_svc,
        }
    }

    pub(crate) fn options(&self) -> &EdgeOptions {
        &self.options
    }

    pub(crate) fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    pub(crate) fn pool(&self) -> &ReplicaPool {
        &self.pool
    }

    pub(crate) fn alt_svc(&self) -> Option<&str> {
        self.alt_svc.as_deref()
    }

    /// What to do with a request for `host` and `path` (the path and query
    /// in `path_and_query`) on a connection whose TLS handshake asked for
    /// `sni`, and the app it belongs to: the one decision both TCP front
    /// ends take.
    pub(crate) fn plan(
        &self,
        sni: Option<&str>,
        host: Option<&str>,
        path: &str,
        path_and_query: &str,
    ) -> (Plan, Option<Arc<str>>) {
        let tls = self.options.tls;
        if fronting::misdirected(self.options.certificates.as_deref(), sni, host) {
            return (Plan::Page(policy::MISDIRECTED, None), None);
        }
        if let Some(key_auth) = policy::acme_challenge(tls, path, &self.challenges) {
            return (Plan::Challenge(key_auth), None);
        }
        let table = self.router.load();
        let decision = policy::decide(&table, host, path);
        let app = match &decision {
            Decision::Forward(route)
            | Decision::NoReplica(route)
            | Decision::Stopped(route)
            | Decision::Static(route, _) => {
                let app = route.backend().app().clone();
                let https_port = self.options.https_port;
                if let Some(to) =
                    policy::https_redirect(route, tls, host, path_and_query, https_port)
                {
                    return (Plan::Redirect(to), Some(app));
                }
                Some(app)
            }
            Decision::UnknownHost => None,
        };
        let plan = match decision {
            Decision::Forward(route) => Plan::Forward(route.clone()),
            Decision::Static(route, site) => Plan::Site {
                route: route.clone(),
                site: site.clone(),
                path: policy::site_path(route, path).into_owned(),
                hsts: policy::hsts(route, tls),
            },
            Decision::NoReplica(route) => Plan::Page(policy::NO_REPLICA, Some(route.clone())),
            Decision::Stopped(route) => Plan::Page(policy::STOPPED, Some(route.clone())),
            Decision::UnknownHost => Plan::Page(policy::NOT_FOUND, None),
        };
        (plan, app)
    }
}

/// What the edge does with a request, whichever front end read it.
pub(crate) enum Plan {
    /// Answer an ACME HTTP-01 validation with this key authorization.
    Challenge(String),
    /// Redirect to this HTTPS URL.
    Redirect(String),
    /// Forward to one of the route's replicas.
    Forward(Route),
    /// Answer with one of berth's pages, or the app's own for its status
    /// (the route is the app's, whose rules still apply first).
    Page(ErrorPage, Option<Route>),
    /// Answer from a static site: the file path asked for, and the
    /// route's HSTS value.
    Site {
        route: Route,
        site: Arc<Site>,
        path: String,
        hsts: Option<&'static str>,
    },
}
