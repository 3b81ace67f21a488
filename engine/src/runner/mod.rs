//! The runner: executes planned scenarios in parallel and emits [`RunEvent`]s. It never
//! prints; console, JUnit and JSON reports are [`Listener`]s.

pub mod admission;
pub mod assert;
pub mod call;
pub mod connection_steps;
pub mod context;
pub mod db;
pub mod expect;
pub mod graphql_steps;
pub mod http;
pub mod inbox;
pub mod jwt;
pub mod kv;
pub mod meter;
pub mod observed;
pub mod plan;
pub mod poll;
pub mod process_group;
pub mod protocol;
pub mod reader;
pub mod resources;
pub mod scenario;
pub mod serve;
pub mod socket_io_steps;
pub mod stop;
pub mod transcript;
pub mod waiter;
pub mod ws;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::spec::config::SuiteConfig;
use crate::spec::model::Scenario;
pub use context::RunEnv;
pub use resources::Resources;
pub use scenario::{Attempt, Status};
pub use stop::RunStop;

/// One scenario to run, with the config that governs it.
#[derive(Clone)]
pub struct Planned {
    pub scenario: Arc<Scenario>,
    pub config: Arc<SuiteConfig>,
    /// 0-based repetition (for `--repeat`).
    pub iteration: usize,
}

/// Which attempts keep their frames for the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFrames {
    /// Attempts of failed and flaky scenarios, with the first and last
    /// [`transcript::FRAMES_KEPT_AT_EACH_END`] frames of each connection.
    #[default]
    Failed,
    /// Every frame of every attempt.
    All,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub retries: usize,
    pub fail_fast: bool,
    /// Count flaky scenarios (failed, then passed on retry) as failures.
    pub flaky_fails: bool,
    pub report_frames: ReportFrames,
    /// Plan positions in the order to start them (e.g. longest first); empty: plan
    /// order. Positions left out are started after, in plan order.
    pub start_order: Vec<usize>,
}

/// The final verdict on one planned scenario, over all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Flaky,
    Failed,
    Skipped,
    /// Cancelled by a stop request (Ctrl-C, SIGTERM) before it could finish.
    Interrupted,
}

/// Everything known about one planned scenario once it finished.
pub struct ScenarioReport {
    /// Position in the plan.
    pub index: usize,
    pub planned: Planned,
    pub verdict: Verdict,
    pub attempts: Vec<Attempt>,
}

impl ScenarioReport {
    pub fn last(&self) -> &Attempt {
        self.attempts.last().expect("at least one attempt")
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub flaky: usize,
    pub skipped: usize,
    /// Cancelled by a stop request while running.
    pub interrupted: usize,
    /// Not run because of `--fail-fast` or a stop request.
    pub not_run: usize,
    /// Scenarios whose teardown did not get to its end (deadline, or an immediate stop).
    pub teardown_unfinished: usize,
    pub duration_ms: f64,
}

impl Summary {
    pub fn success(&self, flaky_fails: bool) -> bool {
        self.failed == 0
            && self.not_run == 0
            && self.interrupted == 0
            && (!flaky_fails || self.flaky == 0)
    }

    fn tally(&mut self, report: &ScenarioReport) {
        match report.verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Flaky => self.flaky += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::Interrupted => self.interrupted += 1,
        }
        if report.attempts.iter().any(|a| !a.teardown_finished) {
            self.teardown_unfinished += 1;
        }
    }
}

/// What the runner tells listeners, in order.
pub enum RunEvent<'a> {
    Started {
        total: usize,
        jobs: usize,
    },
    ScenarioStarted {
        index: usize,
        planned: &'a Planned,
    },
    ScenarioFinished(&'a ScenarioReport),
    /// Time passed: sent every [`TICK_EVERY`] while the run goes, so that a listener
    /// that put work off (a report rewrite that was not due) does it in time even when
    /// no scenario finishes for a while.
    Tick,
    Finished(&'a Summary),
}

/// How often the runner sends [`RunEvent::Tick`].
pub const TICK_EVERY: Duration = Duration::from_millis(500);

/// A report or display fed by the run's events.
pub trait Listener: Send {
    fn on_event(&mut self, event: &RunEvent<'_>);
}

enum Message {
    Started(usize),
    /// An attempt of a started scenario begins with these IDs.
    Attempting(usize, Map<String, Value>),
    Finished(Box<ScenarioReport>),
}

/// A scenario that started and has not finished, as an immediate stop reports it.
struct Running {
    since: Instant,
    ids: Map<String, Value>,
}

/// Run the plan and feed listeners; returns the summary.
pub async fn run(
    plan: Vec<Planned>,
    options: RunOptions,
    resources: Arc<Resources>,
    listeners: &mut [Box<dyn Listener>],
) -> Summary {
    run_until(plan, options, resources, listeners, &RunStop::default()).await
}

/// [`run`], until `stop` asks otherwise. A graceful stop starts nothing new and ends
/// running scenarios at their next step or wait (they tear down and are reported
/// interrupted). An immediate stop returns at once, reporting the scenarios still
/// running as stopped with their teardown unfinished.
pub async fn run_until(
    plan: Vec<Planned>,
    options: RunOptions,
    resources: Arc<Resources>,
    listeners: &mut [Box<dyn Listener>],
    stop: &RunStop,
) -> Summary {
    let started = Instant::now();
    let jobs = options.jobs.max(1);
    emit(
        listeners,
        &RunEvent::Started {
            total: plan.len(),
            jobs,
        },
    );
    let mut progress = Progress::new(Arc::new(plan));
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let launcher = tokio::spawn(launch(
        progress.plan.clone(),
        options,
        resources,
        stop.clone(),
        tx,
    ));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK_EVERY, TICK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.immediate() => break,
            message = rx.recv() => match message {
                Some(message) => progress.handle(message, listeners),
                None => break,
            },
            _ = ticks.tick() => emit(listeners, &RunEvent::Tick),
        }
    }
    if stop.is_immediate() {
        // Dropping the tasks drops their processes (each kills its group) and folders.
        launcher.abort();
        // What finished before the stop is reported as it was.
        while let Ok(message) = rx.try_recv() {
            progress.handle(message, listeners);
        }
        progress.stopped_at_once(&stop.cause(), listeners);
    } else {
        let _ = launcher.await;
    }
    let mut summary = progress.summary;
    summary.not_run = summary.total - progress.finished;
    summary.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    emit(listeners, &RunEvent::Finished(&summary));
    summary
}

/// What the run's messages have told so far.
struct Progress {
    plan: Arc<Vec<Planned>>,
    summary: Summary,
    running: BTreeMap<usize, Running>,
    finished: usize,
}

impl Progress {
    fn new(plan: Arc<Vec<Planned>>) -> Self {
        Progress {
            summary: Summary {
                total: plan.len(),
                ..Summary::default()
            },
            plan,
            running: BTreeMap::new(),
            finished: 0,
        }
    }

    fn handle(&mut self, message: Message, listeners: &mut [Box<dyn Listener>]) {
        match message {
            Message::Started(index) => {
                let since = Instant::now();
                let ids = Map::new();
                self.running.insert(index, Running { since, ids });
                let planned = &self.plan[index];
                emit(listeners, &RunEvent::ScenarioStarted { index, planned });
            }
            Message::Attempting(index, ids) => {
                if let Some(entry) = self.running.get_mut(&index) {
                    entry.ids = ids;
                }
            }
            Message::Finished(report) => self.finish(&report, listeners),
        }
    }

    fn finish(&mut self, report: &ScenarioReport, listeners: &mut [Box<dyn Listener>]) {
        self.running.remove(&report.index);
        self.finished += 1;
        self.summary.tally(report);
        emit(listeners, &RunEvent::ScenarioFinished(report));
    }

    /// Report every scenario still running as stopped, its teardown not done.
    fn stopped_at_once(&mut self, cause: &str, listeners: &mut [Box<dyn Listener>]) {
        for (index, entry) in std::mem::take(&mut self.running) {
            let report = ScenarioReport {
                index,
                planned: self.plan[index].clone(),
                verdict: Verdict::Interrupted,
                attempts: vec![Attempt::stopped_at_once(
                    entry.ids,
                    entry.since.elapsed(),
                    cause,
                )],
            };
            self.finish(&report, listeners);
        }
    }
}

/// Start planned scenarios as permits free up, until the plan is done, `--fail-fast`
/// trips, or a stop is requested; then wait for the running ones.
async fn launch(
    plan: Arc<Vec<Planned>>,
    options: RunOptions,
    resources: Arc<Resources>,
    stop: RunStop,
    tx: mpsc::UnboundedSender<Message>,
) {
    let run_envs = RunEnvs::for_plan(&plan);
    let jobs = options.jobs.max(1);
    let semaphore = Arc::new(Semaphore::new(jobs));
    let admission = admission::Admission::new(jobs);
    let failed_fast = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for index in start_order(&options.start_order, plan.len()) {
        let running = || jobs - semaphore.available_permits();
        let permit = tokio::select! {
            permit = async {
                admission.admit(running).await;
                semaphore.clone().acquire_owned().await
            } => permit,
            () = stop.requested() => break,
        };
        let Ok(permit) = permit else {
            break;
        };
        if failed_fast.load(Ordering::SeqCst) || stop.is_requested() {
            break;
        }
        let planned = plan[index].clone();
        let run = scenario::ScenarioRun {
            scenario: planned.scenario.clone(),
            config: planned.config.clone(),
            resources: resources.clone(),
            run_env: run_envs.of(&planned.config),
            frames: match options.report_frames {
                ReportFrames::Failed => transcript::Keep::Ends(transcript::FRAMES_KEPT_AT_EACH_END),
                ReportFrames::All => transcript::Keep::All,
            },
            meter: None,
            stop: stop.clone(),
            plans: Default::default(),
        };
        let (tx, options, failed_fast) = (tx.clone(), options.clone(), failed_fast.clone());
        tasks.spawn(async move {
            let _ = tx.send(Message::Started(index));
            let report = run_planned(index, planned, &run, &options, &tx).await;
            // Before the permit goes: the next scenario must see the stop.
            if options.fail_fast && report.verdict == Verdict::Failed {
                failed_fast.store(true, Ordering::SeqCst);
            }
            // Reported before the permit goes, so that with `--jobs 1` reports come in
            // plan order.
            let _ = tx.send(Message::Finished(Box::new(report)));
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Every plan position once: those of `preferred` (valid, first time seen) in its order,
/// then the rest in plan order.
fn start_order(preferred: &[usize], len: usize) -> Vec<usize> {
    let mut seen = vec![false; len];
    let mut order: Vec<usize> = preferred
        .iter()
        .copied()
        .filter(|&i| i < len && !std::mem::replace(&mut seen[i], true))
        .collect();
    order.extend((0..len).filter(|&i| !seen[i]));
    order
}

/// Every attempt of one planned scenario (retries), and its verdict.
async fn run_planned(
    index: usize,
    planned: Planned,
    run: &scenario::ScenarioRun,
    options: &RunOptions,
    tx: &mpsc::UnboundedSender<Message>,
) -> ScenarioReport {
    let mut attempts = Vec::new();
    loop {
        let ids = run.mint_ids();
        let _ = tx.send(Message::Attempting(index, ids.clone()));
        let attempt = run.attempt_with_ids(ids).await;
        let status = attempt.status;
        attempts.push(attempt);
        if status != Status::Failed || attempts.len() > options.retries || run.stop.is_requested() {
            break;
        }
    }
    let verdict = match (
        attempts.first().map(|a| a.status),
        attempts.last().map(|a| a.status),
    ) {
        (_, Some(Status::Skipped)) => Verdict::Skipped,
        (_, Some(Status::Interrupted)) => Verdict::Interrupted,
        (Some(Status::Passed), _) => Verdict::Passed,
        (_, Some(Status::Passed)) => Verdict::Flaky,
        _ => Verdict::Failed,
    };
    if options.report_frames == ReportFrames::Failed
        && matches!(verdict, Verdict::Passed | Verdict::Skipped)
    {
        attempts.iter_mut().for_each(Attempt::drop_frames);
    }
    ScenarioReport {
        index,
        planned,
        verdict,
        attempts,
    }
}

/// Each config's environment, built once per run: every spec renders `{{ env.X }}`
/// with its own suite config's defaults (under the process environment).
/// Keyed by the config's address: the plan holds every config, so addresses are unique.
struct RunEnvs(std::collections::HashMap<usize, Arc<RunEnv>>);

impl RunEnvs {
    fn for_plan(plan: &[Planned]) -> Self {
        let mut configs: Vec<&Arc<SuiteConfig>> = Vec::new();
        for planned in plan {
            if !configs.iter().any(|c| Arc::ptr_eq(c, &planned.config)) {
                configs.push(&planned.config);
            }
        }
        // Every scenario's output hides the secrets of every config in the run.
        let envs = configs
            .iter()
            .map(|config| {
                let env = RunEnv::new(config).hiding(configs.iter().map(|c| c.as_ref()));
                (Arc::as_ptr(config) as usize, Arc::new(env))
            })
            .collect();
        Self(envs)
    }

    fn of(&self, config: &Arc<SuiteConfig>) -> Arc<RunEnv> {
        self.0
            .get(&(Arc::as_ptr(config) as usize))
            .cloned()
            .unwrap_or_else(|| Arc::new(RunEnv::new(config)))
    }
}

fn emit(listeners: &mut [Box<dyn Listener>], event: &RunEvent<'_>) {
    for listener in listeners.iter_mut() {
        listener.on_event(event);
    }
}

/// Values that must never be shown: env vars named secret, the JWT secret, URL passwords.
pub fn secrets(config: &SuiteConfig) -> Vec<String> {
    let env = config.env_values();
    let mut out: Vec<String> = config
        .secrets
        .iter()
        .filter_map(|name| env.get(name).cloned())
        .collect();
    if let Some(jwt) = &config.auth.jwt {
        if let Some(secret) = &jwt.secret {
            let rendered = crate::template::render_str(
                secret,
                &minijinja::Value::from_serialize(serde_json::json!({ "env": env })),
            );
            if let Ok(Value::String(s)) = rendered {
                out.push(s);
            }
        }
    }
    for url in config.databases.values().chain(config.redis.values()) {
        let rendered = crate::template::render_str(
            url,
            &minijinja::Value::from_serialize(serde_json::json!({ "env": env })),
        );
        if let Ok(Value::String(url)) = rendered {
            if let Some(password) = url_password(&url) {
                out.push(password);
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn url_password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo.split_once(':')?.1.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceFile;
    use crate::spec::library::Library;
    use crate::spec::load::load_str;

    #[test]
    fn start_order_takes_the_preferred_order_then_the_rest_in_plan_order() {
        assert_eq!(start_order(&[], 3), [0, 1, 2]);
        assert_eq!(start_order(&[2, 0], 4), [2, 0, 1, 3]);
        // Out of range and repeated positions are ignored: every scenario starts once.
        assert_eq!(start_order(&[9, 1, 1, 0], 3), [1, 0, 2]);
    }

    struct Ticks(Arc<std::sync::atomic::AtomicUsize>);

    impl Listener for Ticks {
        fn on_event(&mut self, event: &RunEvent<'_>) {
            if matches!(event, RunEvent::Tick) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Listeners that put work off rely on ticks while no scenario finishes.
    #[tokio::test(start_paused = true)]
    async fn listeners_hear_ticks_while_a_scenario_runs() {
        let config = Arc::new(SuiteConfig::default());
        let source = SourceFile::new("wait.yaml", "name: wait\nsteps:\n  - sleep: 1200ms\n");
        let scenario = load_str(source, &config, &Library::default())
            .expect("the spec loads")
            .remove(0);
        let plan = vec![Planned {
            scenario: Arc::new(scenario),
            config,
            iteration: 0,
        }];
        let options = RunOptions {
            jobs: 1,
            retries: 0,
            fail_fast: false,
            flaky_fails: false,
            report_frames: ReportFrames::default(),
            start_order: Vec::new(),
        };
        let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut listeners: Vec<Box<dyn Listener>> = vec![Box::new(Ticks(ticks.clone()))];
        let summary = run(plan, options, Resources::new(1), &mut listeners).await;
        assert_eq!(summary.passed, 1);
        // 1.2 s at one tick every 500 ms.
        assert_eq!(ticks.load(Ordering::SeqCst), 2);
    }
}
