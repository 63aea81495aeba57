//! The saved form of a mount (a volume, a host path or a file).

use berth_config::Mount;
use serde::{Deserialize, Serialize};

/// A saved mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum SavedMount {
    Volume {
        name: String,
        path: String,
        read_only: bool,
    },
    Bind {
        host_path: String,
        path: String,
        read_only: bool,
    },
    File {
        path: String,
        content: String,
        mode: u32,
    },
}

impl From<&Mount> for SavedMount {
    fn from(mount: &Mount) -> Self {
        match mount.clone() {
            Mount::Volume {
                name,
                path,
                read_only,
            } => Self::Volume {
                name,
                path,
                read_only,
            },
            Mount::Bind {
                host_path,
                path,
                read_only,
            } => Self::Bind {
                host_path,
                path,
                read_only,
            },
            Mount::File {
                path,
                content,
                mode,
            } => Self::File {
                path,
                content,
                mode,
            },
        }
    }
}

impl From<SavedMount> for Mount {
    fn from(mount: SavedMount) -> Self {
        match mount {
            SavedMount::Volume {
                name,
                path,
                read_only,
            } => Self::Volume {
                name,
                path,
                read_only,
            },
            SavedMount::Bind {
                host_path,
                path,
                read_only,
            } => Self::Bind {
                host_path,
                path,
                read_only,
            },
            SavedMount::File {
                path,
                content,
                mode,
            } => Self::File {
                path,
                content,
                mode,
            },
        }
    }
}
