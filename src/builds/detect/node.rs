//! Node: `package.json`; the package manager from the lockfile, the Node
//! version from `.nvmrc`, `.node-version`, `engines.node` or
//! `.tool-versions`, scripts for build and start, and front-end builds
//! with static output served by nginx.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::repo::{
    choose_version, tool_version, version_file, version_parts, Precision, Repo, Ver,
};
use super::{note, BuildPlan, DetectError, Stack};

/// The port Node apps usually listen on.
pub(super) const PORT: u16 = 3000;
/// Node major version when the repository names none (the LTS line).
const DEFAULT_NODE: Ver = Ver::new(22, 0);
/// Image that serves static build output.
pub(super) const NGINX_IMAGE: &str = "nginx:stable-alpine";
/// Start command of the nginx image.
pub(super) const NGINX_START: &str = "nginx -g 'daemon off;'";

/// A Node plan and whether the app serves itself (a start script, `main`
/// or a server file), as opposed to only building front-end assets.
pub(super) struct NodeFound {
    pub plan: BuildPlan,
    pub serves_itself: bool,
}

/// The runtime environment of a Node app.
pub(super) fn env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("NODE_ENV".to_string(), "production".to_string()),
        ("PORT".to_string(), PORT.to_string()),
    ])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pnpm,
    Yarn { berry: bool },
    Bun,
}

impl Manager {
    fn name(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Yarn { .. } => "yarn",
            Manager::Bun => "bun",
        }
    }

    fn install(self, locked: bool) -> &'static str {
        match (self, locked) {
            (Manager::Npm, true) => "npm ci",
            (Manager::Npm, false) => "npm install",
            (Manager::Pnpm, true) => "pnpm install --frozen-lockfile",
            (Manager::Pnpm, false) => "pnpm install",
            (Manager::Yarn { berry: true }, true) => "yarn install --immutable",
            (Manager::Yarn { berry: false }, true) => "yarn install --frozen-lockfile",
            (Manager::Yarn { .. }, false) => "yarn install",
            (Manager::Bun, true) => "bun install --frozen-lockfile",
            (Manager::Bun, false) => "bun install",
        }
    }

    fn run(self, script: &str) -> String {
        format!("{} run {script}", self.name())
    }

    fn start(self) -> &'static str {
        match self {
            Manager::Npm => "npm start",
            Manager::Pnpm => "pnpm start",
            Manager::Yarn { .. } => "yarn start",
            Manager::Bun => "bun run start",
        }
    }
}

/// Front-end tools whose build is a directory of static files, with that
/// directory, checked in this order.
const STATIC_BUILDS: &[(&str, &str)] = &[
    ("@sveltejs/adapter-static", "build"),
    ("astro", "dist"),
    ("gatsby", "public"),
    ("react-scripts", "build"),
    ("@vue/cli-service", "dist"),
    ("vite", "dist"),
];

/// Packages that make a front-end build a server rather than static files.
const SERVER_FRAMEWORKS: &[&str] = &[
    "@astrojs/node",
    "@remix-run/node",
    "@remix-run/serve",
    "@react-router/serve",
    "@sveltejs/adapter-node",
    "nuxt",
    "@solidjs/start",
    "@tanstack/react-start",
    "express",
    "fastify",
    "koa",
    "hono",
];

pub(super) fn detect(repo: &Repo) -> Result<Option<NodeFound>, DetectError> {
    let Some(text) = repo.read("package.json")? else {
        return Ok(None);
    };
    let pkg: Value = serde_json::from_str(&text).map_err(|e| DetectError::Invalid {
        path: PathBuf::from("package.json"),
        reason: e.to_string(),
    })?;
    let script = |name: &str| {
        pkg.get("scripts")
            .and_then(|s| s.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let deps: BTreeSet<&str> = ["dependencies", "devDependencies"]
        .iter()
        .filter_map(|k| pkg.get(k).and_then(Value::as_object))
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    let declared = pkg
        .get("packageManager")
        .and_then(Value::as_str)
        .unwrap_or("");

    let lockfile = repo.first_file(&[
        "pnpm-lock.yaml",
        "yarn.lock",
        "bun.lockb",
        "bun.lock",
        "package-lock.json",
        "npm-shrinkwrap.json",
    ]);
    let berry = repo.is_file(".yarnrc.yml")
        || declared
            .strip_prefix("yarn@")
            .and_then(version_parts)
            .is_some_and(|v| v[0] >= 2);
    let manager = match lockfile {
        Some("pnpm-lock.yaml") => Manager::Pnpm,
        Some("yarn.lock") => Manager::Yarn { berry },
        Some("bun.lockb" | "bun.lock") => Manager::Bun,
        Some(_) => Manager::Npm,
        None if declared.starts_with("pnpm@") => Manager::Pnpm,
        None if declared.starts_with("yarn@") => Manager::Yarn { berry },
        None if declared.starts_with("bun@") => Manager::Bun,
        None => Manager::Npm,
    };

    let mut reason = match lockfile {
        Some(lock) => format!("package.json with {lock} ({})", manager.name()),
        None => format!("package.json without a lockfile ({})", manager.name()),
    };

    let (base_image, node_major) = if manager == Manager::Bun {
        ("oven/bun:1".to_string(), DEFAULT_NODE.major)
    } else {
        let (major, from) = node_version(repo, &pkg);
        if let Some(from) = from {
            note(&mut reason, format!("Node {major} from {from}"));
        }
        (format!("node:{major}-bookworm-slim"), major)
    };
    let mut plan = BuildPlan::new(Stack::Node, base_image);

    plan.setup = match manager {
        Manager::Pnpm | Manager::Yarn { .. } if node_major >= 25 => {
            // Node 25 no longer ships corepack.
            Some("npm install -g corepack && corepack enable".to_string())
        }
        Manager::Pnpm | Manager::Yarn { .. } => Some("corepack enable".to_string()),
        _ => None,
    };
    plan.install = Some(manager.install(lockfile.is_some()).to_string());

    // The install needs more than the manifests when workspaces, install
    // scripts or patches take part.
    let workspaces = pkg.get("workspaces").is_some() || repo.is_file("pnpm-workspace.yaml");
    let install_scripts = ["preinstall", "install", "postinstall"]
        .iter()
        .any(|s| script(s).is_some())
        || script("prepare").is_some_and(|s| !s.trim_start().starts_with("husky"));
    let patches = repo.is_dir("patches")
        || pkg
            .get("pnpm")
            .and_then(|p| p.get("patchedDependencies"))
            .is_some();
    if workspaces || install_scripts || patches {
        note(
            &mut reason,
            if workspaces {
                "workspaces: installed with the whole source"
            } else if install_scripts {
                "install scripts: installed with the whole source"
            } else {
                "patched dependencies: installed with the whole source"
            },
        );
    } else {
        let mut manifests = vec!["package.json".to_string()];
        manifests.extend(lockfile.map(str::to_string));
        manifests.extend(repo.existing(&[".npmrc", ".yarnrc", ".yarnrc.yml", ".yarn/"]));
        plan.manifests = manifests;
    }

    if script("build").is_some() {
        plan.build = Some(manager.run("build"));
        note(&mut reason, "build script");
    }

    let runner = if manager == Manager::Bun {
        "bun"
    } else {
        "node"
    };
    let main = pkg
        .get("main")
        .and_then(Value::as_str)
        .map(|m| m.trim().trim_start_matches("./"))
        .filter(|m| !m.is_empty() && !m.contains(char::is_whitespace))
        .filter(|m| {
            // `npm init` writes `"main": "index.js"` whether or not it
            // exists; a missing main counts only as the output of a build.
            let built = ["dist/", "build/", "lib/", "out/"]
                .iter()
                .any(|d| m.starts_with(d));
            repo.is_file(m) || (built && plan.build.is_some())
        });
    let mut serves_itself = true;
    if script("start").is_some() {
        plan.start = Some(manager.start().to_string());
        note(&mut reason, "start script");
    } else if let Some(main) = main {
        plan.start = Some(format!("{runner} {main}"));
        note(&mut reason, format!("no start script: runs main ({main})"));
    } else if let Some(file) = server_file(repo, manager) {
        plan.start = Some(format!("{runner} {file}"));
        note(&mut reason, format!("no start script: runs {file}"));
    } else if let Some((tool, dir)) = static_output(repo, &deps, plan.build.is_some()) {
        serves_itself = false;
        plan.runtime_image = Some(NGINX_IMAGE.to_string());
        plan.publish_dir = Some(dir.to_string());
        plan.start = Some(NGINX_START.to_string());
        plan.port = Some(80);
        note(
            &mut reason,
            format!("{tool} builds static files to {dir}/, served by nginx"),
        );
        plan.reason = reason;
        return Ok(Some(NodeFound {
            plan,
            serves_itself,
        }));
    } else {
        serves_itself = false;
        note(
            &mut reason,
            "no start script, main or server file: set the start command",
        );
    }
    plan.port = Some(PORT);
    plan.env = env();
    plan.reason = reason;
    Ok(Some(NodeFound {
        plan,
        serves_itself,
    }))
}

/// The Node major version and where it came from.
fn node_version(repo: &Repo, pkg: &Value) -> (u32, Option<String>) {
    let candidates = [
        (".nvmrc", version_file(repo, ".nvmrc")),
        (".node-version", version_file(repo, ".node-version")),
        (
            "engines.node",
            pkg.get("engines")
                .and_then(|e| e.get("node"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        (".tool-versions", tool_version(repo, "nodejs")),
    ];
    for (from, value) in candidates {
        let Some(value) = value else { continue };
        if let Some(major) = lts_codename(&value) {
            return (major, Some(from.to_string()));
        }
        if let Some(v) = choose_version(&value, DEFAULT_NODE, Precision::Major) {
            return (v.major, Some(from.to_string()));
        }
    }
    (DEFAULT_NODE.major, None)
}

/// The major version of an `lts/<codename>` alias of `.nvmrc`.
fn lts_codename(value: &str) -> Option<u32> {
    let name = value.trim().strip_prefix("lts/")?.to_ascii_lowercase();
    Some(match name.as_str() {
        "hydrogen" => 18,
        "iron" => 20,
        "jod" => 22,
        "krypton" => 24,
        _ => return None,
    })
}

/// The first conventional server entry file at the root.
fn server_file(repo: &Repo, manager: Manager) -> Option<&'static str> {
    let js: &[&str] = &[
        "server.js",
        "index.js",
        "app.js",
        "main.js",
        "server.mjs",
        "index.mjs",
    ];
    let ts: &[&str] = &["server.ts", "index.ts"];
    repo.first_file(js).or_else(|| {
        if manager == Manager::Bun {
            repo.first_file(ts)
        } else {
            None
        }
    })
}

/// A front-end tool that builds static files, and their directory.
fn static_output(
    repo: &Repo,
    deps: &BTreeSet<&str>,
    has_build: bool,
) -> Option<(&'static str, &'static str)> {
    if !has_build || SERVER_FRAMEWORKS.iter().any(|d| deps.contains(d)) {
        return None;
    }
    if deps.contains("next") {
        let exported = ["next.config.js", "next.config.mjs", "next.config.ts"]
            .iter()
            .filter_map(|f| repo.read_hint(f))
            .any(|t| t.contains("output: 'export'") || t.contains("output: \"export\""));
        return exported.then_some(("next (output: 'export')", "out"));
    }
    if deps.contains("astro") {
        let server = ["astro.config.mjs", "astro.config.ts", "astro.config.js"]
            .iter()
            .filter_map(|f| repo.read_hint(f))
            .any(|t| t.contains("output: 'server'") || t.contains("output: \"server\""));
        if server {
            return None;
        }
    }
    STATIC_BUILDS
        .iter()
        .find(|(tool, _)| deps.contains(tool))
        .copied()
}
