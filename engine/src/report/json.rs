//! The JSON report: a documented, stable schema (`schemas/report.schema.json`) with
//! per-step timings, the minted IDs, and the frames sent and received on each
//! connection with their time — the raw material for a timeline. Which frames the
//! runner keeps is `--report-frames`; the report counts the ones left out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{write_atomically, Rewrites};
use crate::diagnostic::Diagnostic;
use crate::runner::scenario::StepRecord;
use crate::runner::transcript::FrameRecord;
use crate::runner::{Attempt, Listener, RunEvent, ScenarioReport, Status, Summary, Verdict};

pub const FORMAT: &str = "engine-report";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u32,
    started_at: String,
    /// False while the run is going (or if it was interrupted).
    finished: bool,
    summary: Option<&'a Summary>,
    scenarios: &'a [ScenarioEntry],
}

#[derive(Serialize, Clone)]
struct ScenarioEntry {
    file: String,
    name: String,
    tags: Vec<String>,
    iteration: usize,
    verdict: Verdict,
    duration_ms: f64,
    attempts: Vec<AttemptEntry>,
}

#[derive(Serialize, Clone)]
struct AttemptEntry {
    status: Status,
    duration_ms: f64,
    ids: serde_json::Map<String, Value>,
    steps: Vec<StepRecord>,
    failure: Option<FailureEntry>,
    teardown_failures: Vec<FailureEntry>,
    /// False when teardown did not get to its end (deadline, or an immediate stop).
    teardown_finished: bool,
    frames: Vec<FrameRecord>,
    frames_omitted: BTreeMap<String, u64>,
}

#[derive(Serialize, Clone)]
struct FailureEntry {
    /// What went wrong, as a type (`timeout`, `mismatch`, `connection_closed`…).
    kind: crate::diagnostic::FailureKind,
    message: String,
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    notes: Vec<String>,
    hint: Option<String>,
    /// The same text the console shows.
    rendered: String,
}

impl From<&Diagnostic> for FailureEntry {
    fn from(d: &Diagnostic) -> Self {
        FailureEntry {
            kind: d.kind,
            message: d.message.clone(),
            file: d.source.as_ref().map(|s| s.path.display().to_string()),
            line: d.span.map(|s| s.line),
            column: d.span.map(|s| s.col),
            notes: d.notes.clone(),
            hint: d.hint.clone(),
            rendered: d.render(false),
        }
    }
}

impl From<&Attempt> for AttemptEntry {
    fn from(a: &Attempt) -> Self {
        AttemptEntry {
            status: a.status,
            duration_ms: a.duration.as_secs_f64() * 1000.0,
            ids: a.ids.clone(),
            steps: a.steps.clone(),
            failure: a.failure.as_ref().map(FailureEntry::from),
            teardown_failures: a.teardown_failures.iter().map(FailureEntry::from).collect(),
            teardown_finished: a.teardown_finished,
            frames: a.frames.clone(),
            frames_omitted: a.frames_omitted.clone(),
        }
    }
}

/// The report's content as the run goes: the JSON report writes it as it is, the HTML
/// report embeds it.
pub struct Entries {
    started_at: String,
    scenarios: Vec<ScenarioEntry>,
}

impl Default for Entries {
    fn default() -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339(),
            scenarios: Vec::new(),
        }
    }
}

impl Entries {
    pub fn push(&mut self, report: &ScenarioReport) {
        self.scenarios.push(Self::entry(report));
    }

    pub fn started_at(&self) -> &str {
        &self.started_at
    }

    /// The document; `summary` once the run finished.
    pub fn to_json(&self, summary: Option<&Summary>) -> serde_json::Result<String> {
        let document = Document {
            format: FORMAT,
            version: VERSION,
            started_at: self.started_at.clone(),
            finished: summary.is_some(),
            summary,
            scenarios: &self.scenarios,
        };
        serde_json::to_string(&document)
    }

    fn entry(report: &ScenarioReport) -> ScenarioEntry {
        let scenario = &report.planned.scenario;
        ScenarioEntry {
            file: scenario.path().display().to_string(),
            name: scenario.name.clone(),
            tags: scenario.tags.clone(),
            iteration: report.planned.iteration,
            verdict: report.verdict,
            duration_ms: report
                .attempts
                .iter()
                .map(|a| a.duration.as_secs_f64() * 1000.0)
                .sum(),
            attempts: report.attempts.iter().map(AttemptEntry::from).collect(),
        }
    }
}

pub struct JsonReport {
    path: PathBuf,
    entries: Entries,
    rewrites: Rewrites,
}

impl JsonReport {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            entries: Entries::default(),
            rewrites: Rewrites::new(std::time::Duration::ZERO),
        }
    }

    fn write(&mut self, summary: Option<&Summary>) {
        let began = std::time::Instant::now();
        write_report(&self.path, &self.entries, summary);
        self.rewrites.wrote(began);
    }
}

fn write_report(path: &std::path::Path, entries: &Entries, summary: Option<&Summary>) {
    let text = match entries.to_json(summary) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot serialize the JSON report: {e}");
            return;
        }
    };
    if let Err(e) = write_atomically(path, text.as_bytes()) {
        eprintln!("error: cannot write JSON report {}: {e}", path.display());
    }
}

impl Listener for JsonReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { .. } => self.write(None),
            RunEvent::ScenarioFinished(report) => {
                self.entries.push(report);
                self.rewrites.changed();
            }
            RunEvent::Finished(summary) => self.write(Some(summary)),
            RunEvent::ScenarioStarted { .. } | RunEvent::Tick => {}
        }
        // Every event is a chance to write what waited for its rewrite's turn.
        if self.rewrites.due() {
            self.write(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::report::test_reports::finished;

    fn scenarios_in(path: &std::path::Path) -> usize {
        let text = std::fs::read_to_string(path).unwrap();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        report["scenarios"].as_array().unwrap().len()
    }

    /// A scenario that finished while no rewrite was due is written at a later tick,
    /// not held back until the next scenario finishes (which may be a long one).
    #[test]
    fn a_scenario_finished_while_no_rewrite_was_due_is_written_at_a_later_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut report = JsonReport::new(path.clone());
        report.on_event(&RunEvent::Started { total: 2, jobs: 1 });
        // The first write took a second: the next is due ten seconds after it began.
        report.rewrites.last = Some((Instant::now(), Duration::from_secs(1)));
        report.on_event(&RunEvent::ScenarioFinished(&finished(0, "quick")));
        assert_eq!(scenarios_in(&path), 0, "not due yet");
        report.on_event(&RunEvent::Tick);
        assert_eq!(scenarios_in(&path), 0, "still not due");
        report.rewrites.last = Some((
            Instant::now() - Duration::from_secs(11),
            Duration::from_secs(1),
        ));
        report.on_event(&RunEvent::Tick);
        assert_eq!(scenarios_in(&path), 1);
    }
}
