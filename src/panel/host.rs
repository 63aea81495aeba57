//! The host's CPU, memory and disk for the overview, from `/proc/stat`,
//! `/proc/meminfo` and `statvfs` of the data directory (no crate, no
//! background task: CPU use is measured between two page loads).

use std::path::Path;
use std::sync::Mutex;

/// The last `/proc/stat` sample: (idle, total) jiffies.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<Option<(u64, u64)>>,
}

/// One bar of the overview.
pub struct Bar {
    /// `CPU`, `Memory`, `Disk`.
    pub label: &'static str,
    /// 0-100.
    pub percent: u8,
    /// e.g. `1.2 of 3.8 GiB`.
    pub detail: String,
}

impl Bar {
    /// Whether it is nearly full (the bar is drawn as a warning).
    pub fn hot(&self) -> bool {
        self.percent >= 85
    }
}

/// CPU, memory and disk; a bar is missing when its source cannot be read.
pub fn bars(cpu: &CpuSampler, data_dir: &Path) -> Vec<Bar> {
    let mut bars = Vec::new();
    if let Some(percent) = cpu.sample() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        bars.push(Bar {
            label: "CPU",
            percent,
            detail: format!("{cores} cores"),
        });
    }
    if let Some((used, total)) = memory() {
        bars.push(Bar {
            label: "Memory",
            percent: percent(used, total),
            detail: format!("{} of {}", gib(used), gib(total)),
        });
    }
    if let Some((used, total)) = disk(data_dir) {
        bars.push(Bar {
            label: "Disk",
            percent: percent(used, total),
            detail: format!("{} of {} (data directory)", gib(used), gib(total)),
        });
    }
    bars
}

impl CpuSampler {
    /// Busy percentage since the previous sample (since boot the first time).
    fn sample(&self) -> Option<u8> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let now = parse_stat(&text)?;
        let before = self.last.lock().ok().and_then(|mut last| last.replace(now));
        let (idle, total) = match before {
            Some((i, t)) if now.1 > t => (now.0.saturating_sub(i), now.1 - t),
            _ => now,
        };
        Some(100u8.saturating_sub(percent(idle, total)))
    }
}

/// (idle + iowait, total) of the `cpu` line.
fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 5 {
        return None;
    }
    Some((fields[3] + fields[4], fields.iter().sum()))
}

/// (used, total) bytes: total minus available.
fn memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = kib("MemTotal")? * 1024;
    let available = kib("MemAvailable")? * 1024;
    Some((total.saturating_sub(available), total))
}

/// (used, total) bytes of the file system holding `dir`, as `df` counts.
fn disk(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let unit = st.fragment_size() as u64;
    let used = (st.blocks() as u64).saturating_sub(st.blocks_free() as u64) * unit;
    let available = st.blocks_available() as u64 * unit;
    Some((used, used + available))
}

fn percent(part: u64, whole: u64) -> u8 {
    if whole == 0 {
        return 0;
    }
    ((part.min(whole) as u128 * 100 + whole as u128 / 2) / whole as u128) as u8
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_memory_and_percentages_parse() {
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4 5\n";
        assert_eq!(parse_stat(stat), Some((800, 1000)));
        let mem = "MemTotal:       4000 kB\nMemFree:  10 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(parse_meminfo(mem), Some((3000 * 1024, 4000 * 1024)));
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(9, 4), 100);
    }

    #[test]
    fn this_host_reports_three_bars() {
        let sampler = CpuSampler::default();
        let bars = bars(&sampler, Path::new("/"));
        assert_eq!(bars.len(), 3);
        assert!(bars.iter().all(|b| b.percent <= 100));
        assert!(sampler.sample().is_some());
    }
}
