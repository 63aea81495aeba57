//! Route rules through the real edge to a real upstream, one table of
//! cases sent over HTTP/1.1, h2 and HTTP/3 with the same expectations:
//! each rule on and off, basic auth with plain, bcrypt and argon2
//! entries, the `www` presets and a capture redirect, header edits both
//! ways, CORS, IP lists over IPv4 and IPv6 loopback, a rate limit and
//! its recovery, compression in each coding and each skip rule (checked
//! by decoding), the body limit (with and without a length), a route's
//! own deadline, maintenance (on a running and on a stopped app) and an
//! app's error page.
//! The rules are written as a user writes them and validated by
//! `berth-config`, as the API does.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{
    AppPages, Backend, EdgeOptions, EdgeProxy, H3Options, HostCertificates, ProxyMetrics,
    RouteSpec, RouteTable, Router, Rules,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

#[allow(dead_code)]
mod support;

use support::clients::{send, Answer, Ask, Target, PROTOCOLS};

const CLIENT: Duration = Duration::from_secs(10);

/// The tests of this binary run one at a time: the streaming test reads
/// the process's memory, which another test's traffic would move.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const HELLO: &str = "hello from the replica\n";

/// 16 KiB of text, compressible.
fn big() -> Vec<u8> {
    (0..)
        .flat_map(|i: u32| format!("line {i} of a text the edge may compress\n").into_bytes())
        .take(16 * 1024)
        .collect()
}

/// The upstream: `/x` a small text with the request fields it saw
/// (`x-seen-*`), `/big` 16 KiB of text, `/png` 16 KiB of an image,
/// `/range` a 206, `/encoded` text the app compressed itself; any body
/// sent is echoed in `x-seen-body-length`.
async fn upstream(bind: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let seen = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let (env, cookie) = (seen("x-env"), seen("cookie"));
                    let path = req.uri().path().to_string();
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    let length = req.into_body().collect().await.unwrap().to_bytes().len();
                    let resp = Response::builder()
                        .header("server", "upstream")
                        .header("x-seen-env", env)
                        .header("x-seen-cookie", cookie)
                        .header("x-seen-body-length", length);
                    let resp = match path.as_str() {
                        "/big" => resp.header("content-type", "text/plain").body(big()),
                        "/png" => resp.header("content-type", "image/png").body(big()),
                        "/range" => resp
                            .status(206)
                            .header("content-type", "text/plain")
                            .header("content-range", "bytes 0-16383/99999")
                            .body(big()),
                        "/encoded" => resp
                            .header("content-type", "text/plain")
                            .header("content-encoding", "gzip")
                            .body(big()),
                        _ => resp
                            .header("content-type", "text/plain")
                            .body(HELLO.as_bytes().to_vec()),
                    };
                    Ok::<_, Infallible>(resp.unwrap().map(|b| Full::new(Bytes::from(b))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn bcrypt_of(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn argon2_of(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"berth-test-salt!").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// The hosts and the rules of their domain, as a user writes them.
fn domains() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        ("plain.test", json!({})),
        (
            "auth.test",
            json!({"basic_auth": {"realm": "staff", "users": [
                {"username": "ann", "password": "pw-plain"},
                {"username": "bob", "password_hash": bcrypt_of("pw-b")},
                {"username": "cat", "password_hash": argon2_of("pw-c")},
            ]}}),
        ),
        ("www.site.test", json!({"redirect_www": "to_apex"})),
        ("site.test", json!({"redirect_www": "to_www"})),
        (
            "rx.test",
            json!({"redirects": [{"from": "^/old/(.*)$", "to": "/new/$1", "status": 301}]}),
        ),
        (
            "hdr.test",
            json!({"headers": {"request": {"set": {"X-Env": "staging"}, "remove": ["Cookie"]},
                               "response": {"set": {"X-Served-By": "berth"}, "remove": ["Server"]}},
                   "security_headers": true}),
        ),
        (
            "cors.test",
            json!({"cors": {"origins": ["https://app.test"], "credentials": true,
                            "expose_headers": ["X-Total"]}}),
        ),
        ("deny4.test", json!({"ip_deny": ["127.0.0.0/8"]})),
        ("allow4.test", json!({"ip_allow": ["127.0.0.1"]})),
        ("deny6.test", json!({"ip_deny": ["::1"]})),
        ("allow6.test", json!({"ip_allow": ["::1/128"]})),
        (
            "limit1.test",
            json!({"rate_limit": {"per_second": 2, "burst": 3}}),
        ),
        (
            "limit2.test",
            json!({"rate_limit": {"per_second": 2, "burst": 3}}),
        ),
        (
            "limit3.test",
            json!({"rate_limit": {"per_second": 2, "burst": 3}}),
        ),
        ("zip.test", json!({"compression": true})),
        ("gzip.test", json!({"compression": ["gzip"]})),
        ("body.test", json!({"max_body_bytes": 10})),
        (
            "slow.test",
            json!({"timeouts": {"response_header_secs": 1}}),
        ),
        (
            "corsauth.test",
            json!({"cors": {"origins": ["https://app.test"]}, "security_headers": true,
                   "basic_auth": {"users": [{"username": "ann", "password": "pw"}]}}),
        ),
    ]
}

/// Every host the certificate serves.
const HOSTS: [&str; 23] = [
    "corsauth.test",
    "slow.test",
    "down.test",
    "plain.test",
    "auth.test",
    "www.site.test",
    "site.test",
    "rx.test",
    "hdr.test",
    "cors.test",
    "deny4.test",
    "allow4.test",
    "deny6.test",
    "allow6.test",
    "limit1.test",
    "limit2.test",
    "limit3.test",
    "zip.test",
    "gzip.test",
    "body.test",
    "maint.test",
    "errpage.test",
    "nobody.test",
];

/// The route specs: each domain's rules validated as the API validates
/// an app, then compiled by the edge.
async fn table() -> RouteTable {
    let v4 = upstream("127.0.0.1:0").await;
    let mut specs = Vec::new();
    for (i, (host, rules)) in domains().into_iter().enumerate() {
        let mut domain = rules;
        domain["host"] = host.into();
        let app = serde_json::json!({"name": format!("app{i}"), "image": "x", "port": 80,
                                      "domains": [domain]});
        let input: berth_config::AppInput = serde_json::from_value(app).unwrap();
        let spec = input.validate().unwrap();
        let backend = Arc::new(Backend::new(format!("app{i}"), vec![v4]));
        specs.push(route(host, backend, &spec.domains[0].rules));
    }
    let maintenance = Backend::new("maint", vec![v4]).with_pages(AppPages {
        maintenance: Some(berth_proxy::maintenance_page(Some("Back at <5>."))),
        errors: Vec::new(),
    });
    specs.push(route(
        "maint.test",
        Arc::new(maintenance),
        &Default::default(),
    ));
    let down = Backend::stopped("down").with_pages(AppPages {
        maintenance: Some(berth_proxy::maintenance_page(None)),
        errors: Vec::new(),
    });
    specs.push(route("down.test", Arc::new(down), &Default::default()));
    let errors = Backend::new("errpage", vec![]).with_pages(AppPages {
        maintenance: None,
        errors: vec![(503, Bytes::from_static(b"<h1>our own 503</h1>"))],
    });
    specs.push(route("errpage.test", Arc::new(errors), &Default::default()));
    RouteTable::build(specs)
}

fn route(host: &str, backend: Arc<Backend>, rules: &berth_config::RouteRules) -> RouteSpec {
    RouteSpec {
        host: host.into(),
        path_prefix: "/".into(),
        strip_prefix: false,
        redirect_https: false,
        hsts: false,
        certified: true,
        backend,
        rules: Rules::compile(rules).map(Arc::new),
    }
}

struct Edges {
    v4: Target,
    v6: Target,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// One edge on IPv4 and IPv6 loopback, TCP (HTTP/1.1, h2) and UDP
/// (HTTP/3), sharing one route table and certificate.
async fn start() -> Edges {
    let router = Arc::new(Router::new(table().await));
    let hosts = HOSTS.iter().map(|h| h.to_string()).collect();
    let (resolver, ca_der) = support::self_signed(hosts);
    let (stop, watch) = tokio::sync::watch::channel(false);
    let mut targets = Vec::new();
    for ip in ["127.0.0.1", "[::1]"] {
        let mut registry = Registry::default();
        let proxy = EdgeProxy::new(
            router.clone(),
            ProxyMetrics::register(&mut registry),
            EdgeOptions {
                tls: true,
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(5),
                https_port: 443,
                h3_port: None,
                certificates: Some(resolver.clone() as Arc<dyn HostCertificates>),
                tunnel_idle: Duration::from_secs(60),
            },
            Arc::default(),
        );
        let listener = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
        let tcp = listener.local_addr().unwrap();
        let tls = berth_proxy::tls_config(resolver.clone());
        tokio::spawn(berth_proxy::serve(
            listener,
            proxy,
            Some(tls),
            watch.clone(),
        ));
        let socket = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap();
        let udp = socket.local_addr().unwrap();
        let mut registry = Registry::default();
        tokio::spawn(berth_proxy::serve_h3(
            socket,
            resolver.clone(),
            router.clone(),
            ProxyMetrics::register(&mut registry),
            H3Options {
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(5),
            },
            watch.clone(),
        ));
        targets.push(Target {
            tcp,
            udp,
            ca_der: ca_der.clone(),
        });
    }
    let v6 = targets.pop().unwrap();
    let v4 = targets.pop().unwrap();
    Edges {
        v4,
        v6,
        _stop: stop,
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn basic(user: &str, password: &str) -> &'static [(&'static str, &'static str)] {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Box::leak(Box::new([(
        "authorization",
        leak(format!("Basic {token}")),
    )]))
}

/// A check of an answer; `Err` says what is wrong.
type Check = Box<dyn Fn(&Answer) -> Result<(), String>>;

fn status(want: u16) -> Check {
    Box::new(move |a| {
        (a.status == want)
            .then_some(())
            .ok_or(format!("status {}", a.status))
    })
}

fn has(name: &'static str, value: &'static str) -> Check {
    Box::new(move |a| match a.header(name) {
        Some(v) if v == value => Ok(()),
        other => Err(format!("{name}: {other:?}, want {value:?}")),
    })
}

fn lacks(name: &'static str) -> Check {
    Box::new(move |a| match a.header(name) {
        None => Ok(()),
        Some(v) => Err(format!("{name}: {v:?}, want none")),
    })
}

fn body_has(text: &'static str) -> Check {
    Box::new(move |a| {
        String::from_utf8_lossy(&a.body)
            .contains(text)
            .then_some(())
            .ok_or(format!(
                "body {:?} lacks {text:?}",
                String::from_utf8_lossy(&a.body)
            ))
    })
}

/// The body decodes (by its `content-encoding`) to the 16 KiB text.
fn decodes_to_big(coding: &'static str) -> Check {
    Box::new(move |a| {
        if a.header("content-encoding") != Some(coding) {
            return Err(format!(
                "content-encoding {:?}",
                a.header("content-encoding")
            ));
        }
        let mut plain = Vec::new();
        let read = match coding {
            "gzip" => flate2::read::GzDecoder::new(&a.body[..]).read_to_end(&mut plain),
            "br" => brotli::Decompressor::new(&a.body[..], 4096).read_to_end(&mut plain),
            _ => zstd::stream::read::Decoder::new(&a.body[..])
                .and_then(|mut d| d.read_to_end(&mut plain)),
        };
        read.map_err(|e| format!("{coding} does not decode: {e}"))?;
        (plain == big() && a.body.len() < plain.len() / 2)
            .then_some(())
            .ok_or(format!(
                "decoded {} bytes from {}",
                plain.len(),
                a.body.len()
            ))
    })
}

fn plain_big() -> Check {
    Box::new(|a| {
        (a.body == big())
            .then_some(())
            .ok_or(format!("body of {} bytes is not the text", a.body.len()))
    })
}

fn get(host: &'static str, path: &'static str) -> Ask {
    Ask {
        path,
        ..Ask::get(host)
    }
}

fn with(ask: Ask, headers: &'static [(&'static str, &'static str)]) -> Ask {
    Ask { headers, ..ask }
}

/// The table: a name, where it goes (IPv6 or not), the request, checks.
fn cases() -> Vec<(&'static str, bool, Ask, Vec<Check>)> {
    let ae = |v: &'static str| -> &'static [(&'static str, &'static str)] {
        Box::leak(Box::new([("accept-encoding", v)]))
    };
    let origin = |o: &'static str| -> &'static [(&'static str, &'static str)] {
        Box::leak(Box::new([("origin", o)]))
    };
    vec![
        (
            "no rules: forwarded as is",
            false,
            get("plain.test", "/big"),
            vec![
                status(200),
                has("server", "upstream"),
                lacks("x-content-type-options"),
                lacks("content-encoding"),
                plain_big(),
            ],
        ),
        (
            "basic auth: none given",
            false,
            get("auth.test", "/x"),
            vec![
                status(401),
                has(
                    "www-authenticate",
                    "Basic realm=\"staff\", charset=\"UTF-8\"",
                ),
                lacks("server"),
            ],
        ),
        (
            "basic auth: wrong password",
            false,
            with(get("auth.test", "/x"), basic("ann", "nope")),
            vec![status(401)],
        ),
        (
            "basic auth: unknown user",
            false,
            with(get("auth.test", "/x"), basic("eve", "pw-plain")),
            vec![status(401)],
        ),
        (
            "basic auth: plain entry",
            false,
            with(get("auth.test", "/x"), basic("ann", "pw-plain")),
            vec![status(200), body_has("hello")],
        ),
        (
            "basic auth: bcrypt entry",
            false,
            with(get("auth.test", "/x"), basic("bob", "pw-b")),
            vec![status(200)],
        ),
        (
            "basic auth: argon2 entry",
            false,
            with(get("auth.test", "/x"), basic("cat", "pw-c")),
            vec![status(200)],
        ),
        (
            "www to apex",
            false,
            get("www.site.test", "/a?b=1"),
            vec![status(308), has("location", "https://site.test/a?b=1")],
        ),
        (
            "apex to www",
            false,
            get("site.test", "/a"),
            vec![status(308), has("location", "https://www.site.test/a")],
        ),
        (
            "regex redirect with a capture",
            false,
            get("rx.test", "/old/page?id=7"),
            vec![status(301), has("location", "/new/page?id=7")],
        ),
        (
            "regex redirect: no match",
            false,
            get("rx.test", "/x"),
            vec![status(200)],
        ),
        (
            "header edits both ways and security headers",
            false,
            with(
                get("hdr.test", "/x"),
                Box::leak(Box::new([("cookie", "session=1")])),
            ),
            vec![
                status(200),
                has("x-seen-env", "staging"),
                has("x-seen-cookie", "-"),
                lacks("server"),
                has("x-served-by", "berth"),
                has("x-content-type-options", "nosniff"),
                has("x-frame-options", "SAMEORIGIN"),
                has("referrer-policy", "strict-origin-when-cross-origin"),
            ],
        ),
        (
            "CORS preflight",
            false,
            Ask {
                method: "OPTIONS",
                headers: Box::leak(Box::new([
                    ("origin", "https://app.test"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ])),
                ..get("cors.test", "/api")
            },
            vec![
                status(204),
                has("access-control-allow-origin", "https://app.test"),
                has("access-control-allow-credentials", "true"),
                has(
                    "access-control-allow-methods",
                    "GET, HEAD, POST, PUT, PATCH, DELETE",
                ),
                has("access-control-allow-headers", "content-type"),
                has("access-control-max-age", "600"),
                lacks("server"),
            ],
        ),
        (
            "CORS credentialed request",
            false,
            with(get("cors.test", "/x"), origin("https://app.test")),
            vec![
                status(200),
                has("access-control-allow-origin", "https://app.test"),
                has("access-control-allow-credentials", "true"),
                has("access-control-expose-headers", "x-total"),
                has("vary", "Origin"),
            ],
        ),
        (
            "CORS: another origin gets no grant",
            false,
            with(get("cors.test", "/x"), origin("https://evil.test")),
            vec![status(200), lacks("access-control-allow-origin")],
        ),
        (
            "deny list, IPv4",
            false,
            get("deny4.test", "/x"),
            vec![status(403), lacks("server")],
        ),
        (
            "allow list, IPv4",
            false,
            get("allow4.test", "/x"),
            vec![status(200)],
        ),
        (
            "deny list, IPv6",
            true,
            get("deny6.test", "/x"),
            vec![status(403)],
        ),
        (
            "deny list for IPv6 lets IPv4 in",
            false,
            get("deny6.test", "/x"),
            vec![status(200)],
        ),
        (
            "allow list, IPv6",
            true,
            get("allow6.test", "/x"),
            vec![status(200)],
        ),
        (
            "allow list for IPv6 keeps IPv4 out",
            false,
            get("allow6.test", "/x"),
            vec![status(403)],
        ),
        (
            "zstd",
            false,
            with(get("zip.test", "/big"), ae("zstd")),
            vec![
                status(200),
                decodes_to_big("zstd"),
                has("vary", "Accept-Encoding"),
                lacks("content-length"),
            ],
        ),
        (
            "br",
            false,
            with(get("zip.test", "/big"), ae("br")),
            vec![status(200), decodes_to_big("br")],
        ),
        (
            "gzip",
            false,
            with(get("zip.test", "/big"), ae("gzip")),
            vec![status(200), decodes_to_big("gzip")],
        ),
        (
            "the route's order of preference",
            false,
            with(get("zip.test", "/big"), ae("gzip, br, zstd")),
            vec![decodes_to_big("zstd")],
        ),
        (
            "a coding the route has not",
            false,
            with(get("gzip.test", "/big"), ae("br")),
            vec![status(200), lacks("content-encoding"), plain_big()],
        ),
        (
            "compression off without accept-encoding",
            false,
            get("zip.test", "/big"),
            vec![
                lacks("content-encoding"),
                has("vary", "Accept-Encoding"),
                plain_big(),
            ],
        ),
        (
            "a small body is not compressed",
            false,
            with(get("zip.test", "/x"), ae("gzip")),
            vec![lacks("content-encoding"), body_has("hello")],
        ),
        (
            "an image is not compressed",
            false,
            with(get("zip.test", "/png"), ae("gzip")),
            vec![lacks("content-encoding"), plain_big()],
        ),
        (
            "a range is not compressed",
            false,
            with(get("zip.test", "/range"), ae("gzip")),
            vec![status(206), lacks("content-encoding"), plain_big()],
        ),
        (
            "an encoded body is left as it is",
            false,
            with(get("zip.test", "/encoded"), ae("br")),
            vec![has("content-encoding", "gzip"), plain_big()],
        ),
        (
            "a body over the limit",
            false,
            Ask {
                method: "POST",
                body: Some(b"01234567890"),
                ..get("body.test", "/x")
            },
            vec![status(413), lacks("server")],
        ),
        (
            "a body without a length, over the limit as it streams",
            false,
            Ask {
                method: "POST",
                body: Some(b"0123456789ABCDEF"),
                unsized_body: true,
                ..get("body.test", "/x")
            },
            vec![status(413), body_has("Content Too Large")],
        ),
        (
            "a body at the limit",
            false,
            Ask {
                method: "POST",
                body: Some(b"0123456789"),
                ..get("body.test", "/x")
            },
            vec![status(200), has("x-seen-body-length", "10")],
        ),
        (
            "maintenance",
            false,
            get("maint.test", "/x"),
            vec![
                status(503),
                has("retry-after", "300"),
                body_has("Back at &lt;5&gt;."),
                lacks("server"),
            ],
        ),
        (
            "the route's own deadline for the response head",
            false,
            get("slow.test", "/slow"),
            vec![status(504), body_has("did not answer in time")],
        ),
        (
            "no deadline of its own: the edge's",
            false,
            get("plain.test", "/slow"),
            vec![status(200)],
        ),
        (
            "the edge's own answer carries the route's CORS and security headers",
            false,
            with(get("corsauth.test", "/x"), origin("https://app.test")),
            vec![
                status(401),
                has("access-control-allow-origin", "https://app.test"),
                has("x-content-type-options", "nosniff"),
            ],
        ),
        (
            "maintenance on a stopped app",
            false,
            get("down.test", "/x"),
            vec![status(503), body_has("down for maintenance")],
        ),
        (
            "the app's own error page",
            false,
            get("errpage.test", "/x"),
            vec![status(503), body_has("our own 503")],
        ),
    ]
}

#[tokio::test]
async fn every_rule_answers_alike_over_the_three_protocols() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let edges = start().await;
    let mut wrong = Vec::new();
    for (i, (name, v6, ask, checks)) in cases().into_iter().enumerate() {
        let target = if v6 { &edges.v6 } else { &edges.v4 };
        for proto in PROTOCOLS {
            let id = format!("rules-{i}");
            let answer = tokio::time::timeout(CLIENT, send(proto, target, ask, &id))
                .await
                .unwrap_or_else(|_| Answer::failed("no answer in time".into()));
            let mut failed: Vec<String> = checks.iter().filter_map(|c| c(&answer).err()).collect();
            if !answer.complete {
                failed.push("incomplete".into());
            }
            if answer.header("x-request-id") != Some(id.as_str()) {
                failed.push(format!("x-request-id {:?}", answer.header("x-request-id")));
            }
            if !failed.is_empty() {
                wrong.push(format!("{name} over {proto}: {}", failed.join("; ")));
            }
        }
    }
    assert!(wrong.is_empty(), "rules drift:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_rate_limit_lets_the_burst_through_then_429_until_the_window_passes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let edges = start().await;
    for (proto, host) in PROTOCOLS
        .iter()
        .zip(["limit1.test", "limit2.test", "limit3.test"])
    {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let answer = send(proto, &edges.v4, get(host, "/x"), "limit").await;
            statuses.push(answer.status);
            if answer.status == 429 {
                assert_eq!(answer.header("retry-after"), Some("1"), "{proto}");
            }
        }
        assert_eq!(statuses, [200, 200, 200, 429], "{proto}");
        // 2 per second: after 600 ms one more request passes, not two.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let again = send(proto, &edges.v4, get(host, "/x"), "limit").await;
        let more = send(proto, &edges.v4, get(host, "/x"), "limit").await;
        assert_eq!((again.status, more.status), (200, 429), "{proto}");
        // The IPv6 client is another client.
        let other = send(proto, &edges.v6, get(host, "/x"), "limit").await;
        assert_eq!(other.status, 200, "{proto}");
    }
}

/// A memory bound for the streaming test: what the process may grow by
/// while 64 MiB pass through compressed.
const RSS_GROWTH_LIMIT: u64 = 24 * 1024 * 1024;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// An upstream streaming `total` bytes of text in 64 KiB pieces.
async fn streaming_upstream(total: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<Incoming>| async move {
                    let piece = Bytes::from(big().repeat(4));
                    let pieces = total / piece.len();
                    let stream = futures_util::stream::iter((0..pieces).map(move |_| {
                        Ok::<_, Infallible>(hyper::body::Frame::data(piece.clone()))
                    }));
                    let body = http_body_util::StreamBody::new(stream);
                    let resp = Response::builder()
                        .header("content-type", "text/plain")
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_64_mib_response_is_compressed_as_it_streams() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let _turn = ONE_AT_A_TIME.lock().await;
    let up = streaming_upstream(TOTAL).await;
    let rules: berth_config::RouteRules =
        serde_json::from_value(serde_json::json!({"compression": ["gzip"]})).unwrap();
    let router = Arc::new(Router::new(RouteTable::build([route(
        "stream.test",
        Arc::new(Backend::new("stream", vec![up])),
        &rules,
    )])));
    let mut registry = Registry::default();
    let proxy = EdgeProxy::new(
        router,
        ProxyMetrics::register(&mut registry),
        EdgeOptions {
            tls: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(10),
            https_port: 443,
            h3_port: None,
            certificates: None,
            tunnel_idle: Duration::from_secs(60),
        },
        Arc::default(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let edge = listener.local_addr().unwrap();
    let (_stop, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(berth_proxy::serve(listener, proxy, None, watch));
    // The client decodes as it reads and keeps only counts.
    let before = rss();
    let response = reqwest::Client::new()
        .get(format!("http://{edge}/"))
        .header("host", "stream.test")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut decoder = flate2::write::GzDecoder::new(Counter(0));
    let mut wire = 0usize;
    let mut peak = before;
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt;
    use std::io::Write;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        wire += chunk.len();
        decoder.write_all(&chunk).unwrap();
        peak = peak.max(rss());
    }
    let plain = decoder.finish().unwrap().0;
    assert_eq!(plain, TOTAL, "the whole body decodes");
    assert!(wire < TOTAL / 10, "compressed to {wire} bytes");
    let growth = peak.saturating_sub(before);
    eprintln!("64 MiB compressed to {wire} bytes; the process grew by {growth} bytes");
    assert!(
        growth < RSS_GROWTH_LIMIT,
        "the process grew by {} MiB while 64 MiB passed",
        growth / (1024 * 1024)
    );
}

/// Counts what is written into it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
