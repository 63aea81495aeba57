//! Certificates in the store: issued (ACME) and uploaded (custom) chains
//! with their private keys sealed by the caller, and the ACME account.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::schema::{decode, encode, ACME_ACCOUNT, CERTIFICATES, META};
use super::{not_found, Result, Store};

/// Where a stored certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateOrigin {
    /// Issued by the ACME CA for one host; its id is `acme:<host>`.
    Acme,
    /// Uploaded through the API under a name.
    Custom,
}

/// A stored certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// `acme:<host>` or the custom certificate's name.
    pub id: String,
    /// Where it came from; saved as `SavedOrigin` (`saved/certificate.rs`).
    #[serde(with = "super::saved::value")]
    pub origin: CertificateOrigin,
    /// DNS names it covers.
    pub names: Vec<String>,
    /// The chain, PEM, leaf first.
    pub chain_pem: String,
    /// The private key PEM, sealed (see `crate::secrets`); never plain.
    pub key_sealed: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub stored_at: OffsetDateTime,
}

impl Store {
    /// Stores (or replaces) a certificate.
    pub fn put_certificate(&self, record: &CertificateRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(CERTIFICATES)?;
            table.insert(record.id.as_str(), encode(record)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One certificate.
    pub fn certificate(&self, id: &str) -> Result<CertificateRecord> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(CERTIFICATES)?;
        let value = table.get(id)?.ok_or_else(|| not_found("certificate", id))?;
        decode(value.value())
    }

    /// Every certificate, by id.
    pub fn certificates(&self) -> Result<Vec<CertificateRecord>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(CERTIFICATES)?;
        table.iter()?.map(|row| decode(row?.1.value())).collect()
    }

    /// Removes a certificate.
    pub fn delete_certificate(&self, id: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(CERTIFICATES)?;
            if table.remove(id)?.is_none() {
                return Err(not_found("certificate", id));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The ACME account, sealed, if one was created.
    pub fn acme_account(&self) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let value = meta.get(ACME_ACCOUNT)?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Keeps the (sealed) ACME account.
    pub fn set_acme_account(&self, sealed: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            meta.insert(ACME_ACCOUNT, encode(&sealed)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }
}
