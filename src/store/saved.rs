//! The saved form of the specs the store keeps: its own types, apart from
//! the config and API types ([`berth_config::AppSpec`] and its parts), so
//! renaming a field of the API cannot change the redb format.
//!
//! Each saved type names its JSON fields as berth has written them (see
//! the versions listed at [`super::schema::SCHEMA_VERSION`]), in the same
//! order, so the bytes written are those of earlier berths. It converts to
//! and from its config type with every field named (destructured), so a
//! field added to, removed from or renamed in a config type does not
//! compile until it is mapped here too; the JSON name stays. Records keep
//! the config types in memory and go through these only when encoded or
//! decoded ([`spec`] and [`project`] are `#[serde(with)]` helpers).
//!
//! The enums and small structs the API also shows (a deployment's status,
//! trigger and phases, roles, scopes and grants, webhook outcomes,
//! certificate origins) are saved the same way, through a [`Kept`] type
//! of the store's own (`saved/`): each saved enum names every variant as
//! it is on disk, and converts to and from the API's enum by an
//! exhaustive `match`, so a variant added to the API's enum does not
//! compile until its saved name is chosen. Fields of such types go
//! through [`value`], [`list`] or [`option`]; records the API shows whole
//! ([`super::DeliveryRecord`], [`super::AuditRecord`]) are encoded as
//! their saved form with [`encode_kept`] and [`decode_kept`].

use std::collections::BTreeMap;

use berth_config::{
    AppSpec, BuildKind, BuildSpec, CertificateSource, Domain, GitAuth, GitSource, HealthCheck,
    HealthKind, Mount, PlanOverrides, ProjectSpec, Strategy,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::schema::{decode, encode};
use super::StoreError;
use edge::{SavedMaintenance, SavedRules};
use mount::SavedMount;

/// A saved app spec (the `spec` of app and deployment records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedSpec {
    name: String,
    project: Option<String>,
    image: String,
    #[serde(default)]
    source: Option<SavedSource>,
    #[serde(default)]
    build: Option<SavedBuild>,
    port: u16,
    replicas: u32,
    env: BTreeMap<String, String>,
    command: Option<Vec<String>>,
    cpus: Option<f64>,
    memory_mb: Option<u64>,
    domains: Vec<SavedDomain>,
    #[serde(default)]
    health_check: SavedHealthCheck,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default)]
    mounts: Vec<SavedMount>,
    #[serde(default)]
    strategy: SavedStrategy,
    #[serde(default, skip_serializing_if = "SavedMaintenance::is_off")]
    maintenance: SavedMaintenance,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    error_pages: BTreeMap<u16, String>,
}

/// A saved git source (schema 2 on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedSource {
    url: String,
    branch: Option<String>,
    tag: Option<String>,
    commit: Option<String>,
    path: Option<String>,
    submodules: bool,
    auth: SavedAuth,
    watch_paths: Vec<String>,
    tag_pattern: Option<String>,
}

/// Which credential a saved source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedAuth {
    None,
    Token,
    SshKey,
}

/// A saved build (schema 2 on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedBuild {
    kind: SavedBuildKind,
    dockerfile: Option<String>,
    target: Option<String>,
    args: BTreeMap<String, String>,
    secrets: Vec<String>,
    publish_dir: Option<String>,
    spa: bool,
    plan: SavedPlan,
}

/// How a saved build builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedBuildKind {
    Dockerfile,
    Auto,
    Static,
}

/// Saved changes to a detected build plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedPlan {
    #[serde(default)]
    base_image: Option<String>,
    #[serde(default)]
    install: Option<String>,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    start: Option<String>,
}

/// A saved domain; `certificate`, `redirect_https` and `hsts` came with
/// HTTPS and default to none and off; `rules` (schema 5) is left out
/// when no rule is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedDomain {
    host: String,
    path_prefix: String,
    strip_prefix: bool,
    #[serde(default)]
    certificate: SavedCertificate,
    #[serde(default)]
    redirect_https: bool,
    #[serde(default)]
    hsts: bool,
    #[serde(default, skip_serializing_if = "SavedRules::is_empty")]
    rules: SavedRules,
}

/// Where a saved domain's certificate comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedCertificate {
    #[default]
    None,
    Letsencrypt,
    Custom,
}

/// A saved health check; a record without one has the defaults below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedHealthCheck {
    #[serde(rename = "type")]
    kind: SavedHealthKind,
    path: String,
    expected_status: u16,
    interval_ms: u64,
    timeout_ms: u64,
    retries: u32,
    start_period_secs: u64,
}

impl Default for SavedHealthCheck {
    /// What a record saved without a health check means: `auto`, `/`,
    /// 200, every 250 ms, 1 s per probe, no retry limit, no start period.
    fn default() -> Self {
        Self {
            kind: SavedHealthKind::Auto,
            path: "/".into(),
            expected_status: 200,
            interval_ms: 250,
            timeout_ms: 1000,
            retries: 0,
            start_period_secs: 0,
        }
    }
}

/// Kind of a saved health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedHealthKind {
    Auto,
    Http,
    Tcp,
    Docker,
}

/// A saved deployment strategy; rolling when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedStrategy {
    #[default]
    Rolling,
    Recreate,
}

/// A saved project spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedProject {
    name: String,
    description: String,
}

impl From<&AppSpec> for SavedSpec {
    fn from(spec: &AppSpec) -> Self {
        let AppSpec {
            name,
            project,
            image,
            source,
            build,
            port,
            replicas,
            env,
            command,
            cpus,
            memory_mb,
            domains,
            health_check,
            batch_size,
            mounts,
            strategy,
            maintenance,
            error_pages,
        } = spec;
        Self {
            name: name.clone(),
            project: project.clone(),
            image: image.clone(),
            source: source.as_ref().map(SavedSource::from),
            build: build.as_ref().map(SavedBuild::from),
            port: *port,
            replicas: *replicas,
            env: env.clone(),
            command: command.clone(),
            cpus: *cpus,
            memory_mb: *memory_mb,
            domains: domains.iter().map(SavedDomain::from).collect(),
            health_check: health_check.into(),
            batch_size: *batch_size,
            mounts: mounts.iter().map(SavedMount::from).collect(),
            strategy: (*strategy).into(),
            maintenance: maintenance.into(),
            error_pages: error_pages.clone(),
        }
    }
}

impl From<SavedSpec> for AppSpec {
    fn from(saved: SavedSpec) -> Self {
        let SavedSpec {
            name,
            project,
            image,
            source,
            build,
            port,
            replicas,
            env,
            command,
            cpus,
            memory_mb,
            domains,
            health_check,
            batch_size,
            mounts,
            strategy,
            maintenance,
            error_pages,
        } = saved;
        Self {
            name,
            project,
            image,
            source: source.map(GitSource::from),
            build: build.map(BuildSpec::from),
            port,
            replicas,
            env,
            command,
            cpus,
            memory_mb,
            domains: domains.into_iter().map(Domain::from).collect(),
            health_check: health_check.into(),
            batch_size,
            mounts: mounts.into_iter().map(Mount::from).collect(),
            strategy: strategy.into(),
            maintenance: maintenance.into(),
            error_pages,
        }
    }
}

/// Both directions of a conversion between a saved struct and its config
/// struct, field by field under the same names.
macro_rules! same_fields {
    ($saved:ident, $config:ident, { $($field:ident),* $(,)? }) => {
        impl From<&$config> for $saved {
            fn from(value: &$config) -> Self {
                let $config { $($field),* } = value;
                Self { $($field: same_fields!(@to $field)),* }
            }
        }
        impl From<$saved> for $config {
            fn from(value: $saved) -> Self {
                let $saved { $($field),* } = value;
                Self { $($field: $field.into()),* }
            }
        }
    };
    (@to $field:ident) => { $field.clone().into() };
}

same_fields!(SavedSource, GitSource, {
    url, branch, tag, commit, path, submodules, auth, watch_paths, tag_pattern,
});
same_fields!(SavedBuild, BuildSpec, {
    kind, dockerfile, target, args, secrets, publish_dir, spa, plan,
});
same_fields!(SavedPlan, PlanOverrides, { base_image, install, build, start });
same_fields!(SavedDomain, Domain, {
    host, path_prefix, strip_prefix, certificate, redirect_https, hsts, rules,
});
same_fields!(SavedHealthCheck, HealthCheck, {
    kind, path, expected_status, interval_ms, timeout_ms, retries, start_period_secs,
});
same_fields!(SavedProject, ProjectSpec, { name, description });

impl From<PlanOverrides> for SavedPlan {
    fn from(plan: PlanOverrides) -> Self {
        (&plan).into()
    }
}

/// Both directions between a saved enum and its config enum, variant by
/// variant under the same names.
macro_rules! same_variants {
    ($saved:ident, $config:ident, { $($variant:ident),* $(,)? }) => {
        impl From<$config> for $saved {
            fn from(value: $config) -> Self {
                match value { $($config::$variant => Self::$variant),* }
            }
        }
        impl From<$saved> for $config {
            fn from(value: $saved) -> Self {
                match value { $($saved::$variant => Self::$variant),* }
            }
        }
    };
}

same_variants!(SavedAuth, GitAuth, { None, Token, SshKey });
same_variants!(SavedBuildKind, BuildKind, { Dockerfile, Auto, Static });
same_variants!(SavedCertificate, CertificateSource, { None, Letsencrypt, Custom });
same_variants!(SavedHealthKind, HealthKind, { Auto, Http, Tcp, Docker });
same_variants!(SavedStrategy, Strategy, { Rolling, Recreate });

/// `#[serde(with)]` for an [`AppSpec`] saved as a [`SavedSpec`].
pub(super) mod spec {
    use super::{AppSpec, SavedSpec};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the spec in its saved form.
    pub fn serialize<S: Serializer>(spec: &AppSpec, out: S) -> Result<S::Ok, S::Error> {
        SavedSpec::from(spec).serialize(out)
    }

    /// Reads a saved spec.
    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<AppSpec, D::Error> {
        SavedSpec::deserialize(input).map(AppSpec::from)
    }
}

/// `#[serde(with)]` for a [`ProjectSpec`] saved as a [`SavedProject`].
pub(super) mod project {
    use super::{ProjectSpec, SavedProject};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the project in its saved form.
    pub fn serialize<S: Serializer>(spec: &ProjectSpec, out: S) -> Result<S::Ok, S::Error> {
        SavedProject::from(spec).serialize(out)
    }

    /// Reads a saved project.
    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<ProjectSpec, D::Error> {
        SavedProject::deserialize(input).map(ProjectSpec::from)
    }
}

/// A type the API shows that the store keeps in a saved form of its own.
pub(in crate::store) trait Kept: Sized {
    /// The saved form: its serde names are the file format.
    type Saved: Serialize + DeserializeOwned + for<'a> From<&'a Self> + Into<Self>;
}

/// Encodes a value as its saved form (format byte + JSON).
pub(in crate::store) fn encode_kept<T: Kept>(value: &T) -> Result<Vec<u8>, StoreError> {
    encode(&T::Saved::from(value))
}

/// Decodes a value written by [`encode_kept`].
pub(in crate::store) fn decode_kept<T: Kept>(bytes: &[u8]) -> Result<T, StoreError> {
    decode::<T::Saved>(bytes).map(Into::into)
}

/// `#[serde(with)]` for a [`Kept`] value saved as its saved form.
pub(in crate::store) mod value {
    use super::Kept;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the value in its saved form.
    pub fn serialize<T: Kept, S: Serializer>(value: &T, out: S) -> Result<S::Ok, S::Error> {
        T::Saved::from(value).serialize(out)
    }

    /// Reads a saved value.
    pub fn deserialize<'de, T: Kept, D: Deserializer<'de>>(input: D) -> Result<T, D::Error> {
        T::Saved::deserialize(input).map(Into::into)
    }
}

/// `#[serde(with)]` for a list of [`Kept`] values, saved as a list of
/// their saved forms.
pub(in crate::store) mod list {
    use super::Kept;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes each value in its saved form.
    pub fn serialize<T: Kept, S: Serializer>(values: &[T], out: S) -> Result<S::Ok, S::Error> {
        out.collect_seq(values.iter().map(T::Saved::from))
    }

    /// Reads a list of saved values.
    pub fn deserialize<'de, T: Kept, D: Deserializer<'de>>(input: D) -> Result<Vec<T>, D::Error> {
        let saved = Vec::<T::Saved>::deserialize(input)?;
        Ok(saved.into_iter().map(Into::into).collect())
    }
}

/// `#[serde(with)]` for an optional [`Kept`] value (`null` when absent).
pub(in crate::store) mod option {
    use super::Kept;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the value, if any, in its saved form.
    pub fn serialize<T: Kept, S: Serializer>(value: &Option<T>, out: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(T::Saved::from).serialize(out)
    }

    /// Reads an optional saved value.
    pub fn deserialize<'de, T: Kept, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Option<T>, D::Error> {
        Ok(Option::<T::Saved>::deserialize(input)?.map(Into::into))
    }
}

/// A saved enum for an enum of the API: each variant with its name on
/// disk written out, both conversions as exhaustive matches (no wildcard
/// arm, so a variant added to the API's enum does not compile until it is
/// listed here), and the API's enum made [`Kept`] as it.
macro_rules! saved_enum {
    (
        $(#[$meta:meta])*
        $saved:ident for $api:ident { $($variant:ident = $name:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub(in crate::store) enum $saved {
            $(#[serde(rename = $name)] $variant),*
        }

        impl From<$api> for $saved {
            fn from(value: $api) -> Self {
                match value { $($api::$variant => Self::$variant),* }
            }
        }

        impl From<&$api> for $saved {
            fn from(value: &$api) -> Self {
                (*value).into()
            }
        }

        impl From<$saved> for $api {
            fn from(value: $saved) -> Self {
                match value { $($saved::$variant => Self::$variant),* }
            }
        }

        impl $crate::store::saved::Kept for $api {
            type Saved = $saved;
        }
    };
}

mod certificate;
mod delivery;
mod deployment;
mod edge;
mod mount;
mod people;

/// The saved forms of the records the API shows whole, for `compat.rs`.
#[cfg(test)]
pub(in crate::store) use {delivery::SavedDelivery, people::SavedAudit};

#[cfg(test)]
mod names;

#[cfg(test)]
#[path = "saved_tests.rs"]
mod tests;
