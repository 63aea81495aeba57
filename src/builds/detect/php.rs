//! PHP: `composer.json` or `index.php`; the official Apache image with
//! the PHP version composer requires, the extensions it requires, and
//! `public/` as the document root when the entry point is there.

use std::path::PathBuf;

use serde_json::Value;

use super::repo::{choose_version, tool_version, Precision, Repo, Ver};
use super::{and_then_all, apt_install, note, BuildPlan, DetectError, Stack};

/// PHP version when the repository names none.
const DEFAULT_PHP: Ver = Ver::new(8, 3);

/// Extensions that the official image has built in.
const BUILT_IN: &[&str] = &[
    "core",
    "ctype",
    "curl",
    "date",
    "dom",
    "fileinfo",
    "filter",
    "hash",
    "iconv",
    "json",
    "libxml",
    "mbstring",
    "mysqlnd",
    "openssl",
    "pcre",
    "pdo",
    "pdo_sqlite",
    "phar",
    "posix",
    "random",
    "readline",
    "reflection",
    "session",
    "simplexml",
    "sodium",
    "spl",
    "sqlite3",
    "standard",
    "tokenizer",
    "xml",
    "xmlreader",
    "xmlwriter",
    "zlib",
];

/// Extensions `docker-php-ext-install` builds, with the Debian packages
/// they need.
const INSTALLABLE: &[(&str, &[&str])] = &[
    ("bcmath", &[]),
    ("bz2", &["libbz2-dev"]),
    ("calendar", &[]),
    ("exif", &[]),
    ("gd", &["libpng-dev"]),
    ("gettext", &[]),
    ("gmp", &["libgmp-dev"]),
    ("intl", &["libicu-dev"]),
    ("mysqli", &[]),
    ("opcache", &[]),
    ("pcntl", &[]),
    ("pdo_mysql", &[]),
    ("pdo_pgsql", &["libpq-dev"]),
    ("pgsql", &["libpq-dev"]),
    ("soap", &["libxml2-dev"]),
    ("sockets", &[]),
    ("xsl", &["libxslt1-dev"]),
    ("zip", &["libzip-dev"]),
];

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let composer_text = repo.read("composer.json")?;
    let public_index = repo.is_file("public/index.php");
    if composer_text.is_none() && !repo.is_file("index.php") && !public_index {
        return Ok(None);
    }
    let composer: Option<Value> = composer_text
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| DetectError::Invalid {
            path: PathBuf::from("composer.json"),
            reason: e.to_string(),
        })?;
    let require = composer
        .as_ref()
        .and_then(|c| c.get("require"))
        .and_then(Value::as_object);

    let mut reason = match (&composer, repo.is_file("composer.lock")) {
        (Some(_), true) => "composer.json with composer.lock (composer)".to_string(),
        (Some(_), false) => "composer.json without a lockfile (composer)".to_string(),
        (None, _) => "index.php without composer.json".to_string(),
    };
    if require.is_some_and(|r| r.contains_key("laravel/framework")) {
        note(&mut reason, "Laravel");
    } else if require.is_some_and(|r| r.contains_key("symfony/framework-bundle")) {
        note(&mut reason, "Symfony");
    }

    let candidates = [
        (
            "composer.json",
            require
                .and_then(|r| r.get("php"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        (
            "composer.json config.platform",
            composer
                .as_ref()
                .and_then(|c| c.pointer("/config/platform/php"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        (".tool-versions", tool_version(repo, "php")),
    ];
    let mut version = DEFAULT_PHP;
    for (from, value) in candidates {
        let Some(value) = value else { continue };
        if let Some(v) = choose_version(&value, DEFAULT_PHP, Precision::Minor) {
            if v.major >= 7 {
                version = v;
                note(
                    &mut reason,
                    format!("PHP {}.{} from {from}", v.major, v.minor),
                );
                break;
            }
        }
    }
    let mut plan = BuildPlan::new(
        Stack::Php,
        format!("php:{}.{}-apache", version.major, version.minor),
    );

    // Extensions the app requires that the image lacks.
    let mut packages: Vec<&str> = Vec::new();
    let mut extensions: Vec<&str> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    if composer.is_some() {
        packages.extend(["git", "unzip"]);
    }
    for key in require.into_iter().flat_map(|r| r.keys()) {
        let Some(ext) = key.strip_prefix("ext-") else {
            continue;
        };
        let ext = ext.to_ascii_lowercase();
        if BUILT_IN.contains(&ext.as_str()) {
            continue;
        }
        match INSTALLABLE.iter().find(|(name, _)| *name == ext) {
            Some((name, libs)) => {
                extensions.push(name);
                packages.extend(libs.iter().copied());
            }
            None => missing.push(format!("ext-{ext}")),
        }
    }
    packages.sort_unstable();
    packages.dedup();
    extensions.sort_unstable();
    extensions.dedup();
    if !missing.is_empty() {
        note(
            &mut reason,
            format!(
                "not installed (PECL or unknown): {}; add them with a Dockerfile",
                missing.join(", ")
            ),
        );
    }
    let mut setup = Vec::new();
    if !packages.is_empty() {
        setup.push(apt_install(&packages));
    }
    if !extensions.is_empty() {
        setup.push(format!("docker-php-ext-install {}", extensions.join(" ")));
    }
    setup.push("a2enmod rewrite".to_string());
    if public_index {
        note(&mut reason, "document root public/");
        setup.push(
            "sed -ri -e 's!/var/www/html!/var/www/html/public!g' /etc/apache2/sites-available/*.conf \
             && sed -ri -e 's!/var/www/!/var/www/html/public!g' /etc/apache2/apache2.conf /etc/apache2/conf-available/*.conf"
                .to_string(),
        );
    }
    plan.setup = and_then_all(setup);

    if composer.is_some() {
        plan.manifests = repo.existing(&["composer.json", "composer.lock"]);
        plan.install = Some(
            "composer install --no-dev --no-interaction --prefer-dist --no-scripts --no-autoloader"
                .to_string(),
        );
        plan.build = Some("composer dump-autoload --optimize --no-dev".to_string());
    }
    plan.start = Some("apache2-foreground".to_string());
    plan.port = Some(80);
    plan.reason = reason;
    Ok(Some(plan))
}
