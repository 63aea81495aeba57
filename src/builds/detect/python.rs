//! Python: `requirements.txt`, `pyproject.toml` (uv, Poetry, PDM or plain
//! pip by lockfile and tool tables) or `Pipfile`; the start command of
//! Django, FastAPI or Flask apps, or of `main.py` / `app.py`.

use super::repo::{
    choose_version, mentions, tool_version, version_file, Precision, Repo, Toml, Ver,
};
use super::{and_then_all, apt_install, note, BuildPlan, DetectError, Stack};

/// The port Python web apps usually listen on.
const PORT: u16 = 8000;
/// Python version when the repository names none.
const DEFAULT_PYTHON: Ver = Ver::new(3, 12);

/// How dependencies are installed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Uv { locked: bool },
    Poetry { locked: bool },
    Pdm { locked: bool },
    Pipenv { locked: bool },
    Requirements,
    Pip,
}

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let requirements = repo.read("requirements.txt")?;
    let pyproject_text = repo.read("pyproject.toml")?;
    let pipfile_text = repo.read("Pipfile")?;
    if requirements.is_none() && pyproject_text.is_none() && pipfile_text.is_none() {
        return Ok(None);
    }
    let pyproject = pyproject_text.as_deref().map(Toml::parse);
    let pipfile = pipfile_text.as_deref().map(Toml::parse);
    let deps = [&requirements, &pyproject_text, &pipfile_text]
        .iter()
        .filter_map(|t| t.as_deref())
        .collect::<Vec<_>>()
        .join("\n");
    let has = |name: &str| mentions(&deps, name);
    let in_pyproject = |table: &str| pyproject.as_ref().is_some_and(|t| t.has(table));

    let tool = if repo.is_file("uv.lock") {
        Tool::Uv { locked: true }
    } else if repo.is_file("poetry.lock") {
        Tool::Poetry { locked: true }
    } else if repo.is_file("pdm.lock") {
        Tool::Pdm { locked: true }
    } else if requirements.is_some() {
        Tool::Requirements
    } else if pipfile.is_some() {
        Tool::Pipenv {
            locked: repo.is_file("Pipfile.lock"),
        }
    } else if in_pyproject("tool.poetry") {
        Tool::Poetry { locked: false }
    } else if in_pyproject("tool.uv") {
        Tool::Uv { locked: false }
    } else if in_pyproject("tool.pdm") {
        Tool::Pdm { locked: false }
    } else {
        Tool::Pip
    };

    let mut reason = match tool {
        Tool::Uv { locked: true } => "pyproject.toml with uv.lock (uv)".to_string(),
        Tool::Uv { locked: false } => "pyproject.toml with [tool.uv] (uv)".to_string(),
        Tool::Poetry { locked: true } => "pyproject.toml with poetry.lock (poetry)".to_string(),
        Tool::Poetry { locked: false } => "pyproject.toml with [tool.poetry] (poetry)".to_string(),
        Tool::Pdm { locked: true } => "pyproject.toml with pdm.lock (pdm)".to_string(),
        Tool::Pdm { locked: false } => "pyproject.toml with [tool.pdm] (pdm)".to_string(),
        Tool::Pipenv { locked: true } => "Pipfile with Pipfile.lock (pipenv)".to_string(),
        Tool::Pipenv { locked: false } => "Pipfile without a lockfile (pipenv)".to_string(),
        Tool::Requirements => "requirements.txt (pip)".to_string(),
        Tool::Pip => "pyproject.toml (pip)".to_string(),
    };

    let (version, from) = python_version(repo, pyproject.as_ref(), pipfile.as_ref());
    if let Some(from) = from {
        note(
            &mut reason,
            format!("Python {}.{} from {from}", version.major, version.minor),
        );
    }
    let mut plan = BuildPlan::new(
        Stack::Python,
        format!("python:{}.{}-slim", version.major, version.minor),
    );

    // Packages that compile against system libraries.
    let mut apt: Vec<&str> = Vec::new();
    if has("psycopg2") {
        apt.extend(["build-essential", "libpq-dev"]);
    }
    if has("mysqlclient") {
        apt.extend([
            "build-essential",
            "default-libmysqlclient-dev",
            "pkg-config",
        ]);
    }
    apt.sort_unstable();
    apt.dedup();
    let mut setup = Vec::new();
    if !apt.is_empty() {
        setup.push(apt_install(&apt));
    }
    let pip_tool = match tool {
        Tool::Uv { .. } => Some("uv"),
        Tool::Poetry { .. } => Some("poetry"),
        Tool::Pdm { locked: true } => Some("pdm"),
        Tool::Pipenv { .. } => Some("pipenv"),
        _ => None,
    };
    if let Some(name) = pip_tool {
        setup.push(format!("pip install --no-cache-dir {name}"));
    }
    plan.setup = and_then_all(setup);

    let (install, manifests): (String, Vec<String>) = match tool {
        Tool::Uv { locked } => {
            let workspace = in_pyproject("tool.uv.workspace");
            let frozen = if locked { " --frozen" } else { "" };
            let manifests = if workspace {
                note(&mut reason, "uv workspace: installed with the whole source");
                Vec::new()
            } else {
                repo.existing(&["pyproject.toml", "uv.lock", ".python-version"])
            };
            (
                format!(
                    "uv sync{frozen} --no-dev --no-install-project --python /usr/local/bin/python3"
                ),
                manifests,
            )
        }
        Tool::Poetry { .. } => (
            "poetry config virtualenvs.create false && poetry install --only main --no-root --no-interaction"
                .to_string(),
            repo.existing(&["pyproject.toml", "poetry.lock", "poetry.toml"]),
        ),
        Tool::Pdm { locked: true } => (
            "pdm export --prod -o /tmp/requirements.txt && pip install --no-cache-dir -r /tmp/requirements.txt"
                .to_string(),
            repo.existing(&["pyproject.toml", "pdm.lock"]),
        ),
        Tool::Pipenv { locked } => (
            if locked {
                "pipenv install --deploy --system".to_string()
            } else {
                "pipenv install --system --skip-lock".to_string()
            },
            repo.existing(&["Pipfile", "Pipfile.lock"]),
        ),
        Tool::Requirements => (
            "pip install --no-cache-dir -r requirements.txt".to_string(),
            requirement_files(repo, requirements.as_deref().unwrap_or_default(), &mut reason),
        ),
        Tool::Pdm { locked: false } | Tool::Pip => {
            ("pip install --no-cache-dir .".to_string(), Vec::new())
        }
    };
    plan.install = Some(install);
    plan.manifests = manifests;

    plan.start = start_command(repo, &has, &mut plan, &mut reason);
    plan.port = Some(PORT);
    for (k, v) in [
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PORT", "8000"),
    ] {
        plan.env.insert(k.to_string(), v.to_string());
    }
    if matches!(tool, Tool::Uv { .. }) {
        plan.env
            .insert("VIRTUAL_ENV".to_string(), "/app/.venv".to_string());
        plan.env
            .insert("PATH".to_string(), "/app/.venv/bin:$PATH".to_string());
    }
    plan.reason = reason;
    Ok(Some(plan))
}

/// `requirements.txt` and the files it includes (`-r`, `-c`), or nothing
/// when it installs local paths (then the whole source is needed).
fn requirement_files(repo: &Repo, text: &str, reason: &mut String) -> Vec<String> {
    let mut files = vec!["requirements.txt".to_string()];
    for line in text.lines().map(str::trim) {
        let included = ["-r ", "-c ", "--requirement ", "--constraint "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .or_else(|| line.strip_prefix("--requirement="))
            .or_else(|| line.strip_prefix("--constraint="));
        if let Some(file) = included.map(str::trim) {
            let plain = file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
                && !file.contains("..")
                && !file.starts_with('/');
            if plain && repo.is_file(file) {
                files.push(file.to_string());
                continue;
            }
        }
        let local = line.starts_with("-e ")
            || line.starts_with("--editable")
            || line.starts_with('.')
            || line.starts_with("file:")
            || included.is_some();
        if local {
            note(
                reason,
                "requirements.txt installs local files: installed with the whole source",
            );
            return Vec::new();
        }
    }
    files
}

/// The Python version and where it came from.
fn python_version(
    repo: &Repo,
    pyproject: Option<&Toml>,
    pipfile: Option<&Toml>,
) -> (Ver, Option<String>) {
    let runtime = version_file(repo, "runtime.txt")
        .and_then(|v| v.strip_prefix("python-").map(str::to_string));
    let candidates = [
        (".python-version", version_file(repo, ".python-version")),
        ("runtime.txt", runtime),
        (
            "Pipfile",
            pipfile.and_then(|p| {
                p.get("requires", "python_full_version")
                    .or_else(|| p.get("requires", "python_version"))
                    .map(str::to_string)
            }),
        ),
        (
            "requires-python",
            pyproject.and_then(|p| p.get("project", "requires-python").map(str::to_string)),
        ),
        (
            "Poetry's python dependency",
            pyproject.and_then(|p| {
                p.get("tool.poetry.dependencies", "python")
                    .map(str::to_string)
            }),
        ),
        (".tool-versions", tool_version(repo, "python")),
    ];
    for (from, value) in candidates {
        let Some(value) = value else { continue };
        if let Some(v) = choose_version(&value, DEFAULT_PYTHON, Precision::Minor) {
            if v.major == 3 {
                return (v, Some(from.to_string()));
            }
        }
    }
    (DEFAULT_PYTHON, None)
}

/// Files that usually hold a FastAPI or Flask app object.
const APP_FILES: &[&str] = &[
    "main.py",
    "app.py",
    "server.py",
    "api.py",
    "wsgi.py",
    "asgi.py",
    "application.py",
    "app/main.py",
    "app/__init__.py",
    "app/app.py",
    "src/main.py",
    "src/app.py",
    "api/main.py",
];

fn start_command(
    repo: &Repo,
    has: &dyn Fn(&str) -> bool,
    plan: &mut BuildPlan,
    reason: &mut String,
) -> Option<String> {
    let bind = format!("0.0.0.0:{PORT}");
    if repo.is_file("manage.py") {
        let project = django_project(repo);
        let Some(project) = project else {
            note(reason, "Django (manage.py)");
            return Some(format!("python manage.py runserver {bind}"));
        };
        note(reason, format!("Django project {project}"));
        let settings = repo
            .read_hint(&format!("{}/settings.py", project.replace('.', "/")))
            .unwrap_or_default();
        if settings.contains("STATIC_ROOT") {
            plan.build = Some("python manage.py collectstatic --noinput".to_string());
        }
        return Some(if has("gunicorn") {
            format!("gunicorn {project}.wsgi --bind {bind}")
        } else {
            note(
                reason,
                "gunicorn is not a dependency: Django's development server",
            );
            format!("python manage.py runserver {bind}")
        });
    }
    if has("fastapi") {
        if let Some((module, var)) = app_object(repo, "FastAPI") {
            note(reason, format!("FastAPI app {module}:{var}"));
            if !has("uvicorn") && !deps_have_extra(has, "fastapi") {
                note(
                    reason,
                    "uvicorn is not a dependency: add it (or fastapi[standard])",
                );
            }
            return Some(format!(
                "uvicorn {module}:{var} --host 0.0.0.0 --port {PORT}"
            ));
        }
    }
    if has("flask") {
        if let Some((module, var)) = app_object(repo, "Flask") {
            note(reason, format!("Flask app {module}:{var}"));
            return Some(if has("gunicorn") {
                format!("gunicorn --bind {bind} {module}:{var}")
            } else {
                format!("flask --app {module}:{var} run --host 0.0.0.0 --port {PORT}")
            });
        }
        if let Some(module) = app_factory(repo) {
            note(reason, format!("Flask app factory {module}:create_app"));
            return Some(if has("gunicorn") {
                format!("gunicorn --bind {bind} '{module}:create_app()'")
            } else {
                format!("flask --app {module} run --host 0.0.0.0 --port {PORT}")
            });
        }
    }
    if let Some(file) = repo.first_file(&["main.py", "app.py", "server.py"]) {
        note(reason, format!("runs {file}"));
        return Some(format!("python {file}"));
    }
    note(reason, "no start command found: set one");
    None
}

/// Whether the dependencies name `package[standard]` (FastAPI's extra
/// that brings uvicorn).
fn deps_have_extra(has: &dyn Fn(&str) -> bool, package: &str) -> bool {
    has(&format!("{package}[standard]"))
}

/// The Django project package (the one holding `settings` and `wsgi`),
/// from `DJANGO_SETTINGS_MODULE` in `manage.py`, else a directory with
/// `wsgi.py` and `settings.py`.
fn django_project(repo: &Repo) -> Option<String> {
    let manage = repo.read_hint("manage.py").unwrap_or_default();
    let from_manage = manage.lines().find_map(|line| {
        let after = line.split_once("DJANGO_SETTINGS_MODULE")?.1;
        let quoted = after.split(['"', '\'']).nth(2)?;
        let project = quoted.split(".settings").next()?.trim();
        let valid = !project.is_empty()
            && project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        valid.then(|| project.to_string())
    });
    if from_manage.is_some() {
        return from_manage;
    }
    repo.list("")
        .into_iter()
        .filter(|e| e.is_dir)
        .find(|e| {
            repo.is_file(&format!("{}/wsgi.py", e.name))
                && repo.is_file(&format!("{}/settings.py", e.name))
        })
        .map(|e| e.name)
}

/// The module and variable of a top-level `name = Class(` assignment.
fn app_object(repo: &Repo, class: &str) -> Option<(String, String)> {
    APP_FILES.iter().find_map(|file| {
        let text = repo.read_hint(file)?;
        let var = text.lines().find_map(|line| {
            if line.starts_with(char::is_whitespace) {
                return None;
            }
            let (lhs, rhs) = line.split_once('=')?;
            let lhs = lhs.split(':').next()?.trim();
            let rhs = rhs.trim_start();
            let calls = rhs.starts_with(&format!("{class}("))
                || rhs.starts_with(&format!("{}.{class}(", class.to_ascii_lowercase()));
            let ident = !lhs.is_empty()
                && lhs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !lhs.starts_with(|c: char| c.is_ascii_digit());
            (calls && ident).then(|| lhs.to_string())
        })?;
        Some((module_of(file), var))
    })
}

/// The module of a file defining a Flask `create_app` factory.
fn app_factory(repo: &Repo) -> Option<String> {
    APP_FILES.iter().find_map(|file| {
        let text = repo.read_hint(file)?;
        text.lines()
            .any(|l| l.starts_with("def create_app("))
            .then(|| module_of(file))
    })
}

/// `app/main.py` → `app.main`, `app/__init__.py` → `app`.
fn module_of(file: &str) -> String {
    let path = file.trim_end_matches(".py");
    let path = path.strip_suffix("/__init__").unwrap_or(path);
    path.replace('/', ".")
}
