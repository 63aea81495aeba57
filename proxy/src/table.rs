//! The route table: host (exact, then one-label wildcard) → path prefixes
//! (longest first) → an app's backend of replica addresses. Built whole by
//! the orchestrator, or made from the previous snapshot with one app's
//! routes replaced ([`RouteTable::with_app`]); never mutated afterwards,
//! except for the round-robin cursor of each backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::rules::Rules;
use crate::shards::Shards;
use crate::{Site, Upstream};

/// The live replicas of one app, shared by all routes of the app; or,
/// for a static site, the site's files.
#[derive(Debug)]
pub struct Backend {
    app: Arc<str>,
    upstreams: Box<[Upstream]>,
    cursor: AtomicUsize,
    site: Option<Arc<Site>>,
    /// Stopped by its owner (not merely without a live replica).
    stopped: bool,
    /// The app's pages: maintenance and its own 502/503/504.
    pages: Option<Box<AppPages>>,
}

/// An app's own pages at the edge.
#[derive(Debug, Clone, Default)]
pub struct AppPages {
    /// While set, every route of the app answers 503 with this page.
    pub maintenance: Option<bytes::Bytes>,
    /// Pages replacing the edge's own 502, 503 and 504 for the app.
    pub errors: Vec<(u16, bytes::Bytes)>,
}

impl Backend {
    /// A backend for `app` with fresh replicas at these addresses (may be empty).
    pub fn new(app: impl Into<Arc<str>>, addrs: Vec<SocketAddr>) -> Self {
        Self::with_upstreams(app, addrs.into_iter().map(Upstream::new).collect())
    }

    /// A backend for `app` over replicas whose state outlives this table.
    pub fn with_upstreams(app: impl Into<Arc<str>>, upstreams: Vec<Upstream>) -> Self {
        Self {
            app: app.into(),
            upstreams: upstreams.into_boxed_slice(),
            cursor: AtomicUsize::new(0),
            site: None,
            stopped: false,
            pages: None,
        }
    }

    /// A backend for `app` that is a static site, answered by the edge
    /// from memory; it has no replicas.
    pub fn site(app: impl Into<Arc<str>>, site: Arc<Site>) -> Self {
        Self {
            app: app.into(),
            upstreams: Box::default(),
            cursor: AtomicUsize::new(0),
            site: Some(site),
            stopped: false,
            pages: None,
        }
    }

    /// A backend for `app` that its owner stopped: no replica, and its
    /// routes say so (a 503 of its own, not "try again shortly").
    pub fn stopped(app: impl Into<Arc<str>>) -> Self {
        Self {
            stopped: true,
            ..Self::new(app, Vec::new())
        }
    }

    /// This backend with the app's own pages (none when `pages` has none).
    pub fn with_pages(mut self, pages: AppPages) -> Self {
        let any = pages.maintenance.is_some() || !pages.errors.is_empty();
        self.pages = any.then(|| Box::new(pages));
        self
    }

    /// The maintenance page, while the app is in maintenance.
    pub fn maintenance(&self) -> Option<&bytes::Bytes> {
        self.pages.as_ref()?.maintenance.as_ref()
    }

    /// The app's own page for an edge error `status`, if it has one.
    pub fn error_page(&self, status: u16) -> Option<&bytes::Bytes> {
        let pages = self.pages.as_ref()?;
        pages
            .errors
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, p)| p)
    }

    /// Whether the app was stopped by its owner.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The static site, when the app is one.
    pub fn static_site(&self) -> Option<&Arc<Site>> {
        self.site.as_ref()
    }

    /// The app's name (a bounded metrics label).
    pub fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The replicas.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// Starts a round-robin turn: the index of the first replica to try.
    pub fn start(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }

    /// The replica for try number `attempt` (0-based) of a turn that began at
    /// `start`; each try of a turn gets a different replica until all were tried.
    pub fn pick(&self, start: usize, attempt: usize) -> Option<&Upstream> {
        if attempt >= self.upstreams.len() {
            return None;
        }
        let i = start.wrapping_add(attempt) % self.upstreams.len();
        Some(&self.upstreams[i])
    }
}

/// One route: the part of a host that belongs to one app.
#[derive(Debug, Clone)]
pub struct Route {
    prefix: Arc<str>,
    strip_prefix: bool,
    redirect_https: bool,
    hsts: bool,
    backend: Arc<Backend>,
    rules: Option<Arc<Rules>>,
}

impl Route {
    fn new(spec: RouteSpec) -> Route {
        Route {
            prefix: spec.path_prefix.into(),
            strip_prefix: spec.strip_prefix,
            redirect_https: https_applies(spec.redirect_https, spec.certified),
            hsts: https_applies(spec.hsts, spec.certified),
            backend: spec.backend,
            rules: spec.rules,
        }
    }

    /// The route's rules, if it has any.
    pub fn rules(&self) -> Option<&Arc<Rules>> {
        self.rules.as_ref()
    }

    /// The path prefix (`/` or `/x/y` without trailing slash).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the prefix is removed before forwarding.
    pub fn strip_prefix(&self) -> bool {
        self.strip_prefix
    }

    /// Whether plain HTTP requests are redirected to HTTPS.
    pub fn redirect_https(&self) -> bool {
        self.redirect_https
    }

    /// Whether HTTPS responses carry `Strict-Transport-Security`.
    pub fn hsts(&self) -> bool {
        self.hsts
    }

    /// Where the route goes.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }
}

/// Whether `path` lies under `prefix`, on a segment boundary: `/api`
/// matches `/api` and `/api/x` but not `/apix`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Input to [`RouteTable::build`]: one (host, prefix) owned by a backend.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Normalized host (lowercase, no port); `*.example.com` for a wildcard.
    pub host: String,
    /// Normalized path prefix.
    pub path_prefix: String,
    /// Whether to strip the prefix.
    pub strip_prefix: bool,
    /// Whether plain HTTP is to be redirected to HTTPS (once `certified`).
    pub redirect_https: bool,
    /// Whether HTTPS responses are to carry HSTS (once `certified`).
    pub hsts: bool,
    /// Whether a valid certificate for the host is installed now (issued
    /// by ACME or uploaded); see [`https_applies`].
    pub certified: bool,
    /// The app's backend.
    pub backend: Arc<Backend>,
    /// The route's compiled rules ([`Rules::compile`]); `None`: none.
    pub rules: Option<Arc<Rules>>,
}

/// Whether a route's redirect to HTTPS and its HSTS take effect: only
/// while a valid certificate for its host is installed. Until then (an
/// order pending or failed, an expired certificate) plain HTTP serves the
/// app, and no browser is told to insist on HTTPS, so a failed issuance
/// never locks a site out. Decided when the table is built; the table is
/// rebuilt whenever a certificate is installed, removed or expires.
pub fn https_applies(wanted: bool, certified: bool) -> bool {
    wanted && certified
}

/// An immutable routing snapshot. Its maps are sharded ([`Shards`]), so
/// [`RouteTable::with_app`] makes the next snapshot by copying only the
/// shards one app's hosts live in.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: Shards<Box<[Route]>>,
    /// By parent domain: `*.a.com` is kept under `a.com`.
    wildcard: Shards<Box<[Route]>>,
    /// Each app's hosts: (wildcard, the key its routes are kept under).
    hosts_of: Shards<Box<[HostKey]>>,
    routes: usize,
}

/// Where a host's routes are kept: `*.a.com` is (true, `a.com`).
type HostKey = (bool, Arc<str>);

impl RouteTable {
    /// Builds a table. When two specs claim the same host and prefix, the
    /// first one wins (the store never lets that happen). Each host's text
    /// is allocated once and shared by its map key and its app's index.
    pub fn build(specs: impl IntoIterator<Item = RouteSpec>) -> Self {
        let mut maps: [HashMap<Arc<str>, Vec<Route>>; 2] = Default::default();
        let mut hosts_of: HashMap<Arc<str>, Vec<HostKey>> = HashMap::new();
        let mut count = 0;
        for spec in specs {
            let (wild, key) = split_host(&spec.host);
            let map = &mut maps[usize::from(wild)];
            let key = match map.get_key_value(key) {
                Some((k, routes)) => {
                    if routes.iter().any(|r| *r.prefix == *spec.path_prefix) {
                        continue;
                    }
                    k.clone()
                }
                None => Arc::from(key),
            };
            let app = spec.backend.app().clone();
            match hosts_of.get_mut(&app) {
                Some(hosts) => {
                    if !hosts.iter().any(|(w, k)| *w == wild && *k == key) {
                        hosts.push((wild, key.clone()));
                    }
                }
                None => {
                    hosts_of.insert(app, vec![(wild, key.clone())]);
                }
            }
            map.entry(key).or_default().push(Route::new(spec));
            count += 1;
        }
        let [exact, wildcard] = maps.map(|map| {
            Shards::from_entries(map.into_iter().map(|(host, routes)| (host, sorted(routes))))
        });
        Self {
            exact,
            wildcard,
            hosts_of: Shards::from_entries(
                hosts_of
                    .into_iter()
                    .map(|(app, hosts)| (app, hosts.into_boxed_slice())),
            ),
            routes: count,
        }
    }

    /// This table with `app`'s routes replaced by `specs` (all of `app`'s
    /// backend; none removes the app). Costs what the app's hosts cost,
    /// not what the table holds. A host and prefix another app already
    /// routes stays that app's, as in [`RouteTable::build`].
    pub fn with_app(&self, app: &str, specs: Vec<RouteSpec>) -> RouteTable {
        let mut next = self.clone();
        let old: Vec<HostKey> = next
            .hosts_of
            .get(app)
            .map(|h| h.to_vec())
            .unwrap_or_default();
        for (wild, key) in &old {
            let map = next.map_of(*wild);
            let Some(routes) = map.get(key) else {
                continue;
            };
            let kept: Vec<Route> = routes
                .iter()
                .filter(|r| &**r.backend.app() != app)
                .cloned()
                .collect();
            let dropped = routes.len() - kept.len();
            map.set(key, (!kept.is_empty()).then(|| kept.into_boxed_slice()));
            next.routes -= dropped;
        }
        let mut hosts: Vec<HostKey> = Vec::new();
        for spec in specs {
            debug_assert_eq!(&**spec.backend.app(), app);
            let (wild, key) = split_host(&spec.host);
            let key: Arc<str> = Arc::from(key);
            let map = next.map_of(wild);
            let mut routes = map.get(&key).map(|r| r.to_vec()).unwrap_or_default();
            if routes.iter().any(|r| *r.prefix == *spec.path_prefix) {
                continue;
            }
            routes.push(Route::new(spec));
            map.set(&key, Some(sorted(routes)));
            next.routes += 1;
            if !hosts.iter().any(|(w, k)| *w == wild && *k == key) {
                hosts.push((wild, key));
            }
        }
        let hosts = (!hosts.is_empty()).then(|| hosts.into_boxed_slice());
        next.hosts_of.set(app, hosts);
        next
    }

    /// The map of exact hosts, or of wildcards.
    fn map_of(&mut self, wild: bool) -> &mut Shards<Box<[Route]>> {
        if wild {
            &mut self.wildcard
        } else {
            &mut self.exact
        }
    }

    /// The route for a normalized host and a request path: exact host with
    /// the longest matching prefix, else the wildcard of the parent domain.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        if let Some(route) = self.exact.get(host).and_then(|r| best_match(r, path)) {
            return Some(route);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).and_then(|r| best_match(r, path))
    }

    /// Number of (host, prefix) routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
}

/// Whether a host is a wildcard, and the key its routes are kept under
/// (`*.a.com` → `a.com`).
fn split_host(host: &str) -> (bool, &str) {
    match host.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, host),
    }
}

/// A host's routes, longest prefix first, so the first match is the best.
fn sorted(mut routes: Vec<Route>) -> Box<[Route]> {
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    routes.into_boxed_slice()
}

/// The first (longest) route whose prefix covers `path`.
fn best_match<'t>(routes: &'t [Route], path: &str) -> Option<&'t Route> {
    routes.iter().find(|r| r.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, prefix: &str, app: &str) -> RouteSpec {
        RouteSpec {
            host: host.into(),
            path_prefix: prefix.into(),
            strip_prefix: false,
            redirect_https: false,
            hsts: false,
            certified: false,
            backend: Arc::new(Backend::new(app, vec![])),
            rules: None,
        }
    }

    #[test]
    fn https_redirect_and_hsts_wait_for_a_valid_certificate() {
        assert!(!https_applies(true, false));
        assert!(!https_applies(false, true));
        assert!(https_applies(true, true));
        let wanted = |host: &str, certified| RouteSpec {
            redirect_https: true,
            hsts: true,
            certified,
            ..spec(host, "/", host)
        };
        let t = RouteTable::build([wanted("pending.com", false), wanted("issued.com", true)]);
        let pending = t.lookup("pending.com", "/").unwrap();
        assert!(!pending.redirect_https() && !pending.hsts());
        let issued = t.lookup("issued.com", "/").unwrap();
        assert!(issued.redirect_https() && issued.hsts());
        // Not asked for: a certificate alone turns nothing on.
        let plain = RouteTable::build([RouteSpec {
            certified: true,
            ..spec("plain.com", "/", "plain")
        }]);
        let plain = plain.lookup("plain.com", "/").unwrap();
        assert!(!plain.redirect_https() && !plain.hsts());
    }

    fn app_of<'a>(t: &'a RouteTable, host: &str, path: &str) -> Option<&'a str> {
        t.lookup(host, path).map(|r| &**r.backend().app())
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let t = RouteTable::build([
            spec("a.com", "/", "root"),
            spec("a.com", "/api", "api"),
            spec("a.com", "/api/v2", "v2"),
        ]);
        assert_eq!(app_of(&t, "a.com", "/"), Some("root"));
        assert_eq!(app_of(&t, "a.com", "/api"), Some("api"));
        assert_eq!(app_of(&t, "a.com", "/api/x"), Some("api"));
        assert_eq!(app_of(&t, "a.com", "/apix"), Some("root"));
        assert_eq!(app_of(&t, "a.com", "/api/v2/users"), Some("v2"));
        assert_eq!(app_of(&t, "b.com", "/"), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn wildcards_cover_one_label_after_exact_hosts() {
        let t = RouteTable::build([spec("*.a.com", "/", "wild"), spec("x.a.com", "/", "x")]);
        assert_eq!(app_of(&t, "x.a.com", "/"), Some("x"));
        assert_eq!(app_of(&t, "y.a.com", "/"), Some("wild"));
        assert_eq!(app_of(&t, "a.com", "/"), None);
        assert_eq!(app_of(&t, "z.y.a.com", "/"), None);
    }

    #[test]
    fn first_claim_of_a_route_wins() {
        let t = RouteTable::build([spec("a.com", "/", "one"), spec("a.com", "/", "two")]);
        assert_eq!(app_of(&t, "a.com", "/"), Some("one"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn replacing_one_app_leaves_the_others_and_the_old_snapshot_alone() {
        let old = RouteTable::build([
            spec("a.com", "/", "a"),
            spec("a.com", "/api", "api"),
            spec("*.w.com", "/", "a"),
            spec("b.com", "/", "b"),
        ]);
        let new = old.with_app(
            "a",
            vec![spec("c.com", "/", "a"), spec("c.com", "/docs", "a")],
        );
        // The old snapshot still answers as before (requests in flight).
        assert_eq!(app_of(&old, "a.com", "/"), Some("a"));
        assert_eq!(app_of(&old, "x.w.com", "/"), Some("a"));
        assert_eq!(old.len(), 4);
        // The new one: a's old hosts are gone, its new ones route, and a
        // host it shared keeps the other app's prefix.
        assert_eq!(app_of(&new, "a.com", "/"), None);
        assert_eq!(app_of(&new, "a.com", "/api/x"), Some("api"));
        assert_eq!(app_of(&new, "x.w.com", "/"), None);
        assert_eq!(app_of(&new, "c.com", "/docs/1"), Some("a"));
        assert_eq!(app_of(&new, "c.com", "/"), Some("a"));
        assert_eq!(app_of(&new, "b.com", "/"), Some("b"));
        assert_eq!(new.len(), 4);
        let gone = new.with_app("a", Vec::new());
        assert_eq!(app_of(&gone, "c.com", "/"), None);
        assert_eq!(gone.len(), 2);
        // A route another app holds stays that app's.
        let taken = gone.with_app("x", vec![spec("b.com", "/", "x"), spec("b.com", "/x", "x")]);
        assert_eq!(app_of(&taken, "b.com", "/"), Some("b"));
        assert_eq!(app_of(&taken, "b.com", "/x"), Some("x"));
        assert_eq!(taken.len(), 3);
    }

    #[test]
    fn changes_one_app_at_a_time_give_the_table_a_whole_build_gives() {
        // Apps move between hosts in many small steps; after each, the
        // table made by changes answers like one built whole.
        let hosts = ["a.com", "b.com", "*.c.com", "x.c.com", "d.com"];
        let prefixes = ["/", "/api", "/api/v2"];
        let mut want: Vec<(String, Vec<(usize, usize)>)> =
            (0..6).map(|i| (format!("app{i}"), Vec::new())).collect();
        let mut table = RouteTable::default();
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for _ in 0..300 {
            let app = next(want.len());
            let routes: Vec<(usize, usize)> = (0..next(3))
                .map(|_| (next(hosts.len()), next(prefixes.len())))
                .filter(|(h, p)| {
                    !want
                        .iter()
                        .enumerate()
                        .any(|(i, (_, r))| i != app && r.contains(&(*h, *p)))
                })
                .collect();
            let specs_of = |name: &str, routes: &[(usize, usize)]| -> Vec<RouteSpec> {
                routes
                    .iter()
                    .map(|&(h, p)| spec(hosts[h], prefixes[p], name))
                    .collect()
            };
            table = table.with_app(&want[app].0, specs_of(&want[app].0, &routes));
            want[app].1 = routes;
            let whole = RouteTable::build(
                want.iter()
                    .flat_map(|(name, routes)| specs_of(name, routes))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(table.len(), whole.len());
            for host in ["a.com", "b.com", "x.c.com", "y.c.com", "d.com", "e.com"] {
                for path in ["/", "/api", "/api/v2/x", "/apix"] {
                    assert_eq!(app_of(&table, host, path), app_of(&whole, host, path));
                }
            }
        }
    }

    #[test]
    fn round_robin_tries_each_replica_once_per_turn() {
        let addrs: Vec<SocketAddr> = (1..=3)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
            .collect();
        let b = Backend::new("a", addrs.clone());
        let start = b.start();
        let picked: Vec<_> = (0..4).map(|a| b.pick(start, a).map(|u| u.addr())).collect();
        assert_eq!(picked[3], None);
        let mut seen: Vec<_> = picked[..3].iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, addrs);
        let next = b.start();
        assert_ne!(
            b.pick(start, 0).map(|u| u.addr()),
            b.pick(next, 0).map(|u| u.addr())
        );
        assert!(Backend::new("e", vec![]).pick(0, 0).is_none());
    }
}
