//! `berth serve`: bind every listener first (so a taken port fails before
//! anything starts), open the store, make sure an admin token exists,
//! connect to Docker, reconcile, then serve the edge, the admin API and the
//! metrics until SIGTERM/SIGINT, and shut down gracefully.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_config::Settings;
use berth_proxy::{EdgeOptions, EdgeProxy, H3Options, HostCertificates, ProxyMetrics, Router};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use berth_acme::{CertStore, Http01Tokens, Resolver, UnknownName};
use berth_config::UnknownSni;

use crate::listener::FileBudget;
use berth::auth::{ensure_admin_token, TokenOrigin};
use berth::certs::Certificates;
use berth::engine::{ContainerEngine, DockerEngine};
use berth::orchestrator::{DeploySettings, Orchestrator};
use berth::secrets::SecretBox;
use berth::sessions::Sessions;
use berth::store::Store;

/// File in the data directory that tells where berth listens.
pub const ADDRESSES_FILE: &str = "addresses.json";

/// Runs berth until a shutdown signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let files = FileBudget::raise();
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    // The store holds app environments: only berth's user may read it.
    std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {} to mode 0700", settings.data_dir.display()))?;
    let http = std::net::TcpListener::bind(settings.http_addr)
        .with_context(|| format!("binding http_addr {}", settings.http_addr))?;
    let https = std::net::TcpListener::bind(settings.https_addr)
        .with_context(|| format!("binding https_addr {}", settings.https_addr))?;
    // HTTP/3 shares the HTTPS port number, over UDP.
    let quic_addr = SocketAddr::new(settings.https_addr.ip(), https.local_addr()?.port());
    let quic = std::net::UdpSocket::bind(quic_addr)
        .with_context(|| format!("binding https_addr {quic_addr} (UDP, for HTTP/3)"))?;
    let admin = tokio::net::TcpListener::bind(settings.admin_addr)
        .await
        .with_context(|| format!("binding admin_addr {}", settings.admin_addr))?;
    let metrics_listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .with_context(|| format!("binding metrics_addr {}", settings.metrics_addr))?;

    let store_path = settings.data_dir.join("berth.redb");
    let store = Store::open(&store_path).with_context(|| {
        format!(
            "opening the store {} (is another berth using this data directory?)",
            store_path.display()
        )
    })?;
    let (auth, origin) = ensure_admin_token(&store, &settings.data_dir)?;
    match origin {
        TokenOrigin::Created(path) => {
            tracing::info!(path = %path.display(), "created the admin token; send it as 'Authorization: Bearer <token>'")
        }
        TokenOrigin::Existing => tracing::info!("admin token loaded from the store"),
    }

    let secrets = SecretBox::open_or_create(&settings.data_dir)?;
    let sessions = Sessions::new(store.clone(), secrets.clone(), &settings.data_dir)
        .context("preparing sign-in (the setup code)")?;
    let served = Arc::new(
        CertStore::new(match settings.unknown_sni {
            UnknownSni::SelfSigned => UnknownName::SelfSigned,
            UnknownSni::Refuse => UnknownName::Refuse,
        })
        .context("creating the fallback certificate")?,
    );
    let challenges = Arc::new(Http01Tokens::default());

    let engine: Arc<dyn ContainerEngine> =
        Arc::new(DockerEngine::connect(&settings.instance).await.context(
            "connecting to the Docker engine (is it running, and may this user use its socket?)",
        )?);
    let mut registry = crate::metrics::registry();
    let router = Arc::new(Router::default());
    let proxy_metrics = ProxyMetrics::register(&mut registry);
    let builder =
        berth::builds::Builder::new(engine.clone(), settings.build.clone(), &settings.data_dir)
            .context("preparing the build and site directories")?;
    let certs = Certificates::new(
        store.clone(),
        secrets.clone(),
        served.clone(),
        challenges.clone(),
        settings.acme.clone(),
        &mut registry,
    )
    .context("loading the certificates")?;
    let orchestrator = Orchestrator::new(
        engine,
        store,
        router.clone(),
        served.clone(),
        DeploySettings {
            health_timeout: settings.health_timeout,
            stop_grace: settings.stop_grace,
            pull_timeout: settings.pull_timeout,
            drain_timeout: settings.drain_timeout,
            rollback_window: settings.rollback_window,
            rollback_watch: settings.rollback_watch,
            concurrency: settings.deploy_concurrency,
            allow_bind_mounts: settings.allow_bind_mounts,
        },
        builder,
        secrets,
        &mut registry,
    );
    orchestrator
        .reconcile()
        .await
        .context("reconciling the store with Docker")?;
    orchestrator.supervise();
    // Redirects to HTTPS and HSTS follow the valid certificates.
    let routes = orchestrator.clone();
    certs.on_change(move || routes.rebuild_routes());
    // Every change of an app's record ends with its certificates.
    let follow = certs.clone();
    orchestrator.on_app_change(move |app| follow.sync_app(app));

    let shutdown = CancellationToken::new();
    let (edge_stop, edge_watch) = tokio::sync::watch::channel(false);
    let http_addr = http.local_addr()?;
    let https_addr = https.local_addr()?;
    let resolver = Arc::new(Resolver(served));
    let edge = |tls: bool| {
        EdgeProxy::new(
            router.clone(),
            proxy_metrics.clone(),
            EdgeOptions {
                tls,
                connect_timeout: settings.connect_timeout,
                read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
                https_port: https_addr.port(),
                h3_port: Some(https_addr.port()),
                tunnel_idle: settings.tunnel_idle,
                certificates: tls.then(|| resolver.clone() as Arc<dyn HostCertificates>),
            },
            challenges.clone(),
        )
    };
    let tls = berth_proxy::tls_config(resolver.clone());
    let edge_tasks = if settings.edge_workers == 0 {
        let serve = |listener, tls: bool, config| {
            let edge = berth_proxy::serve(listener, edge(tls), config, edge_watch.clone());
            tokio::spawn(async move {
                if let Err(err) = edge.await {
                    tracing::error!(%err, "an edge listener failed");
                }
            })
        };
        [serve(http, false, None), serve(https, true, Some(tls))]
    } else {
        let workers = settings.edge_workers;
        let serve = |listener, tls: bool, config| {
            let threads = berth_proxy::serve_on_threads(
                listener,
                workers,
                || edge(tls),
                config,
                edge_watch.clone(),
            );
            threads.map(|t| tokio::spawn(t.finished()))
        };
        [
            serve(http, false, None).context("starting the edge workers")?,
            serve(https, true, Some(tls)).context("starting the edge workers")?,
        ]
    };
    let h3 = berth_proxy::serve_h3(
        quic,
        resolver,
        router.clone(),
        proxy_metrics.clone(),
        H3Options {
            connect_timeout: settings.connect_timeout,
            read_timeout: berth_proxy::REPLICA_READ_TIMEOUT,
        },
        edge_watch,
    );
    let h3_task = tokio::spawn(async move {
        if let Err(err) = h3.await {
            tracing::error!(%err, "HTTP/3 is off: its listener failed");
        }
    });
    let admin_addr = admin.local_addr()?;
    let behind_edge = settings.public.panel_domain.is_some();
    if let Some(host) = &settings.public.panel_domain {
        // The edge reaches the admin listener on loopback when it listens
        // on every address.
        let ip = match admin_addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        orchestrator.serve_panel(host, SocketAddr::new(ip, admin_addr.port()));
        certs.serve_panel(host);
        tracing::info!(domain = %host, "the edge serves the panel and the API on this domain");
    }
    certs.run(shutdown.clone());

    let instance = berth::instance::Instance::new(
        orchestrator.store().clone(),
        certs.clone(),
        berth_config::InstanceSettings {
            acme_email: settings.acme.email.clone(),
            public_url: settings.public.public_url.clone(),
        },
        settings.public.panel_domain.clone(),
    )
    .context("reading the instance settings")?;
    let api_state = crate::api::ApiState::new(orchestrator.clone(), certs, sessions, instance);
    let panel =
        crate::panel::PanelState::new(api_state.clone(), auth.clone(), settings.data_dir.clone());
    let api = crate::api::router(api_state, auth).merge(crate::panel::router(panel));
    let admin_task = tokio::spawn(crate::listener::serve(
        "admin",
        admin,
        api,
        files.admin(),
        behind_edge,
        shutdown.clone(),
    ));
    let metrics_addr = metrics_listener.local_addr()?;
    let metrics_task = tokio::spawn(crate::listener::serve(
        "metrics",
        metrics_listener,
        crate::metrics::router(Arc::new(registry)),
        files.metrics(),
        false,
        shutdown.clone(),
    ));
    let addresses = Addresses {
        http: http_addr,
        https: https_addr,
        admin: admin_addr,
        metrics: metrics_addr,
    };
    write_addresses(&settings.data_dir, &addresses)?;
    tracing::info!(%http_addr, %https_addr, %admin_addr, %metrics_addr, instance = %settings.instance, "berth is serving");

    wait_for_signal().await?;
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = edge_stop.send(true);
    shutdown.cancel();
    // Live log streams end now, so the admin listener's connections can.
    orchestrator.end_log_follows();
    let deadline = tokio::time::Instant::now() + settings.shutdown_grace;
    while proxy_metrics.in_flight_now() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if proxy_metrics.in_flight_now() > 0 {
        tracing::warn!(
            requests = proxy_metrics.in_flight_now(),
            "shutdown deadline reached with requests in flight"
        );
    }
    orchestrator
        .shutdown(settings.stop_grace + Duration::from_secs(5))
        .await;
    let remaining =
        deadline.saturating_duration_since(tokio::time::Instant::now()) + Duration::from_secs(1);
    let _ = tokio::time::timeout(remaining, async {
        for task in edge_tasks {
            let _ = task.await;
        }
        let _ = h3_task.await;
        let _ = admin_task.await;
        let _ = metrics_task.await;
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Where berth listens.
struct Addresses {
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    metrics: SocketAddr,
}

/// Writes where berth listens (useful with `:0` ports), atomically.
fn write_addresses(dir: &Path, a: &Addresses) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "pid": std::process::id(),
        "http": a.http.to_string(),
        "https": a.https.to_string(),
        "admin": a.admin.to_string(),
        "metrics": a.metrics.to_string(),
    });
    let tmp = dir.join(format!("{ADDRESSES_FILE}.tmp"));
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(&tmp, dir.join(ADDRESSES_FILE))?;
    Ok(())
}
