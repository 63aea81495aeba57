//! The upstream attempt every front end shares (HTTP/1.1, h2 and HTTP/3
//! alike): which replica a request goes to next and when it may go to
//! another, the deadlines toward a replica, and what a failed attempt
//! means: who is at fault, which status the client gets, whether another
//! try is safe. The front ends only move bytes; the decisions are here,
//! so they cannot drift.
//!
//! The rules:
//! - Nothing is sent to a replica before it accepted a connection, so a
//!   replica that refuses (or does not answer the connect in
//!   [`connect_timeout`](crate::EdgeOptions::connect_timeout)) is skipped
//!   for the next one. Once the route ran out, the current table is asked
//!   once more (a deploy may have switched it meanwhile).
//! - Every replica unreachable: 502, or 504 when the last connect timed
//!   out. Every replica draining: 503. The route gone meanwhile: 404.
//! - A kept connection the replica had closed (nothing of the request was
//!   taken, nothing came back) sends the request once more, to the same
//!   replica on a new connection; a timeout never does.
//! - A replica that fails before a response reached the client: 502, or
//!   504 when it stayed silent past the read deadline. After the response
//!   head went out, a failure cuts the response (the client sees it short).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::policy::{self, Decision, ErrorPage};
use crate::pool::{Kept, ReplicaPool};
use crate::{Route, Router, UpstreamGuard};

/// Longest wait for a replica's next bytes (its response head, or more of
/// its body) unless a listener sets its own. nginx's `proxy_read_timeout`
/// is 60 s; a replica streaming events gets more room here.
pub const REPLICA_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a write to a replica may stall.
pub(crate) const REPLICA_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How forwarding ended when no response was relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No replica could be connected to (502), or the last try timed out (504).
    Unreachable { timed_out: bool },
    /// Every replica of the route is draining (503).
    Draining,
    /// The route is gone from the table (404).
    Gone,
    /// The replica failed before a response was relayed (502, 504 on time).
    Replica { timed_out: bool },
    /// The client went away (nothing to answer) or sent a malformed body (400).
    Client { malformed: bool },
    /// The request body ran past the route's `max_body_bytes` (413).
    TooLarge,
}

impl Failure {
    /// The status of the error page; 0 when the client gets none.
    pub(crate) fn status(self) -> u16 {
        match self {
            Failure::Unreachable { timed_out: true } | Failure::Replica { timed_out: true } => 504,
            Failure::Unreachable { timed_out: false } | Failure::Replica { timed_out: false } => {
                502
            }
            Failure::Draining => 503,
            Failure::Gone => 404,
            Failure::Client { malformed: true } => 400,
            Failure::TooLarge => 413,
            Failure::Client { malformed: false } => 0,
        }
    }

    /// The page the client gets, if any.
    pub(crate) fn page(self) -> Option<ErrorPage> {
        match self.status() {
            0 => None,
            status => Some(policy::error_page(status)),
        }
    }
}

/// Whether an I/O error is a deadline that passed.
pub(crate) fn timed_out(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
}

/// The replicas one request may go to, in turn: the next one that is not
/// draining and accepts a connection (the module's rules).
pub(crate) struct Attempts {
    route: Route,
    turn: usize,
    attempt: usize,
    rerouted: bool,
    connect_failed: bool,
    timed_out: bool,
    stale_retried: bool,
}

impl Attempts {
    pub(crate) fn new(route: Route) -> Self {
        let turn = route.backend().start();
        Self {
            route,
            turn,
            attempt: 0,
            rerouted: false,
            connect_failed: false,
            timed_out: false,
            stale_retried: false,
        }
    }

    /// The route being tried.
    pub(crate) fn route(&self) -> &Route {
        &self.route
    }

    /// The next replica to try, with the guard counting the request on it;
    /// `host` and `path` find the route again in `router` once this one ran
    /// out.
    pub(crate) fn next(
        &mut self,
        router: &Router,
        host: Option<&str>,
        path: &str,
    ) -> Result<(SocketAddr, UpstreamGuard), Failure> {
        loop {
            let Some(upstream) = self.route.backend().pick(self.turn, self.attempt) else {
                let ran_out = if self.connect_failed {
                    Failure::Unreachable {
                        timed_out: self.timed_out,
                    }
                } else {
                    Failure::Draining
                };
                if self.rerouted {
                    return Err(ran_out);
                }
                self.rerouted = true;
                let table = router.load();
                self.route = match policy::decide(&table, host, path) {
                    Decision::Forward(route) => route.clone(),
                    Decision::NoReplica(_) | Decision::Stopped(_) => return Err(ran_out),
                    _ => return Err(Failure::Gone),
                };
                (self.turn, self.attempt) = (self.route.backend().start(), 0);
                continue;
            };
            self.attempt += 1;
            if let Some(guard) = upstream.acquire() {
                return Ok((upstream.addr(), guard));
            }
        }
    }

    /// A connection to `addr`: an idle one from `pool` unless a closed one
    /// was met already, else a new one from `dial`. `None` when connecting
    /// failed (the next replica is tried); `Some((conn, reused))`.
    /// `retryable`: the request may go again should a kept connection turn
    /// out closed.
    pub(crate) async fn connect<T, F, D>(
        &mut self,
        pool: &ReplicaPool<T>,
        addr: SocketAddr,
        retryable: bool,
        dial: D,
    ) -> Option<(T, bool)>
    where
        T: Kept,
        D: FnOnce() -> F,
        F: Future<Output = std::io::Result<T>>,
    {
        if !self.stale_retried {
            if let Some(conn) = pool.take(addr, retryable) {
                return Some((conn, true));
            }
        }
        match dial().await {
            Ok(conn) => Some((conn, false)),
            Err(e) => {
                tracing::debug!(replica = %addr, err = %e, "connect failed");
                self.connect_failed = true;
                self.timed_out = timed_out(&e);
                None
            }
        }
    }

    /// What follows a replica's failure before anything reached the
    /// client: `Ok(())` when the request goes again, to the same replica
    /// on a new connection (a kept connection the replica had closed:
    /// `stale`, nothing of the request taken and nothing answered; once
    /// per request, never after a timeout); else the failure to answer.
    pub(crate) fn replica_failed(
        &mut self,
        reused: bool,
        stale: bool,
        timed_out: bool,
    ) -> Result<(), Failure> {
        if reused && stale && !timed_out && !self.stale_retried {
            self.stale_retried = true;
            // The same replica is handed out again.
            self.attempt -= 1;
            return Ok(());
        }
        Err(Failure::Replica { timed_out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_one_status_whoever_met_them() {
        let cases = [
            (Failure::Unreachable { timed_out: false }, 502),
            (Failure::Unreachable { timed_out: true }, 504),
            (Failure::Replica { timed_out: false }, 502),
            (Failure::Replica { timed_out: true }, 504),
            (Failure::Draining, 503),
            (Failure::Gone, 404),
            (Failure::Client { malformed: true }, 400),
            (Failure::TooLarge, 413),
            (Failure::Client { malformed: false }, 0),
        ];
        for (failure, status) in cases {
            assert_eq!(failure.status(), status, "{failure:?}");
            assert_eq!(
                failure.page().map(|p| p.status),
                (status > 0).then_some(status)
            );
        }
    }

    fn attempts() -> Attempts {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let backend = std::sync::Arc::new(crate::Backend::new("app", vec![addr]));
        let table = crate::RouteTable::build([crate::RouteSpec {
            host: "app.test".into(),
            path_prefix: "/".into(),
            strip_prefix: false,
            redirect_https: false,
            hsts: false,
            certified: true,
            backend,
            rules: None,
        }]);
        let Decision::Forward(route) = policy::decide(&table, Some("app.test"), "/") else {
            panic!("routed");
        };
        let mut attempts = Attempts::new(route.clone());
        attempts.attempt = 1;
        attempts
    }

    #[test]
    fn only_a_closed_kept_connection_sends_again_and_only_once() {
        let mut a = attempts();
        assert_eq!(a.replica_failed(true, true, false), Ok(()));
        assert_eq!(a.attempt, 0, "the same replica is handed out again");
        a.attempt = 1;
        let again = a.replica_failed(true, true, false);
        assert_eq!(again, Err(Failure::Replica { timed_out: false }));

        let mut a = attempts();
        let timeout = a.replica_failed(true, true, true);
        assert_eq!(timeout, Err(Failure::Replica { timed_out: true }));
        let fresh = attempts().replica_failed(false, true, false);
        assert_eq!(fresh, Err(Failure::Replica { timed_out: false }));
        let late = attempts().replica_failed(true, false, false);
        assert_eq!(late, Err(Failure::Replica { timed_out: false }));
    }
}
