//! The console: one line per scenario as it finishes (its output printed whole, so
//! parallel scenarios never interleave), failures with the spec line, a summary.

use std::io::Write;

use crate::diagnostic::Diagnostic;
use crate::runner::{Listener, RunEvent, ScenarioReport, Verdict};
use crate::spec::duration::format_duration;

pub struct Console {
    pub color: bool,
    pub out: Box<dyn Write + Send>,
    /// Draw a one-line progress status on stderr (terminals only; never in CI).
    pub progress: bool,
    failures: Vec<String>,
    /// Scenarios whose teardown did not get to its end.
    untorn: Vec<String>,
    total: usize,
    finished: usize,
    running: usize,
    failed: usize,
}

impl Console {
    pub fn new(color: bool) -> Self {
        Self {
            color,
            out: Box::new(std::io::stdout()),
            progress: false,
            failures: Vec::new(),
            untorn: Vec::new(),
            total: 0,
            finished: 0,
            running: 0,
            failed: 0,
        }
    }

    fn clear_progress(&self) {
        if self.progress {
            eprint!("\r\x1b[2K");
        }
    }

    fn draw_progress(&self) {
        if self.progress && self.finished < self.total {
            let width = 30;
            let done = (self.finished * width).checked_div(self.total).unwrap_or(0);
            eprint!(
                "\r\x1b[2K[{}{}] {}/{} finished, {} running, {} failed",
                "=".repeat(done),
                " ".repeat(width - done),
                self.finished,
                self.total,
                self.running,
                self.failed
            );
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn scenario_block(&self, report: &ScenarioReport) -> String {
        let attempt = report.last();
        let (label, code) = match report.verdict {
            Verdict::Passed => ("PASS", "32"),
            Verdict::Flaky => ("FLAKY", "33"),
            Verdict::Failed => ("FAIL", "31;1"),
            Verdict::Skipped => ("SKIP", "90"),
            Verdict::Interrupted => ("STOP", "33"),
        };
        let scenario = &report.planned.scenario;
        let total: std::time::Duration = report.attempts.iter().map(|a| a.duration).sum();
        let mut text = format!(
            "{} [{:>7}] {} {}{}\n",
            self.paint(code, &format!("{label:>5}")),
            format_duration(total),
            scenario.path().display(),
            scenario.name,
            if report.attempts.len() > 1 {
                format!(" ({} attempts)", report.attempts.len())
            } else {
                String::new()
            }
        );
        if matches!(
            report.verdict,
            Verdict::Failed | Verdict::Flaky | Verdict::Interrupted
        ) {
            let failed = report
                .attempts
                .iter()
                .find(|a| a.failure.is_some() || !a.teardown_failures.is_empty())
                .unwrap_or(attempt);
            for d in failed.failure.iter().chain(failed.teardown_failures.iter()) {
                text.push_str(&indent(&self.render(d)));
            }
            if !failed.ids.is_empty() {
                let ids: Vec<String> = failed
                    .ids
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                text.push_str(&format!("      ids: {}\n", ids.join(" ")));
            }
        }
        text
    }

    fn render(&self, d: &Diagnostic) -> String {
        d.render(self.color)
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}

impl Listener for Console {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { total, jobs } => {
                self.total = *total;
                let _ = writeln!(
                    self.out,
                    "running {total} scenario{} (up to {jobs} at a time)",
                    if *total == 1 { "" } else { "s" }
                );
            }
            RunEvent::ScenarioStarted { .. } => {
                self.running += 1;
                self.draw_progress();
            }
            RunEvent::Tick => {}
            RunEvent::ScenarioFinished(report) => {
                self.running = self.running.saturating_sub(1);
                self.finished += 1;
                if report.verdict == Verdict::Failed {
                    self.failed += 1;
                }
                self.clear_progress();
                let block = self.scenario_block(report);
                if matches!(report.verdict, Verdict::Failed | Verdict::Flaky) {
                    self.failures.push(format!(
                        "{} {} — {}",
                        if report.verdict == Verdict::Failed {
                            "FAIL"
                        } else {
                            "FLAKY"
                        },
                        report.planned.scenario.path().display(),
                        report.planned.scenario.name
                    ));
                }
                if report.attempts.iter().any(|a| !a.teardown_finished) {
                    self.untorn.push(format!(
                        "{} — {}",
                        report.planned.scenario.path().display(),
                        report.planned.scenario.name
                    ));
                }
                let _ = self.out.write_all(block.as_bytes());
                let _ = self.out.flush();
                self.draw_progress();
            }
            RunEvent::Finished(summary) => {
                self.clear_progress();
                let mut text = String::new();
                if !self.failures.is_empty() {
                    text.push_str("\nfailures:\n");
                    for f in &self.failures {
                        text.push_str(&format!("  {f}\n"));
                    }
                }
                if !self.untorn.is_empty() {
                    text.push_str("\nteardown did not finish (data may be left behind):\n");
                    for f in &self.untorn {
                        text.push_str(&format!("  {f}\n"));
                    }
                }
                let mut parts = vec![
                    self.paint("32", &format!("{} passed", summary.passed)),
                    self.paint(
                        if summary.failed > 0 { "31;1" } else { "0" },
                        &format!("{} failed", summary.failed),
                    ),
                ];
                if summary.flaky > 0 {
                    parts.push(self.paint("33", &format!("{} flaky", summary.flaky)));
                }
                if summary.skipped > 0 {
                    parts.push(format!("{} skipped", summary.skipped));
                }
                if summary.interrupted > 0 {
                    parts.push(self.paint("33", &format!("{} interrupted", summary.interrupted)));
                }
                if summary.not_run > 0 {
                    parts.push(format!("{} not run", summary.not_run));
                }
                text.push_str(&format!(
                    "\nsummary: {} in {}\n",
                    parts.join(", "),
                    format_duration(std::time::Duration::from_secs_f64(
                        summary.duration_ms / 1000.0
                    ))
                ));
                // The plain closing line CI tools read.
                text.push_str(&format!(
                    "{} passed, {} failed\n",
                    summary.passed + summary.flaky,
                    summary.failed
                ));
                let _ = self.out.write_all(text.as_bytes());
                let _ = self.out.flush();
            }
        }
    }
}
