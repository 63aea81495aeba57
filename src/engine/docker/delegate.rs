//! [`ContainerEngine`] for [`DockerEngine`]: each method boxes the
//! inherent one of the same name (or the build module's function).

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{build, DockerEngine};
use crate::engine::{
    BuildLog, Container, ContainerEngine, ContainerEvent, EngineError, ImageBuild, LogFrame,
    LogLine, LogRange, Push, ReplicaConfig, ReplicaState,
};

impl ContainerEngine for DockerEngine {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn network(&self) -> &str {
        &self.network
    }

    fn ensure_network(&self) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(DockerEngine::ensure_network(self))
    }

    fn repair_networks(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(DockerEngine::repair_networks(self))
    }

    fn ensure_image<'a>(
        &'a self,
        reference: &'a str,
        deadline: Duration,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(DockerEngine::ensure_image(
            self, reference, deadline, cancel,
        ))
    }

    fn start_replica<'a>(
        &'a self,
        config: ReplicaConfig<'a>,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(DockerEngine::start_replica(self, config))
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::start(self, id))
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::stop(self, id, grace))
    }

    fn remove<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::remove(self, id, grace))
    }

    fn replica_state<'a>(
        &'a self,
        id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<ReplicaState, EngineError>> {
        Box::pin(DockerEngine::replica_state(self, id, port))
    }

    fn instance_containers(&self) -> BoxFuture<'_, Result<Vec<Container>, EngineError>> {
        Box::pin(DockerEngine::instance_containers(self))
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
    ) -> BoxFuture<'a, Result<Vec<LogLine>, EngineError>> {
        Box::pin(DockerEngine::logs(self, id, tail))
    }

    fn log_frames(
        &self,
        id: &str,
        range: &LogRange,
    ) -> BoxStream<'static, Result<LogFrame, EngineError>> {
        DockerEngine::log_frames(self, id, range).boxed()
    }

    fn container_events(&self) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        DockerEngine::container_events(self).boxed()
    }

    fn local_image<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, EngineError>> {
        Box::pin(DockerEngine::local_image(self, reference))
    }

    fn tag<'a>(
        &'a self,
        id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::tag(self, id, reference))
    }

    fn built_images<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(DockerEngine::built_images(self, app))
    }

    fn remove_image<'a>(
        &'a self,
        id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::remove_image(self, id, force))
    }

    fn ensure_volume<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(DockerEngine::ensure_volume(self, app, name))
    }

    fn app_volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(DockerEngine::app_volumes(self, app))
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(DockerEngine::remove_volume(self, name))
    }

    fn build_image<'a>(
        &'a self,
        build: &'a ImageBuild<'a>,
        context: Bytes,
        log: BuildLog<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            if build.secrets.is_empty() {
                build::classic(&self.docker, build, context, log, cancel).await
            } else {
                build::buildkit(&self.docker, build, context, log, cancel).await
            }
        })
    }

    fn push_image<'a>(
        &'a self,
        to: &'a Push<'a>,
        local: &'a str,
        app: &'a str,
        tag: &'a str,
        log: BuildLog<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(build::push(&self.docker, to, local, app, tag, log, cancel))
    }

    fn export_dir<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>> {
        Box::pin(build::export_dir(
            &self.docker,
            &self.instance,
            image,
            path,
            cap,
        ))
    }
}
