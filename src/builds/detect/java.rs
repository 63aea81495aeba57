//! Java: `pom.xml` (Maven) or `build.gradle(.kts)` (Gradle), with their
//! wrappers when present; the Java release from the build file or
//! version files; the largest jar of the build run on a Temurin JRE.

use super::repo::{key_value, tool_version, version_file, version_parts, Repo};
use super::{note, BuildPlan, DetectError, Stack};

/// Java release when the repository names none (an LTS).
const DEFAULT_JAVA: u32 = 21;
/// The port Java web apps (Spring Boot, Quarkus, Micronaut) listen on.
const PORT: u16 = 8080;

pub(super) fn detect(repo: &Repo) -> Result<Option<BuildPlan>, DetectError> {
    let pom = repo.read("pom.xml")?;
    let gradle_file = repo.first_file(&["build.gradle.kts", "build.gradle"]);
    let gradle = match gradle_file {
        Some(f) if pom.is_none() => repo.read(f)?,
        _ => None,
    };
    let (build_text, mut reason) = match (&pom, &gradle) {
        (Some(pom), _) => (pom.as_str(), "pom.xml (maven)".to_string()),
        (None, Some(gradle)) => (
            gradle.as_str(),
            format!("{} (gradle)", gradle_file.unwrap_or("build.gradle")),
        ),
        (None, None) => return Ok(None),
    };
    let (java, from) = java_version(repo, build_text, pom.is_some());
    if let Some(from) = from {
        note(&mut reason, format!("Java {java} from {from}"));
    }
    if build_text.contains("spring-boot") {
        note(&mut reason, "Spring Boot");
    } else if build_text.contains("io.quarkus") {
        note(
            &mut reason,
            "Quarkus: set quarkus.package.jar.type=uber-jar so the build makes one runnable jar",
        );
    }

    let jdk = format!("eclipse-temurin:{java}-jdk");
    let mut plan;
    if pom.is_some() {
        let wrapper = repo.is_file("mvnw");
        let mvn = if wrapper { "./mvnw" } else { "mvn" };
        plan = BuildPlan::new(
            Stack::Java,
            if wrapper {
                jdk
            } else {
                format!("maven:3-eclipse-temurin-{java}")
            },
        );
        if wrapper {
            note(&mut reason, "Maven wrapper");
        }
        if build_text.contains("<modules>") {
            note(
                &mut reason,
                "multi-module: built with the whole source in one step",
            );
        } else {
            plan.manifests = repo.existing(&["pom.xml", "mvnw", ".mvn/"]);
            plan.install = Some(format!("{mvn} -B dependency:go-offline"));
        }
        plan.build = Some(format!(
            "{mvn} -B -DskipTests package && cp \"$(ls -S target/*.jar | head -n 1)\" /out/app.jar"
        ));
    } else {
        let wrapper = repo.is_file("gradlew");
        let cmd = if wrapper { "./gradlew" } else { "gradle" };
        plan = BuildPlan::new(
            Stack::Java,
            if wrapper {
                jdk
            } else {
                format!("gradle:jdk{java}")
            },
        );
        if wrapper {
            note(&mut reason, "Gradle wrapper");
        }
        let settings = repo
            .first_file(&["settings.gradle.kts", "settings.gradle"])
            .and_then(|f| repo.read_hint(f))
            .unwrap_or_default();
        if settings.contains("include") || repo.is_dir("buildSrc") {
            note(
                &mut reason,
                "multi-project: built with the whole source in one step",
            );
        } else {
            plan.manifests = repo.existing(&[
                "build.gradle",
                "build.gradle.kts",
                "settings.gradle",
                "settings.gradle.kts",
                "gradle.properties",
                "gradlew",
                "gradle/",
            ]);
            plan.install = Some(format!("{cmd} --no-daemon dependencies"));
        }
        plan.build = Some(format!(
            "{cmd} --no-daemon build -x test && cp \"$(ls -S build/libs/*.jar | head -n 1)\" /out/app.jar"
        ));
    }
    plan.runtime_image = Some(format!("eclipse-temurin:{java}-jre"));
    plan.start = Some("java -jar app.jar".to_string());
    plan.port = Some(PORT);
    plan.env.insert("PORT".to_string(), PORT.to_string());
    plan.env.insert(
        "JAVA_TOOL_OPTIONS".to_string(),
        "-XX:MaxRAMPercentage=75".to_string(),
    );
    plan.reason = reason;
    Ok(Some(plan))
}

/// The Java release and where it came from.
fn java_version(repo: &Repo, build_text: &str, maven: bool) -> (u32, Option<String>) {
    let from_build = if maven {
        [
            "java.version",
            "maven.compiler.release",
            "maven.compiler.source",
            "maven.compiler.target",
            "release",
        ]
        .iter()
        .find_map(|tag| xml_tag(build_text, tag).and_then(java_major))
    } else {
        gradle_java(build_text)
    };
    let candidates = [
        (
            if maven { "pom.xml" } else { "the Gradle build" },
            from_build,
        ),
        (
            ".java-version",
            version_file(repo, ".java-version").and_then(|v| java_major(&v)),
        ),
        (
            ".sdkmanrc",
            repo.read_hint(".sdkmanrc")
                .and_then(|t| key_value(&t, "java").and_then(java_major)),
        ),
        (
            "system.properties",
            repo.read_hint("system.properties")
                .and_then(|t| key_value(&t, "java.runtime.version").and_then(java_major)),
        ),
        (
            ".tool-versions",
            tool_version(repo, "java").and_then(|v| java_major(&v)),
        ),
    ];
    candidates
        .into_iter()
        .find_map(|(from, v)| v.map(|v| (v, Some(from.to_string()))))
        .unwrap_or((DEFAULT_JAVA, None))
}

/// The Java release a Gradle build asks for.
fn gradle_java(text: &str) -> Option<u32> {
    for marker in [
        "JavaLanguageVersion.of(",
        "jvmToolchain(",
        "JavaVersion.VERSION_",
    ] {
        if let Some((_, rest)) = text.split_once(marker) {
            if let Some(v) = java_major(rest.split([')', '\n', ' ']).next().unwrap_or_default()) {
                return Some(v);
            }
        }
    }
    text.lines()
        .filter(|l| l.contains("sourceCompatibility") || l.contains("targetCompatibility"))
        .find_map(|l| java_major(l.split_once('=')?.1))
}

/// The major release in text such as `17`, `1.8`, `'17'`, `17.0.9-tem`,
/// `temurin-21.0.2+13` or `VERSION_1_8`.
fn java_major(text: &str) -> Option<u32> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let parts = version_parts(&text[start..].replace('_', "."))?;
    let major = match parts.as_slice() {
        [1, minor, ..] => *minor,
        [major, ..] => *major,
        [] => return None,
    };
    (8..=40).contains(&major).then_some(major)
}

/// The text of the first `<tag>…</tag>` element.
fn xml_tag<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].trim())
}
