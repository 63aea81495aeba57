//! The app page's route rules: for each domain, the rules that are on
//! (listed beside it) and a form with every rule, filled with what is set
//! (never a password), sent as `PATCH /api/v1/apps/{name}/domains/{host}`
//! like any other change of a domain; and the app's maintenance mode and
//! error pages, sent as `PATCH /api/v1/apps/{name}`. The form's field
//! names are the API's, so its field errors land beside their fields.

use berth_config::{encoding_name, Domain, Encoding, RedirectWww, RouteRules};

/// A regex redirect row of the form.
pub struct RedirectRow {
    /// The pattern.
    pub from: String,
    /// The target.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub status: u16,
}

/// A response coding and whether it is on.
pub struct Coding {
    /// `zstd`, `br` or `gzip`.
    pub name: &'static str,
    /// Whether the domain's responses may be compressed with it.
    pub on: bool,
}

/// The rules of one domain, as the form shows them.
pub struct RulesForm {
    /// The domain's own endpoint (the form's `PATCH`, the remove
    /// button's `DELETE`), with its `path_prefix` unless `/`.
    pub api: String,
    /// The rules that are on, in words (`basic auth (2 users)`).
    pub on: Vec<String>,
    /// Basic auth's realm (empty: none set).
    pub realm: String,
    /// Basic-auth user names; their passwords are kept unless retyped.
    pub users: Vec<String>,
    /// `to_apex`, `to_www` or empty.
    pub www: &'static str,
    /// Regex redirects, then one empty row to add one.
    pub redirects: Vec<RedirectRow>,
    /// `Name: value` lines.
    pub request_set: String,
    /// One name a line.
    pub request_remove: String,
    /// `Name: value` lines.
    pub response_set: String,
    /// One name a line.
    pub response_remove: String,
    /// Whether security headers are on.
    pub security_headers: bool,
    /// CORS origins, one a line (empty: CORS off).
    pub cors_origins: String,
    /// Comma-separated.
    pub cors_methods: String,
    /// Comma-separated.
    pub cors_headers: String,
    /// Comma-separated.
    pub cors_expose: String,
    /// Whether credentials are allowed.
    pub cors_credentials: bool,
    /// Seconds, or empty.
    pub cors_max_age: String,
    /// Networks, one a line.
    pub ip_allow: String,
    /// Networks, one a line.
    pub ip_deny: String,
    /// Requests per second, or empty.
    pub per_second: String,
    /// Burst, or empty.
    pub burst: String,
    /// Which codings are on, in the order zstd, br, gzip.
    pub codings: Vec<Coding>,
    /// Bytes, or empty.
    pub max_body: String,
    /// Seconds, or empty.
    pub response_header_secs: String,
    /// Seconds, or empty.
    pub idle_secs: String,
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl RulesForm {
    /// The form of `domain` of the app `app`.
    pub fn of(app: &str, domain: &Domain) -> Self {
        let r = &domain.rules;
        let mut api = format!("/api/v1/apps/{app}/domains/{}", domain.host);
        if domain.path_prefix != "/" {
            api.push_str("?path_prefix=");
            api.push_str(&query_escape(&domain.path_prefix));
        }
        let auth = r.basic_auth.as_ref();
        let cors = r.cors.as_ref();
        let mut redirects: Vec<RedirectRow> = r
            .redirects
            .iter()
            .map(|x| RedirectRow {
                from: x.from.clone(),
                to: x.to.clone(),
                status: x.status,
            })
            .collect();
        redirects.push(RedirectRow {
            from: String::new(),
            to: String::new(),
            status: 308,
        });
        let set = |m: &std::collections::BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect::<String>()
        };
        let lines = |l: &[String]| l.join("\n");
        let cidrs = |l: &[berth_config::Cidr]| {
            l.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        Self {
            api,
            on: summary(r),
            realm: auth.map(|a| a.realm.clone()).unwrap_or_default(),
            users: auth
                .map(|a| a.users.iter().map(|u| u.username.clone()).collect())
                .unwrap_or_default(),
            www: match r.redirect_www {
                Some(RedirectWww::ToApex) => "to_apex",
                Some(RedirectWww::ToWww) => "to_www",
                None => "",
            },
            redirects,
            request_set: set(&r.headers.request.set),
            request_remove: lines(&r.headers.request.remove),
            response_set: set(&r.headers.response.set),
            response_remove: lines(&r.headers.response.remove),
            security_headers: r.security_headers,
            cors_origins: cors.map(|c| lines(&c.origins)).unwrap_or_default(),
            cors_methods: cors.map(|c| c.methods.join(", ")).unwrap_or_default(),
            cors_headers: cors.map(|c| c.headers.join(", ")).unwrap_or_default(),
            cors_expose: cors
                .map(|c| c.expose_headers.join(", "))
                .unwrap_or_default(),
            cors_credentials: cors.is_some_and(|c| c.credentials),
            cors_max_age: opt(cors.map(|c| c.max_age_secs)),
            ip_allow: cidrs(&r.ip_allow),
            ip_deny: cidrs(&r.ip_deny),
            per_second: opt(r.rate_limit.map(|l| l.per_second)),
            burst: opt(r.rate_limit.map(|l| l.burst)),
            codings: [Encoding::Zstd, Encoding::Br, Encoding::Gzip]
                .into_iter()
                .map(|e| Coding {
                    name: encoding_name(e),
                    on: r.compression.contains(&e),
                })
                .collect(),
            max_body: opt(r.max_body_bytes),
            response_header_secs: opt(r.timeouts.response_header_secs),
            idle_secs: opt(r.timeouts.idle_secs),
        }
    }
}

/// The rules that are on, in words, in the order the edge applies them.
fn summary(r: &RouteRules) -> Vec<String> {
    let mut on = Vec::new();
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if !r.ip_allow.is_empty() {
        on.push(format!(
            "allow {}",
            count(r.ip_allow.len(), "network", "networks")
        ));
    }
    if !r.ip_deny.is_empty() {
        on.push(format!(
            "deny {}",
            count(r.ip_deny.len(), "network", "networks")
        ));
    }
    if let Some(l) = r.rate_limit {
        on.push(format!("rate limit {}/s, burst {}", l.per_second, l.burst));
    }
    match r.redirect_www {
        Some(RedirectWww::ToApex) => on.push("www → apex".into()),
        Some(RedirectWww::ToWww) => on.push("apex → www".into()),
        None => {}
    }
    if !r.redirects.is_empty() {
        on.push(count(r.redirects.len(), "redirect", "redirects"));
    }
    if let Some(c) = &r.cors {
        on.push(format!("CORS ({})", c.origins.join(", ")));
    }
    if let Some(a) = &r.basic_auth {
        on.push(format!(
            "basic auth ({})",
            count(a.users.len(), "user", "users")
        ));
    }
    if let Some(n) = r.max_body_bytes {
        on.push(format!("body ≤ {n} bytes"));
    }
    if !r.headers.is_empty() {
        on.push("header edits".into());
    }
    if r.security_headers {
        on.push("security headers".into());
    }
    if !r.compression.is_empty() {
        let names: Vec<_> = r.compression.iter().map(|e| encoding_name(*e)).collect();
        on.push(format!("compression ({})", names.join(", ")));
    }
    if r.timeouts.response_header_secs.is_some() || r.timeouts.idle_secs.is_some() {
        on.push("timeouts".into());
    }
    on
}

/// `s` with every byte but unreserved ones and `/` percent-encoded.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The app's error pages as the form shows them: each status the edge
/// answers itself, with its page (empty: berth's own).
pub fn error_pages(pages: &std::collections::BTreeMap<u16, String>) -> Vec<(u16, String)> {
    berth_config::ERROR_PAGE_STATUSES
        .iter()
        .map(|s| (*s, pages.get(s).cloned().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_shows_what_is_set_and_never_a_hash() {
        let input: berth_config::AppInput = serde_json::from_value(serde_json::json!({
            "name": "web", "image": "nginx", "port": 80,
            "domains": [{"host": "a.test", "path_prefix": "/api&v",
                "basic_auth": {"users": [{"username": "ann", "password": "pw"}]},
                "security_headers": true, "compression": ["gzip"],
                "ip_allow": ["10.0.0.0/8", "::1"], "rate_limit": {"per_second": 5, "burst": 9},
                "headers": {"response": {"set": {"X-A": "b"}}}}]
        }))
        .unwrap();
        let spec = input.validate().unwrap();
        let form = RulesForm::of("web", &spec.domains[0]);
        assert_eq!(
            form.api,
            "/api/v1/apps/web/domains/a.test?path_prefix=/api%26v"
        );
        assert_eq!(form.users, ["ann"]);
        assert_eq!(form.realm, "berth");
        assert_eq!(form.ip_allow, "10.0.0.0/8\n::1/128");
        assert_eq!(form.response_set, "x-a: b\n");
        let on: Vec<_> = form.codings.iter().map(|c| (c.name, c.on)).collect();
        assert_eq!(on, [("zstd", false), ("br", false), ("gzip", true)]);
        assert_eq!(form.redirects.len(), 1, "one empty row to add one");
        assert_eq!(
            form.on,
            [
                "allow 2 networks",
                "rate limit 5/s, burst 9",
                "basic auth (1 user)",
                "header edits",
                "security headers",
                "compression (gzip)"
            ]
        );
    }
}
