//! Crash accounting: deaths of the serving version's replicas that berth
//! did not ask for, kept per app for its status. Docker's restart policy
//! brings a dead replica back with exponential backoff; this is how the app
//! view tells a crash loop from a replica that died once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// Deaths within this window count towards a crash loop.
const WINDOW: Duration = Duration::from_secs(300);
/// Deaths within [`WINDOW`] that make a crash loop.
const LOOP_DEATHS: usize = 3;
/// A crash loop is over once no replica died for this long (Docker's
/// restart backoff tops out at one minute).
const CALM: Duration = Duration::from_secs(120);

/// Crashes of every app, and the containers berth is stopping itself.
#[derive(Default)]
pub struct Crashes {
    apps: Mutex<HashMap<String, AppCrashes>>,
    /// Containers berth stops on purpose: their exits are no crash.
    expected: Mutex<HashSet<String>>,
    /// Containers the kernel killed for memory, until their `die` arrives.
    oom: Mutex<HashSet<String>>,
}

struct AppCrashes {
    deployment: String,
    recent: VecDeque<Instant>,
    total: u32,
    last_exit: String,
}

impl AppCrashes {
    fn new(deployment: &str) -> Self {
        Self {
            deployment: deployment.to_string(),
            recent: VecDeque::new(),
            total: 0,
            last_exit: String::new(),
        }
    }
}

/// What the app view shows of an app's crashes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CrashState {
    /// Unrequested exits of the serving version's replicas.
    pub restarts: u32,
    /// How the last one ended, e.g. `exited with code 3`.
    pub last_exit: Option<String>,
    /// Whether replicas keep dying: [`LOOP_DEATHS`] within [`WINDOW`], the
    /// last one less than [`CALM`] ago.
    pub crash_loop: bool,
}

impl Crashes {
    /// Marks containers berth is about to stop.
    pub fn expect_exit<'a>(&self, containers: impl IntoIterator<Item = &'a str>) {
        lock(&self.expected).extend(containers.into_iter().map(str::to_string));
    }

    /// Forgets containers that are gone.
    pub fn forget_containers<'a>(&self, containers: impl IntoIterator<Item = &'a str>) {
        let mut expected = lock(&self.expected);
        let mut oom = lock(&self.oom);
        for c in containers {
            expected.remove(c);
            oom.remove(c);
        }
    }

    /// Notes that the kernel killed `container` for memory.
    pub fn oom(&self, container: &str) {
        lock(&self.oom).insert(container.to_string());
    }

    /// Records the exit of `container` of `app`'s serving `deployment`;
    /// whether it was a crash (berth did not stop it).
    pub fn died(
        &self,
        app: &str,
        deployment: &str,
        container: &str,
        exit_code: Option<&str>,
    ) -> bool {
        if lock(&self.expected).contains(container) {
            return false;
        }
        let oom = lock(&self.oom).remove(container);
        let last_exit = match (oom, exit_code) {
            (true, _) => "killed: out of memory".to_string(),
            (false, Some(code)) => format!("exited with code {code}"),
            (false, None) => "exited".to_string(),
        };
        let now = Instant::now();
        let mut apps = lock(&self.apps);
        let entry = apps
            .entry(app.to_string())
            .or_insert_with(|| AppCrashes::new(deployment));
        if entry.deployment != deployment {
            *entry = AppCrashes::new(deployment);
        }
        entry.total = entry.total.saturating_add(1);
        entry.last_exit = last_exit;
        entry.recent.push_back(now);
        while entry
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            entry.recent.pop_front();
        }
        true
    }

    /// The crash state of `app` while `deployment` serves it.
    pub fn state(&self, app: &str, deployment: Option<&str>) -> CrashState {
        let apps = lock(&self.apps);
        let Some(entry) = apps
            .get(app)
            .filter(|e| Some(e.deployment.as_str()) == deployment)
        else {
            return CrashState::default();
        };
        let now = Instant::now();
        let recent = entry
            .recent
            .iter()
            .filter(|t| now.duration_since(**t) <= WINDOW)
            .count();
        CrashState {
            restarts: entry.total,
            last_exit: Some(entry.last_exit.clone()),
            crash_loop: recent >= LOOP_DEATHS
                && entry
                    .recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < CALM),
        }
    }

    /// Forgets an app that was deleted.
    pub fn forget_app(&self, app: &str) {
        lock(&self.apps).remove(app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_deaths_of_the_serving_version_are_a_crash_loop() {
        let crashes = Crashes::default();
        assert!(crashes.died("web", "d1", "c1", Some("3")));
        assert!(crashes.died("web", "d1", "c1", Some("3")));
        let state = crashes.state("web", Some("d1"));
        assert_eq!(state.restarts, 2);
        assert!(!state.crash_loop);
        crashes.oom("c1");
        assert!(crashes.died("web", "d1", "c1", Some("137")));
        let state = crashes.state("web", Some("d1"));
        assert!(state.crash_loop);
        assert_eq!(state.last_exit.as_deref(), Some("killed: out of memory"));
        // Another version serving: its record starts clean.
        assert_eq!(crashes.state("web", Some("d2")), CrashState::default());
        assert!(crashes.died("web", "d2", "c2", None));
        assert_eq!(crashes.state("web", Some("d2")).restarts, 1);
    }

    #[test]
    fn stops_berth_asked_for_are_no_crash() {
        let crashes = Crashes::default();
        crashes.expect_exit(["c1"]);
        assert!(!crashes.died("web", "d1", "c1", Some("137")));
        assert_eq!(crashes.state("web", Some("d1")), CrashState::default());
        crashes.forget_containers(["c1"]);
        assert!(crashes.died("web", "d1", "c1", Some("1")));
    }
}
