//! The saved forms of roles, scopes, project grants and audit entries
//! (types the API shows too, in [`crate::store`]). The API shows
//! [`AuditRecord`] whole, so the store keeps it as [`SavedAudit`], with
//! the same fields in the same order.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Kept;
use crate::store::{AuditRecord, Grant, Role, Scope};

saved_enum! {
    /// A saved instance-wide role.
    SavedRole for Role {
        Member = "member",
        Admin = "admin",
        Owner = "owner",
    }
}

saved_enum! {
    /// A saved scope (of an API key or a project grant).
    SavedScope for Scope {
        Read = "read",
        Deploy = "deploy",
        Write = "write",
        Admin = "admin",
    }
}

/// A member's saved access to one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SavedGrant {
    project: String,
    scope: SavedScope,
}

same_fields!(SavedGrant, Grant, { project, scope });

impl Kept for Grant {
    type Saved = SavedGrant;
}

/// A saved audit entry (`audit`, schema 3 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SavedAudit {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    actor: String,
    action: String,
    target: String,
    address: String,
    status: u16,
}

same_fields!(SavedAudit, AuditRecord, {
    id, at, actor, action, target, address, status,
});

impl Kept for AuditRecord {
    type Saved = SavedAudit;
}
