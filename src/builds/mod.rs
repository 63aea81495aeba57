//! Builds of apps from source: check out the git source, then build an
//! image from its Dockerfile or from a detected plan, or collect the files
//! of a static site. Builds are bounded so they cannot take the host down:
//! at most `[build] concurrency` at once, CPU and memory limits on every
//! build step, one deadline for checkout plus build, and cancellation
//! that aborts the engine's build.

pub mod detect;
pub mod git;
mod image;
mod publish;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_config::{BuildKind, BuildSettings, BuildSpec, GitSource};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use git::{Credentials, RemoteRefs};

use crate::engine::{ContainerEngine, EngineError, ImageBuild, Push};
use publish::copy_tree;

/// Why a build failed; messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// git could not check the source out.
    #[error("{0}")]
    Git(String),
    /// The repository does not fit the app's build settings.
    #[error("{field}: {message}")]
    Invalid {
        /// The field of the app to change.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The build itself failed (a step exited non-zero, bad Dockerfile).
    #[error("build failed: {0}")]
    Failed(String),
    /// The engine refused a call.
    #[error("docker: {0}")]
    Docker(String),
    /// A local file operation failed.
    #[error("{0}")]
    Io(String),
    /// Checkout plus build ran past `[build] timeout_secs`.
    #[error("the build did not finish within {}s ([build] timeout_secs)", .0.as_secs())]
    Timeout(Duration),
    /// The deployment was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Pushing the built image to `[build] registry` failed.
    #[error("pushing to the registry ([build] registry) failed: {0}")]
    Push(String),
}

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Cancelled => BuildError::Cancelled,
            EngineError::BuildFailed(m) => BuildError::Failed(m),
            EngineError::Push(m) => BuildError::Push(m),
            EngineError::Io(m) => BuildError::Io(m),
            e @ (EngineError::Docker(_)
            | EngineError::Timeout { .. }
            | EngineError::Unreadable(_)
            | EngineError::TooLarge(_)) => BuildError::Docker(e.to_string()),
        }
    }
}

/// What one build is for.
pub struct BuildRequest<'a> {
    /// The app.
    pub app: &'a str,
    /// The deployment it is built for (its tag).
    pub deployment: &'a str,
    /// The source.
    pub source: &'a GitSource,
    /// How to build.
    pub build: &'a BuildSpec,
    /// Git credentials.
    pub credentials: Credentials,
    /// Build secrets by name.
    pub secrets: std::collections::BTreeMap<String, String>,
}

/// What a build produced.
#[derive(Debug)]
pub enum Artifact {
    /// An image, tagged for the deployment.
    Image {
        /// Image id.
        id: String,
        /// Tag, `berth-<instance>/<app>:<deployment>`.
        tag: String,
        /// Where it was pushed (`[build] registry`), if anywhere.
        pushed: Option<String>,
    },
    /// The files of a static site, in the deployment's site directory
    /// ([`Builder::site_dir`]).
    Site,
}

/// The result of a build.
#[derive(Debug)]
pub struct Built {
    /// What was built.
    pub artifact: Artifact,
    /// The commit it was built from.
    pub commit: String,
    /// The commit's subject line.
    pub subject: String,
}

/// Runs builds; cheap to clone.
#[derive(Clone)]
pub struct Builder {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn ContainerEngine>,
    instance: String,
    settings: BuildSettings,
    permits: Semaphore,
    /// Checkouts live here while they build.
    work_dir: PathBuf,
    /// Files of static sites, `<sites>/<app>/<deployment>`.
    sites_dir: PathBuf,
    /// The password of `[build] registry`, read at start.
    registry_password: Option<String>,
}

impl Builder {
    /// A builder on `engine` keeping its files under `data_dir`.
    pub fn new(
        engine: Arc<dyn ContainerEngine>,
        settings: BuildSettings,
        data_dir: &Path,
    ) -> std::io::Result<Self> {
        let work_dir = data_dir.join("builds");
        let sites_dir = data_dir.join("sites");
        // Leftovers of builds a previous process was running.
        let _ = std::fs::remove_dir_all(&work_dir);
        std::fs::create_dir_all(&work_dir)?;
        std::fs::create_dir_all(&sites_dir)?;
        let registry_password = match settings
            .registry
            .as_ref()
            .and_then(|r| r.password_file.as_ref())
        {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("build.registry_password_file {}: {e}", path.display()),
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                instance: engine.instance().to_string(),
                engine,
                permits: Semaphore::new(settings.concurrency),
                settings,
                work_dir,
                sites_dir,
                registry_password,
            }),
        })
    }

    /// Where the files of `app`'s deployment `site` are.
    pub fn site_dir(&self, app: &str, site: &str) -> PathBuf {
        self.inner.sites_dir.join(app).join(site)
    }

    /// The largest static site, in bytes.
    pub fn max_site_bytes(&self) -> u64 {
        self.inner.settings.max_site_bytes
    }

    /// Removes the site directories of `app` except `keep`.
    pub fn prune_sites(&self, app: &str, keep: &[String]) {
        let Ok(entries) = std::fs::read_dir(self.inner.sites_dir.join(app)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Removes every site directory of `app`.
    pub fn forget_app(&self, app: &str) {
        let _ = std::fs::remove_dir_all(self.inner.sites_dir.join(app));
    }

    /// Lists the branches and tags of a source (the "test connection").
    pub async fn remote_refs(
        &self,
        source: &GitSource,
        credentials: &Credentials,
    ) -> Result<RemoteRefs, BuildError> {
        let private = self.private_dir()?;
        let git = git::Git::new(source, credentials, private.path(), Duration::from_secs(30));
        git.remote_refs(&CancellationToken::new()).await
    }

    /// Checks the source out and returns the plan an `auto` build would
    /// follow, with the app's overrides applied, and its Dockerfile.
    pub async fn plan(
        &self,
        source: &GitSource,
        build: &BuildSpec,
        credentials: &Credentials,
    ) -> Result<(detect::BuildPlan, String), BuildError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| BuildError::Cancelled)?;
        let private = self.private_dir()?;
        let git = git::Git::new(
            source,
            credentials,
            private.path(),
            Duration::from_secs(120),
        );
        let checkout = git
            .checkout(
                &private.path().join("src"),
                &|_| {},
                &CancellationToken::new(),
            )
            .await?;
        let context = match &source.path {
            Some(p) => checkout.root.join(p),
            None => checkout.root.clone(),
        };
        let plan = detect::detect(&context)
            .map_err(|e| BuildError::Invalid {
                field: "build.type",
                message: e.to_string(),
            })?
            .with_overrides(&build.plan);
        let dockerfile = plan.dockerfile();
        Ok((plan, dockerfile))
    }

    /// Removes a tag berth made (and the image with its last tag); a
    /// failure only leaves an image behind.
    async fn untag(&self, tag: &str) {
        let _ = self.inner.engine.remove_image(tag, false).await;
    }

    fn private_dir(&self) -> Result<tempfile::TempDir, BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("private-")
            .tempdir_in(&self.inner.work_dir)
            .map_err(|e| BuildError::Io(format!("cannot create a build directory: {e}")))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| BuildError::Io(e.to_string()))?;
        Ok(dir)
    }

    /// Checks out and builds; waits for a build slot first. `log` gets
    /// every line of progress.
    pub async fn build(
        &self,
        request: BuildRequest<'_>,
        log: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Built, BuildError> {
        let _permit = match self.inner.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                log("waiting for a build slot ([build] concurrency)");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(BuildError::Cancelled),
                    p = self.inner.permits.acquire() => p.map_err(|_| BuildError::Cancelled)?,
                }
            }
        };
        let timeout = self.inner.settings.timeout;
        // Dropping the build on its deadline cancels this token too, which
        // is what stops work outside this future (the BuildKit session).
        let scope = cancel.child_token();
        let _stop = scope.clone().drop_guard();
        match tokio::time::timeout(timeout, self.build_now(&request, log, &scope)).await {
            Ok(result) => result,
            Err(_) => Err(BuildError::Timeout(timeout)),
        }
    }

    async fn build_now(
        &self,
        request: &BuildRequest<'_>,
        log: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Built, BuildError> {
        let private = self.private_dir()?;
        let checkout_dir = private.path().join("src");
        let git = git::Git::new(
            request.source,
            &request.credentials,
            private.path(),
            self.inner.settings.timeout,
        );
        let checkout = git.checkout(&checkout_dir, log, cancel).await?;
        let root = checkout
            .root
            .canonicalize()
            .map_err(|e| BuildError::Io(format!("cannot read the checkout: {e}")))?;
        let context = match &request.source.path {
            Some(p) => inside(&root, p, "source.path")?,
            None => root.clone(),
        };
        if !context.is_dir() {
            return Err(BuildError::Invalid {
                field: "source.path",
                message: format!(
                    "{:?} is not a directory of the repository at {}; give the sub-directory to build",
                    request.source.path.as_deref().unwrap_or(""),
                    short(&checkout.commit)
                ),
            });
        }
        let build = request.build;
        let artifact = match build.kind {
            BuildKind::Dockerfile => {
                let dockerfile = build.dockerfile.as_deref().unwrap_or("Dockerfile");
                let source = DockerfileSource::Repository(dockerfile);
                self.build_image(request, &context, source, private.path(), log, cancel)
                    .await?
            }
            BuildKind::Auto => {
                let plan = detect::detect(&context).map_err(|e| BuildError::Invalid {
                    field: "build.type",
                    message: e.to_string(),
                })?;
                let plan = plan.with_overrides(&build.plan);
                log(&format!(
                    "detected {:?}: {}; plan: base {}, install {:?}, build {:?}, start {:?}",
                    plan.stack, plan.reason, plan.base_image, plan.install, plan.build, plan.start
                ));
                let source = DockerfileSource::Generated(plan.dockerfile());
                self.build_image(request, &context, source, private.path(), log, cancel)
                    .await?
            }
            BuildKind::Static => {
                let dest = self.site_dir(request.app, request.deployment);
                let _ = tokio::fs::remove_dir_all(&dest).await;
                match &build.dockerfile {
                    Some(dockerfile) => {
                        let source = DockerfileSource::Repository(dockerfile);
                        let Artifact::Image { id, tag, .. } = self
                            .build_image(request, &context, source, private.path(), log, cancel)
                            .await?
                        else {
                            return Err(BuildError::Failed("no image was built".into()));
                        };
                        let dir = build.publish_dir.as_deref().unwrap_or("site");
                        log(&format!("copying /{dir} out of the built image"));
                        let copied = image::copy_out(
                            self.inner.engine.as_ref(),
                            &id,
                            dir,
                            &dest,
                            self.inner.settings.max_site_bytes,
                        )
                        .await;
                        self.untag(&tag).await;
                        copied?;
                    }
                    None => {
                        let dir = publish_dir(&root, &context, build.publish_dir.as_deref())?;
                        log(&format!(
                            "publishing {}",
                            dir.strip_prefix(&root)
                                .map(|p| format!("/{}", p.display()))
                                .unwrap_or_default()
                        ));
                        let mut budget = self.inner.settings.max_site_bytes;
                        tokio::task::spawn_blocking(move || copy_tree(&dir, &dest, &mut budget))
                            .await
                            .map_err(|e| {
                                BuildError::Io(format!("copying the site failed: {e}"))
                            })??;
                    }
                }
                Artifact::Site
            }
        };
        Ok(Built {
            artifact,
            commit: checkout.commit,
            subject: checkout.subject,
        })
    }

    async fn build_image(
        &self,
        request: &BuildRequest<'_>,
        context: &Path,
        source: DockerfileSource<'_>,
        private: &Path,
        log: &(dyn Fn(&str) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Artifact, BuildError> {
        let (dockerfile, generated) = match source {
            DockerfileSource::Repository(path) => {
                let file = context.join(path);
                if !file.is_file() {
                    return Err(BuildError::Invalid {
                        field: "build.dockerfile",
                        message: format!(
                            "{path} is not in the repository's build context; add it, give its path, or use build type \"auto\""
                        ),
                    });
                }
                (path.to_string(), None)
            }
            // Sent only inside the context archive, never written into the
            // checkout (where a symlink of that name could point anywhere).
            DockerfileSource::Generated(text) => (GENERATED_DOCKERFILE.to_string(), Some(text)),
        };
        let dockerfile = dockerfile.as_str();
        let tag = format!(
            "berth-{}/{}:{}",
            self.inner.instance, request.app, request.deployment
        );
        let secrets_dir = private.join("secrets");
        let mut secrets = Vec::new();
        for name in &request.build.secrets {
            let Some(value) = request.secrets.get(name) else {
                return Err(BuildError::Invalid {
                    field: "build.secrets",
                    message: format!("the value of secret {name} is missing; set it again"),
                });
            };
            std::fs::create_dir_all(&secrets_dir).map_err(|e| BuildError::Io(e.to_string()))?;
            let path = secrets_dir.join(format!("{}", secrets.len()));
            write_private(&path, value.as_bytes())?;
            secrets.push((name.clone(), path));
        }
        let cpus = self.inner.settings.cpus.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores as f64 / 2.0).max(1.0)
        });
        let build = ImageBuild {
            dockerfile,
            tag: &tag,
            target: request.build.target.as_deref(),
            args: &request.build.args,
            secrets,
            cpus,
            memory_mb: self.inner.settings.memory_mb,
        };
        let dir = context.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || {
            let extra = generated.map(|text| (GENERATED_DOCKERFILE, text.into_bytes()));
            image::pack_context(&dir, extra)
        })
        .await
        .map_err(|e| BuildError::Io(format!("packing the build context failed: {e}")))??;
        log(&format!(
            "building {tag} from {dockerfile} ({} KiB context, {cpus} CPU, {} MiB)",
            tar.len() / 1024,
            self.inner.settings.memory_mb
        ));
        let id = self
            .inner
            .engine
            .build_image(&build, tar, log, cancel)
            .await?;
        log(&format!("built {tag} ({})", short(&id)));
        let pushed = match (&self.inner.settings.registry, request.build.kind) {
            (Some(registry), BuildKind::Dockerfile | BuildKind::Auto) => {
                let to = Push {
                    prefix: &registry.prefix,
                    credentials: registry
                        .username
                        .as_deref()
                        .zip(self.inner.registry_password.as_deref()),
                };
                let pushed = self
                    .inner
                    .engine
                    .push_image(&to, &tag, request.app, request.deployment, log, cancel)
                    .await
                    .map_err(BuildError::from);
                match pushed {
                    Ok(reference) => {
                        log(&format!("pushed {reference}"));
                        Some(reference)
                    }
                    Err(e) => {
                        self.untag(&tag).await;
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        Ok(Artifact::Image { id, tag, pushed })
    }
}

/// Name of a Dockerfile berth writes from a detected plan, inside the
/// context archive only.
const GENERATED_DOCKERFILE: &str = ".berth.Dockerfile";

/// Where the Dockerfile of a build comes from.
enum DockerfileSource<'a> {
    /// A file of the repository, relative to the context.
    Repository(&'a str),
    /// Text berth generated.
    Generated(String),
}

/// The first 12 characters of an id.
fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// Writes a file only berth can read.
fn write_private(path: &Path, content: &[u8]) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .map_err(|e| BuildError::Io(format!("cannot write a build secret file: {e}")))
}

/// `rel` under `root` (both canonical), following symlinks only while the
/// result stays inside the repository.
fn inside(root: &Path, rel: &str, field: &'static str) -> Result<PathBuf, BuildError> {
    let path = root.join(rel);
    let real = path.canonicalize().map_err(|_| BuildError::Invalid {
        field,
        message: format!("{rel:?} does not exist in the repository; give a directory that does"),
    })?;
    if !real.starts_with(root) {
        return Err(BuildError::Invalid {
            field,
            message: format!(
                "{rel:?} is a link that leads out of the repository; give a real directory"
            ),
        });
    }
    Ok(real)
}

/// The directory of a static site inside the context (and the checkout
/// `root`).
fn publish_dir(root: &Path, context: &Path, given: Option<&str>) -> Result<PathBuf, BuildError> {
    if let Some(dir) = given {
        let rel = context
            .strip_prefix(root)
            .unwrap_or(Path::new(""))
            .join(dir);
        let path = inside(root, &rel.to_string_lossy(), "build.publish_dir")?;
        return if path.is_dir() {
            Ok(path)
        } else {
            Err(BuildError::Invalid {
                field: "build.publish_dir",
                message: format!("{dir:?} is not a directory of the repository; give the directory with index.html"),
            })
        };
    }
    for candidate in ["dist", "build", "public", "out", "_site"] {
        let path = context.join(candidate);
        if path.join("index.html").is_file() {
            if let Ok(real) = path.canonicalize() {
                if real.starts_with(root) {
                    return Ok(real);
                }
            }
        }
    }
    Ok(context.to_path_buf())
}
