//! The HTML report (`engine run --html FILE`): one self-contained page — the JSON
//! report's content embedded as data, rendered by an inline script into a summary with
//! filters and, per scenario, its attempts side by side, each on one time axis: steps,
//! one swimlane per connection with its frames, what state assertions expected and
//! found, minted IDs. Failures are listed first and open.
//!
//! It holds what the attempts hold, already redacted (see [`crate::redact`]), and the
//! frames the runner kept for reports. Being larger than the JSON report, it is
//! rewritten at most once a [`REWRITE_EVERY`] while the run goes (and less often when
//! rewriting takes long: [`Rewrites`]), and always at its end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::json::Entries;
use super::page::{script_json, Chip, Page};
use super::{write_atomically, Rewrites};
use crate::runner::{Listener, RunEvent, Summary};
use crate::spec::duration::format_duration;

/// How often, at most, the page is rewritten during a run.
pub const REWRITE_EVERY: Duration = Duration::from_secs(2);

const REPORT_STYLE: &str = include_str!("assets/report.css");
const REPORT_SCRIPT: &str = include_str!("assets/report.js");

pub struct HtmlReport {
    path: PathBuf,
    entries: Entries,
    rewrites: Rewrites,
}

impl HtmlReport {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            entries: Entries::default(),
            rewrites: Rewrites::new(REWRITE_EVERY),
        }
    }

    fn write(&mut self, summary: Option<&Summary>) {
        let began = Instant::now();
        write_page(&self.path, &self.entries, summary);
        self.rewrites.wrote(began);
    }
}

fn write_page(path: &std::path::Path, entries: &Entries, summary: Option<&Summary>) {
    let page = match entries.to_json(summary) {
        Ok(json) => render(&json, entries.started_at(), summary),
        Err(e) => {
            eprintln!("error: cannot serialize the HTML report: {e}");
            return;
        }
    };
    if let Err(e) = write_atomically(path, page.as_bytes()) {
        eprintln!("error: cannot write HTML report {}: {e}", path.display());
    }
}

/// The page for a JSON report document.
pub fn render(json: &str, started_at: &str, summary: Option<&Summary>) -> String {
    let meta = match summary {
        Some(s) => format!(
            "started {started_at} · took {}",
            format_duration(Duration::from_secs_f64(s.duration_ms.max(0.0) / 1000.0))
        ),
        None => format!("started {started_at} · still running (or interrupted)"),
    };
    let chips = match summary {
        Some(s) => vec![
            Chip::count("failed", s.failed, "failed"),
            Chip::count("flaky", s.flaky, "flaky"),
            Chip::count("passed", s.passed, "passed"),
            Chip::count("skipped", s.skipped, "skipped"),
            Chip::count("not_run", s.interrupted, "interrupted"),
            Chip::count("not_run", s.not_run, "not run"),
            Chip::text(format!("{} total", s.total)),
        ],
        None => Vec::new(),
    };
    let body = format!(
        "<div id=\"app\"><noscript><div class=\"panel\">This report is drawn by its own \
         inline script; the same data is in the element <code>report-data</code> of this \
         page's source (the JSON report's format).</div></noscript></div>\n\
         <script type=\"application/json\" id=\"report-data\">{}</script>\n",
        script_json(json)
    );
    Page {
        title: "engine run report",
        meta: &meta,
        chips,
        extra_style: REPORT_STYLE,
        body: &body,
        script: REPORT_SCRIPT,
    }
    .render()
}

impl Listener for HtmlReport {
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
    use super::*;

    #[test]
    fn the_page_embeds_the_data_escaped_and_loads_nothing() {
        let json = r#"{"scenarios":[{"name":"</script><script>alert(1)</script>"}]}"#;
        let summary = Summary {
            total: 3,
            passed: 1,
            failed: 2,
            ..Summary::default()
        };
        let page = render(json, "2024-01-01T00:00:00Z", Some(&summary));
        assert_eq!(page.matches("</script>").count(), 2, "data + renderer only");
        assert!(page.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert!(page.contains("<span class=\"chip failed\">2 failed</span>"));
        assert!(page.contains("<span class=\"chip flaky zero\">0 flaky</span>"));
        assert!(!page.contains("<script src") && !page.contains("<link"));
        assert!(!page.contains("https://") && !page.contains("http://"));
    }
}
