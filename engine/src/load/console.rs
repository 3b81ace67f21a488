//! What `engine load` shows on the terminal: the run's heading, the live one-line status
//! (on a terminal outside CI), the summary with the threshold verdicts, and what went
//! wrong. The one place load mode prints; [`super::report`] makes the text.

use std::io::{IsTerminal, Write};

use super::metrics::{LoadMetrics, SecondPoint};
use super::{report, LoadPlan};

pub struct LoadConsole {
    /// Redraw a status line every second (stderr is a terminal, not in CI).
    live: bool,
}

impl LoadConsole {
    pub fn new() -> Self {
        Self {
            live: std::io::stderr().is_terminal() && std::env::var_os("CI").is_none(),
        }
    }

    /// What runs, before it starts.
    pub fn heading(&self, plan: &LoadPlan) {
        eprintln!(
            "load: {} — {} (segment {})",
            plan.scenario.name,
            plan.executor.describe(),
            plan.segment
        );
    }

    /// The second just measured, drawn over the previous one.
    pub fn second(&self, point: &SecondPoint, metrics: &LoadMetrics) {
        if !self.live {
            return;
        }
        let line = report::status_line(
            point,
            metrics.elapsed().as_secs_f64(),
            metrics.iterations(),
            metrics.failed_iterations(),
        );
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// The run is over: the status line stays as it was last drawn.
    pub fn run_ended(&self) {
        if self.live {
            eprintln!();
        }
    }

    /// The summary table and the threshold verdicts, on stdout.
    pub fn summary(&self, summary: &str, verdicts: &str) {
        println!("{summary}{verdicts}");
    }

    /// Why the run failed, or what could not be written.
    pub fn error(&self, message: &str) {
        eprintln!("error: {message}");
    }
}

impl Default for LoadConsole {
    fn default() -> Self {
        Self::new()
    }
}
