//! berth's configuration: the TOML file schema, the settings it resolves to,
//! and the specs of apps and projects with their validation.
//!
//! Everything a user types reaches the rest of berth through this crate as a
//! validated type; errors name the field, the bad value and the fix.

#![forbid(unsafe_code)]

mod app;
mod cidr;
mod domain;
mod error;
mod hash;
mod health;
mod instance;
mod maintenance;
mod mounts;
mod names;
mod project;
mod public;
mod rules;
mod settings;
mod source;

pub use app::{AppInput, AppPatch, AppSpec};
pub use domain::{
    CertificateSource, Domain, DomainEdit, DomainEditError, DomainInput, DomainKey, DomainPatch,
};
pub use error::{ConfigError, FieldError};
pub use hash::is_bcrypt;
pub use health::{HealthCheck, HealthCheckInput, HealthKind};
pub use instance::{InstanceInput, InstanceSettings};
pub use maintenance::{
    validate_error_pages, Maintenance, ERROR_PAGE_STATUSES, MAX_ERROR_PAGE_BYTES,
    MAX_MAINTENANCE_MESSAGE,
};
pub use mounts::{Mount, MountInput, Strategy, MAX_FILES_BYTES, MAX_FILE_BYTES, MAX_MOUNTS};
pub use names::{normalize_host, validate_host, validate_name, validate_path_prefix};
pub use project::{ProjectInput, ProjectSpec};
pub use public::PublicSettings;
pub use rules::{
    capture_refs, compile_redirect, encoding_name, BasicAuth, BasicAuthInput, BasicAuthUser,
    BasicAuthUserInput, Cidr, CompressionInput, Cors, CorsInput, Encoding, HeaderEdits,
    HeaderRules, RateLimit, Redirect, RedirectInput, RedirectWww, RouteRules, RulesInput, Timeouts,
    RESERVED_HEADERS,
};
pub use settings::{
    AcmeChallenge, AcmeSettings, BuildSettings, FileConfig, Overrides, RegistrySettings, Settings,
    UnknownSni, LETSENCRYPT, LETSENCRYPT_STAGING,
};
pub use source::{
    git_origin, AppSecrets, BuildInput, BuildKind, BuildSpec, GitAuth, GitSource, PlanOverrides,
    SourceInput, SourceKind,
};
