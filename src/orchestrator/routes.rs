//! The route table the edge reads, rebuilt whole from the store's apps,
//! the live replicas, the static sites and the installed certificates,
//! then swapped in; and berth's own panel route.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_proxy::{Backend, RouteSpec, RouteTable, Upstream};
use time::OffsetDateTime;

use super::{lock, Orchestrator};
use crate::store::StoreError;

impl Orchestrator {
    /// Rebuilds the route table from the store's apps and the live
    /// replicas, and swaps it in. A domain's redirect to HTTPS and its
    /// HSTS apply only while a valid certificate for its host is
    /// installed; call this again when one is installed, removed or
    /// expires.
    pub fn rebuild_routes(&self) -> Result<(), StoreError> {
        let _order = lock(&self.inner.rebuild);
        let apps = self.inner.store.apps()?;
        let now = OffsetDateTime::now_utc();
        let certified = |host: &str| self.inner.certs.serves_valid(host, now);
        let live = lock(&self.inner.live);
        let sites = lock(&self.inner.sites);
        let mut specs = Vec::new();
        for app in &apps {
            if app.spec.domains.is_empty() {
                continue;
            }
            let site = sites.get(&app.spec.name).filter(|_| !app.stopped);
            let upstreams = live
                .get(&app.spec.name)
                .map(|rs| {
                    rs.iter()
                        .map(|r| Upstream::with_state(r.addr, r.state.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let backend = Arc::new(match site {
                Some(site) => Backend::site(app.spec.name.as_str(), site.clone()),
                None if app.stopped => Backend::stopped(app.spec.name.as_str()),
                None => Backend::with_upstreams(app.spec.name.as_str(), upstreams),
            });
            for d in &app.spec.domains {
                specs.push(RouteSpec {
                    host: d.host.clone(),
                    path_prefix: d.path_prefix.clone(),
                    strip_prefix: d.strip_prefix,
                    redirect_https: d.redirect_https,
                    hsts: d.hsts,
                    // Only asked about when it matters.
                    certified: (d.redirect_https || d.hsts) && certified(&d.host),
                    backend: backend.clone(),
                });
            }
        }
        if let Some((host, admin)) = lock(&self.inner.panel).clone() {
            specs.push(RouteSpec {
                certified: certified(&host),
                host,
                path_prefix: "/".into(),
                strip_prefix: false,
                redirect_https: true,
                hsts: false,
                backend: Arc::new(Backend::new("-panel", vec![admin])),
            });
        }
        let running = live.values().map(Vec::len).sum::<usize>();
        drop(sites);
        drop(live);
        self.inner.router.swap(RouteTable::build(specs));
        self.inner.metrics.set_state(apps.len(), running);
        Ok(())
    }

    /// Routes `host` on the edge to the admin listener at `admin` (the
    /// panel and the API under berth's own domain); no app may take it.
    pub fn serve_panel(&self, host: &str, admin: SocketAddr) -> Result<(), StoreError> {
        *lock(&self.inner.panel) = Some((host.to_string(), admin));
        self.rebuild_routes()
    }

    /// berth's own panel domain, if it has one.
    pub fn panel_domain(&self) -> Option<String> {
        lock(&self.inner.panel).as_ref().map(|(h, _)| h.clone())
    }
}
