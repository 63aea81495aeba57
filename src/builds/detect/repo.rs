//! Read-only access to the repository being detected (capped reads that
//! stay inside its directory), a line-based reader for the few TOML keys
//! the detectors need, and version-constraint helpers.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{DetectError, MAX_FILE_BYTES};

/// The most entries looked at in one directory listing.
const MAX_DIR_ENTRIES: usize = 2000;

/// A repository directory; every path given to it is relative to its root.
pub(super) struct Repo {
    root: PathBuf,
}

/// One entry of a directory listing.
pub(super) struct Entry {
    pub name: String,
    pub is_dir: bool,
}

impl Repo {
    /// Opens `dir`, which must be a readable directory.
    pub fn open(dir: &Path) -> Result<Self, DetectError> {
        let unreadable = |source| DetectError::Unreadable {
            path: dir.to_path_buf(),
            source,
        };
        let root = fs::canonicalize(dir).map_err(unreadable)?;
        if !root.is_dir() {
            return Err(unreadable(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(Repo { root })
    }

    /// The real path of `rel` when it exists and stays inside the root
    /// after following symlinks.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let real = fs::canonicalize(self.root.join(rel)).ok()?;
        real.starts_with(&self.root).then_some(real)
    }

    /// Whether `rel` is a regular file inside the repository.
    pub fn is_file(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_file())
    }

    /// Whether `rel` is a directory inside the repository.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_dir())
    }

    /// The first of `names` that is a file.
    pub fn first_file<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|n| self.is_file(n))
    }

    /// The text of `rel` (lossy UTF-8), `None` when it is not a file inside
    /// the repository; an error when it cannot be read or is larger than
    /// [`MAX_FILE_BYTES`].
    pub fn read(&self, rel: &str) -> Result<Option<String>, DetectError> {
        let Some(path) = self.resolve(rel).filter(|p| p.is_file()) else {
            return Ok(None);
        };
        let unreadable = |source| DetectError::Unreadable {
            path: PathBuf::from(rel),
            source,
        };
        let file = fs::File::open(&path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(DetectError::TooLarge {
                path: PathBuf::from(rel),
                limit: MAX_FILE_BYTES,
            });
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Like [`Repo::read`] for files that are only hints (source files
    /// scanned for a main package or an app object): any error is `None`.
    pub fn read_hint(&self, rel: &str) -> Option<String> {
        self.read(rel).ok().flatten()
    }

    /// The entries of directory `rel` ("" for the root) that stay inside
    /// the repository, sorted by name; empty when it is not a directory.
    pub fn list(&self, rel: &str) -> Vec<Entry> {
        let Some(dir) = self.resolve(if rel.is_empty() { "." } else { rel }) else {
            return Vec::new();
        };
        let Ok(read) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut entries: Vec<Entry> = read
            .take(MAX_DIR_ENTRIES)
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| {
                let path = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let real = self.resolve(&path)?;
                Some(Entry {
                    is_dir: real.is_dir(),
                    name,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// `names` that are files or (written with a trailing `/`) directories.
    pub fn existing(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .filter(|n| match n.strip_suffix('/') {
                Some(dir) => self.is_dir(dir),
                None => self.is_file(n),
            })
            .map(|n| n.to_string())
            .collect()
    }
}

/// Whether `text` names the package `name` as a whole word: the characters
/// around it are not part of a package name (letters, digits, `-`, `_`,
/// `.`). Case-insensitive; `name` must be lowercase.
pub(super) fn mentions(text: &str, name: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    lower.match_indices(name).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + name.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// The value of the first `key = value` or `key=value` line (as in
/// `.sdkmanrc` or `system.properties`).
pub(super) fn key_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The version asdf's `.tool-versions` gives for `tool`.
pub(super) fn tool_version(repo: &Repo, tool: &str) -> Option<String> {
    let text = repo.read_hint(".tool-versions")?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == tool).then(|| words.next().map(str::to_string))?
    })
}

/// The first line of a version file (`.nvmrc`, `.python-version`, …).
pub(super) fn version_file(repo: &Repo, name: &str) -> Option<String> {
    let text = repo.read_hint(name)?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// The tables of a TOML file, read line by line: enough for string keys
/// of `[package]`, `[[bin]]`, `[tool.poetry]` and the like, without a TOML
/// crate. Multi-line arrays and strings are skipped.
pub(super) struct Toml {
    tables: Vec<Table>,
}

/// One `[name]` or `[[name]]` table (the root table has the name "").
pub(super) struct Table {
    pub name: String,
    entries: Vec<(String, String)>,
}

impl Table {
    /// The value of `key`: the contents of a string, else the raw text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every key and value, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Toml {
    /// Reads `text`.
    pub fn parse(text: &str) -> Toml {
        let mut tables = vec![Table {
            name: String::new(),
            entries: Vec::new(),
        }];
        let mut multiline: Option<&str> = None;
        let mut depth = 0i32;
        for raw in text.lines() {
            if let Some(delim) = multiline {
                if raw.contains(delim) {
                    multiline = None;
                }
                continue;
            }
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if depth > 0 {
                depth += bracket_delta(line);
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.trim_start_matches('[');
                if let Some(end) = header.find(']') {
                    let name: String = header[..end]
                        .split('.')
                        .map(|part| part.trim().trim_matches(|c| c == '"' || c == '\''))
                        .collect::<Vec<_>>()
                        .join(".");
                    tables.push(Table {
                        name,
                        entries: Vec::new(),
                    });
                    continue;
                }
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            let value = value.trim();
            let parsed = if let Some(rest) = value
                .strip_prefix("\"\"\"")
                .or_else(|| value.strip_prefix("'''"))
            {
                let delim = &value[..3];
                match rest.find(delim) {
                    Some(end) => rest[..end].to_string(),
                    None => {
                        multiline = Some(if delim == "\"\"\"" { "\"\"\"" } else { "'''" });
                        rest.to_string()
                    }
                }
            } else if let Some(rest) = value.strip_prefix('"') {
                basic_string(rest)
            } else if let Some(rest) = value.strip_prefix('\'') {
                rest.split('\'').next().unwrap_or_default().to_string()
            } else {
                depth = bracket_delta(value).max(0);
                value.to_string()
            };
            if let Some(table) = tables.last_mut() {
                table.entries.push((key.to_string(), parsed));
            }
        }
        Toml { tables }
    }

    /// The first table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Every table called `name` (for arrays of tables such as `[[bin]]`).
    pub fn tables<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Table> + 'a {
        self.tables.iter().filter(move |t| t.name == name)
    }

    /// Every table, in file order (the root table first).
    pub fn all(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter()
    }

    /// Whether a table `prefix` or `prefix.…` exists.
    pub fn has(&self, prefix: &str) -> bool {
        self.tables.iter().any(|t| {
            t.name == prefix
                || t.name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// The value of `key` in the first table `table`.
    pub fn get(&self, table: &str, key: &str) -> Option<&str> {
        self.table(table)?.get(key)
    }
}

/// The contents of a basic string whose opening quote was removed.
fn basic_string(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// `line` without a `#` comment that is outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// Opening minus closing brackets outside quotes.
fn bracket_delta(text: &str) -> i32 {
    let mut quote: Option<char> = None;
    let mut delta = 0;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[' | '{') => delta += 1,
            (None, ']' | '}') => delta -= 1,
            _ => {}
        }
    }
    delta
}

/// A language version at the precision its images are tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ver {
    pub major: u32,
    pub minor: u32,
}

impl Ver {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Ver {
        Ver { major, minor }
    }
}

/// How precisely a language's images are tagged: Node and Java by major
/// version (`node:22`), Python, Ruby and PHP by minor (`python:3.12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Precision {
    Major,
    Minor,
}

impl Precision {
    fn next(self, v: Ver) -> Ver {
        match self {
            Precision::Major => Ver::new(v.major + 1, 0),
            Precision::Minor => Ver::new(v.major, v.minor + 1),
        }
    }
}

/// The version to build with for a requirement such as `>=18`, `^3.11`,
/// `~> 3.2`, `3.11.*`, `>=3.9,<3.12` or `18 || 20`: `default` when it is
/// allowed, else the closest allowed version. `None` when the
/// requirement cannot be read (then the default applies).
pub(super) fn choose_version(req: &str, default: Ver, precision: Precision) -> Option<Ver> {
    req.split("||")
        .filter_map(|alt| choose_in_range(alt, default, precision))
        .max()
}

fn choose_in_range(req: &str, default: Ver, precision: Precision) -> Option<Ver> {
    let mut low: Option<Ver> = None;
    let mut high: Option<Ver> = None; // exclusive
    let mut pending_op = String::new();
    let mut any = false;
    for token in req.replace(',', " ").split_whitespace() {
        let split = token
            .find(|c: char| !matches!(c, '<' | '>' | '=' | '!' | '^' | '~'))
            .unwrap_or(token.len());
        let (op, version) = token.split_at(split);
        let op = if op.is_empty() {
            std::mem::take(&mut pending_op)
        } else {
            pending_op.clear();
            op.to_string()
        };
        if version.is_empty() {
            pending_op = op;
            continue;
        }
        let Some(parts) = version_parts(version) else {
            continue;
        };
        let Some(&major) = parts.first() else {
            continue;
        };
        any = true;
        let minor = parts.get(1).copied().unwrap_or(0);
        let v = match precision {
            Precision::Major => Ver::new(major, 0),
            Precision::Minor => Ver::new(major, minor),
        };
        let given = parts.len();
        let precise = match precision {
            Precision::Major => 1,
            Precision::Minor => 2,
        };
        let raise = |slot: &mut Option<Ver>, v: Ver| *slot = Some(slot.map_or(v, |s| s.max(v)));
        let lower = |slot: &mut Option<Ver>, v: Ver| *slot = Some(slot.map_or(v, |s| s.min(v)));
        match op.as_str() {
            ">=" | ">" => raise(&mut low, v),
            "<" => {
                let beyond = parts.iter().skip(precise).any(|&p| p > 0);
                lower(&mut high, if beyond { precision.next(v) } else { v });
            }
            "<=" => lower(&mut high, precision.next(v)),
            "^" => {
                raise(&mut low, v);
                let upper = if major > 0 || precision == Precision::Major {
                    Ver::new(major + 1, 0)
                } else {
                    Ver::new(0, minor + 1)
                };
                lower(&mut high, upper);
            }
            "~" => {
                raise(&mut low, v);
                let upper = if given >= 2 {
                    precision.next(Ver::new(major, minor))
                } else {
                    Ver::new(major + 1, 0)
                };
                lower(&mut high, upper);
            }
            "~>" | "~=" => {
                raise(&mut low, v);
                if given >= 3 {
                    lower(&mut high, precision.next(Ver::new(major, minor)));
                } else if given == 2 {
                    lower(&mut high, Ver::new(major + 1, 0));
                }
            }
            "!=" => {}
            _ => {
                // Exact, `=`, `==` or a wildcard such as `20.x` / `3.11.*`.
                raise(&mut low, v);
                let upper = if given >= precise {
                    precision.next(v)
                } else {
                    Ver::new(major + 1, 0)
                };
                lower(&mut high, upper);
            }
        }
    }
    if !any {
        return None;
    }
    if let (Some(l), Some(h)) = (low, high) {
        if l >= h {
            return None;
        }
    }
    let above_low = low.is_none_or(|l| default >= l);
    let below_high = high.is_none_or(|h| default < h);
    match (above_low, below_high) {
        (true, true) => Some(default),
        (false, _) => low,
        (true, false) => {
            let h = high?;
            let below = match precision {
                Precision::Major => h.major.checked_sub(1).map(|m| Ver::new(m, 0)),
                Precision::Minor => h.minor.checked_sub(1).map(|m| Ver::new(h.major, m)),
            };
            match (below, low) {
                (Some(b), Some(l)) if b < l => Some(l),
                (Some(b), _) => Some(b),
                (None, l) => l,
            }
        }
    }
}

/// The numeric parts of a version such as `v20.11.0`, `3.11.*`, `20.x`
/// or `3.2.2p53` (stops at the first part that is not a number).
pub(super) fn version_parts(text: &str) -> Option<Vec<u32>> {
    let text = text
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .trim_start_matches(['v', 'V']);
    let mut parts = Vec::new();
    for part in text.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u32>() else {
            break;
        };
        parts.push(n);
        if digits.len() != part.len() {
            break;
        }
    }
    (!parts.is_empty()).then_some(parts)
}
