//! An app's mounts on the engine: its named volumes (created and labelled
//! by berth as `berth-<instance>.<app>.<name>`, kept across deployments,
//! removed only when asked), host paths when the server allows them, and
//! file mounts packed into a tar archive that is written into each replica
//! before it starts.

use crate::engine::{ContainerEngine, EngineError, EngineMount, MountKind};
use berth_config::{AppSpec, Mount};

/// What a replica mounts, ready for the engine.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Volumes and host paths.
    pub mounts: Vec<EngineMount>,
    /// The file mounts as one tar archive to extract at `/`, if any.
    pub files: Option<Vec<u8>>,
}

/// Why an app's mounts could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A bind mount on a server that does not allow them.
    #[error("mounts[{0}] mounts a host path, which this server does not allow; set [deploy] allow_bind_mounts = true in berth's config, or use a volume")]
    BindNotAllowed(usize),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The volumes of this instance (of one app, or of all).
pub struct Volumes<'a> {
    engine: &'a dyn ContainerEngine,
}

impl<'a> Volumes<'a> {
    /// The instance's volumes on `engine`.
    pub fn new(engine: &'a dyn ContainerEngine) -> Self {
        Self { engine }
    }

    /// Creates the app's volumes that do not exist yet, checks bind mounts
    /// against `allow_bind`, and packs the file mounts.
    pub async fn prepare(&self, spec: &AppSpec, allow_bind: bool) -> Result<Prepared, MountError> {
        let mut prepared = Prepared::default();
        for (i, mount) in spec.mounts.iter().enumerate() {
            match mount {
                Mount::Volume {
                    name,
                    path,
                    read_only,
                } => {
                    let source = self.engine.ensure_volume(&spec.name, name).await?;
                    prepared.mounts.push(EngineMount {
                        kind: MountKind::Volume,
                        source,
                        target: path.clone(),
                        read_only: *read_only,
                    });
                }
                Mount::Bind {
                    host_path,
                    path,
                    read_only,
                } => {
                    if !allow_bind {
                        return Err(MountError::BindNotAllowed(i));
                    }
                    prepared.mounts.push(EngineMount {
                        kind: MountKind::Bind,
                        source: host_path.clone(),
                        target: path.clone(),
                        read_only: *read_only,
                    });
                }
                Mount::File { .. } => {}
            }
        }
        prepared.files = files_archive(&spec.mounts)
            .map_err(|e| EngineError::Docker(format!("packing the file mounts: {e}")))?;
        Ok(prepared)
    }

    /// Removes the app's volumes (their data is gone); returns their names.
    pub async fn remove_of_app(&self, app: &str) -> Result<Vec<String>, EngineError> {
        let names = self.engine.app_volumes(app).await?;
        for name in &names {
            self.engine.remove_volume(name).await?;
        }
        Ok(names)
    }
}

/// The file mounts as a tar archive rooted at `/` (owned by root, with
/// their modes); `None` without file mounts. Parent directories are made
/// by the engine when missing; existing ones keep their permissions.
pub fn files_archive(mounts: &[Mount]) -> std::io::Result<Option<Vec<u8>>> {
    let files: Vec<(&str, &str, u32)> = mounts
        .iter()
        .filter_map(|m| match m {
            Mount::File {
                path,
                content,
                mode,
            } => Some((path.as_str(), content.as_str(), *mode)),
            _ => None,
        })
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let mut archive = tar::Builder::new(Vec::new());
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        archive.append_data(
            &mut header,
            path.trim_start_matches('/'),
            content.as_bytes(),
        )?;
    }
    archive.into_inner().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::volume_name;

    #[test]
    fn volume_names_cannot_collide_across_apps() {
        assert_eq!(volume_name("prod", "web", "data"), "berth-prod.web.data");
        // App names have no '.', so the app ends at the first one.
        assert_ne!(volume_name("i", "a-b", "c"), volume_name("i", "a", "b-c"));
    }

    #[test]
    fn file_mounts_pack_with_their_modes_and_nothing_else() {
        let mounts = vec![
            Mount::Volume {
                name: "d".into(),
                path: "/d".into(),
                read_only: false,
            },
            Mount::File {
                path: "/etc/app/config.toml".into(),
                content: "a = 1\n".into(),
                mode: 0o440,
            },
        ];
        let bytes = files_archive(&mounts).unwrap().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, u64, String)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    text,
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![(
                "etc/app/config.toml".to_string(),
                0o440,
                0,
                "a = 1\n".to_string()
            )]
        );
        assert!(files_archive(&mounts[..1]).unwrap().is_none());
    }
}
