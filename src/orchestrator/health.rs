//! The health gate: a new (or restarted) replica gets traffic only after
//! its app's health check passes, within the health deadline. Checks are
//! the image's Docker healthcheck, a TCP connect, or an HTTP `GET` that
//! must answer the expected status.

use std::net::SocketAddr;
use std::time::Duration;

use berth_config::{HealthCheck, HealthKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::deploy::DeployError;
use super::{Orchestrator, Replica};
use crate::engine::{HealthVerdict, ReplicaState};

/// Log lines quoted when a replica exits during its gate.
const EXIT_LOG_LINES: usize = 20;
/// Most bytes of an HTTP answer read to find its status line.
const STATUS_LINE_MAX: usize = 1024;

/// One probe's outcome.
enum Probe {
    /// Ready.
    Pass(SocketAddr),
    /// Not ready; counts towards `retries` after the start period.
    Fail(String),
    /// Not ready yet; does not count (Docker's check is still starting).
    Wait(String),
}

impl Orchestrator {
    /// Gates every replica on health within the health deadline.
    pub(super) async fn wait_all_healthy(
        &self,
        containers: &[String],
        port: u16,
        check: &HealthCheck,
        cancel: &CancellationToken,
    ) -> Result<Vec<Replica>, DeployError> {
        let deadline = Instant::now() + self.inner.settings.health_timeout;
        let gates = containers
            .iter()
            .map(|id| self.wait_healthy(id, port, check, deadline, cancel));
        let addrs =
            crate::engine::clock::waiting(futures_util::future::try_join_all(gates)).await?;
        Ok(containers
            .iter()
            .zip(addrs)
            .map(|(id, addr)| Replica::new(id.clone(), addr))
            .collect())
    }

    /// Probes one replica every `interval` until it passes, exits, fails
    /// `retries` times in a row after the start period, or the deadline.
    async fn wait_healthy(
        &self,
        container: &str,
        port: u16,
        check: &HealthCheck,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<SocketAddr, DeployError> {
        let started = Instant::now();
        let start_period = Duration::from_secs(check.start_period_secs);
        let mut failures = 0u32;
        loop {
            let last = match self.probe(container, port, check).await? {
                Probe::Pass(addr) => return Ok(addr),
                Probe::Wait(why) => why,
                Probe::Fail(why) => {
                    if started.elapsed() >= start_period {
                        failures += 1;
                        if check.retries > 0 && failures >= check.retries {
                            return Err(DeployError::Unhealthy(format!(
                                "health check failed {failures} times in a row: {why}"
                            )));
                        }
                    }
                    why
                }
            };
            if Instant::now() >= deadline {
                return Err(DeployError::Unhealthy(format!(
                    "replica not healthy within {}s: {last}",
                    self.inner.settings.health_timeout.as_secs()
                )));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(DeployError::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(check.interval_ms)) => {}
            }
        }
    }

    async fn probe(
        &self,
        container: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<Probe, DeployError> {
        let engine = &self.inner.engine;
        let (addr, docker) = match engine.replica_state(container, port).await? {
            ReplicaState::Exited(code) => {
                let logs = engine
                    .logs(container, EXIT_LOG_LINES)
                    .await
                    .map(|lines| {
                        lines
                            .into_iter()
                            .map(|l| l.text)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                let code = code.map_or("unknown".to_string(), |c| c.to_string());
                return Err(DeployError::Unhealthy(format!(
                    "replica exited with code {code} before it became healthy; last output:\n{logs}"
                )));
            }
            ReplicaState::Running { addr: None, .. } => {
                return Ok(Probe::Wait(format!(
                    "replica has no address on network {}",
                    engine.network()
                )))
            }
            ReplicaState::Running {
                addr: Some(addr),
                health,
            } => (addr, health),
        };
        let timeout = Duration::from_millis(check.timeout_ms);
        let use_docker = match (check.kind, &docker) {
            (HealthKind::Docker, None) => return Err(DeployError::Unhealthy(
                "health_check.type is docker but the image defines no HEALTHCHECK; use http or tcp"
                    .into(),
            )),
            (HealthKind::Docker, Some(_)) | (HealthKind::Auto, Some(_)) => true,
            _ => false,
        };
        if use_docker {
            return Ok(match docker {
                Some(HealthVerdict::Healthy) => Probe::Pass(addr),
                Some(HealthVerdict::Unhealthy(output)) => {
                    return Err(DeployError::Unhealthy(format!(
                        "the image's healthcheck reported unhealthy: {output}"
                    )))
                }
                _ => Probe::Wait("the image's healthcheck has not passed yet".into()),
            });
        }
        Ok(match check.kind {
            HealthKind::Http => match http_status(addr, &check.path, timeout).await {
                Ok(status) if status == check.expected_status => Probe::Pass(addr),
                Ok(status) => Probe::Fail(format!(
                    "GET {} answered {status}, expected {}",
                    check.path, check.expected_status
                )),
                Err(e) => Probe::Fail(format!("GET {} on port {port} failed: {e}", check.path)),
            },
            _ => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Probe::Pass(addr),
                Ok(Err(e)) => {
                    Probe::Fail(format!("nothing accepts connections on port {port}: {e}"))
                }
                Err(_) => Probe::Fail(format!("connecting to port {port} timed out")),
            },
        })
    }
}

/// The status of `GET path` on `addr`, all within `timeout`.
async fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < STATUS_LINE_MAX {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_status(&buf).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "the answer is not HTTP")
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}

/// The status code of an HTTP/1.x status line.
fn parse_status(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts
        .next()?
        .parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\nx"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 abc\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }
}
