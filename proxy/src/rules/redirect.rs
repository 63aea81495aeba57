//! Redirects a route's rules ask for: the `www` preset and regex rules
//! on the path and query, with `$n` captures in the target.

use berth_config::{Redirect, RedirectWww};
use regex::Regex;

/// A compiled regex redirect.
#[derive(Debug)]
pub(crate) struct Rule {
    from: Regex,
    to: String,
    status: u16,
}

impl Rule {
    /// `None` when the pattern does not compile (validation compiled it).
    pub(crate) fn new(r: &Redirect) -> Option<Self> {
        Some(Rule {
            from: berth_config::compile_redirect(&r.from).ok()?,
            to: r.to.clone(),
            status: r.status,
        })
    }
}

/// Where the `www` preset sends a request for `host` (normalized) with
/// `port` (the `Host` header's, if any), or `None` when it stays.
pub(crate) fn www(
    preset: RedirectWww,
    tls: bool,
    host: &str,
    port: Option<&str>,
    path_and_query: &str,
) -> Option<String> {
    let target = match preset {
        RedirectWww::ToApex => host.strip_prefix("www.")?.to_string(),
        RedirectWww::ToWww if host.starts_with("www.") => return None,
        RedirectWww::ToWww => format!("www.{host}"),
    };
    let scheme = if tls { "https" } else { "http" };
    Some(match port {
        Some(port) => format!("{scheme}://{target}:{port}{path_and_query}"),
        None => format!("{scheme}://{target}{path_and_query}"),
    })
}

/// The first rule matching `path_and_query`: its status and target.
pub(crate) fn first(rules: &[Rule], path_and_query: &str) -> Option<(u16, String)> {
    rules.iter().find_map(|rule| {
        let caps = rule.from.captures(path_and_query)?;
        let mut to = String::with_capacity(rule.to.len() + 16);
        caps.expand(&dollar_digits(&rule.to), &mut to);
        Some((rule.status, to))
    })
}

/// `$1` as `${1}`, so `$1x` is capture 1 then `x` (regex's own expansion
/// would read the name `1x`).
fn dollar_digits(to: &str) -> String {
    let mut out = String::with_capacity(to.len() + 8);
    let mut chars = to.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('$', Some('$')) => {
                chars.next();
                out.push_str("$$");
            }
            ('$', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                out.push(*d);
                out.push('}');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn www_presets_keep_scheme_port_path_and_query() {
        let to = www(RedirectWww::ToApex, true, "www.a.com", None, "/x?y=1");
        assert_eq!(to.as_deref(), Some("https://a.com/x?y=1"));
        let to = www(RedirectWww::ToWww, false, "a.com", Some("8080"), "/");
        assert_eq!(to.as_deref(), Some("http://www.a.com:8080/"));
        assert_eq!(www(RedirectWww::ToWww, true, "www.a.com", None, "/"), None);
        assert_eq!(www(RedirectWww::ToApex, true, "a.com", None, "/"), None);
    }

    #[test]
    fn the_first_matching_rule_expands_its_captures() {
        let rule = |from: &str, to: &str| {
            Rule::new(&Redirect {
                from: from.into(),
                to: to.into(),
                status: 301,
            })
            .unwrap()
        };
        let rules = [
            rule("^/blog/(\\d+)$", "/posts/$1x"),
            rule("^/old(/.*)?$", "https://new.example.com$1"),
        ];
        assert_eq!(first(&rules, "/blog/12"), Some((301, "/posts/12x".into())));
        assert_eq!(
            first(&rules, "/old/a?b=c"),
            Some((301, "https://new.example.com/a?b=c".into()))
        );
        assert_eq!(
            first(&rules, "/old"),
            Some((301, "https://new.example.com".into()))
        );
        assert_eq!(first(&rules, "/other"), None);
    }
}
