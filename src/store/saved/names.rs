//! The saved name of every variant of every enum the store keeps through
//! a saved form (`saved_enum!`), pinned: each table lists the API's
//! variant and the string on disk, checked both ways (written as that
//! string, that string read back as the variant). The names are the file
//! format: change one only with a new schema version and a migration.
//!
//! Each table is also checked to be complete: `ordinal` is an exhaustive
//! match, so a new variant does not compile until it has a number, and
//! the table must then list every number once.

use std::fmt::Debug;

use serde_json::Value;

use super::{value, Kept};
use crate::store::{CertificateOrigin, DeploymentStatus, HookOutcome, Phase, Role, Scope, Trigger};

/// Checks that `table` lists each variant once (by `ordinal`) and that
/// each is saved as its name and read back from it.
fn pins<T>(table: &[(T, &str)], ordinal: fn(T) -> usize)
where
    T: Kept + Copy + PartialEq + Debug,
{
    let mut listed: Vec<usize> = table.iter().map(|(v, _)| ordinal(*v)).collect();
    listed.sort_unstable();
    let every: Vec<usize> = (0..table.len()).collect();
    assert_eq!(listed, every, "each variant listed once: {table:?}");
    for (variant, name) in table {
        let written = value::serialize(variant, serde_json::value::Serializer).unwrap();
        assert_eq!(written, Value::from(*name), "{variant:?} is saved as");
        let read: T = value::deserialize(Value::from(*name)).unwrap();
        assert_eq!(read, *variant, "{name:?} reads as");
    }
    let unknown: Result<T, _> = value::deserialize(Value::from("no_such_variant"));
    assert!(unknown.is_err(), "an unknown name is refused");
}

#[test]
fn deployment_statuses() {
    use DeploymentStatus as S;
    let ordinal = |s: S| match s {
        S::Queued => 0,
        S::Running => 1,
        S::Succeeded => 2,
        S::Failed => 3,
        S::Cancelled => 4,
        S::RolledBack => 5,
    };
    pins(
        &[
            (S::Queued, "queued"),
            (S::Running, "running"),
            (S::Succeeded, "succeeded"),
            (S::Failed, "failed"),
            (S::Cancelled, "cancelled"),
            (S::RolledBack, "rolled_back"),
        ],
        ordinal,
    );
}

#[test]
fn triggers() {
    use Trigger as T;
    let ordinal = |t: T| match t {
        T::Api => 0,
        T::Restart => 1,
        T::Rollback => 2,
        T::Webhook => 3,
    };
    pins(
        &[
            (T::Api, "api"),
            (T::Restart, "restart"),
            (T::Rollback, "rollback"),
            (T::Webhook, "webhook"),
        ],
        ordinal,
    );
}

#[test]
fn phases() {
    use Phase as P;
    let ordinal = |p: P| match p {
        P::Queued => 0,
        P::Running => 1,
        P::Built => 2,
        P::ImageReady => 3,
        P::Healthy => 4,
        P::Switched => 5,
        P::Drained => 6,
        P::Finished => 7,
    };
    pins(
        &[
            (P::Queued, "queued"),
            (P::Running, "running"),
            (P::Built, "built"),
            (P::ImageReady, "image_ready"),
            (P::Healthy, "healthy"),
            (P::Switched, "switched"),
            (P::Drained, "drained"),
            (P::Finished, "finished"),
        ],
        ordinal,
    );
}

#[test]
fn roles() {
    let ordinal = |r: Role| match r {
        Role::Member => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    };
    pins(
        &[
            (Role::Member, "member"),
            (Role::Admin, "admin"),
            (Role::Owner, "owner"),
        ],
        ordinal,
    );
}

#[test]
fn scopes() {
    let ordinal = |s: Scope| match s {
        Scope::Read => 0,
        Scope::Deploy => 1,
        Scope::Write => 2,
        Scope::Admin => 3,
    };
    pins(
        &[
            (Scope::Read, "read"),
            (Scope::Deploy, "deploy"),
            (Scope::Write, "write"),
            (Scope::Admin, "admin"),
        ],
        ordinal,
    );
}

#[test]
fn hook_outcomes() {
    use HookOutcome as O;
    let ordinal = |o: O| match o {
        O::Deployed => 0,
        O::Ignored => 1,
        O::Rejected => 2,
    };
    pins(
        &[
            (O::Deployed, "deployed"),
            (O::Ignored, "ignored"),
            (O::Rejected, "rejected"),
        ],
        ordinal,
    );
}

#[test]
fn redirect_www_presets() {
    use berth_config::RedirectWww as W;
    let ordinal = |w: W| match w {
        W::ToApex => 0,
        W::ToWww => 1,
    };
    pins(&[(W::ToApex, "to_apex"), (W::ToWww, "to_www")], ordinal);
}

#[test]
fn encodings() {
    use berth_config::Encoding as E;
    let ordinal = |e: E| match e {
        E::Zstd => 0,
        E::Br => 1,
        E::Gzip => 2,
    };
    pins(
        &[(E::Zstd, "zstd"), (E::Br, "br"), (E::Gzip, "gzip")],
        ordinal,
    );
}

/// A domain's route rules, every one on, are saved under these names
/// (basic-auth hashes included), and nothing of them when all are off.
#[test]
fn route_rules_keep_their_saved_names() {
    use crate::store::saved::tests::{full_rules, full_rules_saved};
    saves_as(full_rules(), full_rules_saved());
    saves_as(berth_config::RouteRules::default(), serde_json::json!({}));
}

#[test]
fn certificate_origins() {
    use CertificateOrigin as C;
    let ordinal = |c: C| match c {
        C::Acme => 0,
        C::Custom => 1,
    };
    pins(&[(C::Acme, "acme"), (C::Custom, "custom")], ordinal);
}

/// Writes `value` in its saved form, checks the JSON against `saved`,
/// and reads `saved` back as `value`.
fn saves_as<T: Kept + PartialEq + Debug>(value: T, saved: Value) {
    let written = value::serialize(&value, serde_json::value::Serializer).unwrap();
    assert_eq!(written, saved);
    let read: T = value::deserialize(saved).unwrap();
    assert_eq!(read, value);
}

/// 2026-01-02T03:04:05.678Z.
fn when() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-02 03:04:05.678 UTC)
}

#[test]
fn structs_keep_their_saved_field_names() {
    use crate::store::{AuditRecord, DeliveryRecord, Grant, PhaseTime, Timing};
    use serde_json::json;
    let at = "2026-01-02T03:04:05.678Z";
    saves_as(
        PhaseTime {
            phase: Phase::ImageReady,
            at: when(),
        },
        json!({"phase": "image_ready", "at": at}),
    );
    saves_as(
        Timing {
            total_ms: 1,
            docker_ms: 2,
            waiting_ms: 3,
            berth_ms: 4,
        },
        json!({"total_ms": 1, "docker_ms": 2, "waiting_ms": 3, "berth_ms": 4}),
    );
    saves_as(
        Grant {
            project: "shop".into(),
            scope: Scope::Write,
        },
        json!({"project": "shop", "scope": "write"}),
    );
    saves_as(
        DeliveryRecord {
            id: "d1".into(),
            at: when(),
            provider: "github".into(),
            event: "push to main".into(),
            outcome: HookOutcome::Deployed,
            reason: "branch main".into(),
            commit: Some("abc".into()),
            deployment: Some("x1".into()),
        },
        json!({"id": "d1", "at": at, "provider": "github", "event": "push to main",
            "outcome": "deployed", "reason": "branch main", "commit": "abc",
            "deployment": "x1"}),
    );
    saves_as(
        AuditRecord {
            id: "a1".into(),
            at: when(),
            actor: "user:alice".into(),
            action: "POST /api/v1/apps".into(),
            target: "/api/v1/apps".into(),
            address: "127.0.0.1".into(),
            status: 201,
        },
        json!({"id": "a1", "at": at, "actor": "user:alice", "action": "POST /api/v1/apps",
            "target": "/api/v1/apps", "address": "127.0.0.1", "status": 201}),
    );
}
