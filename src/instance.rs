//! The instance settings in effect: the ACME contact email and the public
//! URL set at run time (kept in the store) over the config file's and
//! flags' values. A change is validated, stored and applied in one call:
//! the ACME account's contact is updated, and webhook URLs are built from
//! the new public URL at once.

use std::sync::Arc;

use berth_config::{FieldError, InstanceInput, InstanceSettings};
use serde::Serialize;
use utoipa::ToSchema;

use crate::certs::Certificates;
use crate::store::{SettingsRecord, Store, StoreError};

/// The instance settings; cheap to clone.
#[derive(Clone)]
pub struct Instance {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    certs: Certificates,
    /// What the config file and flags say.
    config: InstanceSettings,
    /// `[panel] domain`, shown beside the settings (it is not changed at
    /// run time: the edge's routes and certificate follow it from start).
    panel_domain: Option<String>,
}

/// The instance settings, as `GET /api/v1/settings` shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsView {
    /// The ACME contact email set here; `null` when the config file's
    /// value (in `in_effect`) applies.
    pub acme_email: Option<String>,
    /// The public URL set here; `null` when the config file's value
    /// applies.
    pub public_url: Option<String>,
    /// What applies now: the values set here, else the config file's and
    /// flags'.
    pub in_effect: InEffect,
    /// What the config file and flags say (what applies when the values
    /// here are cleared).
    pub config: ConfigValues,
}

/// The config file's and flags' instance settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigValues {
    /// `[acme] email` / `--acme-email`.
    pub acme_email: Option<String>,
    /// `[server] public_url` / `--public-url` (or `https://<panel domain>`).
    pub public_url: Option<String>,
}

/// The instance settings that apply now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InEffect {
    /// The ACME account's contact email.
    pub acme_email: Option<String>,
    /// Where webhook URLs point; `null`: at the address a request came to.
    pub public_url: Option<String>,
    /// `[panel] domain` (set in the config file or with `--panel-domain`).
    pub panel_domain: Option<String>,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// A value is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Instance {
    /// The settings over `store`, with the config file's values; applies a
    /// stored contact email to the ACME account.
    pub fn new(
        store: Store,
        certs: Certificates,
        config: InstanceSettings,
        panel_domain: Option<String>,
    ) -> Result<Self, StoreError> {
        let this = Self {
            inner: Arc::new(Inner {
                store,
                certs,
                config,
                panel_domain,
            }),
        };
        let set = this.inner.store.settings()?;
        if set.acme_email.is_some() {
            this.inner.certs.set_contact(set.acme_email);
        }
        Ok(this)
    }

    /// The settings set here and in effect.
    pub fn view(&self) -> Result<SettingsView, StoreError> {
        let set = self.inner.store.settings()?;
        Ok(self.view_of(set))
    }

    /// Validates, stores and applies a change; answers the new view.
    pub fn change(&self, input: InstanceInput) -> Result<SettingsView, InstanceError> {
        let before = self.inner.store.settings()?;
        let current = InstanceSettings {
            acme_email: before.acme_email.clone(),
            public_url: before.public_url.clone(),
        };
        let next = input.apply(&current)?;
        let record = SettingsRecord {
            acme_email: next.acme_email,
            public_url: next.public_url,
        };
        self.inner.store.set_settings(&record)?;
        let view = self.view_of(record);
        if self.effective_email(&before) != view.in_effect.acme_email {
            self.inner
                .certs
                .set_contact(view.in_effect.acme_email.clone());
        }
        Ok(view)
    }

    /// Where webhook URLs point now, if anywhere.
    pub fn public_url(&self) -> Result<Option<String>, StoreError> {
        let set = self.inner.store.settings()?;
        Ok(set
            .public_url
            .or_else(|| self.inner.config.public_url.clone()))
    }

    fn effective_email(&self, set: &SettingsRecord) -> Option<String> {
        set.acme_email
            .clone()
            .or_else(|| self.inner.config.acme_email.clone())
    }

    fn view_of(&self, set: SettingsRecord) -> SettingsView {
        let in_effect = InEffect {
            acme_email: self.effective_email(&set),
            public_url: set
                .public_url
                .clone()
                .or_else(|| self.inner.config.public_url.clone()),
            panel_domain: self.inner.panel_domain.clone(),
        };
        SettingsView {
            acme_email: set.acme_email,
            public_url: set.public_url,
            in_effect,
            config: ConfigValues {
                acme_email: self.inner.config.acme_email.clone(),
                public_url: self.inner.config.public_url.clone(),
            },
        }
    }
}
