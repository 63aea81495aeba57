//! Redirects of a domain: the `www` preset (`redirect_www`) and regex
//! redirects on path and query (`redirects`), with the checks that refuse
//! bad patterns, missing captures and loops that can be seen.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most regex redirects of one domain.
pub const MAX_REDIRECTS: usize = 50;
/// Largest compiled regex of a redirect (bytes of the automaton).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Where `redirect_www` sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RedirectWww {
    /// `www.example.com` → `example.com` (on a `www.` or wildcard host).
    ToApex,
    /// `example.com` → `www.example.com` (on a host without `www.`).
    ToWww,
}

/// A regex redirect as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RedirectInput {
    /// A regular expression matched against the path and query.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub from: String,
    /// The target: a path (`/new/$1`) or an absolute `http(s)://` URL;
    /// `$1`..`$9` are the captures of `from`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2048))]
    pub to: String,
    /// 301, 302, 307 or 308 (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A validated regex redirect (`from` compiles; `to`'s captures exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redirect {
    /// The regular expression on path and query.
    pub from: String,
    /// The target, with `$n` captures.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub status: u16,
}

pub(super) fn check_www(www: RedirectWww, host: &str) -> Result<(), FieldError> {
    let wildcard = host.starts_with("*.");
    let has_www = host.starts_with("www.");
    let problem = match www {
        RedirectWww::ToApex if !has_www && !wildcard => {
            "to_apex redirects a www. host; this host has no www. to remove (put it on the www. domain, or use to_www)"
        }
        RedirectWww::ToWww if has_www => {
            "to_www on a www. host would redirect to itself; put it on the apex domain, or use to_apex"
        }
        RedirectWww::ToWww if wildcard => {
            "to_www on a wildcard host is ambiguous; put it on the apex domain"
        }
        _ => return Ok(()),
    };
    Err(FieldError::new("redirect_www", problem))
}

/// Compiles a redirect's pattern as the edge will (size-limited).
pub fn compile_redirect(from: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(from)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl RedirectInput {
    pub(super) fn validate(self, host: &str) -> Result<Redirect, FieldError> {
        if self.from.is_empty() || self.from.len() > 1024 {
            return Err(FieldError::new(
                "from",
                "give a regular expression of 1-1024 characters",
            ));
        }
        let re = compile_redirect(&self.from).map_err(|e| {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            FieldError::new(
                "from",
                format!("is not a valid regular expression: {first}"),
            )
        })?;
        let to = self.to.trim().to_string();
        let absolute = to.starts_with("https://") || to.starts_with("http://");
        if to.is_empty()
            || to.len() > 2048
            || !(absolute || to.starts_with('/'))
            || to.starts_with("//")
        {
            return Err(FieldError::new(
                "to",
                "give a path starting with / (\"/new/$1\") or an absolute http(s):// URL",
            ));
        }
        if to.chars().any(|c| c.is_control() || c == ' ') {
            return Err(FieldError::new(
                "to",
                "has spaces or control characters; percent-encode them",
            ));
        }
        let groups = re.captures_len() - 1;
        for n in capture_refs(&to) {
            if n > groups {
                return Err(FieldError::new(
                    "to",
                    format!("uses ${n}, but from has {groups} capture group(s)"),
                ));
            }
        }
        let status = self.status.unwrap_or(308);
        if ![301, 302, 307, 308].contains(&status) {
            return Err(FieldError::new(
                "status",
                format!("is {status}; give 301, 302, 307 or 308"),
            ));
        }
        // A target on this host that the rule matches again is a loop.
        let on_host = if absolute {
            let rest = to.split_once("://").map_or("", |(_, r)| r);
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            authority.eq_ignore_ascii_case(host).then_some(path)
        } else {
            Some(to.as_str())
        };
        if let Some(path) = on_host {
            let sample: String = expand_sample(path);
            if re.is_match(&sample) {
                return Err(FieldError::new(
                    "to",
                    format!("{to:?} matches from again: the redirect would loop; narrow from (anchor it with ^ and $)"),
                ));
            }
        }
        Ok(Redirect {
            from: self.from,
            to,
            status,
        })
    }
}

/// The capture numbers `$1`..`$9` a target uses (`$$` is a dollar).
pub fn capture_refs(to: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = to.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 1 < bytes.len() {
            let (c, n) = (bytes[i], bytes[i + 1]);
            i += 1;
            if c == b'$' && n == b'$' {
                i += 1;
            } else if c == b'$' && n.is_ascii_digit() {
                i += 1;
                return Some(usize::from(n - b'0'));
            }
        }
        None
    })
}

/// A target with each `$n` replaced by a plain segment, to test for loops.
fn expand_sample(to: &str) -> String {
    let mut out = String::with_capacity(to.len());
    let mut chars = to.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            chars.next();
            out.push('x');
        } else {
            out.push(c);
        }
    }
    out
}
