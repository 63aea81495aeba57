//! Static HTML: `index.html` at the root or in `public/`, when no other
//! stack was found; served by nginx.

use super::node::{NGINX_IMAGE, NGINX_START};
use super::repo::Repo;
use super::{BuildPlan, DetectError, Stack};

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let (dir, reason) = if repo.is_file("index.html") {
        (".", "index.html at the root, served by nginx")
    } else if repo.is_file("public/index.html") {
        ("public", "public/index.html, served by nginx")
    } else {
        return Ok(None);
    };
    let mut plan = BuildPlan::new(Stack::Static, NGINX_IMAGE);
    plan.reason = reason.to_string();
    plan.publish_dir = Some(dir.to_string());
    plan.start = Some(NGINX_START.to_string());
    plan.port = Some(80);
    Ok(Some(plan))
}
