//! Sample repositories for each stack, written to temporary directories.

use std::fs;
use std::path::Path;

use super::repo::{choose_version, Precision, Toml, Ver};
use super::*;

/// A repository with `files` (a path ending in `/` makes a directory).
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), files);
    dir
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let full = root.join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&full).expect("mkdir");
            continue;
        }
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&full, text).expect("write");
    }
}

fn plan(files: &[(&str, &str)]) -> BuildPlan {
    let dir = repo(files);
    detect(dir.path()).expect("a plan")
}

/// Asserts that the Dockerfile has each of `lines`, in this order.
#[track_caller]
fn assert_lines(dockerfile: &str, lines: &[&str]) {
    let all: Vec<&str> = dockerfile.lines().collect();
    let mut from = 0;
    for line in lines {
        match all[from..].iter().position(|l| l == line) {
            Some(at) => from += at + 1,
            None => panic!("missing (or out of order) line {line:?} in:\n{dockerfile}"),
        }
    }
}

#[track_caller]
fn assert_no_line(dockerfile: &str, prefix: &str) {
    assert!(
        !dockerfile.lines().any(|l| l.starts_with(prefix)),
        "unexpected line starting {prefix:?} in:\n{dockerfile}"
    );
}

// ---------------------------------------------------------------- Node

#[test]
fn node_npm_with_lockfile_build_and_start() {
    let p = plan(&[
        (
            "package.json",
            r#"{"name":"web","scripts":{"build":"tsc","start":"node dist/server.js"},"dependencies":{"express":"^4"}}"#,
        ),
        ("package-lock.json", "{}"),
        (".nvmrc", "v20.11.0\n"),
    ]);
    assert_eq!(p.stack, Stack::Node);
    assert_eq!(p.base_image, "node:20-bookworm-slim");
    assert_eq!(p.runtime_image, None);
    assert_eq!(p.setup, None);
    assert_eq!(p.manifests, ["package.json", "package-lock.json"]);
    assert_eq!(p.install.as_deref(), Some("npm ci"));
    assert_eq!(p.build.as_deref(), Some("npm run build"));
    assert_eq!(p.start.as_deref(), Some("npm start"));
    assert_eq!(p.port, Some(3000));
    assert_eq!(
        p.env.get("NODE_ENV").map(String::as_str),
        Some("production")
    );
    assert!(p.reason.contains("package-lock.json (npm)"), "{}", p.reason);
    assert!(p.reason.contains("Node 20 from .nvmrc"), "{}", p.reason);
    let d = p.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM node:20-bookworm-slim",
            "WORKDIR /app",
            "RUN chown node:node /app",
            "USER node",
            "COPY --chown=node:node package.json package-lock.json ./",
            "RUN npm ci",
            "COPY --chown=node:node . ./",
            "ENV NODE_ENV=production",
            "ENV PORT=3000",
            "RUN npm run build",
            "EXPOSE 3000",
            "CMD npm start",
        ],
    );
}

#[test]
fn node_pnpm_from_lockfile_and_engines_range() {
    let p = plan(&[
        (
            "package.json",
            r#"{"scripts":{"start":"node index.js"},"engines":{"node":">=18"}}"#,
        ),
        ("pnpm-lock.yaml", "lockfileVersion: '9.0'\n"),
        (".npmrc", "auto-install-peers=true\n"),
    ]);
    assert_eq!(p.stack, Stack::Node);
    // >=18 allows the default LTS.
    assert_eq!(p.base_image, "node:22-bookworm-slim");
    assert_eq!(p.setup.as_deref(), Some("corepack enable"));
    assert_eq!(p.install.as_deref(), Some("pnpm install --frozen-lockfile"));
    assert_eq!(p.build, None);
    assert_eq!(p.start.as_deref(), Some("pnpm start"));
    assert_eq!(p.manifests, ["package.json", "pnpm-lock.yaml", ".npmrc"]);
    assert!(
        p.reason
            .starts_with("package.json with pnpm-lock.yaml (pnpm)"),
        "{}",
        p.reason
    );
    let d = p.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM node:22-bookworm-slim",
            "RUN corepack enable",
            "USER node",
            "COPY --chown=node:node package.json pnpm-lock.yaml .npmrc ./",
            "RUN pnpm install --frozen-lockfile",
            "CMD pnpm start",
        ],
    );
    assert_no_line(&d, "RUN pnpm run build");
}

#[test]
fn node_yarn_berry_and_bun() {
    let yarn = plan(&[
        (
            "package.json",
            r#"{"scripts":{"start":"node a.js","build":"x"}}"#,
        ),
        ("yarn.lock", ""),
        (".yarnrc.yml", "nodeLinker: node-modules\n"),
    ]);
    assert_eq!(yarn.install.as_deref(), Some("yarn install --immutable"));
    assert_eq!(yarn.build.as_deref(), Some("yarn run build"));
    assert_eq!(yarn.start.as_deref(), Some("yarn start"));

    let classic = plan(&[
        ("package.json", r#"{"scripts":{"start":"node a.js"}}"#),
        ("yarn.lock", ""),
    ]);
    assert_eq!(
        classic.install.as_deref(),
        Some("yarn install --frozen-lockfile")
    );

    let bun = plan(&[
        (
            "package.json",
            r#"{"scripts":{"start":"bun run server.ts"}}"#,
        ),
        ("bun.lockb", "\0"),
    ]);
    assert_eq!(bun.base_image, "oven/bun:1");
    assert_eq!(
        bun.install.as_deref(),
        Some("bun install --frozen-lockfile")
    );
    assert_eq!(bun.start.as_deref(), Some("bun run start"));
    assert_lines(
        &bun.dockerfile(),
        &["FROM oven/bun:1", "USER bun", "CMD bun run start"],
    );
}

#[test]
fn node_without_start_script_runs_main_or_server_file() {
    let main = plan(&[
        ("package.json", r#"{"main":"lib/app.js"}"#),
        ("lib/app.js", ""),
    ]);
    assert_eq!(main.start.as_deref(), Some("node lib/app.js"));
    assert_eq!(main.install.as_deref(), Some("npm install"));

    let server = plan(&[("package.json", "{}"), ("server.js", "")]);
    assert_eq!(server.start.as_deref(), Some("node server.js"));

    let nothing = plan(&[("package.json", "{}")]);
    assert_eq!(nothing.start, None);
    assert!(
        nothing.reason.contains("set the start command"),
        "{}",
        nothing.reason
    );
    assert_no_line(&nothing.dockerfile(), "CMD");
}

#[test]
fn node_vite_app_builds_static_files_served_by_nginx() {
    let p = plan(&[
        (
            "package.json",
            r#"{"scripts":{"dev":"vite","build":"vite build"},"devDependencies":{"vite":"^5"}}"#,
        ),
        ("package-lock.json", "{}"),
        ("index.html", "<!doctype html>"),
    ]);
    assert_eq!(p.stack, Stack::Node);
    assert_eq!(p.publish_dir.as_deref(), Some("dist"));
    assert_eq!(p.runtime_image.as_deref(), Some("nginx:stable-alpine"));
    assert_eq!(p.build.as_deref(), Some("npm run build"));
    assert_eq!(p.port, Some(80));
    assert!(
        p.reason.contains("vite builds static files to dist/"),
        "{}",
        p.reason
    );
    let d = p.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM node:22-bookworm-slim AS build",
            "WORKDIR /src",
            "COPY package.json package-lock.json ./",
            "RUN npm ci",
            "COPY . ./",
            "RUN npm run build",
            "",
            "FROM nginx:stable-alpine",
            "COPY --from=build /src/dist/ /usr/share/nginx/html/",
            "EXPOSE 80",
            "CMD nginx -g 'daemon off;'",
        ],
    );
    assert_no_line(&d, "USER");

    let cra = plan(&[(
        "package.json",
        r#"{"scripts":{"build":"react-scripts build"},"dependencies":{"react-scripts":"5"}}"#,
    )]);
    assert_eq!(cra.publish_dir.as_deref(), Some("build"));

    // An Astro site with a server adapter is not static.
    let ssr = plan(&[(
        "package.json",
        r#"{"scripts":{"build":"astro build"},"dependencies":{"astro":"4","@astrojs/node":"8"}}"#,
    )]);
    assert_eq!(ssr.publish_dir, None);
}

#[test]
fn node_install_scripts_and_workspaces_install_with_the_whole_source() {
    let p = plan(&[
        (
            "package.json",
            r#"{"scripts":{"postinstall":"prisma generate","start":"node ."}}"#,
        ),
        ("package-lock.json", "{}"),
    ]);
    assert!(p.manifests.is_empty());
    assert!(p.reason.contains("install scripts"), "{}", p.reason);
    assert_lines(
        &p.dockerfile(),
        &["COPY --chown=node:node . ./", "RUN npm ci"],
    );

    let ws = plan(&[
        (
            "package.json",
            r#"{"workspaces":["apps/*"],"scripts":{"start":"x"}}"#,
        ),
        ("package-lock.json", "{}"),
    ]);
    assert!(ws.manifests.is_empty());

    // husky's prepare hook does not need the source.
    let husky = plan(&[
        (
            "package.json",
            r#"{"scripts":{"prepare":"husky","start":"x"}}"#,
        ),
        ("package-lock.json", "{}"),
    ]);
    assert_eq!(husky.manifests, ["package.json", "package-lock.json"]);
}

#[test]
fn package_json_of_another_stacks_front_end_does_not_hide_it() {
    let p = plan(&[
        (
            "package.json",
            r#"{"scripts":{"build":"vite build","dev":"vite"},"devDependencies":{"vite":"^5","laravel-vite-plugin":"^1"}}"#,
        ),
        ("package-lock.json", "{}"),
        (
            "composer.json",
            r#"{"require":{"php":"^8.2","laravel/framework":"^11.0"}}"#,
        ),
        ("composer.lock", "{}"),
        ("public/index.php", "<?php"),
    ]);
    assert_eq!(p.stack, Stack::Php);
    assert!(
        p.reason.contains("package.json's build script is not run"),
        "{}",
        p.reason
    );

    // A Node server next to a requirements.txt stays Node.
    let node = plan(&[
        ("package.json", r#"{"scripts":{"start":"node server.js"}}"#),
        ("requirements.txt", "mkdocs\n"),
    ]);
    assert_eq!(node.stack, Stack::Node);
}

#[test]
fn tooling_package_json_does_not_hide_a_static_site() {
    let p = plan(&[
        (
            "package.json",
            r#"{"main":"index.js","scripts":{"lint":"prettier --check ."},"devDependencies":{"prettier":"3"}}"#,
        ),
        ("index.html", "<h1>hi</h1>"),
    ]);
    assert_eq!(p.stack, Stack::Static);
    assert!(p.reason.contains("its scripts are not run"), "{}", p.reason);
}

#[test]
fn invalid_package_json_is_an_error() {
    let dir = repo(&[("package.json", "{ not json")]);
    let err = detect(dir.path()).expect_err("invalid");
    assert!(matches!(err, DetectError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("package.json is not valid"),
        "{err}"
    );
}

// ---------------------------------------------------------------- Python

#[test]
fn python_django_with_gunicorn() {
    let p = plan(&[
        (
            "requirements.txt",
            "Django==5.0.1\ngunicorn>=21\npsycopg2==2.9.9\n",
        ),
        (
            "manage.py",
            "import os\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")\n",
        ),
        ("mysite/__init__.py", ""),
        (
            "mysite/settings.py",
            "STATIC_ROOT = BASE_DIR / 'staticfiles'\n",
        ),
        ("mysite/wsgi.py", ""),
    ]);
    assert_eq!(p.stack, Stack::Python);
    assert_eq!(p.base_image, "python:3.12-slim");
    assert_eq!(p.manifests, ["requirements.txt"]);
    assert_eq!(
        p.install.as_deref(),
        Some("pip install --no-cache-dir -r requirements.txt")
    );
    assert_eq!(
        p.build.as_deref(),
        Some("python manage.py collectstatic --noinput")
    );
    assert_eq!(
        p.start.as_deref(),
        Some("gunicorn mysite.wsgi --bind 0.0.0.0:8000")
    );
    assert_eq!(p.port, Some(8000));
    assert_eq!(p.env.get("PYTHONUNBUFFERED").map(String::as_str), Some("1"));
    let setup = p.setup.as_deref().unwrap_or_default();
    assert!(
        setup.contains("libpq-dev") && setup.contains("build-essential"),
        "{setup}"
    );
    assert!(p.reason.contains("Django project mysite"), "{}", p.reason);
    let d = p.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM python:3.12-slim",
            "WORKDIR /app",
            "RUN apt-get update \\",
            "RUN useradd --create-home --user-group --uid 10001 --shell /usr/sbin/nologin app \\",
            "    && chown app:app /app",
            "COPY --chown=app:app requirements.txt ./",
            "RUN pip install --no-cache-dir -r requirements.txt",
            "COPY --chown=app:app . ./",
            "ENV PYTHONUNBUFFERED=1",
            "USER app",
            "RUN python manage.py collectstatic --noinput",
            "EXPOSE 8000",
            "CMD gunicorn mysite.wsgi --bind 0.0.0.0:8000",
        ],
    );
}

#[test]
fn python_django_without_gunicorn_uses_runserver() {
    let p = plan(&[
        ("requirements.txt", "django\n"),
        (
            "manage.py",
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n",
        ),
        ("shop/wsgi.py", ""),
    ]);
    assert_eq!(
        p.start.as_deref(),
        Some("python manage.py runserver 0.0.0.0:8000")
    );
    assert_eq!(p.build, None);
    assert_eq!(p.setup, None);
}

#[test]
fn python_fastapi_with_uv() {
    let p = plan(&[
        (
            "pyproject.toml",
            "[project]\nname = \"api\"\nrequires-python = \">=3.11\"\ndependencies = [\n  \"fastapi>=0.110\",\n  \"uvicorn[standard]\",\n]\n",
        ),
        ("uv.lock", "version = 1\n"),
        ("app/__init__.py", ""),
        ("app/main.py", "from fastapi import FastAPI\n\napp = FastAPI(title=\"x\")\n"),
    ]);
    assert_eq!(p.stack, Stack::Python);
    assert_eq!(p.base_image, "python:3.12-slim");
    assert_eq!(p.setup.as_deref(), Some("pip install --no-cache-dir uv"));
    assert_eq!(p.manifests, ["pyproject.toml", "uv.lock"]);
    assert_eq!(
        p.install.as_deref(),
        Some("uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3")
    );
    assert_eq!(
        p.start.as_deref(),
        Some("uvicorn app.main:app --host 0.0.0.0 --port 8000")
    );
    assert_eq!(
        p.env.get("PATH").map(String::as_str),
        Some("/app/.venv/bin:$PATH")
    );
    assert!(p.reason.contains("uv.lock (uv)"), "{}", p.reason);
    assert!(
        p.reason.contains("Python 3.12 from requires-python"),
        "{}",
        p.reason
    );
    assert_lines(
        &p.dockerfile(),
        &[
            "RUN pip install --no-cache-dir uv",
            "COPY --chown=app:app pyproject.toml uv.lock ./",
            "ENV PATH=/app/.venv/bin:$PATH",
            "CMD uvicorn app.main:app --host 0.0.0.0 --port 8000",
        ],
    );
}

#[test]
fn python_fastapi_without_uvicorn_says_so() {
    let p = plan(&[
        ("requirements.txt", "fastapi\n"),
        (
            "main.py",
            "import fastapi\napi: fastapi.FastAPI = fastapi.FastAPI()\n",
        ),
    ]);
    assert_eq!(
        p.start.as_deref(),
        Some("uvicorn main:api --host 0.0.0.0 --port 8000")
    );
    assert!(
        p.reason.contains("uvicorn is not a dependency"),
        "{}",
        p.reason
    );
    let standard = plan(&[
        ("requirements.txt", "fastapi[standard]==0.115\n"),
        ("main.py", "app = FastAPI()\n"),
    ]);
    assert!(
        !standard.reason.contains("uvicorn is not"),
        "{}",
        standard.reason
    );
}

#[test]
fn python_flask_with_poetry_and_python_version_file() {
    let p = plan(&[
        (
            "pyproject.toml",
            "[tool.poetry]\nname = \"site\"\n\n[tool.poetry.dependencies]\npython = \"^3.10\"\nflask = \"^3.0\"\ngunicorn = \"*\"\n",
        ),
        ("poetry.lock", ""),
        (".python-version", "3.11.4\n"),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
    ]);
    assert_eq!(p.base_image, "python:3.11-slim");
    assert_eq!(
        p.setup.as_deref(),
        Some("pip install --no-cache-dir poetry")
    );
    assert_eq!(
        p.install.as_deref(),
        Some("poetry config virtualenvs.create false && poetry install --only main --no-root --no-interaction")
    );
    assert_eq!(
        p.start.as_deref(),
        Some("gunicorn --bind 0.0.0.0:8000 app:app")
    );

    // Flask without gunicorn, app factory, Pipfile.
    let factory = plan(&[
        ("Pipfile", "[packages]\nflask = \"*\"\n\n[requires]\npython_version = \"3.13\"\n"),
        ("Pipfile.lock", "{}"),
        ("app/__init__.py", "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    return app\n"),
    ]);
    assert_eq!(factory.base_image, "python:3.13-slim");
    assert_eq!(
        factory.install.as_deref(),
        Some("pipenv install --deploy --system")
    );
    assert_eq!(
        factory.start.as_deref(),
        Some("flask --app app run --host 0.0.0.0 --port 8000")
    );
}

#[test]
fn python_plain_script_and_local_requirements() {
    let p = plan(&[
        ("requirements.txt", "-e .\nrequests\n"),
        ("main.py", "print(1)\n"),
    ]);
    assert_eq!(p.start.as_deref(), Some("python main.py"));
    assert!(p.manifests.is_empty(), "{:?}", p.manifests);
    assert_lines(
        &p.dockerfile(),
        &[
            "COPY --chown=app:app . ./",
            "RUN pip install --no-cache-dir -r requirements.txt",
        ],
    );

    let included = plan(&[
        ("requirements.txt", "-r requirements/base.txt\n"),
        ("requirements/base.txt", "flask\n"),
    ]);
    assert_eq!(
        included.manifests,
        ["requirements.txt", "requirements/base.txt"]
    );
    assert_lines(
        &included.dockerfile(),
        &[
            "COPY --chown=app:app requirements.txt ./",
            "COPY --chown=app:app requirements/base.txt requirements/",
        ],
    );
}

// ---------------------------------------------------------------- Go

#[test]
fn go_main_package_at_the_root() {
    let p = plan(&[
        (
            "go.mod",
            "module example.com/hello\n\ngo 1.22.3\n\nrequire github.com/x/y v1.0.0\n",
        ),
        ("go.sum", ""),
        (
            "main.go",
            "// Command hello.\npackage main\n\nfunc main() {}\n",
        ),
        ("main_test.go", "package main\n"),
    ]);
    assert_eq!(p.stack, Stack::Go);
    assert_eq!(p.base_image, "golang:1.22");
    assert_eq!(p.runtime_image.as_deref(), Some("debian:bookworm-slim"));
    assert_eq!(p.manifests, ["go.mod", "go.sum"]);
    assert_eq!(p.install.as_deref(), Some("go mod download"));
    assert_eq!(
        p.build.as_deref(),
        Some("CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/app .")
    );
    assert_eq!(p.start.as_deref(), Some("./app"));
    assert_eq!(p.port, Some(8080));
    assert!(
        p.reason.contains("module example.com/hello, go 1.22.3"),
        "{}",
        p.reason
    );
    assert_lines(
        &p.dockerfile(),
        &[
            "FROM golang:1.22 AS build",
            "WORKDIR /src",
            "RUN mkdir -p /out",
            "COPY go.mod go.sum ./",
            "RUN go mod download",
            "COPY . ./",
            "RUN CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/app .",
            "",
            "FROM debian:bookworm-slim",
            "COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            "WORKDIR /app",
            "COPY --from=build /out/ ./",
            "ENV PORT=8080",
            "USER app",
            "EXPOSE 8080",
            "CMD ./app",
        ],
    );
}

#[test]
fn go_main_package_under_cmd() {
    let p = plan(&[
        (
            "go.mod",
            "module github.com/acme/shop\n\ngo 1.21\n\ntoolchain go1.23.4\n",
        ),
        ("shop.go", "package shop\n"),
        ("cmd/worker/main.go", "package main\n"),
        ("cmd/api/main.go", "package main\n"),
        ("cmd/README.md", "docs"),
    ]);
    assert_eq!(p.base_image, "golang:1.23");
    assert_eq!(p.manifests, ["go.mod"]);
    assert_eq!(
        p.build.as_deref(),
        Some("CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/app ./cmd/api")
    );
    assert!(
        p.reason.contains("./cmd/api (of api, worker)"),
        "{}",
        p.reason
    );

    let named = plan(&[
        ("go.mod", "module github.com/acme/shop\n"),
        ("cmd/shop/main.go", "package main\n"),
        ("cmd/api/main.go", "package main\n"),
    ]);
    assert_eq!(named.base_image, "golang:1");
    assert!(named
        .build
        .as_deref()
        .is_some_and(|b| b.ends_with("./cmd/shop")));
}

// ---------------------------------------------------------------- Rust

#[test]
fn rust_crate_with_bin_section_and_toolchain() {
    let p = plan(&[
        (
            "Cargo.toml",
            "[package]\nname = \"svc\" # the service\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"server\"\npath = \"src/server.rs\"\n\n[dependencies]\naxum = { version = \"0.8\", features = [\"macros\"] }\ntokio = { version = \"1\", features = [\n  \"full\",\n] }\n",
        ),
        ("Cargo.lock", "version = 4\n"),
        ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.85.0\"\ncomponents = [\"clippy\"]\n"),
        ("src/server.rs", "fn main() {}\n"),
    ]);
    assert_eq!(p.stack, Stack::Rust);
    assert_eq!(p.base_image, "rust:1.85.0-bookworm");
    assert_eq!(p.runtime_image.as_deref(), Some("debian:bookworm-slim"));
    assert_eq!(p.manifests, ["Cargo.toml", "Cargo.lock"]);
    assert_eq!(
        p.install.as_deref(),
        Some("mkdir -p src && touch src/main.rs && cargo fetch --locked && rm -rf src")
    );
    assert_eq!(
        p.build.as_deref(),
        Some("cargo build --release --locked --bin server && cp target/release/server /out/")
    );
    assert_eq!(p.start.as_deref(), Some("./server"));
    assert!(
        p.reason.contains("Rust 1.85.0 from rust-toolchain.toml"),
        "{}",
        p.reason
    );
    assert_lines(
        &p.dockerfile(),
        &[
            "FROM rust:1.85.0-bookworm AS build",
            "RUN mkdir -p /out",
            "COPY Cargo.toml Cargo.lock ./",
            "RUN mkdir -p src && touch src/main.rs && cargo fetch --locked && rm -rf src",
            "COPY . ./",
            "RUN cargo build --release --locked --bin server && cp target/release/server /out/",
            "",
            "FROM debian:bookworm-slim",
            "RUN apt-get update \\",
            "    && apt-get install -y --no-install-recommends ca-certificates libssl3 \\",
            "COPY --from=build /out/ ./",
            "USER app",
            "CMD ./server",
        ],
    );
}

#[test]
fn rust_binary_from_package_name_and_workspaces() {
    let p = plan(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello-web\"\nversion = \"0.1.0\"\n",
        ),
        ("src/main.rs", "fn main() {}\n"),
        ("rust-toolchain", "stable\n"),
    ]);
    assert_eq!(p.base_image, "rust:1-bookworm");
    assert_eq!(
        p.build.as_deref(),
        Some("cargo build --release --bin hello-web && cp target/release/hello-web /out/")
    );
    assert_eq!(p.start.as_deref(), Some("./hello-web"));

    let ws = plan(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\ndefault-run = \"app\"\n\n[workspace]\nmembers = [\"crates/*\"]\n",
        ),
        ("src/main.rs", ""),
        ("src/bin/tool.rs", ""),
    ]);
    assert!(ws.manifests.is_empty());
    assert_eq!(ws.install.as_deref(), Some("cargo fetch"));
    assert_eq!(ws.start.as_deref(), Some("./app"));
    assert!(
        ws.reason.contains("binary app (of app, tool)"),
        "{}",
        ws.reason
    );

    let local = plan(&[
        (
            "Cargo.toml",
            "[package]\nname = \"a\"\n[dependencies]\nshared = { path = \"../shared\" }\n",
        ),
        ("src/main.rs", ""),
    ]);
    assert!(local.manifests.is_empty());
}

// ---------------------------------------------------------------- Ruby

#[test]
fn ruby_rails() {
    let p = plan(&[
        (
            "Gemfile",
            "source \"https://rubygems.org\"\nruby \"~> 3.2.0\"\ngem \"rails\", \"~> 7.1\"\ngem \"pg\"\ngem \"puma\"\ngem \"sprockets-rails\"\n",
        ),
        ("Gemfile.lock", "GEM\n\nRUBY VERSION\n   ruby 3.2.2p53\n"),
        (".ruby-version", "ruby-3.2.2\n"),
        ("config/application.rb", "module Blog; end\n"),
    ]);
    assert_eq!(p.stack, Stack::Ruby);
    assert_eq!(p.base_image, "ruby:3.2-slim");
    assert_eq!(p.manifests, ["Gemfile", "Gemfile.lock", ".ruby-version"]);
    assert_eq!(
        p.install.as_deref(),
        Some("bundle config set --local without 'development test' && bundle install")
    );
    assert_eq!(
        p.build.as_deref(),
        Some("SECRET_KEY_BASE_DUMMY=1 bundle exec rails assets:precompile")
    );
    assert_eq!(
        p.start.as_deref(),
        Some("bundle exec rails server -b 0.0.0.0")
    );
    assert_eq!(p.port, Some(3000));
    assert_eq!(
        p.env.get("RAILS_ENV").map(String::as_str),
        Some("production")
    );
    assert!(p.setup.as_deref().is_some_and(|s| s.contains("libpq-dev")));
    assert!(p.reason.contains("Rails"), "{}", p.reason);
    assert_lines(
        &p.dockerfile(),
        &[
            "FROM ruby:3.2-slim",
            "COPY --chown=app:app Gemfile Gemfile.lock .ruby-version ./",
            "ENV RAILS_ENV=production",
            "USER app",
            "RUN SECRET_KEY_BASE_DUMMY=1 bundle exec rails assets:precompile",
            "CMD bundle exec rails server -b 0.0.0.0",
        ],
    );
}

#[test]
fn ruby_rack_app() {
    let p = plan(&[
        (
            "Gemfile",
            "source 'https://rubygems.org'\ngem 'sinatra'\ngem 'puma'\n",
        ),
        ("config.ru", "run Sinatra::Application\n"),
    ]);
    assert_eq!(p.base_image, "ruby:3.3-slim");
    assert_eq!(p.start.as_deref(), Some("bundle exec rackup -o 0.0.0.0"));
    assert_eq!(p.build, None);
    assert_eq!(p.port, Some(9292));
}

// ---------------------------------------------------------------- PHP

#[test]
fn php_composer_app_with_extensions_and_public_root() {
    let p = plan(&[
        (
            "composer.json",
            r#"{"require":{"php":"^8.2","ext-intl":"*","ext-mbstring":"*","ext-redis":"*","laravel/framework":"^11.0"}}"#,
        ),
        ("composer.lock", "{}"),
        ("public/index.php", "<?php"),
    ]);
    assert_eq!(p.stack, Stack::Php);
    assert_eq!(p.base_image, "php:8.3-apache");
    assert_eq!(p.manifests, ["composer.json", "composer.lock"]);
    assert_eq!(
        p.install.as_deref(),
        Some(
            "composer install --no-dev --no-interaction --prefer-dist --no-scripts --no-autoloader"
        )
    );
    assert_eq!(
        p.build.as_deref(),
        Some("composer dump-autoload --optimize --no-dev")
    );
    assert_eq!(p.start.as_deref(), Some("apache2-foreground"));
    assert_eq!(p.port, Some(80));
    let setup = p.setup.as_deref().unwrap_or_default();
    assert!(setup.contains("libicu-dev"), "{setup}");
    assert!(setup.contains("docker-php-ext-install intl"), "{setup}");
    assert!(!setup.contains("mbstring"), "{setup}");
    assert!(setup.contains("/var/www/html/public"), "{setup}");
    assert!(p.reason.contains("Laravel"), "{}", p.reason);
    assert!(p.reason.contains("ext-redis"), "{}", p.reason);
    assert!(
        p.reason.contains("PHP 8.3 from composer.json"),
        "{}",
        p.reason
    );
    let d = p.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM php:8.3-apache",
            "WORKDIR /var/www/html",
            "COPY --from=composer:2 /usr/bin/composer /usr/local/bin/composer",
            "COPY --chown=www-data:www-data composer.json composer.lock ./",
            "RUN composer install --no-dev --no-interaction --prefer-dist --no-scripts --no-autoloader",
            "COPY --chown=www-data:www-data . ./",
            "RUN composer dump-autoload --optimize --no-dev",
            "EXPOSE 80",
            "CMD apache2-foreground",
        ],
    );
    assert_no_line(&d, "USER");
}

#[test]
fn php_index_without_composer() {
    let p = plan(&[("index.php", "<?php echo 'hi';")]);
    assert_eq!(p.stack, Stack::Php);
    assert_eq!(p.base_image, "php:8.3-apache");
    assert_eq!(p.install, None);
    assert_eq!(p.setup.as_deref(), Some("a2enmod rewrite"));
    let d = p.dockerfile();
    assert_no_line(&d, "COPY --from=composer");
    assert_lines(
        &d,
        &[
            "COPY --chown=www-data:www-data . ./",
            "CMD apache2-foreground",
        ],
    );

    let old = plan(&[("composer.json", r#"{"require":{"php":">=7.4 <8.0"}}"#)]);
    assert_eq!(old.base_image, "php:7.4-apache");
}

// ---------------------------------------------------------------- Java

#[test]
fn java_maven() {
    let p = plan(&[(
        "pom.xml",
        "<project><parent><artifactId>spring-boot-starter-parent</artifactId></parent>\
         <properties><java.version>17</java.version></properties></project>",
    )]);
    assert_eq!(p.stack, Stack::Java);
    assert_eq!(p.base_image, "maven:3-eclipse-temurin-17");
    assert_eq!(p.runtime_image.as_deref(), Some("eclipse-temurin:17-jre"));
    assert_eq!(p.manifests, ["pom.xml"]);
    assert_eq!(p.install.as_deref(), Some("mvn -B dependency:go-offline"));
    assert_eq!(
        p.build.as_deref(),
        Some("mvn -B -DskipTests package && cp \"$(ls -S target/*.jar | head -n 1)\" /out/app.jar")
    );
    assert_eq!(p.start.as_deref(), Some("java -jar app.jar"));
    assert!(p.reason.contains("Spring Boot"), "{}", p.reason);
    assert_lines(
        &p.dockerfile(),
        &[
            "FROM maven:3-eclipse-temurin-17 AS build",
            "COPY pom.xml ./",
            "RUN mvn -B dependency:go-offline",
            "COPY . ./",
            "FROM eclipse-temurin:17-jre",
            "COPY --from=build /out/ ./",
            "ENV JAVA_TOOL_OPTIONS=-XX:MaxRAMPercentage=75",
            "USER app",
            "EXPOSE 8080",
            "CMD java -jar app.jar",
        ],
    );
}

#[test]
fn java_gradle_with_wrapper() {
    let p = plan(&[
        (
            "build.gradle.kts",
            "plugins { java }\njava {\n    toolchain {\n        languageVersion = JavaLanguageVersion.of(21)\n    }\n}\n",
        ),
        ("settings.gradle.kts", "rootProject.name = \"demo\"\n"),
        ("gradlew", "#!/bin/sh\n"),
        ("gradle/wrapper/gradle-wrapper.properties", "distributionUrl=x\n"),
    ]);
    assert_eq!(p.stack, Stack::Java);
    assert_eq!(p.base_image, "eclipse-temurin:21-jdk");
    assert_eq!(p.runtime_image.as_deref(), Some("eclipse-temurin:21-jre"));
    assert_eq!(
        p.manifests,
        [
            "build.gradle.kts",
            "settings.gradle.kts",
            "gradlew",
            "gradle/"
        ]
    );
    assert_eq!(
        p.install.as_deref(),
        Some("./gradlew --no-daemon dependencies")
    );
    assert!(p
        .build
        .as_deref()
        .is_some_and(|b| b.starts_with("./gradlew --no-daemon build -x test")));
    assert_lines(
        &p.dockerfile(),
        &[
            "FROM eclipse-temurin:21-jdk AS build",
            "COPY build.gradle.kts settings.gradle.kts gradlew ./",
            "COPY gradle/ gradle/",
            "RUN ./gradlew --no-daemon dependencies",
        ],
    );

    // Plain Gradle, Java 8 written the old way, several projects.
    let old = plan(&[
        ("build.gradle", "sourceCompatibility = '1.8'\n"),
        ("settings.gradle", "include 'app', 'lib'\n"),
    ]);
    assert_eq!(old.base_image, "gradle:jdk8");
    assert_eq!(old.runtime_image.as_deref(), Some("eclipse-temurin:8-jre"));
    assert!(old.manifests.is_empty());
    assert_eq!(old.install, None);
}

// ---------------------------------------------------------------- static

#[test]
fn static_site_at_the_root_or_in_public() {
    let root = plan(&[("index.html", "<h1>hi</h1>"), ("style.css", "")]);
    assert_eq!(root.stack, Stack::Static);
    assert_eq!(root.base_image, "nginx:stable-alpine");
    assert_eq!(root.publish_dir.as_deref(), Some("."));
    assert_eq!(root.install, None);
    assert_lines(
        &root.dockerfile(),
        &[
            "FROM nginx:stable-alpine",
            "WORKDIR /usr/share/nginx/html",
            "COPY . ./",
            "EXPOSE 80",
            "CMD nginx -g 'daemon off;'",
        ],
    );

    let public = plan(&[("public/index.html", ""), ("README.md", "")]);
    assert_eq!(public.publish_dir.as_deref(), Some("public"));
    assert_lines(&public.dockerfile(), &["COPY public/ ./"]);
}

// ---------------------------------------------------------------- all stacks

#[test]
fn procfile_web_line_sets_the_start_command() {
    let p = plan(&[
        ("requirements.txt", "flask\n"),
        ("app.py", "app = Flask(__name__)\n"),
        (
            "Procfile",
            "release: python migrate.py\nweb: gunicorn app:app --workers 2 --bind 0.0.0.0:$PORT\n",
        ),
    ]);
    assert_eq!(
        p.start.as_deref(),
        Some("gunicorn app:app --workers 2 --bind 0.0.0.0:$PORT")
    );
    assert!(p.reason.contains("Procfile"), "{}", p.reason);
    assert_lines(
        &p.dockerfile(),
        &["CMD gunicorn app:app --workers 2 --bind 0.0.0.0:$PORT"],
    );

    // A Procfile turns a static front-end build into a Node server.
    let node = plan(&[
        (
            "package.json",
            r#"{"scripts":{"build":"vite build"},"devDependencies":{"vite":"5"}}"#,
        ),
        ("Procfile", "web: node server/index.js\n"),
    ]);
    assert_eq!(node.runtime_image, None);
    assert_eq!(node.publish_dir, None);
    assert_eq!(node.start.as_deref(), Some("node server/index.js"));
    assert_eq!(node.port, Some(3000));
}

#[test]
fn nothing_found_names_what_was_looked_for() {
    let dir = repo(&[("README.md", "# hi"), ("docs/guide.md", "")]);
    let err = detect(dir.path()).expect_err("nothing to build");
    assert!(matches!(err, DetectError::NothingFound(_)), "{err:?}");
    let msg = err.to_string();
    for name in [
        "package.json",
        "requirements.txt",
        "pyproject.toml",
        "Pipfile",
        "go.mod",
        "Cargo.toml",
        "Gemfile",
        "composer.json",
        "pom.xml",
        "build.gradle",
        "index.html",
        "\"dockerfile\"",
        "\"static\"",
    ] {
        assert!(msg.contains(name), "{name} missing from: {msg}");
    }
}

#[test]
fn a_missing_directory_is_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = detect(&dir.path().join("nope")).expect_err("missing");
    assert!(matches!(err, DetectError::Unreadable { .. }), "{err:?}");
}

#[test]
fn overrides_replace_fields() {
    let p = plan(&[
        (
            "package.json",
            r#"{"scripts":{"build":"tsc","start":"node dist/index.js"}}"#,
        ),
        ("package-lock.json", "{}"),
    ]);
    let o = PlanOverrides {
        base_image: Some(" node:20-alpine ".into()),
        install: Some("npm ci --omit=optional".into()),
        build: Some("".into()),
        start: Some("node dist/main.js".into()),
    };
    let changed = p.clone().with_overrides(&o);
    assert_eq!(changed.base_image, "node:20-alpine");
    assert_eq!(changed.install.as_deref(), Some("npm ci --omit=optional"));
    assert_eq!(changed.build, None);
    assert_eq!(changed.start.as_deref(), Some("node dist/main.js"));
    assert_eq!(changed.stack, p.stack);
    assert_eq!(changed.manifests, p.manifests);
    let d = changed.dockerfile();
    assert_lines(
        &d,
        &[
            "FROM node:20-alpine",
            "USER node",
            "RUN npm ci --omit=optional",
            "CMD node dist/main.js",
        ],
    );
    assert_no_line(&d, "RUN npm run build");

    // Nothing given changes nothing; a base image with spaces is ignored.
    assert_eq!(p.clone().with_overrides(&PlanOverrides::default()), p);
    let bad = PlanOverrides {
        base_image: Some("node:20\nRUN evil".into()),
        ..PlanOverrides::default()
    };
    assert_eq!(p.clone().with_overrides(&bad).base_image, p.base_image);
}

#[test]
fn multi_line_commands_stay_one_script() {
    let p = plan(&[("index.html", "")]).with_overrides(&PlanOverrides {
        start: Some("echo starting\nexec nginx -g 'daemon off;'".into()),
        ..PlanOverrides::default()
    });
    assert_lines(
        &p.dockerfile(),
        &[r#"CMD ["/bin/sh", "-c", "echo starting\nexec nginx -g 'daemon off;'"]"#],
    );
}

#[test]
fn plans_serialize_with_lowercase_stacks() {
    let p = plan(&[
        ("go.mod", "module x\n\ngo 1.22\n"),
        ("main.go", "package main\n"),
    ]);
    let json = serde_json::to_value(&p).expect("json");
    assert_eq!(json["stack"], "go");
    assert_eq!(json["runtime_image"], "debian:bookworm-slim");
    let back: BuildPlan = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, p);
    assert!(serde_json::from_str::<PlanOverrides>(r#"{"start":"x","bogus":1}"#).is_err());
    let o: PlanOverrides = serde_json::from_str(r#"{"start":"x"}"#).expect("overrides");
    assert_eq!(o.start.as_deref(), Some("x"));
    // The OpenAPI schemas exist.
    let _ = <BuildPlan as utoipa::PartialSchema>::schema();
    let _ = <PlanOverrides as utoipa::PartialSchema>::schema();
}

// ---------------------------------------------------------------- reading safely

#[test]
fn manifests_larger_than_the_cap_are_refused() {
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(MAX_FILE_BYTES as usize));
    let dir = repo(&[("package.json", big.as_str())]);
    let err = detect(dir.path()).expect_err("too large");
    assert!(matches!(err, DetectError::TooLarge { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_repository_are_not_followed() {
    let outside = repo(&[
        ("package.json", r#"{"scripts":{"start":"node x"}}"#),
        ("cmd/", ""),
    ]);
    let dir = repo(&[("index.html", "")]);
    std::os::unix::fs::symlink(
        outside.path().join("package.json"),
        dir.path().join("package.json"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("public")).expect("symlink");
    let p = detect(dir.path()).expect("plan");
    assert_eq!(p.stack, Stack::Static);

    // A symlink inside the repository is fine.
    let inside = repo(&[("config/package.json", r#"{"scripts":{"start":"node x"}}"#)]);
    std::os::unix::fs::symlink("config/package.json", inside.path().join("package.json"))
        .expect("symlink");
    assert_eq!(detect(inside.path()).expect("plan").stack, Stack::Node);
}

// ---------------------------------------------------------------- helpers

#[test]
fn version_requirements() {
    let node = |r: &str| choose_version(r, Ver::new(22, 0), Precision::Major).map(|v| v.major);
    assert_eq!(node(">=18"), Some(22));
    assert_eq!(node("^20.11.0"), Some(20));
    assert_eq!(node("20.x"), Some(20));
    assert_eq!(node("v18.19.1"), Some(18));
    assert_eq!(node(">=18 <21"), Some(20));
    assert_eq!(node("18 || 20"), Some(20));
    assert_eq!(node(">= 24"), Some(24));
    assert_eq!(node("lts/*"), None);
    assert_eq!(node("node"), None);

    let py = |r: &str| {
        choose_version(r, Ver::new(3, 12), Precision::Minor)
            .map(|v| format!("{}.{}", v.major, v.minor))
    };
    assert_eq!(py(">=3.9").as_deref(), Some("3.12"));
    assert_eq!(py(">=3.13").as_deref(), Some("3.13"));
    assert_eq!(py(">=3.9,<3.12").as_deref(), Some("3.11"));
    assert_eq!(py("^3.10").as_deref(), Some("3.12"));
    assert_eq!(py("~3.10").as_deref(), Some("3.10"));
    assert_eq!(py("~=3.10").as_deref(), Some("3.12"));
    assert_eq!(py("3.11.*").as_deref(), Some("3.11"));
    assert_eq!(py("==3.10.4").as_deref(), Some("3.10"));
    assert_eq!(py("~> 3.2.0").as_deref(), Some("3.2"));
    assert_eq!(py("3").as_deref(), Some("3.12"));
    assert_eq!(py("<=3.11").as_deref(), Some("3.11"));
    assert_eq!(py(">=3.13,<3.12"), None);
    assert_eq!(py("whatever"), None);
}

#[test]
fn toml_reader() {
    let t = Toml::parse(
        "name = \"root\"\n# comment\n[package]\nname = \"a#b\" # trailing\nversion = '1.0'\n\
         list = [\n  \"x = 1\",\n]\nafter = \"yes\"\ndoc = \"\"\"\nname = \"no\"\n\"\"\"\n\
         [[bin]]\nname = \"one\"\n[[bin]]\nname = \"two\"\n[tool.poetry.dependencies]\npython = \"^3.11\"\n",
    );
    assert_eq!(t.get("", "name"), Some("root"));
    assert_eq!(t.get("package", "name"), Some("a#b"));
    assert_eq!(t.get("package", "version"), Some("1.0"));
    assert_eq!(t.get("package", "after"), Some("yes"));
    assert_eq!(t.get("package", "x"), None);
    assert_eq!(
        t.tables("bin")
            .filter_map(|b| b.get("name"))
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(t.has("tool.poetry"));
    assert!(!t.has("tool.poe"));
    assert_eq!(t.get("tool.poetry.dependencies", "python"), Some("^3.11"));
}

#[test]
fn long_commands_wrap_at_top_level_ands_only() {
    let p = plan(&[("index.html", "")]).with_overrides(&PlanOverrides {
        build: Some(
            "echo 'a && b' > /tmp/x && echo \"c && d\" >> /tmp/x && cat /tmp/x && echo done with it".into(),
        ),
        ..PlanOverrides::default()
    });
    assert_lines(
        &p.dockerfile(),
        &[
            "RUN echo 'a && b' > /tmp/x \\",
            "    && echo \"c && d\" >> /tmp/x \\",
            "    && cat /tmp/x \\",
            "    && echo done with it",
        ],
    );
}
