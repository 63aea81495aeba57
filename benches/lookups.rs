//! Route table at scale: lookups in a table of 10,000 hosts (each with a
//! root route and an `/api` prefix, plus wildcard hosts), and the cost of
//! building and swapping in a new table of that size, which is what every
//! deployment and domain change does.
//!
//! Also the other per-request functions of the hot path: request id, path
//! rewrite, forwarding headers, and the HTTP/1.1 codec's head parsing and
//! rewriting (request and response) and chunked framing.
//!
//! Run: `cargo bench --bench lookups`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use berth_proxy::policy::{decide, Decision};
use berth_proxy::{Backend, RouteSpec, RouteTable, Router};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const HOSTS: usize = 10_000;

/// App `i`'s two routes (`/` and `/api` of `app{i}.example.com`).
fn app_specs(i: usize) -> Vec<RouteSpec> {
    let backend = Arc::new(Backend::new(
        format!("app{i}"),
        vec![SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 8080))],
    ));
    ["/", "/api"]
        .into_iter()
        .map(|prefix| RouteSpec {
            host: format!("app{i}.example.com"),
            path_prefix: prefix.to_string(),
            strip_prefix: prefix != "/",
            redirect_https: false,
            hsts: false,
            certified: false,
            backend: backend.clone(),
            rules: None,
        })
        .collect()
}

fn specs() -> Vec<RouteSpec> {
    let mut specs = Vec::with_capacity(HOSTS * 2 + 100);
    for i in 0..HOSTS {
        specs.extend(app_specs(i));
    }
    for i in 0..100 {
        specs.push(RouteSpec {
            host: format!("*.tenant{i}.example.net"),
            path_prefix: "/".into(),
            strip_prefix: false,
            redirect_https: false,
            hsts: false,
            certified: false,
            backend: Arc::new(Backend::new(format!("tenant{i}"), vec![])),
            rules: None,
        });
    }
    specs
}

fn lookups(c: &mut Criterion) {
    let router = Router::new(RouteTable::build(specs()));
    let hosts: Vec<String> = (0..1024)
        .map(|i| format!("app{}.example.com", (i * 7919) % HOSTS))
        .collect();
    let mut g = c.benchmark_group("lookup_10k_hosts");
    let mut i = 0usize;
    g.bench_function("exact_host_prefix", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let table = router.load();
            let hit = matches!(
                decide(
                    &table,
                    Some(black_box(&hosts[i])),
                    black_box("/api/users/42")
                ),
                Decision::Forward(_)
            );
            black_box(hit)
        })
    });
    g.bench_function("mixed_case_host_with_port", |b| {
        b.iter(|| {
            let table = router.load();
            black_box(matches!(
                decide(
                    &table,
                    Some(black_box("App42.Example.COM:80")),
                    black_box("/")
                ),
                Decision::Forward(_)
            ))
        })
    });
    g.bench_function("wildcard_host", |b| {
        b.iter(|| {
            let table = router.load();
            black_box(matches!(
                decide(
                    &table,
                    Some(black_box("shop.tenant7.example.net")),
                    black_box("/")
                ),
                Decision::NoReplica(_)
            ))
        })
    });
    g.bench_function("unknown_host", |b| {
        b.iter(|| {
            let table = router.load();
            black_box(matches!(
                decide(
                    &table,
                    Some(black_box("nobody.example.org")),
                    black_box("/")
                ),
                Decision::UnknownHost
            ))
        })
    });
    g.finish();
}

fn rebuild(c: &mut Criterion) {
    let router = Router::new(RouteTable::build(specs()));
    let mut g = c.benchmark_group("rebuild_10k_hosts");
    g.sample_size(20);
    g.bench_function("build_and_swap", |b| {
        b.iter_batched(
            specs,
            |specs| router.swap(RouteTable::build(specs)),
            BatchSize::LargeInput,
        )
    });
    // What one app's change costs now: its two routes replaced in a new
    // snapshot made from the current one, then swapped in.
    let mut i = 0usize;
    g.bench_function("one_app_and_swap", |b| {
        b.iter(|| {
            i = (i + 7919) % HOSTS;
            let app = format!("app{i}");
            let specs = app_specs(i);
            let next = router.load().with_app(&app, specs);
            router.swap(next);
        })
    });
    g.finish();
}

/// The per-request policy functions the hot path calls besides the lookup:
/// the request id (kept and fresh), the path rewrite, the forwarding
/// headers, and the header filter over a browser-like request.
fn per_request(c: &mut Criterion) {
    use berth_proxy::policy;
    let route = RouteTable::build(specs())
        .lookup("app7.example.com", "/api/users")
        .cloned()
        .expect("route");
    let headers = [
        "host",
        "user-agent",
        "accept",
        "accept-language",
        "accept-encoding",
        "connection",
        "cookie",
        "sec-fetch-mode",
        "x-forwarded-for",
        "upgrade-insecure-requests",
    ];
    let mut g = c.benchmark_group("per_request");
    g.bench_function("request_id_kept", |b| {
        b.iter(|| policy::request_id(black_box(Some(b"trace-0123456789"))).len())
    });
    g.bench_function("request_id_fresh", |b| {
        b.iter(|| policy::request_id(black_box(None)).len())
    });
    g.bench_function("upstream_path_stripped", |b| {
        b.iter(|| policy::upstream_path(&route, black_box("/api/users?page=2")).len())
    });
    let client = "10.1.2.3".parse().ok();
    g.bench_function("forwarded", |b| {
        b.iter(|| policy::forwarded(black_box(client), false, Some("app7.example.com")))
    });
    g.bench_function("header_filter_10", |b| {
        b.iter(|| {
            black_box(&headers)
                .iter()
                .filter(|h| policy::forwardable(h.as_bytes()))
                .count()
        })
    });
    g.finish();
}

/// The HTTP/1.1 codec on a browser-like request and a small response:
/// what every proxied request costs in head parsing and rewriting.
fn codec(c: &mut Criterion) {
    use berth_proxy::codec::{self, Chunked, Forwarding, Reply, Request};
    let request = b"GET /api/users?page=2 HTTP/1.1\r\nHost: app7.example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
        Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
        Connection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\n\
        Sec-Fetch-Mode: navigate\r\nX-Forwarded-For: 6.6.6.6\r\n\
        Upgrade-Insecure-Requests: 1\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Content-Length: 12\r\nDate: Mon, 30 Nov 2026 12:00:00 GMT\r\n\
        Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}\n";
    let fwd = Forwarding::new("10.1.2.3".parse().ok(), false);
    let mut g = c.benchmark_group("codec");
    let mut req = Request::default();
    let mut out = Vec::with_capacity(4096);
    g.bench_function("request_head_10", |b| {
        b.iter(|| codec::parse_request(black_box(request), &mut req, &mut out, &fwd).is_ok())
    });
    let reply = Reply {
        head_request: false,
        http11: true,
        keep_alive: true,
        upgrade: false,
        request_id: "0123456789abcdef0123456789abcdef",
        hsts: None,
        alt_svc: None,
        out: None,
    };
    g.bench_function("response_head_5", |b| {
        b.iter(|| {
            out.clear();
            codec::parse_response(black_box(response), &reply, &mut out).is_ok()
        })
    });
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'x'; 4096]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    g.bench_function("chunked_64k", |b| {
        b.iter(|| {
            let mut chunked = Chunked::default();
            let mut data = 0;
            let used = chunked.feed(black_box(&body), |d| data += d.len());
            (used.is_ok(), data)
        })
    });
    g.finish();
}

criterion_group!(benches, lookups, rebuild, per_request, codec);
criterion_main!(benches);
