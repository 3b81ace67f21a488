//! One lifecycle for `engine run` and `engine load`: watch signals, bring up `serve`
//! entries, check that the configured databases and Redis servers answer, hand the
//! work a [`RunStop`], then stop the services and settle the exit code.
//!
//! - [`exit`]: exit codes by class and the errors that carry them;
//! - [`signals`]: SIGINT/SIGTERM → graceful stop, a second one → immediate stop;
//! - [`preflight`]: the configured services answer before any scenario starts.

pub mod exit;
pub mod preflight;
pub mod signals;

use std::sync::Arc;
use std::time::Duration;

use crate::redact::Redactor;
use crate::report::serve_console::ServeConsole;
use crate::runner::serve::{self, Started};
use crate::runner::RunStop;
use crate::spec::config::SuiteConfig;
pub use exit::{Exit, RunError};

/// What the lifecycle is asked to do around the work.
pub struct Options {
    /// Start (or reuse) `serve` entries.
    pub serve: bool,
    /// What stops starting on a signal, for the notice: "scenarios", "iterations".
    pub work: &'static str,
}

/// A run in progress: its stop and the services it started.
pub struct Lifecycle {
    stop: RunStop,
    services: Vec<Started>,
}

impl Lifecycle {
    /// Watch signals, start the configs' `serve` entries, check their databases and Redis
    /// servers. On failure, what was started is stopped again.
    pub async fn begin(configs: &[Arc<SuiteConfig>], options: Options) -> Result<Self, RunError> {
        let stop = RunStop::default();
        signals::watch(stop.clone(), options.work).map_err(|source| RunError::System {
            what: "cannot watch for signals",
            source,
        })?;
        let mut lifecycle = Lifecycle {
            stop,
            services: Vec::new(),
        };
        if options.serve {
            if let Err(e) = lifecycle.start_services(configs).await {
                lifecycle.stop_services().await;
                return Err(e);
            }
        }
        let refused = preflight::check(configs).await;
        if !refused.is_empty() {
            lifecycle.stop_services().await;
            return Err(RunError::Refused(refused));
        }
        Ok(lifecycle)
    }

    /// What the work must obey: a graceful or immediate stop.
    pub fn stop(&self) -> &RunStop {
        &self.stop
    }

    async fn start_services(&mut self, configs: &[Arc<SuiteConfig>]) -> Result<(), RunError> {
        let console = ServeConsole::stderr(redactor(configs));
        for config in configs {
            let started = serve::start_all(config, &self.stop, &console).await?;
            self.services.extend(started);
        }
        Ok(())
    }

    async fn stop_services(&mut self) {
        serve::stop_all(std::mem::take(&mut self.services)).await;
    }

    /// Stop the services; the exit code: `outcome`, unless a signal stopped the run.
    /// After an immediate stop the report is written: tell the signal thread, which
    /// kills what is left and exits (this waits for it, boundedly).
    pub async fn end(mut self, outcome: Exit) -> Exit {
        if self.stop.is_immediate() {
            self.stop.mark_reported();
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.stop_services().await;
        match self.stop.signal() {
            Some(signal) if self.stop.is_requested() => Exit::Signal(signal),
            _ => outcome,
        }
    }
}

/// Hides the configs' secrets (and URL passwords, tokens) in what the lifecycle prints.
pub fn redactor(configs: &[Arc<SuiteConfig>]) -> Redactor {
    Redactor::new(configs.iter().flat_map(|c| crate::runner::secrets(c)))
}
