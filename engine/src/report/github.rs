//! GitHub Actions annotations: `::error file=…,line=…::…` for each failed scenario, so
//! failures show on the pull request's diff. Enabled when `GITHUB_ACTIONS` is set.

use std::io::Write;

use crate::runner::{Listener, RunEvent, Verdict};

pub struct GithubAnnotations {
    pub out: Box<dyn Write + Send>,
}

/// Escape per GitHub's workflow command rules.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

impl Listener for GithubAnnotations {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        let RunEvent::ScenarioFinished(report) = event else {
            return;
        };
        let level = match report.verdict {
            Verdict::Failed => "error",
            Verdict::Flaky => "warning",
            _ => return,
        };
        let Some(attempt) = report
            .attempts
            .iter()
            .find(|a| a.failure.is_some() || !a.teardown_failures.is_empty())
        else {
            return;
        };
        for d in attempt
            .failure
            .iter()
            .chain(attempt.teardown_failures.iter())
        {
            let file = report.planned.scenario.path().display().to_string();
            let (line, col) = d.span.map_or((1, 1), |s| (s.line, s.col));
            let title = format!(
                "{}{}",
                if level == "warning" { "flaky: " } else { "" },
                report.planned.scenario.name
            );
            let body = d.render(false);
            let _ = writeln!(
                self.out,
                "::{level} file={},line={line},col={col},title={}::{}",
                escape_property(&file),
                escape_property(&title),
                escape_data(&body)
            );
        }
    }
}
