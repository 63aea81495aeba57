//! berth side by side with its peers on this machine, one run, ratios.
//!
//! One fast keep-alive upstream (this harness itself, in `--upstream` mode,
//! in a container berth deploys) is fronted in turn by berth, nginx,
//! HAProxy and Caddy (Debian packages, workers = cores, keep-alive to the
//! upstream), plus the upstream reached directly as the baseline. Runs are
//! interleaved (A B C D E, A B C D E, ...) and the medians compared:
//!
//! - hop: wrk, HTTP/1.1 keep-alive, and a new connection per request;
//! - TLS: h2load, h2 over TLS on kept connections, and full TLS 1.3
//!   handshakes (one request per connection);
//! - HTTP/3: the harness's own quinn + h3 load generator (Debian's h2load
//!   has no QUIC) against the peers that speak it (berth, Caddy);
//! - footprint: berth's idle RSS with 0, 100 and 1,000 apps, and the time
//!   from start to serving with 1,000 apps in the store.
//!
//! Req/s, p50/p99 latency, CPU µs per request (user + system of the proxy's
//! processes, from /proc) and RSS; ratios to nginx and to the baseline.
//!
//! Full run (writes BENCHMARKS.md): `cargo bench --bench peers`
//! Smoke run (seconds, no file):    `cargo bench --profile dev --bench peers -- --smoke`
//! Hop loop (keep-alive only, no file): `cargo bench --bench peers -- --quick`
//! HTTP/3 loop (berth and Caddy, no file): `cargo bench --bench peers -- --h3`
//! h2 loop (every proxy, no file):       `cargo bench --bench peers -- --h2`
//! New-connection loop (no Caddy, no file): `cargo bench --bench peers -- --close`
//! Needs Docker, and Debian's wrk, nghttp2-client, nginx, haproxy, caddy
//! and busybox-static (the upstream image borrows nothing else).

#[path = "h3load/mod.rs"]
mod h3load;
#[path = "procs/mod.rs"]
mod procs;
#[path = "results/mod.rs"]
mod results;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procs::cpu_us;
use serde_json::json;
use support::tls::TestCa;
use support::{docker, Berth};

/// Body of every upstream answer (12 bytes, as in the issue's numbers).
const BODY: &[u8] = b"hello world\n";
/// Port the upstream listens on, in its container.
const UPSTREAM_PORT: u16 = 8080;
/// Host name every proxy serves.
const HOST: &str = "bench.test";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--upstream") {
        let port = args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(UPSTREAM_PORT);
        return upstream(port);
    }
    // `cargo test --benches` runs bench targets with `--test`: nothing to do.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plan = if smoke {
        Plan::smoke()
    } else if args.iter().any(|a| a == "--quick") {
        Plan::focused(Focus::KeepAlive)
    } else if args.iter().any(|a| a == "--h3") {
        Plan::focused(Focus::H3)
    } else if args.iter().any(|a| a == "--h2") {
        Plan::focused(Focus::H2)
    } else if args.iter().any(|a| a == "--close") {
        Plan::focused(Focus::Close)
    } else {
        Plan::full()
    };
    runtime.block_on(run(plan));
}

/// How long and how often.
struct Plan {
    smoke: bool,
    /// What runs: everything, or one scenario as a tuning loop (no
    /// footprint, no file).
    focus: Focus,
    rounds: usize,
    seconds: u64,
    connections: usize,
    /// Requests per h2load run.
    h2_requests: usize,
    /// Handshakes per h2load run.
    handshakes: usize,
    apps: [usize; 3],
}

impl Plan {
    fn full() -> Plan {
        Plan {
            smoke: false,
            focus: Focus::All,
            rounds: 3,
            seconds: 8,
            connections: 50,
            h2_requests: 200_000,
            handshakes: 4_000,
            apps: [0, 100, 1000],
        }
    }

    fn focused(focus: Focus) -> Plan {
        Plan {
            focus,
            seconds: 5,
            ..Plan::full()
        }
    }

    fn smoke() -> Plan {
        Plan {
            smoke: true,
            focus: Focus::All,
            rounds: 1,
            seconds: 1,
            connections: 8,
            h2_requests: 2_000,
            handshakes: 100,
            apps: [0, 10, 20],
        }
    }
}

/// Which scenarios a run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Focus {
    All,
    /// HTTP/1.1 keep-alive through berth, nginx and HAProxy.
    KeepAlive,
    /// HTTP/3 through berth and Caddy.
    H3,
    /// h2 over TLS on kept connections through every proxy.
    H2,
    /// HTTP/1.1 with a new connection per request through berth, nginx
    /// and HAProxy.
    Close,
}

/// The upstream: HTTP/1.1 keep-alive, a fixed 12-byte body, one worker
/// thread per core.
fn upstream(port: u16) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(BODY),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// One proxy under test (or the baseline).
struct Peer {
    name: &'static str,
    /// Plain HTTP address.
    http: String,
    /// HTTPS address, if it terminates TLS here.
    https: Option<String>,
    /// HTTP/3 (UDP) address, if it speaks HTTP/3.
    h3: Option<String>,
    /// Processes whose CPU and memory count.
    pids: Vec<u32>,
    child: Option<Child>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // Only processes this peer started (berth's belongs to its harness).
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets a master (nginx, HAProxy) stop its workers; a
        // SIGKILL would orphan them.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Workers that outlived their master.
        for pid in &self.pids {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

/// Resident memory of `pids`, in KiB.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// A process and its children (nginx's workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(out) = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `what` listens on `addr`; on failure shows its `log`.
fn wait_port(addr: &str, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} never listened on {addr}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|_| "not installed".into())
}

/// One measurement of one peer.
#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    rss_kib: f64,
}

fn parse_latency_ms(text: &str) -> f64 {
    let text = text.trim();
    let (num, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "ms"), |i| text.split_at(i));
    let value: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        _ => f64::NAN,
    }
}

/// wrk against `url` for `seconds`; keep-alive unless `close`.
fn wrk(plan: &Plan, peer: &Peer, url: &str, close: bool) -> Sample {
    let cpu0 = cpu_us(&peer.pids);
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", &format!("-c{}", plan.connections)])
        .args([&format!("-d{}s", plan.seconds), "--latency"])
        .args(["-H", &format!("Host: {HOST}")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(url).output().expect("wrk is installed");
    let cpu = cpu_us(&peer.pids) - cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = Sample {
        rss_kib: rss_kib(&peer.pids) as f64,
        ..Sample::default()
    };
    let mut requests = 0.0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            s.p50_ms = parse_latency_ms(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            s.p99_ms = parse_latency_ms(v);
        } else if line.contains("requests in") {
            requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
        }
        if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            eprintln!("  {}: {line}", peer.name);
        }
    }
    if requests > 0.0 {
        s.cpu_us_per_req = cpu as f64 / requests;
    }
    s
}

/// h2load over TLS: `requests` on `clients` connections (`streams` each).
fn h2load(peer: &Peer, requests: usize, clients: usize, streams: usize) -> Sample {
    let Some(https) = &peer.https else {
        return Sample::default();
    };
    let port = https.rsplit(':').next().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let cpu0 = cpu_us(&peer.pids);
    let out = Command::new("h2load")
        .args(["-n", &requests.to_string(), "-c", &clients.to_string()])
        .args(["-m", &streams.to_string(), "-t", "1"])
        .arg(format!("--connect-to=127.0.0.1:{port}"))
        .arg(format!("--log-file={}", log.path().display()))
        .arg(format!("https://{HOST}:{port}/"))
        .output()
        .expect("h2load is installed (nghttp2-client)");
    let cpu = cpu_us(&peer.pids) - cpu0;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = Sample {
        rss_kib: rss_kib(&peer.pids) as f64,
        ..Sample::default()
    };
    let mut done = 0.0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in") {
            // "finished in 1.23s, 12345.67 req/s, 1.2MB/s"
            s.rps = rest
                .split(',')
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "requests: 100 total, 100 started, 100 done, 100 succeeded, ..."
            done = rest
                .split(',')
                .find(|p| p.contains("succeeded"))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if done < requests as f64 {
                eprintln!("  {}: {line}", peer.name);
            }
        }
    }
    // h2load prints no percentiles; its per-request log has each time.
    let mut times = logged_times_ms(log.path());
    if times.is_empty() {
        (s.p50_ms, s.p99_ms) = (f64::NAN, f64::NAN);
    } else {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        s.p50_ms = at(0.50);
        s.p99_ms = at(0.99);
        eprintln!(
            "  {}: h2load's slowest of {} successful requests: {:.1} ms",
            peer.name,
            times.len(),
            times[times.len() - 1]
        );
    }
    if done > 0.0 {
        s.cpu_us_per_req = cpu as f64 / done;
    }
    s
}

/// Times (ms) of the successful (2xx) requests in an h2load `--log-file`:
/// tab-separated start (µs since the epoch), status, and µs until the end
/// of the response.
fn logged_times_ms(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t').skip(1);
            let status: u16 = fields.next()?.trim().parse().ok()?;
            let us: f64 = fields.next()?.trim().parse().ok()?;
            (200..300).contains(&status).then_some(us / 1000.0)
        })
        .collect()
}

/// The harness's HTTP/3 load (`plan.connections` connections, 10
/// streams each) against `peer` for `plan.seconds`.
fn h3(plan: &Plan, peer: &Peer, ca_pem: &str) -> Sample {
    let Some(addr) = &peer.h3 else {
        return Sample::default();
    };
    let cpu0 = cpu_us(&peer.pids);
    let load = h3load::run(
        addr.parse().unwrap(),
        HOST,
        ca_pem,
        plan.connections,
        10,
        Duration::from_secs(plan.seconds),
    );
    let cpu = cpu_us(&peer.pids) - cpu0;
    if load.errors > 0 {
        eprintln!("  {}: {} HTTP/3 requests failed", peer.name, load.errors);
    }
    let done = load.requests.max(1) as f64;
    Sample {
        rps: load.requests as f64 / load.elapsed.as_secs_f64(),
        p50_ms: load.p50.as_secs_f64() * 1000.0,
        p99_ms: load.p99.as_secs_f64() * 1000.0,
        cpu_us_per_req: cpu as f64 / done,
        rss_kib: rss_kib(&peer.pids) as f64,
    }
}

/// Files the peers share: certificate and key of `bench.test`.
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
    key_pem: String,
}

fn start_nginx(dir: &Path, upstream: &str, tls: &Tls) -> Peer {
    let (http, https) = (free_port(), free_port());
    let conf = format!(
        "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx.err warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 10000000;\n  upstream u {{ server {upstream}; keepalive 512; }}\n\
           server {{\n    listen 127.0.0.1:{http} reuseport;\n    listen 127.0.0.1:{https} ssl http2 reuseport;\n\
             ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
        dir = dir.display(),
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed");
    let addr = format!("127.0.0.1:{http}");
    wait_port(&addr, "nginx", &dir.join("nginx.err"));
    std::thread::sleep(Duration::from_millis(300));
    Peer {
        name: "nginx",
        pids: with_children(child.id()),
        http: addr,
        https: Some(format!("127.0.0.1:{https}")),
        h3: None,
        child: Some(child),
    }
}

fn start_haproxy(dir: &Path, upstream: &str, tls: &Tls) -> Peer {
    let (http, https) = (free_port(), free_port());
    let combined = dir.join("haproxy.pem");
    std::fs::write(&combined, format!("{}{}", tls.cert_pem, tls.key_pem)).unwrap();
    let conf = format!(
        "global\n  maxconn 4096\n  nbthread {cores}\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  option http-keep-alive\n  http-reuse always\n\
         frontend plain\n  bind 127.0.0.1:{http}\n  bind 127.0.0.1:{https} ssl crt {pem} alpn h2,http/1.1\n  default_backend app\n\
         backend app\n  server s1 {upstream}\n",
        cores = cores(),
        pem = combined.display(),
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
        .spawn()
        .expect("haproxy is installed");
    let addr = format!("127.0.0.1:{http}");
    wait_port(&addr, "haproxy", &dir.join("haproxy.log"));
    Peer {
        name: "haproxy",
        pids: vec![child.id()],
        http: addr,
        https: Some(format!("127.0.0.1:{https}")),
        h3: None,
        child: Some(child),
    }
}

fn start_caddy(dir: &Path, upstream: &str, tls: &Tls) -> Peer {
    let (http, https) = (free_port(), free_port());
    let conf = format!(
        "{{\n  admin off\n  auto_https off\n  default_sni {HOST}\n  servers {{\n    protocols h1 h2 h3\n  }}\n}}\n\
         http://{HOST}:{http} {{\n  bind 127.0.0.1\n  reverse_proxy {upstream}\n}}\n\
         https://{HOST}:{https} {{\n  bind 127.0.0.1\n  tls {cert} {key}\n  reverse_proxy {upstream}\n}}\n",
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("caddy.log")).unwrap())
        .spawn()
        .expect("caddy is installed");
    let addr = format!("127.0.0.1:{http}");
    wait_port(&addr, "caddy", &dir.join("caddy.log"));
    Peer {
        name: "caddy",
        pids: vec![child.id()],
        http: addr,
        https: Some(format!("127.0.0.1:{https}")),
        // Caddy serves HTTP/3 on its HTTPS port, over UDP.
        h3: Some(format!("127.0.0.1:{https}")),
        child: Some(child),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The upstream image: this very binary with the shared libraries it
/// links, on `scratch`.
fn upstream_image(instance: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(&exe, ctx.path().join("upstream")).unwrap();
    let ldd = Command::new("ldd").arg(&exe).output().unwrap();
    let mut copies = String::new();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        if let Some(path) = path {
            let name = Path::new(&path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            std::fs::copy(&path, ctx.path().join(&name)).unwrap();
            let dir = Path::new(&path).parent().unwrap().display().to_string();
            writeln!(copies, "COPY {name} {dir}/{name}").unwrap();
        }
    }
    let tag = format!("berth-test-{instance}:upstream");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM scratch\nLABEL berth.test={instance}\n{copies}COPY upstream /upstream\n\
             ENTRYPOINT [\"/upstream\", \"--upstream\", \"{UPSTREAM_PORT}\"]\n"
        ),
    )
    .unwrap();
    docker(&["build", "-q", "-t", &tag, ctx.path().to_str().unwrap()]);
    tag
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians per scenario and peer.
type Table = BTreeMap<&'static str, BTreeMap<&'static str, Vec<Sample>>>;

fn record(table: &mut Table, scenario: &'static str, peer: &Peer, sample: Sample) {
    table
        .entry(scenario)
        .or_default()
        .entry(peer.name)
        .or_default()
        .push(sample);
}

fn med(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Sample {
        rps: m(|s| s.rps),
        p50_ms: m(|s| s.p50_ms),
        p99_ms: m(|s| s.p99_ms),
        cpu_us_per_req: m(|s| s.cpu_us_per_req),
        rss_kib: m(|s| s.rss_kib),
    }
}

/// A berth (started with `proxy_keys` under `[proxy]`) serving the
/// upstream image as app `bench` with the shared certificate; returns it,
/// its peer entry and the upstream container's address.
async fn start_berth(
    name: &'static str,
    proxy_keys: &str,
    image: Option<&str>,
    tls: &Tls,
) -> (Berth, Peer, String) {
    let mut berth = Berth::start_configured("", proxy_keys, Vec::new()).await;
    let image = match image {
        Some(image) => image.to_string(),
        None => {
            let image = upstream_image(&berth.instance);
            berth.track_image(&image);
            image
        }
    };
    berth
        .create_app(
            json!({"name": "bench", "image": image, "port": UPSTREAM_PORT,
            "health_check": {"type": "tcp"}, "domains": [{"host": HOST}]}),
        )
        .await;
    let deployed = berth.deploy("bench").await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let container = berth.containers()[0].clone();
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &container,
    ]);
    let (status, body) = berth
        .api(
            "POST",
            "/certificates",
            Some(json!({"name": "bench", "cert_pem": tls.cert_pem, "key_pem": tls.key_pem})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let peer = Peer {
        name,
        http: berth.http.clone(),
        https: Some(berth.https.clone()),
        // berth's QUIC listener shares the HTTPS port number.
        h3: Some(berth.https.clone()),
        pids: vec![berth.child.as_ref().unwrap().id()],
        child: None,
    };
    (berth, peer, format!("{ip}:{UPSTREAM_PORT}"))
}

async fn run(plan: Plan) {
    // One certificate for every TLS peer (berth gets it through its API).
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("bench CA");
    let (cert_pem, key_pem) = ca.leaf(&[HOST], (-1, 30));
    let tls = Tls {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        cert_pem: cert_pem.clone(),
        key_pem: key_pem.clone(),
    };
    std::fs::write(&tls.cert, &cert_pem).unwrap();
    std::fs::write(&tls.key, &key_pem).unwrap();

    // berth as configured by default (one single-threaded edge worker per
    // core), and berth with the edge on its main runtime (`workers = 0`).
    // BERTH_BENCH_WORKERS: another worker count for the first.
    let workers = std::env::var("BERTH_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .map_or(String::new(), |w| format!("workers = {w}\n"));
    let (mut berth, berth_peer, upstream) = start_berth("berth", &workers, None, &tls).await;
    let image = berth.images_of_test()[0].clone();
    let (_berth_shared, mut shared_peer, _) =
        start_berth("berth-shared", "workers = 0\n", Some(&image), &tls).await;
    // Its HTTP/3 listener is berth's either way: measured once.
    shared_peer.h3 = None;
    let mut peers = Vec::new();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    if plan.focus != Focus::H3 {
        peers.push(Peer {
            name: "direct",
            http: upstream.clone(),
            https: None,
            h3: None,
            pids: Vec::new(),
            child: None,
        });
    }
    peers.push(berth_peer);
    if plan.focus != Focus::H3 {
        peers.push(shared_peer);
        peers.push(start_nginx(dirs[0].path(), &upstream, &tls));
        peers.push(start_haproxy(dirs[1].path(), &upstream, &tls));
    }
    if !matches!(plan.focus, Focus::KeepAlive | Focus::Close) {
        peers.push(start_caddy(dirs[2].path(), &upstream, &tls));
    }

    let mut table: Table = BTreeMap::new();
    for round in 0..plan.rounds {
        eprintln!("round {} of {}", round + 1, plan.rounds);
        for peer in &peers {
            settle(UPSTREAM_PORT);
            if plan.focus != Focus::H3 {
                hop_and_tls(&plan, peer, &mut table);
            }
            if peer.h3.is_some() && matches!(plan.focus, Focus::All | Focus::H3) {
                settle(UPSTREAM_PORT);
                let h3 = h3(&plan, peer, &ca.pem);
                record(&mut table, "5 HTTP/3, kept connections", peer, h3);
            }
        }
    }
    drop(peers);

    let footprint = if plan.focus != Focus::All {
        Vec::new()
    } else {
        footprint(&plan, &mut berth).await
    };
    let report = report(&plan, &table, &footprint);
    println!("{report}");
    if !plan.smoke && plan.focus == Focus::All {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        std::fs::write(&path, &report).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

/// Connections to the upstream's port waiting out TIME_WAIT on this host.
fn time_waits(port: u16) -> usize {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.get(3) == Some(&"06")
                        && fields.get(2).is_some_and(|remote| remote.ends_with(&port))
                })
                .count()
        })
        .sum()
}

/// Waits (up to 70 s) until the connections the previous peer closed to
/// the upstream have left TIME_WAIT. Every proxy reaches the upstream
/// from the same host address, so they share one range of ephemeral
/// ports toward it (about 28,000): a peer that churns upstream
/// connections (Caddy, whose pool keeps fewer idle connections than the
/// load uses) would otherwise leave the next peer's connects failing
/// with EADDRNOTAVAIL, and that peer's numbers would measure the previous
/// one.
fn settle(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut waited = false;
    while time_waits(port) > 2_000 && Instant::now() < deadline {
        waited = true;
        std::thread::sleep(Duration::from_millis(500));
    }
    if waited {
        eprintln!("  (waited for TIME_WAIT toward the upstream to clear)");
    }
}

/// The TCP scenarios: HTTP/1.1 (keep-alive, and unless focused on it, a
/// connection per request), then h2 and handshakes over TLS.
fn hop_and_tls(plan: &Plan, peer: &Peer, table: &mut Table) {
    if plan.focus == Focus::H2 {
        if peer.https.is_some() {
            let h2 = h2load(peer, plan.h2_requests, plan.connections, 10);
            record(table, "3 h2 over TLS, kept connections", peer, h2);
        }
        return;
    }
    let url = format!("http://{}/", peer.http);
    if plan.focus == Focus::Close {
        let close = wrk(plan, peer, &url, true);
        record(table, "2 HTTP/1.1 new connection per request", peer, close);
        return;
    }
    let keep = wrk(plan, peer, &url, false);
    record(table, "1 HTTP/1.1 keep-alive", peer, keep);
    if plan.focus == Focus::KeepAlive {
        return;
    }
    let close = wrk(plan, peer, &url, true);
    record(table, "2 HTTP/1.1 new connection per request", peer, close);
    if peer.https.is_some() {
        let h2 = h2load(peer, plan.h2_requests, plan.connections, 10);
        record(table, "3 h2 over TLS, kept connections", peer, h2);
        let hs = h2load(peer, plan.handshakes, plan.handshakes.min(100), 1);
        let scenario = "4 TLS 1.3 handshakes (1 request per connection)";
        record(table, scenario, peer, hs);
    }
}

/// berth's idle footprint with growing numbers of apps.
async fn footprint(plan: &Plan, berth: &mut Berth) -> Vec<(usize, u64, f64, Duration)> {
    // The bench app (deployed) counts as one.
    let mut out = Vec::new();
    let mut created = 1;
    for &apps in &plan.apps {
        while created < apps.max(1) {
            let name = format!("idle{created}");
            let (status, body) = berth
                .api(
                    "POST",
                    "/apps",
                    Some(json!({"name": name, "image": "unused:1", "port": 80,
                        "domains": [{"host": format!("{name}.example.com")}]})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            created += 1;
        }
        // Restart: time to serving with this many apps, then idle numbers.
        berth.terminate().await;
        let started = Instant::now();
        berth.launch().await;
        let ready = started.elapsed();
        tokio::time::sleep(Duration::from_secs(if plan.smoke { 1 } else { 5 })).await;
        let pid = berth.child.as_ref().unwrap().id();
        let cpu0 = cpu_us(&[pid]);
        let window = Duration::from_secs(if plan.smoke { 1 } else { 10 });
        tokio::time::sleep(window).await;
        let idle_cpu = (cpu_us(&[pid]) - cpu0) as f64 / window.as_secs_f64() / 1e4;
        out.push((created, rss_kib(&[pid]), idle_cpu, ready));
    }
    out
}

fn report(plan: &Plan, table: &Table, footprint: &[(usize, u64, f64, Duration)]) -> String {
    let mut r = String::new();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = version("uname", "-r");
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    writeln!(r, "# berth benchmarks\n").unwrap();
    writeln!(
        r,
        "Generated by `cargo bench --bench peers` on {date}; do not edit by hand.\n"
    )
    .unwrap();
    writeln!(r, "## Machine\n").unwrap();
    writeln!(r, "- CPU: {cpu_model}, {} cores (`nproc`)", cores()).unwrap();
    writeln!(r, "- kernel: {kernel}").unwrap();
    writeln!(
        r,
        "- berth {} (release profile: fat LTO, 1 codegen unit, mimalloc)",
        env!("CARGO_PKG_VERSION")
    )
    .unwrap();
    writeln!(r, "- {}", version("nginx", "-v")).unwrap();
    writeln!(r, "- {}", version("haproxy", "-v")).unwrap();
    writeln!(r, "- caddy {}", version("caddy", "version")).unwrap();
    writeln!(
        r,
        "- {}, {}",
        version("wrk", "--version"),
        version("h2load", "--version")
    )
    .unwrap();
    writeln!(r, "\n## Method\n").unwrap();
    writeln!(
        r,
        "One keep-alive upstream (a hyper server answering {} bytes, in a container berth deployed) \
         behind each proxy; `direct` is wrk against the upstream itself. {} interleaved rounds of \
         {} s per run, medians. wrk: `-t1 -c{}`; h2load: `-c{} -m10` on kept connections, and `-m1` \
         with one request per connection for handshakes (percentiles from h2load's per-request \
         `--log-file`). HTTP/3: the harness's own quinn + h3 client on one thread, `{}` \
         connections with 10 streams each (`benches/h3load`). CPU is user + system time of the proxy's processes from /proc, per \
         request.\n",
        BODY.len(),
        plan.rounds,
        plan.seconds,
        plan.connections,
        plan.connections,
        plan.connections
    )
    .unwrap();
    for (scenario, peers) in table {
        // The reference: nginx, or Caddy where nginx does not take part
        // (HTTP/3: Debian's nginx and HAProxy are built without QUIC).
        let reference = ["nginx", "caddy"]
            .into_iter()
            .find(|name| peers.contains_key(name))
            .unwrap_or("nginx");
        let nginx = peers.get(reference).map(|s| med(s));
        let direct = peers.get("direct").map(|s| med(s));
        writeln!(r, "## {}\n", &scenario[2..]).unwrap();
        writeln!(
            r,
            "| peer | req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | req/s vs {reference} | CPU vs {reference} | req/s vs direct |"
        )
        .unwrap();
        writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
        for (name, samples) in peers {
            let s = med(samples);
            let ratio = |a: f64, b: Option<f64>| match b {
                Some(b) if b > 0.0 && a.is_finite() && a > 0.0 => format!("{:.2}x", a / b),
                _ => "-".into(),
            };
            writeln!(
                r,
                "| {name} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | {} |",
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.cpu_us_per_req,
                s.rss_kib / 1024.0,
                ratio(s.rps, nginx.map(|n| n.rps)),
                ratio(s.cpu_us_per_req, nginx.map(|n| n.cpu_us_per_req)),
                ratio(s.rps, direct.map(|d| d.rps)),
            )
            .unwrap();
        }
        writeln!(r).unwrap();
    }
    writeln!(r, "## berth footprint\n").unwrap();
    writeln!(
        r,
        "| apps in the store | idle RSS MiB | idle CPU % | start to serving ms |"
    )
    .unwrap();
    writeln!(r, "|---:|---:|---:|---:|").unwrap();
    for (apps, rss, cpu, ready) in footprint {
        writeln!(
            r,
            "| {apps} | {:.1} | {:.2} | {} |",
            *rss as f64 / 1024.0,
            cpu,
            ready.as_millis()
        )
        .unwrap();
    }
    others(&mut r);
    r
}

/// The sections of the benches `cargo bench` ran before this one (scale,
/// allocations, deploy path), from what they recorded; each says when.
fn others(r: &mut String) {
    let scale = [
        (
            "lookup_10k_hosts",
            "exact_host_prefix",
            "route lookup, exact host, 10,000 hosts",
        ),
        (
            "lookup_10k_hosts",
            "wildcard_host",
            "route lookup, wildcard host",
        ),
        (
            "lookup_10k_hosts",
            "unknown_host",
            "route lookup, unknown host",
        ),
        (
            "rebuild_10k_hosts",
            "build_and_swap",
            "rebuild and swap all 20,100 routes (at start, on a certificate change)",
        ),
        (
            "rebuild_10k_hosts",
            "one_app_and_swap",
            "apply one app's change: replace its routes of 20,100 and swap",
        ),
        (
            "certs_10k",
            "lookup_exact",
            "certificate by SNI, exact, 10,000 certificates",
        ),
        (
            "certs_10k",
            "lookup_wildcard",
            "certificate by SNI, wildcard",
        ),
        (
            "certs_10k",
            "install_one_more",
            "install one more certificate",
        ),
        (
            "tls13_handshake",
            "store_10",
            "TLS 1.3 handshake, 10 certificates in the store",
        ),
        (
            "tls13_handshake",
            "store_10k",
            "TLS 1.3 handshake, 10,000 certificates in the store",
        ),
        ("per_request", "request_id_fresh", "request id, fresh"),
        (
            "codec",
            "request_head_10",
            "HTTP/1.1 request head, 10 fields: parse, check, rewrite",
        ),
        (
            "codec",
            "response_head_5",
            "HTTP/1.1 response head, 5 fields: parse, rewrite",
        ),
        (
            "codec",
            "chunked_64k",
            "chunked framing, 64 KiB in 16 chunks",
        ),
    ];
    writeln!(
        r,
        "\n## Scale (criterion, `cargo bench --bench lookups` / `certs`)\n"
    )
    .unwrap();
    writeln!(r, "| operation | mean |").unwrap();
    writeln!(r, "|---|---:|").unwrap();
    let mut any = false;
    for (group, bench, what) in scale {
        if let Some(ns) = results::criterion_mean_ns(group, bench) {
            any = true;
            let shown = if ns >= 1e6 {
                format!("{:.2} ms", ns / 1e6)
            } else if ns >= 1e3 {
                format!("{:.2} µs", ns / 1e3)
            } else {
                format!("{ns:.0} ns")
            };
            writeln!(r, "| {what} | {shown} |").unwrap();
        }
    }
    if !any {
        writeln!(
            r,
            "| (not run yet: `cargo bench` runs them before this harness) | |"
        )
        .unwrap();
    }
    for (name, title) in [
        (
            "certs",
            "Memory per certificate (`cargo bench --bench certs`)",
        ),
        (
            "allocs",
            "Allocations per proxied request, bytes per route (`cargo bench --bench allocs`)",
        ),
        ("deploy", "Deploy path (`cargo bench --bench deploy`)"),
        (
            "panel",
            "Panel under a big store (`cargo bench --bench panel`)",
        ),
        (
            "changes",
            "One change as the store grows (`cargo bench --bench changes`)",
        ),
        (
            "rules",
            "What route rules cost at the edge (`cargo bench --bench rules`)",
        ),
    ] {
        writeln!(r, "\n## {title}\n").unwrap();
        match results::recorded(name) {
            Some((text, when)) => {
                let when = time::OffsetDateTime::from(when)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                writeln!(r, "Recorded {when}.\n\n{text}").unwrap();
            }
            None => writeln!(r, "Not run yet: `cargo bench` runs it before this harness.").unwrap(),
        }
    }
}
