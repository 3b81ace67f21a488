//! JUnit XML that GitHub, GitLab and Jenkins read: one `testsuite` per spec file, one
//! `testcase` per scenario (per repetition), failures with `file:line` and the full
//! expected/got text; flaky scenarios keep their failed attempts as reruns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::write_atomically;
use crate::runner::{Attempt, Listener, RunEvent, ScenarioReport, Verdict};

pub struct JunitReport {
    path: PathBuf,
    /// Spec file → its test cases so far, in finishing order.
    suites: BTreeMap<String, Vec<TestCase>>,
    elapsed: Duration,
}

impl JunitReport {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            suites: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn failure_text(attempt: &Attempt) -> (String, String) {
        let mut message = String::new();
        let mut description = String::new();
        for d in attempt
            .failure
            .iter()
            .chain(attempt.teardown_failures.iter())
        {
            if message.is_empty() {
                message = match d.location() {
                    Some(at) => format!("{at}: {}", d.message),
                    None => d.message.clone(),
                };
            }
            description.push_str(&d.render(false));
        }
        if !attempt.ids.is_empty() {
            let ids: Vec<String> = attempt
                .ids
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            description.push_str(&format!("ids: {}\n", ids.join(" ")));
        }
        (message, description)
    }

    fn case(&self, report: &ScenarioReport) -> TestCase {
        let last = report.last();
        let status = match report.verdict {
            Verdict::Passed | Verdict::Flaky => {
                let mut status = TestCaseStatus::success();
                for failed in report
                    .attempts
                    .iter()
                    .filter(|a| a.status == crate::runner::Status::Failed)
                {
                    let (message, description) = Self::failure_text(failed);
                    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                    rerun
                        .set_message(message)
                        .set_description(description)
                        .set_time(failed.duration);
                    status.add_rerun(rerun);
                }
                status
            }
            Verdict::Skipped => {
                let mut status = TestCaseStatus::skipped();
                if let Some(d) = &last.failure {
                    status.set_message(d.message.clone());
                }
                status
            }
            Verdict::Failed => {
                let (message, description) = Self::failure_text(last);
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(message)
                    .set_type("assertion")
                    .set_description(description);
                for earlier in &report.attempts[..report.attempts.len() - 1] {
                    let (message, description) = Self::failure_text(earlier);
                    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                    rerun
                        .set_message(message)
                        .set_description(description)
                        .set_time(earlier.duration);
                    status.add_rerun(rerun);
                }
                status
            }
        };
        let scenario = &report.planned.scenario;
        let name = if report.planned.iteration > 0 {
            format!(
                "{} (repeat {})",
                scenario.name,
                report.planned.iteration + 1
            )
        } else {
            scenario.name.clone()
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(scenario.path().display().to_string())
            .set_time(report.attempts.iter().map(|a| a.duration).sum());
        case
    }

    fn write(&self) {
        let mut report = Report::new("engine");
        report.set_time(self.elapsed);
        for (file, cases) in &self.suites {
            let mut suite = TestSuite::new(file.clone());
            suite.add_test_cases(cases.iter().cloned());
            report.add_test_suite(suite);
        }
        if let Ok(xml) = report.to_string() {
            if let Err(e) = write_atomically(&self.path, xml.as_bytes()) {
                eprintln!(
                    "error: cannot write JUnit report {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

impl Listener for JunitReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { .. } => self.write(),
            RunEvent::ScenarioFinished(report) => {
                let case = self.case(report);
                self.suites
                    .entry(report.planned.scenario.path().display().to_string())
                    .or_default()
                    .push(case);
                self.write();
            }
            RunEvent::Finished(summary) => {
                self.elapsed = Duration::from_secs_f64(summary.duration_ms / 1000.0);
                self.write();
            }
            RunEvent::ScenarioStarted { .. } => {}
        }
    }
}
