//! Process settings: the TOML config file (`File*`), the overrides from flags
//! and `BERTH_*` variables, and the validated [`Settings`] they resolve to
//! (flag > env > file > default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names::validate_name;
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
}

/// `[proxy]`: the edge proxy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    /// Milliseconds to connect to a replica before trying another; default 2000.
    pub connect_timeout_ms: Option<u64>,
    /// Seconds in-flight requests get to finish at shutdown; default 10.
    pub shutdown_grace_secs: Option<u64>,
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
    /// Deadline to connect to a replica.
    pub connect_timeout: Duration,
    /// Deadline for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
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
}
