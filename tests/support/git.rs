//! A git server on loopback for the tests: git's own smart-HTTP backend
//! (`git http-backend`, run as a CGI per request) behind a small hyper
//! server that demands an access token as HTTP basic auth, the way GitHub,
//! GitLab and Gitea take one, and records every request line and header it
//! saw (so tests can check a token never travels in a URL). Sample apps
//! are committed and pushed with the real `git` command.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use tokio::io::AsyncWriteExt;

/// The running server.
pub struct GitServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    /// Every request as `METHOD URI` plus its headers, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs git in `dir` with a fixed identity; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitServer {
    /// Starts the server; requests need `token` when it is given.
    pub async fn start(token: Option<&str>) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expected = token.map(|t| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"))
            )
        });
        let project_root = root.path().to_path_buf();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (root, seen, expected) =
                    (project_root.clone(), seen2.clone(), expected.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (root, seen, expected) = (root.clone(), seen.clone(), expected.clone());
                        async move { Ok::<_, hyper::Error>(serve(req, &root, &seen, &expected).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GitServer {
            addr,
            root,
            seen,
            task,
        }
    }

    /// URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }

    /// Creates bare repository `name` and a work tree to commit in; the
    /// work tree pushes to the bare repository by path.
    pub fn create_repo(&self, name: &str) -> Repo {
        let bare = self.root.path().join(format!("{name}.git"));
        git(
            self.root.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&bare, &["config", "http.receivepack", "true"]);
        let work = tempfile::tempdir().unwrap();
        git(work.path(), &["init", "-q", "-b", "main"]);
        git(
            work.path(),
            &["remote", "add", "origin", bare.to_str().unwrap()],
        );
        Repo { work, bare }
    }

    /// Everything the server saw, one string.
    pub fn seen(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}

/// A repository's work tree.
pub struct Repo {
    pub work: tempfile::TempDir,
    pub bare: PathBuf,
}

impl Repo {
    /// Writes files (path → content; `None` deletes), commits them with
    /// `message` on `branch`, pushes, and returns the commit id.
    pub fn commit(&self, branch: &str, files: &[(&str, Option<&[u8]>)], message: &str) -> String {
        let dir = self.work.path();
        let current = git(dir, &["symbolic-ref", "--short", "HEAD"]);
        if current != branch {
            let exists = Command::new("git")
                .args(["rev-parse", "--verify", "-q", branch])
                .current_dir(dir)
                .status()
                .unwrap()
                .success();
            if exists {
                git(dir, &["checkout", "-q", branch]);
            } else {
                git(dir, &["checkout", "-q", "-b", branch]);
            }
        }
        for (path, content) in files {
            let p = dir.join(path);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, c).unwrap();
                    if path.ends_with(".sh")
                        || path.contains("cgi-bin")
                        || path.ends_with("busybox")
                    {
                        std::fs::set_permissions(
                            &p,
                            std::os::unix::fs::PermissionsExt::from_mode(0o755),
                        )
                        .unwrap();
                    }
                }
                None => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
        git(dir, &["push", "-q", "origin", branch]);
        git(dir, &["rev-parse", "HEAD"])
    }
}

async fn serve(
    req: Request<hyper::body::Incoming>,
    root: &Path,
    seen: &Mutex<Vec<String>>,
    expected: &Option<String>,
) -> Response<Full<Bytes>> {
    let mut line = format!("{} {}", req.method(), req.uri());
    for (k, v) in req.headers() {
        line.push_str(&format!("\n  {k}: {}", v.to_str().unwrap_or("?")));
    }
    seen.lock().unwrap().push(line);
    if let Some(expected) = expected {
        let ok = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == expected.as_bytes());
        if !ok {
            return Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"git\"")
                .body(Full::new(Bytes::from_static(b"token required\n")))
                .unwrap();
        }
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = if gzip {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        Bytes::from(out)
    } else {
        body
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    cgi_response(&out.stdout)
}

/// Turns CGI output (headers, blank line, body) into a response.
fn cgi_response(out: &[u8]) -> Response<Full<Bytes>> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return Response::builder()
            .status(500)
            .body(Full::new(Bytes::new()))
            .unwrap();
    };
    let head = String::from_utf8_lossy(&out[..end]);
    let mut status = 200;
    let mut headers = HashMap::new();
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("status") {
                status = v
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(200);
            } else {
                headers.insert(k.to_string(), v.to_string());
            }
        }
    }
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(&out[end + sep..])))
        .unwrap()
}
