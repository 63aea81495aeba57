//! The files of a static site, gathered for the edge: copied from the
//! checkout's publish directory or unpacked from the archive of a built
//! image's directory. A symlink that stays inside the site is kept (as a
//! relative link, so it resolves in the copy as it did in the source); one
//! that leads out of the site, or dangles, fails the build naming the link
//! and its target: the edge serves only what the site holds, and a site
//! must never silently lack a file it links to.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use super::BuildError;

/// The field every error here is about.
const FIELD: &str = "build.publish_dir";

/// Why a symlink cannot be published.
fn bad_link(link: &Path, target: &Path, why: &str) -> BuildError {
    BuildError::Invalid {
        field: FIELD,
        message: format!(
            "{} is a symlink to {}, {why}; copy the file into the site or remove the link",
            link.display(),
            target.display()
        ),
    }
}

/// The error of a site over its size limit.
pub(super) fn site_too_large(max_bytes: u64) -> BuildError {
    BuildError::Invalid {
        field: FIELD,
        message: format!(
            "the site is larger than {} MiB; publish less or raise [build] max_site_mb",
            max_bytes >> 20
        ),
    }
}

/// Whether a name is hidden and so left out of a site copied from the
/// checkout (`.git`, `.env`, …); `.well-known` is published.
fn hidden(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with('.') && name != ".well-known"
}

/// A link placed at `link` (relative to the site root) that reaches
/// `target` (relative to the site root too).
fn relative_link(link: &Path, target: &Path) -> PathBuf {
    let depth = link.parent().map_or(0, |p| p.components().count());
    let mut path: PathBuf = std::iter::repeat_n("..", depth).collect();
    path.push(target);
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

/// Copies the site in `from` (a directory of the checkout) to `to`:
/// directories, regular files and symlinks that stay inside `from`;
/// hidden entries stay behind, except `.well-known`. `budget` is the
/// number of bytes the files may still take.
pub(super) fn copy_tree(from: &Path, to: &Path, budget: &mut u64) -> Result<(), BuildError> {
    let root = from.canonicalize().map_err(copy_io)?;
    let mut copy = TreeCopy {
        root: &root,
        budget,
    };
    copy.dir(&root, to, Path::new(""))
}

fn copy_io(e: std::io::Error) -> BuildError {
    BuildError::Io(format!("cannot copy the site: {e}"))
}

/// One [`copy_tree`].
struct TreeCopy<'a> {
    /// The site's directory, canonical.
    root: &'a Path,
    budget: &'a mut u64,
}

impl TreeCopy<'_> {
    /// Copies directory `from`, which is `rel` inside the site, to `to`.
    fn dir(&mut self, from: &Path, to: &Path, rel: &Path) -> Result<(), BuildError> {
        std::fs::create_dir_all(to).map_err(copy_io)?;
        for entry in std::fs::read_dir(from).map_err(copy_io)? {
            let entry = entry.map_err(copy_io)?;
            let kind = entry.file_type().map_err(copy_io)?;
            let name = entry.file_name();
            if hidden(&name) {
                continue;
            }
            let target = to.join(&name);
            let rel = rel.join(&name);
            if kind.is_symlink() {
                self.link(&entry.path(), &target, &rel)?;
            } else if kind.is_dir() {
                self.dir(&entry.path(), &target, &rel)?;
            } else if kind.is_file() {
                let size = entry.metadata().map_err(copy_io)?.len();
                *self.budget = self.budget.checked_sub(size).ok_or_else(|| BuildError::Invalid {
                    field: FIELD,
                    message: "the site is larger than [build] max_site_mb; publish less or raise the limit"
                        .into(),
                })?;
                std::fs::copy(entry.path(), &target).map_err(copy_io)?;
            }
        }
        Ok(())
    }

    /// Recreates the symlink at `path` (`rel` inside the site) as `to`,
    /// when it resolves inside the site to something published.
    fn link(&self, path: &Path, to: &Path, rel: &Path) -> Result<(), BuildError> {
        let written = std::fs::read_link(path).map_err(copy_io)?;
        let Ok(resolved) = path.canonicalize() else {
            return Err(bad_link(rel, &written, "which does not exist"));
        };
        let Ok(inside) = resolved.strip_prefix(self.root) else {
            return Err(bad_link(rel, &written, "outside the site"));
        };
        if inside.iter().any(hidden) {
            return Err(bad_link(
                rel,
                &written,
                "a hidden file or directory, which is not published",
            ));
        }
        std::os::unix::fs::symlink(relative_link(rel, inside), to).map_err(copy_io)
    }
}

/// `path` (an archive entry's name) as a path inside the site: `.`
/// dropped; `None` when it is absolute or climbs with `..`.
fn site_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `path` made absolute and `.`/`..` resolved by name, as the kernel
/// would if no component were a symlink (`..` at `/` stays at `/`).
fn lexical(base: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in base.components().chain(path.components()) {
        match c {
            Component::RootDir | Component::Prefix(_) => parts.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(n) => parts.push(n),
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(parts);
    out
}

/// Whether a directory on the way to `rel` inside `dest` is a symlink:
/// the engine never archives an entry below one, and writing through it
/// could leave `dest`.
fn under_link(dest: &Path, rel: &Path) -> bool {
    let mut path = dest.to_path_buf();
    let parents = rel.parent().into_iter().flat_map(Path::components);
    for c in parents {
        path.push(c);
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return true;
        }
    }
    false
}

/// Unpacks the archive of the image's directory `image_dir` (the site)
/// into `dest`: directories, regular files, hard links between them, and
/// symlinks that stay inside the site (absolute ones made relative).
///
/// Symlinks are judged by their names inside the image and written again
/// with `.` and `..` resolved, so each climbs exactly to the site's root;
/// the edge checks once more on the unpacked files (`Site::load`
/// canonicalises every link).
pub(super) fn unpack_site(
    archive: &[u8],
    dest: &Path,
    image_dir: &str,
    max_bytes: u64,
) -> Result<(), BuildError> {
    let io = |e: std::io::Error| BuildError::Io(format!("cannot unpack the site: {e}"));
    std::fs::create_dir_all(dest).map_err(io)?;
    let root = lexical(Path::new("/"), Path::new(image_dir));
    let mut tar = tar::Archive::new(archive);
    tar.set_preserve_permissions(false);
    let mut total = 0u64;
    for entry in tar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let name = entry.path().map_err(io)?.into_owned();
            let Some(rel) = site_path(&name) else {
                return Err(BuildError::Io(format!(
                    "cannot unpack the site: the archive names {} outside it",
                    name.display()
                )));
            };
            let written = entry
                .link_name()
                .map_err(io)?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let shown = root.join(&rel);
            let base = shown.parent().unwrap_or(&root);
            let resolved = lexical(base, &written);
            let Ok(inside) = resolved.strip_prefix(&root) else {
                return Err(bad_link(&shown, &written, "outside the site"));
            };
            if under_link(dest, &rel) {
                return Err(BuildError::Io(format!(
                    "cannot unpack the site: the archive puts {} under a symlink",
                    name.display()
                )));
            }
            let link = dest.join(&rel);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::os::unix::fs::symlink(relative_link(&rel, inside), &link).map_err(io)?;
            continue;
        }
        if !(kind.is_file() || kind.is_dir() || kind.is_hard_link()) {
            continue;
        }
        total += entry.size();
        if total > max_bytes {
            return Err(site_too_large(max_bytes));
        }
        // unpack_in refuses paths, and hard links, that leave `dest`.
        entry.unpack_in(dest).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proxy::{Site, SiteError, SiteOptions};
    use std::os::unix::fs::symlink;

    fn body(site: &Site, path: &str) -> Vec<u8> {
        let resp = site.respond(&http::Method::GET, path, &http::HeaderMap::new());
        assert_eq!(resp.status, 200, "{path}");
        resp.body.to_vec()
    }

    /// A publish directory with a page, a link to it from a subdirectory
    /// and a linked directory.
    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        std::fs::write(dir.path().join("index.html"), "home").unwrap();
        std::fs::write(dir.path().join("docs/page.html"), "page").unwrap();
        symlink("../index.html", dir.path().join("docs/home.html")).unwrap();
        symlink("docs", dir.path().join("guide")).unwrap();
        dir
    }

    #[test]
    fn links_inside_the_site_are_copied_and_served() {
        let from = sample();
        // An absolute link that stays inside counts as inside.
        symlink(
            from.path().join("docs/page.html"),
            from.path().join("abs.html"),
        )
        .unwrap();
        let to = tempfile::tempdir().unwrap();
        copy_tree(from.path(), &to.path().join("site"), &mut u64::MAX.clone()).unwrap();
        let site = Site::load(&to.path().join("site"), SiteOptions::default()).unwrap();
        assert_eq!(body(&site, "/docs/home.html"), b"home");
        assert_eq!(body(&site, "/guide/page.html"), b"page");
        assert_eq!(body(&site, "/abs.html"), b"page");
        // The copy stands alone: the source may go.
        drop(from);
        let site = Site::load(&to.path().join("site"), SiteOptions::default()).unwrap();
        assert_eq!(body(&site, "/docs/home.html"), b"home");
    }

    #[test]
    fn a_link_out_of_the_site_fails_naming_link_and_target() {
        let from = sample();
        symlink("/etc/passwd", from.path().join("docs/passwd.txt")).unwrap();
        let to = tempfile::tempdir().unwrap();
        let err = copy_tree(from.path(), to.path(), &mut u64::MAX.clone()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("build.publish_dir: "), "{text}");
        assert!(text.contains("docs/passwd.txt"), "{text}");
        assert!(text.contains("/etc/passwd"), "{text}");
        assert!(text.contains("outside the site"), "{text}");
        assert!(
            text.contains("copy the file into the site or remove the link"),
            "{text}"
        );
    }

    #[test]
    fn links_to_the_rest_of_the_repository_dangling_or_hidden_fail() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("secret.txt"), "s").unwrap();
        std::fs::create_dir(repo.path().join("dist")).unwrap();
        let from = repo.path().join("dist");
        std::fs::write(from.join(".env"), "TOKEN=1").unwrap();
        let to = tempfile::tempdir().unwrap();
        for (link, target, why) in [
            ("up.txt", "../secret.txt", "outside the site"),
            ("gone.txt", "nowhere.txt", "does not exist"),
            ("env.txt", ".env", "hidden"),
        ] {
            symlink(target, from.join(link)).unwrap();
            let err = copy_tree(&from, to.path(), &mut u64::MAX.clone()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(link) && text.contains(target), "{text}");
            assert!(text.contains(why), "{text}");
            std::fs::remove_file(from.join(link)).unwrap();
        }
        copy_tree(&from, to.path(), &mut u64::MAX.clone()).unwrap();
    }

    /// An archive as the engine sends a directory: entries named `./…`.
    fn archive(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, link) in entries {
            let mut h = tar::Header::new_gnu();
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    b.append_link(&mut h, name, target).unwrap();
                }
                None => {
                    let data = format!("file {name}");
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, name, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn image_links_inside_the_site_are_unpacked_and_served() {
        let bytes = archive(&[
            ("./index.html", None),
            ("./sub/a.css", None),
            ("./sub/up.html", Some("../index.html")),
            ("./abs.html", Some("/app/site/index.html")),
            ("./sub/also.css", Some("/app/site/./sub/../sub/a.css")),
        ]);
        let dest = tempfile::tempdir().unwrap();
        unpack_site(&bytes, dest.path(), "/app/site/", u64::MAX).unwrap();
        let site = Site::load(dest.path(), SiteOptions::default()).unwrap();
        assert_eq!(body(&site, "/sub/up.html"), b"file ./index.html");
        assert_eq!(body(&site, "/abs.html"), b"file ./index.html");
        assert_eq!(body(&site, "/sub/also.css"), b"file ./sub/a.css");
    }

    #[test]
    fn image_links_out_of_the_site_fail_naming_link_and_target() {
        for (link, target) in [
            ("./leak", "/etc/passwd"),
            ("./sub/up", "../../secret"),
            ("./near", "/app/site-other/x"),
        ] {
            let bytes = archive(&[("./index.html", None), (link, Some(target))]);
            let dest = tempfile::tempdir().unwrap();
            let err = unpack_site(&bytes, dest.path(), "app/site", u64::MAX).unwrap_err();
            let text = err.to_string();
            let shown = format!("/app/site/{}", link.trim_start_matches("./"));
            assert!(text.contains(&shown), "{text}");
            assert!(text.contains(target), "{text}");
            assert!(
                text.contains("outside the site; copy the file into the site or remove the link"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_chain_of_links_that_climbs_out_never_reaches_outside() {
        // `sub/root` points at the site's root, so in the image `escape`
        // climbs out of it, though its name looks inside: written again by
        // name it points at a missing file of the site, which the edge
        // refuses.
        let bytes = archive(&[
            ("./index.html", None),
            ("./sub/root", Some("..")),
            ("./escape", Some("sub/root/../../etc/passwd")),
        ]);
        let dest = tempfile::tempdir().unwrap();
        let site = dest.path().join("site");
        unpack_site(&bytes, &site, "site", u64::MAX).unwrap();
        let err = Site::load(&site, SiteOptions::default()).unwrap_err();
        assert!(matches!(err, SiteError::Read { .. }), "{err}");
        assert!(err.to_string().contains("escape"), "{err}");
    }

    #[test]
    fn entries_below_a_link_are_refused() {
        // Written through `d/l`, `up` would sit in `sub/` and its two
        // climbs would leave the site.
        let bytes = archive(&[
            ("./sub/keep", None),
            ("./d/l", Some("../sub")),
            ("./d/l/up", Some("../../index.html")),
        ]);
        let dest = tempfile::tempdir().unwrap();
        let site = dest.path().join("site");
        let err = unpack_site(&bytes, &site, "site", u64::MAX).unwrap_err();
        assert!(err.to_string().contains("under a symlink"), "{err}");
        assert!(site.join("sub/keep").exists());
        assert!(site.join("sub/up").symlink_metadata().is_err());
    }
}
