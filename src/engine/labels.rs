//! The `berth.*` labels berth puts on what it makes on the engine
//! (containers, networks, volumes), in one place so the orchestrator and
//! builds read and write the same names.

/// Label naming the berth instance that owns a container, network or volume.
pub const LABEL_INSTANCE: &str = "berth.instance";
/// Label naming the app of a container or volume.
pub const LABEL_APP: &str = "berth.app";
/// Label naming the deployment that created a container.
pub const LABEL_DEPLOYMENT: &str = "berth.deployment";
/// Label with the replica's index within its deployment.
pub const LABEL_REPLICA: &str = "berth.replica";
/// Label with a volume's name within its app.
pub const LABEL_VOLUME: &str = "berth.volume";

/// The engine's name of volume `name` of `app`:
/// `berth-<instance>.<app>.<name>`.
pub fn volume_name(instance: &str, app: &str, name: &str) -> String {
    format!("berth-{instance}.{app}.{name}")
}
