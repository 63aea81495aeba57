//! Test harness: builds the test images from Debian's static busybox
//! (no registry is reachable), starts the real `berth` binary on `:0`
//! ports with a temp data dir and a unique instance, and removes every
//! container, network and image the test made, even when it fails.

#![allow(dead_code)]

pub mod git;
pub mod pebble;
pub mod registry;
pub mod ssh;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Busybox from Debian's `busybox-static`.
const BUSYBOX: &str = "/bin/busybox";

/// A WebSocket endpoint as a busybox CGI: the handshake (SHA-1 + base64 of
/// the key), then unmasked text frames. busybox httpd passes a response
/// that starts with `HTTP/1.1` through untouched.
const WS_CGI: &str = r#"#!/bin/busybox sh
B=/bin/busybox
accept=$(printf '%s' "${HTTP_SEC_WEBSOCKET_KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | $B sha1sum | $B cut -c1-40 | $B xxd -r -p | $B base64)
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
i=0
while true; do
  msg="$VERSION $i"
  printf "\\x81\\x$(printf %02x ${#msg})%s" "$msg" || exit 0
  i=$((i+1))
  $B sleep 0.2
done
"#;

/// The `Chatty` image's program: serves like `Web`, and writes lines.
const CHATTY_SH: &str = r#"B=/bin/busybox
host=$($B hostname)
echo "$VERSION $host" > /www/index.html
(i=0; while true; do echo "tick $VERSION $host $i"; echo "warn $VERSION $i" >&2; i=$((i+1)); $B sleep 0.3; done) &
exec $B httpd -f -p 8080 -h /www
"#;

/// Runs a docker CLI command, returning stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Like [`docker`], ignoring failure (cleanup).
fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The kinds of test image.
#[derive(Clone, Copy)]
pub enum Image {
    /// busybox httpd on 8080 (a child of the shell, so killing it crashes
    /// the container) answering `<version> <hostname>` at `/` and
    /// `slow done` after 2 s at `/cgi-bin/slow`.
    Web(&'static str),
    /// Serves, but its Docker healthcheck always fails.
    Unhealthy,
    /// Runs but never listens: stuck in the health gate until its deadline.
    Silent,
    /// Serves for about 4 s, then the container exits with code 3.
    Flaky,
    /// Like `Web("vfirst")`, but only replica 0 (by `BERTH_REPLICA`)
    /// serves `/ready`: a rollout in batches fails at its second batch.
    ReadyOnFirst,
    /// Like `Web(version)`, and writes `tick <version> <hostname> <n>` to
    /// stdout and `warn <version> <n>` to stderr every 300 ms (the
    /// hostname is the container's short id).
    Chatty(&'static str),
}

/// One test's berth instance and everything it owns.
pub struct Berth {
    pub instance: String,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub admin: String,
    pub http: String,
    pub https: String,
    pub metrics: String,
    /// Flags added to `berth serve`.
    pub extra_args: Vec<String>,
    /// A command (with its arguments) that runs berth, e.g. `prlimit`.
    pub wrapper: Vec<String>,
    pub token: String,
    images: Vec<String>,
    client: reqwest::Client,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

impl Berth {
    /// Starts berth with a fresh data dir and instance.
    pub async fn start() -> Berth {
        Self::start_with("").await
    }

    /// Like [`Berth::start`], with extra `[deploy]` settings (TOML lines).
    pub async fn start_with(deploy: &str) -> Berth {
        Self::start_configured(deploy, "", Vec::new()).await
    }

    /// Like [`Berth::start_with`], plus more TOML tables (`tables`, e.g.
    /// `[acme]` lines) and flags of `berth serve`.
    pub async fn start_configured(deploy: &str, tables: &str, args: Vec<String>) -> Berth {
        let mut berth = Self::prepare(deploy, tables, args);
        berth.launch().await;
        berth
    }

    /// Like [`Berth::start`], run through `wrapper` (e.g. `prlimit ... --`).
    pub async fn start_wrapped(wrapper: &[&str]) -> Berth {
        let mut berth = Self::prepare("", "", Vec::new());
        berth.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        berth.launch().await;
        berth
    }

    /// The data dir and config of a new instance, not started yet.
    fn prepare(deploy: &str, tables: &str, args: Vec<String>) -> Berth {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("berth.toml"),
            format!(
                "[deploy]\nhealth_timeout_secs = 20\nstop_grace_secs = 1\n{deploy}\n\
                 [proxy]\nshutdown_grace_secs = 5\n{tables}\n"
            ),
        )
        .unwrap();
        Berth {
            instance: unique("t"),
            dir,
            child: None,
            admin: String::new(),
            http: String::new(),
            https: String::new(),
            metrics: String::new(),
            extra_args: args,
            wrapper: Vec::new(),
            token: String::new(),
            images: Vec::new(),
            client: reqwest::Client::new(),
        }
    }

    /// Path of the data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)starts the process on the same data dir and instance.
    pub async fn launch(&mut self) {
        let addresses = self.data_dir().join("addresses.json");
        let _ = std::fs::remove_file(&addresses);
        let log = std::fs::File::create(self.data_dir().join("berth.log")).unwrap();
        // BERTH_BENCH_BIN: another build of berth (the PGO script's
        // instrumented one) under the same harness.
        let exe = std::env::var_os("BERTH_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_berth").into());
        let mut command = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = command
            .args(["serve", "--instance", &self.instance])
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.data_dir().join("berth.toml"))
            .args(["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .args(["--https-addr", "127.0.0.1:0"])
            .args(&self.extra_args)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berth");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addresses) {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["pid"] == pid {
                    self.admin = v["admin"].as_str().unwrap().to_string();
                    self.http = v["http"].as_str().unwrap().to_string();
                    self.https = v["https"].as_str().unwrap().to_string();
                    self.metrics = v["metrics"].as_str().unwrap().to_string();
                    break;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("berth exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "berth did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.token = std::fs::read_to_string(self.data_dir().join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
    }

    /// berth's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("berth.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0.
    pub async fn terminate(&mut self) -> bool {
        self.signal_term();
        self.wait_exit().await
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited 0.
    pub async fn wait_exit(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "berth did not stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Builds a test image tagged for this instance; returns the tag.
    pub fn image(&mut self, kind: Image) -> String {
        let (tag, version, health) = match kind {
            Image::Web(v) => (format!("berth-test-{}:{v}", self.instance), v, ""),
            Image::Silent => (format!("berth-test-{}:silent", self.instance), "silent", ""),
            Image::Flaky => (format!("berth-test-{}:flaky", self.instance), "flaky", ""),
            Image::ReadyOnFirst => (format!("berth-test-{}:vfirst", self.instance), "vfirst", ""),
            Image::Chatty(v) => (format!("berth-test-{}:chatty-{v}", self.instance), v, ""),
            Image::Unhealthy => (
                format!("berth-test-{}:unhealthy", self.instance),
                "sick",
                "HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/bin/busybox\", \"false\"]\n",
            ),
        };
        let ctx = tempfile::tempdir().unwrap();
        std::fs::copy(BUSYBOX, ctx.path().join("busybox")).expect("busybox-static is installed");
        std::fs::create_dir(ctx.path().join("www")).unwrap();
        std::fs::write(ctx.path().join("www/.keep"), "").unwrap();
        // /cgi-bin/slow answers after 2 s: an in-flight request to wait for.
        std::fs::create_dir(ctx.path().join("www/cgi-bin")).unwrap();
        let slow = ctx.path().join("www/cgi-bin/slow");
        std::fs::write(
            &slow,
            "#!/bin/busybox sh\n/bin/busybox sleep 2\necho 'Content-Type: text/plain'\necho\necho slow done\n",
        )
        .unwrap();
        std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // /cgi-bin/ws is a WebSocket that sends `<version> <n>` text frames
        // every 200 ms until the connection or the container goes away.
        let ws = ctx.path().join("www/cgi-bin/ws");
        std::fs::write(&ws, WS_CGI).unwrap();
        std::fs::set_permissions(&ws, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(ctx.path().join("www/chatty.sh"), CHATTY_SH).unwrap();
        let cmd = match kind {
            Image::Chatty(_) => {
                "CMD [\"/bin/busybox\", \"sh\", \"/www/chatty.sh\"]\n".to_string()
            }
            Image::Silent => "CMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n".to_string(),
            Image::ReadyOnFirst => "CMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo \\\"$VERSION $(/bin/busybox hostname)\\\" > /www/index.html; [ \\\"$BERTH_REPLICA\\\" = 0 ] && echo ok > /www/ready; /bin/busybox httpd -f -p 8080 -h /www; echo httpd exited\"]\n".to_string(),
            Image::Flaky => "CMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo flaky > /www/index.html; /bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep 4; exit 3\"]\n".to_string(),
            _ => "CMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo \\\"$VERSION $(/bin/busybox hostname)\\\" > /www/index.html && /bin/busybox httpd -f -p 8080 -h /www; echo httpd exited\"]\n".to_string(),
        };
        let dockerfile = format!(
            // The label comes first so no two tests share intermediate
            // images: removing one test's images never breaks another's build.
            "FROM scratch\nLABEL berth.test={instance}\nCOPY busybox /bin/busybox\nCOPY www /www\n\
             ENV VERSION={version}\n{health}{cmd}",
            instance = self.instance
        );
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        docker(&["build", "-q", "-t", &tag, ctx.path().to_str().unwrap()]);
        self.images.push(tag.clone());
        tag
    }

    /// Images this test built, in order.
    pub fn images_of_test(&self) -> &[String] {
        &self.images
    }

    /// Removes `image` with the rest when the test ends.
    pub fn track_image(&mut self, image: &str) {
        self.images.push(image.to_string());
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.admin)
    }

    /// An admin API call with the token; returns status and JSON body.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_raw(method, path, body.map(|b| b.to_string()), Some(&self.token))
            .await
    }

    /// An admin API call with a raw body and an optional token.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Creates an app; panics unless 201.
    pub async fn create_app(&self, spec: Value) {
        let (status, body) = self.api("POST", "/apps", Some(spec)).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Creates app `web` (port 8080, host `web.test`) from `image` with
    /// `replicas` and deploys it; panics unless the deployment succeeds.
    pub async fn deploy_web(&self, image: &str, replicas: u32) {
        self.create_app(serde_json::json!({
            "name": "web", "image": image, "port": 8080, "replicas": replicas,
            "domains": [{"host": "web.test"}]
        }))
        .await;
        let d = self.deploy("web").await;
        assert_eq!(d["status"], "succeeded", "{d}\n{}", self.log());
    }

    /// `n` GETs of `/` through the edge for `host`; each must be 200.
    /// Returns the trimmed bodies.
    pub async fn answers(&self, host: &str, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (status, body) = self.get(host, "/").await;
            assert_eq!(status, 200, "{body}\n{}", self.log());
            out.push(body.trim().to_string());
        }
        out
    }

    /// A deployment's log as the API gives it, as text.
    pub async fn deployment_log(&self, id: &str) -> String {
        let (status, log) = self
            .api("GET", &format!("/deployments/{id}/logs"), None)
            .await;
        assert_eq!(status, 200, "{log}");
        log.to_string()
    }

    /// Queues a deployment and waits for its end; returns the record.
    pub async fn deploy(&self, app: &str) -> Value {
        let (status, body) = self
            .api("POST", &format!("/apps/{app}/deployments"), None)
            .await;
        assert_eq!(status, 202, "{body}");
        self.wait_deployment(body["id"].as_str().unwrap()).await
    }

    /// Sends SIGKILL: no cleanup, no shutdown.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits until a deployment has `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.api("GET", &format!("/deployments/{id}"), None).await;
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} never got {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Queues a deployment; returns its id.
    pub async fn queue_deploy(&self, app: &str) -> String {
        let (status, body) = self
            .api("POST", &format!("/apps/{app}/deployments"), None)
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Waits until a deployment has ended.
    pub async fn wait_deployment(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, body) = self.api("GET", &format!("/deployments/{id}"), None).await;
            assert_eq!(status, 200, "{body}");
            if !matches!(body["status"].as_str(), Some("queued" | "running")) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} never ended:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A GET through the edge for `host`; returns status and body.
    pub async fn get(&self, host: &str, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("http://{}{path}", self.http))
            .header("host", host)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Waits until the instance has exactly `n` containers.
    pub async fn wait_containers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let names = self.containers();
            if names.len() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} containers, have {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ids of the networks named `berth-<instance>` with the instance's
    /// label, oldest first.
    pub fn networks(&self) -> Vec<String> {
        let out = docker(&[
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=berth.instance={}", self.instance),
            "--format",
            "{{.CreatedAt}}\t{{.Name}}\t{{.ID}}",
        ]);
        let name = format!("berth-{}", self.instance);
        let mut rows: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| {
                let mut parts = l.split('\t');
                let (created, n, id) = (parts.next()?, parts.next()?, parts.next()?);
                (n == name).then(|| (created.to_string(), id.to_string()))
            })
            .collect();
        rows.sort();
        rows.into_iter().map(|(_, id)| id).collect()
    }

    /// Names of this instance's containers (running or not).
    pub fn containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=berth.instance={}", self.instance),
            "--format",
            "{{.Names}}",
        ]);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let filter = format!("label=berth.instance={}", self.instance);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                docker_quiet(&["rm", "-f", "-v", id]);
            }
        }
        // By label and id: duplicates of the name (Docker 20.10 allows
        // them) make `network rm <name>` ambiguous.
        if let Ok(out) = Command::new("docker")
            .args(["network", "ls", "-q", "--no-trunc", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                docker_quiet(&["network", "rm", id]);
            }
        }
        docker_quiet(&["network", "rm", &format!("berth-{}", self.instance)]);
        // Volumes berth made for the test's apps.
        if let Ok(out) = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &filter])
            .output()
        {
            for name in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                docker_quiet(&["volume", "rm", "-f", name]);
            }
        }
        for image in &self.images {
            docker_quiet(&["rmi", "-f", image]);
        }
        // Untagged leftovers (a tag moved by a test) carry the test's
        // label; images berth built are in the instance's repositories.
        for label in [
            format!("label=berth.test={}", self.instance),
            format!("reference=berth-{}/*", self.instance),
        ] {
            if let Ok(out) = Command::new("docker")
                .args(["images", "-q", "--filter", &label])
                .output()
            {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    docker_quiet(&["rmi", "-f", id]);
                }
            }
        }
    }
}

/// Waits until something accepts TCP connections on loopback `port`;
/// panics with `why()` (e.g. the server's log) after `secs`.
pub fn wait_listening(port: u16, secs: u64, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}: {}",
            why()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Path of a data file (for config tests).
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
