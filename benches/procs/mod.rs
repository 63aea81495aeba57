//! What the benches read of a process from /proc: the CPU time it (and
//! its threads) used, so a run can report CPU per request.

/// CPU time (user + system) of `pids` and their threads, in µs.
pub fn cpu_us(pids: &[u32]) -> u64 {
    let tick = 100u64; // USER_HZ on Linux
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) * 1_000_000 / tick)
        })
        .sum()
}
