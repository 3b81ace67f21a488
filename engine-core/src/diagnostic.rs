//! One renderer for everything a user sees about a spec: parse errors, validation
//! errors and run-time failures all become a [`Diagnostic`] and print the same way:
//! `--> file:line:col`, the numbered source line, a caret, then notes and a hint.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// A position in a spec file, 1-based like editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

/// The text of a spec file, kept so that any later error can show its source line.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            text: text.into(),
        })
    }

    fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// Where a library step was called from.
pub type CallSite = (Arc<SourceFile>, Span);

/// What went wrong, as a type: set where a failure is made, never read back from its
/// message. Load mode counts failures by it; the JSON report carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The spec or the suite config is wrong: what `engine check` reports, and what only
    /// shows at run time (a missing connection name, an invalid `range`, a bad key file).
    #[default]
    Spec,
    /// A template failed to render, or rendered a value of the wrong type.
    Template,
    /// A wait or a deadline ran out: an `expect`, a close, a command, the scenario.
    Timeout,
    /// The connection closed before what was awaited arrived, or could not be sent on.
    ConnectionClosed,
    /// A connection was refused: no WebSocket handshake, or an HTTP status instead.
    Refused,
    /// What arrived or was read differs from what was expected: an event, a row, a key,
    /// a close code, an HTTP status, a capture that found nothing.
    Mismatch,
    /// An event broke its JSON Schema.
    SchemaViolation,
    /// An `assert` comparison did not hold.
    Assertion,
    /// The database refused a connection or a query failed.
    Database,
    /// The Redis server refused a connection or a command failed.
    Redis,
    /// An HTTP request failed or its response could not be read.
    Http,
    /// A process could not be started, or did not get ready.
    Process,
    /// The run was asked to stop (a signal) while this ran.
    Interrupted,
    /// Not run: the scenario is marked `skip`.
    Skipped,
}

impl FailureKind {
    /// Its name in reports and in load mode's `failures.by_kind`.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Spec => "spec",
            FailureKind::Template => "template",
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionClosed => "connection_closed",
            FailureKind::Refused => "refused",
            FailureKind::Mismatch => "mismatch",
            FailureKind::SchemaViolation => "schema_violation",
            FailureKind::Assertion => "assertion",
            FailureKind::Database => "database",
            FailureKind::Redis => "redis",
            FailureKind::Http => "http",
            FailureKind::Process => "process",
            FailureKind::Interrupted => "interrupted",
            FailureKind::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A user-facing problem, tied to a place in a spec when there is one.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// What went wrong, as a type ([`FailureKind::Spec`] for what the checker finds).
    pub kind: FailureKind,
    pub message: String,
    pub source: Option<Arc<SourceFile>>,
    pub span: Option<Span>,
    /// Extra lines shown under the source excerpt (expected/got, received events...).
    pub notes: Vec<String>,
    pub hint: Option<String>,
    /// For a failure inside a library step: the calls that led there, innermost first
    /// (boxed: most diagnostics have none, and every `Result` carries this type).
    pub called_from: Option<Box<Vec<CallSite>>>,
}

impl Diagnostic {
    /// A problem with the spec or the suite config ([`FailureKind::Spec`]).
    pub fn new(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Spec, message)
    }

    /// A problem of this kind.
    pub fn of(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            span: None,
            notes: Vec::new(),
            hint: None,
            called_from: None,
        }
    }

    pub fn at(mut self, source: &Arc<SourceFile>, span: Span) -> Self {
        self.source = Some(source.clone());
        self.span = Some(span);
        self
    }

    /// Locate it here unless it already points somewhere (an inner step did).
    pub fn at_if_unlocated(self, source: &Arc<SourceFile>, span: Span) -> Self {
        match self.span {
            Some(_) => self,
            None => self.at(source, span),
        }
    }

    /// Add a call site: the failure happened inside a library step called from here.
    pub fn called_from(mut self, source: &Arc<SourceFile>, span: Span) -> Self {
        self.called_from
            .get_or_insert_with(Default::default)
            .push((source.clone(), span));
        self
    }

    /// Classify it anew: an outer step knows better what an inner error means.
    pub fn kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn in_file(mut self, source: &Arc<SourceFile>) -> Self {
        self.source = Some(source.clone());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col`, or just the file, or nothing.
    pub fn location(&self) -> Option<String> {
        let source = self.source.as_ref()?;
        Some(match self.span {
            Some(span) => format!("{}:{}:{}", source.path.display(), span.line, span.col),
            None => source.path.display().to_string(),
        })
    }

    /// Render for a terminal or a report. `color` adds ANSI styling.
    pub fn render(&self, color: bool) -> String {
        let (red, blue, bold, reset) = if color {
            ("\x1b[31m", "\x1b[34m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{red}{bold}error{reset}{bold}: {}{reset}",
            self.message
        );
        if let Some(location) = self.location() {
            let _ = writeln!(out, "  {blue}-->{reset} {location}");
        }
        if let (Some(source), Some(span)) = (&self.source, self.span) {
            excerpt(&mut out, source, span, (red, blue, reset));
        }
        for (source, span) in self.called_from.iter().flat_map(|c| c.iter()) {
            let _ = writeln!(
                out,
                "  {blue}:::{reset} called from {}:{}:{}",
                source.path.display(),
                span.line,
                span.col
            );
            excerpt(&mut out, source, *span, (red, blue, reset));
        }
        for note in &self.notes {
            for (i, line) in note.lines().enumerate() {
                let lead = if i == 0 { "= " } else { "  " };
                let _ = writeln!(out, "  {lead}{line}");
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  {bold}hint{reset}: {hint}");
        }
        out
    }
}

/// The numbered source line at `span` with a caret under its column.
fn excerpt(
    out: &mut String,
    source: &SourceFile,
    span: Span,
    (red, blue, reset): (&str, &str, &str),
) {
    let Some(line) = source.line(span.line) else {
        return;
    };
    let (text, col) = window(line, span.col);
    let span = Span { col, ..span };
    let number = span.line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(out, "  {pad} {blue}|{reset}");
    let _ = writeln!(out, "  {blue}{number} |{reset} {text}");
    let caret_pad: String = text
        .chars()
        .take(span.col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "  {pad} {blue}|{reset} {caret_pad}{red}^{reset}");
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// Longest source line shown whole; longer ones (a 40 KB one-line document) are cut
/// to a window around the column.
const MAX_EXCERPT: usize = 160;

/// The part of `line` to show, and the column within it.
fn window(line: &str, col: usize) -> (String, usize) {
    let len = line.chars().count();
    if len <= MAX_EXCERPT {
        return (line.to_string(), col);
    }
    let start = col
        .saturating_sub(MAX_EXCERPT / 2)
        .min(len - MAX_EXCERPT / 2);
    let window: String = line.chars().skip(start).take(MAX_EXCERPT).collect();
    let tail = if start + MAX_EXCERPT < len { "…" } else { "" };
    if start == 0 {
        (format!("{window}{tail}"), col)
    } else {
        (format!("…{window}{tail}"), col - start + 1)
    }
}

/// "did you mean" against a list of valid names, by edit distance.
pub fn did_you_mean<'a>(wrong: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<String> {
    valid
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(wrong, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_source_line_and_caret() {
        let source = SourceFile::new("specs/a.yaml", "name: x\nsteps:\n  - sned: {}\n");
        let d = Diagnostic::new("unknown step kind `sned`")
            .at(&source, Span { line: 3, col: 5 })
            .hint("did you mean `send`?");
        let text = d.render(false);
        assert!(text.contains("--> specs/a.yaml:3:5"), "{text}");
        assert!(text.contains("3 |   - sned: {}"), "{text}");
        assert!(text.contains("|     ^"), "{text}");
        assert!(text.contains("hint: did you mean `send`?"), "{text}");
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("a: {}x{}", "[".repeat(5000), "]".repeat(5000));
        let source = SourceFile::new("a.yaml", line);
        let text = Diagnostic::new("deep")
            .at(&source, Span { line: 1, col: 5004 })
            .render(false);
        assert!(text.len() < 600, "{text}");
        let source_line = text.lines().nth(3).unwrap();
        let caret_line = text.lines().nth(4).unwrap();
        let caret = caret_line.chars().count() - 1;
        assert_eq!(source_line.chars().nth(caret), Some('x'), "{text}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("sned", ["send", "expect", "connect"]).as_deref(),
            Some("did you mean `send`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["send", "expect"]), None);
    }
}
