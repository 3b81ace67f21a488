//! JUnit XML that GitHub, GitLab and Jenkins read: one `testsuite` per spec file, one
//! `testcase` per scenario (per repetition), failures with `file:line` and the full
//! expected/got text; flaky scenarios keep their failed attempts as reruns.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{write_atomically, Rewrites};
use crate::runner::{Attempt, Listener, RunEvent, ScenarioReport, Verdict};

pub struct JunitReport {
    path: PathBuf,
    /// Spec file → its test cases so far, in finishing order.
    suites: BTreeMap<String, Vec<TestCase>>,
    elapsed: Duration,
    rewrites: Rewrites,
}

impl JunitReport {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            suites: BTreeMap::new(),
            elapsed: Duration::ZERO,
            rewrites: Rewrites::new(Duration::ZERO),
        }
    }

    fn write(&mut self) {
        let began = std::time::Instant::now();
        self.write_now();
        self.rewrites.wrote(began);
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
        (visible(&message), visible(&description))
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
                    status.set_message(visible(&d.message));
                }
                status
            }
            Verdict::Failed | Verdict::Interrupted => {
                let (message, description) = Self::failure_text(last);
                let kind = if report.verdict == Verdict::Interrupted {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                // The failure's kind (`timeout`, `mismatch`…) as the JUnit type.
                let kind_name = last.failure.as_ref().map_or(
                    if kind == NonSuccessKind::Error {
                        "interrupted"
                    } else {
                        "failure"
                    },
                    |d| d.kind.name(),
                );
                let mut status = TestCaseStatus::non_success(kind);
                status
                    .set_message(message)
                    .set_type(kind_name)
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
        let mut case = TestCase::new(visible(&name), status);
        case.set_classname(visible(&scenario.path().display().to_string()))
            .set_time(report.attempts.iter().map(|a| a.duration).sum());
        if report.attempts.iter().any(|a| !a.teardown_finished) {
            case.add_property(quick_junit::Property::new("teardown_finished", "false"));
        }
        case
    }

    fn write_now(&self) {
        let mut report = Report::new("engine");
        report.set_time(self.elapsed);
        for (file, cases) in &self.suites {
            let mut suite = TestSuite::new(visible(file));
            suite.add_test_cases(cases.iter().cloned());
            report.add_test_suite(suite);
        }
        let written = report
            .to_string()
            .map_err(|e| e.to_string())
            .and_then(|xml| {
                write_atomically(&self.path, xml_safe(&xml).as_bytes()).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!(
                "error: cannot write JUnit report {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Characters XML 1.0 allows at all, escaped or not (<https://www.w3.org/TR/xml/#charsets>).
fn xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Text for the report with every character XML forbids (control characters such as
/// ANSI escapes, U+FFFE, U+FFFF) or discourages (DEL and C1 controls) written as a
/// visible `\u{…}`: names and messages may hold anything. quick-junit would silently
/// drop most control characters, and keeps U+FFFE and U+FFFF, which break the file.
fn visible(text: &str) -> String {
    escape_unless(text, |c| xml_char(c) && !('\u{7f}'..='\u{9f}').contains(&c)).into_owned()
}

/// The serialized document with anything XML forbids made visible: the guarantee that
/// the file is well-formed, whatever reached the model (markup never holds such
/// characters, so this touches text only).
fn xml_safe(xml: &str) -> Cow<'_, str> {
    escape_unless(xml, xml_char)
}

fn escape_unless(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if text.chars().all(&keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
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
                self.rewrites.changed();
            }
            RunEvent::Finished(summary) => {
                self.elapsed = Duration::from_secs_f64(summary.duration_ms / 1000.0);
                self.write();
            }
            RunEvent::ScenarioStarted { .. } | RunEvent::Tick => {}
        }
        // Every event is a chance to write what waited for its rewrite's turn.
        if self.rewrites.due() {
            self.write();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::report::test_reports::{attempt, scenario};
    use crate::runner::{Planned, Status, Summary};

    /// Write a report of `cases` (path, name, message, note, verdict) and return its text.
    fn junit_of(cases: &[(String, String, String, String, Verdict)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut report = JunitReport::new(path.clone());
        report.on_event(&RunEvent::Started { total: 1, jobs: 1 });
        for (index, (file, name, message, note, verdict)) in cases.iter().enumerate() {
            let attempts = match verdict {
                Verdict::Passed => vec![attempt(Status::Passed, message, note)],
                Verdict::Failed => vec![attempt(Status::Failed, message, note)],
                Verdict::Skipped => vec![attempt(Status::Skipped, message, note)],
                Verdict::Interrupted => vec![attempt(Status::Interrupted, message, note)],
                Verdict::Flaky => vec![
                    attempt(Status::Failed, message, note),
                    attempt(Status::Passed, message, note),
                ],
            };
            let finished = ScenarioReport {
                index,
                planned: Planned {
                    scenario: scenario(file, name),
                    config: Arc::default(),
                    iteration: index % 2,
                },
                verdict: *verdict,
                attempts,
            };
            report.on_event(&RunEvent::ScenarioFinished(&finished));
        }
        report.on_event(&RunEvent::Finished(&Summary::default()));
        std::fs::read_to_string(&path).unwrap()
    }

    fn verdict() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::Passed),
            Just(Verdict::Failed),
            Just(Verdict::Flaky),
            Just(Verdict::Skipped),
            Just(Verdict::Interrupted),
        ]
    }

    /// Any text, with the characters that break XML much more likely than at random.
    fn text() -> impl Strategy<Value = String> {
        let awkward = prop_oneof![
            Just('\u{FFFE}'),
            Just('\u{FFFF}'),
            Just('\u{0}'),
            Just('\u{1b}'),
            Just('\u{7}'),
            Just('\u{D7FF}'),
            Just('\u{E000}'),
            Just('<'),
            Just('&'),
            Just('"'),
            Just(']'),
            Just('>'),
            Just('\r'),
        ];
        proptest::collection::vec(prop_oneof![any::<char>(), awkward], 0..40)
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// Parsers normalise line ends and whitespace in attribute values: compare without.
    fn normalised(text: &str) -> String {
        text.chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r' | ' '))
            .collect()
    }

    proptest! {
        #[test]
        fn junit_is_well_formed_xml_for_any_text(
            cases in proptest::collection::vec((text(), text(), text(), text(), verdict()), 1..6)
        ) {
            let xml = junit_of(&cases);
            let document = roxmltree::Document::parse(&xml)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{xml:?}")))?;
            let names: Vec<String> = document
                .descendants()
                .filter(|n| n.has_tag_name("testcase"))
                .map(|n| normalised(n.attribute("name").unwrap_or_default()))
                .collect();
            prop_assert_eq!(names.len(), cases.len());
            // Each name survives, its forbidden characters written as `\u{…}`.
            for (file, name, _, _, _) in &cases {
                let expected = normalised(&visible(name));
                prop_assert!(
                    names.iter().any(|n| n.starts_with(&expected)),
                    "{:?} not among {:?} (file {:?})", expected, names, file
                );
            }
        }
    }

    #[test]
    fn the_parser_rejects_what_xml_forbids() {
        // The property above is only worth something if this parser would notice.
        for bad in ['\u{FFFE}', '\u{FFFF}', '\u{1b}', '\u{0}'] {
            let xml = format!("<a b=\"{bad}\">{bad}</a>");
            assert!(roxmltree::Document::parse(&xml).is_err(), "{bad:?}");
            assert!(
                roxmltree::Document::parse(&xml_safe(&xml)).is_ok(),
                "{bad:?}"
            );
        }
        assert_eq!(xml_safe("a\u{FFFE}b\u{1b}[31m"), "a\\u{fffe}b\\u{1b}[31m");
        assert!(matches!(xml_safe("plain <&>"), Cow::Borrowed(_)));
    }
}
