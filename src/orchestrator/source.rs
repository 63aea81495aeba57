//! The build step of a deployment of an app from source: open the app's
//! vault, check out and build, record the commit, and keep every secret
//! value out of the deployment's log.

use tokio_util::sync::CancellationToken;

use super::deploy::DeployError;
use super::Orchestrator;
use crate::builds::{BuildError, BuildRequest, Built, Credentials};
use crate::store::{DeploymentRecord, Phase};
use crate::vault::Vault;

/// Secret values shorter than this are not scrubbed from logs (they would
/// blank out ordinary words); validation asks for real tokens anyway.
const MIN_SCRUBBED: usize = 4;

impl Orchestrator {
    /// Checks out and builds the deployment's source; the commit and the
    /// built image tag are recorded on the deployment.
    pub(super) async fn build_source(
        &self,
        record: &DeploymentRecord,
        cancel: &CancellationToken,
    ) -> Result<Built, DeployError> {
        let spec = &record.spec;
        let (Some(source), Some(build)) = (&spec.source, &spec.build) else {
            return Err(DeployError::Build(BuildError::Invalid {
                field: "source",
                message: "the app has no source to build".into(),
            }));
        };
        let app = self.inner.store.app(&record.app)?;
        let vault = Vault::open(&self.inner.secrets, app.vault.as_deref())?;
        let secrets: Vec<String> = vault
            .input
            .git_token
            .iter()
            .chain(vault.input.build.values())
            .filter(|v| v.len() >= MIN_SCRUBBED)
            .cloned()
            .collect();
        let log = self.inner.logs.open(&record.id);
        let scrub = |text: &str| {
            let mut text = text.to_string();
            for s in &secrets {
                if text.contains(s.as_str()) {
                    text = text.replace(s.as_str(), "<redacted>");
                }
            }
            text
        };
        let push = |line: &str| log.push(&scrub(line));
        // A deployment queued with a commit (the one a push announced, or
        // the one that served before a restart) builds exactly that commit,
        // whatever the branch or tag points to by now.
        let mut pinned = source.clone();
        if let Some(commit) = record.commit.as_deref().filter(|c| is_commit_id(c)) {
            pinned.commit = Some(commit.to_string());
        }
        let request = BuildRequest {
            app: &record.app,
            deployment: &record.id,
            source: &pinned,
            build,
            credentials: Credentials {
                token: vault.input.git_token.clone(),
                ssh_key: vault.input.ssh_key.clone(),
            },
            secrets: vault.input.build.clone(),
        };
        let built = self
            .inner
            .builder
            .build(request, &push, cancel)
            .await
            .map_err(|e| match e {
                BuildError::Cancelled => DeployError::Cancelled,
                // The message ends up in the record and berth's log.
                BuildError::Failed(m) => DeployError::Build(BuildError::Failed(scrub(&m))),
                BuildError::Git(m) => DeployError::Build(BuildError::Git(scrub(&m))),
                e => DeployError::Build(e),
            })?;
        let (image, pushed) = match &built.artifact {
            crate::builds::Artifact::Image { tag, pushed, .. } => {
                (Some(tag.clone()), pushed.clone())
            }
            crate::builds::Artifact::Site => (None, None),
        };
        let _ = self.inner.store.update_deployment(&record.id, |d| {
            d.commit = Some(built.commit.clone());
            d.commit_message = Some(built.subject.clone());
            if let Some(tag) = &image {
                d.image = tag.clone();
            }
            d.pushed_image = pushed.clone();
            d.reached(Phase::Built);
        });
        Ok(built)
    }
}

/// A full commit id (40 hex digits for SHA-1, 64 for SHA-256 repositories).
fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}
