//! Renders a [`BuildPlan`] as a Dockerfile. Only syntax the classic
//! builder understands (no heredocs, no `RUN --mount`), since berth builds
//! without BuildKit unless the app has build secrets.

use super::{BuildPlan, Stack};

/// The user created in images that have no non-root user of their own.
const APP_USER: &str = "app";
/// Creates [`APP_USER`] on Debian and Ubuntu images.
const USERADD: &str =
    "useradd --create-home --user-group --uid 10001 --shell /usr/sbin/nologin app";
/// Creates [`APP_USER`] on Alpine images.
const ADDUSER: &str = "addgroup -S app && adduser -S -G app -u 10001 app";
/// Where the build stage of a multi-stage build works.
const BUILD_DIR: &str = "/src";
/// Where nginx serves files from.
const NGINX_ROOT: &str = "/usr/share/nginx/html";
/// Commands longer than this are split at their top-level ` && `.
const WRAP_AT: usize = 80;

/// Who owns the app's files and runs it, by image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum User {
    /// The image has this non-root user: install, build and run as it.
    Existing(&'static str),
    /// The image has none: create [`APP_USER`] with this command; install
    /// as root, then build and run as [`APP_USER`].
    Create(&'static str),
    /// The server starts as root and drops to this user, which owns the
    /// app's files (the PHP Apache image).
    Owner(&'static str),
    /// Stay root: the server drops privileges itself (nginx), or the image
    /// is unknown.
    Root,
}

/// The user setup for `image`, from its repository name (so mirrors such
/// as `registry.example.com/library/node:22` count too) and tag.
fn user_for(image: &str) -> User {
    let last = image.rsplit('/').next().unwrap_or(image);
    let (name, tag) = last.split_once(':').unwrap_or((last, ""));
    let name = name.split('@').next().unwrap_or(name);
    match name {
        "node" => User::Existing("node"),
        "bun" => User::Existing("bun"),
        "php" => User::Owner("www-data"),
        "nginx" | "httpd" | "caddy" => User::Root,
        _ if tag.contains("alpine") => User::Create(ADDUSER),
        "python" | "ruby" | "debian" | "ubuntu" | "eclipse-temurin" | "golang" | "rust"
        | "maven" | "gradle" => User::Create(USERADD),
        _ => User::Root,
    }
}

/// The Dockerfile of `plan`.
pub(super) fn render(plan: &BuildPlan) -> String {
    let mut out = Vec::new();
    out.push(format!(
        "# Written by berth for build type \"auto\" (stack: {}).",
        plan.stack
    ));
    out.push(format!("# Detected: {}", one_line(&plan.reason)));
    out.push(
        "# Change base_image, install, build or start in the app's build plan, or use build type \"dockerfile\"."
            .to_string(),
    );
    match &plan.runtime_image {
        Some(runtime) => multi_stage(plan, runtime, &mut out),
        None => single_stage(plan, &mut out),
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

fn single_stage(plan: &BuildPlan, out: &mut Vec<String>) {
    let user = user_for(&plan.base_image);
    let static_site = plan.stack == Stack::Static;
    let workdir = match plan.stack {
        Stack::Static => NGINX_ROOT,
        Stack::Php => "/var/www/html",
        _ => "/app",
    };
    out.push(format!("FROM {}", plan.base_image));
    out.push(format!("WORKDIR {workdir}"));
    if let Some(setup) = &plan.setup {
        out.push(run(setup));
    }
    if uses_composer(plan) {
        out.push("COPY --from=composer:2 /usr/bin/composer /usr/local/bin/composer".to_string());
    }
    let owner = match user {
        User::Existing(u) => {
            out.push(run(&format!("chown {u}:{u} {workdir}")));
            out.push(format!("USER {u}"));
            Some(u)
        }
        User::Create(create) => {
            out.push(run(&format!(
                "{create} && chown {APP_USER}:{APP_USER} {workdir}"
            )));
            Some(APP_USER)
        }
        User::Owner(u) => Some(u),
        User::Root => None,
    };
    let chown = owner.map_or(String::new(), |u| format!("--chown={u}:{u} "));
    let early_install = plan.install.is_some() && !plan.manifests.is_empty();
    if let (true, Some(install)) = (early_install, &plan.install) {
        copy_manifests(&plan.manifests, &chown, out);
        out.push(run(install));
    }
    if static_site {
        let dir = plan.publish_dir.as_deref().unwrap_or(".");
        let source = if dir == "." {
            ".".to_string()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        out.push(format!("COPY {chown}{source} ./"));
    } else {
        out.push(format!("COPY {chown}. ./"));
    }
    if let (false, Some(install)) = (early_install, &plan.install) {
        out.push(run(install));
    }
    env_lines(plan, out);
    if let User::Create(_) = user {
        out.push(format!("USER {APP_USER}"));
    }
    if let Some(build) = &plan.build {
        out.push(run(build));
    }
    tail(plan, out);
}

fn multi_stage(plan: &BuildPlan, runtime: &str, out: &mut Vec<String>) {
    let static_output = plan.publish_dir.as_deref();
    out.push(format!("FROM {} AS build", plan.base_image));
    out.push(format!("WORKDIR {BUILD_DIR}"));
    if let Some(setup) = &plan.setup {
        out.push(run(setup));
    }
    if static_output.is_none() {
        out.push(run("mkdir -p /out"));
    }
    let early_install = plan.install.is_some() && !plan.manifests.is_empty();
    if let (true, Some(install)) = (early_install, &plan.install) {
        copy_manifests(&plan.manifests, "", out);
        out.push(run(install));
    }
    out.push("COPY . ./".to_string());
    if let (false, Some(install)) = (early_install, &plan.install) {
        out.push(run(install));
    }
    if let Some(build) = &plan.build {
        out.push(run(build));
    }

    out.push(String::new());
    out.push(format!("FROM {runtime}"));
    if let Some(dir) = static_output {
        let dir = dir.trim_matches('/');
        out.push(format!(
            "COPY --from=build {BUILD_DIR}/{dir}/ {NGINX_ROOT}/"
        ));
        env_lines(plan, out);
        tail(plan, out);
        return;
    }
    match plan.stack {
        Stack::Go => out.push(
            "COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt"
                .to_string(),
        ),
        Stack::Rust => out.push(run(&super::apt_install(&["ca-certificates", "libssl3"]))),
        _ => {}
    }
    out.push("WORKDIR /app".to_string());
    let user = match user_for(runtime) {
        User::Existing(u) => Some(u),
        User::Create(create) => {
            out.push(run(&format!(
                "{create} && chown {APP_USER}:{APP_USER} /app"
            )));
            Some(APP_USER)
        }
        User::Owner(_) | User::Root => None,
    };
    out.push("COPY --from=build /out/ ./".to_string());
    env_lines(plan, out);
    if let Some(u) = user {
        out.push(format!("USER {u}"));
    }
    tail(plan, out);
}

/// Whether the plan installs with composer, whose binary the PHP image lacks.
fn uses_composer(plan: &BuildPlan) -> bool {
    plan.manifests.iter().any(|m| m == "composer.json")
        || [&plan.install, &plan.build]
            .iter()
            .any(|c| c.as_deref().is_some_and(|c| c.contains("composer ")))
}

/// `COPY` lines for the manifests: root files together, files in
/// sub-directories and whole directories (`name/`) each on their own.
fn copy_manifests(manifests: &[String], chown: &str, out: &mut Vec<String>) {
    let (root, nested): (Vec<&String>, Vec<&String>) =
        manifests.iter().partition(|m| !m.contains('/'));
    if !root.is_empty() {
        let files: Vec<&str> = root.iter().map(|s| s.as_str()).collect();
        out.push(format!("COPY {chown}{} ./", files.join(" ")));
    }
    for path in nested {
        let dest = if path.ends_with('/') {
            path.to_string()
        } else {
            match path.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => "./".to_string(),
            }
        };
        out.push(format!("COPY {chown}{path} {dest}"));
    }
}

/// One `ENV` line per variable, in name order.
fn env_lines(plan: &BuildPlan, out: &mut Vec<String>) {
    for (key, value) in &plan.env {
        let key: String = key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if key.is_empty() {
            continue;
        }
        let plain = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=$+,@%".contains(c));
        if plain {
            out.push(format!("ENV {key}={value}"));
        } else {
            let escaped = one_line(value).replace('\\', "\\\\").replace('"', "\\\"");
            out.push(format!("ENV {key}=\"{escaped}\""));
        }
    }
}

/// `EXPOSE` and `CMD`.
fn tail(plan: &BuildPlan, out: &mut Vec<String>) {
    if let Some(port) = plan.port {
        out.push(format!("EXPOSE {port}"));
    }
    if let Some(start) = &plan.start {
        out.push(instruction("CMD", start));
    }
}

/// A `RUN` line.
fn run(command: &str) -> String {
    instruction("RUN", command)
}

/// `RUN` or `CMD` in shell form; a command of several lines goes through
/// `/bin/sh -c` in exec form instead, so its lines stay one script.
fn instruction(name: &str, command: &str) -> String {
    let command = command.trim();
    if command.contains(['\n', '\r']) {
        let script = serde_json::Value::String(command.replace("\r\n", "\n")).to_string();
        return format!("{name} [\"/bin/sh\", \"-c\", {script}]");
    }
    let parts = split_and(command);
    if command.len() <= WRAP_AT || parts.len() < 2 {
        return format!("{name} {command}");
    }
    format!("{name} {}", parts.join(" \\\n    && "))
}

/// `command` split at each ` && ` that is outside quotes.
fn split_and(command: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut chars = command.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if command[i..].starts_with(" && ") => {
                parts.push(command[start..i].trim());
                start = i + 4;
                chars.nth(2);
            }
            None => {}
        }
    }
    parts.push(command[start..].trim());
    parts
}

/// `text` on one line (for comments and `ENV` values).
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
