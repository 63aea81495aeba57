//! Debian's `pebble` as the ACME server of a test, with
//! `pebble-challtestsrv` as its DNS (every name resolves to 127.0.0.1).
//! Pebble's own HTTPS certificate comes from a throwaway CA that berth is
//! told to trust (`--acme-ca-root`); validation is pointed at the test
//! instance's HTTP and HTTPS ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::tls::TestCa;

/// Ports picked before berth starts, since berth is told the directory URL.
pub struct PebblePorts {
    pub acme: u16,
    pub management: u16,
    pub dns: u16,
    pub dns_management: u16,
}

impl PebblePorts {
    pub fn pick() -> PebblePorts {
        // Bound together so no two are the same; released just before use.
        let l: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = |i: usize| l[i].local_addr().unwrap().port();
        PebblePorts {
            acme: port(0),
            management: port(1),
            dns: port(2),
            dns_management: port(3),
        }
    }
}

/// A running pebble and its DNS.
pub struct Pebble {
    pub dir: tempfile::TempDir,
    /// The CA of pebble's own HTTPS certificate (give berth `--acme-ca-root`).
    pub ca_root: PathBuf,
    pub directory: String,
    management: String,
    children: Vec<Child>,
}

impl Pebble {
    /// The CA root to trust for pebble's HTTPS, written before pebble runs,
    /// and the directory URL: what berth needs at start.
    pub fn prepare(ports: &PebblePorts) -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pebble test CA");
        let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"], (-1, 30));
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let ca_root = dir.path().join("ca.pem");
        let directory = format!("https://127.0.0.1:{}/dir", ports.acme);
        (dir, ca_root, directory)
    }

    /// Starts pebble validating on `http_port` (HTTP-01) and `tls_port`
    /// (TLS-ALPN-01); certificates live `validity_secs` when given.
    pub fn start(
        ports: &PebblePorts,
        prepared: (tempfile::TempDir, PathBuf, String),
        http_port: u16,
        tls_port: u16,
        validity_secs: Option<u64>,
    ) -> Pebble {
        let (dir, ca_root, directory) = prepared;
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.acme),
            "managementListenAddress": format!("127.0.0.1:{}", ports.management),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(secs) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{}", ports.dns)])
            .args([
                "-management",
                &format!("127.0.0.1:{}", ports.dns_management),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv is installed (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{}", ports.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble is installed (Debian package pebble)");
        let pebble = Pebble {
            dir,
            ca_root,
            directory,
            management: format!("127.0.0.1:{}", ports.management),
            children: vec![dns, pebble],
        };
        super::wait_listening(ports.acme, 20, || {
            format!("pebble did not start: {}", pebble.log())
        });
        pebble
    }

    /// Pebble's output so far.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "{}{}{}",
            read("pebble.log"),
            read("pebble.err"),
            read("dns.err")
        )
    }

    /// Writes the root that signs the certificates pebble issues to a file
    /// and returns its path.
    pub fn issuing_root(&self) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&self.ca_root)
            .arg(format!("https://{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.path().join("issuing-root.pem");
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
