//! Basic auth of a domain: the users as sent (a plain `password` or a
//! `password_hash`), the hashing of plain passwords ahead of validation,
//! their validation (a user named alone keeps the hash it had) and the
//! validated form the edge checks credentials against.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most users of one domain's basic auth.
pub const MAX_AUTH_USERS: usize = 100;
/// Longest plain password (bytes).
const MAX_PASSWORD: usize = 256;

/// Whether a plain password has a length validation takes.
fn password_fits(password: &str) -> bool {
    !password.is_empty() && password.len() <= MAX_PASSWORD
}

/// Basic auth as sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuthInput {
    /// The realm browsers show; default `berth`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub realm: Option<String>,
    /// Who may pass (1 to 100).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub users: Vec<BasicAuthUserInput>,
}

/// One basic-auth user as sent: a plain `password` (hashed by berth,
/// never returned) or a `password_hash` as `htpasswd -B` or argon2
/// write it. On a change of the domain, a user given by name alone keeps
/// the password it had.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuthUserInput {
    /// 1-64 characters, no `:`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub username: String,
    /// A password, hashed with argon2id on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub password: Option<String>,
    /// A bcrypt (`$2y$`, `$2b$`, `$2a$`) or argon2 (`$argon2id$…`) hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// Validated basic auth.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BasicAuth {
    /// The realm of the `WWW-Authenticate` challenge.
    pub realm: String,
    /// Who may pass.
    pub users: Vec<BasicAuthUser>,
}

/// A user of basic auth; its hash is kept, never shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BasicAuthUser {
    /// The user name.
    pub username: String,
    /// A PHC argon2 hash or a bcrypt hash; not shown by the API.
    #[serde(skip_serializing, default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub password_hash: String,
}

impl BasicAuthInput {
    /// Replaces each plain `password` by its argon2id `password_hash`, so
    /// that validation only checks the hash's form. argon2 takes tens of
    /// milliseconds of CPU per password: callers run this before a store
    /// transaction (and off async threads), not inside. What validation
    /// refuses is left as it is, for validation to report in its order:
    /// more than 100 users, a password of the wrong length, one given
    /// together with a hash. Users given by hash or by name alone are not
    /// touched. Errors name the field within the basic auth
    /// (`users[0].password`).
    pub fn hash_passwords(&mut self) -> Result<(), FieldError> {
        if self.users.len() > MAX_AUTH_USERS {
            return Ok(());
        }
        for (i, user) in self.users.iter_mut().enumerate() {
            let plain = match (&user.password, &user.password_hash) {
                (Some(password), None) if password_fits(password) => password,
                _ => continue,
            };
            let hash = crate::hash::hash_password(plain)
                .map_err(|e| FieldError::new(format!("users[{i}].password"), e))?;
            user.password = None;
            user.password_hash = Some(hash);
        }
        Ok(())
    }

    pub(super) fn validate(self, previous: Option<&BasicAuth>) -> Result<BasicAuth, FieldError> {
        let realm = self.realm.unwrap_or_else(|| "berth".to_string());
        if realm.is_empty() || realm.len() > 100 || realm.chars().any(|c| c == '"' || c < ' ') {
            return Err(FieldError::new(
                "realm",
                "give 1-100 characters without quotes or control characters",
            ));
        }
        if self.users.is_empty() || self.users.len() > MAX_AUTH_USERS {
            return Err(FieldError::new(
                "users",
                format!("has {} users; give 1 to {MAX_AUTH_USERS}", self.users.len()),
            ));
        }
        let mut users: Vec<BasicAuthUser> = Vec::with_capacity(self.users.len());
        for (i, user) in self.users.into_iter().enumerate() {
            let at = |f: &str| format!("users[{i}].{f}");
            let name = &user.username;
            if name.is_empty()
                || name.len() > 64
                || name.contains(':')
                || name.chars().any(char::is_control)
            {
                return Err(FieldError::new(
                    at("username"),
                    "give 1-64 characters without ':' or control characters",
                ));
            }
            if users.iter().any(|u| u.username == *name) {
                return Err(FieldError::new(
                    at("username"),
                    format!("{name:?} is listed twice"),
                ));
            }
            let password_hash = match (user.password, user.password_hash) {
                (Some(_), Some(_)) => {
                    return Err(FieldError::new(
                        at("password_hash"),
                        "is given together with password; give one of them",
                    ))
                }
                (Some(password), None) => {
                    if !password_fits(&password) {
                        return Err(FieldError::new(at("password"), "give 1-256 characters"));
                    }
                    crate::hash::hash_password(&password)
                        .map_err(|e| FieldError::new(at("password"), e))?
                }
                (None, Some(hash)) => {
                    crate::hash::check_hash(&hash)
                        .map_err(|e| FieldError::new(at("password_hash"), e))?;
                    hash
                }
                (None, None) => previous
                    .and_then(|p| p.users.iter().find(|u| u.username == *name))
                    .map(|u| u.password_hash.clone())
                    .ok_or_else(|| {
                        FieldError::new(
                            at("password"),
                            "is missing for a new user; give password or password_hash",
                        )
                    })?,
            };
            users.push(BasicAuthUser {
                username: user.username,
                password_hash,
            });
        }
        Ok(BasicAuth { realm, users })
    }
}
