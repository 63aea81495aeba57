//! What `GET /api/v1/certificates` shows: the stored certificates (never
//! a key) and every HTTPS domain's state, with the last failure's cause
//! and the next retry.

use berth_acme::Certificate;
use berth_config::CertificateSource;
use serde::Serialize;
use time::OffsetDateTime;

use super::{acme_id, is_acme, lock, Certificates, CertsError};
use crate::store::CertificateOrigin;

/// A stored certificate as the API shows it (never its key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// `acme:<host>` or the custom certificate's name.
    pub id: String,
    /// Where it came from.
    pub origin: CertificateOrigin,
    /// DNS names it covers.
    pub names: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_after: OffsetDateTime,
    /// Seconds until it expires (negative once expired).
    pub expires_in_secs: i64,
}

/// Where a domain's certificate stands.
#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainCertStatus {
    /// A valid certificate serves it.
    Valid,
    /// Being ordered now, or waiting for its first order.
    Pending,
    /// No certificate and the last order failed (see `last_error`).
    Failed,
    /// `custom`, but no uploaded certificate covers it.
    Missing,
}

/// One HTTPS domain and its certificate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DomainCertView {
    /// The host.
    pub host: String,
    /// The app it belongs to.
    pub app: String,
    /// `letsencrypt` or `custom`.
    #[schema(value_type = String)]
    pub source: CertificateSource,
    /// Where it stands.
    pub status: DomainCertStatus,
    /// The certificate serving it.
    pub certificate: Option<String>,
    /// When that certificate expires.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// When it is to be renewed (ACME).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub renew_at: Option<OffsetDateTime>,
    /// The last failed order's error (ACME), kept until one succeeds:
    /// the host and the cause as far as it is known (the CA's reason, a
    /// refused connection, a timeout).
    pub last_error: Option<String>,
    /// When the last order failed.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failed_at: Option<OffsetDateTime>,
    /// Orders that failed in a row (ACME); 0 once one succeeds.
    pub failures: u32,
    /// When the next order is due after a failure (backoff with jitter,
    /// an hour after a rate limit); `null` when none is waiting on a
    /// failure.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_retry_at: Option<OffsetDateTime>,
    /// Whether plain HTTP to the host is redirected to HTTPS and HTTPS
    /// answers send HSTS now, as far as the domain asks for them: only
    /// while a valid certificate serves the host.
    pub https_enforced: bool,
}

/// Everything about certificates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificatesView {
    /// Stored certificates.
    pub certificates: Vec<CertificateView>,
    /// Domains with HTTPS.
    pub domains: Vec<DomainCertView>,
}

impl Certificates {
    /// Stored certificates and every HTTPS domain's state.
    pub fn view(&self) -> Result<CertificatesView, CertsError> {
        let mut certificates: Vec<CertificateView> = self
            .inner
            .served
            .all()
            .into_iter()
            .map(|i| {
                let origin = if is_acme(&i.id) {
                    CertificateOrigin::Acme
                } else {
                    CertificateOrigin::Custom
                };
                view_of(&i.id, origin, &i.cert)
            })
            .collect();
        certificates.sort_by(|a, b| a.id.cmp(&b.id));
        let hosts = lock(&self.inner.hosts).clone();
        let now = OffsetDateTime::now_utc();
        let mut domains = Vec::new();
        for (app, host, source) in self.domains() {
            let state = hosts.get(&host).cloned().unwrap_or_default();
            let serving = match source {
                CertificateSource::Letsencrypt => self.inner.served.get(&acme_id(&host)),
                _ => self
                    .inner
                    .served
                    .all()
                    .into_iter()
                    .filter(|i| !is_acme(&i.id) && i.cert.covers(&host))
                    .max_by_key(|i| i.cert.not_after),
            };
            let serving = serving.filter(|i| i.cert.check_valid_at(now).is_ok());
            let status = match (&serving, source) {
                (Some(_), _) => DomainCertStatus::Valid,
                (None, CertificateSource::Custom) => DomainCertStatus::Missing,
                (None, _) if state.last_error.is_some() && !state.issuing => {
                    DomainCertStatus::Failed
                }
                (None, _) => DomainCertStatus::Pending,
            };
            domains.push(DomainCertView {
                https_enforced: self.inner.served.serves_valid(&host, now),
                host,
                app,
                source,
                status,
                certificate: serving.as_ref().map(|i| i.id.clone()),
                expires_at: serving.as_ref().map(|i| i.cert.not_after),
                renew_at: if source == CertificateSource::Letsencrypt {
                    state.renew_at
                } else {
                    None
                },
                last_error: state.last_error,
                failed_at: state.failed_at,
                failures: state.failures,
                next_retry_at: state.retry_at.filter(|_| state.failures > 0),
            });
        }
        Ok(CertificatesView {
            certificates,
            domains,
        })
    }
}

pub(super) fn view_of(id: &str, origin: CertificateOrigin, cert: &Certificate) -> CertificateView {
    CertificateView {
        id: id.to_string(),
        origin,
        names: cert.names.clone(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        expires_in_secs: (cert.not_after - OffsetDateTime::now_utc()).whole_seconds(),
    }
}
