//! What the edge routes to: each app's serving replicas or static site,
//! berth's own panel route, and the route table made from them. Every
//! change of what serves an app goes through [`Routing`], which makes the
//! next table snapshot from the current one with that app's routes
//! replaced ([`RouteTable::with_app`]), so it costs what the app has, not
//! what berth holds. The whole table is built at start and when
//! certificates change. Snapshots are swapped in, never edited.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use berth_acme::CertStore;
use berth_config::{AppSpec, Domain};
use berth_proxy::{
    AppPages, Backend, RouteSpec, RouteTable, Router, Rules, Site, Upstream, UpstreamState,
};
use time::OffsetDateTime;

use super::metrics::OrchestratorMetrics;
use super::{lock, Orchestrator};
use crate::store::{AppRecord, Store};

/// A replica serving an app.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Container id.
    pub container: String,
    /// Where the proxy sends requests.
    pub addr: SocketAddr,
    /// In-flight count and drain flag, shared with every route table.
    pub state: Arc<UpstreamState>,
}

impl Replica {
    /// A replica that has not served yet.
    pub fn new(container: String, addr: SocketAddr) -> Self {
        Self {
            container,
            addr,
            state: UpstreamState::new(),
        }
    }
}

/// The route owner of berth's own panel domain (no app can be named so).
const PANEL: &str = "-panel";

/// The serving side of every app and the table the edge reads.
pub(super) struct Routing {
    store: Store,
    router: Arc<Router>,
    /// A route redirects to HTTPS and sends HSTS only while one of these
    /// is valid for its host.
    certs: Arc<CertStore>,
    metrics: OrchestratorMetrics,
    /// What serves each app; held while a snapshot is made from it, so
    /// snapshots are swapped in the order of the changes.
    serving: Mutex<Serving>,
    /// berth's own route: the panel domain to the admin listener.
    panel: Mutex<Option<(String, SocketAddr)>>,
    /// Each route's compiled rules by (app, host, prefix), reused while
    /// they stay the same, so a rate limit's counts and basic auth's
    /// remembered credentials outlive a deploy or another app's change.
    rules: Mutex<HashMap<RuleKey, Arc<Rules>>>,
}

/// The route a compiled rule set belongs to: (app, host, prefix).
type RuleKey = (String, String, String);

#[derive(Default)]
struct Serving {
    /// Serving replicas by app.
    replicas: HashMap<String, Vec<Replica>>,
    /// Static sites by app.
    sites: HashMap<String, Arc<Site>>,
    /// Replicas in `replicas`, for the metrics.
    running: usize,
}

impl Serving {
    /// Sets `app`'s replicas (none: forgets the app); returns the previous.
    fn set(&mut self, app: &str, replicas: Vec<Replica>) -> Vec<Replica> {
        self.running += replicas.len();
        let before = if replicas.is_empty() {
            self.replicas.remove(app)
        } else {
            self.replicas.insert(app.to_string(), replicas)
        }
        .unwrap_or_default();
        self.running -= before.len();
        before
    }
}

impl Routing {
    pub(super) fn new(
        store: Store,
        router: Arc<Router>,
        certs: Arc<CertStore>,
        metrics: OrchestratorMetrics,
    ) -> Self {
        Self {
            store,
            router,
            certs,
            metrics,
            serving: Mutex::new(Serving::default()),
            panel: Mutex::new(None),
            rules: Mutex::default(),
        }
    }

    /// Builds the whole table from every app and swaps it in: at start,
    /// and when a certificate is installed, removed or expires (a domain's
    /// redirect to HTTPS and its HSTS apply only while a valid certificate
    /// for its host is installed).
    pub(super) fn rebuild(&self) {
        let serving = lock(&self.serving);
        let mut specs = Vec::new();
        for app in self.store.apps() {
            specs.extend(self.app_routes(&app, &serving));
        }
        specs.extend(self.panel_route());
        self.router.swap(RouteTable::build(specs));
        self.count(&serving);
    }

    /// Makes `app`'s routes follow its record and what serves it (or
    /// removes them when the app is gone), leaving every other route as
    /// it is.
    pub(super) fn refresh(&self, app: &str) {
        let serving = lock(&self.serving);
        self.swap_app(app, &serving);
    }

    fn swap_app(&self, app: &str, serving: &Serving) {
        let specs = match self.store.shared_app(app) {
            Ok(record) => self.app_routes(&record, serving),
            Err(_) => Vec::new(),
        };
        let next = self.router.load().with_app(app, specs);
        self.router.swap(next);
        self.count(serving);
    }

    /// Changes `app`'s serving replicas with `edit` and swaps its routes in
    /// the same turn; returns what `edit` returns.
    pub(super) fn edit<R>(&self, app: &str, edit: impl FnOnce(&mut Vec<Replica>) -> R) -> R {
        let mut serving = lock(&self.serving);
        let mut list = serving.set(app, Vec::new());
        let out = edit(&mut list);
        serving.set(app, list);
        self.swap_app(app, &serving);
        out
    }

    /// `app` serves from `replicas` now (not from a static site); returns
    /// the replicas that served it before.
    pub(super) fn serve(&self, app: &str, replicas: Vec<Replica>) -> Vec<Replica> {
        let mut serving = lock(&self.serving);
        serving.sites.remove(app);
        let before = serving.set(app, replicas);
        self.swap_app(app, &serving);
        before
    }

    /// `app` serves from no replica any more; returns those that did.
    pub(super) fn take(&self, app: &str) -> Vec<Replica> {
        self.edit(app, std::mem::take)
    }

    /// `app` is served by the edge from `site` now; its replicas, if any,
    /// still serve until [`Routing::take`]s them (a site wins).
    pub(super) fn serve_site(&self, app: &str, site: Arc<Site>) {
        let mut serving = lock(&self.serving);
        serving.sites.insert(app.to_string(), site);
        self.swap_app(app, &serving);
    }

    /// Records replicas found at start without swapping anything (a
    /// [`Routing::rebuild`] follows).
    pub(super) fn adopt(&self, app: &str, replicas: Vec<Replica>) {
        lock(&self.serving).set(app, replicas);
    }

    /// Records a static site found at start (a rebuild follows).
    pub(super) fn adopt_site(&self, app: &str, site: Arc<Site>) {
        lock(&self.serving).sites.insert(app.to_string(), site);
    }

    /// Forgets a deleted app's site; its routes go at the next refresh.
    pub(super) fn forget_site(&self, app: &str) {
        lock(&self.serving).sites.remove(app);
    }

    /// The replicas serving `app`.
    pub(super) fn replicas(&self, app: &str) -> Vec<Replica> {
        lock(&self.serving)
            .replicas
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `app` is a static site the edge serves.
    pub(super) fn is_site(&self, app: &str) -> bool {
        lock(&self.serving).sites.contains_key(app)
    }

    /// How many replicas serve `app` (1 for a static site).
    pub(super) fn serving(&self, app: &str) -> usize {
        let serving = lock(&self.serving);
        if serving.sites.contains_key(app) {
            return 1;
        }
        serving.replicas.get(app).map_or(0, Vec::len)
    }

    /// The routes of one app's domains.
    fn app_routes(&self, app: &AppRecord, serving: &Serving) -> Vec<RouteSpec> {
        if app.spec.domains.is_empty() {
            return Vec::new();
        }
        let name = app.spec.name.as_str();
        let site = serving.sites.get(name).filter(|_| !app.stopped);
        let backend = match site {
            Some(site) => Backend::site(name, site.clone()),
            None if app.stopped => Backend::stopped(name),
            None => Backend::with_upstreams(
                name,
                serving
                    .replicas
                    .get(name)
                    .map(|rs| {
                        rs.iter()
                            .map(|r| Upstream::with_state(r.addr, r.state.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        };
        let backend = Arc::new(backend.with_pages(pages(&app.spec)));
        let now = OffsetDateTime::now_utc();
        let rules = self.rules_of(name, &app.spec.domains);
        app.spec
            .domains
            .iter()
            .zip(rules)
            .map(|(d, rules)| RouteSpec {
                host: d.host.clone(),
                path_prefix: d.path_prefix.clone(),
                strip_prefix: d.strip_prefix,
                redirect_https: d.redirect_https,
                hsts: d.hsts,
                // Only asked about when it matters.
                certified: (d.redirect_https || d.hsts) && self.certs.serves_valid(&d.host, now),
                backend: backend.clone(),
                rules,
            })
            .collect()
    }

    /// The compiled rules of `app`'s domains, in order: the ones compiled
    /// before where they did not change (see [`Routing::rules`]).
    fn rules_of(&self, app: &str, domains: &[Domain]) -> Vec<Option<Arc<Rules>>> {
        let mut cache = lock(&self.rules);
        let mut kept = Vec::new();
        let compiled = domains
            .iter()
            .map(|d| {
                let key = (app.to_string(), d.host.clone(), d.path_prefix.clone());
                let reused = cache.get(&key).filter(|r| *r.source() == d.rules).cloned();
                let rules = reused.or_else(|| Rules::compile(&d.rules).map(Arc::new))?;
                kept.push((key, rules.clone()));
                Some(rules)
            })
            .collect();
        cache.retain(|(a, _, _), _| a != app);
        cache.extend(kept);
        compiled
    }

    /// berth's own route, when it has a panel domain.
    fn panel_route(&self) -> Option<RouteSpec> {
        let (host, admin) = lock(&self.panel).clone()?;
        Some(RouteSpec {
            certified: self.certs.serves_valid(&host, OffsetDateTime::now_utc()),
            host,
            path_prefix: "/".into(),
            strip_prefix: false,
            redirect_https: true,
            hsts: false,
            backend: Arc::new(Backend::new(PANEL, vec![admin])),
            rules: None,
        })
    }

    fn count(&self, serving: &Serving) {
        self.metrics
            .set_state(self.store.app_count(), serving.running);
    }

    /// Routes `host` on the edge to the admin listener at `admin` (the
    /// panel and the API under berth's own domain); no app may take it.
    pub(super) fn serve_panel(&self, host: &str, admin: SocketAddr) {
        *lock(&self.panel) = Some((host.to_string(), admin));
        let _turn = lock(&self.serving);
        let next = self
            .router
            .load()
            .with_app(PANEL, self.panel_route().into_iter().collect());
        self.router.swap(next);
    }

    /// berth's own panel domain, if it has one.
    pub(super) fn panel_domain(&self) -> Option<String> {
        lock(&self.panel).as_ref().map(|(h, _)| h.clone())
    }
}

impl Orchestrator {
    /// Builds the whole route table from every app and swaps it in (at
    /// start, and when certificates change).
    pub fn rebuild_routes(&self) {
        self.inner.routing.rebuild();
    }

    /// Routes `host` on the edge to the admin listener at `admin` (the
    /// panel and the API under berth's own domain); no app may take it.
    pub fn serve_panel(&self, host: &str, admin: SocketAddr) {
        self.inner.routing.serve_panel(host, admin);
    }

    /// berth's own panel domain, if it has one.
    pub fn panel_domain(&self) -> Option<String> {
        self.inner.routing.panel_domain()
    }
}

/// The app's own pages at the edge: its maintenance page while it is in
/// maintenance, and its 502/503/504 pages.
fn pages(spec: &AppSpec) -> AppPages {
    let maintenance = &spec.maintenance;
    AppPages {
        maintenance: maintenance
            .enabled
            .then(|| berth_proxy::maintenance_page(maintenance.message.as_deref())),
        errors: spec
            .error_pages
            .iter()
            .map(|(status, page)| (*status, bytes::Bytes::from(page.clone())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_config::AppInput;
    use prometheus_client::registry::Registry;

    fn routing() -> (tempfile::TempDir, Routing, Arc<Router>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("berth.redb")).expect("store");
        let router = Arc::new(Router::default());
        let metrics = OrchestratorMetrics::register(&mut Registry::default());
        let certs = Arc::new(
            berth_acme::CertStore::new(berth_acme::UnknownName::SelfSigned).expect("certs"),
        );
        let routing = Routing::new(store, router.clone(), certs, metrics);
        (dir, routing, router)
    }

    fn app(routing: &Routing, json: serde_json::Value) {
        let spec = serde_json::from_value::<AppInput>(json)
            .expect("input")
            .validate()
            .expect("valid");
        let now = OffsetDateTime::now_utc();
        routing
            .store
            .create_app(&AppRecord {
                spec,
                created_at: now,
                updated_at: now,
                active_deployment: None,
                stopped: false,
                vault: None,
            })
            .expect("created");
    }

    fn replica(n: u8) -> Replica {
        Replica::new(format!("c{n}"), SocketAddr::from(([10, 0, 0, n], 80)))
    }

    fn upstreams(router: &Router, host: &str) -> Option<Vec<SocketAddr>> {
        let table = router.load();
        let route = table.lookup(host, "/")?;
        Some(
            route
                .backend()
                .upstreams()
                .iter()
                .map(|u| u.addr())
                .collect(),
        )
    }

    #[test]
    fn what_serves_an_app_and_its_routes_change_together() {
        let (_dir, routing, router) = routing();
        app(
            &routing,
            serde_json::json!({"name": "a", "image": "x", "port": 80,
            "domains": [{"host": "a.test"}]}),
        );
        app(
            &routing,
            serde_json::json!({"name": "b", "image": "x", "port": 80,
            "domains": [{"host": "b.test"}]}),
        );
        routing.rebuild();
        assert_eq!(upstreams(&router, "a.test"), Some(vec![]));
        assert!(routing.serve("a", vec![replica(1), replica(2)]).is_empty());
        assert_eq!(upstreams(&router, "a.test").map(|u| u.len()), Some(2));
        assert_eq!(routing.serving("a"), 2);
        // A rolling step: one old replica out, a new one in.
        routing.edit("a", |list| {
            list.retain(|r| r.container != "c1");
            list.push(replica(3));
        });
        let now = upstreams(&router, "a.test").unwrap_or_default();
        assert_eq!(now, vec![replica(2).addr, replica(3).addr]);
        // b never moved.
        assert_eq!(upstreams(&router, "b.test"), Some(vec![]));
        let gone = routing.take("a");
        assert_eq!(gone.len(), 2);
        assert_eq!(upstreams(&router, "a.test"), Some(vec![]));
        assert_eq!(routing.serving("a"), 0);
        // Deleted from the store: its routes go at the next refresh.
        routing.store.delete_app("a").expect("deleted");
        routing.refresh("a");
        assert_eq!(upstreams(&router, "a.test"), None);
        assert_eq!(routing.serving.lock().map(|s| s.running).ok(), Some(0));
    }
}
