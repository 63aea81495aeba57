//! Process settings: the TOML config file (`File*`), the overrides from flags
//! and `BERTH_*` variables, and the validated [`Settings`] they resolve to
//! (flag > env > file > default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names::validate_name;
use crate::public::{public_settings, FilePanel, FileServer, PublicSettings};
use crate::{ConfigError, FieldError};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/berth";
/// Default instance name.
pub const DEFAULT_INSTANCE: &str = "berth";

/// The config file as written by the user. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Directory of the store and the admin token; default `/var/lib/berth`.
    pub data_dir: Option<PathBuf>,
    /// Instance name; default `berth`.
    pub instance: Option<String>,
    /// Edge HTTP address; default `0.0.0.0:80`.
    pub http_addr: Option<String>,
    /// Edge HTTPS address; default `0.0.0.0:443`.
    pub https_addr: Option<String>,
    /// Admin API address; default `0.0.0.0:3000`.
    pub admin_addr: Option<String>,
    /// Metrics address; default `0.0.0.0:4500`.
    pub metrics_addr: Option<String>,
    /// `[deploy]` table.
    #[serde(default)]
    pub deploy: FileDeploy,
    /// `[proxy]` table.
    #[serde(default)]
    pub proxy: FileProxy,
    /// `[acme]` table.
    #[serde(default)]
    pub acme: FileAcme,
    /// `[tls]` table.
    #[serde(default)]
    pub tls: FileTls,
    /// `[build]` table.
    #[serde(default)]
    pub build: FileBuild,
    /// `[server]` table.
    #[serde(default)]
    pub server: FileServer,
    /// `[panel]` table.
    #[serde(default)]
    pub panel: FilePanel,
}

/// `[build]`: builds of apps from source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBuild {
    /// Builds running at once across all apps; default 1.
    pub concurrency: Option<u64>,
    /// Seconds a clone plus build may take before it is aborted; default 1800.
    pub timeout_secs: Option<u64>,
    /// CPU cores a build may use; default half of the machine's, at least 1.
    pub cpus: Option<f64>,
    /// Memory a build step may use, in MiB; default 2048.
    pub memory_mb: Option<u64>,
    /// Largest static site berth serves from memory, in MiB; default 256.
    pub max_site_mb: Option<u64>,
    /// Repository prefix built images are also pushed to, e.g.
    /// `registry.example.com/team` (as `<prefix>/<app>:<deployment>`);
    /// default: images stay on this machine.
    pub registry: Option<String>,
    /// User name at the registry.
    pub registry_username: Option<String>,
    /// File holding the registry password or token (keep it 0600).
    pub registry_password_file: Option<PathBuf>,
}

/// Where built images are pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySettings {
    /// Repository prefix, e.g. `registry.example.com/team`.
    pub prefix: String,
    /// User name, if the registry needs one.
    pub username: Option<String>,
    /// File with the password (read at start).
    pub password_file: Option<PathBuf>,
}

/// Validated `[build]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSettings {
    /// Builds running at once.
    pub concurrency: usize,
    /// Deadline of a clone plus build.
    pub timeout: Duration,
    /// CPU cores per build; `None`: half of the machine's, at least 1.
    pub cpus: Option<f64>,
    /// Memory per build step, in MiB.
    pub memory_mb: u64,
    /// Largest static site, in bytes.
    pub max_site_bytes: u64,
    /// Where built images are pushed, if anywhere.
    pub registry: Option<RegistrySettings>,
}

/// `[acme]`: where certificates come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAcme {
    /// Directory URL, or `letsencrypt` / `letsencrypt-staging`; default
    /// `letsencrypt`.
    pub directory: Option<String>,
    /// Contact email of the ACME account.
    pub email: Option<String>,
    /// PEM file of a CA root to trust for the ACME server itself.
    pub ca_root: Option<PathBuf>,
    /// `http-01` (default) or `tls-alpn-01`.
    pub challenge: Option<String>,
}

/// `[tls]`: the HTTPS listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// What a handshake for a name without a certificate gets:
    /// `self_signed` (default) or `refuse`.
    pub unknown_sni: Option<String>,
}

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How the ACME server validates a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A token served over HTTP on the HTTP address.
    Http01,
    /// A challenge certificate served over TLS on the HTTPS address.
    TlsAlpn01,
}

/// Validated ACME settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeSettings {
    /// Directory URL.
    pub directory: String,
    /// Contact email.
    pub email: Option<String>,
    /// CA root for the ACME server's own certificate.
    pub ca_root: Option<PathBuf>,
    /// Challenge type used for new certificates.
    pub challenge: AcmeChallenge,
}

/// What a TLS handshake for an unknown name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSni {
    /// A self-signed certificate.
    SelfSigned,
    /// No certificate: the handshake fails.
    Refuse,
}

/// `[deploy]`: how deployments run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeploy {
    /// Seconds a new replica has to become healthy; default 60.
    pub health_timeout_secs: Option<u64>,
    /// Seconds a stopped container gets before it is killed; default 10.
    pub stop_grace_secs: Option<u64>,
    /// Seconds an image pull may take; default 600.
    pub pull_timeout_secs: Option<u64>,
    /// Seconds requests in flight on a leaving replica get; default 30.
    pub drain_timeout_secs: Option<u64>,
    /// Successful deployments per app kept for rollback; default 5.
    pub rollback_window: Option<u64>,
    /// Seconds after a switch during which a dying or unhealthy new replica
    /// rolls the app back automatically; default 30, 0 turns it off.
    pub rollback_watch_secs: Option<u64>,
    /// Deployments running at once across all apps; default 2.
    pub concurrency: Option<u64>,
    /// Whether apps may mount host paths (`{"type": "bind"}` mounts);
    /// default false.
    pub allow_bind_mounts: Option<bool>,
}

/// `[proxy]`: the edge proxy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    /// Milliseconds to connect to a replica before trying another; default 2000.
    pub connect_timeout_ms: Option<u64>,
    /// Seconds in-flight requests get to finish at shutdown; default 10.
    pub shutdown_grace_secs: Option<u64>,
    /// Threads of their own for the TCP edge, each a single-threaded
    /// runtime accepting on the same sockets with its own replica pool;
    /// default: one per core. 0: the edge shares berth's main runtime.
    pub workers: Option<u64>,
    /// Seconds an upgraded connection (a WebSocket) may carry no byte
    /// either way before the edge closes it; default 3600.
    pub tunnel_idle_secs: Option<u64>,
}

/// Values from flags and environment variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `BERTH_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--data-dir` / `BERTH_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--instance` / `BERTH_INSTANCE`.
    pub instance: Option<String>,
    /// `--http-addr` / `BERTH_HTTP_ADDR`.
    pub http_addr: Option<String>,
    /// `--https-addr` / `BERTH_HTTPS_ADDR`.
    pub https_addr: Option<String>,
    /// `--admin-addr` / `BERTH_ADMIN_ADDR`.
    pub admin_addr: Option<String>,
    /// `--metrics-addr` / `BERTH_METRICS_ADDR`.
    pub metrics_addr: Option<String>,
    /// `--acme-directory` / `BERTH_ACME_DIRECTORY`.
    pub acme_directory: Option<String>,
    /// `--acme-email` / `BERTH_ACME_EMAIL`.
    pub acme_email: Option<String>,
    /// `--acme-ca-root` / `BERTH_ACME_CA_ROOT`.
    pub acme_ca_root: Option<PathBuf>,
    /// `--public-url` / `BERTH_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--panel-domain` / `BERTH_PANEL_DOMAIN`.
    pub panel_domain: Option<String>,
}

/// Validated settings of one berth process.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Directory of the store and the admin token.
    pub data_dir: PathBuf,
    /// Names the Docker network and labels of this instance.
    pub instance: String,
    /// Edge HTTP listener.
    pub http_addr: SocketAddr,
    /// Edge HTTPS listener.
    pub https_addr: SocketAddr,
    /// Admin API listener.
    pub admin_addr: SocketAddr,
    /// Prometheus metrics listener.
    pub metrics_addr: SocketAddr,
    /// Deadline for a new replica to become healthy.
    pub health_timeout: Duration,
    /// Grace period of `docker stop`.
    pub stop_grace: Duration,
    /// Deadline for an image pull.
    pub pull_timeout: Duration,
    /// Deadline for requests in flight on a leaving replica.
    pub drain_timeout: Duration,
    /// Successful deployments per app one can roll back to.
    pub rollback_window: usize,
    /// Window after a switch in which a failing new version rolls back.
    pub rollback_watch: Duration,
    /// Deployments running at once.
    pub deploy_concurrency: usize,
    /// Whether apps may mount host paths.
    pub allow_bind_mounts: bool,
    /// Deadline to connect to a replica.
    pub connect_timeout: Duration,
    /// Deadline for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Dedicated single-threaded edge workers (0: the main runtime).
    pub edge_workers: usize,
    /// Deadline for an upgraded connection without traffic.
    pub tunnel_idle: Duration,
    /// Where certificates come from.
    pub acme: AcmeSettings,
    /// Handshakes for names without a certificate.
    pub unknown_sni: UnknownSni,
    /// Builds of apps from source.
    pub build: BuildSettings,
    /// How users reach berth itself.
    pub public: PublicSettings,
}

impl Settings {
    /// Reads the config file named by the overrides, if any, and resolves.
    pub fn load(overrides: Overrides) -> Result<Settings, ConfigError> {
        let file = match &overrides.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Settings::resolve(overrides, file)
    }

    /// Merges overrides over the file over the defaults and validates.
    pub fn resolve(o: Overrides, f: FileConfig) -> Result<Settings, ConfigError> {
        let invalid = ConfigError::Invalid;
        let instance = o
            .instance
            .or(f.instance)
            .unwrap_or_else(|| DEFAULT_INSTANCE.to_string());
        validate_name("instance", &instance).map_err(invalid)?;
        let addr = |key: &str, over: Option<String>, file: Option<String>, default: &str| {
            let raw = over.or(file).unwrap_or_else(|| default.to_string());
            raw.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(FieldError::new(
                    key,
                    format!(
                        "{raw:?} is not an address; write IP:PORT, e.g. 0.0.0.0:{}",
                        default.rsplit(':').next().unwrap_or("80")
                    ),
                ))
            })
        };
        let secs = |key: &str, value: Option<u64>, default: u64, max: u64| {
            let v = value.unwrap_or(default);
            if v == 0 || v > max {
                return Err(invalid(FieldError::new(
                    key,
                    format!("{v} is out of range; give 1-{max}"),
                )));
            }
            Ok(v)
        };
        let acme = acme_settings((o.acme_directory, o.acme_email, o.acme_ca_root), f.acme)?;
        let public = public_settings(o.public_url, o.panel_domain, f.server, f.panel)?;
        let settings = Settings {
            data_dir: o
                .data_dir
                .or(f.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            instance,
            http_addr: addr("http_addr", o.http_addr, f.http_addr, "0.0.0.0:80")?,
            https_addr: addr("https_addr", o.https_addr, f.https_addr, "0.0.0.0:443")?,
            admin_addr: addr("admin_addr", o.admin_addr, f.admin_addr, "0.0.0.0:3000")?,
            metrics_addr: addr(
                "metrics_addr",
                o.metrics_addr,
                f.metrics_addr,
                "0.0.0.0:4500",
            )?,
            health_timeout: Duration::from_secs(secs(
                "deploy.health_timeout_secs",
                f.deploy.health_timeout_secs,
                60,
                3600,
            )?),
            stop_grace: Duration::from_secs(secs(
                "deploy.stop_grace_secs",
                f.deploy.stop_grace_secs,
                10,
                600,
            )?),
            pull_timeout: Duration::from_secs(secs(
                "deploy.pull_timeout_secs",
                f.deploy.pull_timeout_secs,
                600,
                86400,
            )?),
            drain_timeout: Duration::from_secs(secs(
                "deploy.drain_timeout_secs",
                f.deploy.drain_timeout_secs,
                30,
                3600,
            )?),
            rollback_watch: Duration::from_secs(match f.deploy.rollback_watch_secs {
                Some(0) => 0,
                other => secs("deploy.rollback_watch_secs", other, 30, 3600)?,
            }),
            rollback_window: secs("deploy.rollback_window", f.deploy.rollback_window, 5, 100)?
                as usize,
            deploy_concurrency: secs("deploy.concurrency", f.deploy.concurrency, 2, 64)? as usize,
            allow_bind_mounts: f.deploy.allow_bind_mounts.unwrap_or(false),
            connect_timeout: Duration::from_millis(secs(
                "proxy.connect_timeout_ms",
                f.proxy.connect_timeout_ms,
                2000,
                60_000,
            )?),
            shutdown_grace: Duration::from_secs(secs(
                "proxy.shutdown_grace_secs",
                f.proxy.shutdown_grace_secs,
                10,
                600,
            )?),
            edge_workers: match f.proxy.workers {
                Some(0) => 0,
                None => std::thread::available_parallelism().map_or(1, |n| n.get().min(64)),
                other => secs("proxy.workers", other, 1, 64)? as usize,
            },
            tunnel_idle: Duration::from_secs(secs(
                "proxy.tunnel_idle_secs",
                f.proxy.tunnel_idle_secs,
                3600,
                7 * 86400,
            )?),
            acme,
            public,
            build: BuildSettings {
                concurrency: secs("build.concurrency", f.build.concurrency, 1, 64)? as usize,
                timeout: Duration::from_secs(secs(
                    "build.timeout_secs",
                    f.build.timeout_secs,
                    1800,
                    86400,
                )?),
                cpus: match f.build.cpus {
                    None => None,
                    Some(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => Some(c),
                    Some(c) => {
                        return Err(invalid(FieldError::new(
                            "build.cpus",
                            format!(
                                "{c} is out of range; give a number of cores above 0, e.g. 1.5"
                            ),
                        )))
                    }
                },
                memory_mb: match f.build.memory_mb {
                    None => 2048,
                    Some(m) if (64..=1 << 22).contains(&m) => m,
                    Some(m) => {
                        return Err(invalid(FieldError::new(
                            "build.memory_mb",
                            format!("{m} is out of range; give at least 64 MiB"),
                        )))
                    }
                },
                max_site_bytes: secs("build.max_site_mb", f.build.max_site_mb, 256, 65536)? << 20,
                registry: registry_settings(
                    f.build.registry,
                    f.build.registry_username,
                    f.build.registry_password_file,
                )?,
            },
            unknown_sni: match f.tls.unknown_sni.as_deref().unwrap_or("self_signed") {
                "self_signed" => UnknownSni::SelfSigned,
                "refuse" => UnknownSni::Refuse,
                other => {
                    return Err(invalid(FieldError::new(
                        "tls.unknown_sni",
                        format!("{other:?} is not a policy; give \"self_signed\" or \"refuse\""),
                    )))
                }
            },
        };
        if settings.data_dir.as_os_str().is_empty() {
            return Err(invalid(FieldError::new(
                "data_dir",
                "is empty; give a directory such as /var/lib/berth",
            )));
        }
        let ports = [
            ("http_addr", settings.http_addr),
            ("https_addr", settings.https_addr),
            ("admin_addr", settings.admin_addr),
            ("metrics_addr", settings.metrics_addr),
        ];
        for (i, (key, a)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..i]
                .iter()
                .find(|(_, b)| a.port() != 0 && a.port() == b.port() && a.ip() == b.ip())
            {
                return Err(invalid(FieldError::new(
                    *key,
                    format!("{a} is also {other}; give each listener its own port"),
                )));
            }
        }
        Ok(settings)
    }
}

/// The `[build]` registry keys, checked together.
fn registry_settings(
    prefix: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
) -> Result<Option<RegistrySettings>, ConfigError> {
    let invalid = ConfigError::Invalid;
    let Some(prefix) = prefix.map(|p| p.trim().trim_end_matches('/').to_string()) else {
        if username.is_some() || password_file.is_some() {
            return Err(invalid(FieldError::new(
                "build.registry",
                "is missing while registry credentials are set; give the repository prefix to push to",
            )));
        }
        return Ok(None);
    };
    let valid = !prefix.is_empty()
        && prefix.len() <= 255
        && prefix.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
        })
        && !prefix.starts_with(['-', '/', '.', ':']);
    if !valid {
        return Err(invalid(FieldError::new(
            "build.registry",
            format!("{prefix:?} is not a repository prefix; write host[:port]/path in lowercase, e.g. registry.example.com/team"),
        )));
    }
    if username.is_some() != password_file.is_some() {
        return Err(invalid(FieldError::new(
            if username.is_some() {
                "build.registry_password_file"
            } else {
                "build.registry_username"
            },
            "is needed too; give both registry_username and registry_password_file, or neither",
        )));
    }
    Ok(Some(RegistrySettings {
        prefix,
        username,
        password_file,
    }))
}

/// A contact email address (trimmed), or an error naming `field`.
pub(crate) fn contact_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!("{raw:?} is not an email address; give one like ops@example.com"),
        ))
    }
}

/// The `[acme]` settings from the overrides of directory, email and CA
/// root (flags and environment) over the file's.
fn acme_settings(
    (directory, email, ca_root): (Option<String>, Option<String>, Option<PathBuf>),
    f: FileAcme,
) -> Result<AcmeSettings, ConfigError> {
    let invalid = ConfigError::Invalid;
    let raw = directory
        .or(f.directory)
        .unwrap_or_else(|| "letsencrypt".to_string());
    let directory = match raw.trim() {
        "letsencrypt" => LETSENCRYPT.to_string(),
        "letsencrypt-staging" => LETSENCRYPT_STAGING.to_string(),
        url if url.starts_with("https://") && url.len() > "https://".len() => url.to_string(),
        other => {
            return Err(invalid(FieldError::new(
                "acme.directory",
                format!(
                    "{other:?} is not an ACME directory; give an https:// URL, \
                     \"letsencrypt\" or \"letsencrypt-staging\""
                ),
            )))
        }
    };
    let email = match email.or(f.email) {
        Some(raw) => Some(contact_email("acme.email", &raw).map_err(invalid)?),
        None => None,
    };
    let ca_root = ca_root.or(f.ca_root);
    if let Some(path) = &ca_root {
        if !path.is_file() {
            return Err(invalid(FieldError::new(
                "acme.ca_root",
                format!(
                    "{} is not a readable file; give a PEM CA certificate",
                    path.display()
                ),
            )));
        }
    }
    let challenge = match f.challenge.as_deref().unwrap_or("http-01") {
        "http-01" => AcmeChallenge::Http01,
        "tls-alpn-01" => AcmeChallenge::TlsAlpn01,
        other => {
            return Err(invalid(FieldError::new(
                "acme.challenge",
                format!("{other:?} is not supported; give \"http-01\" or \"tls-alpn-01\""),
            )))
        }
    };
    Ok(AcmeSettings {
        directory,
        email,
        ca_root,
        challenge,
    })
}

impl FileConfig {
    /// Reads and parses a TOML config file; unknown keys are errors.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses TOML text; the error names the key and the line.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let s = Settings::resolve(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(s.http_addr, "0.0.0.0:80".parse().unwrap());
        assert_eq!(s.admin_addr.port(), 3000);
        assert_eq!(s.metrics_addr.port(), 4500);
        assert_eq!(s.instance, "berth");
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/berth"));
    }

    #[test]
    fn flags_win_over_file() {
        let file = FileConfig::parse(
            "instance = \"fromfile\"\nadmin_addr = \"127.0.0.1:9000\"\n[deploy]\nhealth_timeout_secs = 5\n",
        )
        .unwrap();
        let o = Overrides {
            instance: Some("fromflag".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(o, file).unwrap();
        assert_eq!(s.instance, "fromflag");
        assert_eq!(s.admin_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.health_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = FileConfig::parse("admin_adr = \"x\"").unwrap_err();
        assert!(err.contains("admin_adr"), "{err}");
        let file = FileConfig::parse("[deploy]\nconcurrency = 0").unwrap();
        let err = Settings::resolve(Overrides::default(), file).unwrap_err();
        assert!(err.to_string().contains("deploy.concurrency"), "{err}");
        let o = Overrides {
            http_addr: Some("localhost".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(o, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("http_addr"), "{err}");
        let o = Overrides {
            admin_addr: Some("0.0.0.0:80".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(o, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("admin_addr"), "{err}");
    }

    #[test]
    fn acme_and_tls_settings() {
        let s = Settings::resolve(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(s.acme.directory, LETSENCRYPT);
        assert_eq!(s.acme.challenge, AcmeChallenge::Http01);
        assert_eq!(s.unknown_sni, UnknownSni::SelfSigned);
        let file = FileConfig::parse(
            "[acme]\ndirectory = \"letsencrypt-staging\"\nchallenge = \"tls-alpn-01\"\n\
             [tls]\nunknown_sni = \"refuse\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Overrides::default(), file).unwrap();
        assert_eq!(s.acme.directory, LETSENCRYPT_STAGING);
        assert_eq!(s.acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(s.unknown_sni, UnknownSni::Refuse);
        for (o, key) in [
            (
                Overrides {
                    acme_directory: Some("http://insecure/dir".into()),
                    ..Overrides::default()
                },
                "acme.directory",
            ),
            (
                Overrides {
                    acme_email: Some("not an email".into()),
                    ..Overrides::default()
                },
                "acme.email",
            ),
            (
                Overrides {
                    acme_ca_root: Some("/nonexistent/ca.pem".into()),
                    ..Overrides::default()
                },
                "acme.ca_root",
            ),
        ] {
            let err = Settings::resolve(o, FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let file = FileConfig::parse("[tls]\nunknown_sni = \"maybe\"\n").unwrap();
        let err = Settings::resolve(Overrides::default(), file).unwrap_err();
        assert!(err.to_string().contains("tls.unknown_sni"), "{err}");
    }
}
