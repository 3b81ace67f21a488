//! Scenario reports for the listeners' unit tests.

use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::{Diagnostic, SourceFile, Span};
use crate::runner::{Attempt, Status};
use crate::spec::model::Scenario;

pub fn scenario(path: &str, name: &str) -> Arc<Scenario> {
    Arc::new(Scenario {
        source: SourceFile::new(path, "name: x\nsteps: []\n"),
        name: name.to_string(),
        description: None,
        tags: Vec::new(),
        skip: None,
        timeout: None,
        ids: Vec::new(),
        vars: Default::default(),
        setup: Vec::new(),
        steps: Vec::new(),
        teardown: Vec::new(),
        load: None,
        index: Default::default(),
        case: None,
    })
}

pub fn attempt(status: Status, message: &str, note: &str) -> Attempt {
    let source = SourceFile::new("a.yaml", message);
    Attempt {
        status,
        duration: Duration::from_millis(3),
        ids: [("u".to_string(), serde_json::json!(note))]
            .into_iter()
            .collect(),
        steps: Vec::new(),
        failure: (status != Status::Passed).then(|| {
            Diagnostic::new(message)
                .at(&source, Span { line: 1, col: 1 })
                .note(note)
                .hint(message)
        }),
        teardown_failures: vec![Diagnostic::new(note)],
        teardown_finished: status != Status::Interrupted,
        frames: Vec::new(),
        frames_omitted: Default::default(),
    }
}

/// A passed scenario's report, as the runner sends it when the scenario finishes.
pub fn finished(index: usize, name: &str) -> crate::runner::ScenarioReport {
    crate::runner::ScenarioReport {
        index,
        planned: crate::runner::Planned {
            scenario: scenario("a.yaml", name),
            config: Arc::default(),
            iteration: 0,
        },
        verdict: crate::runner::Verdict::Passed,
        attempts: vec![attempt(Status::Passed, "", "")],
    }
}
