//! The edge's certificates: what the store holds (issued and uploaded,
//! keys sealed), what the TLS listeners serve (the lock-free [`CertStore`]),
//! and the ACME work that keeps every `certificate: "letsencrypt"` domain
//! covered: issuance when a domain appears, renewal before expiry (the
//! CA's ARI window, else two thirds into the lifetime), backoff with
//! jitter on failure, and never two orders for one host at once.

mod view;
mod wanted;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_acme::{
    error_chain, AcmeClient, AcmeConfig, AcmeError, CertError, CertStore, Certificate,
    ChallengeKind, Http01Tokens,
};
use berth_config::{AcmeChallenge, AcmeSettings, CertificateSource, FieldError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::secrets::{SecretBox, SecretError};
use crate::store::{CertificateOrigin, CertificateRecord, Store, StoreError};
use view::view_of;
pub use view::{CertificateView, CertificatesView, DomainCertView};

/// Longest pause of the renewal loop between two looks at the hosts.
const TICK: Duration = Duration::from_secs(60);
/// First retry after a failed order; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// Pause after the CA said "rate limited".
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(3600);
/// Orders running at once.
const PARALLEL_ORDERS: usize = 4;
/// Deadline of one order.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The certificate itself was refused.
    #[error(transparent)]
    Invalid(#[from] CertError),
    /// A field of the request was refused.
    #[error("{0}")]
    Field(FieldError),
    /// The certificate is still in use.
    #[error("{0}")]
    InUse(FieldError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening a key failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// State of one ACME host.
#[derive(Debug, Clone, Default)]
struct HostState {
    /// An order runs now.
    issuing: bool,
    /// Failed orders in a row.
    failures: u32,
    last_error: Option<String>,
    /// When the last order failed.
    failed_at: Option<OffsetDateTime>,
    /// No order before this time (backoff).
    retry_at: Option<OffsetDateTime>,
    /// When the current certificate is to be renewed.
    renew_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    certificate: String,
}

/// Handle to the certificates; cheap to clone.
#[derive(Clone)]
pub struct Certificates {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    served: Arc<CertStore>,
    tokens: Arc<Http01Tokens>,
    acme: AcmeSettings,
    client: tokio::sync::Mutex<Option<AcmeClient>>,
    /// The account's contact email, which the instance settings may change
    /// at run time.
    contact: Mutex<Contact>,
    /// ACME hosts wanted by some app's domains, and their state.
    hosts: Mutex<HashMap<String, HostState>>,
    /// Each app's ACME hosts at its last sync (locked before `hosts`).
    by_app: Mutex<HashMap<String, BTreeSet<String>>>,
    /// berth's own host on the edge (`[panel] domain`), always wanted.
    panel: Mutex<Option<String>>,
    wake: Notify,
    orders: Arc<tokio::sync::Semaphore>,
    expiry: Family<CertLabels, Gauge<i64, AtomicI64>>,
    tracker: TaskTracker,
    /// Called when the set of valid installed certificates changed (one
    /// installed, removed, expired), so routes can switch their redirect
    /// to HTTPS and HSTS on or off.
    changed: Mutex<Option<ChangeHook>>,
    /// Ids of the installed certificates that were valid at the last look.
    valid: Mutex<BTreeSet<String>>,
}

/// The ACME account's contact as berth wants it.
struct Contact {
    email: Option<String>,
    /// The CA may hold another contact: update it when the account is
    /// next used (or now, when it is in use).
    stale: bool,
}

/// What [`Certificates::on_change`] calls.
type ChangeHook = Arc<dyn Fn() + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Certificates {
    /// Loads the stored certificates into `served`.
    pub fn new(
        store: Store,
        secrets: SecretBox,
        served: Arc<CertStore>,
        tokens: Arc<Http01Tokens>,
        acme: AcmeSettings,
        registry: &mut Registry,
    ) -> Result<Self, CertsError> {
        let expiry = Family::<CertLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until each served certificate expires",
            expiry.clone(),
        );
        let this = Self {
            inner: Arc::new(Inner {
                store,
                secrets,
                served,
                tokens,
                contact: Mutex::new(Contact {
                    email: acme.email.clone(),
                    stale: false,
                }),
                acme,
                client: tokio::sync::Mutex::new(None),
                hosts: Mutex::new(HashMap::new()),
                by_app: Mutex::new(HashMap::new()),
                panel: Mutex::new(None),
                wake: Notify::new(),
                orders: Arc::new(tokio::sync::Semaphore::new(PARALLEL_ORDERS)),
                expiry,
                tracker: TaskTracker::new(),
                changed: Mutex::new(None),
                valid: Mutex::new(BTreeSet::new()),
            }),
        };
        for record in this.inner.store.certificates()? {
            match this.open(&record) {
                Ok(cert) => this.install(&record.id, cert),
                Err(err) => {
                    tracing::error!(certificate = %record.id, %err, "a stored certificate does not load; it is not served")
                }
            }
        }
        *lock(&this.inner.valid) = this.valid_now();
        Ok(this)
    }

    /// Calls `hook` whenever a certificate starts or stops being valid and
    /// installed (issued, uploaded, removed, expired); berth rebuilds its
    /// routes there. Replaces an earlier hook.
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        *lock(&self.inner.changed) = Some(Arc::new(hook));
    }

    /// Ids of the installed certificates valid now.
    fn valid_now(&self) -> BTreeSet<String> {
        let now = OffsetDateTime::now_utc();
        self.inner
            .served
            .all()
            .into_iter()
            .filter(|i| i.cert.check_valid_at(now).is_ok())
            .map(|i| i.id)
            .collect()
    }

    /// Calls the change hook if the valid installed certificates are not
    /// the ones of the last look, or always when `installed` (a
    /// certificate was just installed or removed: one with the same id may
    /// cover other names).
    fn notice_changes(&self, installed: bool) {
        let now = self.valid_now();
        let changed = {
            let mut valid = lock(&self.inner.valid);
            let changed = installed || *valid != now;
            *valid = now;
            changed
        };
        if changed {
            let hook = lock(&self.inner.changed).clone();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    fn open(&self, record: &CertificateRecord) -> Result<Certificate, CertsError> {
        let key = self.inner.secrets.open(&record.key_sealed)?;
        let key = String::from_utf8(key).map_err(|_| SecretError::Open)?;
        Ok(Certificate::from_pem(&record.chain_pem, &key)?)
    }

    fn install(&self, id: &str, cert: Certificate) {
        let labels = CertLabels {
            certificate: id.to_string(),
        };
        let left = (cert.not_after - OffsetDateTime::now_utc()).whole_seconds();
        self.inner.expiry.get_or_create(&labels).set(left);
        self.inner.served.install(id, cert);
    }

    fn save(
        &self,
        id: &str,
        origin: CertificateOrigin,
        cert: &Certificate,
        key_pem: &str,
    ) -> Result<(), CertsError> {
        let record = CertificateRecord {
            id: id.to_string(),
            origin,
            names: cert.names.clone(),
            chain_pem: cert.chain_pem.clone(),
            key_sealed: self.inner.secrets.seal(key_pem.as_bytes())?,
            not_before: cert.not_before,
            not_after: cert.not_after,
            stored_at: OffsetDateTime::now_utc(),
        };
        self.inner.store.put_certificate(&record)?;
        Ok(())
    }

    /// Stores and serves an uploaded certificate: it must parse, its key
    /// must match, and it must be valid now.
    pub fn add_custom(
        &self,
        name: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<CertificateView, CertsError> {
        berth_config::validate_name("name", name).map_err(CertsError::Field)?;
        let cert = Certificate::from_pem(chain_pem, key_pem)?;
        cert.check_valid_at(OffsetDateTime::now_utc())?;
        self.save(name, CertificateOrigin::Custom, &cert, key_pem)?;
        let view = view_of(name, CertificateOrigin::Custom, &cert);
        self.install(name, cert);
        self.notice_changes(true);
        Ok(view)
    }

    /// Removes an uploaded certificate unless a `custom` domain would be
    /// left without one.
    pub fn delete_custom(&self, name: &str) -> Result<(), CertsError> {
        let record = self.inner.store.certificate(name)?;
        if record.origin != CertificateOrigin::Custom {
            return Err(CertsError::Field(FieldError::new(
                "id",
                "issued certificates are managed by berth; remove the domain instead",
            )));
        }
        let others: Vec<_> = self
            .inner
            .served
            .all()
            .into_iter()
            .filter(|i| i.id != name)
            .collect();
        for (app, host) in self.custom_domains() {
            let still = others.iter().any(|i| i.cert.covers(&host));
            let was = record
                .names
                .iter()
                .any(|n| berth_acme::names::matches(n, &host));
            if was && !still {
                return Err(CertsError::InUse(FieldError::new(
                    "id",
                    format!(
                        "{host} of app {app} uses this certificate; upload another that covers it or change the domain first"
                    ),
                )));
            }
        }
        self.inner.store.delete_certificate(name)?;
        self.inner.served.remove(name);
        self.notice_changes(true);
        self.inner.expiry.remove(&CertLabels {
            certificate: name.to_string(),
        });
        Ok(())
    }

    /// Whether an uploaded certificate covers `host`, for `custom` domains.
    pub fn custom_covers(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.inner.served.all().iter().any(|i| {
            !is_acme(&i.id)
                && i.cert.covers(&host)
                && i.cert.check_valid_at(OffsetDateTime::now_utc()).is_ok()
        })
    }

    /// Domains with `certificate: custom`: (app, host).
    fn custom_domains(&self) -> Vec<(String, String)> {
        self.domains()
            .into_iter()
            .filter(|(_, _, s)| *s == CertificateSource::Custom)
            .map(|(app, host, _)| (app, host))
            .collect()
    }

    /// Every HTTPS domain: (app, host, source).
    /// Runs the issuance and renewal loop until `shutdown`.
    pub fn run(&self, shutdown: CancellationToken) {
        let this = self.clone();
        self.sync();
        tokio::spawn(async move {
            loop {
                let next = this.start_due_orders(&shutdown);
                let pause = next
                    .map(|at| (at - OffsetDateTime::now_utc()).whole_milliseconds().max(0))
                    .map_or(TICK, |ms| Duration::from_millis(ms as u64).min(TICK));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = this.inner.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                this.refresh_expiry();
                this.notice_changes(false);
            }
            this.inner.tracker.close();
            this.inner.tracker.wait().await;
        });
    }

    fn refresh_expiry(&self) {
        let now = OffsetDateTime::now_utc();
        for i in self.inner.served.all() {
            let labels = CertLabels { certificate: i.id };
            let left = (i.cert.not_after - now).whole_seconds();
            self.inner.expiry.get_or_create(&labels).set(left);
        }
    }

    /// Starts an order for every host that needs one now; returns the
    /// earliest time another will be due.
    fn start_due_orders(&self, shutdown: &CancellationToken) -> Option<OffsetDateTime> {
        let now = OffsetDateTime::now_utc();
        let mut next: Option<OffsetDateTime> = None;
        let mut due = Vec::new();
        {
            let mut hosts = lock(&self.inner.hosts);
            for (host, state) in hosts.iter_mut() {
                if state.issuing {
                    continue;
                }
                let id = acme_id(host);
                let current = self.inner.served.get(&id);
                if state.renew_at.is_none() {
                    if let Some(installed) = &current {
                        state.renew_at = Some(default_renewal(&installed.cert));
                    }
                }
                let wanted_at = match (&current, state.renew_at) {
                    (Some(_), Some(renew)) => renew,
                    _ => now,
                };
                let at = state.retry_at.map_or(wanted_at, |r| r.max(wanted_at));
                if at <= now {
                    state.issuing = true;
                    due.push(host.clone());
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        for host in due {
            let this = self.clone();
            let shutdown = shutdown.clone();
            self.inner.tracker.spawn(async move {
                let Ok(_permit) = this.inner.orders.clone().acquire_owned().await else {
                    return;
                };
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = this.order(&host) => {}
                }
                if let Some(state) = lock(&this.inner.hosts).get_mut(&host) {
                    state.issuing = false;
                }
                this.inner.wake.notify_one();
            });
        }
        next
    }

    /// One order for `host`, its outcome recorded.
    async fn order(&self, host: &str) {
        tracing::info!(host, "ordering a certificate");
        let outcome = self.issue(host).await;
        let now = OffsetDateTime::now_utc();
        let mut hosts = lock(&self.inner.hosts);
        let Some(state) = hosts.get_mut(host) else {
            return;
        };
        match outcome {
            Ok(renew_at) => {
                tracing::info!(host, %renew_at, "certificate issued");
                *state = HostState {
                    renew_at: Some(renew_at),
                    ..HostState::default()
                };
            }
            Err(err) => {
                state.failures = state.failures.saturating_add(1);
                let rate_limited = matches!(
                    &err,
                    IssueError::Acme(AcmeError::Problem {
                        rate_limited: true,
                        ..
                    })
                );
                let backoff = if rate_limited {
                    RATE_LIMIT_BACKOFF
                } else {
                    backoff(state.failures)
                };
                let retry_at = now + backoff;
                let cause = error_chain(&err);
                tracing::warn!(host, %cause, failures = state.failures, %retry_at, "certificate order failed");
                state.last_error = Some(format!("ordering a certificate for {host}: {cause}"));
                state.failed_at = Some(now);
                state.retry_at = Some(retry_at);
            }
        }
    }

    async fn issue(&self, host: &str) -> Result<OffsetDateTime, IssueError> {
        let client = self.client().await?;
        let kind = match self.inner.acme.challenge {
            AcmeChallenge::Http01 => ChallengeKind::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        };
        let issued = client
            .issue(host, kind, &self.inner.tokens, &self.inner.served)
            .await?;
        let id = acme_id(host);
        self.save(&id, CertificateOrigin::Acme, &issued.cert, &issued.key_pem)?;
        let renew_at = match client.suggested_renewal(&issued.cert).await {
            Some(at) => at,
            None => default_renewal(&issued.cert),
        };
        self.install(&id, issued.cert);
        self.notice_changes(true);
        Ok(renew_at)
    }

    /// The ACME client, restoring or creating the account on first use.
    async fn client(&self) -> Result<AcmeClient, IssueError> {
        let mut slot = self.inner.client.lock().await;
        let (email, stale) = {
            let contact = lock(&self.inner.contact);
            (contact.email.clone(), contact.stale)
        };
        if let Some(client) = slot.as_ref() {
            if stale {
                self.update_contact(client, email).await;
            }
            return Ok(client.clone());
        }
        let saved = match self.inner.store.acme_account()? {
            Some(sealed) => Some(
                String::from_utf8(self.inner.secrets.open(&sealed)?)
                    .map_err(|_| SecretError::Open)?,
            ),
            None => None,
        };
        let config = AcmeConfig {
            directory: self.inner.acme.directory.clone(),
            email: email.clone(),
            ca_root: self.inner.acme.ca_root.clone(),
            order_timeout: ORDER_TIMEOUT,
        };
        let (client, created) = AcmeClient::connect(config, saved.as_deref())
            .await
            .map_err(|e| match e {
                AcmeError::Client(why) => AcmeError::Client(format!(
                    "reaching the directory {}: {why}",
                    self.inner.acme.directory
                )),
                other => other,
            })?;
        if let Some(json) = created {
            let sealed = self.inner.secrets.seal(json.as_bytes())?;
            self.inner.store.set_acme_account(&sealed)?;
            tracing::info!(directory = %self.inner.acme.directory, "created the ACME account");
            self.contact_updated(&email);
        } else if stale {
            self.update_contact(&client, email).await;
        }
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Sets the ACME account's contact email (`None`: none). The account
    /// in use is updated now; one not yet used is updated (or created with
    /// it) when it is.
    pub fn set_contact(&self, email: Option<String>) {
        {
            let mut contact = lock(&self.inner.contact);
            contact.email = email;
            contact.stale = true;
        }
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let slot = this.inner.client.lock().await;
            if let Some(client) = slot.as_ref() {
                let email = lock(&this.inner.contact).email.clone();
                this.update_contact(client, email).await;
            }
        });
    }

    async fn update_contact(&self, client: &AcmeClient, email: Option<String>) {
        match client.update_contact(email.as_deref()).await {
            Ok(()) => {
                tracing::info!(
                    contact = email.as_deref().unwrap_or("none"),
                    "updated the ACME account's contact"
                );
                self.contact_updated(&email);
            }
            Err(err) => {
                tracing::warn!(%err, "could not update the ACME account's contact; berth tries again when the account is next used")
            }
        }
    }

    /// The CA holds `email` now, unless it was changed meanwhile.
    fn contact_updated(&self, email: &Option<String>) {
        let mut contact = lock(&self.inner.contact);
        if contact.email == *email {
            contact.stale = false;
        }
    }
}

/// Why one order failed.
#[derive(Debug, thiserror::Error)]
enum IssueError {
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error(transparent)]
    Certs(#[from] CertsError),
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        IssueError::Certs(e.into())
    }
}

impl From<SecretError> for IssueError {
    fn from(e: SecretError) -> Self {
        IssueError::Certs(e.into())
    }
}

/// Store id of the ACME certificate of `host`.
fn acme_id(host: &str) -> String {
    format!("acme:{host}")
}

/// Whether a store id is an ACME certificate's (custom names hold no `:`).
fn is_acme(id: &str) -> bool {
    id.starts_with("acme:")
}

/// Two thirds into the certificate's lifetime.
fn default_renewal(cert: &Certificate) -> OffsetDateTime {
    cert.not_before + (cert.not_after - cert.not_before) * 2 / 3
}

/// Exponential backoff with up to 25% jitter.
fn backoff(failures: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let jitter = base.as_millis() as u64 / 4;
    base + Duration::from_millis(rand::random_range(0..=jitter))
}

#[cfg(test)]
mod tests;
