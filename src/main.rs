//! berth: a self-hosted PaaS in one process. The edge proxy, the Docker
//! orchestrator, the admin API and the metrics endpoint share one tokio
//! runtime and one in-memory route table. This binary is the wiring, the
//! admin API and the panel; the control plane is the `berth` library.

#![forbid(unsafe_code)]

mod api;
mod cli;
mod listener;
mod metrics;
mod panel;
mod serve;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // One crypto provider for every TLS user in the process (the edge,
    // HTTP/3, the ACME client); an earlier install is the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn")),
        )
        .init();
    match cli.command {
        cli::Command::Serve(args) => {
            let settings = match berth_config::Settings::load(args.into()) {
                Ok(s) => s,
                Err(err) => {
                    eprintln!("berth: {err}");
                    return std::process::ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("berth: cannot start the runtime: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::run(settings)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("berth: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
