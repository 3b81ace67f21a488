//! Running one scenario: mint IDs, apply setup, run steps under the scenario's
//! deadline, then always close connections and run teardown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::context::{Failure, RunEnv, ScenarioContext, StepResult};
use super::meter::SharedMeter;
use super::observed::Observation;
use super::resources::Resources;
use super::stop::RunStop;
use super::transcript::{FrameRecord, Keep, Transcript};
use super::ws::FrameRules;
use super::{connection_steps, db, expect, http, kv};
use crate::diagnostic::{Diagnostic, FailureKind, Span};
use crate::spec::config::SuiteConfig;
use crate::spec::duration::parse_duration;
use crate::spec::model::{
    Action, ActionBody, Scenario, StartProcessStep, Step, StepKind, StopProcessStep,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    /// Cancelled by a stop request before its steps were done (its teardown still ran,
    /// unless the stop was immediate).
    Interrupted,
}

/// What happened to one step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub index: usize,
    pub kind: StepKind,
    pub line: usize,
    /// The step as written, on one line and cut short (redacted like everything else).
    pub label: String,
    pub status: Status,
    /// When the step started, in milliseconds since the attempt started: the clock of
    /// its frames' `at_ms`.
    pub at_ms: f64,
    pub duration_ms: f64,
    /// What its state assertions expected and found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
}

impl StepRecord {
    fn new(index: usize, step: &Step, status: Status, at_ms: f64, duration_ms: f64) -> Self {
        Self {
            index,
            kind: step.kind,
            line: step.span.line,
            label: label(step),
            status,
            at_ms,
            duration_ms,
            observations: Vec::new(),
        }
    }
}

/// A step as one short line: its kind (a library step's name) and its body.
fn label(step: &Step) -> String {
    const MAX: usize = 160;
    let name = match (&step.call, step.kind) {
        (Some(library), _) => library.name.clone(),
        (None, kind) => serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    };
    let body = match &step.body {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    crate::text::truncate(format!("{name} {body}").trim_end(), MAX)
}

/// The result of one attempt at a scenario, already redacted (see [`crate::redact`]).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Status,
    pub duration: Duration,
    pub ids: Map<String, Value>,
    pub steps: Vec<StepRecord>,
    pub failure: Option<Diagnostic>,
    pub teardown_failures: Vec<Diagnostic>,
    /// False when teardown did not get to its end: its deadline passed, or the run was
    /// stopped at once. What the scenario wrote may then be left behind.
    pub teardown_finished: bool,
    /// The frames kept (see [`Keep`]), in time order.
    pub frames: Vec<FrameRecord>,
    /// Per connection, how many frames were not kept.
    pub frames_omitted: BTreeMap<String, u64>,
}

impl Attempt {
    /// Keep no frames, only their count (a passing scenario's, for the reports).
    pub fn drop_frames(&mut self) {
        for frame in self.frames.drain(..) {
            *self.frames_omitted.entry(frame.connection).or_default() += 1;
        }
    }
}

impl Attempt {
    /// An attempt the run stopped at once, while it ran: nothing of it is known but its
    /// IDs and that its teardown did not run.
    pub fn stopped_at_once(ids: Map<String, Value>, duration: Duration, cause: &str) -> Self {
        Attempt {
            status: Status::Interrupted,
            duration,
            ids,
            steps: Vec::new(),
            failure: Some(
                Diagnostic::of(
                    FailureKind::Interrupted,
                    format!(
                        "stopped at once by a second {cause} while running: teardown did not run"
                    ),
                )
                .hint("what this scenario wrote may be left behind; its IDs are listed"),
            ),
            teardown_failures: Vec::new(),
            teardown_finished: false,
            frames: Vec::new(),
            frames_omitted: BTreeMap::new(),
        }
    }
}

pub struct ScenarioRun {
    pub scenario: Arc<Scenario>,
    pub config: Arc<SuiteConfig>,
    pub resources: Arc<Resources>,
    pub run_env: Arc<RunEnv>,
    /// Which frames the attempt's transcript keeps (none in load mode, to save memory).
    pub frames: Keep,
    /// Where load mode's measurements go; `None` for `engine run`.
    pub meter: Option<SharedMeter>,
    /// A requested stop ends the steps at their next boundary or wait; teardown still
    /// runs.
    pub stop: RunStop,
    /// The typed form of `scenario`'s template-free step bodies, made once for all
    /// attempts (`Default::default()`; see [`super::plan`]).
    pub plans: Arc<super::plan::StepPlans>,
}

impl ScenarioRun {
    /// Fresh IDs for one attempt.
    pub fn mint_ids(&self) -> Map<String, Value> {
        crate::ids::mint_all(&self.scenario.ids, &self.config.ids)
    }

    pub async fn attempt(&self) -> Attempt {
        self.attempt_with_ids(self.mint_ids()).await
    }

    /// One attempt with these IDs: steps under the scenario's deadline (ended early by a
    /// stop request), then always teardown.
    pub async fn attempt_with_ids(&self, ids: Map<String, Value>) -> Attempt {
        let started = Instant::now();
        if let Some(reason) = &self.scenario.skip {
            return Attempt {
                status: Status::Skipped,
                duration: Duration::ZERO,
                ids: Map::new(),
                steps: Vec::new(),
                failure: Some(Diagnostic::of(
                    FailureKind::Skipped,
                    format!("skipped: {reason}"),
                )),
                teardown_failures: Vec::new(),
                teardown_finished: true,
                frames: Vec::new(),
                frames_omitted: BTreeMap::new(),
            };
        }
        let mut ctx = self.context(ids.clone());
        let mut records = Vec::new();
        // Boxed, so that the attempt holds the steps' state or teardown's, not room for
        // both (load mode keeps one attempt per virtual user).
        let failure = Box::pin(self.run_steps(&mut ctx, &mut records)).await;
        // Frames from here on (closing, teardown) belong to no step.
        ctx.transcript.step_ended();
        let teardown = Box::pin(self.teardown(&mut ctx)).await;
        let status = if ctx.interrupted {
            Status::Interrupted
        } else if failure.is_some() || !teardown.failures.is_empty() {
            Status::Failed
        } else {
            Status::Passed
        };
        let kept = ctx.transcript.kept();
        let mut attempt = Attempt {
            status,
            duration: started.elapsed(),
            ids,
            steps: records,
            failure,
            teardown_failures: teardown.failures,
            teardown_finished: teardown.finished,
            frames: kept.frames,
            frames_omitted: kept.omitted,
        };
        // The only way out of here: whatever shows or writes an attempt sees no secret.
        // Tokens can only be in recorded text, so a passing attempt without frames (load
        // mode) skips building a matcher for them.
        let holds_text = attempt.failure.is_some()
            || !attempt.teardown_failures.is_empty()
            || !attempt.frames.is_empty()
            || attempt.steps.iter().any(|s| !s.observations.is_empty());
        let redactor = if holds_text {
            self.run_env.redactor.with(&ctx.presented)
        } else {
            self.run_env.redactor.clone()
        };
        redactor.attempt(&mut attempt);
        attempt
    }

    fn context(&self, ids: Map<String, Value>) -> ScenarioContext {
        ScenarioContext {
            scenario: self.scenario.clone(),
            config: self.config.clone(),
            resources: self.resources.clone(),
            run_env: self.run_env.clone(),
            ids,
            vars: Map::new(),
            connections: Default::default(),
            transcript: Transcript::new(self.frames).metered(self.meter.clone()),
            rules: FrameRules {
                type_field: self.config.events.type_field.clone(),
                schemas: self.resources.schemas(&self.config),
                require_schemas: self.config.events.require_schemas,
                binary_json: false,
            },
            locals: Map::new(),
            processes: Default::default(),
            presented: Vec::new(),
            frames: Vec::new(),
            step_at: None,
            cleanups: Vec::new(),
            stop: self.stop.watch(),
            interrupted: false,
            observations: Vec::new(),
            plans: self.plans.clone(),
        }
    }

    /// Setup and steps under the deadline; the failure (or interruption), if any.
    async fn run_steps(
        &self,
        ctx: &mut ScenarioContext,
        records: &mut Vec<StepRecord>,
    ) -> Option<Diagnostic> {
        let mut current: Option<(usize, Span)> = None;
        let deadline = self
            .scenario
            .timeout
            .unwrap_or(self.config.timeouts.scenario);
        match tokio::time::timeout(deadline, run_body(ctx, records, &mut current)).await {
            Ok(Ok(())) => None,
            Ok(Err(failure)) => Some(failure),
            Err(_) => {
                let span = current.map(|(_, s)| s).unwrap_or(Span { line: 1, col: 1 });
                if let Some((index, _)) = current {
                    if let Some(step) = self.scenario.steps.get(index) {
                        let at_ms = records.last().map_or(0.0, |r| r.at_ms + r.duration_ms);
                        let took = ctx.transcript.elapsed_ms() - at_ms;
                        let mut record = StepRecord::new(index, step, Status::Failed, at_ms, took);
                        record.observations = std::mem::take(&mut ctx.observations);
                        records.push(record);
                    }
                }
                let failure = Failure::of(
                    FailureKind::Timeout,
                    format!("scenario timed out after {deadline:?} while running this step"),
                )
                .hint("raise `timeout:` on the scenario, or look for a wait that never ends");
                Some(self.diagnostic(failure, span))
            }
        }
    }

    fn diagnostic(&self, failure: Failure, span: Span) -> Diagnostic {
        failure.at(&self.scenario.source, span)
    }

    /// Close connections, stop processes, run library cleanups and teardown actions: all
    /// within the teardown deadline. Processes are stopped even when it has passed.
    async fn teardown(&self, ctx: &mut ScenarioContext) -> Teardown {
        let limit = self.config.timeouts.teardown;
        let deadline = tokio::time::Instant::now() + limit;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let connections: Vec<_> = ctx.connections.drain().collect();
        if let Some(meter) = ctx.transcript.meter() {
            connections.iter().for_each(|_| meter.connection_closed());
        }
        // Then wait (up to half the budget) for the server to answer each close: it
        // answers after the frames sent before, so the actions below run once it has
        // acted on what the scenario sent.
        let close_all = futures_util::future::join_all(connections.iter().map(|c| async move {
            c.close(1000, "scenario finished", Duration::from_secs(1))
                .await;
            let bounded = super::protocol::lock(c.protocol()).close_answer_wait();
            match bounded {
                Some(wait) => {
                    let _ = tokio::time::timeout(wait, server_closed(c)).await;
                }
                None => server_closed(c).await,
            }
        }));
        let _ = tokio::time::timeout(left() / 2, close_all).await;
        for (_, mut process) in ctx.processes.drain() {
            process.terminate(libc::SIGTERM, left()).await;
        }
        let mut failures = super::call::run_cleanups(ctx, left()).await;
        for (done, action) in self.scenario.teardown.iter().enumerate() {
            match tokio::time::timeout(left(), run_action(ctx, action)).await {
                Ok(Ok(())) => {}
                Ok(Err(f)) => failures.push(self.diagnostic(
                    Failure {
                        message: format!("teardown: {}", f.message),
                        ..f
                    },
                    action.span,
                )),
                Err(_) => {
                    let skipped = self.scenario.teardown.len() - done - 1;
                    let mut failure = Failure::of(
                        FailureKind::Timeout,
                        format!(
                            "teardown did not finish within {limit:?}: this action was cut short"
                        ),
                    );
                    if skipped > 0 {
                        failure = failure.note(format!("{skipped} later action(s) did not run"));
                    }
                    failures.push(self.diagnostic(
                        failure.hint(
                            "raise `timeouts.teardown` in engine.yaml, or speed this action up",
                        ),
                        action.span,
                    ));
                    return Teardown {
                        failures,
                        finished: false,
                    };
                }
            }
        }
        Teardown {
            failures,
            // Library cleanups cut short by the deadline count too.
            finished: !left().is_zero(),
        }
    }
}

/// How a scenario's teardown went.
struct Teardown {
    failures: Vec<Diagnostic>,
    /// Every action ran (or failed) within the deadline.
    finished: bool,
}

/// Resolves once the server has closed the connection (its close frame, or the end of
/// the stream).
async fn server_closed(connection: &super::ws::Connection) {
    loop {
        let changed = connection.inbox.changed();
        if connection.inbox.lock().closed.is_some() {
            return;
        }
        changed.await;
    }
}

/// The failure that ends the steps when a stop is requested; marks the context.
fn interrupted(ctx: &mut ScenarioContext, span: Span) -> Failure {
    ctx.interrupted = true;
    Failure::of(
        FailureKind::Interrupted,
        format!("interrupted by {} at this step", ctx.stop.cause()),
    )
    .hint("the run was asked to stop; teardown ran")
    .at_if_unlocated(ctx.source(), span)
}

async fn run_body(
    ctx: &mut ScenarioContext,
    records: &mut Vec<StepRecord>,
    current: &mut Option<(usize, Span)>,
) -> Located {
    let scenario = ctx.scenario.clone();
    if !scenario.vars.is_empty() {
        let vars = ctx
            .render_value(&Value::Object(scenario.vars.clone()), &[])
            .map_err(|f| f.at(&scenario.source, Span { line: 1, col: 1 }))?;
        if let Value::Object(vars) = vars {
            ctx.vars = vars;
        }
    }
    for action in &scenario.setup {
        if ctx.stop.is_requested() {
            return Err(interrupted(ctx, action.span));
        }
        Box::pin(run_action(ctx, action)).await.map_err(|f| {
            Failure {
                message: format!("setup: {}", f.message),
                ..f
            }
            .at(&scenario.source, action.span)
        })?;
    }
    for (index, step) in scenario.steps.iter().enumerate() {
        if ctx.stop.is_requested() {
            return Err(interrupted(ctx, step.span));
        }
        *current = Some((index, step.span));
        ctx.transcript.step_started(index);
        let at_ms = ctx.transcript.elapsed_ms();
        let result = run_step(ctx, step).await;
        let status = match &result {
            Ok(()) => Status::Passed,
            Err(_) if ctx.interrupted => Status::Interrupted,
            Err(_) => Status::Failed,
        };
        let duration_ms = ctx.transcript.elapsed_ms() - at_ms;
        let mut record = StepRecord::new(index, step, status, at_ms, duration_ms);
        record.observations = std::mem::take(&mut ctx.observations);
        records.push(record);
        result?;
    }
    *current = None;
    Ok(())
}

/// Events that arrived during the step and broke their schema fail the step.
fn schema_violations(ctx: &ScenarioContext) -> StepResult {
    // Without schemas no frame is checked: no inbox to lock after every step.
    if ctx.rules.schemas.is_none() {
        return Ok(());
    }
    for connection in ctx.connections.values() {
        let mut state = connection.inbox.lock();
        if let Some(first) = state.violations.first().cloned() {
            let more = state.violations.len() - 1;
            state.violations.clear();
            let mut failure = Failure::of(
                FailureKind::SchemaViolation,
                format!("on `{}`: {first}", connection.name),
            );
            if more > 0 {
                failure = failure.note(format!("and {more} more violation(s)"));
            }
            return Err(failure);
        }
    }
    Ok(())
}

/// The outcome of a step (and, for `each` and library calls, of its nested steps): a
/// failure is located at the innermost step that failed, in its own file, with the
/// call sites that led there.
pub(super) type Located = Result<(), Failure>;

pub(super) async fn run_step(ctx: &mut ScenarioContext, step: &Step) -> Located {
    if ctx.stop.is_requested() {
        return Err(interrupted(ctx, step.span));
    }
    match step.kind {
        StepKind::Each | StepKind::Call => return run_nested(ctx, step).await,
        _ => {}
    }
    ctx.set_step_at(&step.pointer);
    let result = if waits(step.kind) {
        let stop = ctx.stop.clone();
        tokio::select! {
            // In order: no random number drawn for fairness at every step; a stop is
            // still seen whenever the step waits.
            biased;
            result = leaf(ctx, step) => result,
            () = stop.requested() => return Err(interrupted(ctx, step.span)),
        }
    } else {
        leaf(ctx, step).await
    };
    let result = match result {
        Ok(()) => schema_violations(ctx),
        Err(f) => Err(f),
    };
    result.map_err(|f| f.at_if_unlocated(ctx.source(), step.span))
}

/// Steps that hold steps (`each`, library calls) run them through [`run_step`]: their
/// futures are boxed to break the cycle. A leaf step's future runs in place or is boxed
/// once, at its own kind's size ([`leaf`]), not again around it.
fn run_nested<'a>(
    ctx: &'a mut ScenarioContext,
    step: &'a Step,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Located> + Send + 'a>> {
    Box::pin(async move {
        match step.kind {
            StepKind::Each => run_each(ctx, step).await,
            _ => super::call::call(ctx, step).await,
        }
    })
}

/// Steps that wait for something to happen (an event, time, a state) and change
/// nothing: a stop request cancels them midway. Any other step has effects the server
/// may still be acting on, so it finishes and the steps stop at the next boundary.
fn waits(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::Expect
            | StepKind::ExpectNone
            | StepKind::ExpectClose
            | StepKind::AssertDb
            | StepKind::AssertRedis
            | StepKind::Sleep
            | StepKind::StartProcess
    )
}

/// `name` = `value` among the loop variables, in place when it is there already (a new
/// key would be an allocation per item).
fn set_local(locals: &mut Map<String, Value>, name: &str, value: &Value) {
    match locals.get_mut(name) {
        Some(local) => *local = value.clone(),
        None => {
            locals.insert(name.to_string(), value.clone());
        }
    }
}

/// Whether any of `steps`, or of the steps they hold, has a template.
fn templated(steps: &[Step]) -> bool {
    steps
        .iter()
        .any(|s| crate::template::contains_template(&s.body) || templated(&s.children))
}

async fn run_each(ctx: &mut ScenarioContext, step: &Step) -> Located {
    let mut head = step.body.clone();
    if let Some(map) = head.as_object_mut() {
        map.remove("steps");
    }
    ctx.set_step_at(&step.pointer);
    let at = |ctx: &ScenarioContext, f: Failure| f.at_if_unlocated(ctx.source(), step.span);
    let head = ctx.render_value(&head, &[]).map_err(|f| at(ctx, f))?;
    let name = head
        .get("as")
        .and_then(Value::as_str)
        .unwrap_or("i")
        .to_string();
    let items: Vec<Value> = match (head.get("items"), head.get("count")) {
        (Some(Value::Array(items)), _) => items.clone(),
        (_, Some(count)) => {
            let n = count
                .as_u64()
                .or_else(|| count.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    at(
                        ctx,
                        Failure::of(
                            FailureKind::Spec,
                            format!("`count` must be a number, got {count}"),
                        ),
                    )
                })?;
            (0..n).map(Value::from).collect()
        }
        _ => {
            return Err(at(
                ctx,
                Failure::of(FailureKind::Spec, "`each` needs `count` or `items`"),
            ))
        }
    };
    let saved = ctx.locals.get(&name).cloned();
    // Only templates read loop variables: without one in the loop, setting the
    // variable at every item is work nobody sees (a cache miss per item under load).
    let read = templated(&step.children);
    let mut outcome = Ok(());
    'items: for (i, item) in items.iter().enumerate() {
        if read {
            set_local(&mut ctx.locals, &name, item);
        }
        for child in &step.children {
            if let Err(failure) = run_step(ctx, child).await {
                outcome = Err(failure.note(format!(
                    "in iteration {} of {} (`{name}` = {item})",
                    i + 1,
                    items.len()
                )));
                break 'items;
            }
        }
    }
    match saved {
        Some(v) => ctx.locals.insert(name, v),
        None => ctx.locals.remove(&name),
    };
    outcome
}

/// Run one leaf step. `send` and `expect`, the steps of every round trip of a load
/// test, run in place: boxing them would be two allocations per round trip, and their
/// futures are small (under a KiB; a test holds them to it). Every other step's future
/// is boxed on its own: in place, this future would be as large as the largest of them
/// (about 12 KiB, the database and HTTP steps), and each virtual user of a load test
/// would hold that much for as long as it sleeps or waits.
async fn leaf(ctx: &mut ScenarioContext, step: &Step) -> StepResult {
    let body = &step.body;
    match step.kind {
        StepKind::Send => connection_steps::send(ctx, body).await,
        StepKind::Expect => expect::expect(ctx, body).await,
        StepKind::Assert => super::assert::assert(ctx, body),
        StepKind::Connect => Box::pin(connection_steps::connect(ctx, body)).await,
        StepKind::Authenticate => Box::pin(connection_steps::authenticate(ctx, body)).await,
        StepKind::Close => Box::pin(connection_steps::close(ctx, body)).await,
        StepKind::Disconnect => Box::pin(connection_steps::disconnect(ctx, body)).await,
        StepKind::ExpectNone => Box::pin(expect::expect_none(ctx, body)).await,
        StepKind::ExpectClose => Box::pin(expect::expect_close(ctx, body)).await,
        StepKind::AssertDb => Box::pin(db::assert_db(ctx, body)).await,
        StepKind::AssertRedis => Box::pin(kv::assert_redis(ctx, body)).await,
        StepKind::Http => Box::pin(http::http(ctx, body)).await,
        StepKind::Sql => Box::pin(db::sql_step(ctx, body)).await,
        StepKind::Redis => Box::pin(kv::redis_step(ctx, body)).await,
        StepKind::Sleep => Box::pin(sleep(ctx, body)).await,
        StepKind::StartProcess => Box::pin(start_process(ctx, body)).await,
        StepKind::StopProcess => Box::pin(stop_process(ctx, body)).await,
        StepKind::Subscribe => Box::pin(super::graphql_steps::subscribe(ctx, body)).await,
        StepKind::Complete => Box::pin(super::graphql_steps::complete(ctx, body)).await,
        StepKind::Emit => Box::pin(super::socket_io_steps::emit(ctx, body)).await,
        StepKind::Namespace => Box::pin(super::socket_io_steps::namespace(ctx, body)).await,
        StepKind::Each | StepKind::Call => Err(Failure::of(FailureKind::Spec, "run by `run_step`")),
    }
}

/// The most a `send` or `expect` future may take in place, in every step future of
/// every virtual user (a test holds them to it).
#[cfg(test)]
const ROUND_TRIP_FUTURE_BYTES: usize = 1024;

async fn sleep(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let text: String = ctx.render_step(body, &[])?;
    let duration = parse_duration(&text)?;
    tokio::time::sleep(duration).await;
    Ok(())
}

async fn start_process(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: StartProcessStep = ctx.render_step(body, &[])?;
    if ctx.processes.contains_key(&step.name) {
        return Err(Failure::of(
            FailureKind::Spec,
            format!("process `{}` is already running", step.name),
        ));
    }
    let tmpdir = tempfile::Builder::new()
        .prefix("engine-process-")
        .tempdir()
        .map_err(|e| {
            Failure::of(
                FailureKind::Process,
                format!("cannot create a temporary folder: {e}"),
            )
        })?;
    // The suite's env defaults (rendered) reach the process; the process env does anyway.
    let rendered = ctx.config.env_values();
    let mut env: std::collections::BTreeMap<String, String> = ctx
        .config
        .env
        .keys()
        .filter(|k| std::env::var_os(k).is_none())
        .filter_map(|k| rendered.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    env.extend(step.env.clone());
    let cwd = step
        .cwd
        .as_ref()
        .map(|c| ctx.config.resolve(std::path::Path::new(c)))
        .unwrap_or_else(|| ctx.config.dir.clone());
    let ready_log = step
        .ready_log
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| Failure::of(FailureKind::Spec, format!("bad `ready_log` regex: {e}")))?;
    let launch = super::serve::Launch {
        name: &step.name,
        command: &step.command,
        env: &env,
        cwd: &cwd,
        ready: step.ready.as_deref(),
        ready_log: ready_log.as_ref(),
        timeout: step.within.unwrap_or(Duration::from_secs(30)),
        stop: None,
        progress: &super::serve::Silent,
    };
    let started = launch
        .start(tmpdir)
        .await
        .map_err(|e| Failure::of(FailureKind::Process, format!("process {e}")))?;
    for (name, value) in &started.captured {
        ctx.vars_mut()
            .insert(name.clone(), Value::String(value.clone()));
    }
    ctx.processes.insert(step.name, started);
    Ok(())
}

async fn stop_process(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: StopProcessStep = ctx.render_step(body, &[])?;
    let mut process = ctx.processes.remove(&step.name).ok_or_else(|| {
        Failure::of(
            FailureKind::Spec,
            format!("no process named `{}` was started", step.name),
        )
    })?;
    let signal = match step.signal.as_deref().unwrap_or("TERM") {
        "KILL" => libc::SIGKILL,
        "INT" => libc::SIGINT,
        _ => libc::SIGTERM,
    };
    let within = step.within.unwrap_or(Duration::from_secs(10));
    if process.terminate(signal, within).await {
        Ok(())
    } else {
        Err(Failure::of(
            FailureKind::Process,
            format!(
                "process `{}` did not exit within {within:?}; killed",
                step.name
            ),
        ))
    }
}

pub(super) async fn run_action(ctx: &mut ScenarioContext, action: &Action) -> StepResult {
    // Actions are located by their own span, not a step's fields.
    ctx.step_at = None;
    let body: ActionBody = ctx.render_step(&action.body, &[])?;
    if let Some(sql) = &body.sql {
        db::execute(ctx, body.database.as_deref(), sql, &body.params).await?;
    } else if let Some(file) = &body.sql_file {
        let path = ctx.base_dir().join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::of(
                FailureKind::Spec,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let rendered = match crate::template::render_str(&text, &ctx.scope(&[])) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => {
                return Err(Failure::of(
                    FailureKind::Template,
                    format!("template error in {}: {e}", path.display()),
                ))
            }
        };
        db::execute(ctx, body.database.as_deref(), &rendered, &[]).await?;
    } else if let Some(command) = &body.redis {
        kv::execute(ctx, body.server.as_deref(), command).await?;
    }
    Ok(())
}

#[cfg(test)]
mod leaf_tests {
    use super::*;

    /// The size of the future `step` returns, without running it.
    fn future_size<'a, F, Fut>(_step: F) -> usize
    where
        F: FnOnce(&'a mut ScenarioContext, &'a Value) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_round_trip_steps_are_small_enough_to_run_in_place() {
        let send = future_size(connection_steps::send);
        let expect = future_size(expect::expect);
        assert!(send <= ROUND_TRIP_FUTURE_BYTES, "send: {send} bytes");
        assert!(expect <= ROUND_TRIP_FUTURE_BYTES, "expect: {expect} bytes");
    }
}
