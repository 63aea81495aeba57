//! Push webhooks from git hosts and image registries, for auto-deploy.
//!
//! [`parse`] turns one delivery (headers, raw body, the app's webhook secret)
//! into a [`Delivery`]: which host sent it and what happened (a push to a
//! branch or tag, an image push, a ping, a plain "deploy now" POST). The
//! signature is checked on the raw body before any JSON is read, and every
//! comparison with the secret is constant time. [`decide`] then applies an
//! app's [`Trigger`] (branch, tag pattern, watch paths, skip markers) to a
//! push and says whether to deploy, with a reason that reads well in an API
//! answer. Everything here is pure: no I/O, no clock, no async.
//!
//! Hosts are told apart by their event header, checked in this order:
//!
//! | host | event header | authentication |
//! | --- | --- | --- |
//! | Forgejo | `X-Forgejo-Event` | `X-Forgejo-Signature`: hex HMAC-SHA256 of the body |
//! | Gitea | `X-Gitea-Event` | `X-Gitea-Signature`: hex HMAC-SHA256 of the body |
//! | Gogs | `X-Gogs-Event` | `X-Gogs-Signature`: hex HMAC-SHA256 of the body |
//! | GitHub | `X-GitHub-Event` | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` |
//! | GitLab | `X-Gitlab-Event` | `X-Gitlab-Token` equal to the secret |
//! | Bitbucket (Cloud and Data Center) | `X-Event-Key` | `X-Hub-Signature: sha256=<hex HMAC-SHA256>` |
//!
//! Forgejo and Gitea also send `X-GitHub-Event` (and Forgejo `X-Gitea-*`),
//! hence the order; all three report as [`Provider::Gitea`]. A request with
//! none of these headers is a Docker Hub push when its JSON body has
//! `push_data` and `repository.repo_name` (Docker Hub cannot sign: the URL
//! token is its only authentication), and otherwise a [`Event::Manual`]
//! request, e.g. `curl -X POST` from a CI script.

mod filter;
mod providers;
#[cfg(test)]
mod tests;

use std::fmt;

use http::HeaderMap;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use filter::{decide_any, decide_image, Decision, Trigger};

/// Who sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub (and GitHub Enterprise), including GHCR package events.
    Github,
    /// GitLab, project and system hooks.
    Gitlab,
    /// Gitea, Forgejo and Gogs.
    Gitea,
    /// Bitbucket Cloud and Bitbucket Data Center.
    Bitbucket,
    /// Docker Hub repository webhooks.
    DockerHub,
    /// No provider headers: a plain POST.
    Generic,
}

impl Provider {
    /// The serialized name: `github`, `gitlab`, `gitea`, `bitbucket`,
    /// `dockerhub`, `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Gitea => "gitea",
            Self::Bitbucket => "bitbucket",
            Self::DockerHub => "dockerhub",
            Self::Generic => "generic",
        }
    }

    /// The name people know, for messages: `GitHub`, `Gitea/Forgejo`...
    pub fn label(self) -> &'static str {
        match self {
            Self::Github => "GitHub",
            Self::Gitlab => "GitLab",
            Self::Gitea => "Gitea/Forgejo",
            Self::Bitbucket => "Bitbucket",
            Self::DockerHub => "Docker Hub",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One understood webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Who sent it.
    pub provider: Provider,
    /// What happened.
    pub event: Event,
    /// The host's id for this delivery (`X-GitHub-Delivery`,
    /// `X-Gitlab-Event-UUID`, `X-Gitea-Delivery`, `X-Request-UUID`...), for
    /// logs and de-duplication of retries.
    pub delivery_id: Option<String>,
}

/// What a delivery reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Event {
    /// The host checks that the hook works: GitHub `ping`, Bitbucket
    /// `diagnostics:ping`, the "Test delivery" button of Gitea/Forgejo/Gogs
    /// (a push whose `before` equals `after`).
    Ping,
    /// A push to one ref.
    Push(Push),
    /// One delivery that pushed several refs at once (Bitbucket batches
    /// `git push origin main v1.2`); see [`decide_any`]. May be empty.
    Pushes(Vec<Push>),
    /// A new image in a registry: Docker Hub push, GHCR (GitHub `package` /
    /// `registry_package` event, action `published`). `tag` is `None` for an
    /// untagged version (e.g. one platform of a multi-arch image).
    ImagePush {
        /// The repository, e.g. `ghcr.io/acme/api` or `acme/api` (Docker Hub).
        image: String,
        /// The pushed tag, e.g. `latest`.
        tag: Option<String>,
    },
    /// A plain POST without provider headers: a CI script asking for a deploy.
    Manual,
    /// An event berth does not act on (issues, pull requests...), named.
    Other(String),
}

impl Event {
    /// A short name: `ping`, `push`, `image_push`, `manual`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Push(_) | Self::Pushes(_) => "push",
            Self::ImagePush { .. } => "image_push",
            Self::Manual => "manual",
            Self::Other(_) => "other",
        }
    }

    /// The pushes this event carries: one for [`Event::Push`], all of them
    /// for [`Event::Pushes`], none otherwise. Pair with [`decide_any`].
    pub fn pushes(&self) -> &[Push] {
        match self {
            Self::Push(push) => std::slice::from_ref(push),
            Self::Pushes(pushes) => pushes,
            _ => &[],
        }
    }
}

/// A push to one branch or tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Push {
    /// The ref that moved.
    pub git_ref: GitRef,
    /// The commit the ref now points to; `None` for a deletion.
    pub after: Option<String>,
    /// The ref was deleted.
    pub deleted: bool,
    /// The message of the newest pushed commit, when the host sends it.
    pub head_message: Option<String>,
    /// Files added, modified or removed by the pushed commits (deduplicated,
    /// sorted); `None` when unknown: the host sends no lists (Bitbucket), the
    /// list may be truncated (20 or more commits, `total_commits` larger
    /// than the list), the ref was just created, or no commits were listed.
    pub changed_files: Option<Vec<String>>,
    /// The repository, e.g. `acme/api` (GitLab: `group/sub/project`).
    pub repository: Option<String>,
    /// The repository's default branch, when the host says (GitHub, GitLab,
    /// Gitea): a [`Trigger`] without a branch deploys that one.
    pub default_branch: Option<String>,
}

/// A git ref, from `refs/heads/...` or `refs/tags/...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "lowercase")]
pub enum GitRef {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
    /// Any other ref, in full (`refs/notes/commits`, `refs/pull/1/head`).
    Other(String),
}

impl GitRef {
    /// Reads a full ref name.
    pub fn parse(full: &str) -> Self {
        if let Some(name) = full.strip_prefix("refs/heads/") {
            Self::Branch(name.to_string())
        } else if let Some(name) = full.strip_prefix("refs/tags/") {
            Self::Tag(name.to_string())
        } else {
            Self::Other(full.to_string())
        }
    }
}

impl fmt::Display for GitRef {
    /// `branch "main"`, `tag "v1.2.0"`, `ref "refs/notes/commits"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Branch(name) => write!(f, "branch \"{name}\""),
            Self::Tag(name) => write!(f, "tag \"{name}\""),
            Self::Other(name) => write!(f, "ref \"{name}\""),
        }
    }
}

/// Largest body read from a delivery with these headers, in bytes: what
/// each host sends at most, so a sender is never read past its own kind.
///
/// | sender | limit |
/// | --- | --- |
/// | GitHub | 25 MiB (GitHub's own cap on payloads) |
/// | GitLab | 25 MiB (it lists at most 20 commits, but file lists can be long) |
/// | Gitea, Forgejo, Gogs, Bitbucket | 10 MiB |
/// | no provider headers (Docker Hub, a CI script's POST) | 64 KiB |
pub fn body_limit(headers: &HeaderMap) -> usize {
    match Source::detect(headers) {
        Some(Source::Github | Source::Gitlab) => 25 << 20,
        Some(Source::Forgejo | Source::Gitea | Source::Gogs | Source::Bitbucket) => 10 << 20,
        None => 64 << 10,
    }
}

/// Why a delivery was refused. Messages name the fix and never carry the
/// secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The host's headers are there but its signature (or GitLab token) is
    /// not.
    #[error(
        "the {} delivery has no {header} header: set the webhook's secret at {} to the app's webhook secret",
        .provider.label(),
        .provider.label()
    )]
    MissingSignature {
        /// Who sent it.
        provider: Provider,
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature (or GitLab token) does not match the secret and body.
    #[error(
        "{header} does not match the app's webhook secret: check the secret set in the {} webhook (or the body was changed on the way)",
        .provider.label()
    )]
    BadSignature {
        /// Who sent it.
        provider: Provider,
        /// The header that did not match.
        header: &'static str,
    },
    /// The app has no webhook secret, so nothing signed can be verified.
    #[error(
        "the app has no webhook secret, so {} deliveries cannot be verified: set one and enter it in the webhook at {}",
        .0.label(),
        .0.label()
    )]
    NoSecret(Provider),
    /// Signed, but the payload is not what the host documents, e.g.
    /// `"GitHub push: ref is missing"`.
    #[error("{0}")]
    Malformed(String),
}

impl HookError {
    /// The HTTP status to answer with: 401 for signature problems, 400 for a
    /// malformed payload.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature { .. } | Self::BadSignature { .. } | Self::NoSecret(_) => 401,
            Self::Malformed(_) => 400,
        }
    }

    /// A stable machine-readable code: `missing_signature`, `bad_signature`,
    /// `no_webhook_secret`, `malformed_payload`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature { .. } => "missing_signature",
            Self::BadSignature { .. } => "bad_signature",
            Self::NoSecret(_) => "no_webhook_secret",
            Self::Malformed(_) => "malformed_payload",
        }
    }
}

/// Understands one delivery. `secret` is the app's webhook secret; `body`
/// the raw request body, exactly as received (the signature covers its
/// bytes). The URL token is the caller's to check.
pub fn parse(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<Delivery, HookError> {
    let Some(source) = Source::detect(headers) else {
        let (provider, event) = providers::unsigned(body);
        return Ok(Delivery {
            provider,
            event,
            delivery_id: None,
        });
    };
    let provider = source.provider();
    verify(source.auth(), provider, headers, body, secret)?;
    let name = header_text(headers, source.event_header()).ok_or_else(|| {
        HookError::Malformed(format!(
            "{}: the {} header is not text",
            provider.label(),
            source.event_header()
        ))
    })?;
    let event = match source {
        Source::Forgejo | Source::Gitea | Source::Gogs => providers::gitea(name, headers, body)?,
        Source::Github => providers::github(name, headers, body)?,
        Source::Gitlab => providers::gitlab(name, headers, body)?,
        Source::Bitbucket => providers::bitbucket(name, headers, body)?,
    };
    Ok(Delivery {
        provider,
        event,
        delivery_id: delivery_id(headers, source.delivery_headers()),
    })
}

/// A host recognised by its event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Forgejo,
    Gitea,
    Gogs,
    Github,
    Gitlab,
    Bitbucket,
}

/// How a host authenticates a delivery.
enum Auth {
    /// Hex HMAC-SHA256 of the body, optionally prefixed `sha256=`, in the
    /// first of these headers that is present (the first is the one named
    /// when none is).
    Hmac(&'static [&'static str]),
    /// A header equal to the secret.
    Token(&'static str),
}

impl Source {
    const ORDER: [Self; 6] = [
        Self::Forgejo,
        Self::Gitea,
        Self::Gogs,
        Self::Github,
        Self::Gitlab,
        Self::Bitbucket,
    ];

    fn detect(headers: &HeaderMap) -> Option<Self> {
        Self::ORDER
            .into_iter()
            .find(|source| headers.contains_key(source.event_header()))
    }

    fn provider(self) -> Provider {
        match self {
            Self::Forgejo | Self::Gitea | Self::Gogs => Provider::Gitea,
            Self::Github => Provider::Github,
            Self::Gitlab => Provider::Gitlab,
            Self::Bitbucket => Provider::Bitbucket,
        }
    }

    fn event_header(self) -> &'static str {
        match self {
            Self::Forgejo => "x-forgejo-event",
            Self::Gitea => "x-gitea-event",
            Self::Gogs => "x-gogs-event",
            Self::Github => "x-github-event",
            Self::Gitlab => "x-gitlab-event",
            Self::Bitbucket => "x-event-key",
        }
    }

    fn auth(self) -> Auth {
        match self {
            Self::Forgejo => Auth::Hmac(&[
                "x-forgejo-signature",
                "x-gitea-signature",
                "x-hub-signature-256",
            ]),
            Self::Gitea => Auth::Hmac(&["x-gitea-signature", "x-hub-signature-256"]),
            Self::Gogs => Auth::Hmac(&["x-gogs-signature"]),
            Self::Github => Auth::Hmac(&["x-hub-signature-256"]),
            Self::Gitlab => Auth::Token("x-gitlab-token"),
            Self::Bitbucket => Auth::Hmac(&["x-hub-signature"]),
        }
    }

    fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            Self::Forgejo => &["x-forgejo-delivery", "x-gitea-delivery"],
            Self::Gitea => &["x-gitea-delivery"],
            Self::Gogs => &["x-gogs-delivery"],
            Self::Github => &["x-github-delivery"],
            Self::Gitlab => &["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"],
            Self::Bitbucket => &["x-request-uuid", "x-request-id"],
        }
    }
}

/// Checks the delivery's signature or token against `secret`, in constant
/// time, before anything reads the body.
fn verify(
    auth: Auth,
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), HookError> {
    if secret.is_empty() {
        return Err(HookError::NoSecret(provider));
    }
    match auth {
        Auth::Hmac(names) => {
            let primary = names.first().copied().unwrap_or("x-hub-signature-256");
            let Some((header, value)) = names
                .iter()
                .find_map(|name| headers.get(*name).map(|value| (*name, value)))
            else {
                return Err(HookError::MissingSignature {
                    provider,
                    header: display_header(primary),
                });
            };
            let bad = HookError::BadSignature {
                provider,
                header: display_header(header),
            };
            let text = value.to_str().map_err(|_| bad.clone())?.trim();
            let digest = match text.split_once('=') {
                Some((algorithm, hex)) if algorithm.trim().eq_ignore_ascii_case("sha256") => hex,
                Some(_) => return Err(bad),
                None => text,
            };
            let tag = hex::decode(digest.trim()).map_err(|_| bad.clone())?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            hmac::verify(&key, body, &tag).map_err(|_| bad)
        }
        Auth::Token(name) => {
            let Some(value) = headers.get(name) else {
                return Err(HookError::MissingSignature {
                    provider,
                    header: display_header(name),
                });
            };
            // Digests first, so the comparison does not even leak the length.
            let sent = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
            let want = ring::digest::digest(&ring::digest::SHA256, secret);
            if bool::from(sent.as_ref().ct_eq(want.as_ref())) {
                Ok(())
            } else {
                Err(HookError::BadSignature {
                    provider,
                    header: display_header(name),
                })
            }
        }
    }
}

/// The header's name as the host's documentation spells it.
fn display_header(name: &'static str) -> &'static str {
    match name {
        "x-forgejo-signature" => "X-Forgejo-Signature",
        "x-gitea-signature" => "X-Gitea-Signature",
        "x-gogs-signature" => "X-Gogs-Signature",
        "x-hub-signature-256" => "X-Hub-Signature-256",
        "x-hub-signature" => "X-Hub-Signature",
        "x-gitlab-token" => "X-Gitlab-Token",
        other => other,
    }
}

/// A header's value as trimmed text, if present and visible ASCII.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

/// The first delivery id header present, bounded, for logs.
fn delivery_id(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| header_text(headers, name))
        .filter(|id| !id.is_empty())
        .map(|id| bounded(id, 128))
}

/// At most `max` characters of `text`.
fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
