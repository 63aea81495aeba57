//! Specs of apps: the JSON a user sends (`AppInput`, `AppPatch`) and the
//! validated form berth stores and acts on (`AppSpec`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Domain, DomainInput};
use crate::health::{HealthCheck, HealthCheckInput};
use crate::maintenance::{pages_after, validate_app_pages, Maintenance};
use crate::mounts::{validate_mounts, Mount, MountInput, Strategy};
use crate::names::validate_name;
use crate::source::{
    git_origin, AppSecrets, BuildInput, BuildKind, BuildSpec, GitAuth, GitSource, SourceInput,
};
use crate::FieldError;

/// Most replicas one app may ask for.
pub const MAX_REPLICAS: u32 = 100;
/// Most domains one app may have.
pub const MAX_DOMAINS: usize = 100;
/// Docker refuses memory limits below 6 MiB.
pub const MIN_MEMORY_MB: u64 = 6;

/// An app as the user creates it (`POST /api/v1/apps`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppInput {
    /// DNS label: 1-63 of a-z, 0-9, '-'.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 63,
            pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$"
        )
    )]
    pub name: String,
    /// Name of an existing project.
    #[serde(default)]
    pub project: Option<String>,
    /// Image reference, e.g. `nginx:1.27` or `registry.example.com/team/app@sha256:...`;
    /// give either this or `source`.
    #[serde(default)]
    pub image: Option<String>,
    /// A git repository to build the app from, in place of `image`.
    #[serde(default)]
    pub source: Option<SourceInput>,
    /// How a `source` is built; default a Dockerfile at the context root.
    #[serde(default)]
    pub build: Option<BuildInput>,
    /// The port the app listens on inside its container (1-65535); not
    /// used by static sites.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: Option<i64>,
    /// Number of containers; default 1, at most 100.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub replicas: Option<i64>,
    /// Environment variables given to the containers.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Overrides the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// CPU limit per container, in cores (e.g. 0.5).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 1024.0))]
    pub cpus: Option<f64>,
    /// Memory limit per container, in MiB (at least 6).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 6, maximum = 4194304))]
    pub memory_mb: Option<i64>,
    /// Host names and path prefixes routed to the app.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub domains: Vec<DomainInput>,
    /// How new replicas prove they are ready; default `auto`.
    #[serde(default)]
    pub health_check: Option<HealthCheckInput>,
    /// Replicas started (and old ones retired) per step of a rolling
    /// deployment; default: all at once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub batch_size: Option<i64>,
    /// Volumes, host paths and files mounted into each replica.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub mounts: Vec<MountInput>,
    /// How a deployment replaces running replicas; default `rolling`.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Maintenance mode: every route answers 503 with a page, the
    /// replicas keep running; default off.
    #[serde(default)]
    pub maintenance: Option<Maintenance>,
    /// Pages for the edge's own 502, 503 and 504 (`{"503": "<html>…"}`),
    /// at most 64 KiB each.
    #[serde(default)]
    pub error_pages: Option<BTreeMap<String, String>>,
}

/// Changes to an app (`PATCH /api/v1/apps/{name}`); absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    /// Move the app to this project.
    #[serde(default)]
    pub project: Option<String>,
    /// New image; takes effect at the next deployment. Replaces a source.
    #[serde(default)]
    pub image: Option<String>,
    /// New git source (replaces an image); credentials not given are kept.
    #[serde(default)]
    pub source: Option<SourceInput>,
    /// New build settings; build secrets not given are kept.
    #[serde(default)]
    pub build: Option<BuildInput>,
    /// New container port; takes effect at the next deployment.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: Option<i64>,
    /// New replica count; takes effect at the next deployment.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub replicas: Option<i64>,
    /// Variables to set; a `null` value removes the variable.
    #[serde(default)]
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// New command; an empty list returns to the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// New CPU limit in cores; 0 removes the limit.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1024.0))]
    pub cpus: Option<f64>,
    /// New memory limit in MiB; 0 removes the limit.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 4194304))]
    pub memory_mb: Option<i64>,
    /// Replaces all domains; takes effect at once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub domains: Option<Vec<DomainInput>>,
    /// Replaces the health check; takes effect at the next deployment.
    #[serde(default)]
    pub health_check: Option<HealthCheckInput>,
    /// New batch size; 0 returns to all at once.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub batch_size: Option<i64>,
    /// Replaces all mounts; takes effect at the next deployment.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub mounts: Option<Vec<MountInput>>,
    /// New deployment strategy.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Maintenance mode (replaced whole); takes effect at once.
    #[serde(default)]
    pub maintenance: Option<Maintenance>,
    /// Replaces all custom error pages (`{}` removes them); takes effect
    /// at once.
    #[serde(default)]
    pub error_pages: Option<BTreeMap<String, String>>,
}

/// A validated app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppSpec {
    /// The app's name.
    pub name: String,
    /// The project it belongs to, if any.
    pub project: Option<String>,
    /// Image reference deployed by the next deployment; for apps built
    /// from source, the repository builds are tagged in (`berth/<app>`).
    pub image: String,
    /// The git repository the app is built from, if any.
    #[serde(default)]
    pub source: Option<GitSource>,
    /// How the source is built (set exactly when `source` is).
    #[serde(default)]
    pub build: Option<BuildSpec>,
    /// Container port the proxy forwards to; 0 for static sites.
    pub port: u16,
    /// Number of containers.
    pub replicas: u32,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Command overriding the image's, if any.
    pub command: Option<Vec<String>>,
    /// CPU limit per container in cores.
    pub cpus: Option<f64>,
    /// Memory limit per container in MiB.
    pub memory_mb: Option<u64>,
    /// Routes to the app.
    pub domains: Vec<Domain>,
    /// How new replicas prove they are ready.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Replicas per step of a rolling deployment; `None`: all at once.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Volumes, host paths and files mounted into each replica.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// How a deployment replaces running replicas.
    #[serde(default)]
    pub strategy: Strategy,
    /// Maintenance mode; applies at once and is not part of a version.
    #[serde(default, skip_serializing_if = "Maintenance::is_off")]
    pub maintenance: Maintenance,
    /// Custom pages of the edge's 502, 503 and 504, by status; apply at
    /// once and are not part of a version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub error_pages: BTreeMap<u16, String>,
}

impl AppInput {
    /// The secret values in this input (git credentials, build secrets),
    /// for the caller to seal; the validated spec keeps only their names.
    pub fn secrets(&self) -> AppSecrets {
        let (git_token, ssh_key) = self
            .source
            .as_ref()
            .map(SourceInput::secrets)
            .unwrap_or_default();
        AppSecrets {
            git_token,
            ssh_key,
            build: self
                .build
                .as_ref()
                .and_then(|b| b.secrets.clone())
                .unwrap_or_default(),
        }
    }

    /// Validates every field; the first invalid one is reported.
    pub fn validate(self) -> Result<AppSpec, FieldError> {
        self.validate_with(GitAuth::None, &[], &[])
    }

    /// Validates with the credential kind, build secret names and domains
    /// stored before a change, kept when the input does not give them
    /// (a domain's basic-auth users named alone keep their passwords).
    fn validate_with(
        self,
        previous_auth: GitAuth,
        previous_secrets: &[String],
        previous_domains: &[Domain],
    ) -> Result<AppSpec, FieldError> {
        validate_name("name", &self.name)?;
        if let Some(project) = &self.project {
            validate_name("project", project)?;
        }
        let (image, source, build) = match (&self.image, &self.source) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "source",
                    "is given together with image; give one of image, source",
                ))
            }
            (None, None) => {
                return Err(FieldError::new(
                    "image",
                    "is missing; give an image reference, or a git source to build",
                ))
            }
            (Some(image), None) => {
                if self.build.is_some() {
                    return Err(FieldError::new(
                        "build",
                        "needs a source; give source, or remove build to run the image",
                    ));
                }
                validate_image(image)?;
                (image.trim().to_string(), None, None)
            }
            (None, Some(source)) => {
                let source = source
                    .validate(previous_auth)
                    .map_err(|e| e.within("source"))?;
                let build = match &self.build {
                    Some(b) => b.validate(previous_secrets),
                    None => BuildInput::from(&BuildSpec {
                        kind: BuildKind::Dockerfile,
                        dockerfile: None,
                        target: None,
                        args: BTreeMap::new(),
                        secrets: Vec::new(),
                        publish_dir: None,
                        spa: false,
                        plan: Default::default(),
                    })
                    .validate(previous_secrets),
                }
                .map_err(|e| e.within("build"))?;
                (format!("berth/{}", self.name), Some(source), Some(build))
            }
        };
        let is_static = build.as_ref().is_some_and(|b| b.kind == BuildKind::Static);
        let port =
            match (self.port, is_static) {
                (None, true) => 0,
                (Some(_), true) => {
                    return Err(FieldError::new(
                        "port",
                        "is not used by static sites (berth serves their files); remove it",
                    ))
                }
                (None, false) => return Err(FieldError::new(
                    "port",
                    "is missing; give the port the app listens on inside its container, 1-65535",
                )),
                (Some(p), false) => u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    FieldError::new(
                        "port",
                        format!("{p} is out of range; give the container port, 1-65535"),
                    )
                })?,
            };
        let replicas = match self.replicas {
            None => 1,
            Some(n) if (1..=i64::from(MAX_REPLICAS)).contains(&n) => n as u32,
            Some(n) => {
                return Err(FieldError::new(
                    "replicas",
                    format!("{n} is out of range; give 1-{MAX_REPLICAS}"),
                ))
            }
        };
        for (key, value) in &self.env {
            validate_env(key, value)?;
        }
        if let Some(command) = &self.command {
            if command.is_empty() || command.iter().any(|a| a.contains('\0')) {
                return Err(FieldError::new(
                    "command",
                    "must be a non-empty list of arguments without NUL bytes; omit it to use the image's command",
                ));
            }
        }
        let cpus = match self.cpus {
            None => None,
            Some(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => Some(c),
            Some(c) => {
                return Err(FieldError::new(
                    "cpus",
                    format!("{c} is out of range; give a number of cores above 0, e.g. 0.5"),
                ))
            }
        };
        let memory_mb = match self.memory_mb {
            None => None,
            Some(m) if m >= MIN_MEMORY_MB as i64 && m <= 1 << 22 => Some(m as u64),
            Some(m) => {
                return Err(FieldError::new(
                    "memory_mb",
                    format!("{m} is out of range; give at least {MIN_MEMORY_MB} MiB"),
                ))
            }
        };
        if self.domains.len() > MAX_DOMAINS {
            return Err(FieldError::new(
                "domains",
                format!(
                    "has {} entries; an app may have at most {MAX_DOMAINS}",
                    self.domains.len()
                ),
            ));
        }
        let mut domains: Vec<Domain> = Vec::with_capacity(self.domains.len());
        for (i, input) in self.domains.into_iter().enumerate() {
            let domain = input
                .validate(previous_domains)
                .map_err(|e| e.within(&format!("domains[{i}]")))?;
            if domains
                .iter()
                .any(|d| d.host == domain.host && d.path_prefix == domain.path_prefix)
            {
                return Err(FieldError::new(
                    format!("domains[{i}]"),
                    format!(
                        "{}{} is listed twice; remove the duplicate",
                        domain.host, domain.path_prefix
                    ),
                ));
            }
            domains.push(domain);
        }
        let mounts = validate_mounts("mounts", self.mounts)?;
        let (maintenance, error_pages) = validate_app_pages(self.maintenance, self.error_pages)?;
        if is_static && !mounts.is_empty() {
            return Err(FieldError::new(
                "mounts",
                "static sites are served by berth and run no container; remove the mounts",
            ));
        }
        Ok(AppSpec {
            mounts,
            maintenance,
            error_pages,
            strategy: self.strategy.unwrap_or_default(),
            name: self.name,
            project: self.project,
            image,
            source,
            build,
            port,
            replicas,
            env: self.env,
            command: self.command,
            cpus,
            memory_mb,
            domains,
            health_check: match &self.health_check {
                Some(h) => h.validate().map_err(|e| e.within("health_check"))?,
                None => HealthCheck::default(),
            },
            batch_size: match self.batch_size {
                None => None,
                Some(b) if (1..=i64::from(MAX_REPLICAS)).contains(&b) => Some(b as u32),
                Some(b) => {
                    return Err(FieldError::new(
                        "batch_size",
                        format!("{b} is out of range; give 1-{MAX_REPLICAS}, or omit it to start all replicas at once"),
                    ))
                }
            },
        })
    }
}

impl AppSpec {
    /// Whether the app is a static site served by the edge (no containers).
    pub fn is_static(&self) -> bool {
        self.build
            .as_ref()
            .is_some_and(|b| b.kind == BuildKind::Static)
    }

    /// Applies `patch` and validates the result as a whole.
    pub fn patched(&self, patch: AppPatch) -> Result<AppSpec, FieldError> {
        let mut env = self.env.clone();
        for (key, value) in patch.env.unwrap_or_default() {
            match value {
                Some(v) => {
                    env.insert(key, v);
                }
                None => {
                    env.remove(&key);
                }
            }
        }
        // An image replaces a source and a source an image; build
        // settings stay with a source.
        let (image, source, build) = match (patch.image, patch.source) {
            (Some(image), None) => (Some(image), None, patch.build),
            (None, Some(source)) => (
                None,
                Some(source),
                patch
                    .build
                    .or_else(|| self.build.as_ref().map(BuildInput::from)),
            ),
            (Some(image), Some(source)) => (Some(image), Some(source), patch.build),
            (None, None) => match &self.source {
                Some(source) => (
                    None,
                    Some(SourceInput::from(source)),
                    patch
                        .build
                        .or_else(|| self.build.as_ref().map(BuildInput::from)),
                ),
                None => (Some(self.image.clone()), None, patch.build),
            },
        };
        let becomes_static = build.as_ref().is_some_and(|b| b.kind == BuildKind::Static);
        let port = match patch.port {
            Some(p) => Some(p),
            None if becomes_static => None,
            None if self.port == 0 => None,
            None => Some(i64::from(self.port)),
        };
        // A stored credential never follows the URL to another host.
        let previous_auth = match (&self.source, &source) {
            (Some(old), Some(new)) if git_origin(&old.url) == git_origin(&new.url) => old.auth,
            _ => GitAuth::None,
        };
        let previous_secrets = self
            .build
            .as_ref()
            .map(|b| b.secrets.clone())
            .unwrap_or_default();
        let (maintenance, error_pages) = pages_after(
            (patch.maintenance, patch.error_pages),
            (&self.maintenance, &self.error_pages),
        );
        let input = AppInput {
            name: self.name.clone(),
            project: patch.project.or_else(|| self.project.clone()),
            image,
            source,
            build,
            port,
            replicas: Some(patch.replicas.unwrap_or(i64::from(self.replicas))),
            env,
            command: match patch.command {
                Some(c) if c.is_empty() => None,
                Some(c) => Some(c),
                None => self.command.clone(),
            },
            cpus: match patch.cpus {
                Some(0.0) => None,
                Some(c) => Some(c),
                None => self.cpus,
            },
            memory_mb: match patch.memory_mb {
                Some(0) => None,
                Some(m) => Some(m),
                None => self.memory_mb.map(|m| m as i64),
            },
            batch_size: match patch.batch_size {
                Some(0) => None,
                Some(b) => Some(b),
                None => self.batch_size.map(i64::from),
            },
            health_check: Some(
                patch
                    .health_check
                    .unwrap_or_else(|| HealthCheckInput::from(&self.health_check)),
            ),
            domains: patch
                .domains
                .unwrap_or_else(|| self.domains.iter().map(DomainInput::from).collect()),
            mounts: match patch.mounts {
                Some(list) => list
                    .into_iter()
                    .map(|m| m.keeping_content(&self.mounts))
                    .collect(),
                None => self.mounts.iter().map(MountInput::from).collect(),
            },
            strategy: Some(patch.strategy.unwrap_or(self.strategy)),
            maintenance,
            error_pages,
        };
        input.validate_with(previous_auth, &previous_secrets, &self.domains)
    }
}

fn validate_image(image: &str) -> Result<(), FieldError> {
    let image = image.trim();
    let fix = "give an image reference such as nginx:1.27 or registry.example.com/team/app:tag";
    let valid = !image.is_empty()
        && image.len() <= 512
        && image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
        && !image.starts_with(['-', '/', ':', '@', '.'])
        && !image.ends_with(['/', ':', '@']);
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            "image",
            format!("{image:?} is not a valid image reference; {fix}"),
        ))
    }
}

fn validate_env(key: &str, value: &str) -> Result<(), FieldError> {
    let field = format!("env.{key}");
    let key_ok = !key.is_empty()
        && key.len() <= 256
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !key.as_bytes()[0].is_ascii_digit();
    if !key_ok {
        return Err(FieldError::new(
            field,
            "is not a valid variable name; use letters, digits and '_', not starting with a digit",
        ));
    }
    if value.contains('\0') || value.len() > 64 * 1024 {
        return Err(FieldError::new(
            field,
            "value must be at most 64 KiB and contain no NUL byte",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
