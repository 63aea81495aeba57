//! Signing people in, for the API and the panel alike: first-run setup
//! with a one-time code, sign-in with a password (argon2id) and then, when
//! enrolled, a TOTP or backup code; sessions (a random secret in the
//! cookie, its SHA-256 in the store, a new secret once the second factor is
//! given); enrolment in TOTP; and limits on failed attempts per account and
//! per client address. Handlers stay thin: they turn HTTP into a
//! [`Client`] and call these functions.

mod error;
pub mod limiter;
pub mod setup;
pub mod totp;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::people::{
    hash_password, new_secret, secret_hash, validate_password, validate_username, verify_nobody,
    verify_password,
};
use crate::secrets::SecretBox;
use crate::store::{new_id, AuditRecord, Role, SessionRecord, Store, StoreError, UserRecord};
pub use error::SessionError;
use limiter::Limiter;
use setup::SetupCode;

/// How long a session lives: 7 days from sign-in, however busy.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a session waits for its second factor: 10 minutes.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Characters of a `User-Agent` kept with a session.
const USER_AGENT_KEPT: usize = 200;

/// Who is asking, and through which door (for the audit log).
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's IP address.
    pub address: String,
    /// Its `User-Agent`.
    pub user_agent: String,
    /// The audit log's action, e.g. `POST /api/v1/session`.
    pub action: String,
    /// The audit log's target: the request's path.
    pub target: String,
}

type Result<T, E = SessionError> = std::result::Result<T, E>;

/// A session just made: the secret goes into the cookie, once.
#[derive(Debug)]
pub struct SignedIn {
    /// The cookie's value.
    pub secret: String,
    /// The stored session.
    pub session: SessionRecord,
    /// Whose.
    pub user: UserRecord,
}

impl SignedIn {
    /// Seconds the cookie should live.
    pub fn max_age(&self) -> i64 {
        (self.session.expires_at - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(0)
    }
}

/// Signs people in; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    setup: SetupCode,
    accounts: Mutex<Limiter>,
    addresses: Mutex<Limiter>,
    /// The last TOTP step accepted per user id: a code works once.
    steps: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    /// Sign-in over `store`. With no user yet, opens setup: a new code in
    /// `<data_dir>/setup-code`, logged for the operator.
    pub fn new(store: Store, secrets: SecretBox, data_dir: &Path) -> anyhow::Result<Self> {
        let setup = if store.has_users()? {
            SetupCode::closed(data_dir)
        } else {
            let (setup, code) = SetupCode::open(data_dir)?;
            tracing::info!(
                file = %data_dir.join(setup::SETUP_FILE).display(),
                "no user yet: open the admin address in a browser and give this setup code: {code}"
            );
            setup
        };
        let limiter = |limit| Mutex::new(Limiter::new(limit, limiter::WINDOW, limiter::CAPACITY));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                secrets,
                setup,
                accounts: limiter(limiter::ACCOUNT_LIMIT),
                addresses: limiter(limiter::ADDRESS_LIMIT),
                steps: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether setup is still to be done (no user exists).
    pub fn setup_needed(&self) -> Result<bool> {
        if self.store().has_users()? {
            self.inner.setup.close();
            return Ok(false);
        }
        Ok(true)
    }

    /// Makes the owner if `code` is the setup code and no user exists,
    /// and signs them in.
    pub fn setup(
        &self,
        code: &str,
        username: &str,
        password: &str,
        client: &Client,
    ) -> Result<SignedIn> {
        let mut actor = "anonymous".to_string();
        let result = self.setup_inner(code, username, password, client, &mut actor);
        self.audit(&actor, client, &result);
        result
    }

    fn setup_inner(
        &self,
        code: &str,
        username: &str,
        password: &str,
        client: &Client,
        actor: &mut String,
    ) -> Result<SignedIn> {
        if !self.setup_needed()? {
            return Err(SessionError::SetupDone);
        }
        let address = address_key(client);
        self.check_limits(None, &address)?;
        let username = validate_username(username)?;
        validate_password("password", password)?;
        if !self.inner.setup.take(code) {
            self.fail(None, &address);
            return Err(SessionError::WrongSetupCode);
        }
        let made = hash_password(password)
            .map_err(|e| SessionError::Internal(e.to_string()))
            .and_then(|password_hash| {
                let now = OffsetDateTime::now_utc();
                let user = UserRecord {
                    id: new_id(),
                    username,
                    role: Role::Owner,
                    password_hash,
                    grants: Vec::new(),
                    totp_sealed: None,
                    totp_enabled: false,
                    backup_codes: Vec::new(),
                    created_at: now,
                    updated_at: now,
                };
                self.store().create_user(&user)?;
                Ok(user)
            });
        let user = match made {
            Ok(user) => user,
            Err(err) => {
                self.inner.setup.restore(code);
                return Err(err);
            }
        };
        self.inner.setup.finish();
        *actor = format!("user:{}", user.username);
        tracing::info!(username = %user.username, "setup done: the owner signed in");
        self.new_session(user, false, client)
    }

    /// Checks a username and password; on success a new session, waiting
    /// for the second factor when the user has one.
    pub fn sign_in(&self, username: &str, password: &str, client: &Client) -> Result<SignedIn> {
        let name = username.trim().to_ascii_lowercase();
        let mut actor = "anonymous".to_string();
        let result = self.sign_in_inner(&name, password, client, &mut actor);
        self.audit(&actor, client, &result);
        result
    }

    fn sign_in_inner(
        &self,
        name: &str,
        password: &str,
        client: &Client,
        actor: &mut String,
    ) -> Result<SignedIn> {
        let account = account_key(name);
        let address = address_key(client);
        let known = self.store().user_named(name)?;
        if let Some(user) = &known {
            *actor = format!("user:{}", user.username);
        }
        self.check_limits(Some(&account), &address)?;
        let user = match known {
            Some(user) => verify_password(&user.password_hash, password).then_some(user),
            None => {
                verify_nobody(password);
                None
            }
        };
        let Some(user) = user else {
            self.fail(Some(&account), &address);
            return Err(SessionError::InvalidCredentials);
        };
        self.clear(&account);
        let pending = user.totp_enabled;
        self.new_session(user, pending, client)
    }

    /// Completes a pending session with a TOTP or backup code: the pending
    /// session goes and a new one (new secret, new id) takes its place.
    pub fn second_factor(
        &self,
        user: &UserRecord,
        session: &SessionRecord,
        code: &str,
        client: &Client,
    ) -> Result<SignedIn> {
        if !session.pending_second_factor {
            return Err(SessionError::NotPending);
        }
        let account = account_key(&user.username);
        let address = address_key(client);
        self.check_limits(Some(&account), &address)?;
        let user = self.store().user(&user.id)?;
        if !self.check_code(&user, code)? {
            self.fail(Some(&account), &address);
            return Err(SessionError::WrongCode);
        }
        self.clear(&account);
        self.store().revoke_session(&user.id, &session.id)?;
        self.new_session(user, false, client)
    }

    /// Signs a session out.
    pub fn sign_out(&self, session: &SessionRecord) -> Result<()> {
        self.store().revoke_session(&session.user_id, &session.id)?;
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub fn list(&self, user: &UserRecord) -> Result<Vec<SessionRecord>> {
        Ok(self.store().sessions_of(&user.id)?)
    }

    /// Ends one of `user`'s sessions by its id; not found for anyone
    /// else's.
    pub fn revoke(&self, user: &UserRecord, id: &str) -> Result<()> {
        if self.store().revoke_session(&user.id, id)? {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                kind: "session",
                name: id.to_string(),
            }
            .into())
        }
    }

    /// Starts TOTP enrolment: a new secret, sealed in the user's record
    /// but not yet enforced, and what an authenticator app needs.
    pub fn enrol(&self, user: &UserRecord) -> Result<totp::Enrolment> {
        let secret = totp::new_secret();
        let sealed = self.inner.secrets.seal(&secret)?;
        let mut on = false;
        self.store().update_user(&user.id, |u| {
            on = u.totp_enabled;
            if !on {
                u.totp_sealed = Some(sealed);
            }
            Ok(())
        })?;
        if on {
            return Err(SessionError::AlreadyOn);
        }
        totp::enrolment(&secret, &user.username)
            .ok_or_else(|| SessionError::Internal("the new TOTP secret is unusable".into()))
    }

    /// Confirms enrolment with a code of the new secret: two-factor
    /// sign-in is on, and the backup codes are returned, this once.
    pub fn confirm(&self, user: &UserRecord, code: &str, client: &Client) -> Result<Vec<String>> {
        let account = account_key(&user.username);
        let address = address_key(client);
        self.check_limits(Some(&account), &address)?;
        let user = self.store().user(&user.id)?;
        if user.totp_enabled {
            return Err(SessionError::AlreadyOn);
        }
        let Some(sealed) = user.totp_sealed.clone() else {
            return Err(SessionError::NotEnrolling);
        };
        if !self.check_totp(&user, code)? {
            self.fail(Some(&account), &address);
            return Err(SessionError::WrongCode);
        }
        let (codes, hashes) = totp::new_backup_codes();
        let mut same = false;
        self.store().update_user(&user.id, |u| {
            // Another enrolment may have started meanwhile.
            same = u.totp_sealed.as_deref() == Some(sealed.as_str());
            if same {
                u.totp_enabled = true;
                u.backup_codes = hashes;
            }
            Ok(())
        })?;
        if !same {
            return Err(SessionError::NotEnrolling);
        }
        self.clear(&account);
        Ok(codes)
    }

    /// Turns two-factor sign-in off, given the password and a current
    /// TOTP code or a backup code.
    pub fn disable(
        &self,
        user: &UserRecord,
        password: &str,
        code: &str,
        client: &Client,
    ) -> Result<()> {
        let account = account_key(&user.username);
        let address = address_key(client);
        self.check_limits(Some(&account), &address)?;
        let user = self.store().user(&user.id)?;
        if !user.totp_enabled {
            return Err(SessionError::NotOn);
        }
        if !verify_password(&user.password_hash, password) {
            self.fail(Some(&account), &address);
            return Err(SessionError::InvalidCredentials);
        }
        if !self.check_code(&user, code)? {
            self.fail(Some(&account), &address);
            return Err(SessionError::WrongCode);
        }
        self.store().update_user(&user.id, |u| {
            u.totp_enabled = false;
            u.totp_sealed = None;
            u.backup_codes.clear();
            Ok(())
        })?;
        self.clear(&account);
        Ok(())
    }

    // ---- parts ----

    fn new_session(&self, user: UserRecord, pending: bool, client: &Client) -> Result<SignedIn> {
        let secret = new_secret("");
        let now = OffsetDateTime::now_utc();
        let ttl = if pending { PENDING_TTL } else { SESSION_TTL };
        let session = SessionRecord {
            id: new_id(),
            user_id: user.id.clone(),
            pending_second_factor: pending,
            csrf_token: new_secret(""),
            address: client.address.clone(),
            user_agent: client.user_agent.chars().take(USER_AGENT_KEPT).collect(),
            created_at: now,
            last_seen: now,
            expires_at: now + ttl,
        };
        self.store()
            .create_session(&secret_hash(&secret), &session)?;
        Ok(SignedIn {
            secret,
            session,
            user,
        })
    }

    /// A TOTP code (six digits) or else a backup code, which is used up.
    fn check_code(&self, user: &UserRecord, code: &str) -> Result<bool> {
        if totp::looks_like_totp(code) {
            return self.check_totp(user, code);
        }
        if totp::find_backup(&user.backup_codes, code).is_none() {
            return Ok(false);
        }
        let mut used = false;
        self.store().update_user(&user.id, |u| {
            if let Some(i) = totp::find_backup(&u.backup_codes, code) {
                u.backup_codes.remove(i);
                used = true;
            }
            Ok(())
        })?;
        Ok(used)
    }

    /// A TOTP code of the user's secret, not accepted before.
    fn check_totp(&self, user: &UserRecord, code: &str) -> Result<bool> {
        let Some(sealed) = &user.totp_sealed else {
            return Ok(false);
        };
        let secret = self.inner.secrets.open(sealed)?;
        let unix = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let Some(step) = totp::verify(&secret, code, unix) else {
            return Ok(false);
        };
        let mut steps = self
            .inner
            .steps
            .lock()
            .map_err(|_| SessionError::Internal("the TOTP step map is poisoned".into()))?;
        if steps.get(&user.id).is_some_and(|last| *last >= step) {
            return Ok(false);
        }
        steps.insert(user.id.clone(), step);
        Ok(true)
    }

    fn check_limits(&self, account: Option<&str>, address: &str) -> Result<()> {
        let now = Instant::now();
        let mut wait = None;
        if let (Some(account), Ok(accounts)) = (account, self.inner.accounts.lock()) {
            wait = accounts.blocked(account, now);
        }
        if let Ok(addresses) = self.inner.addresses.lock() {
            wait = wait.max(addresses.blocked(address, now));
        }
        match wait {
            Some(wait) => Err(SessionError::TooMany(wait)),
            None => Ok(()),
        }
    }

    fn fail(&self, account: Option<&str>, address: &str) {
        let now = Instant::now();
        if let (Some(account), Ok(mut accounts)) = (account, self.inner.accounts.lock()) {
            accounts.fail(account, now);
        }
        if let Ok(mut addresses) = self.inner.addresses.lock() {
            addresses.fail(address, now);
        }
    }

    fn clear(&self, account: &str) {
        if let Ok(mut accounts) = self.inner.accounts.lock() {
            accounts.clear(account);
        }
    }

    /// Records a sign-in or setup attempt (the API's gate does not see
    /// public routes).
    fn audit<T>(&self, actor: &str, client: &Client, result: &Result<T>) {
        let status = match result {
            Ok(_) => 200,
            Err(err) => err.status().as_u16(),
        };
        let entry = AuditRecord {
            id: new_id(),
            at: OffsetDateTime::now_utc(),
            actor: actor.to_string(),
            action: client.action.clone(),
            target: client.target.clone(),
            address: client.address.clone(),
            status,
        };
        if let Err(err) = self.store().record_audit(&entry) {
            tracing::error!(%err, "could not write the audit log");
        }
    }
}

fn account_key(username: &str) -> String {
    format!("user:{username}")
}

fn address_key(client: &Client) -> String {
    format!("addr:{}", client.address)
}

#[cfg(test)]
mod tests;
