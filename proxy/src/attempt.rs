//! The upstream attempt every front end shares: the deadlines toward a
//! replica, and what a failed attempt means (who is at fault, which
//! status the client gets, whether another try is safe).

use std::time::Duration;

/// Longest wait for a replica's next bytes (its response head, or more of
/// its body) unless a listener sets its own. nginx's `proxy_read_timeout`
/// is 60 s; a replica streaming events gets more room here.
pub const REPLICA_READ_TIMEOUT: Duration = Duration::from_secs(300);
