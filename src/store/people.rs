//! People in the store: users with their role, project grants and second
//! factor; their sessions; API keys; and the audit log of every change.
//! Secrets are never stored as given: passwords as argon2id hashes, session
//! ids, API keys and backup codes as SHA-256 hashes (they are long random
//! strings), TOTP secrets sealed with the instance key.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::saved::{decode_kept, encode_kept};
use super::schema::{decode, encode, API_KEYS, AUDIT, SESSIONS, USERS};
use super::{not_found, Result, Store, StoreError};
use berth_config::FieldError;

/// What a person may do in the whole instance.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and acts only on the projects granted to them.
    Member,
    /// Everything but the owner's own account.
    Admin,
    /// Everything; made at setup.
    Owner,
}

/// How far an action reaches; each scope allows the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything visible.
    Read,
    /// Also deploy, roll back, cancel, stop and start.
    Deploy,
    /// Also create, change and delete apps and projects.
    Write,
    /// Also manage users, keys, certificates and settings.
    Admin,
}

impl Scope {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Deploy => "deploy",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// A member's access to one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    /// The project's name.
    pub project: String,
    /// What the member may do in it (`read`, `deploy` or `write`).
    pub scope: Scope,
}

/// A person who signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Random id.
    pub id: String,
    /// Sign-in name: 1-64 of a-z, 0-9, `.`, `_`, `-`, `@`.
    pub username: String,
    /// Instance-wide role; saved as `SavedRole` (`saved/people.rs`).
    #[serde(with = "super::saved::value")]
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// A member's projects; saved as `SavedGrant`s.
    #[serde(default, with = "super::saved::list")]
    pub grants: Vec<Grant>,
    /// TOTP secret, sealed; set once enrolment starts.
    #[serde(default)]
    pub totp_sealed: Option<String>,
    /// Whether the TOTP secret was confirmed with a code (and is enforced).
    #[serde(default)]
    pub totp_enabled: bool,
    /// SHA-256 (hex) of each unused backup code.
    #[serde(default)]
    pub backup_codes: Vec<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A signed-in browser (or API client holding the cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Public id for listing and revoking (not the cookie's secret).
    pub id: String,
    /// Whose session.
    pub user_id: String,
    /// The second factor is still to be given: nothing but that is allowed.
    pub pending_second_factor: bool,
    /// Token every state-changing request of the session must carry.
    pub csrf_token: String,
    /// Where it signed in from.
    pub address: String,
    /// The browser's `User-Agent`, cut to 200 characters.
    pub user_agent: String,
    /// Sign-in time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last request.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// After this the session is gone.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The key's first characters, to recognise it in a list.
    pub prefix: String,
    /// Who made it; `None` when made with the admin token.
    pub user_id: Option<String>,
    /// Scopes as given; the widest applies. Saved as `SavedScope`s.
    #[serde(with = "super::saved::list")]
    pub scopes: Vec<Scope>,
    /// Projects it is limited to; `None`: all the maker may see.
    pub projects: Option<Vec<String>>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this it no longer works.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// The widest of its scopes.
    pub fn scope(&self) -> Scope {
        self.scopes.iter().copied().max().unwrap_or(Scope::Read)
    }
}

/// One change made through the API, the panel or a webhook. The API shows
/// it as it is; the store keeps it as `SavedAudit` (`saved/people.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Sortable id.
    pub id: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who: `user:<name>`, `key:<id>` or `admin-token`.
    pub actor: String,
    /// What: method and route, e.g. `POST /api/v1/apps/{name}/deployments`.
    pub action: String,
    /// On what: the request's path.
    pub target: String,
    /// From which address.
    pub address: String,
    /// The answer's status.
    pub status: u16,
}

/// Audit entries kept; the oldest go first.
pub const MAX_AUDIT: u64 = 10_000;

/// A sortable random id: milliseconds then randomness, hex.
pub fn new_id() -> String {
    let millis = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    format!("{millis:012x}{:08x}", rand::random::<u32>())
}

/// A table of this module: a string key to an encoded record.
type Table = redb::TableDefinition<'static, &'static str, &'static [u8]>;

impl Store {
    /// Writes one record under `key`.
    fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(table)?
            .insert(key, encode(value)?.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Removes every record that `hit` picks; whether any was.
    fn remove_where<T: DeserializeOwned>(
        &self,
        table: Table,
        hit: impl Fn(&T) -> bool,
    ) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let mut found = false;
        tx.open_table(table)?.retain(|_, v| {
            let gone = decode::<T>(v).is_ok_and(|r| hit(&r));
            found |= gone;
            !gone
        })?;
        tx.commit()?;
        Ok(found)
    }

    // ---- users ----

    /// Creates a user; 409 if the username is taken.
    pub fn create_user(&self, user: &UserRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut users = tx.open_table(USERS)?;
            for entry in users.iter()? {
                let other: UserRecord = decode(entry?.1.value())?;
                if other.username == user.username {
                    return Err(StoreError::Conflict(FieldError::new(
                        "username",
                        format!("{:?} is taken; pick another username", user.username),
                    )));
                }
            }
            users.insert(user.id.as_str(), encode(user)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether any user exists (setup is over once one does).
    pub fn has_users(&self) -> Result<bool> {
        let tx = self.db.begin_read()?;
        Ok(!tx.open_table(USERS)?.is_empty()?)
    }

    /// One user by id.
    pub fn user(&self, id: &str) -> Result<UserRecord> {
        let tx = self.db.begin_read()?;
        let users = tx.open_table(USERS)?;
        let value = users.get(id)?.ok_or_else(|| not_found("user", id))?;
        decode(value.value())
    }

    /// One user by username.
    pub fn user_named(&self, username: &str) -> Result<Option<UserRecord>> {
        Ok(self.users()?.into_iter().find(|u| u.username == username))
    }

    /// All users, oldest first.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        let tx = self.db.begin_read()?;
        let users = tx.open_table(USERS)?;
        let mut out = Vec::new();
        for entry in users.iter()? {
            out.push(decode::<UserRecord>(entry?.1.value())?);
        }
        out.sort_by_key(|u| u.created_at);
        Ok(out)
    }

    /// Changes a user in one transaction.
    pub fn update_user<F>(&self, id: &str, change: F) -> Result<UserRecord>
    where
        F: FnOnce(&mut UserRecord) -> Result<()>,
    {
        let tx = self.db.begin_write()?;
        let user = {
            let mut users = tx.open_table(USERS)?;
            let mut user: UserRecord =
                decode(users.get(id)?.ok_or_else(|| not_found("user", id))?.value())?;
            change(&mut user)?;
            user.updated_at = OffsetDateTime::now_utc();
            users.insert(id, encode(&user)?.as_slice())?;
            user
        };
        tx.commit()?;
        Ok(user)
    }

    /// Deletes a user with their sessions and API keys.
    pub fn delete_user(&self, id: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            if tx.open_table(USERS)?.remove(id)?.is_none() {
                return Err(not_found("user", id));
            }
            let mut sessions = tx.open_table(SESSIONS)?;
            sessions.retain(|_, v| decode::<SessionRecord>(v).is_ok_and(|s| s.user_id != id))?;
            let mut keys = tx.open_table(API_KEYS)?;
            keys.retain(|_, v| {
                decode::<ApiKeyRecord>(v).is_ok_and(|k| k.user_id.as_deref() != Some(id))
            })?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- sessions (keyed by the SHA-256 of the cookie's secret) ----

    /// Stores a new session.
    pub fn create_session(&self, secret_hash: &str, session: &SessionRecord) -> Result<()> {
        self.put(SESSIONS, secret_hash, session)
    }

    /// The live session with this secret hash; an expired one is removed.
    pub fn session(&self, secret_hash: &str) -> Result<Option<SessionRecord>> {
        let found = {
            let tx = self.db.begin_read()?;
            let sessions = tx.open_table(SESSIONS)?;
            let value = sessions.get(secret_hash)?;
            match value {
                Some(v) => Some(decode::<SessionRecord>(v.value())?),
                None => None,
            }
        };
        match found {
            Some(s) if s.expires_at > OffsetDateTime::now_utc() => Ok(Some(s)),
            Some(_) => {
                self.delete_session(secret_hash)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Replaces a session (second factor given, last seen).
    pub fn put_session(&self, secret_hash: &str, session: &SessionRecord) -> Result<()> {
        self.put(SESSIONS, secret_hash, session)
    }

    /// Removes a session by its secret hash.
    pub fn delete_session(&self, secret_hash: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(SESSIONS)?.remove(secret_hash)?;
        tx.commit()?;
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>> {
        let now = OffsetDateTime::now_utc();
        let tx = self.db.begin_read()?;
        let sessions = tx.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for entry in sessions.iter()? {
            let s: SessionRecord = decode(entry?.1.value())?;
            if s.user_id == user_id && s.expires_at > now {
                out.push(s);
            }
        }
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(out)
    }

    /// Removes one of a user's sessions by its public id; false if none.
    pub fn revoke_session(&self, user_id: &str, id: &str) -> Result<bool> {
        self.remove_where(SESSIONS, |s: &SessionRecord| {
            s.user_id == user_id && s.id == id
        })
    }

    /// Removes every session of a user (password changed, user reset).
    pub fn revoke_sessions_of(&self, user_id: &str) -> Result<()> {
        self.remove_where(SESSIONS, |s: &SessionRecord| s.user_id == user_id)?;
        Ok(())
    }

    // ---- API keys (keyed by the SHA-256 of the key) ----

    /// Stores a new key.
    pub fn create_api_key(&self, key_hash: &str, key: &ApiKeyRecord) -> Result<()> {
        self.put(API_KEYS, key_hash, key)
    }

    /// The key with this hash, if it exists and has not expired.
    pub fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let tx = self.db.begin_read()?;
        let keys = tx.open_table(API_KEYS)?;
        let Some(value) = keys.get(key_hash)? else {
            return Ok(None);
        };
        let key: ApiKeyRecord = decode(value.value())?;
        let live = key
            .expires_at
            .is_none_or(|at| at > OffsetDateTime::now_utc());
        Ok(live.then_some(key))
    }

    /// Every key, newest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let tx = self.db.begin_read()?;
        let keys = tx.open_table(API_KEYS)?;
        let mut out = Vec::new();
        for entry in keys.iter()? {
            out.push(decode::<ApiKeyRecord>(entry?.1.value())?);
        }
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(out)
    }

    /// Deletes a key by its public id.
    pub fn delete_api_key(&self, id: &str) -> Result<()> {
        if self.remove_where(API_KEYS, |k: &ApiKeyRecord| k.id == id)? {
            Ok(())
        } else {
            Err(not_found("API key", id))
        }
    }

    // ---- audit ----

    /// Appends an audit entry, dropping the oldest beyond [`MAX_AUDIT`].
    pub fn record_audit(&self, entry: &AuditRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut audit = tx.open_table(AUDIT)?;
            audit.insert(entry.id.as_str(), encode_kept(entry)?.as_slice())?;
            let excess = audit.len()?.saturating_sub(MAX_AUDIT);
            for _ in 0..excess {
                audit.pop_first()?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        let tx = self.db.begin_read()?;
        let audit = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for entry in audit.iter()?.rev().take(limit) {
            out.push(decode_kept::<AuditRecord>(entry?.1.value())?);
        }
        Ok(out)
    }
}
