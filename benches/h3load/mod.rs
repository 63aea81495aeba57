//! A small HTTP/3 load generator for the peers harness, as h2load is for
//! h2 (Debian's h2load is built without QUIC): `connections` QUIC
//! connections with `streams` GETs in flight on each, for a fixed time,
//! on one thread of its own (one core, like `wrk -t1`). quinn + h3 on the
//! client side, so every HTTP/3 peer meets the same client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Buf;

/// A request not answered this soon counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one run did.
pub struct H3Load {
    /// Complete 200 responses.
    pub requests: u64,
    /// Requests that failed or answered otherwise.
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// Loads `https://{host}/` at `addr` (UDP) for `duration`, trusting the
/// PEM certificate `ca`.
pub fn run(
    addr: SocketAddr,
    host: &str,
    ca: &str,
    connections: usize,
    streams: usize,
    duration: Duration,
) -> H3Load {
    let host = host.to_string();
    let ca = ca.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(load(addr, host, ca, connections, streams, duration))
    })
    .join()
    .unwrap()
}

async fn load(
    addr: SocketAddr,
    host: String,
    ca: String,
    connections: usize,
    streams: usize,
    duration: Duration,
) -> H3Load {
    let endpoint = crate::support::tls::h3_endpoint(ca.as_bytes());

    let url: http::Uri = format!("https://{host}/").parse().unwrap();
    let mut senders = Vec::new();
    let mut drivers = Vec::new();
    for _ in 0..connections {
        let conn = endpoint.connect(addr, &host).unwrap().await.unwrap();
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .unwrap();
        drivers.push(tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        }));
        senders.push(sender);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for sender in &senders {
        for _ in 0..streams {
            let mut sender = sender.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                // Failures in a row: the connection is gone; stop rather
                // than spin on it.
                let mut failing = 0;
                while Instant::now() < deadline && failing < 3 {
                    let sent = Instant::now();
                    let req = http::Request::get(url.clone()).body(()).unwrap();
                    let exchange = async {
                        let mut stream = sender.send_request(req).await.ok()?;
                        stream.finish().await.ok()?;
                        let resp = stream.recv_response().await.ok()?;
                        while let Some(mut chunk) = stream.recv_data().await.ok()? {
                            chunk.advance(chunk.remaining());
                        }
                        (resp.status() == 200).then_some(())
                    };
                    let ok = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
                    match ok {
                        Ok(Some(())) => {
                            latencies.push(sent.elapsed());
                            failing = 0;
                        }
                        Ok(None) | Err(_) => {
                            errors += 1;
                            failing += 1;
                        }
                    }
                }
                (latencies, errors)
            }));
        }
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    drop(senders);
    for driver in drivers {
        driver.abort();
    }
    // Said to the server, so it does not keep the connections until they
    // idle out.
    endpoint.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    H3Load {
        requests: latencies.len() as u64,
        errors,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}
