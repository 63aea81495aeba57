//! Apps built from source: the git repository an app comes from, how it is
//! built, and the secrets both need.
//!
//! Secrets (a git token, an SSH deploy key, build secrets) arrive in the
//! same JSON as the rest of the app but never reach the validated spec:
//! [`AppSecrets`] carries them to the caller, which seals them; the spec
//! only records that they exist, so it can be stored, logged and returned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most build args or build secrets one app may have.
pub const MAX_BUILD_VARS: usize = 100;
/// Most watch paths of one app.
pub const MAX_WATCH_PATHS: usize = 50;

/// Kinds of source; only git for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A git repository over HTTPS, SSH or the git protocol.
    Git,
}

/// Where an app's code comes from, as the user sends it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    /// `git`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// `https://…`, `http://…`, `ssh://user@host/…`, `user@host:path` or `git://…`;
    /// without credentials (give `token` or `ssh_key`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2048))]
    pub url: String,
    /// Branch to build and to deploy on push; default: the remote's default branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Tag to build instead of a branch.
    #[serde(default)]
    pub tag: Option<String>,
    /// Commit (full or abbreviated hex id) to pin the app to.
    #[serde(default)]
    pub commit: Option<String>,
    /// Sub-directory of the repository used as build context; default the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Access token for HTTPS URLs (sent as HTTP basic auth, never put in
    /// the URL); write-only. `""` in a PATCH removes it.
    #[serde(default)]
    pub token: Option<String>,
    /// Private SSH deploy key (OpenSSH or PEM) for SSH URLs; write-only.
    /// `""` in a PATCH removes it.
    #[serde(default)]
    pub ssh_key: Option<String>,
    /// Check out submodules too; default false.
    #[serde(default)]
    pub submodules: Option<bool>,
    /// Globs (relative to the repository root, `!` excludes) a push must
    /// touch to deploy; default: every push deploys.
    #[serde(default)]
    pub watch_paths: Option<Vec<String>>,
    /// Glob of tags whose pushes deploy (e.g. `v*`); default: tag pushes are ignored.
    #[serde(default)]
    pub tag_pattern: Option<String>,
}

impl std::fmt::Debug for SourceInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SourceInput")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("tag", &self.tag)
            .field("commit", &self.commit)
            .field("path", &self.path)
            .field("token", &shown(&self.token))
            .field("ssh_key", &shown(&self.ssh_key))
            .field("submodules", &self.submodules)
            .finish_non_exhaustive()
    }
}

/// Which credential a source uses; the value itself is sealed elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GitAuth {
    /// A public repository.
    #[default]
    None,
    /// An HTTPS access token.
    Token,
    /// An SSH deploy key.
    SshKey,
}

/// A validated git source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GitSource {
    /// Repository URL, without credentials.
    pub url: String,
    /// Branch, if one was given.
    pub branch: Option<String>,
    /// Tag, if one was given.
    pub tag: Option<String>,
    /// Pinned commit, if one was given.
    pub commit: Option<String>,
    /// Build context inside the repository (no leading or trailing `/`), if not the root.
    pub path: Option<String>,
    /// Whether submodules are checked out.
    pub submodules: bool,
    /// Which credential is stored for the repository.
    pub auth: GitAuth,
    /// Globs a push must touch to deploy.
    pub watch_paths: Vec<String>,
    /// Glob of tags whose pushes deploy.
    pub tag_pattern: Option<String>,
}

/// How an app's image is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BuildKind {
    /// The repository's Dockerfile.
    #[default]
    Dockerfile,
    /// A Dockerfile berth writes from what it detects in the repository
    /// (Node, Python, Go, Rust, Ruby, PHP, Java, static HTML).
    Auto,
    /// Files served by berth's own proxy: `publish_dir` of the repository,
    /// or of the image the Dockerfile builds when `dockerfile` is given.
    Static,
}

/// Changes to a detected build plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanOverrides {
    /// Image of the build (and, for single-stage stacks, run) stage.
    #[serde(default)]
    pub base_image: Option<String>,
    /// Command installing dependencies.
    #[serde(default)]
    pub install: Option<String>,
    /// Command building the app.
    #[serde(default)]
    pub build: Option<String>,
    /// Command starting the app.
    #[serde(default)]
    pub start: Option<String>,
}

/// How the app is built, as the user sends it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildInput {
    /// `dockerfile` (default), `auto` or `static`.
    #[serde(rename = "type", default)]
    pub kind: BuildKind,
    /// Dockerfile path relative to the build context; default `Dockerfile`.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Stage to build in a multi-stage Dockerfile.
    #[serde(default)]
    pub target: Option<String>,
    /// Build arguments (`ARG`); visible in the image's history, so not for secrets.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Build secrets, mounted with `RUN --mount=type=secret,id=NAME`; never
    /// in a layer, the image history or a log; write-only.
    #[serde(default)]
    pub secrets: Option<BTreeMap<String, String>>,
    /// Directory with the files of a static site; default: the first of
    /// `dist`, `build`, `public`, `out`, `_site` with an `index.html`, else
    /// the context root; with a `dockerfile`, the image's directory
    /// (default `/site`).
    #[serde(default)]
    pub publish_dir: Option<String>,
    /// Static sites: unknown paths without an extension get `index.html`
    /// (single-page apps); default false.
    #[serde(default)]
    pub spa: Option<bool>,
    /// `auto` builds: changes to the detected plan.
    #[serde(default)]
    pub plan: Option<PlanOverrides>,
}

impl std::fmt::Debug for BuildInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildInput")
            .field("kind", &self.kind)
            .field("dockerfile", &self.dockerfile)
            .field("target", &self.target)
            .field("args", &self.args)
            .field(
                "secrets",
                &self.secrets.as_ref().map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field("publish_dir", &self.publish_dir)
            .finish_non_exhaustive()
    }
}

/// A validated build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildSpec {
    /// The build type.
    pub kind: BuildKind,
    /// Dockerfile path relative to the context; for `static`, set only
    /// when the site is built by a Dockerfile.
    pub dockerfile: Option<String>,
    /// Stage to build.
    pub target: Option<String>,
    /// Build arguments.
    pub args: BTreeMap<String, String>,
    /// Names of the build secrets (values are sealed elsewhere).
    pub secrets: Vec<String>,
    /// Static sites: directory of the files.
    pub publish_dir: Option<String>,
    /// Static sites: single-page app fallback.
    pub spa: bool,
    /// `auto` builds: changes to the detected plan.
    pub plan: PlanOverrides,
}

/// The secret values of an app's input, to be sealed by the caller.
#[derive(Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSecrets {
    /// HTTPS token of the git source.
    #[serde(default)]
    pub git_token: Option<String>,
    /// SSH deploy key of the git source.
    #[serde(default)]
    pub ssh_key: Option<String>,
    /// Build secrets by name.
    #[serde(default)]
    pub build: BTreeMap<String, String>,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecrets")
            .field("git_token", &self.git_token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key.as_ref().map(|_| "<redacted>"))
            .field("build", &self.build.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AppSecrets {
    /// The secrets after a change: values given in `new` replace, `""`
    /// removes a credential, and `None` keeps the old one. Build secrets
    /// are replaced as a whole when `new_build` is given.
    pub fn merged(&self, new: &AppSecrets, new_build_given: bool) -> AppSecrets {
        let pick = |old: &Option<String>, new: &Option<String>| match new {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v.clone()),
            None => old.clone(),
        };
        AppSecrets {
            git_token: pick(&self.git_token, &new.git_token),
            ssh_key: pick(&self.ssh_key, &new.ssh_key),
            build: if new_build_given {
                new.build.clone()
            } else {
                self.build.clone()
            },
        }
    }
}

/// The trimmed value of an optional field, unless empty.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl SourceInput {
    /// The secret values in this input.
    pub fn secrets(&self) -> (Option<String>, Option<String>) {
        let value = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        (value(&self.token), value(&self.ssh_key))
    }

    /// Validates the source; `previous` is the auth stored before a change
    /// (kept when this input gives no credential).
    pub fn validate(&self, previous: GitAuth) -> Result<GitSource, FieldError> {
        let url = self.url.trim();
        let transport = validate_git_url(url)?;
        let branch = given(&self.branch).map(str::to_string);
        let tag = given(&self.tag).map(str::to_string);
        let commit = given(&self.commit).map(str::to_lowercase);
        if branch.is_some() && tag.is_some() {
            return Err(FieldError::new(
                "tag",
                "is given together with branch; give one of branch, tag",
            ));
        }
        if let Some(b) = &branch {
            validate_ref_name("branch", b)?;
        }
        if let Some(t) = &tag {
            validate_ref_name("tag", t)?;
        }
        if let Some(c) = &commit {
            if !(4..=64).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(FieldError::new(
                    "commit",
                    format!("{c:?} is not a commit id; give 4-64 hex digits"),
                ));
            }
        }
        let path = match given(&self.path) {
            None => None,
            Some(p) => Some(validate_relative_path("path", p)?),
        }
        .filter(|p| !p.is_empty());
        let token = self.token.as_deref();
        let key = self.ssh_key.as_deref();
        let auth = match (token, key) {
            (Some(t), Some(k)) if !t.is_empty() && !k.is_empty() => {
                return Err(FieldError::new(
                    "ssh_key",
                    "is given together with token; an HTTPS URL takes a token, an SSH URL a key",
                ))
            }
            (Some(t), _) if !t.is_empty() => GitAuth::Token,
            (_, Some(k)) if !k.is_empty() => GitAuth::SshKey,
            (Some(_), _) | (_, Some(_)) => GitAuth::None,
            (None, None) => previous,
        };
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            if t.len() > 4096 || t.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(FieldError::new(
                    "token",
                    "must be at most 4096 printable characters without spaces; paste the token alone",
                ));
            }
        }
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            let k = k.trim();
            if k.len() > 16 * 1024
                || !k.starts_with("-----BEGIN ")
                || !k.contains("PRIVATE KEY-----")
            {
                return Err(FieldError::new(
                    "ssh_key",
                    "is not a private key; paste the whole key file, from -----BEGIN … PRIVATE KEY----- to its END line",
                ));
            }
        }
        match (auth, transport) {
            (GitAuth::Token, Transport::PlainHttp) => {
                return Err(FieldError::new(
                    "token",
                    "would travel in clear over http://; use the repository's https:// URL",
                ))
            }
            (GitAuth::Token, Transport::Ssh | Transport::Git) => {
                return Err(FieldError::new(
                    "token",
                    "works with https:// URLs only; use ssh_key for SSH URLs",
                ))
            }
            (GitAuth::SshKey, Transport::Http | Transport::Git) => return Err(FieldError::new(
                "ssh_key",
                "works with SSH URLs only (ssh://… or user@host:path); use token for https:// URLs",
            )),
            _ => {}
        }
        let watch_paths = self.watch_paths.clone().unwrap_or_default();
        if watch_paths.len() > MAX_WATCH_PATHS {
            return Err(FieldError::new(
                "watch_paths",
                format!(
                    "has {} entries; give at most {MAX_WATCH_PATHS}",
                    watch_paths.len()
                ),
            ));
        }
        for (i, glob) in watch_paths.iter().enumerate() {
            validate_glob(&format!("watch_paths[{i}]"), glob.trim_start_matches('!'))?;
        }
        let tag_pattern = given(&self.tag_pattern).map(str::to_string);
        if let Some(p) = &tag_pattern {
            validate_glob("tag_pattern", p)?;
        }
        Ok(GitSource {
            url: url.to_string(),
            branch,
            tag,
            commit,
            path,
            submodules: self.submodules.unwrap_or(false),
            auth,
            watch_paths,
            tag_pattern,
        })
    }
}

impl From<&GitSource> for SourceInput {
    fn from(s: &GitSource) -> Self {
        SourceInput {
            kind: SourceKind::Git,
            url: s.url.clone(),
            branch: s.branch.clone(),
            tag: s.tag.clone(),
            commit: s.commit.clone(),
            path: s.path.clone(),
            token: None,
            ssh_key: None,
            submodules: Some(s.submodules),
            watch_paths: Some(s.watch_paths.clone()),
            tag_pattern: s.tag_pattern.clone(),
        }
    }
}

impl BuildInput {
    /// Validates the build; `previous_secrets` are the names stored before
    /// a change (kept when this input gives no `secrets`).
    pub fn validate(&self, previous_secrets: &[String]) -> Result<BuildSpec, FieldError> {
        let dockerfile = match self.dockerfile.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(validate_relative_path("dockerfile", p)?),
        };
        if self.kind == BuildKind::Auto && dockerfile.is_some() {
            return Err(FieldError::new(
                "dockerfile",
                "is set for an auto build; use type \"dockerfile\" to build your own Dockerfile",
            ));
        }
        let target = self
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(t) = target {
            if t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(FieldError::new(
                    "target",
                    format!("{t:?} is not a stage name; use letters, digits, '-', '_', '.'"),
                ));
            }
        }
        if self.args.len() > MAX_BUILD_VARS {
            return Err(FieldError::new(
                "args",
                format!(
                    "has {} entries; give at most {MAX_BUILD_VARS}",
                    self.args.len()
                ),
            ));
        }
        for (key, value) in &self.args {
            validate_build_var(&format!("args.{key}"), key, value)?;
        }
        let secrets = match &self.secrets {
            None => previous_secrets.to_vec(),
            Some(map) => {
                if map.len() > MAX_BUILD_VARS {
                    return Err(FieldError::new(
                        "secrets",
                        format!("has {} entries; give at most {MAX_BUILD_VARS}", map.len()),
                    ));
                }
                for (key, value) in map {
                    validate_build_var(&format!("secrets.{key}"), key, value)?;
                    if self.args.contains_key(key) {
                        return Err(FieldError::new(
                            format!("secrets.{key}"),
                            "is also a build arg; build args end up in the image history, keep it a secret only",
                        ));
                    }
                }
                map.keys().cloned().collect()
            }
        };
        if !secrets.is_empty() && self.kind == BuildKind::Static && dockerfile.is_none() {
            return Err(FieldError::new(
                "secrets",
                "are only used by Dockerfile builds; remove them or give a dockerfile",
            ));
        }
        let publish_dir = match self.publish_dir.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(validate_relative_path("publish_dir", p)?),
        };
        if self.kind != BuildKind::Static && (publish_dir.is_some() || self.spa.is_some()) {
            return Err(FieldError::new(
                if publish_dir.is_some() {
                    "publish_dir"
                } else {
                    "spa"
                },
                "only applies to static sites; set type to \"static\" or remove it",
            ));
        }
        let plan = self.plan.clone().unwrap_or_default();
        if self.kind != BuildKind::Auto && plan != PlanOverrides::default() {
            return Err(FieldError::new(
                "plan",
                "only applies to auto builds; set type to \"auto\" or remove it",
            ));
        }
        for (field, value) in [
            ("plan.base_image", &plan.base_image),
            ("plan.install", &plan.install),
            ("plan.build", &plan.build),
            ("plan.start", &plan.start),
        ] {
            if let Some(v) = value {
                if v.len() > 4096 || v.contains(['\0', '\n', '\r']) {
                    return Err(FieldError::new(
                        field,
                        "must be one line of at most 4096 characters",
                    ));
                }
            }
        }
        Ok(BuildSpec {
            kind: self.kind,
            dockerfile,
            target: target.map(str::to_string),
            args: self.args.clone(),
            secrets,
            publish_dir,
            spa: self.spa.unwrap_or(false),
            plan,
        })
    }
}

impl From<&BuildSpec> for BuildInput {
    fn from(b: &BuildSpec) -> Self {
        BuildInput {
            kind: b.kind,
            dockerfile: b.dockerfile.clone(),
            target: b.target.clone(),
            args: b.args.clone(),
            secrets: None,
            publish_dir: b.publish_dir.clone(),
            spa: (b.kind == BuildKind::Static).then_some(b.spa),
            plan: (b.kind == BuildKind::Auto).then(|| b.plan.clone()),
        }
    }
}

/// How a URL reaches its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// `https://`, or `http://` to a loopback host.
    Http,
    /// `http://` elsewhere: a token would travel in clear.
    PlainHttp,
    Ssh,
    Git,
}

/// Where a repository URL's credentials go: `scheme://host[:port]` or the
/// `user@host` of an scp-like SSH URL, lowercased. A stored credential
/// only follows a URL to the same origin.
pub fn git_origin(url: &str) -> String {
    let url = url.trim();
    match url.split_once("://") {
        Some((scheme, rest)) => format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            rest.split('/').next().unwrap_or("").to_ascii_lowercase()
        ),
        None => url.split(':').next().unwrap_or("").to_ascii_lowercase(),
    }
}

/// Whether an authority (`host[:port]`, maybe `[v6]:port`) is loopback.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn validate_git_url(url: &str) -> Result<Transport, FieldError> {
    let bad = |why: &str| FieldError::new("url", why.to_string());
    if url.is_empty() || url.len() > 2048 {
        return Err(bad(
            "give the repository URL, e.g. https://github.com/team/app.git",
        ));
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') || url.starts_with('-') {
        return Err(bad(
            "contains spaces, control characters or starts with '-'; give the repository URL",
        ));
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => {
            // scp-like SSH: user@host:path
            return match url.split_once(':') {
                Some((host, path))
                    if host.contains('@') && !host.contains('/') && !path.is_empty() =>
                {
                    Ok(Transport::Ssh)
                }
                _ => Err(bad(
                    "is not a git URL; give https://host/owner/repo.git, ssh://git@host/owner/repo.git, git@host:owner/repo.git or git://host/repo",
                )),
            };
        }
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || rest.len() <= authority.len() + 1 {
        return Err(bad("has no host or no repository path"));
    }
    match scheme.as_str() {
        "https" | "http" => {
            if authority.contains('@') {
                return Err(bad(
                    "has credentials in it; remove them from the URL and give the token in `token` (it is stored encrypted and never shown)",
                ));
            }
            if scheme == "http" && !is_loopback(authority) {
                Ok(Transport::PlainHttp)
            } else {
                Ok(Transport::Http)
            }
        }
        "ssh" => {
            if authority.split('@').next().is_some_and(|u| u.contains(':')) {
                return Err(bad(
                    "has a password in it; use an SSH deploy key in `ssh_key` instead",
                ));
            }
            Ok(Transport::Ssh)
        }
        "git" => Ok(Transport::Git),
        other => Err(bad(&format!(
            "has scheme {other:?}; give an https://, ssh:// or git:// URL"
        ))),
    }
}

/// Checks a branch or tag name by git's rules (the parts that matter).
fn validate_ref_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name
            .bytes()
            .all(|b| b > b' ' && b != 0x7f && !b"~^:?*[\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?} is not a valid git {field} name"),
        ))
    }
}

/// A relative path inside the repository: no `..`, no absolute path.
fn validate_relative_path(field: &str, path: &str) -> Result<String, FieldError> {
    let trimmed = path.trim_matches('/');
    let ok = path.len() <= 1024
        && !path.contains('\\')
        && !path.bytes().any(|b| b.is_ascii_control())
        && trimmed
            .split('/')
            .all(|seg| seg != ".." && !seg.is_empty() || trimmed.is_empty());
    if !ok {
        return Err(FieldError::new(
            field,
            format!(
                "{path:?} is not a path inside the repository; give a relative path without '..'"
            ),
        ));
    }
    let cleaned: Vec<&str> = trimmed
        .split('/')
        .filter(|s| *s != "." && !s.is_empty())
        .collect();
    Ok(cleaned.join("/"))
}

fn validate_glob(field: &str, glob: &str) -> Result<(), FieldError> {
    let ok = !glob.is_empty()
        && glob.len() <= 512
        && !glob.bytes().any(|b| b.is_ascii_control())
        && glob.matches('[').count() == glob.matches(']').count()
        && glob.matches('{').count() == glob.matches('}').count();
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{glob:?} is not a glob; write e.g. \"api/**\" or \"v*\""),
        ))
    }
}

fn validate_build_var(field: &str, key: &str, value: &str) -> Result<(), FieldError> {
    let key_ok = !key.is_empty()
        && key.len() <= 256
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !key_ok {
        return Err(FieldError::new(
            field,
            "is not a valid name; use letters, digits, '_', '-' and '.'",
        ));
    }
    if value.contains('\0') || value.len() > 64 * 1024 {
        return Err(FieldError::new(
            field,
            "value must be at most 64 KiB and contain no NUL byte",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(json: &str) -> Result<GitSource, FieldError> {
        serde_json::from_str::<SourceInput>(json)
            .unwrap()
            .validate(GitAuth::None)
    }

    #[test]
    fn urls_of_each_transport_are_accepted() {
        for url in [
            "https://github.com/team/app.git",
            "http://127.0.0.1:9418/app",
            "ssh://git@example.com:2222/team/app.git",
            "git@github.com:team/app.git",
            "git://127.0.0.1/app",
        ] {
            let s = source(&format!(r#"{{"type":"git","url":"{url}"}}"#)).unwrap();
            assert_eq!(s.url, url);
        }
    }

    #[test]
    fn bad_sources_name_the_field() {
        let cases = [
            (
                r#"{"type":"git","url":"https://user:pw@github.com/a/b"}"#,
                "url",
            ),
            (r#"{"type":"git","url":"ftp://x/y"}"#, "url"),
            (r#"{"type":"git","url":"-uhttps://x/y"}"#, "url"),
            (
                r#"{"type":"git","url":"https://x/y","branch":"a..b"}"#,
                "branch",
            ),
            (
                r#"{"type":"git","url":"https://x/y","branch":"a","tag":"b"}"#,
                "tag",
            ),
            (
                r#"{"type":"git","url":"https://x/y","commit":"xyz"}"#,
                "commit",
            ),
            (
                r#"{"type":"git","url":"https://x/y","path":"../up"}"#,
                "path",
            ),
            (r#"{"type":"git","url":"git@x:y","token":"abc"}"#, "token"),
            (
                r#"{"type":"git","url":"https://x/y","ssh_key":"-----BEGIN OPENSSH PRIVATE KEY-----\nx"}"#,
                "ssh_key",
            ),
            (
                r#"{"type":"git","url":"git@x:y","ssh_key":"not a key"}"#,
                "ssh_key",
            ),
            (
                r#"{"type":"git","url":"https://x/y","token":"a b"}"#,
                "token",
            ),
        ];
        for (json, field) in cases {
            let err = source(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn credentials_become_markers_and_are_kept_on_change() {
        let s = source(r#"{"type":"git","url":"https://x/y","token":"ghp_secret"}"#).unwrap();
        assert_eq!(s.auth, GitAuth::Token);
        assert!(!serde_json::to_string(&s).unwrap().contains("ghp_secret"));
        let again: SourceInput =
            serde_json::from_str(r#"{"type":"git","url":"https://x/z"}"#).unwrap();
        assert_eq!(again.validate(GitAuth::Token).unwrap().auth, GitAuth::Token);
        let removed: SourceInput =
            serde_json::from_str(r#"{"type":"git","url":"https://x/z","token":""}"#).unwrap();
        assert_eq!(
            removed.validate(GitAuth::Token).unwrap().auth,
            GitAuth::None
        );
    }

    #[test]
    fn builds_validate_their_fields() {
        let build = |json: &str| {
            serde_json::from_str::<BuildInput>(json)
                .unwrap()
                .validate(&[])
        };
        let ok = build(r#"{"type":"dockerfile","dockerfile":"./docker/Dockerfile.prod","target":"run","args":{"V":"1"},"secrets":{"NPM_TOKEN":"s3cret"}}"#).unwrap();
        assert_eq!(ok.dockerfile.as_deref(), Some("docker/Dockerfile.prod"));
        assert_eq!(ok.secrets, ["NPM_TOKEN"]);
        assert!(!serde_json::to_string(&ok).unwrap().contains("s3cret"));
        let cases = [
            (r#"{"type":"auto","dockerfile":"D"}"#, "dockerfile"),
            (r#"{"type":"dockerfile","target":"a b"}"#, "target"),
            (r#"{"type":"dockerfile","args":{"A B":"1"}}"#, "args.A B"),
            (
                r#"{"type":"dockerfile","args":{"T":"1"},"secrets":{"T":"2"}}"#,
                "secrets.T",
            ),
            (
                r#"{"type":"dockerfile","publish_dir":"dist"}"#,
                "publish_dir",
            ),
            (r#"{"type":"static","publish_dir":"../x"}"#, "publish_dir"),
            (r#"{"type":"static","secrets":{"A":"b"}}"#, "secrets"),
            (r#"{"type":"dockerfile","plan":{"start":"x"}}"#, "plan"),
            (r#"{"type":"auto","plan":{"start":"a\nb"}}"#, "plan.start"),
        ];
        for (json, field) in cases {
            let err = build(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn secrets_merge_by_rule_and_never_print() {
        let old = AppSecrets {
            git_token: Some("t1".into()),
            ssh_key: None,
            build: BTreeMap::from([("A".into(), "1".into())]),
        };
        let change = AppSecrets {
            git_token: Some(String::new()),
            ..Default::default()
        };
        let merged = old.merged(&change, false);
        assert_eq!(merged.git_token, None);
        assert_eq!(merged.build.len(), 1);
        assert!(!format!("{old:?}").contains("t1"));
    }
}
