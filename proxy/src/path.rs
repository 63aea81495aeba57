//! Request paths as routing and replicas see them: dot segments removed
//! (RFC 3986 §5.2.4), so `/api/../admin` is routed, prefix-stripped and
//! forwarded as `/admin`, never as a path that climbs out of a route's
//! prefix once the prefix is gone. Percent-encoded dots (`%2e`, `%2E`)
//! count as dots, as the app decoding the path would read them. A path
//! that would climb above the root stops at `/`.
//!
//! Empty segments (`//`) are kept as they are: they climb nowhere. The
//! query is never touched. A path without dot segments is returned as it
//! is, without allocation: the common case costs one scan.

use std::borrow::Cow;

/// What a path segment is, as far as dot-segment removal cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// `.` (or `%2e`): this directory.
    Current,
    /// `..` (or any mix of `.` and `%2e` two long): the parent.
    Parent,
    /// Anything else.
    Name,
}

/// Classifies one segment (the text between two slashes).
fn segment(seg: &[u8]) -> Segment {
    let mut dots = 0;
    let mut rest = seg;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            rest = &rest[3..];
        } else {
            return Segment::Name;
        }
        dots += 1;
        if dots > 2 {
            return Segment::Name;
        }
    }
    match dots {
        1 => Segment::Current,
        2 => Segment::Parent,
        _ => Segment::Name,
    }
}

/// Whether `path` has a dot segment: the fast check before any work.
fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    // No dot and no percent sign: no dot segment (the common case).
    if !bytes.iter().any(|b| *b == b'.' || *b == b'%') {
        return false;
    }
    bytes
        .split(|b| *b == b'/')
        .any(|s| segment(s) != Segment::Name)
}

/// `path` (no query) with its dot segments removed; borrowed when it has
/// none. A path that does not start with `/` (`*`, an empty one) is left
/// as it is.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !has_dot_segment(path) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut segments = path[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match segment(seg.as_bytes()) {
            Segment::Name => {
                out.push('/');
                out.push_str(seg);
            }
            Segment::Current => {}
            Segment::Parent => {
                // Drop the last segment; above the root there is nothing.
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
        }
        // `/a/.` and `/a/b/..` name a directory: they end in a slash.
        if last && segment(seg.as_bytes()) != Segment::Name {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// A path and query (`/a/../b?x=..`) with the path normalized and the
/// query kept as it is; borrowed when there was nothing to remove.
pub fn normalize_target(path_and_query: &str) -> Cow<'_, str> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    match normalize(path) {
        Cow::Borrowed(_) => Cow::Borrowed(path_and_query),
        Cow::Owned(mut path) => {
            path.push_str(query);
            Cow::Owned(path)
        }
    }
}

/// `uri` with its path normalized, when that changes it (h2 and HTTP/3
/// requests carry an [`http::Uri`]); `None` when it has no dot segment or
/// the result is not a valid URI.
pub fn normalize_uri(uri: &http::Uri) -> Option<http::Uri> {
    let pq = uri.path_and_query()?;
    let Cow::Owned(normalized) = normalize_target(pq.as_str()) else {
        return None;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(normalized.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dot_segments_are_removed_and_the_root_is_the_floor() {
        for (input, expected) in [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../x", "/x"),
            ("/../../x/y", "/x/y"),
            ("/api/%2e%2e/x", "/x"),
            ("/api/%2E%2e/x", "/x"),
            ("/api/.%2E/x", "/x"),
            ("/api/%2e/x", "/api/x"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/a/b/../../..", "/"),
            ("/a//../b", "/a/b"),
            ("//", "//"),
            ("/", "/"),
            ("/a/...", "/a/..."),
            ("/a/.b/c.", "/a/.b/c."),
            ("/a/%2ex", "/a/%2ex"),
            ("/a/%2", "/a/%2"),
            ("/file.tar.gz", "/file.tar.gz"),
            (
                "/.well-known/acme-challenge/t",
                "/.well-known/acme-challenge/t",
            ),
            ("*", "*"),
            ("", ""),
        ] {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn the_query_is_kept_as_it_is() {
        assert_eq!(normalize_target("/a/../b?x=../y"), "/b?x=../y");
        assert_eq!(normalize_target("/a/b?x=/../y"), "/a/b?x=/../y");
        assert!(matches!(normalize_target("/a/b?x=.."), Cow::Borrowed(_)));
        assert_eq!(normalize_target("/api/%2e%2e/x?q"), "/x?q");
    }

    #[test]
    fn paths_without_dot_segments_are_not_copied() {
        for path in ["/", "/api/users", "/static/app.min.js", "/a%20b", "//x"] {
            assert!(matches!(normalize(path), Cow::Borrowed(_)), "{path}");
        }
    }

    #[test]
    fn uris_keep_their_authority() {
        let uri: http::Uri = "https://a.test/api/../x?y=1".parse().unwrap();
        let fixed = normalize_uri(&uri).unwrap();
        assert_eq!(fixed.to_string(), "https://a.test/x?y=1");
        let plain: http::Uri = "https://a.test/api/x".parse().unwrap();
        assert!(normalize_uri(&plain).is_none());
        let origin: http::Uri = "/a/./b".parse().unwrap();
        assert_eq!(normalize_uri(&origin).unwrap().to_string(), "/a/b");
    }

    proptest! {
        #[test]
        fn normalized_paths_have_no_dot_segment_and_start_at_the_root(
            segments in proptest::collection::vec(
                prop_oneof![
                    Just(".".to_string()),
                    Just("..".to_string()),
                    Just("%2e".to_string()),
                    Just("%2E%2e".to_string()),
                    Just(".%2e".to_string()),
                    Just(String::new()),
                    "[a-z.%2eE]{0,4}",
                ],
                0..12,
            ),
        ) {
            let path = format!("/{}", segments.join("/"));
            let out = normalize(&path);
            prop_assert!(out.starts_with('/'), "{path} -> {out}");
            for seg in out.split('/') {
                prop_assert_eq!(segment(seg.as_bytes()), Segment::Name, "{} -> {}", path, out);
            }
            // Normalizing is idempotent.
            prop_assert_eq!(normalize(&out), out.clone());
        }
    }
}
