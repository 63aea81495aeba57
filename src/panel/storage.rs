//! The app page's storage card: the app's mounts (volumes, host paths,
//! files) with a remove button each, a form that adds a volume, and the
//! deployment strategy. Changes are `PATCH /api/v1/apps/{name}` calls
//! whose body lists the mounts that stay (a file without its content,
//! which the API keeps).

use serde_json::{json, Value};

use crate::api::{AppView, MountView};

/// One mount as the card lists it.
pub struct MountItem {
    /// `volume`, `bind` or `file`.
    pub kind: &'static str,
    /// The volume's name, the host path, or the file's size.
    pub source: String,
    /// The path in the container.
    pub path: String,
    /// `read-only`, or a file's mode.
    pub detail: String,
    /// The PATCH body that removes this mount.
    pub remove_body: String,
}

/// The storage card.
pub struct Storage {
    pub items: Vec<MountItem>,
    /// `{"mounts": [...]}` of the mounts as they are, for the add form.
    pub keep_body: String,
    /// The index the add form's new mount takes.
    pub next: usize,
    /// `rolling` or `recreate`.
    pub strategy: String,
}

/// A mount as the API takes it back: a file without its content.
fn as_input(m: &MountView) -> Value {
    match m {
        MountView::Volume {
            name,
            path,
            read_only,
        } => json!({"type": "volume", "name": name, "path": path, "read_only": read_only}),
        MountView::Bind {
            host_path,
            path,
            read_only,
        } => {
            json!({"type": "bind", "host_path": host_path, "path": path, "read_only": read_only})
        }
        MountView::File { path, mode, .. } => json!({"type": "file", "path": path, "mode": mode}),
    }
}

impl Storage {
    /// The card of `app`.
    pub fn of(app: &AppView) -> Self {
        let inputs: Vec<Value> = app.mounts.iter().map(as_input).collect();
        let items = app
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let rest: Vec<&Value> = inputs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, v)| v)
                    .collect();
                let remove_body = json!({ "mounts": rest }).to_string();
                let ro = |r: &bool| if *r { "read-only" } else { "" }.to_string();
                match m {
                    MountView::Volume {
                        name,
                        path,
                        read_only,
                    } => MountItem {
                        kind: "volume",
                        source: name.clone(),
                        path: path.clone(),
                        detail: ro(read_only),
                        remove_body,
                    },
                    MountView::Bind {
                        host_path,
                        path,
                        read_only,
                    } => MountItem {
                        kind: "host path",
                        source: host_path.clone(),
                        path: path.clone(),
                        detail: ro(read_only),
                        remove_body,
                    },
                    MountView::File { path, mode, bytes } => MountItem {
                        kind: "file",
                        source: format!("{bytes} bytes"),
                        path: path.clone(),
                        detail: format!("mode {mode}"),
                        remove_body,
                    },
                }
            })
            .collect();
        Self {
            items,
            keep_body: json!({ "mounts": inputs }).to_string(),
            next: inputs.len(),
            strategy: crate::panel::label(&app.strategy),
        }
    }
}
