//! Whether a push (or an image push) should deploy an app: its branch, its
//! tag pattern, its watch paths and skip markers in the head commit message.
//! Every [`Decision`] carries a reason written for an API answer, e.g.
//! `push to branch "dev" ignored: the app deploys "main"`.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::{GitRef, Push};

/// Markers in a commit message that skip the deploy, lower case.
const SKIP_MARKERS: [&str; 6] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip deploy]",
    "[deploy skip]",
    "[skip berth]",
];

/// How many file names a reason lists before "and N more".
const LISTED_FILES: usize = 3;

/// What pushes deploy an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trigger {
    /// The branch that deploys, exactly. `None`: the repository's default
    /// branch as the push reports it, unless `tag_pattern` is set (then
    /// only tags deploy).
    pub branch: Option<String>,
    /// A glob over tag names (`v*`, `release-{a,b}*`): matching tag pushes
    /// deploy. `None`: tags never deploy.
    pub tag_pattern: Option<String>,
    /// Globs over paths relative to the repository root (`api/**`,
    /// `**/*.rs`); a leading `!` excludes (`!docs/**`). When set and the
    /// host lists the changed files, a push deploys only if one of them is
    /// included and not excluded; with only exclusions, every other path is
    /// included. `*` stays within one directory, `**` crosses them; a
    /// plain `api` or `api/` means the directory and everything in it.
    pub watch_paths: Vec<String>,
}

/// A trigger setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TriggerError {
    /// The offending field, e.g. `tag_pattern` or `watch_paths[2]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Trigger {
    /// Checks the settings with the glob engine [`decide`] uses, so a bad
    /// glob (e.g. `api**`: `**` must be a whole path component) is refused
    /// when the app is saved rather than found when a push arrives.
    pub fn validate(&self) -> Result<(), TriggerError> {
        if let Some(branch) = &self.branch {
            if branch.trim().is_empty() || branch.trim() != branch {
                return Err(TriggerError {
                    field: "branch".into(),
                    message: format!("\"{branch}\" is not a branch name"),
                });
            }
        }
        if let Some(pattern) = &self.tag_pattern {
            if pattern.trim().is_empty() {
                return Err(TriggerError {
                    field: "tag_pattern".into(),
                    message: "the tag pattern is empty; leave it out to not deploy tags".into(),
                });
            }
            tag_matcher(pattern).map_err(|message| TriggerError {
                field: "tag_pattern".into(),
                message,
            })?;
        }
        for (i, pattern) in self.watch_paths.iter().enumerate() {
            let field = format!("watch_paths[{i}]");
            let body = pattern.strip_prefix('!').unwrap_or(pattern);
            if normalize_path_glob(body).is_empty() {
                return Err(TriggerError {
                    field,
                    message: format!("\"{pattern}\" names no path"),
                });
            }
            WatchPaths::new(std::slice::from_ref(pattern))
                .map_err(|message| TriggerError { field, message })?;
        }
        Ok(())
    }
}

/// Deploy or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deploy.
    Deploy {
        /// The commit to deploy, when known.
        commit: Option<String>,
        /// Why, e.g. `push to branch "main" (1a2b3c4)`.
        reason: String,
    },
    /// Do nothing; why, naming the branch, tag or paths.
    Ignore(String),
}

impl Decision {
    /// The reason, either way.
    pub fn reason(&self) -> &str {
        match self {
            Self::Deploy { reason, .. } => reason,
            Self::Ignore(reason) => reason,
        }
    }
}

/// Applies `trigger` to one push: deletions never deploy; a branch push
/// deploys when it is the app's branch; a tag push when the tag pattern
/// matches; then a skip marker in the head commit message, or watch paths
/// that no changed file matches, turn it into an ignore. Unknown changed
/// files deploy.
pub fn decide(trigger: &Trigger, push: &Push) -> Decision {
    let commit = push.after.as_deref().map(short_sha);
    let at = commit.map(|c| format!(" ({c})")).unwrap_or_default();
    if push.deleted {
        return Decision::Ignore(format!(
            "{} was deleted: there is nothing to deploy",
            push.git_ref
        ));
    }
    let what = match &push.git_ref {
        GitRef::Branch(name) => {
            if let Err(why) = branch_deploys(trigger, push, name) {
                return Decision::Ignore(format!("push to branch \"{name}\" ignored: {why}"));
            }
            format!("push to branch \"{name}\"{at}")
        }
        GitRef::Tag(name) => {
            let Some(pattern) = trigger.tag_pattern.as_deref().filter(|p| !p.is_empty()) else {
                return Decision::Ignore(format!(
                    "tag \"{name}\" ignored: the app has no tag pattern, so tags do not deploy"
                ));
            };
            match tag_matcher(pattern) {
                Err(err) => {
                    return Decision::Ignore(format!(
                        "tag \"{name}\" ignored: the app's tag pattern is invalid ({err})"
                    ))
                }
                Ok(matcher) if !matcher.is_match(name) => {
                    return Decision::Ignore(format!(
                        "tag \"{name}\" ignored: it does not match the tag pattern \"{pattern}\""
                    ))
                }
                Ok(_) => format!("tag \"{name}\"{at} matches \"{pattern}\""),
            }
        }
        GitRef::Other(name) => {
            return Decision::Ignore(format!(
                "push to \"{name}\" ignored: only branches and tags deploy"
            ))
        }
    };
    if let Some(marker) = push.head_message.as_deref().and_then(skip_marker) {
        return Decision::Ignore(format!("{what} ignored: the head commit says {marker}"));
    }
    let reason = match paths_verdict(trigger, push.changed_files.as_deref()) {
        Ok(None) => what,
        Ok(Some(detail)) => format!("{what} {detail}"),
        Err(why) => return Decision::Ignore(format!("{what} ignored: {why}")),
    };
    Decision::Deploy {
        commit: push.after.clone(),
        reason,
    }
}

/// [`decide`] over several pushes of one delivery: the first that deploys,
/// or an ignore joining every reason.
pub fn decide_any(trigger: &Trigger, pushes: &[Push]) -> Decision {
    let mut reasons = Vec::with_capacity(pushes.len());
    for push in pushes {
        match decide(trigger, push) {
            deploy @ Decision::Deploy { .. } => return deploy,
            Decision::Ignore(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        Decision::Ignore("the push moved no branch or tag".into())
    } else {
        Decision::Ignore(reasons.join("; "))
    }
}

/// Whether an image push (`image`, `tag` from [`super::Event::ImagePush`])
/// is the image the app runs (`app_image`, e.g. `ghcr.io/acme/api:latest`).
/// `nginx`, `library/nginx` and `docker.io/library/nginx` are one image;
/// no tag means `latest`. An app pinned to a digest never matches, nor does
/// an untagged push.
pub fn decide_image(app_image: &str, image: &str, tag: Option<&str>) -> Decision {
    let want = ImageRef::parse(app_image);
    let got = ImageRef::parse(image);
    let tag = tag.filter(|t| !t.is_empty()).or(got.tag);
    let shown = match tag {
        Some(tag) => format!("{}:{tag}", got.name),
        None => got.name.clone(),
    };
    if want.name != got.name {
        return Decision::Ignore(format!(
            "push of image \"{shown}\" ignored: the app runs \"{app_image}\""
        ));
    }
    if want.digest {
        return Decision::Ignore(format!(
            "push of image \"{shown}\" ignored: the app pins \"{app_image}\" by digest"
        ));
    }
    let want_tag = want.tag.unwrap_or("latest");
    match tag {
        None => Decision::Ignore(format!(
            "untagged push of image \"{shown}\" ignored: the app runs tag \"{want_tag}\""
        )),
        Some(tag) if tag != want_tag => Decision::Ignore(format!(
            "push of image \"{shown}\" ignored: the app runs tag \"{want_tag}\""
        )),
        Some(_) => Decision::Deploy {
            commit: None,
            reason: format!("push of image \"{shown}\""),
        },
    }
}

/// The skip marker in `message`, if any (case-insensitive): `[skip ci]`,
/// `[ci skip]`, `[no ci]`, `[skip deploy]`, `[deploy skip]`, `[skip berth]`.
pub fn skip_marker(message: &str) -> Option<&'static str> {
    let lower = message.to_lowercase();
    SKIP_MARKERS
        .into_iter()
        .find(|marker| lower.contains(marker))
}

/// Whether a push to branch `name` deploys; the error completes
/// `push to branch "x" ignored: ...`.
fn branch_deploys(trigger: &Trigger, push: &Push, name: &str) -> Result<(), String> {
    if let Some(want) = trigger.branch.as_deref().filter(|b| !b.is_empty()) {
        return if want == name {
            Ok(())
        } else {
            Err(format!("the app deploys \"{want}\""))
        };
    }
    if let Some(pattern) = trigger.tag_pattern.as_deref().filter(|p| !p.is_empty()) {
        return Err(format!("the app deploys tags matching \"{pattern}\" only"));
    }
    match push.default_branch.as_deref() {
        Some(default) if default == name => Ok(()),
        Some(default) => Err(format!("the app deploys the default branch \"{default}\"")),
        None => Err("the app has no deploy branch set".into()),
    }
}

/// The watch-path check: `Ok(None)` when there are no watch paths,
/// `Ok(Some(detail))` to deploy, `Err(why)` to ignore.
fn paths_verdict(trigger: &Trigger, files: Option<&[String]>) -> Result<Option<String>, String> {
    if trigger.watch_paths.is_empty() {
        return Ok(None);
    }
    let watch = WatchPaths::new(&trigger.watch_paths)
        .map_err(|err| format!("the app's watch paths are invalid ({err})"))?;
    let Some(files) = files else {
        return Ok(Some(
            "(the host did not list the changed files, so the watch paths were not checked)".into(),
        ));
    };
    if files.is_empty() {
        return Ok(Some("(no files changed, e.g. an empty commit)".into()));
    }
    let hits: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|file| watch.matches(file))
        .collect();
    if hits.is_empty() {
        let count = files.len();
        let plural = if count == 1 { "" } else { "s" };
        return Err(format!(
            "none of the {count} changed file{plural} ({}) is in the watch paths ({})",
            list(files.iter().map(String::as_str)),
            trigger.watch_paths.join(", ")
        ));
    }
    Ok(Some(format!("changed {}", list(hits.iter().copied()))))
}

/// `a, b, c and 4 more`.
fn list<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = items.len();
    let shown: Vec<&str> = items.take(LISTED_FILES).collect();
    let mut text = shown.join(", ");
    if total > shown.len() {
        text.push_str(&format!(" and {} more", total - shown.len()));
    }
    text
}

/// The first 7 characters of a commit id.
fn short_sha(sha: &str) -> &str {
    sha.char_indices().nth(7).map_or(sha, |(at, _)| &sha[..at])
}

/// A tag pattern: `*` matches any character, `/` included.
fn tag_matcher(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|glob| glob.compile_matcher())
        .map_err(|err| format!("\"{pattern}\" is not a valid glob: {}", err.kind()))
}

/// Compiled watch paths.
struct WatchPaths {
    include: GlobSet,
    exclude: GlobSet,
    /// Only exclusions were given: every other path counts.
    include_all: bool,
}

impl WatchPaths {
    fn new(patterns: &[String]) -> Result<Self, String> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut includes = 0;
        for pattern in patterns {
            let (set, body) = match pattern.trim().strip_prefix('!') {
                Some(body) => (&mut exclude, body),
                None => {
                    includes += 1;
                    (&mut include, pattern.trim())
                }
            };
            let body = normalize_path_glob(body);
            if body.is_empty() {
                continue;
            }
            for glob in expand_path_glob(&body) {
                let glob = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|err| format!("\"{pattern}\" is not a valid glob: {}", err.kind()))?;
                set.add(glob);
            }
        }
        let build = |set: GlobSetBuilder| set.build().map_err(|err| err.to_string());
        Ok(Self {
            include: build(include)?,
            exclude: build(exclude)?,
            include_all: includes == 0,
        })
    }

    fn matches(&self, file: &str) -> bool {
        let file = file.trim_start_matches('/');
        (self.include_all || self.include.is_match(file)) && !self.exclude.is_match(file)
    }
}

/// Trims, drops a leading `./` or `/`.
fn normalize_path_glob(pattern: &str) -> String {
    let mut body = pattern.trim();
    while let Some(rest) = body.strip_prefix("./") {
        body = rest;
    }
    body.trim_start_matches('/').to_string()
}

/// `api/` to `api/**`; a plain `api` to `api` and `api/**` (the file or the
/// directory); globs as they are.
fn expand_path_glob(body: &str) -> Vec<String> {
    let is_glob = body.contains(['*', '?', '[', '{']);
    if let Some(dir) = body.strip_suffix('/') {
        return vec![format!("{dir}/**")];
    }
    if is_glob {
        vec![body.to_string()]
    } else {
        vec![body.to_string(), format!("{body}/**")]
    }
}

/// An image reference reduced to what identifies it: registry and path (in
/// lower case, Docker Hub spelled out), tag, digest or not.
struct ImageRef<'a> {
    name: String,
    tag: Option<&'a str>,
    digest: bool,
}

impl<'a> ImageRef<'a> {
    fn parse(reference: &'a str) -> Self {
        let reference = reference.trim();
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, _)) => (rest, true),
            None => (reference, false),
        };
        let slash = rest.rfind('/').map_or(0, |at| at + 1);
        let (path, tag) = match rest[slash..].rfind(':') {
            Some(colon) => {
                let at = slash + colon;
                let tag = &rest[at + 1..];
                (&rest[..at], (!tag.is_empty()).then_some(tag))
            }
            None => (rest, None),
        };
        let path = path.to_ascii_lowercase();
        let (registry, repo) = match path.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), repo.to_string())
            }
            _ => ("docker.io".to_string(), path.clone()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                "docker.io".to_string()
            }
            _ => registry,
        };
        let repo = if registry == "docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        Self {
            name: format!("{registry}/{repo}"),
            tag,
            digest,
        }
    }
}

#[cfg(test)]
impl Decision {
    /// True for [`Decision::Deploy`].
    pub(super) fn is_deploy(&self) -> bool {
        matches!(self, Self::Deploy { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(git_ref: GitRef) -> Push {
        Push {
            git_ref,
            after: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
            deleted: false,
            head_message: Some("Fix the login form".into()),
            changed_files: Some(vec!["api/src/main.rs".into(), "README.md".into()]),
            repository: Some("acme/shop".into()),
            default_branch: Some("main".into()),
        }
    }

    fn branch(name: &str) -> Push {
        push(GitRef::Branch(name.into()))
    }

    fn tag(name: &str) -> Push {
        push(GitRef::Tag(name.into()))
    }

    fn on_branch(name: &str) -> Trigger {
        Trigger {
            branch: Some(name.into()),
            ..Trigger::default()
        }
    }

    fn watching(paths: &[&str]) -> Trigger {
        Trigger {
            branch: Some("main".into()),
            watch_paths: paths.iter().map(|p| p.to_string()).collect(),
            ..Trigger::default()
        }
    }

    fn with_files(files: &[&str]) -> Push {
        Push {
            changed_files: Some(files.iter().map(|f| f.to_string()).collect()),
            ..branch("main")
        }
    }

    #[test]
    fn branch_push_to_the_app_branch_deploys() {
        let decision = decide(&on_branch("main"), &branch("main"));
        assert_eq!(
            decision,
            Decision::Deploy {
                commit: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
                reason: "push to branch \"main\" (9fceb02)".into(),
            }
        );
        assert!(decision.is_deploy());
    }

    #[test]
    fn branch_mismatch_is_ignored_and_named() {
        let decision = decide(&on_branch("main"), &branch("dev"));
        assert_eq!(
            decision,
            Decision::Ignore("push to branch \"dev\" ignored: the app deploys \"main\"".into())
        );
        assert!(!decision.is_deploy());
    }

    #[test]
    fn no_branch_set_means_the_default_branch() {
        let trigger = Trigger::default();
        assert!(decide(&trigger, &branch("main")).is_deploy());
        assert_eq!(
            decide(&trigger, &branch("feature/x")).reason(),
            "push to branch \"feature/x\" ignored: the app deploys the default branch \"main\""
        );
        let unknown = Push {
            default_branch: None,
            ..branch("main")
        };
        assert_eq!(
            decide(&trigger, &unknown).reason(),
            "push to branch \"main\" ignored: the app has no deploy branch set"
        );
    }

    #[test]
    fn a_tag_only_app_ignores_branch_pushes() {
        let trigger = Trigger {
            tag_pattern: Some("v*".into()),
            ..Trigger::default()
        };
        assert_eq!(
            decide(&trigger, &branch("main")).reason(),
            "push to branch \"main\" ignored: the app deploys tags matching \"v*\" only"
        );
        assert!(decide(&trigger, &tag("v1.4.0")).is_deploy());
    }

    #[test]
    fn tag_pattern_decides_tags() {
        let trigger = Trigger {
            branch: Some("main".into()),
            tag_pattern: Some("v*".into()),
            watch_paths: vec![],
        };
        assert_eq!(
            decide(&trigger, &tag("v1.4.0")).reason(),
            "tag \"v1.4.0\" (9fceb02) matches \"v*\""
        );
        assert_eq!(
            decide(&trigger, &tag("nightly")).reason(),
            "tag \"nightly\" ignored: it does not match the tag pattern \"v*\""
        );
        assert_eq!(
            decide(&on_branch("main"), &tag("v1.4.0")).reason(),
            "tag \"v1.4.0\" ignored: the app has no tag pattern, so tags do not deploy"
        );
        let alternatives = Trigger {
            tag_pattern: Some("{v,release-}[0-9]*".into()),
            ..Trigger::default()
        };
        assert!(decide(&alternatives, &tag("release-2024.1")).is_deploy());
        assert!(decide(&alternatives, &tag("v2")).is_deploy());
        assert!(!decide(&alternatives, &tag("vNext")).is_deploy());
    }

    #[test]
    fn other_refs_and_deletions_are_ignored() {
        let notes = push(GitRef::Other("refs/notes/commits".into()));
        assert_eq!(
            decide(&on_branch("main"), &notes).reason(),
            "push to \"refs/notes/commits\" ignored: only branches and tags deploy"
        );
        let deleted = Push {
            deleted: true,
            after: None,
            ..branch("main")
        };
        assert_eq!(
            decide(&on_branch("main"), &deleted),
            Decision::Ignore("branch \"main\" was deleted: there is nothing to deploy".into())
        );
    }

    #[test]
    fn skip_markers_are_found_in_any_case() {
        assert_eq!(skip_marker("Fix typo [skip ci]"), Some("[skip ci]"));
        assert_eq!(skip_marker("docs: [CI SKIP]"), Some("[ci skip]"));
        assert_eq!(skip_marker("wip\n\n[No Ci]"), Some("[no ci]"));
        assert_eq!(skip_marker("[Skip Deploy] bump"), Some("[skip deploy]"));
        assert_eq!(skip_marker("[deploy skip]"), Some("[deploy skip]"));
        assert_eq!(skip_marker("chore [skip berth]"), Some("[skip berth]"));
        assert_eq!(skip_marker("skip ci"), None);
        assert_eq!(skip_marker("[skip-ci]"), None);
        assert_eq!(skip_marker(""), None);
    }

    #[test]
    fn a_skip_marker_in_the_head_commit_ignores_the_push() {
        let skipped = Push {
            head_message: Some("Update README [skip deploy]".into()),
            ..branch("main")
        };
        assert_eq!(
            decide(&on_branch("main"), &skipped),
            Decision::Ignore(
                "push to branch \"main\" (9fceb02) ignored: the head commit says [skip deploy]"
                    .into()
            )
        );
        // The branch check comes first: a mismatch is the better reason.
        assert_eq!(
            decide(&on_branch("prod"), &skipped).reason(),
            "push to branch \"main\" ignored: the app deploys \"prod\""
        );
    }

    #[test]
    fn watch_paths_include() {
        let trigger = watching(&["api/**"]);
        assert_eq!(
            decide(&trigger, &with_files(&["api/src/main.rs", "README.md"])).reason(),
            "push to branch \"main\" (9fceb02) changed api/src/main.rs"
        );
        assert_eq!(
            decide(&trigger, &with_files(&["web/index.html", "README.md"])).reason(),
            "push to branch \"main\" (9fceb02) ignored: none of the 2 changed files \
             (web/index.html, README.md) is in the watch paths (api/**)"
        );
    }

    #[test]
    fn watch_paths_exclude() {
        let trigger = watching(&["api/**", "!api/docs/**"]);
        assert!(!decide(&trigger, &with_files(&["api/docs/intro.md"])).is_deploy());
        assert!(decide(&trigger, &with_files(&["api/docs/intro.md", "api/lib.rs"])).is_deploy());
        // Only exclusions: everything else counts.
        let trigger = watching(&["!docs/**", "!*.md"]);
        assert!(!decide(&trigger, &with_files(&["docs/a.md", "README.md"])).is_deploy());
        assert!(decide(&trigger, &with_files(&["docs/a.md", "src/lib.rs"])).is_deploy());
        // `*.md` stays at the root: a nested Markdown file counts.
        assert!(decide(&trigger, &with_files(&["src/notes.md"])).is_deploy());
    }

    #[test]
    fn watch_paths_directories_and_star_semantics() {
        for pattern in ["api", "api/", "./api", "/api/"] {
            let trigger = watching(&[pattern]);
            assert!(
                decide(&trigger, &with_files(&["api/a/b.rs"])).is_deploy(),
                "{pattern}"
            );
            assert!(
                !decide(&trigger, &with_files(&["apiary/a.rs"])).is_deploy(),
                "{pattern}"
            );
        }
        let trigger = watching(&["api/*.rs"]);
        assert!(decide(&trigger, &with_files(&["api/main.rs"])).is_deploy());
        assert!(!decide(&trigger, &with_files(&["api/sub/main.rs"])).is_deploy());
        let trigger = watching(&["**/*.rs"]);
        assert!(decide(&trigger, &with_files(&["main.rs"])).is_deploy());
        assert!(decide(&trigger, &with_files(&["a/b/c.rs"])).is_deploy());
    }

    #[test]
    fn watch_paths_with_unknown_or_no_files_deploy() {
        let trigger = watching(&["api/**"]);
        let unknown = Push {
            changed_files: None,
            ..branch("main")
        };
        assert_eq!(
            decide(&trigger, &unknown).reason(),
            "push to branch \"main\" (9fceb02) (the host did not list the changed files, \
             so the watch paths were not checked)"
        );
        assert!(decide(&trigger, &with_files(&[])).is_deploy());
    }

    #[test]
    fn long_file_lists_are_shortened() {
        let trigger = watching(&["api/**"]);
        let files = ["a.md", "b.md", "c.md", "d.md", "e.md"];
        assert_eq!(
            decide(&trigger, &with_files(&files)).reason(),
            "push to branch \"main\" (9fceb02) ignored: none of the 5 changed files \
             (a.md, b.md, c.md and 2 more) is in the watch paths (api/**)"
        );
    }

    #[test]
    fn invalid_patterns_are_refused_by_validate_and_ignored_by_decide() {
        let bad_tag = Trigger {
            tag_pattern: Some("v[".into()),
            ..Trigger::default()
        };
        let err = bad_tag.validate().unwrap_err();
        assert_eq!(err.field, "tag_pattern");
        assert!(!decide(&bad_tag, &tag("v1")).is_deploy());
        let bad_path = watching(&["api/**", "src/{a,b"]);
        let err = bad_path.validate().unwrap_err();
        assert_eq!(err.field, "watch_paths[1]");
        assert!(err
            .to_string()
            .starts_with("watch_paths[1]: \"src/{a,b\" is not a valid glob"));
        assert!(decide(&bad_path, &with_files(&["api/x"]))
            .reason()
            .contains("the app's watch paths are invalid"));
        assert_eq!(
            watching(&["!"]).validate().unwrap_err().field,
            "watch_paths[0]"
        );
        assert_eq!(on_branch(" ").validate().unwrap_err().field, "branch");
        assert!(watching(&["api/**", "!docs/**", "Dockerfile"])
            .validate()
            .is_ok());
        assert!(Trigger::default().validate().is_ok());
    }

    #[test]
    fn decide_any_takes_the_first_deploy() {
        let trigger = on_branch("main");
        let pushes = [branch("dev"), branch("main")];
        assert!(decide_any(&trigger, &pushes).is_deploy());
        let pushes = [branch("dev"), tag("v1")];
        assert_eq!(
            decide_any(&trigger, &pushes).reason(),
            "push to branch \"dev\" ignored: the app deploys \"main\"; \
             tag \"v1\" ignored: the app has no tag pattern, so tags do not deploy"
        );
        assert!(!decide_any(&trigger, &[]).is_deploy());
    }

    #[test]
    fn image_pushes_match_the_app_image() {
        let deploy = decide_image(
            "ghcr.io/acme/api:latest",
            "ghcr.io/acme/api",
            Some("latest"),
        );
        assert_eq!(
            deploy,
            Decision::Deploy {
                commit: None,
                reason: "push of image \"ghcr.io/acme/api:latest\"".into()
            }
        );
        assert!(decide_image("nginx", "library/nginx", Some("latest")).is_deploy());
        assert!(
            decide_image("docker.io/library/nginx:latest", "nginx", Some("latest")).is_deploy()
        );
        assert!(decide_image("acme/api:v2", "acme/api", Some("v2")).is_deploy());
        assert!(decide_image("GHCR.io/Acme/API:1", "ghcr.io/acme/api", Some("1")).is_deploy());
        assert!(decide_image("localhost:5000/api:dev", "localhost:5000/api:dev", None).is_deploy());
        assert_eq!(
            decide_image("acme/api:v2", "acme/api", Some("v3")).reason(),
            "push of image \"docker.io/acme/api:v3\" ignored: the app runs tag \"v2\""
        );
        assert_eq!(
            decide_image("acme/api", "acme/web", Some("latest")).reason(),
            "push of image \"docker.io/acme/web:latest\" ignored: the app runs \"acme/api\""
        );
        assert!(decide_image("acme/api", "acme/api", None)
            .reason()
            .starts_with("untagged push"));
        assert!(
            decide_image("acme/api@sha256:abc", "acme/api", Some("latest"))
                .reason()
                .contains("by digest")
        );
    }

    #[test]
    fn short_sha_handles_short_and_odd_ids() {
        assert_eq!(short_sha("9fceb02d0ae598e9"), "9fceb02");
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(short_sha("ééééééééé"), "ééééééé");
    }
}
