//! What an app keeps and reads from outside its image: named volumes
//! (created by berth, kept across deployments), bind mounts of host paths
//! (off unless the server allows them) and files whose content is given in
//! the API (a config file, written read-only into each replica); and how a
//! deployment replaces replicas that share them (`strategy`).

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most mounts an app has.
pub const MAX_MOUNTS: usize = 32;
/// Largest content of one file mount.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Largest content of all file mounts of an app together.
pub const MAX_FILES_BYTES: usize = 1024 * 1024;

/// One mount as the user sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MountInput {
    /// A named volume, created by berth for this app and kept across
    /// deployments (removed only when the app is deleted with
    /// `?volumes=true`).
    Volume {
        /// 1-63 of a-z, 0-9, `-`, `_`, `.`; starts with a letter or digit.
        #[cfg_attr(
            feature = "openapi",
            schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9][a-z0-9_.-]*$")
        )]
        name: String,
        /// Absolute path inside the container.
        #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
        path: String,
        /// Mount it read-only; default false.
        #[serde(default)]
        read_only: Option<bool>,
    },
    /// A path of the host, when `[deploy] allow_bind_mounts` is set.
    Bind {
        /// Absolute path on the host.
        #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
        host_path: String,
        /// Absolute path inside the container.
        #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
        path: String,
        /// Mount it read-only; default false.
        #[serde(default)]
        read_only: Option<bool>,
    },
    /// A file with this content, written into each replica before it
    /// starts (owned by root, mode 0444 unless given).
    File {
        /// Absolute path of the file inside the container.
        #[cfg_attr(feature = "openapi", schema(pattern = "^/", max_length = 1024))]
        path: String,
        /// The file's content (UTF-8), at most 256 KiB. Required for a new
        /// file; in a change of an app's mounts, a file left without it
        /// keeps the content it has at that path (the API never shows it).
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(max_length = 262144))]
        content: Option<String>,
        /// Octal permissions, e.g. `"0440"`; default `"0444"`.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(pattern = "^0?[0-7]{3}$"))]
        mode: Option<String>,
    },
}

/// A validated mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    /// A named volume of the app.
    Volume {
        /// The volume's name within the app.
        name: String,
        /// Absolute, normalized path in the container.
        path: String,
        /// Read-only.
        read_only: bool,
    },
    /// A host path.
    Bind {
        /// Absolute, normalized path on the host.
        host_path: String,
        /// Absolute, normalized path in the container.
        path: String,
        /// Read-only.
        read_only: bool,
    },
    /// A file written into each replica.
    File {
        /// Absolute, normalized path in the container.
        path: String,
        /// Its content.
        content: String,
        /// Its permissions, e.g. `0o444`.
        mode: u32,
    },
}

impl Mount {
    /// The path inside the container.
    pub fn path(&self) -> &str {
        match self {
            Self::Volume { path, .. } | Self::Bind { path, .. } | Self::File { path, .. } => path,
        }
    }
}

impl From<&Mount> for MountInput {
    fn from(m: &Mount) -> Self {
        match m.clone() {
            Mount::Volume {
                name,
                path,
                read_only,
            } => Self::Volume {
                name,
                path,
                read_only: Some(read_only),
            },
            Mount::Bind {
                host_path,
                path,
                read_only,
            } => Self::Bind {
                host_path,
                path,
                read_only: Some(read_only),
            },
            Mount::File {
                path,
                content,
                mode,
            } => Self::File {
                path,
                content: Some(content),
                mode: Some(format!("0{mode:o}")),
            },
        }
    }
}

impl MountInput {
    /// A file mount given without content takes the content the app's
    /// `current` file at the same path has.
    pub fn keeping_content(self, current: &[Mount]) -> Self {
        match self {
            Self::File {
                path,
                content: None,
                mode,
            } => {
                let same = |p: &str| p.trim_end_matches('/') == path.trim_end_matches('/');
                let content = current.iter().find_map(|m| match m {
                    Mount::File {
                        path: p, content, ..
                    } if same(p) => Some(content.clone()),
                    _ => None,
                });
                Self::File {
                    path,
                    content,
                    mode,
                }
            }
            other => other,
        }
    }
}

/// How a deployment replaces the running replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// New replicas start and pass their health check while the old ones
    /// serve (both versions share the app's volumes for that moment); no
    /// request is dropped.
    #[default]
    Rolling,
    /// The old replicas drain and stop first, then the new ones start: for
    /// apps that cannot share their data with another version (a database
    /// holding a lock on its files). The app answers 503 in between.
    Recreate,
}

/// Host paths no bind mount may name (or be inside of): the engine's
/// socket would give a container the host, and the kernel's file systems
/// are not data.
const FORBIDDEN_HOST_PATHS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/run/docker.sock",
    "/var/run/docker.sock",
];

/// Container paths no mount may cover.
const FORBIDDEN_PATHS: &[&str] = &["/proc", "/sys", "/dev"];

/// Validates the mounts of an app (`field`: `mounts`).
pub fn validate_mounts(field: &str, inputs: Vec<MountInput>) -> Result<Vec<Mount>, FieldError> {
    if inputs.len() > MAX_MOUNTS {
        return Err(FieldError::new(
            field,
            format!("{} mounts; an app has at most {MAX_MOUNTS}", inputs.len()),
        ));
    }
    let mut mounts: Vec<Mount> = Vec::with_capacity(inputs.len());
    let mut file_bytes = 0;
    for (i, input) in inputs.into_iter().enumerate() {
        let at = |name: &str| format!("{field}[{i}].{name}");
        let mount = match input {
            MountInput::Volume {
                name,
                path,
                read_only,
            } => Mount::Volume {
                name: volume_name(&at("name"), &name)?,
                path: container_path(&at("path"), &path)?,
                read_only: read_only.unwrap_or(false),
            },
            MountInput::Bind {
                host_path,
                path,
                read_only,
            } => Mount::Bind {
                host_path: host_path_of(&at("host_path"), &host_path)?,
                path: container_path(&at("path"), &path)?,
                read_only: read_only.unwrap_or(false),
            },
            MountInput::File {
                path,
                content,
                mode,
            } => {
                let Some(content) = content else {
                    return Err(FieldError::new(
                        at("content"),
                        "is missing; give the file's content",
                    ));
                };
                if content.len() > MAX_FILE_BYTES {
                    return Err(FieldError::new(
                        at("content"),
                        format!(
                            "{} bytes; a file mount holds at most {} KiB (use a volume for more)",
                            content.len(),
                            MAX_FILE_BYTES / 1024
                        ),
                    ));
                }
                file_bytes += content.len();
                if file_bytes > MAX_FILES_BYTES {
                    return Err(FieldError::new(
                        at("content"),
                        format!(
                            "the app's file mounts hold more than {} KiB together; use a volume",
                            MAX_FILES_BYTES / 1024
                        ),
                    ));
                }
                let path = container_path(&at("path"), &path)?;
                if path == "/" {
                    return Err(FieldError::new(
                        at("path"),
                        "give the path of a file, not /",
                    ));
                }
                Mount::File {
                    path,
                    content,
                    mode: file_mode(&at("mode"), mode.as_deref())?,
                }
            }
        };
        if let Some(j) = mounts.iter().position(|m| overlaps(m, &mount)) {
            return Err(FieldError::new(
                at("path"),
                format!(
                    "{:?} overlaps {field}[{j}] ({:?}); give each mount its own path",
                    mount.path(),
                    mounts[j].path()
                ),
            ));
        }
        mounts.push(mount);
    }
    Ok(mounts)
}

/// Whether two mounts target the same path, or a file mount lies inside
/// another mount (the engine would hide one behind the other).
fn overlaps(a: &Mount, b: &Mount) -> bool {
    let inside = |inner: &str, outer: &str| {
        outer == "/"
            || inner
                .strip_prefix(outer)
                .is_some_and(|r| r.starts_with('/'))
    };
    a.path() == b.path()
        || (matches!(b, Mount::File { .. }) && inside(b.path(), a.path()))
        || (matches!(a, Mount::File { .. }) && inside(a.path(), b.path()))
}

fn volume_name(field: &str, name: &str) -> Result<String, FieldError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?} is not a volume name; use 1-63 of a-z, 0-9, '-', '_', '.', starting with a letter or digit (e.g. \"data\")"),
        ))
    }
}

/// An absolute path without `.`/`..` segments or doubled slashes,
/// normalized without a trailing slash.
fn absolute(field: &str, raw: &str, what: &str) -> Result<String, FieldError> {
    let bad = |why: &str| {
        FieldError::new(
            field,
            format!("{raw:?} {why}; give an absolute {what} path such as /var/lib/data"),
        )
    };
    if !raw.starts_with('/') {
        return Err(bad("is not absolute"));
    }
    if raw.len() > 1024 || raw.chars().any(|c| c.is_control() || c == '\\' || c == ':') {
        return Err(bad("is too long or has a control character, ':' or '\\\\'"));
    }
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(bad("has a '.' or '..' segment"));
    }
    Ok(format!("/{}", segments.join("/")))
}

fn container_path(field: &str, raw: &str) -> Result<String, FieldError> {
    let path = absolute(field, raw, "container")?;
    if path == "/" {
        return Err(FieldError::new(
            field,
            "a mount cannot cover the container's whole file system; give a directory such as /data",
        ));
    }
    if let Some(bad) = FORBIDDEN_PATHS.iter().find(|p| within(&path, p)) {
        return Err(FieldError::new(
            field,
            format!("{path:?} is inside {bad}, which the engine manages; choose another path"),
        ));
    }
    Ok(path)
}

fn host_path_of(field: &str, raw: &str) -> Result<String, FieldError> {
    let path = absolute(field, raw, "host")?;
    if path == "/" {
        return Err(FieldError::new(
            field,
            "the host's root cannot be mounted; give the directory the app needs",
        ));
    }
    if let Some(bad) = FORBIDDEN_HOST_PATHS.iter().find(|p| within(&path, p)) {
        return Err(FieldError::new(
            field,
            format!("{path:?} is inside {bad}, which no app may mount; give a data directory"),
        ));
    }
    Ok(path)
}

/// `path` is `dir` or inside it.
fn within(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn file_mode(field: &str, raw: Option<&str>) -> Result<u32, FieldError> {
    let Some(raw) = raw else { return Ok(0o444) };
    let digits = raw
        .strip_prefix('0')
        .filter(|d| d.len() == 3)
        .unwrap_or(raw);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if digits.len() == 3 => Ok(mode),
        _ => Err(FieldError::new(
            field,
            format!("{raw:?} is not octal permissions; give three octal digits such as \"0440\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Mount>, FieldError> {
        validate_mounts("mounts", serde_json::from_str(json).unwrap())
    }

    #[test]
    fn each_kind_validates_and_normalizes() {
        let mounts = parse(
            r#"[{"type": "volume", "name": "data", "path": "/var/lib//data/"},
                {"type": "bind", "host_path": "/srv/uploads", "path": "/uploads", "read_only": true},
                {"type": "file", "path": "/etc/app/config.toml", "content": "a = 1\n", "mode": "0640"}]"#,
        )
        .unwrap();
        assert_eq!(
            mounts,
            vec![
                Mount::Volume {
                    name: "data".into(),
                    path: "/var/lib/data".into(),
                    read_only: false
                },
                Mount::Bind {
                    host_path: "/srv/uploads".into(),
                    path: "/uploads".into(),
                    read_only: true
                },
                Mount::File {
                    path: "/etc/app/config.toml".into(),
                    content: "a = 1\n".into(),
                    mode: 0o640
                },
            ]
        );
        let file = parse(r#"[{"type": "file", "path": "/a", "content": ""}]"#).unwrap();
        assert!(matches!(file[0], Mount::File { mode: 0o444, .. }));
        // Without content, a change keeps the content at that path.
        let kept: Vec<MountInput> = serde_json::from_str(
            r#"[{"type": "file", "path": "/etc/app/config.toml", "mode": "0400"}]"#,
        )
        .unwrap();
        let kept = kept
            .into_iter()
            .map(|m| m.keeping_content(&mounts))
            .collect();
        let kept = validate_mounts("mounts", kept).unwrap();
        assert!(
            matches!(&kept[0], Mount::File { content, mode: 0o400, .. } if content == "a = 1\n")
        );
        let err = parse(r#"[{"type": "file", "path": "/new"}]"#).unwrap_err();
        assert_eq!(err.field, "mounts[0].content");
    }

    #[test]
    fn bad_mounts_name_the_field_and_the_fix() {
        let cases = [
            (
                r#"[{"type": "volume", "name": "Data", "path": "/d"}]"#,
                "mounts[0].name",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "d"}]"#,
                "mounts[0].path",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "/"}]"#,
                "mounts[0].path",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "/a/../b"}]"#,
                "mounts[0].path",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "/proc/x"}]"#,
                "mounts[0].path",
            ),
            (
                r#"[{"type": "bind", "host_path": "/var/run/docker.sock", "path": "/s"}]"#,
                "mounts[0].host_path",
            ),
            (
                r#"[{"type": "bind", "host_path": "/", "path": "/h"}]"#,
                "mounts[0].host_path",
            ),
            (
                r#"[{"type": "bind", "host_path": "/sys/kernel", "path": "/h"}]"#,
                "mounts[0].host_path",
            ),
            (
                r#"[{"type": "file", "path": "/a", "content": "", "mode": "999"}]"#,
                "mounts[0].mode",
            ),
            (
                r#"[{"type": "file", "path": "/a", "content": "", "mode": "rw"}]"#,
                "mounts[0].mode",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "/data"},
                    {"type": "volume", "name": "e", "path": "/data/"}]"#,
                "mounts[1].path",
            ),
            (
                r#"[{"type": "volume", "name": "d", "path": "/etc/app"},
                    {"type": "file", "path": "/etc/app/c.toml", "content": ""}]"#,
                "mounts[1].path",
            ),
        ];
        for (json, field) in cases {
            let err = parse(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {}", err.message);
            assert!(
                err.message.contains("give")
                    || err.message.contains("use")
                    || err.message.contains("choose"),
                "{}",
                err.message
            );
        }
        let big = format!(
            r#"[{{"type": "file", "path": "/a", "content": "{}"}}]"#,
            "x".repeat(MAX_FILE_BYTES + 1)
        );
        assert_eq!(parse(&big).unwrap_err().field, "mounts[0].content");
        assert!(
            serde_json::from_str::<Vec<MountInput>>(r#"[{"type": "tmpfs", "path": "/t"}]"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Vec<MountInput>>(
            r#"[{"type": "volume", "name": "d", "path": "/d", "size": 1}]"#
        )
        .is_err());
    }

    #[test]
    fn strategies_read_as_written() {
        assert_eq!(Strategy::default(), Strategy::Rolling);
        let s: Strategy = serde_json::from_str("\"recreate\"").unwrap();
        assert_eq!(s, Strategy::Recreate);
        assert_eq!(
            serde_json::to_string(&Strategy::Rolling).unwrap(),
            "\"rolling\""
        );
    }
}
