//! Rust: `Cargo.toml`; the binary from `default-run`, `[[bin]]` or the
//! package name, the toolchain from `rust-toolchain(.toml)`, a release
//! build run on a slim Debian image.

use super::go::RUNTIME_IMAGE;
use super::repo::{version_parts, Repo, Toml};
use super::{note, BuildPlan, DetectError, Stack};

/// The port Rust web apps are commonly set to listen on.
const PORT: u16 = 8080;

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let Some(text) = repo.read("Cargo.toml")? else {
        return Ok(None);
    };
    let toml = Toml::parse(&text);
    let mut reason = String::from("Cargo.toml");
    let locked = repo.is_file("Cargo.lock");
    let lock_flag = if locked { " --locked" } else { "" };
    if locked {
        reason.push_str(" with Cargo.lock");
    }

    let (image, toolchain_note) = toolchain_image(repo);
    if let Some(n) = toolchain_note {
        note(&mut reason, n);
    }
    let mut plan = BuildPlan::new(Stack::Rust, image);
    plan.runtime_image = Some(RUNTIME_IMAGE.to_string());

    let workspace = toml.has("workspace");
    let path_dependencies = toml.all().any(|t| {
        let deps =
            t.name.contains("dependencies") || t.name.starts_with("patch") || t.name == "replace";
        deps && t
            .entries()
            .any(|(k, v)| k == "path" || (v.starts_with('{') && v.contains("path")))
    });
    if workspace || path_dependencies {
        note(
            &mut reason,
            if workspace {
                "workspace: dependencies fetched with the whole source"
            } else {
                "path dependencies: fetched with the whole source"
            },
        );
        plan.install = Some(format!("cargo fetch{lock_flag}"));
    } else {
        plan.manifests = repo.existing(&["Cargo.toml", "Cargo.lock", ".cargo/"]);
        // cargo needs a target to read the manifest; the stub goes before
        // the source is copied.
        plan.install = Some(format!(
            "mkdir -p src && touch src/main.rs && cargo fetch{lock_flag} && rm -rf src"
        ));
    }

    let Some(package) = toml.table("package") else {
        note(
            &mut reason,
            "virtual workspace: set build to copy the binary to /out, and start",
        );
        plan.build = Some(format!("cargo build --release{lock_flag}"));
        plan.port = Some(PORT);
        plan.reason = reason;
        return Ok(Some(plan));
    };
    let package_name = package.get("name").unwrap_or_default().to_string();
    let mut bins: Vec<String> = toml
        .tables("bin")
        .filter_map(|t| t.get("name"))
        .map(str::to_string)
        .collect();
    let autobins = package.get("autobins") != Some("false");
    if autobins {
        if repo.is_file("src/main.rs") && !package_name.is_empty() {
            bins.push(package_name.clone());
        }
        for entry in repo.list("src/bin") {
            let name = if entry.is_dir {
                repo.is_file(&format!("src/bin/{}/main.rs", entry.name))
                    .then_some(entry.name)
            } else {
                entry.name.strip_suffix(".rs").map(str::to_string)
            };
            bins.extend(name);
        }
    }
    let mut seen = Vec::new();
    bins.retain(|b| {
        let valid = !b.is_empty()
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let new = !seen.contains(b);
        seen.push(b.clone());
        valid && new
    });
    let default_run = package.get("default-run").map(str::to_string);
    let chosen = default_run
        .filter(|d| bins.contains(d))
        .or_else(|| bins.iter().find(|b| **b == package_name).cloned())
        .or_else(|| bins.first().cloned());
    match chosen {
        Some(bin) => {
            if bins.len() > 1 {
                note(
                    &mut reason,
                    format!(
                        "binary {bin} (of {}); override build and start to pick another",
                        bins.join(", ")
                    ),
                );
            } else {
                note(&mut reason, format!("binary {bin}"));
            }
            plan.build = Some(format!(
                "cargo build --release{lock_flag} --bin {bin} && cp target/release/{bin} /out/"
            ));
            plan.start = Some(format!("./{bin}"));
        }
        None => {
            note(&mut reason, "no binary target found: set build and start");
            plan.build = Some(format!("cargo build --release{lock_flag}"));
        }
    }
    plan.port = Some(PORT);
    plan.env.insert("PORT".to_string(), PORT.to_string());
    plan.reason = reason;
    Ok(Some(plan))
}

/// The build image for the toolchain the repository pins, and a note.
fn toolchain_image(repo: &Repo) -> (String, Option<String>) {
    const DEFAULT: &str = "rust:1-bookworm";
    let (file, channel) = if let Some(text) = repo.read_hint("rust-toolchain.toml") {
        (
            "rust-toolchain.toml",
            Toml::parse(&text)
                .get("toolchain", "channel")
                .map(str::to_string),
        )
    } else if let Some(text) = repo.read_hint("rust-toolchain") {
        let toml = Toml::parse(&text);
        let channel = toml
            .get("toolchain", "channel")
            .map(str::to_string)
            .or_else(|| {
                text.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
            });
        ("rust-toolchain", channel)
    } else {
        return (DEFAULT.to_string(), None);
    };
    let Some(channel) = channel else {
        return (DEFAULT.to_string(), None);
    };
    let numeric = channel.chars().all(|c| c.is_ascii_digit() || c == '.')
        && version_parts(&channel).is_some_and(|v| v.len() >= 2);
    if numeric {
        (
            format!("rust:{channel}-bookworm"),
            Some(format!("Rust {channel} from {file}")),
        )
    } else {
        (
            DEFAULT.to_string(),
            Some(format!(
                "toolchain {channel} from {file} (rustup installs it)"
            )),
        )
    }
}
