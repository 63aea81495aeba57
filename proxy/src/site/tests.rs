//! Unit tests of [`super`]: sites built in temp dirs, answered in process.

use std::io::Read as _;

use proptest::prelude::*;

use super::*;

/// A long stylesheet: compressible and over the gzip threshold.
fn css() -> String {
    "body { color: #123456; margin: 0 auto; }\n".repeat(40)
}

/// A site loaded from a temp dir, which is gone afterwards: a site lives
/// in memory.
fn site_with(files: &[(&str, &[u8])], options: SiteOptions) -> Site {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    Site::load(dir.path(), options).unwrap()
}

fn sample(spa: bool, with_404: bool) -> Site {
    let css = css();
    let mut files: Vec<(&str, &[u8])> = vec![
        ("index.html", b"<h1>home</h1>"),
        ("about.html", b"<h1>about</h1>"),
        ("docs/index.html", b"<h1>docs</h1>"),
        ("assets/app.css", css.as_bytes()),
        ("assets/index-BQx8f2aZ.js", b"console.log(1)"),
        ("logo.PNG", b"\x89PNG...."),
        ("data.bin", b"\0\x01"),
    ];
    if with_404 {
        files.push(("404.html", b"<h1>lost</h1>"));
    }
    site_with(
        &files,
        SiteOptions {
            spa,
            ..SiteOptions::default()
        },
    )
}

fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_static(value));
    }
    h
}

fn get(site: &Site, path: &str) -> SiteResponse {
    site.respond(&Method::GET, path, &HeaderMap::new())
}

fn header<'r>(resp: &'r SiteResponse, name: &str) -> &'r str {
    resp.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[test]
fn loads_every_file_and_counts_bytes() {
    let site = sample(false, false);
    assert_eq!(site.files(), 7);
    let expected = 13 + 14 + 13 + css().len() + 14 + 8 + 2;
    assert_eq!(site.bytes(), expected as u64);
    assert_eq!(SiteOptions::default().max_bytes, 256 << 20);
    assert!(!SiteOptions::default().spa);
}

#[test]
fn content_types_follow_the_extension() {
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("a.HTM", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.js.map", "application/json"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("favicon.ico", "image/x-icon"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("sitemap.xml", "application/xml; charset=utf-8"),
        ("a.wasm", "application/wasm"),
        ("a.woff", "font/woff"),
        ("a.woff2", "font/woff2"),
        ("a.ttf", "font/ttf"),
        ("a.otf", "font/otf"),
        ("a.pdf", "application/pdf"),
        ("a.mp4", "video/mp4"),
        ("a.webm", "video/webm"),
        ("a.mp3", "audio/mpeg"),
        ("a.csv", "text/csv; charset=utf-8"),
        ("README.md", "text/markdown; charset=utf-8"),
        ("a.exe", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
        (".htaccess", "application/octet-stream"),
    ];
    for (name, expected) in cases {
        assert_eq!(content_type(name).0, expected, "{name}");
    }
    let site = sample(false, false);
    let resp = get(&site, "/assets/app.css");
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "content-type"), "text/css; charset=utf-8");
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(&resp, "accept-ranges"), "none");
    assert_eq!(resp.body, css().as_bytes());
    assert_eq!(
        header(&get(&site, "/logo.PNG"), "content-type"),
        "image/png"
    );
    let bin = get(&site, "/data.bin");
    assert_eq!(header(&bin, "content-type"), "application/octet-stream");
    assert_eq!(bin.body, &b"\0\x01"[..]);
}

#[test]
fn paths_map_to_files_html_and_indexes() {
    let site = sample(false, false);
    for (path, body) in [
        ("/", "<h1>home</h1>"),
        ("/index.html", "<h1>home</h1>"),
        ("/?x=1", "<h1>home</h1>"),
        ("/about", "<h1>about</h1>"),
        ("/about.html", "<h1>about</h1>"),
        ("/about?utm=1", "<h1>about</h1>"),
        ("/docs", "<h1>docs</h1>"),
        ("/docs/", "<h1>docs</h1>"),
        ("//docs/./index.html", "<h1>docs</h1>"),
        ("/%64ocs/", "<h1>docs</h1>"),
    ] {
        let resp = get(&site, path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body, body.as_bytes(), "{path}");
    }
    // A directory path names only its index.
    assert_eq!(get(&site, "/about/").status, 404);
    assert_eq!(get(&site, "/assets/").status, 404);
}

#[test]
fn cache_control_by_kind_and_fingerprint() {
    let site = sample(false, false);
    assert_eq!(header(&get(&site, "/"), "cache-control"), "no-cache");
    assert_eq!(
        header(&get(&site, "/assets/index-BQx8f2aZ.js"), "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header(&get(&site, "/assets/app.css"), "cache-control"),
        "public, max-age=3600"
    );
    for name in [
        "app.3f2a9c1b.js",
        "main.3f2a9c1b4d5e6f70.chunk.js",
        "3f2a9c1b.js",
        "index-BQx8f2aZ.js",
        "vendor-react-BQx8f2aZ.js",
        "index-BQx8f2-Z.js",
        "chunk-HQW2AB3C.js",
        "style.a1b2c3d4e5.css",
    ] {
        assert!(is_fingerprinted(name), "{name}");
    }
    for name in [
        "app.js",
        "index.html.js",
        "jquery-3.7.1.min.js",
        "vendors1.js",
        "Annual-Report2024.pdf",
        "report.20240101.csv",
        "my-long-file-name2.js",
        "deadbeef.js",
        "abcdefgh",
        "a3f2a9c1b",
    ] {
        assert!(!is_fingerprinted(name), "{name}");
    }
}

#[test]
fn etags_are_strong_and_if_none_match_gives_304() {
    let site = sample(false, false);
    let resp = get(&site, "/about");
    let etag = header(&resp, "etag").to_string();
    assert_eq!(etag.len(), 34);
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert!(etag[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(etag, header(&get(&site, "/"), "etag"));

    let weak = format!("W/{etag}");
    let list = format!("\"other\", {etag}");
    for tag in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(tag).unwrap());
        let resp = site.respond(&Method::GET, "/about", &h);
        assert_eq!(resp.status, 304, "{tag}");
        assert_eq!(header(&resp, "etag"), etag);
        assert!(resp.body.is_empty());
        assert!(resp.headers.get(header::CONTENT_LENGTH).is_none());
    }
    let stale = site.respond(
        &Method::GET,
        "/about",
        &req(&[("if-none-match", "\"0123\"")]),
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, &b"<h1>about</h1>"[..]);
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn gzip_is_negotiated_from_accept_encoding() {
    let site = sample(false, false);
    let css = css();
    let with = |ae: &'static str| {
        site.respond(
            &Method::GET,
            "/assets/app.css",
            &req(&[("accept-encoding", ae)]),
        )
    };
    for ae in [
        "gzip",
        "gzip, deflate, br",
        "br;q=1.0, GZIP;q=0.5",
        "*",
        "x-gzip",
    ] {
        let resp = with(ae);
        assert_eq!(header(&resp, "content-encoding"), "gzip", "{ae}");
        assert_eq!(header(&resp, "vary"), "accept-encoding");
        assert!(resp.body.len() < css.len());
        assert_eq!(header(&resp, "content-length"), resp.body.len().to_string());
        assert_eq!(gunzip(&resp.body), css.as_bytes(), "{ae}");
    }
    for ae in [
        "gzip;q=0",
        "gzip; q=0.000",
        "br",
        "identity",
        "*;q=0",
        "gzip;q=0, *",
    ] {
        let resp = with(ae);
        assert!(resp.headers.get(header::CONTENT_ENCODING).is_none(), "{ae}");
        assert_eq!(resp.body, css.as_bytes(), "{ae}");
        assert_eq!(header(&resp, "vary"), "accept-encoding");
    }
    assert_eq!(get(&site, "/assets/app.css").body, css.as_bytes());
    // Small and incompressible files are sent as they are.
    let small = site.respond(&Method::GET, "/about", &req(&[("accept-encoding", "gzip")]));
    assert!(small.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(header(&small, "vary"), "accept-encoding");
    let png = site.respond(
        &Method::GET,
        "/logo.PNG",
        &req(&[("accept-encoding", "gzip")]),
    );
    assert!(png.headers.get(header::CONTENT_ENCODING).is_none());
    assert!(png.headers.get(header::VARY).is_none());
}

#[test]
fn spa_falls_back_to_the_index_for_routes_only() {
    let site = sample(true, true);
    let resp = get(&site, "/some/route");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, &b"<h1>home</h1>"[..]);
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    assert_eq!(get(&site, "/some/route/").status, 200);
    // Missing assets stay 404, unless a browser navigates to them.
    let missing = get(&site, "/assets/missing.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, &b"<h1>lost</h1>"[..]);
    let navigating = site.respond(
        &Method::GET,
        "/user/jane.doe",
        &req(&[("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")]),
    );
    assert_eq!(navigating.status, 200);
    assert_eq!(navigating.body, &b"<h1>home</h1>"[..]);
}

#[test]
fn without_spa_missing_paths_get_404_html_or_a_plain_404() {
    let site = sample(false, true);
    let resp = get(&site, "/some/route");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body, &b"<h1>lost</h1>"[..]);
    assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
    assert!(resp.headers.get(header::ETAG).is_none());
    // No 304 for an error page.
    let resp = site.respond(&Method::GET, "/x", &req(&[("if-none-match", "*")]));
    assert_eq!(resp.status, 404);

    let bare = sample(false, false);
    let resp = get(&bare, "/some/route");
    assert_eq!(resp.status, 404);
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(resp.body, &b"404 Not Found\n"[..]);

    // A SPA without an index behaves the same.
    let empty = site_with(
        &[("a.txt", b"a")],
        SiteOptions {
            spa: true,
            ..Default::default()
        },
    );
    assert_eq!(get(&empty, "/route").status, 404);
}

#[test]
fn traversal_and_malformed_paths_are_refused() {
    let site = sample(true, true);
    for path in [
        "/../etc/passwd",
        "/assets/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E%2Fetc%2Fpasswd",
        "/assets/..%2f..%2fetc",
        "/..",
        "/a\\b",
        "/%5c..%5cetc",
        "/a%00b",
        "/%ff",
        "/%zz",
        "/%4",
    ] {
        let resp = get(&site, path);
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.body, &b"400 Bad Request\n"[..], "{path}");
    }
    // Dots that are not a whole segment are just names.
    assert_eq!(get(&site, "/..foo").status, 404);
    assert_eq!(get(&site, "/assets/..app.css").status, 404);
}

#[test]
fn head_has_the_length_of_get_and_no_body() {
    let site = sample(false, false);
    let resp = site.respond(&Method::HEAD, "/about", &HeaderMap::new());
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    assert_eq!(header(&resp, "content-length"), "14");
    let gz = site.respond(
        &Method::HEAD,
        "/assets/app.css",
        &req(&[("accept-encoding", "gzip")]),
    );
    let full = site.respond(
        &Method::GET,
        "/assets/app.css",
        &req(&[("accept-encoding", "gzip")]),
    );
    assert!(gz.body.is_empty());
    assert_eq!(header(&gz, "content-length"), full.body.len().to_string());
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let missing = site.respond(&Method::HEAD, "/nope", &HeaderMap::new());
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());
    assert_eq!(header(&missing, "content-length"), "14");
}

#[test]
fn other_methods_get_405_with_allow() {
    let site = sample(false, false);
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let resp = site.respond(&method, "/", &HeaderMap::new());
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(header(&resp, "allow"), "GET, HEAD");
    }
}

#[test]
fn oversized_sites_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), vec![b'a'; 600]).unwrap();
    std::fs::write(dir.path().join("b.txt"), vec![b'b'; 600]).unwrap();
    let options = SiteOptions {
        max_bytes: 1000,
        ..Default::default()
    };
    let err = Site::load(dir.path(), options).unwrap_err();
    assert!(
        matches!(
            err,
            SiteError::TooLarge {
                max_bytes: 1000,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("1000 bytes") && message.contains("raise"),
        "{message}"
    );
    let ok = SiteOptions {
        max_bytes: 1200,
        ..Default::default()
    };
    assert_eq!(Site::load(dir.path(), ok).unwrap().bytes(), 1200);
}

#[test]
fn roots_that_are_not_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("index.html");
    std::fs::write(&file, "x").unwrap();
    let err = Site::load(&file, SiteOptions::default()).unwrap_err();
    assert!(matches!(err, SiteError::NotADirectory { .. }), "{err}");
    let err = Site::load(&dir.path().join("nope"), SiteOptions::default()).unwrap_err();
    assert!(matches!(err, SiteError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn symlinks_inside_are_followed_and_outside_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "top secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/page.html"), "page").unwrap();
    std::os::unix::fs::symlink("real/page.html", dir.path().join("alias.html")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("linked")).unwrap();
    // A loop back to the root is read once, not forever.
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    let site = Site::load(dir.path(), SiteOptions::default()).unwrap();
    assert_eq!(get(&site, "/alias").body, &b"page"[..]);
    assert_eq!(get(&site, "/linked/page").body, &b"page"[..]);
    assert_eq!(get(&site, "/real/page").body, &b"page"[..]);

    let link = dir.path().join("leak");
    std::os::unix::fs::symlink(outside.path().join("secret"), &link).unwrap();
    let err = Site::load(dir.path(), SiteOptions::default()).unwrap_err();
    assert!(matches!(err, SiteError::SymlinkOutside { .. }), "{err}");
    assert!(err.to_string().contains("leak"), "{err}");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let err = Site::load(dir.path(), SiteOptions::default()).unwrap_err();
    assert!(matches!(err, SiteError::SymlinkOutside { .. }), "{err}");
}

proptest! {
    #[test]
    fn paths_never_escape_or_panic(path in "(/|\\.|%|2|e|f|5|c|0|a|\\\\|\\PC){0,40}") {
        if let Some(target) = Target::parse(&path) {
            prop_assert!(!target.rel.split('/').any(|s| s == ".." || s == "." || s.is_empty())
                || target.rel.is_empty());
            prop_assert!(!target.rel.contains(['\\', '\0']));
        }
        let site = sample(true, true);
        let resp = site.respond(&Method::GET, &path, &HeaderMap::new());
        prop_assert!(matches!(resp.status.as_u16(), 200 | 400 | 404));
    }

    #[test]
    fn accept_headers_never_panic(value in "\\PC{0,60}") {
        if let Ok(v) = HeaderValue::from_str(&value) {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, v.clone());
            h.insert(header::IF_NONE_MATCH, v.clone());
            h.insert(header::ACCEPT, v);
            let _ = accepts_gzip(&h);
            let _ = accepts_html(&h);
            let _ = none_match(&h, &etag(b"x"));
        }
    }
}
