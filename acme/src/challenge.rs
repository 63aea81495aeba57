//! HTTP-01 answers: token → key authorization, read without locks by the
//! edge on the HTTP address (`/.well-known/acme-challenge/<token>`) while
//! an order is being validated.

use std::collections::HashMap;

use arc_swap::ArcSwap;

/// Path prefix of HTTP-01 validation requests.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 challenges.
#[derive(Default, Debug)]
pub struct Http01Tokens {
    tokens: ArcSwap<HashMap<String, String>>,
}

impl Http01Tokens {
    /// Answers `token` with `key_authorization` until [`Self::remove`].
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(token.to_string(), key_authorization.to_string());
            m
        });
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.tokens.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(token);
            m
        });
    }

    /// The answer for a request path, if it is a pending challenge.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.tokens.load().get(token).cloned()
    }

    /// Whether `path` is an HTTP-01 validation path (pending or not).
    pub fn is_challenge_path(path: &str) -> bool {
        path.starts_with(HTTP01_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pending_tokens_only() {
        let t = Http01Tokens::default();
        t.insert("abc", "abc.thumb");
        assert_eq!(
            t.answer("/.well-known/acme-challenge/abc").as_deref(),
            Some("abc.thumb")
        );
        assert_eq!(t.answer("/.well-known/acme-challenge/abd"), None);
        assert_eq!(t.answer("/abc"), None);
        t.remove("abc");
        assert_eq!(t.answer("/.well-known/acme-challenge/abc"), None);
    }
}
