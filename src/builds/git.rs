//! Git checkouts with the `git` command: a shallow clone of a branch, tag
//! or pinned commit (with submodules if asked), and `ls-remote` for the
//! "test connection" endpoint.
//!
//! Credentials never appear in a URL, an argument list or a log: an HTTPS
//! token goes to git as an `http.extraHeader` through `GIT_CONFIG_*`
//! environment variables (readable only by berth's own user), an SSH key
//! as a 0600 file outside the checkout named by `GIT_SSH_COMMAND`. git's
//! output is scrubbed of the token anyway before it reaches a log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use berth_config::GitSource;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::BuildError;

/// Credentials of a checkout, opened from the app's vault.
#[derive(Default, Clone)]
pub struct Credentials {
    /// HTTPS token.
    pub token: Option<String>,
    /// SSH private key.
    pub ssh_key: Option<String>,
}

/// What was checked out.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The repository's root.
    pub root: PathBuf,
    /// Full id of the checked-out commit.
    pub commit: String,
    /// Its subject line.
    pub subject: String,
}

/// Branches and tags of a remote.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RemoteRefs {
    /// The branch HEAD points to, if the server says.
    pub default_branch: Option<String>,
    /// Branch names.
    pub branches: Vec<String>,
    /// Tag names.
    pub tags: Vec<String>,
}

/// Runs git commands for one source with its credentials.
pub struct Git<'a> {
    source: &'a GitSource,
    credentials: &'a Credentials,
    /// Private directory for the SSH key file (outside any checkout).
    private: &'a Path,
    deadline: Duration,
}

impl<'a> Git<'a> {
    /// Commands for `source`; `private` is a directory only berth reads.
    pub fn new(
        source: &'a GitSource,
        credentials: &'a Credentials,
        private: &'a Path,
        deadline: Duration,
    ) -> Self {
        Self {
            source,
            credentials,
            private,
            deadline,
        }
    }

    /// A `git` command with berth's environment: no prompts, no system or
    /// user config, credentials as described in the module doc.
    fn command(&self) -> Result<Command, BuildError> {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.private)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout or cancel also stops the
            // helpers git starts (git-remote-https, ssh, submodule clones).
            .process_group(0)
            .kill_on_drop(true);
        let mut config: Vec<(String, String)> =
            vec![("protocol.file.allow".into(), "never".into())];
        if let Some(token) = &self.credentials.token {
            // Only for the source's own origin: submodules elsewhere (or a
            // redirect) never see it.
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            config.push((
                format!("http.{}.extraHeader", http_origin(&self.source.url)),
                format!("Authorization: Basic {basic}"),
            ));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.into_iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
        if let Some(key) = &self.credentials.ssh_key {
            let path = self.private.join("deploy_key");
            write_private(&path, key)?;
            let known = self.private.join("known_hosts");
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
                    quote(&path),
                    quote(&known)
                ),
            );
        } else {
            cmd.env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            );
        }
        Ok(cmd)
    }

    /// Runs git with `args`; stderr lines go to `log` (scrubbed). Returns stdout.
    async fn run(
        &self,
        args: &[&str],
        log: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<String, BuildError> {
        let mut cmd = self.command()?;
        cmd.args(args);
        let mut child = cmd.spawn().map_err(|e| {
            BuildError::Git(format!(
                "cannot run git ({e}); install git on the berth host"
            ))
        })?;
        let _group = ProcessGroup(child.id());
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        let scrub = |line: &str| self.scrub(line);
        let mut last_err = String::new();
        let read_err = async {
            let Some(stderr) = stderr else { return };
            let mut reader = BufReader::new(stderr);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = scrub(&String::from_utf8_lossy(&raw));
                // Progress lines repeat with \r; keep the last state.
                let line = line
                    .trim_end()
                    .rsplit('\r')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if !line.trim().is_empty() {
                    log(&format!("git: {line}"));
                    last_err = line;
                }
            }
        };
        let read_out = async {
            use tokio::io::AsyncReadExt;
            let Some(mut stdout) = stdout else {
                return String::new();
            };
            // Keep at most MAX_OUTPUT, but read to the end so git never
            // blocks on a full pipe.
            let mut kept = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        };
        let work = async {
            let ((), out) = tokio::join!(read_err, read_out);
            let status = child.wait().await;
            (status, out)
        };
        let (status, out) = tokio::select! {
            r = tokio::time::timeout(self.deadline, work) => match r {
                Ok(r) => r,
                Err(_) => return Err(BuildError::Timeout(self.deadline)),
            },
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        let status = status.map_err(|e| BuildError::Git(format!("git failed: {e}")))?;
        if !status.success() {
            let what = match args {
                ["-C", _, sub, ..] => sub,
                [sub, ..] => sub,
                [] => "git",
            };
            return Err(BuildError::Git(format!(
                "git {what} failed: {}",
                if last_err.is_empty() {
                    status.to_string()
                } else {
                    last_err
                }
            )));
        }
        Ok(out)
    }

    /// Removes the token from text git printed, in case a server echoes it.
    fn scrub(&self, text: &str) -> String {
        match &self.credentials.token {
            Some(t) if !t.is_empty() => text.replace(t.as_str(), "<redacted>"),
            _ => text.to_string(),
        }
    }

    /// Clones the source into `dir` (which must not exist) and checks out
    /// its branch, tag or commit.
    pub async fn checkout(
        &self,
        dir: &Path,
        log: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Checkout, BuildError> {
        let s = self.source;
        let dir_s = dir.to_string_lossy().to_string();
        let url = s.url.as_str();
        match &s.commit {
            None => {
                let mut args = vec!["clone", "--depth", "1", "--single-branch", "--no-tags"];
                let reference = s.branch.as_deref().or(s.tag.as_deref());
                if let Some(r) = reference {
                    args.extend(["--branch", r]);
                }
                if s.submodules {
                    args.extend(["--recurse-submodules", "--shallow-submodules"]);
                }
                args.extend(["--", url, &dir_s]);
                log(&format!(
                    "cloning {url} ({})",
                    reference.map_or("default branch".to_string(), |r| format!("ref {r}"))
                ));
                self.run(&args, log, cancel).await?;
            }
            Some(commit) => {
                log(&format!("fetching commit {commit} of {url}"));
                self.run(&["init", "-q", &dir_s], log, cancel).await?;
                let c = ["-C", dir_s.as_str()];
                self.run(
                    &[&c[..], &["remote", "add", "origin", url]].concat(),
                    log,
                    cancel,
                )
                .await?;
                let shallow = self
                    .run(
                        &[&c[..], &["fetch", "--depth", "1", "origin", commit]].concat(),
                        log,
                        cancel,
                    )
                    .await;
                if shallow.is_err() {
                    // Abbreviated ids, or servers that refuse fetching by id.
                    log("the server does not serve single commits; fetching the history");
                    self.run(
                        &[&c[..], &["fetch", "--tags", "origin"]].concat(),
                        log,
                        cancel,
                    )
                    .await?;
                }
                let target = if shallow.is_ok() {
                    "FETCH_HEAD"
                } else {
                    commit
                };
                self.run(
                    &[&c[..], &["checkout", "-q", "--detach", target]].concat(),
                    log,
                    cancel,
                )
                .await?;
                if s.submodules {
                    self.run(
                        &[
                            &c[..],
                            &[
                                "submodule",
                                "update",
                                "--init",
                                "--recursive",
                                "--depth",
                                "1",
                            ],
                        ]
                        .concat(),
                        log,
                        cancel,
                    )
                    .await?;
                }
            }
        }
        let c = ["-C", dir_s.as_str()];
        let head = self
            .run(
                &[&c[..], &["log", "-1", "--format=%H%n%s"]].concat(),
                log,
                cancel,
            )
            .await?;
        let mut lines = head.lines();
        let commit = lines.next().unwrap_or_default().trim().to_string();
        let subject = lines.next().unwrap_or_default().trim().to_string();
        if let Some(pinned) = &s.commit {
            if !commit.starts_with(pinned.as_str()) {
                return Err(BuildError::Git(format!(
                    "checked out {commit}, not the pinned commit {pinned}"
                )));
            }
        }
        log(&format!("checked out {commit} \"{subject}\""));
        Ok(Checkout {
            root: dir.to_path_buf(),
            commit,
            subject,
        })
    }

    /// The remote's branches and tags (`git ls-remote`).
    pub async fn remote_refs(&self, cancel: &CancellationToken) -> Result<RemoteRefs, BuildError> {
        let out = self
            .run(
                &["ls-remote", "--symref", "--", &self.source.url],
                &|_| {},
                cancel,
            )
            .await?;
        Ok(parse_ls_remote(&out))
    }
}

/// Most of git's standard output kept (`ls-remote` of huge repositories).
const MAX_OUTPUT: usize = 16 << 20;

/// Kills a git process group when dropped (a no-op once it has exited:
/// the group is gone).
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `scheme://host[:port]/` of an HTTP(S) URL, the scope of the token's
/// header in git's `http.<url>.*` configuration.
pub(crate) fn http_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            format!("{}://{authority}/", scheme.to_ascii_lowercase())
        }
        None => url.to_string(),
    }
}

/// Writes `content` to a new file only its owner can read.
fn write_private(path: &Path, content: &str) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BuildError::Io(format!("cannot write the deploy key file: {e}")))?;
    let mut key = content.trim().to_string();
    key.push('\n');
    file.write_all(key.as_bytes())
        .map_err(|e| BuildError::Io(format!("cannot write the deploy key file: {e}")))
}

/// Parses `git ls-remote --symref` output.
fn parse_ls_remote(out: &str) -> RemoteRefs {
    let mut refs = RemoteRefs {
        default_branch: None,
        branches: Vec::new(),
        tags: Vec::new(),
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, "HEAD")) = rest.split_once('\t') {
                refs.default_branch = target.strip_prefix("refs/heads/").map(str::to_string);
            }
            continue;
        }
        let Some((_, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(b) = name.strip_prefix("refs/heads/") {
            refs.branches.push(b.to_string());
        } else if let Some(t) = name.strip_prefix("refs/tags/") {
            if !t.ends_with("^{}") {
                refs.tags.push(t.to_string());
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_remote_output_is_parsed() {
        let out = "ref: refs/heads/main\tHEAD\n\
                   1111111111111111111111111111111111111111\tHEAD\n\
                   1111111111111111111111111111111111111111\trefs/heads/main\n\
                   2222222222222222222222222222222222222222\trefs/heads/dev\n\
                   3333333333333333333333333333333333333333\trefs/tags/v1\n\
                   4444444444444444444444444444444444444444\trefs/tags/v1^{}\n";
        let refs = parse_ls_remote(out);
        assert_eq!(refs.default_branch.as_deref(), Some("main"));
        assert_eq!(refs.branches, ["main", "dev"]);
        assert_eq!(refs.tags, ["v1"]);
    }
}
