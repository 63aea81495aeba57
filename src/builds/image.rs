//! Image builds on the Docker engine: the build context as a tar stream,
//! the classic builder (live log, CPU and memory limits) for Dockerfiles
//! without secrets, BuildKit (through the engine's session API) for those
//! with build secrets, and copying a directory out of a built image.

use std::collections::HashMap;
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::grpc::build::{ImageBuildFrontendOptions, ImageBuildLoadInput, SecretSource};
use bollard::grpc::driver::moby::Moby;
use bollard::grpc::driver::Build as _;
use bollard::models::{BuildInfoAux, ContainerCreateBody};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptions, TagImageOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::publish::{site_too_large, unpack_site};
use super::BuildError;

/// Largest build context berth sends to the engine.
pub const MAX_CONTEXT_BYTES: u64 = 1 << 30;
/// Largest `.dockerignore` read.
const MAX_IGNORE_BYTES: u64 = 1 << 20;

/// One image build.
pub struct ImageBuild<'a> {
    /// Dockerfile path relative to the context.
    pub dockerfile: &'a str,
    /// Tag of the result.
    pub tag: &'a str,
    /// Stage to build.
    pub target: Option<&'a str>,
    /// Build arguments.
    pub args: &'a std::collections::BTreeMap<String, String>,
    /// Build secrets by id, as files only berth can read.
    pub secrets: Vec<(String, std::path::PathBuf)>,
    /// CPU cores the build may use.
    pub cpus: f64,
    /// Memory per build step, in MiB.
    pub memory_mb: u64,
}

/// Packs `dir` as a tar archive for the engine; `.git` is left out, and
/// so is whatever `.dockerignore` lists (simple patterns: globs relative
/// to the context, `!` re-includes). `extra` (name, content) is added as a
/// file, replacing any entry of that name. Symlinks are packed as links.
/// Blocking: run it off the async threads.
pub fn pack_context(dir: &Path, extra: Option<(&str, Vec<u8>)>) -> Result<Bytes, BuildError> {
    let ignore = DockerIgnore::read(dir);
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", current.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| BuildError::Io(e.to_string()))?;
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(dir) else {
                continue;
            };
            let rel_s = rel.to_string_lossy();
            let replaced = extra.as_ref().is_some_and(|(name, _)| rel_s == *name);
            if rel_s == ".git" || replaced || ignore.excludes(&rel_s) {
                continue;
            }
            let meta = entry
                .file_type()
                .map_err(|e| BuildError::Io(e.to_string()))?;
            if meta.is_dir() {
                builder
                    .append_dir(rel, &path)
                    .map_err(|e| BuildError::Io(e.to_string()))?;
                stack.push(path);
            } else {
                if meta.is_file() {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if total > MAX_CONTEXT_BYTES {
                        return Err(BuildError::Invalid {
                            field: "source.path",
                            message: format!(
                                "the build context is larger than {} GiB; add a .dockerignore or give a smaller path",
                                MAX_CONTEXT_BYTES >> 30
                            ),
                        });
                    }
                }
                builder
                    .append_path_with_name(&path, rel)
                    .map_err(|e| BuildError::Io(format!("cannot pack {rel_s}: {e}")))?;
            }
        }
    }
    if let Some((name, content)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content.as_slice())
            .map_err(|e| BuildError::Io(e.to_string()))?;
    }
    let bytes = builder
        .into_inner()
        .map_err(|e| BuildError::Io(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

/// The patterns of a `.dockerignore`.
struct DockerIgnore {
    rules: Vec<(globset::GlobMatcher, bool)>,
}

impl DockerIgnore {
    fn read(dir: &Path) -> Self {
        // A regular file of sane size only (not a link to /dev/zero).
        let path = dir.join(".dockerignore");
        let regular = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_IGNORE_BYTES);
        let text = if regular {
            std::fs::read_to_string(&path).unwrap_or_default()
        } else {
            String::new()
        };
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (include, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, l),
                };
                let pat = pat.trim_start_matches("./").trim_start_matches('/');
                let pat = pat.trim_end_matches('/');
                globset::GlobBuilder::new(pat)
                    .literal_separator(true)
                    .build()
                    .ok()
                    .map(|g| (g.compile_matcher(), include))
            })
            .collect();
        Self { rules }
    }

    /// Whether `rel` (or a directory above it) is excluded; the last
    /// matching rule wins, as in Docker.
    fn excludes(&self, rel: &str) -> bool {
        let mut excluded = false;
        for (glob, include) in &self.rules {
            let hit = glob.is_match(rel)
                || rel
                    .match_indices('/')
                    .any(|(i, _)| glob.is_match(&rel[..i]));
            if hit {
                excluded = !include;
            }
        }
        excluded
    }
}

/// Builds with the classic builder, streaming its output to `log`;
/// returns the image id.
pub async fn build_classic(
    docker: &Docker,
    build: &ImageBuild<'_>,
    context: Bytes,
    log: &(dyn Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<String, BuildError> {
    let memory = i32::try_from(build.memory_mb << 20).unwrap_or(i32::MAX);
    let period = 100_000i32;
    let options = BuildImageOptions {
        dockerfile: build.dockerfile.to_string(),
        t: Some(build.tag.to_string()),
        rm: true,
        forcerm: true,
        memory: Some(memory),
        memswap: Some(memory),
        cpuperiod: Some(period),
        cpuquota: Some((build.cpus * f64::from(period)).round() as i32),
        buildargs: Some(build.args.clone().into_iter().collect()),
        target: build.target.unwrap_or_default().to_string(),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context)));
    let mut image = None;
    let mut partial = String::new();
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
            item = stream.next() => item,
        };
        let Some(item) = item else { break };
        let info = item.map_err(|e| match e {
            bollard::errors::Error::DockerStreamError { error } => BuildError::Failed(error),
            e => BuildError::Docker(e.to_string()),
        })?;
        if let Some(text) = info.stream {
            partial.push_str(&text);
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                let line = line.trim_end();
                if !line.is_empty() {
                    log(line);
                }
            }
        }
        if let Some(BuildInfoAux::Default(id)) = info.aux {
            image = id.id;
        }
    }
    if !partial.trim().is_empty() {
        log(partial.trim_end());
    }
    image.ok_or_else(|| BuildError::Failed("the engine reported no image id".into()))
}

/// Builds with BuildKit through the engine's session API, which is what
/// mounts build secrets (`RUN --mount=type=secret,id=…`) without writing
/// them to a layer. The engine reports no step output on this path; a
/// failure carries BuildKit's message. Returns the image id.
pub async fn build_buildkit(
    docker: &Docker,
    build: &ImageBuild<'_>,
    context: Bytes,
    log: &(dyn Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<String, BuildError> {
    let mut options = ImageBuildFrontendOptions::builder().dockerfile(Path::new(build.dockerfile));
    if let Some(target) = build.target {
        options = options.target(target);
    }
    for (key, value) in build.args {
        options = options.buildarg(key, value);
    }
    for (id, path) in &build.secrets {
        options = options.set_secret(id, &SecretSource::File(path.clone()));
    }
    log(&format!(
        "building with BuildKit ({} build secret(s) mounted, not stored); step output is not streamed on this path",
        build.secrets.len()
    ));
    // bollard's session future is not `Send`: it runs on a runtime of its
    // own on a blocking thread, with a client of its own (connections
    // belong to the runtime that made them), and the cancellation reaches
    // it there.
    let (tag, options) = (build.tag.to_string(), options.build());
    let stop = cancel.clone();
    let session = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BuildError::Io(format!("cannot start the BuildKit session: {e}")))?;
        runtime.block_on(async move {
            let client = Docker::connect_with_local_defaults()
                .map_err(|e| BuildError::Docker(e.to_string()))?
                .negotiate_version()
                .await
                .map_err(|e| BuildError::Docker(e.to_string()))?;
            let driver = Moby::new(&client);
            let run = driver.docker_build(
                &tag,
                options,
                ImageBuildLoadInput::Upload(context),
                None,
                None,
            );
            tokio::select! {
                _ = stop.cancelled() => Err(BuildError::Cancelled),
                r = run => r.map_err(|e| BuildError::Failed(format!("BuildKit: {e}"))),
            }
        })
    });
    session
        .await
        .map_err(|e| BuildError::Io(format!("the BuildKit session ended abnormally: {e}")))??;
    let image = docker
        .inspect_image(build.tag)
        .await
        .map_err(|e| BuildError::Docker(e.to_string()))?;
    image
        .id
        .ok_or_else(|| BuildError::Failed("the built image has no id".into()))
}

/// Where and how to push.
pub struct Push<'a> {
    /// Repository prefix, e.g. `registry.example.com/team`.
    pub prefix: &'a str,
    /// Credentials, if the registry needs them.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// Tags `local` as `<prefix>/<app>:<tag>` and pushes it; the registry tag
/// is removed locally afterwards (the local tag keeps the image). Returns
/// the pushed reference.
pub async fn push(
    docker: &Docker,
    to: &Push<'_>,
    local: &str,
    app: &str,
    tag: &str,
    log: &(dyn Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<String, BuildError> {
    let repo = format!("{}/{app}", to.prefix);
    let reference = format!("{repo}:{tag}");
    docker
        .tag_image(
            local,
            Some(TagImageOptionsBuilder::new().repo(&repo).tag(tag).build()),
        )
        .await
        .map_err(|e| BuildError::Docker(e.to_string()))?;
    let credentials = to.credentials.map(|(user, password)| DockerCredentials {
        username: Some(user.to_string()),
        password: Some(password.to_string()),
        serveraddress: to.prefix.split('/').next().map(str::to_string),
        ..Default::default()
    });
    log(&format!("pushing {reference}"));
    let mut stream = docker.push_image(
        &repo,
        Some(PushImageOptionsBuilder::new().tag(tag).build()),
        credentials,
    );
    let mut result = Ok(());
    let mut last = String::new();
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => {
                result = Err(BuildError::Cancelled);
                break;
            }
            item = stream.next() => item,
        };
        let Some(item) = item else { break };
        match item {
            Ok(info) => {
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    result = Err(BuildError::Push(message));
                    break;
                }
                // Layer progress repeats; log each distinct status once.
                if let Some(line) = info.status {
                    if info.progress_detail.is_none_or(|p| p.current.is_none()) && line != last {
                        log(&line);
                        last = line;
                    }
                }
            }
            Err(e) => {
                result = Err(BuildError::Push(e.to_string()));
                break;
            }
        }
    }
    let _ = docker
        .remove_image(&reference, None::<RemoveImageOptions>, None)
        .await;
    result.map(|()| reference)
}

/// Copies directory `path` of `image` into `dest` (created), through a
/// container that is created, never started, and removed (also when this
/// future is dropped; it carries the instance label, so a restart's
/// reconcile removes it if berth dies first). Only directories and regular
/// files are copied, at most `max_bytes` of them.
pub async fn copy_out(
    docker: &Docker,
    instance: &str,
    image: &str,
    path: &str,
    dest: &Path,
    max_bytes: u64,
) -> Result<(), BuildError> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["/berth-none".to_string()]),
        labels: Some(HashMap::from([(
            crate::orchestrator::LABEL_INSTANCE.to_string(),
            instance.to_string(),
        )])),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().build()), body)
        .await
        .map_err(|e| BuildError::Docker(e.to_string()))?;
    let _remove = RemoveOnDrop {
        docker: docker.clone(),
        id: created.id.clone(),
    };
    let source = format!("/{}/.", path.trim_matches('/'));
    let mut stream = docker.download_from_container(
        &created.id,
        Some(
            DownloadFromContainerOptionsBuilder::new()
                .path(&source)
                .build(),
        ),
    );
    // Headers and padding add to the files' bytes; allow for them.
    let cap = max_bytes
        .saturating_add(max_bytes / 4)
        .saturating_add(16 << 20);
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BuildError::Invalid {
            field: "build.publish_dir",
            message: format!("{path:?} cannot be read from the built image ({e}); give the directory the Dockerfile writes the site to"),
        })?;
        archive.extend_from_slice(&chunk);
        if archive.len() as u64 > cap {
            return Err(site_too_large(max_bytes));
        }
    }
    let dest = dest.to_path_buf();
    let dir = path.to_string();
    tokio::task::spawn_blocking(move || unpack_site(&archive, &dest, &dir, max_bytes))
        .await
        .map_err(|e| BuildError::Io(format!("unpacking the site failed: {e}")))?
}

/// Removes a helper container when dropped.
struct RemoveOnDrop {
    docker: Docker,
    id: String,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let remove = RemoveContainerOptionsBuilder::new().force(true).build();
                let _ = docker.remove_container(&id, Some(remove)).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_leaves_out_git_and_dockerignore_matches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("Dockerfile", "FROM scratch"),
            (".git/HEAD", "ref"),
            ("src/main.rs", "fn main() {}"),
            ("target/debug/big", "x"),
            ("logs/a.log", "x"),
            ("logs/keep.log", "x"),
            (".dockerignore", "target\nlogs/*.log\n!logs/keep.log\n"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let bytes =
            pack_context(root, Some((".berth.Dockerfile", b"FROM scratch".to_vec()))).unwrap();
        let mut archive = tar::Archive::new(bytes.as_ref());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.contains(&"Dockerfile".to_string()), "{names:?}");
        assert!(
            names.contains(&".berth.Dockerfile".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"src/main.rs".to_string()), "{names:?}");
        assert!(names.contains(&"logs/keep.log".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with(".git")), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("target")), "{names:?}");
        assert!(!names.contains(&"logs/a.log".to_string()), "{names:?}");
    }
}
