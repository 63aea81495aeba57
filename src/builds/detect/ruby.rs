//! Ruby: `Gemfile`; Rails (`config/application.rb` or the `rails` gem),
//! Rack (`config.ru`) or a plain script; the Ruby version from
//! `.ruby-version`, the Gemfile's `ruby` line, `Gemfile.lock` or
//! `.tool-versions`.

use super::repo::{choose_version, tool_version, version_file, Precision, Repo, Ver};
use super::{apt_install, note, BuildPlan, DetectError, Stack};

/// Ruby version when the repository names none.
const DEFAULT_RUBY: Ver = Ver::new(3, 3);

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let Some(gemfile) = repo.read("Gemfile")? else {
        return Ok(None);
    };
    let lock = repo.read("Gemfile.lock")?;
    let gem = |name: &str| gem_listed(&gemfile, name);
    let mut reason = if lock.is_some() {
        "Gemfile with Gemfile.lock (bundler)".to_string()
    } else {
        "Gemfile without a lockfile (bundler)".to_string()
    };
    let (version, from) = ruby_version(repo, &gemfile, lock.as_deref());
    if let Some(from) = from {
        note(
            &mut reason,
            format!("Ruby {}.{} from {from}", version.major, version.minor),
        );
    }
    let mut plan = BuildPlan::new(
        Stack::Ruby,
        format!("ruby:{}.{}-slim", version.major, version.minor),
    );

    // Native extensions (puma, nio4r, bootsnap, psych…) need a compiler,
    // and some gems their library's headers.
    let mut apt = vec!["build-essential", "git", "libyaml-dev", "pkg-config"];
    if gem("pg") {
        apt.push("libpq-dev");
    }
    if gem("mysql2") || gem("trilogy") {
        apt.push("default-libmysqlclient-dev");
    }
    if gem("sqlite3") {
        apt.push("libsqlite3-dev");
    }
    plan.setup = Some(apt_install(&apt));

    let local_gems = gemfile.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("gemspec") || (l.starts_with("gem ") && l.contains("path:"))
    });
    if local_gems {
        note(&mut reason, "local gems: installed with the whole source");
    } else {
        plan.manifests = repo.existing(&["Gemfile", "Gemfile.lock", ".ruby-version"]);
    }
    plan.install =
        Some("bundle config set --local without 'development test' && bundle install".to_string());

    let rails = repo.is_file("config/application.rb") || gem("rails");
    if rails {
        note(&mut reason, "Rails");
        let pipeline = ["sprockets-rails", "sprockets", "propshaft", "sass-rails"]
            .iter()
            .any(|g| gem(g));
        if pipeline {
            plan.build =
                Some("SECRET_KEY_BASE_DUMMY=1 bundle exec rails assets:precompile".to_string());
            if [
                "jsbundling-rails",
                "cssbundling-rails",
                "webpacker",
                "shakapacker",
            ]
            .iter()
            .any(|g| gem(g))
            {
                note(
                    &mut reason,
                    "its assets are bundled with Node, which this image lacks: override the build or use a Dockerfile",
                );
            }
        }
        plan.start = Some("bundle exec rails server -b 0.0.0.0".to_string());
        plan.port = Some(3000);
        for (k, v) in [
            ("RAILS_ENV", "production"),
            ("RACK_ENV", "production"),
            ("RAILS_LOG_TO_STDOUT", "1"),
            ("RAILS_SERVE_STATIC_FILES", "1"),
            ("PORT", "3000"),
        ] {
            plan.env.insert(k.to_string(), v.to_string());
        }
    } else if repo.is_file("config.ru") {
        note(&mut reason, "Rack app (config.ru)");
        plan.start = Some("bundle exec rackup -o 0.0.0.0".to_string());
        plan.port = Some(9292);
        plan.env
            .insert("RACK_ENV".to_string(), "production".to_string());
        plan.env.insert("PORT".to_string(), "9292".to_string());
    } else if let Some(file) = repo.first_file(&["app.rb", "main.rb", "server.rb"]) {
        note(&mut reason, format!("runs {file}"));
        plan.start = Some(format!("bundle exec ruby {file}"));
        plan.port = Some(4567);
        plan.env
            .insert("RACK_ENV".to_string(), "production".to_string());
        plan.env.insert("PORT".to_string(), "4567".to_string());
    } else {
        note(
            &mut reason,
            "no Rails app, config.ru or app.rb: set the start command",
        );
    }
    plan.reason = reason;
    Ok(Some(plan))
}

/// Whether the Gemfile has a `gem "name"` line.
fn gem_listed(gemfile: &str, name: &str) -> bool {
    gemfile.lines().any(|line| {
        let Some(rest) = line.trim_start().strip_prefix("gem") else {
            return false;
        };
        let rest = rest.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return false;
        };
        rest[1..].split(quote).next() == Some(name)
    })
}

/// The Ruby version and where it came from.
fn ruby_version(repo: &Repo, gemfile: &str, lock: Option<&str>) -> (Ver, Option<String>) {
    let strip = |v: String| v.trim_start_matches("ruby-").to_string();
    let from_gemfile = gemfile.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("ruby")?;
        let rest = rest.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        rest[1..].split(quote).next().map(str::to_string)
    });
    let from_lock = lock.and_then(|lock| {
        let mut lines = lock.lines();
        lines.find(|l| l.trim() == "RUBY VERSION")?;
        let line = lines.next()?.trim();
        line.strip_prefix("ruby ").map(str::to_string)
    });
    let candidates = [
        (
            ".ruby-version",
            version_file(repo, ".ruby-version").map(strip),
        ),
        ("the Gemfile", from_gemfile),
        ("Gemfile.lock", from_lock),
        (".tool-versions", tool_version(repo, "ruby")),
    ];
    for (from, value) in candidates {
        let Some(value) = value else { continue };
        if let Some(v) = choose_version(&value, DEFAULT_RUBY, Precision::Minor) {
            if v.major >= 2 {
                return (v, Some(from.to_string()));
            }
        }
    }
    (DEFAULT_RUBY, None)
}
