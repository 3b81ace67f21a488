//! Listeners on the runner's events: the console, JUnit XML, the JSON report, the HTML
//! report and GitHub Actions annotations. File reports are rewritten whole (to a
//! temporary file, then renamed) as scenarios finish, so an interrupted run still leaves
//! a valid report of what finished; [`Rewrites`] spaces the rewrites so that they stay a
//! small share of a long run. [`page`] is the look every HTML page shares;
//! [`serve_console`] shows `serve` entries coming up; [`timings`] keeps scenario
//! durations between runs, to start the longest first.

pub mod console;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod page;
pub mod serve_console;
#[cfg(test)]
mod test_reports;
pub mod timings;

use std::path::Path;
use std::time::{Duration, Instant};

/// When a report that is rewritten whole as scenarios finish is due again. Rewriting
/// after every scenario costs the square of the suite's size (each rewrite holds all so
/// far); so a rewrite waits until ten times what the last one took has passed since it
/// began (the report takes at most a tenth of the time), and at least `every`. A
/// change that finds no rewrite due is written at a later event, at the latest the
/// runner's next [`RunEvent::Tick`](crate::runner::RunEvent::Tick), so that the report
/// never stays behind a long scenario. The run's end always writes.
pub struct Rewrites {
    every: Duration,
    /// The last rewrite's start and how long it took.
    last: Option<(Instant, Duration)>,
    /// The report changed since it was last written.
    unwritten: bool,
}

impl Rewrites {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            unwritten: false,
        }
    }

    /// The report holds something its file does not.
    pub fn changed(&mut self) {
        self.unwritten = true;
    }

    /// Something is unwritten and its rewrite's time has come.
    pub fn due(&self) -> bool {
        self.unwritten
            && self
                .last
                .is_none_or(|(began, took)| began.elapsed() >= self.every.max(took * 10))
    }

    /// A rewrite that began at `began` is done.
    pub fn wrote(&mut self, began: Instant) {
        self.last = Some((began, began.elapsed()));
        self.unwritten = false;
    }
}

/// Write `contents` to `path` atomically: readers never see half a report.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report")
    ));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_waits_ten_times_what_the_last_one_took() {
        let mut rewrites = Rewrites::new(Duration::ZERO);
        assert!(!rewrites.due(), "nothing to write yet");
        rewrites.changed();
        assert!(rewrites.due(), "the first is due at once");
        // A rewrite that took 50 ms: the next is due 500 ms after it began, not before.
        let began = Instant::now() - Duration::from_millis(50);
        rewrites.wrote(began);
        rewrites.changed();
        assert!(!rewrites.due());
        rewrites.last = Some((
            Instant::now() - Duration::from_millis(501),
            Duration::from_millis(50),
        ));
        assert!(rewrites.due());
        // Written: nothing is due however long ago that was, until the next change.
        rewrites.wrote(Instant::now() - Duration::from_secs(10));
        assert!(!rewrites.due());
        // `every` is a floor.
        let mut html = Rewrites::new(Duration::from_secs(2));
        html.changed();
        html.last = Some((
            Instant::now() - Duration::from_millis(600),
            Duration::from_millis(1),
        ));
        assert!(!html.due());
    }
}
