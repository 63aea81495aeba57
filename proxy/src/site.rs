//! Static sites served by the edge itself, with no container behind them:
//! a folder read whole into memory at deploy time, each file with its
//! content type, strong ETag, cache policy and (for text-like files) a
//! gzip copy computed once, so that a request is a map lookup and a few
//! header inserts.
//!
//! Range requests are not supported: every response carries
//! `Accept-Ranges: none` and a `Range` header is ignored (the whole file
//! is sent with 200), which RFC 9110 allows.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use request::{accepts_gzip, accepts_html, none_match, Target};

mod request;

/// Default of [`SiteOptions::max_bytes`]: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Files at most this long (bytes) are never gzipped: the gzip header and
/// a round trip of `Vary` cost more than they save.
const GZIP_MIN_BYTES: usize = 256;

/// How a site is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteOptions {
    /// Single-page app: paths that match no file (and look like routes,
    /// not assets) get `/index.html` with 200. Default false.
    pub spa: bool,
    /// Largest total size of the site's files, in bytes (before
    /// compression). Default [`DEFAULT_MAX_BYTES`] (256 MiB).
    pub max_bytes: u64,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            spa: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a site could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The site's root is not a directory.
    #[error("{}: not a directory; point the site at the folder that holds its index.html", .dir.display())]
    NotADirectory {
        /// The root given.
        dir: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}; check that it exists and that berth may read it", .path.display())]
    Read {
        /// What was being read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A symlink points outside the site's root.
    #[error("{}: a symlink to {}, outside the site; copy the file into the site instead of linking to it", .link.display(), .target.display())]
    SymlinkOutside {
        /// The link inside the site.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A file name is not UTF-8, so no URL can name it.
    #[error("{}: the file name is not UTF-8; rename it", .path.display())]
    NonUtf8Name {
        /// The file.
        path: PathBuf,
    },
    /// The files add up to more than [`SiteOptions::max_bytes`].
    #[error("{}: the site is larger than its limit of {max_bytes} bytes (reached at {}); remove files it does not serve or raise the size limit", .dir.display(), .at.display())]
    TooLarge {
        /// The site's root.
        dir: PathBuf,
        /// The limit, in bytes.
        max_bytes: u64,
        /// The file that went over the limit.
        at: PathBuf,
    },
}

/// One file, ready to send.
struct File {
    body: Bytes,
    /// Gzip copy, when the type compresses and the copy is smaller.
    gzip: Option<Bytes>,
    content_type: &'static str,
    /// Whether the type is one berth compresses (then `Vary` is sent).
    compressible: bool,
    etag: HeaderValue,
    cache_control: &'static str,
}

/// A static site held in memory, immutable once loaded (share it with
/// `Arc`; a new deploy loads a new one).
pub struct Site {
    /// By path relative to the root, `/`-separated, no leading slash.
    files: HashMap<Box<str>, File>,
    bytes: u64,
    spa: bool,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("files", &self.files.len())
            .field("bytes", &self.bytes)
            .field("spa", &self.spa)
            .finish()
    }
}

/// A response of a site.
#[derive(Debug, Clone)]
pub struct SiteResponse {
    /// The status.
    pub status: StatusCode,
    /// All headers, `Content-Length` included (except on 304).
    pub headers: HeaderMap,
    /// The body; empty for HEAD and 304.
    pub body: Bytes,
}

impl Site {
    /// Reads every regular file under `dir`, recursively, into memory.
    ///
    /// Symlinks are followed when they resolve inside `dir`, a linked
    /// directory served under the link's name too (a link back to a
    /// directory it sits in is a loop and is skipped); a symlink that
    /// resolves outside `dir` is an error ([`SiteError::SymlinkOutside`]),
    /// not skipped, so a site never silently lacks a file it links to,
    /// and so is a dangling one ([`SiteError::Read`]). Other special files
    /// (sockets, FIFOs, devices) are skipped. Every file is served,
    /// hidden ones included.
    ///
    /// This blocks on the file system and compresses: call it from a
    /// blocking thread (`tokio::task::spawn_blocking`).
    pub fn load(dir: &Path, options: SiteOptions) -> Result<Site, SiteError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SiteError::Read { path, source }
        };
        let meta = std::fs::metadata(dir).map_err(read_err(dir))?;
        if !meta.is_dir() {
            return Err(SiteError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        let root = std::fs::canonicalize(dir).map_err(read_err(dir))?;
        let mut loader = Loader {
            dir,
            root: &root,
            max_bytes: options.max_bytes,
            bytes: 0,
            files: HashMap::new(),
            ancestors: vec![root.clone()],
        };
        loader.walk(&root, "")?;
        Ok(Site {
            bytes: loader.bytes,
            files: loader.files,
            spa: options.spa,
        })
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Total size of the files as read, in bytes (gzip copies not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The answer to `method` on `path` (the request path; a query, if
    /// still attached, is ignored), negotiated by the request `headers`:
    /// only GET and HEAD (else 405); the path percent-decoded, and refused
    /// with 400 when not UTF-8 or holding NUL, a backslash or a `..`
    /// segment; `/x` is the file `x`, else `x.html`, else `x/index.html`,
    /// and `/x/` is `x/index.html`. Unmatched paths get `/index.html` for
    /// a SPA when they look like routes (last segment without extension,
    /// or the client accepts `text/html`), else the site's `404.html` with
    /// 404, else a short plain 404.
    pub fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> SiteResponse {
        let head = *method == Method::HEAD;
        if !head && *method != Method::GET {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, false);
            resp.headers
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(target) = Target::parse(path) else {
            return plain(StatusCode::BAD_REQUEST, head);
        };
        if let Some(file) = self.find(&target) {
            return representation(file, StatusCode::OK, head, headers);
        }
        if self.spa && (!target.has_extension() || accepts_html(headers)) {
            if let Some(index) = self.files.get("index.html") {
                return representation(index, StatusCode::OK, head, headers);
            }
        }
        match self.files.get("404.html") {
            Some(page) => representation(page, StatusCode::NOT_FOUND, head, headers),
            None => plain(StatusCode::NOT_FOUND, head),
        }
    }

    /// The file a request path names, if any.
    fn find(&self, target: &Target) -> Option<&File> {
        let rel = target.rel.as_str();
        if rel.is_empty() {
            return self.files.get("index.html");
        }
        let index = format!("{rel}/index.html");
        if target.dir {
            return self.files.get(index.as_str());
        }
        self.files
            .get(rel)
            .or_else(|| self.files.get(format!("{rel}.html").as_str()))
            .or_else(|| self.files.get(index.as_str()))
    }
}

/// State of one [`Site::load`].
struct Loader<'a> {
    /// The root as given, for messages.
    dir: &'a Path,
    /// The root, canonical: symlinks must resolve under it.
    root: &'a Path,
    max_bytes: u64,
    bytes: u64,
    files: HashMap<Box<str>, File>,
    /// Canonical directories being read, root first: a symlink back to
    /// one of them is a loop and is not followed.
    ancestors: Vec<PathBuf>,
}

impl Loader<'_> {
    /// Reads directory `path`, whose files are keyed under `prefix`
    /// (empty or ending in `/`).
    fn walk(&mut self, path: &Path, prefix: &str) -> Result<(), SiteError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SiteError::Read { path, source }
        };
        let entries = std::fs::read_dir(path).map_err(read_err(path))?;
        for entry in entries {
            let entry = entry.map_err(read_err(path))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(SiteError::NonUtf8Name { path });
            };
            let kind = entry.file_type().map_err(read_err(&path))?;
            let key = format!("{prefix}{name}");
            // Where the bytes are: the entry itself, or a symlink's target.
            let (real, is_dir) = if kind.is_symlink() {
                let target = std::fs::canonicalize(&path).map_err(read_err(&path))?;
                if !target.starts_with(self.root) {
                    return Err(SiteError::SymlinkOutside { link: path, target });
                }
                let meta = std::fs::metadata(&target).map_err(read_err(&path))?;
                if !meta.is_dir() && !meta.is_file() {
                    continue;
                }
                (target, meta.is_dir())
            } else if kind.is_dir() {
                (path, true)
            } else if kind.is_file() {
                (path, false)
            } else {
                continue;
            };
            if is_dir {
                let canonical = std::fs::canonicalize(&real).map_err(read_err(&real))?;
                if !self.ancestors.contains(&canonical) {
                    self.ancestors.push(canonical);
                    let walked = self.walk(&real, &format!("{key}/"));
                    self.ancestors.pop();
                    walked?;
                }
            } else {
                self.read_file(&real, key)?;
            }
        }
        Ok(())
    }

    fn read_file(&mut self, path: &Path, key: String) -> Result<(), SiteError> {
        let too_large = || SiteError::TooLarge {
            dir: self.dir.to_path_buf(),
            max_bytes: self.max_bytes,
            at: path.to_path_buf(),
        };
        let read_err = |source| SiteError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Check before reading so an oversized file is never held whole.
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if self.bytes.saturating_add(len) > self.max_bytes {
            return Err(too_large());
        }
        let body = std::fs::read(path).map_err(read_err)?;
        self.bytes = self.bytes.saturating_add(body.len() as u64);
        if self.bytes > self.max_bytes {
            return Err(too_large());
        }
        let file = prepare(&key, Bytes::from(body));
        self.files.insert(key.into_boxed_str(), file);
        Ok(())
    }
}

/// Precomputes everything a response of the file at `key` needs.
fn prepare(key: &str, body: Bytes) -> File {
    let name = key.rsplit('/').next().unwrap_or(key);
    let (content_type, compressible) = content_type(name);
    let gzip = (compressible && body.len() > GZIP_MIN_BYTES)
        .then(|| gzip(&body))
        .flatten();
    let cache_control = if content_type.starts_with("text/html") {
        "no-cache"
    } else if is_fingerprinted(name) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    File {
        etag: etag(&body),
        body,
        gzip,
        content_type,
        compressible,
        cache_control,
    }
}

/// The content type of a file by its extension (ASCII case ignored), and
/// whether berth gzips that type.
fn content_type(name: &str) -> (&'static str, bool) {
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => ("text/html; charset=utf-8", true),
        Some("css") => ("text/css; charset=utf-8", true),
        Some("js" | "mjs") => ("text/javascript; charset=utf-8", true),
        Some("json") => ("application/json; charset=utf-8", true),
        Some("map") => ("application/json", true),
        Some("svg") => ("image/svg+xml; charset=utf-8", true),
        Some("txt") => ("text/plain; charset=utf-8", true),
        Some("xml") => ("application/xml; charset=utf-8", true),
        Some("csv") => ("text/csv; charset=utf-8", true),
        Some("md") => ("text/markdown; charset=utf-8", true),
        Some("wasm") => ("application/wasm", true),
        Some("png") => ("image/png", false),
        Some("jpg" | "jpeg") => ("image/jpeg", false),
        Some("gif") => ("image/gif", false),
        Some("webp") => ("image/webp", false),
        Some("avif") => ("image/avif", false),
        Some("ico") => ("image/x-icon", false),
        Some("woff") => ("font/woff", false),
        Some("woff2") => ("font/woff2", false),
        Some("ttf") => ("font/ttf", false),
        Some("otf") => ("font/otf", false),
        Some("pdf") => ("application/pdf", false),
        Some("mp4") => ("video/mp4", false),
        Some("webm") => ("video/webm", false),
        Some("mp3") => ("audio/mpeg", false),
        _ => ("application/octet-stream", false),
    }
}

/// A strong ETag: the quoted hex of the first 16 bytes of the content's
/// SHA-256.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in digest.as_ref().iter().take(16) {
        let _ = write!(tag, "{byte:02x}");
    }
    tag.push('"');
    HeaderValue::from_str(&tag).expect("quotes and hex digits make a valid header value")
}

/// The gzip copy of `body`, when it is smaller.
fn gzip(body: &[u8]) -> Option<Bytes> {
    let out = Vec::with_capacity(body.len() / 2);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let out = encoder.finish().ok()?;
    (out.len() < body.len()).then(|| Bytes::from(out))
}

/// Whether a file name carries a content hash, so the file at that name
/// never changes and may be cached for good. Two shapes count, both
/// before the extension:
///
/// - a `.`-separated segment of at least 8 hex digits with at least one
///   digit and one letter (`app.3f2a9c1b.js`, webpack's `[contenthash]`);
/// - the last `-`- or `.`-separated part, of at least 8 characters of
///   `[A-Za-z0-9_-]` with a digit somewhere before a letter
///   (`index-BQx8f2aZ.js` of Vite, esbuild's `chunk-HQW2AB3C.js`); if it
///   holds a `-` or `_` it must be exactly 8 long (Vite's length).
///
/// The digit-before-letter rule keeps names such as `vendors1.js` or
/// `Report2024.pdf` out: a false positive would pin a changing file in
/// browsers for a year, a false negative only costs a revalidation.
fn is_fingerprinted(name: &str) -> bool {
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    let hex = stem.split('.').any(|segment| {
        segment.len() >= 8
            && segment.bytes().all(|b| b.is_ascii_hexdigit())
            && segment.bytes().any(|b| b.is_ascii_digit())
            && segment.bytes().any(|b| b.is_ascii_alphabetic())
    });
    if hex {
        return true;
    }
    // The shortest part after a separator that is long enough.
    let Some(hash) = stem
        .match_indices(['-', '.'])
        .rev()
        .map(|(i, _)| &stem[i + 1..])
        .find(|rest| rest.len() >= 8)
    else {
        return false;
    };
    let charset = hash
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let separators = hash.bytes().any(|b| b == b'-' || b == b'_');
    let digit_then_letter = hash
        .bytes()
        .position(|b| b.is_ascii_digit())
        .is_some_and(|i| hash.as_bytes()[i..].iter().any(u8::is_ascii_alphabetic));
    charset && digit_then_letter && (!separators || hash.len() == 8)
}

/// The response with `file` as its body, or 304 when the client has it.
fn representation(file: &File, status: StatusCode, head: bool, req: &HeaderMap) -> SiteResponse {
    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(file.cache_control),
    );
    if file.compressible {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if status == StatusCode::OK {
        headers.insert(header::ETAG, file.etag.clone());
        if none_match(req, &file.etag) {
            return SiteResponse {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: Bytes::new(),
            };
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    let body = match &file.gzip {
        Some(gzip) if accepts_gzip(req) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip.clone()
        }
        _ => file.body.clone(),
    };
    finish(status, headers, body, head)
}

/// A short plain-text answer of the edge's own.
fn plain(status: StatusCode, head: bool) -> SiteResponse {
    let text = match status {
        StatusCode::BAD_REQUEST => "400 Bad Request\n",
        StatusCode::METHOD_NOT_ALLOWED => "405 Method Not Allowed\n",
        _ => "404 Not Found\n",
    };
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    finish(status, headers, Bytes::from_static(text.as_bytes()), head)
}

/// Adds the headers every full response has, and drops the body for HEAD.
fn finish(status: StatusCode, mut headers: HeaderMap, body: Bytes, head: bool) -> SiteResponse {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    SiteResponse {
        status,
        headers,
        body: if head { Bytes::new() } else { body },
    }
}

#[cfg(test)]
mod tests;
