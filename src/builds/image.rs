//! What builds hand the engine and take back from it: the build context
//! as a tar archive (`.git` and `.dockerignore` matches left out), and a
//! directory read out of a built image unpacked as a static site.

use std::path::Path;

use bytes::Bytes;

use super::publish::{site_too_large, unpack_site};
use super::BuildError;
use crate::engine::{ContainerEngine, EngineError};

/// Largest build context berth sends to the engine.
pub const MAX_CONTEXT_BYTES: u64 = 1 << 30;
/// Largest `.dockerignore` read.
const MAX_IGNORE_BYTES: u64 = 1 << 20;

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

/// Copies directory `path` of `image` into `dest` (created), through a
/// helper container the engine removes. Only directories and regular files
/// are copied, at most `max_bytes` of them.
pub async fn copy_out(
    engine: &dyn ContainerEngine,
    image: &str,
    path: &str,
    dest: &Path,
    max_bytes: u64,
) -> Result<(), BuildError> {
    // Headers and padding add to the files' bytes; allow for them.
    let cap = max_bytes
        .saturating_add(max_bytes / 4)
        .saturating_add(16 << 20);
    let archive = engine
        .export_dir(image, path, cap)
        .await
        .map_err(|e| match e {
            EngineError::Unreadable(e) => BuildError::Invalid {
                field: "build.publish_dir",
                message: format!("{path:?} cannot be read from the built image ({e}); give the directory the Dockerfile writes the site to"),
            },
            EngineError::TooLarge(_) => site_too_large(max_bytes),
            e => BuildError::from(e),
        })?;
    let dest = dest.to_path_buf();
    let dir = path.to_string();
    tokio::task::spawn_blocking(move || unpack_site(&archive, &dest, &dir, max_bytes))
        .await
        .map_err(|e| BuildError::Io(format!("unpacking the site failed: {e}")))?
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
