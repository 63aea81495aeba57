//! Results the other benches leave for the `peers` harness, which runs
//! last under `cargo bench` and writes them into BENCHMARKS.md: each bench
//! records its summary as markdown under `<target>/bench-results/`, and
//! criterion's estimates are read from `<target>/criterion/`.

#![allow(dead_code)] // each bench uses its own part

use std::path::PathBuf;

/// Prints a line of a bench's summary and appends it to `$out`, the
/// summary it records.
#[allow(unused_macros)]
macro_rules! say {
    ($out:ident, $($t:tt)*) => {{
        let line = format!($($t)*);
        println!("{line}");
        $out.push_str(&line);
        $out.push('\n');
    }};
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Records `markdown` as bench `name`'s latest summary.
pub fn record(name: &str, markdown: &str) {
    let dir = target_dir().join("bench-results");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.md")), markdown));
    if let Err(err) = written {
        eprintln!("could not record the {name} results: {err}");
    }
}

/// Bench `name`'s latest summary, with when it was recorded.
pub fn recorded(name: &str) -> Option<(String, std::time::SystemTime)> {
    let path = target_dir()
        .join("bench-results")
        .join(format!("{name}.md"));
    let text = std::fs::read_to_string(&path).ok()?;
    let when = std::fs::metadata(&path).ok()?.modified().ok()?;
    Some((text, when))
}

/// Criterion's latest mean for `group/bench`, in nanoseconds.
pub fn criterion_mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}
