//! Scenario durations kept between runs, in `.engine/timings.json` beside each suite
//! config (the folder ignores itself for git, as pytest's cache does). A parallel run's
//! wall time is at least the start of its longest scenario plus its duration, so a run
//! starts the scenarios that took longest last time first; scenarios never timed yet
//! start before all of them (any of them may be the long one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::runner::{Listener, Planned, RunEvent, Verdict};

/// The folder, beside the suite config, that holds what the engine keeps between runs.
const CACHE_DIR: &str = ".engine";
const TIMINGS_FILE: &str = "timings.json";

/// Milliseconds per scenario (its file relative to the config's folder, `#`, its name),
/// per timings file.
#[derive(Debug, Default)]
pub struct Timings {
    files: HashMap<PathBuf, BTreeMap<String, u64>>,
}

impl Timings {
    /// What earlier runs of the plan's suites recorded (nothing where no file or a
    /// file that cannot be read: ordering is an optimization, never a failure).
    pub fn read(plan: &[Planned]) -> Timings {
        let mut timings = Timings::default();
        for planned in plan {
            if let Some(file) = timings_file(planned) {
                timings
                    .files
                    .entry(file)
                    .or_insert_with_key(|file| read_file(file));
            }
        }
        timings
    }

    fn of(&self, planned: &Planned) -> Option<u64> {
        let file = timings_file(planned)?;
        self.files.get(&file)?.get(&key(planned)?).copied()
    }

    /// Plan positions in the order to start them: never-timed scenarios first (in plan
    /// order), then longest first.
    pub fn start_order(&self, plan: &[Planned]) -> Vec<usize> {
        let mut order: Vec<(usize, Option<u64>)> = plan
            .iter()
            .enumerate()
            .map(|(index, planned)| (index, self.of(planned)))
            .collect();
        // Stable: equal durations keep plan order. `None` (never timed) sorts first.
        order.sort_by_key(|&(_, millis)| millis.map(std::cmp::Reverse));
        order.into_iter().map(|(index, _)| index).collect()
    }
}

/// `.engine/timings.json` in the folder of the scenario's suite config, if it has one.
fn timings_file(planned: &Planned) -> Option<PathBuf> {
    let config = planned.config.path.as_ref()?;
    let dir = config.parent()?;
    Some(dir.join(CACHE_DIR).join(TIMINGS_FILE))
}

/// The scenario's file relative to its config's folder (however the run named it), and
/// its name (which tells a spec's cases apart).
fn key(planned: &Planned) -> Option<String> {
    let dir = std::fs::canonicalize(planned.config.path.as_ref()?.parent()?).ok()?;
    let file = std::fs::canonicalize(&planned.scenario.source.path).ok()?;
    let relative = file.strip_prefix(&dir).unwrap_or(&file);
    Some(format!("{}#{}", relative.display(), planned.scenario.name))
}

fn read_file(file: &Path) -> BTreeMap<String, u64> {
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records how long each scenario that ran to its end took and, when the run ends,
/// merges that into the timings files (interrupted and skipped ones leave theirs).
#[derive(Default)]
pub struct TimingsRecorder {
    taken: HashMap<PathBuf, BTreeMap<String, u64>>,
}

impl Listener for TimingsRecorder {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::ScenarioFinished(report) => {
                let counts = matches!(
                    report.verdict,
                    Verdict::Passed | Verdict::Flaky | Verdict::Failed
                );
                if let (true, Some(file), Some(key)) =
                    (counts, timings_file(&report.planned), key(&report.planned))
                {
                    let duration = report.last().duration;
                    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                    self.taken.entry(file).or_default().insert(key, millis);
                }
            }
            RunEvent::Finished(_) => self.write(),
            _ => {}
        }
    }
}

impl TimingsRecorder {
    fn write(&mut self) {
        for (file, taken) in std::mem::take(&mut self.taken) {
            let mut timings = read_file(&file);
            timings.extend(taken);
            // A folder that cannot be written (a read-only checkout) keeps no timings.
            let _ = write_timings(&file, &timings);
        }
    }
}

fn write_timings(file: &Path, timings: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            ignore,
            "# written by engine: what it keeps between runs\n*\n",
        )?;
    }
    let text = serde_json::to_vec_pretty(timings).map_err(std::io::Error::other)?;
    super::write_atomically(file, &text)
}
