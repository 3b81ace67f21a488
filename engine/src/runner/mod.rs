//! The runner: executes planned scenarios in parallel and emits [`RunEvent`]s. It never
//! prints; console, JUnit and JSON reports are [`Listener`]s.

pub mod assert;
pub mod call;
pub mod connection_steps;
pub mod context;
pub mod db;
pub mod expect;
pub mod http;
pub mod jwt;
pub mod kv;
pub mod meter;
pub mod poll;
pub mod resources;
pub mod scenario;
pub mod serve;
pub mod transcript;
pub mod ws;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use crate::spec::config::SuiteConfig;
use crate::spec::model::Scenario;
pub use context::RunEnv;
pub use resources::Resources;
pub use scenario::{Attempt, Status};

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
}

/// The final verdict on one planned scenario, over all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Flaky,
    Failed,
    Skipped,
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
    /// Not run because of `--fail-fast` or an interrupt.
    pub not_run: usize,
    pub duration_ms: f64,
}

impl Summary {
    pub fn success(&self, flaky_fails: bool) -> bool {
        self.failed == 0 && self.not_run == 0 && (!flaky_fails || self.flaky == 0)
    }
}

/// What the runner tells listeners, in order.
pub enum RunEvent<'a> {
    Started { total: usize, jobs: usize },
    ScenarioStarted { index: usize, planned: &'a Planned },
    ScenarioFinished(&'a ScenarioReport),
    Finished(&'a Summary),
}

/// A report or display fed by the run's events.
pub trait Listener: Send {
    fn on_event(&mut self, event: &RunEvent<'_>);
}

/// Set by Ctrl-C: start nothing new; running scenarios finish and tear down.
pub fn cancel_flag() -> &'static AtomicBool {
    static CANCELLED: AtomicBool = AtomicBool::new(false);
    &CANCELLED
}

enum Message {
    Started(usize),
    Finished(Box<ScenarioReport>),
}

/// Run the plan and feed listeners; returns the summary.
pub async fn run(
    plan: Vec<Planned>,
    options: RunOptions,
    resources: Arc<Resources>,
    listeners: &mut [Box<dyn Listener>],
) -> Summary {
    let started = Instant::now();
    let total = plan.len();
    let jobs = options.jobs.max(1);
    emit(listeners, &RunEvent::Started { total, jobs });
    let run_envs = RunEnvs::for_plan(&plan);
    let semaphore = Arc::new(Semaphore::new(jobs));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let plan = Arc::new(plan);
    let launcher = {
        let plan = plan.clone();
        let stop = stop.clone();
        let options = options.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for index in 0..plan.len() {
                let Ok(permit) = semaphore.clone().acquire_owned().await else {
                    break;
                };
                if stop.load(Ordering::SeqCst) || cancel_flag().load(Ordering::SeqCst) {
                    break;
                }
                let planned = plan[index].clone();
                let tx = tx.clone();
                let resources = resources.clone();
                let run_env = run_envs.of(&planned.config);
                let retries = options.retries;
                let fail_fast = options.fail_fast;
                let report_frames = options.report_frames;
                let stop = stop.clone();
                tasks.spawn(async move {
                    let _ = tx.send(Message::Started(index));
                    let run = scenario::ScenarioRun {
                        scenario: planned.scenario.clone(),
                        config: planned.config.clone(),
                        resources,
                        run_env,
                        frames: match report_frames {
                            ReportFrames::Failed => {
                                transcript::Keep::Ends(transcript::FRAMES_KEPT_AT_EACH_END)
                            }
                            ReportFrames::All => transcript::Keep::All,
                        },
                        meter: None,
                    };
                    let mut attempts = Vec::new();
                    loop {
                        let attempt = run.attempt().await;
                        let status = attempt.status;
                        attempts.push(attempt);
                        if status != Status::Failed
                            || attempts.len() > retries
                            || cancel_flag().load(Ordering::SeqCst)
                        {
                            break;
                        }
                    }
                    let verdict = match (
                        attempts.first().map(|a| a.status),
                        attempts.last().map(|a| a.status),
                    ) {
                        (_, Some(Status::Skipped)) => Verdict::Skipped,
                        (Some(Status::Passed), _) => Verdict::Passed,
                        (_, Some(Status::Passed)) => Verdict::Flaky,
                        _ => Verdict::Failed,
                    };
                    if report_frames == ReportFrames::Failed
                        && matches!(verdict, Verdict::Passed | Verdict::Skipped)
                    {
                        attempts.iter_mut().for_each(Attempt::drop_frames);
                    }
                    // Before the permit goes: the next scenario must see the stop.
                    if fail_fast && verdict == Verdict::Failed {
                        stop.store(true, Ordering::SeqCst);
                    }
                    // Reported before the permit goes, so that with `--jobs 1` reports
                    // come in plan order.
                    let _ = tx.send(Message::Finished(Box::new(ScenarioReport {
                        index,
                        planned,
                        verdict,
                        attempts,
                    })));
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut summary = Summary {
        total,
        ..Summary::default()
    };
    let mut finished = 0;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Started(index) => emit(
                listeners,
                &RunEvent::ScenarioStarted {
                    index,
                    planned: &plan[index],
                },
            ),
            Message::Finished(report) => {
                finished += 1;
                match report.verdict {
                    Verdict::Passed => summary.passed += 1,
                    Verdict::Flaky => summary.flaky += 1,
                    Verdict::Failed => summary.failed += 1,
                    Verdict::Skipped => summary.skipped += 1,
                }
                emit(listeners, &RunEvent::ScenarioFinished(&report));
            }
        }
    }
    let _ = launcher.await;
    summary.not_run = total - finished;
    summary.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    emit(listeners, &RunEvent::Finished(&summary));
    summary
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
