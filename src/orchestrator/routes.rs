//! The route table the edge reads: each app's routes made from its record,
//! its live replicas or static site, and the installed certificates. A
//! change of one app makes the next snapshot from the current one with
//! that app's routes replaced ([`RouteTable::with_app`]), so it costs what
//! the app has, not what berth holds; the whole table is built at start
//! and when certificates change. Snapshots are swapped in, never edited.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use berth_proxy::{Backend, RouteSpec, RouteTable, Site, Upstream};
use time::OffsetDateTime;

use super::{lock, Orchestrator, Replica};
use crate::store::AppRecord;

/// The route owner of berth's own panel domain (no app can be named so).
const PANEL: &str = "-panel";

impl Orchestrator {
    /// Builds the whole route table from every app and swaps it in: at
    /// start, and when a certificate is installed, removed or expires (a
    /// domain's redirect to HTTPS and its HSTS apply only while a valid
    /// certificate for its host is installed).
    pub fn rebuild_routes(&self) {
        let _order = lock(&self.inner.rebuild);
        let apps = self.inner.store.apps();
        let mut specs = Vec::new();
        {
            let live = lock(&self.inner.live);
            let sites = lock(&self.inner.sites);
            for app in &apps {
                specs.extend(self.app_routes(app, &live, &sites));
            }
        }
        specs.extend(self.panel_routes());
        self.inner.router.swap(RouteTable::build(specs));
        self.count_state();
    }

    /// Makes `app`'s routes follow its record, live replicas and site (or
    /// removes them when the app is gone), leaving every other route as it
    /// is. Call after every change of one app.
    pub fn refresh_routes(&self, app: &str) {
        let _order = lock(&self.inner.rebuild);
        let specs = match self.inner.store.shared_app(app) {
            Ok(record) => {
                let live = lock(&self.inner.live);
                let sites = lock(&self.inner.sites);
                self.app_routes(&record, &live, &sites)
            }
            Err(_) => Vec::new(),
        };
        let next = self.inner.router.load().with_app(app, specs);
        self.inner.router.swap(next);
        self.count_state();
    }

    /// The routes of one app's domains.
    fn app_routes(
        &self,
        app: &AppRecord,
        live: &HashMap<String, Vec<Replica>>,
        sites: &HashMap<String, Arc<Site>>,
    ) -> Vec<RouteSpec> {
        if app.spec.domains.is_empty() {
            return Vec::new();
        }
        let name = app.spec.name.as_str();
        let site = sites.get(name).filter(|_| !app.stopped);
        let backend = Arc::new(match site {
            Some(site) => Backend::site(name, site.clone()),
            None if app.stopped => Backend::stopped(name),
            None => Backend::with_upstreams(
                name,
                live.get(name)
                    .map(|rs| {
                        rs.iter()
                            .map(|r| Upstream::with_state(r.addr, r.state.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        });
        let now = OffsetDateTime::now_utc();
        app.spec
            .domains
            .iter()
            .map(|d| RouteSpec {
                host: d.host.clone(),
                path_prefix: d.path_prefix.clone(),
                strip_prefix: d.strip_prefix,
                redirect_https: d.redirect_https,
                hsts: d.hsts,
                // Only asked about when it matters.
                certified: (d.redirect_https || d.hsts)
                    && self.inner.certs.serves_valid(&d.host, now),
                backend: backend.clone(),
            })
            .collect()
    }

    /// berth's own route, when it has a panel domain.
    fn panel_routes(&self) -> Option<RouteSpec> {
        let (host, admin) = lock(&self.inner.panel).clone()?;
        Some(RouteSpec {
            certified: self
                .inner
                .certs
                .serves_valid(&host, OffsetDateTime::now_utc()),
            host,
            path_prefix: "/".into(),
            strip_prefix: false,
            redirect_https: true,
            hsts: false,
            backend: Arc::new(Backend::new(PANEL, vec![admin])),
        })
    }

    fn count_state(&self) {
        let running = lock(&self.inner.live).values().map(Vec::len).sum::<usize>();
        self.inner
            .metrics
            .set_state(self.inner.store.app_count(), running);
    }

    /// Routes `host` on the edge to the admin listener at `admin` (the
    /// panel and the API under berth's own domain); no app may take it.
    pub fn serve_panel(&self, host: &str, admin: SocketAddr) {
        *lock(&self.inner.panel) = Some((host.to_string(), admin));
        let _order = lock(&self.inner.rebuild);
        let next = self
            .inner
            .router
            .load()
            .with_app(PANEL, self.panel_routes().into_iter().collect());
        self.inner.router.swap(next);
    }

    /// berth's own panel domain, if it has one.
    pub fn panel_domain(&self) -> Option<String> {
        lock(&self.inner.panel).as_ref().map(|(h, _)| h.clone())
    }
}
