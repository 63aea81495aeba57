//! Go: `go.mod`; the Go version from its `toolchain` or `go` line, the
//! main package at the root or under `cmd/`, a static binary run on a
//! slim Debian image.

use super::repo::{version_parts, Repo};
use super::{note, BuildPlan, DetectError, Stack};

/// The port Go web apps usually listen on.
const PORT: u16 = 8080;
/// Image of the runtime stage of Go and Rust builds.
pub(super) const RUNTIME_IMAGE: &str = "debian:bookworm-slim";
/// The most Go files read when looking for a main package.
const MAX_GO_FILES: usize = 100;

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let Some(gomod) = repo.read("go.mod")? else {
        return Ok(None);
    };
    let directive = |name: &str| {
        gomod.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == name).then(|| words.next().map(str::to_string))?
        })
    };
    let module = directive("module");
    let go = directive("go");
    let toolchain = directive("toolchain").and_then(|t| t.strip_prefix("go").map(str::to_string));

    let mut reason = String::from("go.mod");
    if let Some(module) = &module {
        reason.push_str(&format!(" (module {module}"));
        if let Some(go) = &go {
            reason.push_str(&format!(", go {go}"));
        }
        reason.push(')');
    }
    let image = toolchain
        .as_deref()
        .or(go.as_deref())
        .and_then(version_parts)
        .filter(|v| v.len() >= 2)
        .map_or_else(
            || "golang:1".to_string(),
            |v| format!("golang:{}.{}", v[0], v[1]),
        );
    let mut plan = BuildPlan::new(Stack::Go, image);
    plan.runtime_image = Some(RUNTIME_IMAGE.to_string());

    if repo.is_file("vendor/modules.txt") {
        note(&mut reason, "vendored modules");
    } else {
        plan.manifests = repo.existing(&["go.mod", "go.sum"]);
        plan.install = Some("go mod download".to_string());
    }

    let target = if has_main_package(repo, "") {
        note(&mut reason, "main package at the root");
        ".".to_string()
    } else {
        let mains: Vec<String> = repo
            .list("cmd")
            .into_iter()
            .filter(|e| e.is_dir && has_main_package(repo, &format!("cmd/{}", e.name)))
            .map(|e| e.name)
            .collect();
        let base = module
            .as_deref()
            .and_then(|m| m.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let preferred = [base.as_str(), "server", "api", "web", "app", "main"];
        let chosen = preferred
            .iter()
            .find(|p| !p.is_empty() && mains.iter().any(|m| m == *p))
            .map(|p| p.to_string())
            .or_else(|| mains.first().cloned());
        match chosen {
            Some(name) => {
                if mains.len() > 1 {
                    note(
                        &mut reason,
                        format!(
                            "main package ./cmd/{name} (of {}); override build to pick another",
                            mains.join(", ")
                        ),
                    );
                } else {
                    note(&mut reason, format!("main package ./cmd/{name}"));
                }
                format!("./cmd/{name}")
            }
            None => {
                note(
                    &mut reason,
                    "no main package found at the root or under cmd/",
                );
                ".".to_string()
            }
        }
    };
    plan.build = Some(format!(
        "CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/app {target}"
    ));
    plan.start = Some("./app".to_string());
    plan.port = Some(PORT);
    plan.env.insert("PORT".to_string(), PORT.to_string());
    plan.reason = reason;
    Ok(Some(plan))
}

/// Whether directory `dir` ("" for the root) holds a `package main` file.
fn has_main_package(repo: &Repo, dir: &str) -> bool {
    repo.list(dir)
        .into_iter()
        .filter(|e| !e.is_dir && e.name.ends_with(".go") && !e.name.ends_with("_test.go"))
        .take(MAX_GO_FILES)
        .any(|e| {
            let path = if dir.is_empty() {
                e.name
            } else {
                format!("{dir}/{}", e.name)
            };
            repo.read_hint(&path).is_some_and(|text| {
                text.lines().any(|line| {
                    let line = line.trim();
                    line == "package main"
                        || line.starts_with("package main ")
                        || line.starts_with("package main//")
                })
            })
        })
}
