//! Heap allocations per proxied request, and memory per route, counted by
//! a global allocator that wraps the system one.
//!
//! The edge (`berth_proxy::serve`, the code `berth serve` runs) gets a
//! single-threaded runtime on a thread of its own, and only that thread's
//! allocations count. The upstream (a fixed keep-alive answer) and the
//! client (fixed requests on one kept connection) are plain `std` sockets
//! on other threads, so they add nothing. After a warm-up (upstream pool,
//! buffers), it counts `N` requests and prints allocations and bytes per
//! request; then the bytes a route table of 10 to 10,000 hosts holds per
//! route. Allocation counts are exact and machine-independent, so a
//! regression shows as a different number, not as noise.
//!
//! Run: `cargo bench --bench allocs` (add `-- --smoke` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[macro_use]
#[path = "results/mod.rs"]
mod results;

use berth_proxy::{
    Backend, EdgeOptions, EdgeProxy, ProxyMetrics, RouteSpec, RouteTable, Router, Rules, Upstream,
};

/// Counts allocations made on threads that opted in.
struct Counting;

/// Allocations and bytes allocated on the edge's thread.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Edge allocations by size class: bucket `i` holds sizes in
/// `[2^(i-1), 2^i)` (bucket 0: zero-sized).
static SIZES: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
/// Net bytes held by what the measuring thread allocated (allocations
/// minus frees made on that thread).
static HELD: AtomicI64 = AtomicI64::new(0);

/// Which counter a thread's allocations go to.
#[derive(Clone, Copy, PartialEq)]
enum Lane {
    None,
    Edge,
    Held,
}

thread_local! {
    static LANE: Cell<Lane> = const { Cell::new(Lane::None) };
}

fn lane() -> Lane {
    LANE.try_with(Cell::get).unwrap_or(Lane::None)
}

// SAFETY: every method forwards to `System` with the caller's arguments;
// the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match lane() {
            Lane::Edge => count_edge(layout.size()),
            Lane::Held => {
                HELD.fetch_add(layout.size() as i64, Ordering::Relaxed);
            }
            Lane::None => {}
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lane() == Lane::Held {
            HELD.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match lane() {
            Lane::Edge => count_edge(new_size),
            Lane::Held => {
                HELD.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            }
            Lane::None => {}
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count_edge(size: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    let bucket = (usize::BITS - size.leading_zeros()) as usize;
    SIZES[bucket.min(31)].fetch_add(1, Ordering::Relaxed);
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nhello world\n";

/// An upstream answering every keep-alive request with [`RESPONSE`].
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    // Read the request head up to the blank line.
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            if reader.get_mut().write_all(RESPONSE).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

/// Starts the edge on a thread of its own whose allocations count; its
/// one route has `rules` (none: the plain hop).
fn edge(upstream: SocketAddr, rules: Option<Arc<Rules>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind edge");
    let addr = listener.local_addr().expect("edge address");
    std::thread::spawn(move || {
        LANE.with(|c| c.set(Lane::Edge));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let backend = Arc::new(Backend::with_upstreams(
                "bench",
                vec![Upstream::new(upstream)],
            ));
            let table = RouteTable::build(vec![RouteSpec {
                host: "bench.test".into(),
                path_prefix: "/".into(),
                strip_prefix: false,
                redirect_https: false,
                hsts: false,
                certified: false,
                backend,
                rules,
            }]);
            let mut registry = prometheus_client::registry::Registry::default();
            let proxy = EdgeProxy::new(
                Arc::new(Router::new(table)),
                ProxyMetrics::register(&mut registry),
                EdgeOptions {
                    tls: false,
                    connect_timeout: Duration::from_secs(1),
                    read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
                    https_port: 443,
                    h3_port: None,
                    certificates: None,
                    tunnel_idle: Duration::from_secs(3600),
                },
                Arc::default(),
            );
            let (_stop, watch) = tokio::sync::watch::channel(false);
            let _ = berth_proxy::serve(listener, proxy, None, watch).await;
        });
    });
    addr
}

/// The request every run sends (basic auth's credentials besides).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: allocs\r\n\
Authorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=\r\n\r\n";

/// Basic auth (user `bench`, its argon2 hash), security headers and a
/// rate limit no client reaches: the rules `benches/rules.rs` times.
fn guarded() -> Arc<Rules> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"bench-salt-bench").expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"bench-password", &salt)
        .expect("hash")
        .to_string();
    let rules: berth_config::RouteRules = serde_json::from_value(serde_json::json!({
        "basic_auth": {"realm": "bench", "users": [{"username": "bench", "password_hash": hash}]},
        "security_headers": true,
        "rate_limit": {"per_second": 100000, "burst": 100000},
    }))
    .expect("rules");
    Arc::new(Rules::compile(&rules).expect("rules to apply"))
}

/// Sends `n` requests on one kept connection, reading each answer whole.
fn requests(stream: &mut TcpStream, n: usize) {
    let request = REQUEST;
    let mut buf = vec![0u8; 4096];
    for _ in 0..n {
        stream.write_all(request).expect("send");
        // The edge's answer: head, then a 12-byte body.
        let mut got = Vec::new();
        loop {
            let k = stream.read(&mut buf).expect("read");
            assert!(k > 0, "the edge closed the connection");
            got.extend_from_slice(&buf[..k]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= end + 4 + 12 {
                    assert!(
                        got.starts_with(b"HTTP/1.1 200"),
                        "{:?}",
                        String::from_utf8_lossy(&got)
                    );
                    break;
                }
            }
        }
    }
}

/// Allocations, bytes and size classes counted so far on the edge.
fn counts() -> (u64, u64, [u64; 32]) {
    (
        ALLOCS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
        SIZES.each_ref().map(|c| c.load(Ordering::SeqCst)),
    )
}

/// Counts `n` requests (after a warm-up) through an edge whose route has
/// `rules`, and reports them under `title`.
fn hop(out: &mut String, title: &str, rules: Option<Arc<Rules>>, n: usize) {
    let addr = edge(upstream(), rules);
    let mut stream = TcpStream::connect(addr).expect("connect to the edge");
    stream.set_nodelay(true).expect("nodelay");
    requests(&mut stream, 1_000);
    let (a0, b0, s0) = counts();
    requests(&mut stream, n);
    let (a1, b1, s1) = counts();
    let per = |x: u64| x as f64 / n as f64;
    say!(
        out,
        "{title}, HTTP/1.1 keep-alive, {n} requests after a warm-up of 1,000:"
    );
    say!(
        out,
        "  {:.2} allocations and {:.0} bytes allocated per proxied request ({} and {} bytes in all)",
        per(a1 - a0),
        per(b1 - b0),
        a1 - a0,
        b1 - b0
    );
    let classes: Vec<String> = (0..32)
        .filter(|&i| s1[i] > s0[i])
        .map(|i| {
            let (lo, hi) = if i == 0 {
                (0, 0)
            } else {
                (1u64 << (i - 1), (1u64 << i) - 1)
            };
            format!("{lo}-{hi} B: {:.1}", per(s1[i] - s0[i]))
        })
        .collect();
    say!(out, "  per request by size: {}", classes.join(", "));
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let mut out = String::new();
    let n = if smoke { 2_000 } else { 50_000 };
    hop(&mut out, "edge, no rules", None, n);
    hop(
        &mut out,
        "edge, basic auth + security headers + rate limit",
        Some(guarded()),
        n,
    );
    say!(
        out,
        "route table (each host: a root route and an /api route):"
    );
    LANE.with(|c| c.set(Lane::Held));
    for hosts in [10usize, 1_000, 10_000] {
        let held0 = HELD.load(Ordering::SeqCst);
        let specs: Vec<RouteSpec> = (0..hosts)
            .flat_map(|i| {
                let backend = Arc::new(Backend::new(
                    format!("app{i}"),
                    vec![SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 8080))],
                ));
                ["/", "/api"].map(|prefix| RouteSpec {
                    host: format!("app{i}.example.com"),
                    path_prefix: prefix.to_string(),
                    strip_prefix: prefix != "/",
                    redirect_https: false,
                    hsts: false,
                    certified: false,
                    backend: backend.clone(),
                    rules: None,
                })
            })
            .collect();
        let table = RouteTable::build(specs);
        let held = HELD.load(Ordering::SeqCst) - held0;
        say!(
            out,
            "  {hosts:>6} hosts, {:>6} routes: {:>8} bytes held, {:.0} bytes per route",
            table.len(),
            held,
            held as f64 / table.len() as f64
        );
        drop(table);
    }
    LANE.with(|c| c.set(Lane::None));
    if !smoke {
        results::record("allocs", &format!("```\n{out}```\n"));
    }
}
