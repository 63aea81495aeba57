//! Payloads of each host, read after the signature was checked: GitHub
//! (push, ping, GHCR package events), Gitea/Forgejo/Gogs (GitHub-like push),
//! GitLab (push and tag push, project or system hook), Bitbucket Cloud
//! (`repo:push`) and Data Center (`repo:refs_changed`), Docker Hub, and the
//! plain POST. Only the fields berth uses are read; everything else may be
//! missing or have any shape.

use std::borrow::Cow;
use std::collections::BTreeSet;

use http::HeaderMap;
use serde_json::Value;

use super::{bounded, Event, GitRef, HookError, Provider, Push};

/// At this many listed commits a host may have truncated the list (GitLab
/// sends at most 20, GitHub's limit has changed over time): the changed
/// files are then unknown.
const TRUNCATED_COMMITS: usize = 20;

/// GitHub lists at most 3000 files per commit.
const TRUNCATED_FILES: usize = 3000;

/// Longest event name kept in [`Event::Other`].
const MAX_NAME: usize = 100;

/// Longest image name or tag kept from an unsigned Docker Hub payload (a
/// reference is at most 255 characters; a tag 128).
const MAX_IMAGE: usize = 256;

/// A request without provider headers: Docker Hub when the body says so,
/// otherwise a manual deploy request.
pub(super) fn unsigned(body: &[u8]) -> (Provider, Event) {
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if looks_like_json {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            if let Some(event) = docker_hub(&value) {
                return (Provider::DockerHub, event);
            }
        }
    }
    (Provider::Generic, Event::Manual)
}

/// A Docker Hub push: `{"push_data": {"tag": ...}, "repository":
/// {"repo_name": "acme/api", ...}}`.
fn docker_hub(value: &Value) -> Option<Event> {
    let push_data = value.get("push_data").filter(|v| v.is_object())?;
    let image = text(value.pointer("/repository/repo_name"))?;
    // Unsigned: keep what ends up in reasons and records short.
    Some(Event::ImagePush {
        image: bounded(image, MAX_IMAGE),
        tag: text(push_data.get("tag")).map(|tag| bounded(tag, MAX_IMAGE)),
    })
}

/// GitHub: `ping`, `push`, `package` / `registry_package`, anything else
/// named.
pub(super) fn github(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    match name {
        "ping" => Ok(Event::Ping),
        "push" => {
            let value = json(headers, body, "GitHub push")?;
            github_like_push(&value, "GitHub push").map(Event::Push)
        }
        "package" | "registry_package" => {
            let value = json(headers, body, "GitHub package event")?;
            github_package(&value, name)
        }
        other => Ok(other_event(other)),
    }
}

/// Gitea, Forgejo, Gogs: a GitHub-like `push` whose `before` equals `after`
/// is the settings page's "Test delivery".
pub(super) fn gitea(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    if name != "push" {
        return Ok(other_event(name));
    }
    let what = "Gitea/Forgejo push";
    let value = json(headers, body, what)?;
    let before = text(value.get("before"));
    let after = text(value.get("after"));
    if before.is_some() && before == after && !after.is_some_and(is_zero_sha) {
        return Ok(Event::Ping);
    }
    github_like_push(&value, what).map(Event::Push)
}

/// GitLab: `Push Hook`, `Tag Push Hook`, or a `System Hook` whose
/// `event_name` is `push` / `tag_push`; anything else named.
pub(super) fn gitlab(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let is_push =
        name.eq_ignore_ascii_case("Push Hook") || name.eq_ignore_ascii_case("Tag Push Hook");
    if !is_push && !name.eq_ignore_ascii_case("System Hook") {
        return Ok(other_event(name));
    }
    let what = if is_push {
        "GitLab push"
    } else {
        "GitLab system hook"
    };
    let value = json(headers, body, what)?;
    if !is_push {
        let kind = text(value.get("event_name"))
            .or_else(|| text(value.get("object_kind")))
            .unwrap_or("unknown");
        if kind != "push" && kind != "tag_push" {
            return Ok(other_event(&format!("System Hook: {kind}")));
        }
    }
    gitlab_push(&value, what).map(Event::Push)
}

/// Bitbucket: `repo:push` (Cloud), `repo:refs_changed` (Data Center),
/// `diagnostics:ping`; anything else named.
pub(super) fn bitbucket(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let pushes = match name {
        "diagnostics:ping" => return Ok(Event::Ping),
        "repo:push" => bitbucket_cloud(&json(headers, body, "Bitbucket repo:push")?)?,
        "repo:refs_changed" => {
            bitbucket_server(&json(headers, body, "Bitbucket repo:refs_changed")?)?
        }
        other => return Ok(other_event(other)),
    };
    Ok(one_or_many(pushes))
}

/// The body as JSON: raw, or the `payload` field of a form-encoded body
/// (GitHub's and Gitea's `application/x-www-form-urlencoded` option).
fn json(headers: &HeaderMap, body: &[u8], what: &str) -> Result<Value, HookError> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        || body.starts_with(b"payload=");
    let bytes: Cow<'_, [u8]> = if form {
        Cow::Owned(form_field(body, b"payload").ok_or_else(|| {
            HookError::Malformed(format!("{what}: the form body has no payload field"))
        })?)
    } else {
        Cow::Borrowed(body)
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
        HookError::Malformed(format!("{what}: the body is not valid JSON ({err})"))
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(HookError::Malformed(format!(
            "{what}: the body is not a JSON object"
        )))
    }
}

/// The decoded value of `name` in an `application/x-www-form-urlencoded`
/// body.
fn form_field(body: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        (key == name).then(|| percent_decode(value))
    })
}

/// `+` to space, `%XX` to the byte; a stray `%` stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = input.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let low = input.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                if let (Some(high), Some(low)) = (high, low) {
                    // Two hex digits: at most 255.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// The push payload of GitHub, Gitea, Forgejo and Gogs: `ref`, `before`,
/// `after`, `deleted`, `created`, `commits[]` with `added` / `modified` /
/// `removed`, `head_commit`, `total_commits` (Gitea), `repository`.
fn github_like_push(value: &Value, what: &str) -> Result<Push, HookError> {
    let git_ref = git_ref(value, what)?;
    let after = text(value.get("after"));
    let deleted = value.get("deleted").and_then(Value::as_bool) == Some(true)
        || after.is_some_and(is_zero_sha);
    let created = value.get("created").and_then(Value::as_bool) == Some(true)
        || text(value.get("before")).is_some_and(is_zero_sha);
    let commits = value.get("commits").and_then(Value::as_array);
    let head = value.get("head_commit").filter(|v| v.is_object());
    let head_id = head.and_then(|h| text(h.get("id")));
    let commit = head_id.or(after).filter(|sha| !is_zero_sha(sha));
    let head_message = head
        .and_then(|h| text(h.get("message")))
        .or_else(|| commit_message(commits, commit));
    let total = value.get("total_commits").and_then(Value::as_u64);
    Ok(git_push(
        GitPush {
            git_ref,
            deleted,
            created,
            commit,
            head_message,
            commits,
            total,
        },
        text(value.pointer("/repository/full_name")),
        text(value.pointer("/repository/default_branch")),
    ))
}

/// A GitLab push or tag push: `ref`, `before`, `after`, `checkout_sha`,
/// `commits[]`, `total_commits_count`, `project`.
fn gitlab_push(value: &Value, what: &str) -> Result<Push, HookError> {
    let git_ref = git_ref(value, what)?;
    let after = text(value.get("after"));
    let checkout = text(value.get("checkout_sha")).filter(|sha| !is_zero_sha(sha));
    let deleted = after.is_some_and(is_zero_sha);
    let created = text(value.get("before")).is_some_and(is_zero_sha);
    // For an annotated tag `after` is the tag object, `checkout_sha` the commit.
    let commit = checkout.or(after).filter(|sha| !is_zero_sha(sha));
    let commits = value.get("commits").and_then(Value::as_array);
    let head_message = commit_message(commits, commit).or_else(|| text(value.get("message")));
    let total = value.get("total_commits_count").and_then(Value::as_u64);
    Ok(git_push(
        GitPush {
            git_ref,
            deleted,
            created,
            commit,
            head_message,
            commits,
            total,
        },
        text(value.pointer("/project/path_with_namespace"))
            .or_else(|| text(value.pointer("/repository/name"))),
        text(value.pointer("/project/default_branch")),
    ))
}

/// What GitHub-style and GitLab push payloads have in common, read.
struct GitPush<'a> {
    git_ref: GitRef,
    deleted: bool,
    created: bool,
    commit: Option<&'a str>,
    head_message: Option<&'a str>,
    commits: Option<&'a Vec<Value>>,
    total: Option<u64>,
}

/// A [`Push`] from the common parts: a deletion carries no commit,
/// message or files; a new ref lists no files that could be trusted.
fn git_push(p: GitPush<'_>, repository: Option<&str>, default_branch: Option<&str>) -> Push {
    Push {
        git_ref: p.git_ref,
        after: p.commit.filter(|_| !p.deleted).map(str::to_string),
        deleted: p.deleted,
        head_message: p.head_message.filter(|_| !p.deleted).map(str::to_string),
        changed_files: if p.deleted || p.created {
            None
        } else {
            changed_files(p.commits, p.total)
        },
        repository: repository.map(str::to_string),
        default_branch: default_branch.map(str::to_string),
    }
}

/// Bitbucket Cloud `repo:push`: one push per entry of `push.changes`, each
/// with `new` (null when deleted) and `old`: `{type, name, target: {hash,
/// message}}`. Bitbucket lists no files.
fn bitbucket_cloud(value: &Value) -> Result<Vec<Push>, HookError> {
    let what = "Bitbucket repo:push";
    let changes = value
        .pointer("/push/changes")
        .and_then(Value::as_array)
        .ok_or_else(|| HookError::Malformed(format!("{what}: push.changes is missing")))?;
    let repository = text(value.pointer("/repository/full_name"));
    changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let new = change.get("new").filter(|v| v.is_object());
            let old = change.get("old").filter(|v| v.is_object());
            let (state, deleted) = match (new, old) {
                (Some(new), _) => (new, false),
                (None, Some(old)) => (old, true),
                (None, None) => {
                    return Err(HookError::Malformed(format!(
                        "{what}: push.changes[{i}] has neither new nor old"
                    )))
                }
            };
            let name = text(state.get("name")).ok_or_else(|| {
                HookError::Malformed(format!("{what}: push.changes[{i}] has no ref name"))
            })?;
            let git_ref = match text(state.get("type")).unwrap_or("") {
                "branch" | "named_branch" => GitRef::Branch(name.to_string()),
                "tag" | "annotated_tag" => GitRef::Tag(name.to_string()),
                _ => GitRef::Other(name.to_string()),
            };
            let (after, message) = if deleted {
                (None, None)
            } else {
                (
                    text(state.pointer("/target/hash")).map(str::to_string),
                    text(state.pointer("/target/message")).map(str::to_string),
                )
            };
            Ok(Push {
                git_ref,
                after,
                deleted,
                head_message: message,
                changed_files: None,
                repository: repository.map(str::to_string),
                default_branch: None,
            })
        })
        .collect()
}

/// Bitbucket Data Center `repo:refs_changed`: `changes[]` of `{ref: {id,
/// displayId, type}, refId, toHash, type: ADD|UPDATE|DELETE}`. No messages,
/// no files.
fn bitbucket_server(value: &Value) -> Result<Vec<Push>, HookError> {
    let what = "Bitbucket repo:refs_changed";
    let changes = value
        .get("changes")
        .and_then(Value::as_array)
        .ok_or_else(|| HookError::Malformed(format!("{what}: changes is missing")))?;
    let repository = match (
        text(value.pointer("/repository/project/key")),
        text(value.pointer("/repository/slug")),
    ) {
        (Some(project), Some(slug)) => Some(format!("{project}/{slug}")),
        (None, Some(slug)) => Some(slug.to_string()),
        _ => None,
    };
    changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let full = text(change.pointer("/ref/id"))
                .or_else(|| text(change.get("refId")))
                .ok_or_else(|| {
                    HookError::Malformed(format!("{what}: changes[{i}] has no ref id"))
                })?;
            let deleted = text(change.get("type"))
                .is_some_and(|t| t.eq_ignore_ascii_case("DELETE"))
                || text(change.get("toHash")).is_some_and(is_zero_sha);
            let after = if deleted {
                None
            } else {
                text(change.get("toHash")).map(str::to_string)
            };
            Ok(Push {
                git_ref: GitRef::parse(full),
                after,
                deleted,
                head_message: None,
                changed_files: None,
                repository: repository.clone(),
                default_branch: None,
            })
        })
        .collect()
}

/// GitHub `package` / `registry_package`: a published container version
/// is an image push; other package types and actions are named.
fn github_package(value: &Value, event: &str) -> Result<Event, HookError> {
    let action = text(value.get("action")).unwrap_or("unknown");
    let package = value
        .get(event)
        .filter(|v| v.is_object())
        .ok_or_else(|| HookError::Malformed(format!("GitHub {event} event: {event} is missing")))?;
    let version = package.get("package_version").filter(|v| v.is_object());
    let url = version
        .and_then(|v| text(v.get("package_url")))
        .map(str::trim);
    let kinds = [
        text(package.get("package_type")),
        text(package.get("ecosystem")),
        text(package.pointer("/registry/type")),
    ];
    let is_container =
        kinds.iter().flatten().any(|kind| {
            kind.eq_ignore_ascii_case("container") || kind.eq_ignore_ascii_case("docker")
        }) || url.is_some_and(|u| u.to_ascii_lowercase().starts_with("ghcr.io/"));
    if !is_container {
        let kind = kinds.iter().flatten().next().copied().unwrap_or("unknown");
        return Ok(other_event(&format!("{event} {action} ({kind} package)")));
    }
    if action != "published" {
        return Ok(other_event(&format!("{event} {action}")));
    }
    let (image, url_tag) = match url.map(split_tag) {
        Some((image, tag)) if !image.is_empty() => (image.to_ascii_lowercase(), tag),
        _ => {
            let name = text(package.get("name")).ok_or_else(|| {
                HookError::Malformed(format!(
                    "GitHub {event} event: the package has neither package_url nor name"
                ))
            })?;
            let owner =
                text(package.pointer("/owner/login")).or_else(|| text(package.get("namespace")));
            let image = match owner {
                Some(owner) => format!("ghcr.io/{owner}/{name}"),
                None => format!("ghcr.io/{name}"),
            };
            (image.to_ascii_lowercase(), None)
        }
    };
    let tag = version
        .and_then(|v| text(v.pointer("/container_metadata/tag/name")))
        .or(url_tag)
        .map(str::to_string);
    Ok(Event::ImagePush { image, tag })
}

/// `ghcr.io/acme/api:v1` to (`ghcr.io/acme/api`, `v1`); an empty tag (GitHub
/// writes `ghcr.io/acme/api:` for untagged versions) is none. A digest is
/// dropped.
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let reference = reference.split('@').next().unwrap_or(reference);
    let slash = reference.rfind('/').map_or(0, |at| at + 1);
    match reference[slash..].rfind(':') {
        Some(colon) => {
            let at = slash + colon;
            let tag = &reference[at + 1..];
            (&reference[..at], (!tag.is_empty()).then_some(tag))
        }
        None => (reference, None),
    }
}

/// `ref`, required.
fn git_ref(value: &Value, what: &str) -> Result<GitRef, HookError> {
    text(value.get("ref"))
        .map(GitRef::parse)
        .ok_or_else(|| HookError::Malformed(format!("{what}: ref is missing")))
}

/// The message of the commit `id` in `commits`, else of the last one.
fn commit_message<'a>(commits: Option<&'a Vec<Value>>, id: Option<&str>) -> Option<&'a str> {
    let commits = commits?;
    let by_id = id.and_then(|id| {
        commits
            .iter()
            .find(|c| text(c.get("id")) == Some(id))
            .and_then(|c| text(c.get("message")))
    });
    by_id.or_else(|| commits.last().and_then(|c| text(c.get("message"))))
}

/// The union of `added`, `modified` and `removed` over `commits`, or `None`
/// when it may be incomplete: no commits, a list that may be truncated
/// ([`TRUNCATED_COMMITS`], `total` above the listed count,
/// [`TRUNCATED_FILES`] in one commit) or a commit without the three lists.
fn changed_files(commits: Option<&Vec<Value>>, total: Option<u64>) -> Option<Vec<String>> {
    let commits = commits?;
    if commits.is_empty() || commits.len() >= TRUNCATED_COMMITS {
        return None;
    }
    if total.is_some_and(|total| total > commits.len() as u64) {
        return None;
    }
    let mut files = BTreeSet::new();
    for commit in commits {
        let mut count = 0;
        for key in ["added", "modified", "removed"] {
            let list = commit.get(key)?.as_array()?;
            count += list.len();
            for file in list {
                files.insert(file.as_str()?);
            }
        }
        if count >= TRUNCATED_FILES {
            return None;
        }
    }
    Some(files.into_iter().map(str::to_string).collect())
}

/// [`Event::Push`] for one push, [`Event::Pushes`] otherwise.
fn one_or_many(mut pushes: Vec<Push>) -> Event {
    match pushes.len() {
        1 => match pushes.pop() {
            Some(push) => Event::Push(push),
            None => Event::Pushes(pushes),
        },
        _ => Event::Pushes(pushes),
    }
}

/// [`Event::Other`] with a bounded name.
fn other_event(name: &str) -> Event {
    Event::Other(bounded(name, MAX_NAME))
}

/// A non-empty string field.
fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `0000000000000000000000000000000000000000`: the "no commit" of a created
/// or deleted ref (40 zeros for SHA-1, 64 for SHA-256 repositories).
fn is_zero_sha(sha: &str) -> bool {
    sha.len() >= 40 && sha.bytes().all(|b| b == b'0')
}
