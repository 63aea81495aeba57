//! What route rules cost at the edge, in one run on this machine, as
//! ratios:
//!
//! - the keep-alive hop with basic auth + security headers + a rate
//!   limit on, against the same hop with no rules (target: within 10 %);
//! - gzip of a 16 KiB text response by berth's edge against nginx's
//!   `gzip on` at the same level (5), both in front of the same upstream
//!   (target: at least nginx's throughput at no more CPU per request).
//!
//! The upstream is nginx serving both answers from memory on loopback.
//! berth's edge is `berth_proxy::serve_on_threads` (the code `berth
//! serve` runs, two threads, mimalloc as in the binary) in this process,
//! whose CPU time is the edge's; nginx's is its workers'. Runs are
//! interleaved (A B C D, A B C D, ...) and the medians compared; wrk
//! (`-t1 -c50`, keep-alive) is the client.
//!
//! Full run: `cargo bench --bench rules`
//! Smoke run (seconds, no file): `cargo bench --profile dev --bench rules -- --smoke`
//! Needs Debian's nginx and wrk.

#[path = "procs/mod.rs"]
mod procs;
#[macro_use]
#[path = "results/mod.rs"]
mod results;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use procs::cpu_us;

use berth_proxy::{
    Backend, EdgeOptions, EdgeProxy, ProxyMetrics, RouteSpec, RouteTable, Router, Rules,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gzip level of both proxies (berth's edge uses 5).
const GZIP_LEVEL: u32 = 5;
/// The basic-auth user every rules request sends.
const AUTH: &str = "Authorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ="; // bench:bench-password

/// 16 KiB of text, as an app would send a page.
fn text() -> String {
    (0..)
        .flat_map(|i: u32| {
            format!("<p>line {i} of a page the edge may compress</p>\n").into_bytes()
        })
        .take(16 * 1024)
        .map(char::from)
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_port(addr: &str) {
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {addr}");
}

/// nginx with `conf`'s `http` block, in `dir`; killed on drop.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, name: &str, http: &str) -> Self {
        let conf = format!(
            "daemon off;\nworker_processes 2;\npid {dir}/{name}.pid;\nerror_log {dir}/{name}.err warn;\n\
             events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  keepalive_requests 10000000;\n{http}}}\n",
            dir = dir.display()
        );
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed");
        Nginx(child)
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.0.id()];
        if let Ok(out) = Command::new("pgrep")
            .args(["-P", &self.0.id().to_string()])
            .output()
        {
            pids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// berth's edge on two threads of this process, one route to `upstream`
/// with `rules`.
fn berth_edge(upstream: SocketAddr, rules: serde_json::Value) -> SocketAddr {
    let rules: berth_config::RouteRules = serde_json::from_value(rules).expect("rules");
    let rules = Rules::compile(&rules).map(Arc::new);
    let table = RouteTable::build([RouteSpec {
        host: "bench.test".into(),
        path_prefix: "/".into(),
        strip_prefix: false,
        redirect_https: false,
        hsts: false,
        certified: false,
        backend: Arc::new(Backend::new("bench", vec![upstream])),
        rules,
    }]);
    let router = Arc::new(Router::new(table));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the edge");
    let addr = listener.local_addr().expect("edge address");
    let (stop, watch) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    let make = move || {
        let mut registry = prometheus_client::registry::Registry::default();
        EdgeProxy::new(
            router.clone(),
            ProxyMetrics::register(&mut registry),
            EdgeOptions {
                tls: false,
                connect_timeout: Duration::from_secs(1),
                read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
                https_port: 443,
                h3_port: None,
                certificates: None,
                tunnel_idle: Duration::from_secs(60),
            },
            Arc::default(),
        )
    };
    let threads =
        berth_proxy::serve_on_threads(listener, 2, make, None, watch).expect("the edge starts");
    std::mem::forget(threads);
    addr
}

/// One wrk run: requests per second and CPU µs per request of `pids`.
fn wrk(url: &str, headers: &[&str], seconds: u32, pids: &[u32]) -> (f64, f64) {
    let cpu0 = cpu_us(pids);
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c50", &format!("-d{seconds}s")])
        .args(["-H", "Host: bench.test"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk is installed");
    let cpu = cpu_us(pids) - cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rps = 0.0;
    let mut requests = 0.0;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().unwrap_or(0.0);
        } else if line.contains("requests in") {
            requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
        }
        if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            eprintln!("  {url}: {line}");
        }
    }
    (
        rps,
        if requests > 0.0 {
            cpu as f64 / requests
        } else {
            0.0
        },
    )
}

/// The answer's head to one request, to check what a run measures.
fn head_of(addr: &str, path: &str, extra: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).expect("connect");
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: bench.test\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let (rounds, seconds) = if smoke { (1, 1) } else { (5, 5) };
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("text.html"), text()).expect("write the page");
    let up_port = free_port();
    let upstream = Nginx::start(
        dir.path(),
        "upstream",
        &format!(
            "  server {{\n    listen 127.0.0.1:{up_port};\n    root {root};\n    types {{ text/html html; }}\n\
             location = /small {{ default_type text/plain; return 200 \"hello world\\n\"; }}\n  }}\n",
            root = dir.path().display()
        ),
    );
    let up = format!("127.0.0.1:{up_port}");
    wait_port(&up);
    let up_addr: SocketAddr = up.parse().expect("upstream address");
    let gz_port = free_port();
    let nginx_gzip = Nginx::start(
        dir.path(),
        "gzip",
        &format!(
            "  upstream u {{ server {up}; keepalive 128; }}\n  gzip on;\n  gzip_comp_level {GZIP_LEVEL};\n\
             gzip_types text/plain text/html;\n  gzip_min_length 1024;\n  gzip_proxied any;\n\
             server {{\n    listen 127.0.0.1:{gz_port} reuseport;\n    location / {{ proxy_pass http://u; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n"
        ),
    );
    let nginx_addr = format!("127.0.0.1:{gz_port}");
    wait_port(&nginx_addr);

    let plain = berth_edge(up_addr, serde_json::json!({}));
    let hashed = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"bench-salt-bench").expect("salt");
        argon2::Argon2::default()
            .hash_password(b"bench-password", &salt)
            .expect("hash")
            .to_string()
    };
    let guarded = berth_edge(
        up_addr,
        serde_json::json!({
            "basic_auth": {"realm": "bench", "users": [{"username": "bench", "password_hash": hashed}]},
            "security_headers": true,
            "rate_limit": {"per_second": 100000, "burst": 100000},
        }),
    );
    let gzip = berth_edge(up_addr, serde_json::json!({"compression": ["gzip"]}));

    // What each run measures.
    let guarded_head = head_of(&guarded.to_string(), "/small", &format!("{AUTH}\r\n"));
    assert!(guarded_head.starts_with("http/1.1 200") && guarded_head.contains("x-frame-options"));
    assert!(head_of(&guarded.to_string(), "/small", "").starts_with("http/1.1 401"));
    for addr in [gzip.to_string(), nginx_addr.clone()] {
        let h = head_of(&addr, "/text.html", "Accept-Encoding: gzip\r\n");
        assert!(h.contains("content-encoding: gzip"), "{addr}: {h}");
    }

    let me = vec![std::process::id()];
    let nginx_pids = nginx_gzip.pids();
    let _ = &upstream;
    let mut runs: [Vec<(f64, f64)>; 4] = Default::default();
    for _ in 0..rounds {
        runs[0].push(wrk(&format!("http://{plain}/small"), &[], seconds, &me));
        runs[1].push(wrk(
            &format!("http://{guarded}/small"),
            &[AUTH],
            seconds,
            &me,
        ));
        let ae = ["Accept-Encoding: gzip"];
        runs[2].push(wrk(&format!("http://{gzip}/text.html"), &ae, seconds, &me));
        runs[3].push(wrk(
            &format!("http://{nginx_addr}/text.html"),
            &ae,
            seconds,
            &nginx_pids,
        ));
    }
    let [no_rules, rules, berth_gz, nginx_gz] = runs.map(|r| {
        (
            median(r.iter().map(|x| x.0).collect()),
            median(r.iter().map(|x| x.1).collect()),
        )
    });
    let mut out = String::new();
    say!(
        out,
        "route rules, wrk -t1 -c50 keep-alive, {rounds} interleaved runs of {seconds} s, medians:"
    );
    say!(out, "| run | req/s | CPU µs/req |");
    say!(out, "|---|---:|---:|");
    for (name, (rps, cpu)) in [
        ("berth, no rules (12-byte answer)", no_rules),
        ("berth, basic auth + security headers + rate limit", rules),
        ("berth, gzip level 5 (16 KiB text)", berth_gz),
        ("nginx, gzip on, level 5 (16 KiB text)", nginx_gz),
    ] {
        say!(out, "| {name} | {rps:.0} | {cpu:.1} |");
    }
    say!(
        out,
        "rules on / off: {:.3}x req/s, {:.3}x CPU per request (target: req/s within 10 %)",
        rules.0 / no_rules.0,
        rules.1 / no_rules.1
    );
    say!(
        out,
        "gzip, berth / nginx: {:.3}x req/s, {:.3}x CPU per request (target: >= 1x req/s at <= 1x CPU)",
        berth_gz.0 / nginx_gz.0,
        berth_gz.1 / nginx_gz.1
    );
    if !smoke {
        results::record("rules", &format!("{out}\n"));
    }
}
