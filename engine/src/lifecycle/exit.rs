//! Exit codes by class, and the errors that end a run before or around its scenarios,
//! each carrying its class as a type: 0 all passed, 1 a scenario failed, 2 a spec or
//! usage error, 3 the environment (a `serve` entry that never gets ready, a configured
//! database or Redis server that refuses), 128 + N stopped by signal N.

use crate::diagnostic::{Diagnostic, FailureKind};
use crate::runner::serve::ServeError;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every selected scenario passed (load: every threshold held).
    Passed,
    /// A scenario failed (load: a threshold broke, or every iteration failed).
    Failed,
    /// The specs, the suite config or the command line are wrong; nothing ran.
    Usage,
    /// Something the run needs is missing or refuses; no scenario ran.
    Environment,
    /// Stopped by this signal (gracefully or at once).
    Signal(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Passed => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Environment => 3,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

/// A configured service that did not answer the pre-flight check.
#[derive(Debug, thiserror::Error)]
#[error("{kind} `{name}` at {url} refuses: {reason}")]
pub struct Refused {
    /// "database" or "Redis server".
    pub kind: &'static str,
    pub name: String,
    /// Rendered, password hidden.
    pub url: String,
    pub reason: crate::runner::serve::ProbeError,
    /// The suite config that declares it.
    pub config: String,
}

/// Why a run ended before (or instead of) its scenarios.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{} problem(s) in specs", .0.len())]
    Spec(Vec<Diagnostic>),
    /// A path, or the suite config found for it, that cannot be read.
    #[error("{}", .0.message)]
    Unreadable(Box<Diagnostic>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Shard(#[from] crate::cli::ShardError),
    #[error("{0}")]
    Record(#[from] crate::record::RecordError),
    /// `engine load`'s settings (the `load:` block and the flags).
    #[error("{0}")]
    LoadSettings(#[from] crate::load::config::SettingsError),
    #[error("{0}")]
    Segment(#[from] crate::load::segment::SegmentError),
    /// Load results given to `engine load merge` that cannot be merged.
    #[error("{0}")]
    LoadResults(#[from] crate::load::metrics::ResultError),
    #[error("serve {0}")]
    Serve(#[from] ServeError),
    #[error("{} configured service(s) refuse", .0.len())]
    Refused(Vec<Refused>),
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        source: std::io::Error,
    },
}

impl RunError {
    /// The class of the failure, as an exit code.
    pub fn exit(&self) -> Exit {
        match self {
            RunError::Spec(_)
            | RunError::Unreadable(_)
            | RunError::Usage(_)
            | RunError::Shard(_)
            | RunError::LoadSettings(_)
            | RunError::Segment(_)
            | RunError::LoadResults(_) => Exit::Usage,
            RunError::Serve(ServeError::Template { .. }) => Exit::Usage,
            RunError::Record(e) => e.exit(),
            RunError::Serve(ServeError::Interrupted { signal, .. }) => Exit::Signal(*signal),
            RunError::Serve(_) | RunError::Refused(_) | RunError::System { .. } => {
                Exit::Environment
            }
        }
    }

    /// A closing line after the diagnostics (how many problems), if any.
    pub fn summary(&self) -> Option<String> {
        match self {
            RunError::Spec(_) => Some(self.to_string()),
            _ => None,
        }
    }

    /// What the user sees, through the one renderer.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            RunError::Spec(problems) => problems.clone(),
            RunError::Unreadable(problem) => vec![(**problem).clone()],
            RunError::Refused(refused) => refused
                .iter()
                .map(|r| {
                    Diagnostic::of(FailureKind::Refused, r.to_string())
                        .note(format!("declared in {}", r.config))
                        .hint("start it, or point the suite config (or its env) at one that runs")
                })
                .collect(),
            RunError::Serve(ServeError::NotReady { .. } | ServeError::Exited { .. }) => {
                vec![Diagnostic::new(self.to_string())
                    .hint("no scenario ran: the environment is not ready (exit code 3)")]
            }
            _ => vec![Diagnostic::new(self.to_string())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_their_codes() {
        assert_eq!(RunError::Usage("x".into()).exit().code(), 2);
        assert_eq!(RunError::Spec(Vec::new()).exit().code(), 2);
        assert_eq!(
            RunError::from(crate::cli::ShardError::NotAFraction)
                .exit()
                .code(),
            2
        );
        assert_eq!(RunError::Refused(Vec::new()).exit().code(), 3);
        let template = ServeError::Template {
            name: "db".into(),
            field: "ready",
            message: crate::template::RenderError::Syntax("bad".into()),
        };
        assert_eq!(RunError::from(template).exit(), Exit::Usage);
        let not_ready = ServeError::NotReady {
            name: "db".into(),
            timeout: std::time::Duration::from_secs(1),
            last_error: "refused".into(),
            output: String::new(),
        };
        assert_eq!(RunError::from(not_ready).exit(), Exit::Environment);
        let interrupted = ServeError::Interrupted {
            name: "db".into(),
            signal: libc::SIGTERM,
        };
        assert_eq!(RunError::from(interrupted).exit().code(), 143);
        assert_eq!(Exit::Signal(libc::SIGINT).code(), 130);
    }
}
