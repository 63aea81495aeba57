//! Image builds on the Docker engine: the classic builder (live log, CPU
//! and memory limits) for Dockerfiles without secrets, BuildKit (through
//! the engine's session API) for those with build secrets, pushing to a
//! registry, and reading a directory out of a built image.

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

use crate::engine::{BuildLog, EngineError, ImageBuild, Push, LABEL_INSTANCE};

/// Builds with the classic builder, streaming its output to `log`;
/// returns the image id.
pub async fn classic(
    docker: &Docker,
    build: &ImageBuild<'_>,
    context: Bytes,
    log: BuildLog<'_>,
    cancel: &CancellationToken,
) -> Result<String, EngineError> {
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
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
            item = stream.next() => item,
        };
        let Some(item) = item else { break };
        let info = item.map_err(|e| match e {
            bollard::errors::Error::DockerStreamError { error } => EngineError::BuildFailed(error),
            e => EngineError::Docker(e.to_string()),
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
    image.ok_or_else(|| EngineError::BuildFailed("the engine reported no image id".into()))
}

/// Builds with BuildKit through the engine's session API, which is what
/// mounts build secrets (`RUN --mount=type=secret,id=…`) without writing
/// them to a layer. The engine reports no step output on this path; a
/// failure carries BuildKit's message. Returns the image id.
pub async fn buildkit(
    docker: &Docker,
    build: &ImageBuild<'_>,
    context: Bytes,
    log: BuildLog<'_>,
    cancel: &CancellationToken,
) -> Result<String, EngineError> {
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
            .map_err(|e| EngineError::Io(format!("cannot start the BuildKit session: {e}")))?;
        runtime.block_on(async move {
            let client = Docker::connect_with_local_defaults()
                .map_err(|e| EngineError::Docker(e.to_string()))?
                .negotiate_version()
                .await
                .map_err(|e| EngineError::Docker(e.to_string()))?;
            let driver = Moby::new(&client);
            let run = driver.docker_build(
                &tag,
                options,
                ImageBuildLoadInput::Upload(context),
                None,
                None,
            );
            tokio::select! {
                _ = stop.cancelled() => Err(EngineError::Cancelled),
                r = run => r.map_err(|e| EngineError::BuildFailed(format!("BuildKit: {e}"))),
            }
        })
    });
    session
        .await
        .map_err(|e| EngineError::Io(format!("the BuildKit session ended abnormally: {e}")))??;
    let image = docker
        .inspect_image(build.tag)
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
    image
        .id
        .ok_or_else(|| EngineError::BuildFailed("the built image has no id".into()))
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
    log: BuildLog<'_>,
    cancel: &CancellationToken,
) -> Result<String, EngineError> {
    let repo = format!("{}/{app}", to.prefix);
    let reference = format!("{repo}:{tag}");
    docker
        .tag_image(
            local,
            Some(TagImageOptionsBuilder::new().repo(&repo).tag(tag).build()),
        )
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
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
                result = Err(EngineError::Cancelled);
                break;
            }
            item = stream.next() => item,
        };
        let Some(item) = item else { break };
        match item {
            Ok(info) => {
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    result = Err(EngineError::Push(message));
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
                result = Err(EngineError::Push(e.to_string()));
                break;
            }
        }
    }
    let _ = docker
        .remove_image(&reference, None::<RemoveImageOptions>, None)
        .await;
    result.map(|()| reference)
}

/// Directory `path` of `image` as a tar archive of at most `cap` bytes,
/// read through a container that is created, never started, and removed
/// (also when this future is dropped; it carries the instance label, so a
/// restart's reconcile removes it if berth dies first).
pub async fn export_dir(
    docker: &Docker,
    instance: &str,
    image: &str,
    path: &str,
    cap: u64,
) -> Result<Vec<u8>, EngineError> {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["/berth-none".to_string()]),
        labels: Some(HashMap::from([(
            LABEL_INSTANCE.to_string(),
            instance.to_string(),
        )])),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().build()), body)
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
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
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| EngineError::Unreadable(e.to_string()))?;
        archive.extend_from_slice(&chunk);
        if archive.len() as u64 > cap {
            return Err(EngineError::TooLarge(cap));
        }
    }
    Ok(archive)
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
