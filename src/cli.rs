//! The command line: `berth serve` and its flags, each also settable by a
//! `BERTH_*` environment variable (flag > env > config file > default).

use std::path::PathBuf;

use berth_config::Overrides;
use clap::{Args, Parser, Subcommand};

/// berth: a self-hosted PaaS in one process.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the edge proxy, the orchestrator and the admin API.
    Serve(ServeArgs),
}

/// Flags of `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the store and the admin token [default: /var/lib/berth].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Instance name: names the Docker network and labels [default: berth].
    #[arg(long, env = "BERTH_INSTANCE")]
    pub instance: Option<String>,
    /// Edge HTTP address [default: 0.0.0.0:80].
    #[arg(long, env = "BERTH_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Edge HTTPS address [default: 0.0.0.0:443].
    #[arg(long, env = "BERTH_HTTPS_ADDR")]
    pub https_addr: Option<String>,
    /// Admin API address [default: 0.0.0.0:3000].
    #[arg(long, env = "BERTH_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    /// Prometheus metrics address [default: 0.0.0.0:4500].
    #[arg(long, env = "BERTH_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// ACME directory URL, or `letsencrypt` / `letsencrypt-staging`
    /// [default: letsencrypt].
    #[arg(long, env = "BERTH_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact email of the ACME account.
    #[arg(long, env = "BERTH_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// PEM CA root to trust for the ACME server's own HTTPS (test CAs).
    #[arg(long, env = "BERTH_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,
    /// Address users reach berth at, e.g. https://berth.example.com
    /// (webhook URLs are built from it).
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Host the edge serves the panel and API on, with an ACME certificate.
    #[arg(long, env = "BERTH_PANEL_DOMAIN")]
    pub panel_domain: Option<String>,
}

impl From<ServeArgs> for Overrides {
    fn from(a: ServeArgs) -> Self {
        Overrides {
            config: a.config,
            data_dir: a.data_dir,
            instance: a.instance,
            http_addr: a.http_addr,
            https_addr: a.https_addr,
            admin_addr: a.admin_addr,
            metrics_addr: a.metrics_addr,
            acme_directory: a.acme_directory,
            acme_email: a.acme_email,
            acme_ca_root: a.acme_ca_root,
            public_url: a.public_url,
            panel_domain: a.panel_domain,
        }
    }
}
