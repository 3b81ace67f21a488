//! Load mode: run one scenario as many virtual users (VUs), each iteration with fresh
//! IDs, its own connections and its teardown, and measure it.
//!
//! - [`config`]: the `load:` block and the flags over it;
//! - [`executor`]: when iterations start (constant VUs, ramping VUs, arrival rate);
//! - [`segment`]: each of N processes' share (`--segment K/N`);
//! - [`local_ips`]: the source addresses connections are spread over;
//! - [`metrics`]: histograms, counters, the per-second series and the result;
//! - [`threshold`]: pass/fail criteria;
//! - [`report`], [`plot`]: text and SVG/HTML output; [`diagnosis`]: notes on what
//!   the figures tell about the system under test;
//! - [`command`]: `engine load` and `engine load merge`.

pub mod command;
pub mod config;
pub mod console;
pub mod diagnosis;
pub mod executor;
pub mod local_ips;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod segment;
pub mod threshold;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::runner::context::RunEnv;
use crate::runner::meter::SharedMeter;
use crate::runner::scenario::ScenarioRun;
use crate::runner::{Resources, RunStop};
use crate::spec::config::SuiteConfig;
use crate::spec::model::{Scenario, Step, StepKind};
use executor::{Executor, Iteration};
use metrics::{LoadMetrics, LoadResult, SecondPoint};
use segment::Segment;

/// Postgres connections shared by all VUs (per database URL).
const DATABASE_POOL_JOBS: usize = 32;

/// One load test to run in this process.
pub struct LoadPlan {
    pub scenario: Arc<Scenario>,
    pub config: Arc<SuiteConfig>,
    pub executor: Executor,
    pub segment: Segment,
    /// Source addresses the connections are spread over (`--local-ips`); empty: the
    /// system's choice.
    pub local_ips: Vec<std::net::IpAddr>,
}

/// Run the plan until its executor is done or `stop` is requested: then no iteration
/// starts, running ones are cancelled at their next wait and tear down (an immediate stop
/// returns at once). `on_second` sees each one-second window.
pub async fn run(
    plan: &LoadPlan,
    stop: &RunStop,
    mut on_second: impl FnMut(&SecondPoint, &LoadMetrics) + Send,
) -> LoadResult {
    let metrics = Arc::new(LoadMetrics::new());
    let scenario_run = Arc::new(ScenarioRun {
        scenario: plan.scenario.clone(),
        config: plan.config.clone(),
        resources: Resources::with_local_ips(DATABASE_POOL_JOBS, plan.local_ips.clone()),
        run_env: Arc::new(RunEnv::new(&plan.config)),
        frames: crate::runner::transcript::Keep::Nothing,
        meter: Some(metrics.clone() as SharedMeter),
        stop: stop.clone(),
        plans: Default::default(),
    });
    let iteration: Iteration = {
        let metrics = metrics.clone();
        Arc::new(move |_vu| {
            let (run, metrics) = (scenario_run.clone(), metrics.clone());
            Box::pin(async move {
                metrics.iteration_started();
                let attempt = run.attempt().await;
                metrics.iteration_finished(&attempt);
            })
        })
    };
    // The executors take a watch; it turns true when the stop is requested.
    let (stop_tx, stop_rx) = watch::channel(false);
    let forward = tokio::spawn({
        let stop = stop.clone();
        async move {
            stop.requested().await;
            let _ = stop_tx.send(true);
        }
    });
    let drive = plan
        .executor
        .drive(plan.segment, iteration, stop_rx, metrics.dropped.clone());
    tokio::pin!(drive);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut drive => break,
            () = stop.immediate() => break,
            _ = ticker.tick() => {
                let point = metrics.tick();
                on_second(&point, &metrics);
            }
        }
    }
    // The last, partial second, so that the series adds up to the totals.
    let point = metrics.tick();
    on_second(&point, &metrics);
    let mut result = metrics.result(
        &plan.scenario,
        plan.executor.describe(),
        plan.segment.to_string(),
    );
    forward.abort();
    result.interrupted = stop.is_requested();
    result
}

/// Connections one iteration opens at most (`connect` steps, `each` counted once).
pub fn connections_per_iteration(steps: &[Step]) -> u64 {
    steps
        .iter()
        .map(|s| match s.kind {
            StepKind::Connect => 1,
            StepKind::Each => connections_per_iteration(&s.children),
            _ => 0,
        })
        .sum()
}

/// Why the open-files limit cannot be made high enough.
#[derive(Debug, thiserror::Error)]
pub enum FilesLimitError {
    #[error("cannot read the open-files limit: {0}")]
    Read(std::io::Error),
    #[error("this run needs about {needed} open files but the limit is {soft}, and raising it failed: {source}")]
    Raise {
        needed: u64,
        soft: u64,
        source: std::io::Error,
    },
    #[error("this run needs about {needed} open files but the hard limit is {hard}; raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE= in systemd, or the container's nofile ulimit) or use fewer VUs per process (--segment)")]
    Hard { needed: u64, hard: u64 },
}

/// Raise the open-files limit to what `needed` descriptors require (up to the hard
/// limit). Returns the limit in force, or why it cannot be enough.
pub fn raise_open_files_limit(needed: u64) -> Result<u64, FilesLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(FilesLimitError::Read(std::io::Error::last_os_error()));
    }
    // rlim_t is u64 on Linux but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    if soft >= needed {
        return Ok(soft);
    }
    let wanted = needed.min(hard);
    let raised = libc::rlimit {
        rlim_cur: wanted as libc::rlim_t,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(FilesLimitError::Raise {
            needed,
            soft,
            source: std::io::Error::last_os_error(),
        });
    }
    if wanted < needed {
        return Err(FilesLimitError::Hard { needed, hard });
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_open_files_limit_is_raised_to_what_is_needed() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let hard = limit.rlim_max as u64;
        let wanted = (limit.rlim_cur as u64).max(hard.min(4096));
        assert!(raise_open_files_limit(wanted).unwrap() >= wanted);
        if hard < u64::MAX / 2 {
            let e = raise_open_files_limit(hard + 1).unwrap_err();
            assert!(matches!(e, FilesLimitError::Hard { .. }), "{e}");
            assert!(e.to_string().contains("hard limit"), "{e}");
        }
    }
}
