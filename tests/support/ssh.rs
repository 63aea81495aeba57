//! An SSH git server on loopback for the deploy-key tests: Debian's
//! `sshd` in the foreground on a free port, with a host key and an
//! authorized key of its own, serving the bare repositories of a
//! [`super::git::GitServer`] by absolute path.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running sshd; killed when dropped.
pub struct SshServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new ed25519 key pair in OpenSSH format: (private, public).
pub fn keypair(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-test", "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen is installed (Debian package openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(path.with_extension("pub")).unwrap(),
    )
}

impl SshServer {
    /// Starts sshd accepting `authorized` (a public key line) for root.
    pub fn start(authorized: &str) -> SshServer {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        keypair(dir.path(), "host_key");
        std::fs::write(dir.path().join("authorized_keys"), authorized).unwrap();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPidFile {dir}/sshd.pid\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd is installed (Debian package openssh-server)");
        let server = SshServer { port, dir, child };
        super::wait_listening(port, 10, || server.log());
        server
    }

    /// The ssh:// URL of a bare repository at `path`.
    pub fn url(&self, path: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, path.display())
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}
