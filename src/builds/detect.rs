//! Zero-config build detection (build type `auto`): look at a checked-out
//! repository and produce a readable, overridable [`BuildPlan`] that
//! [`BuildPlan::dockerfile`] turns into a complete Dockerfile, for Node,
//! Python, Go, Rust, Ruby, PHP, Java and static HTML.
//!
//! Why our own detector and not the `nixpacks` crate (Railway), as found
//! when this was written: nixpacks 1.41.0 (MIT) is mainly a CLI; as a
//! library it brings actix-web, tokio "full", clap, regex, serde_yaml,
//! toml 0.5, tempdir and more (208 crates in its lock file, about 70 that
//! berth does not build yet, among them a second web framework). Its
//! Dockerfiles start `FROM ghcr.io/railwayapp/nixpacks:ubuntu-…` and run
//! `nix-env` against pinned nixpkgs archives, so every build needs ghcr.io
//! and the Nix caches, which many self-hosted users cannot reach (this
//! machine reaches neither); it also builds by running the `docker` CLI.
//! Its README says it is in maintenance mode and points to its successor
//! `railpack` (a Go module, building through BuildKit with a frontend image
//! on ghcr.io); the base image tag pinned in 1.41.0 dates from April 2025. So berth keeps a small detector (std, serde_json, no TOML or
//! YAML crate) whose Dockerfiles use only official Docker Hub images.
//!
//! What is read: only the files named in the detectors, each at most
//! [`MAX_FILE_BYTES`], never through a symlink that leads out of the
//! directory; nothing in the repository is executed. Order: Node, Python,
//! Go, Rust, Ruby, PHP, Java, static; but a `package.json` that starts no
//! server (front-end assets or tooling only) yields to the other stacks,
//! and to plain HTML unless it builds a static site itself. A `Procfile`
//! `web:` line sets the start command of any stack.

mod dockerfile;
mod go;
mod java;
mod node;
mod php;
mod python;
mod repo;
mod ruby;
mod rust;
mod static_site;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use repo::Repo;

/// The most bytes read from one file; a larger manifest is an error.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The language or kind of app a plan builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// `package.json` (npm, pnpm, yarn or bun).
    Node,
    /// `requirements.txt`, `pyproject.toml` or `Pipfile`.
    Python,
    /// `go.mod`.
    Go,
    /// `Cargo.toml`.
    Rust,
    /// `Gemfile`.
    Ruby,
    /// `composer.json` or `index.php`.
    Php,
    /// `pom.xml` (Maven) or `build.gradle(.kts)` (Gradle).
    Java,
    /// `index.html` at the root or in `public/`, served by nginx.
    Static,
}

impl Stack {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Node => "node",
            Stack::Python => "python",
            Stack::Go => "go",
            Stack::Rust => "rust",
            Stack::Ruby => "ruby",
            Stack::Php => "php",
            Stack::Java => "java",
            Stack::Static => "static",
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What berth found in a repository and how it will build and run it.
/// Every command is a shell command line (run by `/bin/sh -c`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildPlan {
    /// The detected stack.
    pub stack: Stack,
    /// What was found, e.g. "package.json with pnpm-lock.yaml (pnpm); build script; start script".
    pub reason: String,
    /// Image of the build stage (and of the only stage for single-stage
    /// stacks), e.g. `node:22-bookworm-slim`; its version comes from
    /// `.nvmrc`, `engines`, `.python-version`, the `go` line of `go.mod`,
    /// `rust-toolchain`, `.ruby-version`, composer's `php` requirement or
    /// the Java release when the repository gives one.
    pub base_image: String,
    /// Image of the final stage of multi-stage stacks (Go, Rust, Java, and
    /// Node apps that build to static files); `None` for single-stage.
    pub runtime_image: Option<String>,
    /// System setup run before anything is copied, e.g. `corepack enable`
    /// or `apt-get install` of libraries that native packages need.
    pub setup: Option<String>,
    /// Dependency manifests copied before `install`, so the install layer
    /// is cached while they do not change; empty when `install` needs the
    /// whole source (workspaces, install scripts, local path dependencies).
    pub manifests: Vec<String>,
    /// Command installing dependencies, e.g. `pnpm install --frozen-lockfile`.
    pub install: Option<String>,
    /// Command building the app, after the whole source is copied. In
    /// multi-stage stacks it leaves what runs in `/out`, which becomes the
    /// runtime stage's working directory `/app`.
    pub build: Option<String>,
    /// Command starting the app (the image's `CMD`); a `Procfile` `web:`
    /// line wins over the detected one.
    pub start: Option<String>,
    /// The port the stack usually listens on (informational; also `PORT`
    /// in `env` for stacks whose apps read it).
    pub port: Option<u16>,
    /// Directory of static files, relative to the repository (static
    /// sites, and front-end builds such as Vite's `dist`).
    pub publish_dir: Option<String>,
    /// Environment of the running app, set after `install` (so a build
    /// sees it too), e.g. `NODE_ENV=production`, `PYTHONUNBUFFERED=1`.
    pub env: BTreeMap<String, String>,
}

/// Changes to a detected plan, as the app's `build.plan` gives them. A
/// command given as an empty string removes that step; an empty
/// `base_image`, or one with whitespace inside, is ignored.
pub use berth_config::PlanOverrides;

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// None of the files the detectors look for is there; the message
    /// lists them and suggests another build type.
    #[error("{0}")]
    NothingFound(String),
    /// A file or the directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file, relative to the repository (or the directory itself).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is larger than [`MAX_FILE_BYTES`].
    #[error("{} is larger than {limit} bytes, more than a manifest should be; use build type \"dockerfile\"", path.display())]
    TooLarge {
        /// The file, relative to the repository.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// A manifest could not be parsed (e.g. `package.json` is not JSON).
    #[error("{} is not valid: {reason}", path.display())]
    Invalid {
        /// The file, relative to the repository.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The files each detector looks for, in detection order.
const LOOKED_FOR: &str =
    "package.json (Node); requirements.txt, pyproject.toml, Pipfile (Python); \
go.mod (Go); Cargo.toml (Rust); Gemfile (Ruby); composer.json, index.php (PHP); \
pom.xml, build.gradle, build.gradle.kts (Java); index.html, public/index.html (static)";

/// Detects the stack of the repository checked out at `dir` and returns
/// its build plan. Reads a few small files; executes nothing.
pub fn detect(dir: &Path) -> Result<BuildPlan, DetectError> {
    let repo = Repo::open(dir)?;
    let procfile = procfile_web(&repo)?;
    let mut plan = detect_stack(&repo)?;
    if let Some(web) = procfile {
        if plan.stack == Stack::Node && plan.publish_dir.is_some() {
            // A web process means the app serves itself: run it with Node
            // instead of serving the build output with nginx.
            plan.runtime_image = None;
            plan.publish_dir = None;
            plan.port = Some(node::PORT);
            plan.env = node::env();
        }
        plan.start = Some(web);
        plan.reason
            .push_str("; start command from the Procfile's web line");
    }
    Ok(plan)
}

fn detect_stack(repo: &Repo) -> Result<BuildPlan, DetectError> {
    // A package.json that does not start a server (no start script, main
    // or server file) only builds another stack's front-end or holds
    // tooling, e.g. Laravel or Rails with Vite/esbuild: it must not hide
    // that stack, so the Node plan is kept as a fallback.
    let mut node_fallback = None;
    if let Some(found) = node::detect(repo)? {
        if found.serves_itself {
            return Ok(found.plan);
        }
        node_fallback = Some(found.plan);
    }
    let others = [
        python::detect,
        go::detect,
        rust::detect,
        ruby::detect,
        php::detect,
        java::detect,
    ];
    for detector in others {
        if let Some(mut plan) = detector(repo)? {
            if node_fallback.as_ref().is_some_and(|n| n.build.is_some()) {
                plan.reason.push_str(
                    "; package.json's build script is not run (no Node in this image): \
                     add it to `build` with a base image that has Node, or use build type \"dockerfile\"",
                );
            }
            return Ok(plan);
        }
    }
    // A package.json that neither serves nor builds a site (linters,
    // formatters) must not hide plain HTML either.
    match (node_fallback, static_site::detect(repo)?) {
        (Some(node), _) if node.publish_dir.is_some() => return Ok(node),
        (node, Some(mut site)) => {
            if node.is_some() {
                site.reason.push_str(
                    "; package.json has no start script, server file or front-end build, so its scripts are not run",
                );
            }
            return Ok(site);
        }
        (Some(node), None) => return Ok(node),
        (None, None) => {}
    }
    Err(DetectError::NothingFound(format!(
        "found nothing to build automatically: looked for {LOOKED_FOR}; \
         use build type \"dockerfile\" with a Dockerfile in the repository, or \"static\" to publish its files as they are"
    )))
}

/// The command of the `web:` line of a `Procfile`, if any.
fn procfile_web(repo: &Repo) -> Result<Option<String>, DetectError> {
    let Some(text) = repo.read("Procfile")? else {
        return Ok(None);
    };
    Ok(text.lines().find_map(|line| {
        let (name, command) = line.split_once(':')?;
        let command = command.trim();
        (name.trim() == "web" && !command.is_empty()).then(|| command.to_string())
    }))
}

impl BuildPlan {
    /// An empty plan for `stack` on `base_image`.
    fn new(stack: Stack, base_image: impl Into<String>) -> Self {
        BuildPlan {
            stack,
            reason: String::new(),
            base_image: base_image.into(),
            runtime_image: None,
            setup: None,
            manifests: Vec::new(),
            install: None,
            build: None,
            start: None,
            port: None,
            publish_dir: None,
            env: BTreeMap::new(),
        }
    }

    /// The plan with the app's overrides applied: a given command replaces
    /// the detected one (an empty one removes the step); a given base image
    /// replaces the build stage's image. In multi-stage stacks an
    /// overriding `build` must still leave what runs in `/out`.
    pub fn with_overrides(mut self, o: &PlanOverrides) -> BuildPlan {
        fn command(slot: &mut Option<String>, given: &Option<String>) {
            if let Some(given) = given {
                let given = given.trim();
                *slot = (!given.is_empty()).then(|| given.to_string());
            }
        }
        if let Some(image) = &o.base_image {
            let image = image.trim();
            if !image.is_empty() && !image.contains(char::is_whitespace) {
                self.base_image = image.to_string();
            }
        }
        command(&mut self.install, &o.install);
        command(&mut self.build, &o.build);
        command(&mut self.start, &o.start);
        self
    }

    /// A complete Dockerfile for this plan: dependency manifests are copied
    /// first so the install layer is cached between builds, the app runs
    /// as a non-root user where the image has or can create one, `CMD` is
    /// the shell form of `start`, and Go, Rust, Java and static front-end
    /// builds are multi-stage. Uses no BuildKit-only syntax.
    pub fn dockerfile(&self) -> String {
        dockerfile::render(self)
    }
}

/// Adds `note` to a reason, separated by "; ".
fn note(reason: &mut String, note: impl AsRef<str>) {
    if !reason.is_empty() {
        reason.push_str("; ");
    }
    reason.push_str(note.as_ref());
}

/// `parts` joined with " && ", or `None` when empty.
fn and_then_all(parts: Vec<String>) -> Option<String> {
    (!parts.is_empty()).then(|| parts.join(" && "))
}

/// `apt-get install` of `packages` with the list cleanup, for Debian images.
fn apt_install(packages: &[&str]) -> String {
    format!(
        "apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*",
        packages.join(" ")
    )
}
