//! Which hosts want a certificate from ACME: the `letsencrypt` domains of
//! the apps, and berth's own panel domain. A change of one app updates the
//! hosts of that app alone ([`Certificates::sync_app`]); the whole set is
//! read at start ([`Certificates::sync`]).

use std::collections::BTreeSet;

use berth_config::CertificateSource;

use super::{lock, Certificates};
use crate::store::AppRecord;

/// The owner the panel domain is listed under (no app can be named so).
const PANEL: &str = "-panel";

/// An app's hosts that want an ACME certificate.
fn acme_hosts(app: &AppRecord) -> BTreeSet<String> {
    app.spec
        .domains
        .iter()
        .filter(|d| d.certificate == CertificateSource::Letsencrypt)
        .map(|d| d.host.clone())
        .collect()
}

impl Certificates {
    /// Also orders and renews a certificate for `host`, berth's own panel
    /// domain (listed as belonging to the app `-panel`).
    pub fn serve_panel(&self, host: &str) {
        *lock(&self.inner.panel) = Some(host.to_string());
        self.sync();
    }

    /// Every HTTPS domain: (app, host, source).
    pub(super) fn domains(&self) -> Vec<(String, String, CertificateSource)> {
        let mut out = Vec::new();
        if let Some(host) = lock(&self.inner.panel).clone() {
            out.push((PANEL.into(), host, CertificateSource::Letsencrypt));
        }
        for app in self.inner.store.apps() {
            for d in &app.spec.domains {
                if d.certificate != CertificateSource::None {
                    out.push((app.spec.name.clone(), d.host.clone(), d.certificate));
                }
            }
        }
        out
    }

    /// Reads every app's domains and starts ordering certificates for new
    /// `letsencrypt` hosts; hosts no app wants any more are forgotten.
    pub fn sync(&self) {
        let mut by_app = lock(&self.inner.by_app);
        by_app.clear();
        if let Some(host) = lock(&self.inner.panel).clone() {
            by_app.insert(PANEL.into(), BTreeSet::from([host]));
        }
        for app in self.inner.store.apps() {
            let hosts = acme_hosts(&app);
            if !hosts.is_empty() {
                by_app.insert(app.spec.name.clone(), hosts);
            }
        }
        {
            let wanted: BTreeSet<&String> = by_app.values().flatten().collect();
            let mut hosts = lock(&self.inner.hosts);
            hosts.retain(|h, _| wanted.contains(h));
            for host in wanted {
                hosts.entry(host.clone()).or_default();
            }
        }
        drop(by_app);
        self.inner.wake.notify_one();
    }

    /// Follows a change of one app (made, changed, deleted): its new
    /// `letsencrypt` hosts are ordered, and hosts it gave up that no other
    /// app wants are forgotten. Costs what the app's domains cost.
    pub fn sync_app(&self, app: &str) {
        let now = self
            .inner
            .store
            .shared_app(app)
            .map(|a| acme_hosts(&a))
            .unwrap_or_default();
        let mut by_app = lock(&self.inner.by_app);
        let before = by_app.remove(app).unwrap_or_default();
        let mut hosts = lock(&self.inner.hosts);
        for gone in before.difference(&now) {
            let elsewhere = lock(&self.inner.panel).as_ref() == Some(gone)
                || self
                    .inner
                    .store
                    .apps_on_host(gone)
                    .iter()
                    .any(|a| a.spec.name != app && acme_hosts(a).contains(gone));
            if !elsewhere {
                hosts.remove(gone);
            }
        }
        let added = now.iter().any(|h| !hosts.contains_key(h));
        for host in &now {
            hosts.entry(host.clone()).or_default();
        }
        drop(hosts);
        if !now.is_empty() {
            by_app.insert(app.to_string(), now);
        }
        drop(by_app);
        if added {
            self.inner.wake.notify_one();
        }
    }
}
