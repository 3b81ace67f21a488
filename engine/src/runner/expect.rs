//! Waiting for events: `expect` (one, a sequence, an unordered set, a count),
//! `expect_none` and `expect_close`. Each takes the first matching frames from the
//! connection's inbox and leaves the rest. A timeout reports every frame the
//! connection received and diffs the nearest candidate against the expectation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::context::{Failure, ScenarioContext, StepResult};
use super::inbox::{Pending, Scan};
use super::plan::ExpectPlan;
use super::protocol::skim;
use super::socket_io_steps::acknowledge;
use super::waiter::{find_first, take_first, Pick, WaitEnd, Waiter, SCAN_BUDGET};
use super::ws::{Connection, Received};
use crate::diagnostic::FailureKind;
use crate::matcher::{compare, Mismatch};
use crate::spec::model::*;
use crate::template;

/// `event: "*"`: any frame at all, JSON or not, text or binary.
pub const ANY_FRAME: &str = "*";

/// How well a frame fits a pattern: `None` is a match; otherwise the mismatches.
fn fit(pattern: &EventPattern, frame: &Received) -> Option<Vec<Mismatch>> {
    let mut problems = Vec::new();
    if let Some(event) = pattern.event.as_ref().filter(|e| *e != ANY_FRAME) {
        if frame.event_type.as_deref() != Some(event.as_str()) {
            problems.push(Mismatch {
                path: "type".into(),
                expected: format!("`{event}`"),
                got: frame
                    .event_type
                    .as_ref()
                    .map_or_else(|| "no event type".into(), |t| format!("`{t}`")),
            });
        }
    }
    if let Some((kind, name)) = pattern.operation_message() {
        if frame.event_type.as_deref() != Some(kind) {
            problems.push(Mismatch {
                path: "type".into(),
                expected: format!("`{kind}`"),
                got: frame
                    .event_type
                    .as_ref()
                    .map_or_else(|| "no message type".into(), |t| format!("`{t}`")),
            });
        }
        if frame.operation.as_deref() != Some(name) {
            problems.push(Mismatch {
                path: "operation".into(),
                expected: format!("`{name}`"),
                got: frame
                    .operation
                    .as_ref()
                    .map_or_else(|| "none".into(), |o| format!("`{o}`")),
            });
        }
    }
    if let Some(namespace) = &pattern.namespace {
        // `admin` is `/admin`, as Socket.IO servers read it.
        let same = |got: &str| got.trim_start_matches('/') == namespace.trim_start_matches('/');
        if !frame.operation.as_deref().is_some_and(same) {
            problems.push(Mismatch {
                path: "namespace".into(),
                expected: format!("`{namespace}`"),
                got: frame
                    .operation
                    .as_ref()
                    .map_or_else(|| "none".into(), |n| format!("`{n}`")),
            });
        }
    }
    // A socket.io acknowledgement belongs to the emit that asked for it alone.
    if frame.ack_of_emit != pattern.ack_of_emit {
        problems.push(Mismatch {
            path: "ack".into(),
            expected: pattern.ack_of_emit.map_or_else(
                || "an event".into(),
                |id| format!("the acknowledgement of emit #{id}"),
            ),
            got: frame.ack_of_emit.map_or_else(
                || "an event".into(),
                |id| format!("the acknowledgement of emit #{id}"),
            ),
        });
    }
    // `exact` also wants no other key: the parsed frame says.
    let read_out = |expected: &&Value| !pattern.exact && holds_unparsed(expected, frame);
    if let Some(expected) = pattern.matches.as_ref().filter(|e| !read_out(e)) {
        match frame.json() {
            Some(json) => problems.extend(compare(expected, Some(json), pattern.exact)),
            None => {
                // A non-JSON frame matches only the pattern that is its very text.
                if expected.as_str() != Some(frame.text.as_str()) {
                    problems.push(Mismatch {
                        path: "$".into(),
                        expected: "a JSON frame".into(),
                        got: format!("non-JSON text: {}", crate::text::truncate(&frame.text, 200)),
                    });
                }
            }
        }
    }
    (!problems.is_empty()).then_some(problems)
}

/// Whether `expected`, objects of plain strings, holds for a frame not parsed yet: each
/// string is read out of the frame's text where the pattern puts it, without building
/// the document (most `match:` patterns are that, and a parsed frame is an allocation
/// per key). False when it cannot tell so (another pattern, a placeholder, a string
/// that differs): the frame is parsed and compared then, which explains a mismatch.
fn holds_unparsed(expected: &Value, frame: &Received) -> bool {
    fn leaves_hold<'p>(expected: &'p Value, text: &str, path: &mut Vec<&'p str>) -> bool {
        match expected {
            Value::Object(keys) if !keys.is_empty() => keys.iter().all(|(key, value)| {
                path.push(key);
                let holds = leaves_hold(value, text, path);
                path.pop();
                holds
            }),
            Value::String(want) if !path.is_empty() && !want.starts_with('#') => {
                matches!(skim::string_at(text, path), Ok(Some(got)) if got == *want)
            }
            _ => false,
        }
    }
    frame
        .unparsed_json()
        .is_some_and(|text| leaves_hold(expected, text, &mut Vec::new()))
}

/// The frame ends the operation `pattern` waits for without matching it (a GraphQL
/// `error` or `complete` when a `next` was expected): the wait is over.
fn ends_wanted_operation(pattern: &EventPattern, frame: &Received) -> bool {
    frame.ends_operation
        && pattern
            .operation_message()
            .is_some_and(|(_, name)| frame.operation.as_deref() == Some(name))
}

/// What a wait for `pattern` takes: a frame that matches it, or one that ends its
/// operation (then [`take`] fails the step).
fn settles(pattern: &EventPattern, frame: &Received) -> bool {
    fit(pattern, frame).is_none() || ends_wanted_operation(pattern, frame)
}

/// The expected event as a noun phrase: "`hello`", "an event matching {…}", "`next`
/// of `chat`".
fn describe(pattern: &EventPattern) -> String {
    if let Some((kind, name)) = pattern.operation_message() {
        return match &pattern.matches {
            Some(m) => format!("`{kind}` of `{name}` matching {m}"),
            None => format!("`{kind}` of `{name}`"),
        };
    }
    if let Some(id) = pattern.ack_of_emit {
        return match &pattern.matches {
            Some(m) => format!("acknowledgement of emit #{id} matching {m}"),
            None => format!("acknowledgement of emit #{id}"),
        };
    }
    let event = pattern.event.as_ref().filter(|e| *e != ANY_FRAME);
    if let (Some(e), Some(namespace)) = (event, &pattern.namespace) {
        return match &pattern.matches {
            Some(m) => format!("`{e}` in namespace `{namespace}` matching {m}"),
            None => format!("`{e}` in namespace `{namespace}`"),
        };
    }
    match (event, &pattern.matches) {
        (Some(e), Some(m)) => format!("`{e}` matching {m}"),
        (Some(e), None) => format!("`{e}`"),
        (None, Some(m)) => format!("an event matching {m}"),
        (None, None) => "any frame".into(),
    }
}

/// "No" and the expected event: "no `hello`", "no event matching {…}", "no frame".
fn describe_none(pattern: &EventPattern) -> String {
    let event = pattern.event.as_ref().filter(|e| *e != ANY_FRAME);
    if pattern.operation_message().is_some() || pattern.ack_of_emit.is_some() {
        return format!("no {}", describe(pattern));
    }
    match (event, &pattern.matches) {
        (None, Some(m)) => format!("no event matching {m}"),
        (None, None) => "no frame".into(),
        _ => format!("no {}", describe(pattern)),
    }
}

/// The patterns of a generated sequence: its item rendered once per value. The
/// template context is built once; each value is merged over it.
fn generate(
    ctx: &ScenarioContext,
    generator: &SequenceGenerator,
    item: &Value,
) -> Result<Vec<EventPattern>, Failure> {
    let values: Vec<Value> = match (&generator.range, &generator.items) {
        (Some(range), None) => range_values(range)?,
        (None, Some(items)) => items.clone(),
        _ => {
            return Err(Failure::of(
                FailureKind::Spec,
                "a generated `sequence` needs one of `range` or `in`",
            ))
        }
    };
    let base = ctx.template_context(&[]);
    let mut patterns = Vec::with_capacity(values.len());
    for value in values {
        let scope = minijinja::value::merge_maps([
            minijinja::Value::from_iter([(
                generator.name.as_str(),
                minijinja::Value::from_serialize(&value),
            )]),
            base.clone(),
        ]);
        let rendered = crate::template::render_value(item, &scope).map_err(|e| {
            Failure::of(
                FailureKind::Template,
                format!(
                    "template error in the sequence item for `{}` = {value}: {}",
                    generator.name, e.message
                ),
            )
        })?;
        let item: PatternItem = serde_json::from_value(rendered).map_err(|e| {
            Failure::of(FailureKind::Template, format!("invalid sequence item: {e}"))
        })?;
        patterns.push(item.into_pattern());
    }
    Ok(patterns)
}

/// The patterns of a `sequence` or `unordered`: written out, or generated.
fn patterns_of(
    ctx: &ScenarioContext,
    sequence: Sequence,
    item: Option<&Value>,
) -> Result<Vec<EventPattern>, Failure> {
    match sequence {
        Sequence::Items(items) => Ok(items.into_iter().map(PatternItem::into_pattern).collect()),
        Sequence::Generated(generator) => generate(ctx, &generator, item.unwrap_or(&Value::Null)),
    }
}

/// `[start, end]` or `[start, end, step]`, `end` excluded; at most a million values.
fn range_values(range: &[i64]) -> Result<Vec<Value>, Failure> {
    const MAX_ITEMS: i64 = 1_000_000;
    let (start, end, step) = match range {
        [start, end] => (*start, *end, 1),
        [start, end, step] => (*start, *end, *step),
        _ => {
            return Err(Failure::of(
                FailureKind::Spec,
                "`range` is `[start, end]` or `[start, end, step]`",
            ))
        }
    };
    if step == 0 {
        return Err(Failure::of(FailureKind::Spec, "`range` step cannot be 0"));
    }
    let count = (i128::from(end) - i128::from(start) + i128::from(step)
        - i128::from(step.signum()))
        / i128::from(step);
    if count > i128::from(MAX_ITEMS) {
        return Err(Failure::of(
            FailureKind::Spec,
            format!("`range` gives {count} items; a sequence holds at most {MAX_ITEMS}"),
        ));
    }
    let count = count.max(0) as i64;
    Ok((0..count).map(|i| Value::from(start + i * step)).collect())
}

/// An `expect` body rendered and read: the step, a generated sequence's item (rendered
/// per value, not with the step) and its single-event pattern.
fn expect_plan(ctx: &ScenarioContext, body: &Value) -> Result<ExpectPlan, Failure> {
    let generated = |key| body.get(key).and_then(|g| g.get("item")).is_some();
    let (step, item) = if generated("sequence") || generated("unordered") {
        let mut body = body.clone();
        let item = ["sequence", "unordered"].into_iter().find_map(|key| {
            body.get_mut(key)
                .and_then(Value::as_object_mut)
                .and_then(|generator| generator.remove("item"))
        });
        (ctx.render::<ExpectStep>(&body, &[])?, item)
    } else {
        (ctx.render_step::<ExpectStep>(body, &[])?, None)
    };
    Ok(plan_of(step, item))
}

/// The plan of a typed `expect`.
fn plan_of(mut step: ExpectStep, item: Option<Value>) -> ExpectPlan {
    // Moved, not copied: the plan reads them from `single` only.
    let single = EventPattern {
        event: step.event.take(),
        next: step.next.take(),
        error: step.error.take(),
        complete: step.complete.take(),
        namespace: step.namespace.take(),
        ack: step.ack.take(),
        matches: step.matches.take(),
        exact: step.exact,
        capture: std::mem::take(&mut step.capture),
        ack_of_emit: None,
    };
    ExpectPlan { step, item, single }
}

/// A templated `expect` whose templates are all in `match` and `on` (a pattern on a
/// minted ID, a library step's connection): its other fields read once, and at each
/// execution only those two rendered, from their plans. `None` for any other, or when
/// either does not render or fit: the whole body is rendered then, which reports it.
fn from_skeleton(ctx: &ScenarioContext, body: &Value) -> Option<ExpectPlan> {
    let skeleton = ctx
        .plans
        .expect_skeletons
        .get_any(body, || Ok::<_, Failure>(skeleton(ctx, body)));
    let mut plan = skeleton.ok()?.as_ref().clone()?;
    if let Some(on) = body.get("on") {
        match ctx.field_value(on, &[])? {
            Value::String(name) => plan.step.on = Some(name),
            Value::Null => {}
            _ => return None,
        }
    }
    if let Some(pattern) = body.get("match") {
        plan.single.matches = Some(ctx.field_value(pattern, &[])?).filter(|m| !m.is_null());
    }
    Some(plan)
}

/// The plan of an `expect` body without its `match` and `on`, when no other field has
/// templates.
fn skeleton(ctx: &ScenarioContext, body: &Value) -> Option<ExpectPlan> {
    let fields = body.as_object()?;
    let templated_elsewhere = fields
        .iter()
        .any(|(key, value)| key != "match" && key != "on" && template::contains_template(value));
    if templated_elsewhere {
        return None;
    }
    let mut bare = fields.clone();
    bare.remove("match");
    bare.remove("on");
    let step: ExpectStep = ctx.typed(Value::Object(bare)).ok()?;
    Some(plan_of(step, None))
}

pub async fn expect(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let plan = match ctx.planned(&ctx.plans.expects, body, || expect_plan(ctx, body))? {
        Some(plan) => plan,
        None => match from_skeleton(ctx, body) {
            Some(plan) => Arc::new(plan),
            None => Arc::new(expect_plan(ctx, body)?),
        },
    };
    let ExpectPlan { step, item, single } = &*plan;
    let connection = ctx.connection(step.on.as_deref())?;
    let within = step.within.unwrap_or_else(|| ctx.step_timeout());
    let mut waiter = Waiter::new(&connection.inbox, Instant::now() + within);
    // Boxed: their futures are large, and `expect` of one event runs unboxed in every
    // round trip of a load test.
    if let Some(sequence) = step.sequence.clone() {
        let patterns = patterns_of(ctx, sequence, item.as_ref())?;
        known_operations(&connection, &patterns)?;
        let wait = expect_sequence(ctx, &connection, step.strict, patterns, within, waiter);
        return Box::pin(wait).await;
    }
    if let Some(items) = step.unordered.clone() {
        let patterns = patterns_of(ctx, items, item.as_ref())?;
        known_operations(&connection, &patterns)?;
        return Box::pin(expect_unordered(ctx, &connection, patterns, within, waiter)).await;
    }
    known_operations(&connection, std::slice::from_ref(single))?;
    let count = step.count.unwrap_or(1);
    expect_count(ctx, &connection, single, count, within, &mut waiter).await
}

/// `expect` with `sequence`: each item in turn, each matching only frames after the
/// one the previous item took (right after it, when `strict`).
async fn expect_sequence(
    ctx: &mut ScenarioContext,
    connection: &Arc<Connection>,
    strict: bool,
    patterns: Vec<EventPattern>,
    within: Duration,
    mut waiter: Waiter,
) -> StepResult {
    // Each item matches only frames after the one the previous item took.
    let mut after: Option<usize> = None;
    for (i, pattern) in patterns.iter().enumerate() {
        let mut cursor = after.map_or(0, |a| a + 1);
        let found = waiter
            .next(|state| match after {
                Some(a) if strict => take_next_strictly(&mut state.pending, a, pattern),
                _ => match take_first(&mut state.pending, &mut cursor, |f| settles(pattern, f)) {
                    Pick::Found(frame) => Pick::Found(Ok(frame)),
                    Pick::Paused => Pick::Paused,
                    Pick::Exhausted => Pick::Exhausted,
                },
            })
            .await;
        match found {
            Ok(Ok(frame)) => {
                after = Some(frame.number);
                take(ctx, connection, pattern, &frame)?;
                acknowledge(ctx, connection, pattern, &frame).await?;
            }
            Ok(Err(between)) => {
                return Err(between_failure(
                    ctx,
                    connection,
                    &between,
                    pattern,
                    i,
                    patterns.len(),
                ))
            }
            Err(end) => {
                let position = format!("item {} of {} in the sequence", i + 1, patterns.len());
                let wait = Wait {
                    within,
                    end,
                    position: &position,
                    after,
                };
                return Err(timeout_failure(ctx, connection, pattern, wait));
            }
        }
    }
    Ok(())
}

/// `expect` with `unordered`: every item, in any order.
async fn expect_unordered(
    ctx: &mut ScenarioContext,
    connection: &Arc<Connection>,
    patterns: Vec<EventPattern>,
    within: Duration,
    mut waiter: Waiter,
) -> StepResult {
    let mut open: Vec<usize> = (0..patterns.len()).collect();
    // Per pattern, the arrival number up to which no frame matches it.
    let mut cursors = vec![0; patterns.len()];
    while !open.is_empty() {
        let found = waiter
            .next(|state| {
                for (slot, &p) in open.iter().enumerate() {
                    let pattern = &patterns[p];
                    match take_first(&mut state.pending, &mut cursors[p], |f| settles(pattern, f)) {
                        Pick::Found(frame) => return Pick::Found((slot, frame)),
                        Pick::Paused => return Pick::Paused,
                        Pick::Exhausted => {}
                    }
                }
                Pick::Exhausted
            })
            .await;
        match found {
            Ok((slot, frame)) => {
                let p = open.remove(slot);
                take(ctx, connection, &patterns[p], &frame)?;
                acknowledge(ctx, connection, &patterns[p], &frame).await?;
            }
            Err(end) => {
                let missing: Vec<String> = open.iter().map(|&p| describe(&patterns[p])).collect();
                let wait = Wait {
                    within,
                    end,
                    position: "the unordered set",
                    after: None,
                };
                let failure = timeout_failure(ctx, connection, &patterns[open[0]], wait);
                return Err(failure.note(format!("still missing: {}", missing.join(", "))));
            }
        }
    }
    Ok(())
}

/// Wait for one event that matches `pattern` (e.g. the acknowledgement of an emit),
/// until `within`: take it, or fail as `expect` does.
pub async fn expect_one(
    ctx: &mut ScenarioContext,
    connection: &Arc<Connection>,
    pattern: &EventPattern,
    within: Duration,
) -> StepResult {
    let mut waiter = Waiter::new(&connection.inbox, Instant::now() + within);
    expect_count(ctx, connection, pattern, 1, within, &mut waiter).await
}

/// Take `count` events that match `pattern`, one after the other.
async fn expect_count(
    ctx: &mut ScenarioContext,
    connection: &Arc<Connection>,
    single: &EventPattern,
    count: u64,
    within: Duration,
    waiter: &mut Waiter,
) -> StepResult {
    let connection = connection.clone();
    let mut cursor = 0;
    for n in 0..count {
        let found = waiter
            .next(|state| take_first(&mut state.pending, &mut cursor, |f| settles(single, f)))
            .await;
        match found {
            Ok(frame) => {
                take(ctx, &connection, single, &frame)?;
                if single.ack.is_some() {
                    // Boxed: only Socket.IO events asking for an answer need it.
                    Box::pin(acknowledge(ctx, &connection, single, &frame)).await?;
                }
            }
            Err(end) => {
                let position = if count > 1 {
                    format!("event {} of {count}", n + 1)
                } else {
                    String::new()
                };
                let wait = Wait {
                    within,
                    end,
                    position: &position,
                    after: None,
                };
                return Err(timeout_failure(ctx, &connection, single, wait));
            }
        }
    }
    Ok(())
}

/// Wait for a new connection's ready event (from its profile or its `ready:`) and
/// return what it captures, for the caller to store.
pub async fn await_ready(
    ctx: &mut ScenarioContext,
    name: &str,
    pattern: &EventPattern,
    within: Duration,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let connection = ctx.connection(Some(name))?;
    let mut waiter = Waiter::new(&connection.inbox, Instant::now() + within);
    let mut cursor = 0;
    let found = waiter
        .next(|state| {
            take_first(&mut state.pending, &mut cursor, |f| {
                fit(pattern, f).is_none()
            })
        })
        .await;
    let frame = match found {
        Ok(frame) => frame,
        Err(end) => {
            let wait = Wait {
                within,
                end,
                position: "the connection's ready event",
                after: None,
            };
            return Err(timeout_failure(ctx, &connection, pattern, wait));
        }
    };
    let bare = EventPattern {
        capture: Default::default(),
        ..pattern.clone()
    };
    take(ctx, &connection, &bare, &frame)?;
    let json = frame.json_or_text();
    let mut captured = serde_json::Map::new();
    for (var, path) in &pattern.capture {
        match super::context::json_path(path, &json)? {
            Some(value) => {
                captured.insert(var.clone(), value);
            }
            None => {
                return Err(Failure::of(
                    FailureKind::Mismatch,
                    format!("capture `{var}`: `{path}` found nothing in the ready event"),
                )
                .note(format!("event: {}", frame.shown(500))))
            }
        }
    }
    Ok(captured)
}

/// In a strict sequence, the frame right after `after` must be the next item: take it
/// when it fits; `Err` with what arrived in between when it doesn't (a frame that
/// doesn't fit, or one an earlier step already took); `None` while it hasn't arrived.
fn take_next_strictly(
    pending: &mut Pending,
    after: usize,
    pattern: &EventPattern,
) -> Pick<Result<Box<Received>, Between>> {
    let mut cursor = after + 1;
    let next = match pending.scan(&mut cursor, SCAN_BUDGET, |_| true) {
        Scan::Found(index) => index,
        Scan::Paused => return Pick::Paused,
        Scan::Exhausted => return Pick::Exhausted,
    };
    let Some(frame) = pending.get(next) else {
        return Pick::Paused;
    };
    if frame.number != after + 1 {
        return Pick::Found(Err(Between::Taken(after + 1)));
    }
    match fit(pattern, frame) {
        None => pending
            .take(next)
            .map_or(Pick::Paused, |f| Pick::Found(Ok(f))),
        Some(mismatches) => Pick::Found(Err(Between::Frame(Box::new(frame.clone()), mismatches))),
    }
}

/// What broke a strict sequence.
enum Between {
    /// A frame that is not the next item.
    Frame(Box<Received>, Vec<Mismatch>),
    /// A frame (by arrival number) an earlier step had taken.
    Taken(usize),
}

fn between_failure(
    ctx: &ScenarioContext,
    connection: &Connection,
    between: &Between,
    pattern: &EventPattern,
    index: usize,
    total: usize,
) -> Failure {
    let head = format!(
        "strict sequence broken on `{}`: item {} of {total} ({}) was expected next",
        connection.name,
        index + 1,
        describe(pattern)
    );
    match between {
        Between::Frame(frame, mismatches) => {
            ctx.transcript.failed(&connection.name, frame.number);
            let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
            Failure::of(FailureKind::Mismatch, head).note(format!(
                "frame #{} arrived instead: {}\n{}",
                frame.number + 1,
                frame.shown(400),
                lines.join("\n")
            ))
        }
        Between::Taken(number) => {
            ctx.transcript.failed(&connection.name, *number);
            let text = ctx
                .transcript
                .received_on(&connection.name)
                .get(*number)
                .map(|f| crate::text::truncate(&f.data, 400))
                .unwrap_or_default();
            Failure::of(FailureKind::Mismatch, head).note(format!(
                "frame #{} arrived in between (an earlier step took it): {text}",
                number + 1
            ))
        }
    }
    .hint("without `strict: true`, other frames may arrive between the items")
}

/// A frame a wait settled on (see [`settles`]) was taken: fail the step if it ended
/// the operation instead, check its schema, then capture.
fn take(
    ctx: &mut ScenarioContext,
    connection: &Connection,
    pattern: &EventPattern,
    frame: &Received,
) -> StepResult {
    if let (Some(meter), Some(latency)) = (ctx.transcript.meter(), frame.since_last_sent) {
        meter.event_latency(latency);
    }
    ctx.transcript.taken(&connection.name, frame.number);
    // What a wait took fits its pattern unless it ended the operation (see `settles`).
    if ends_wanted_operation(pattern, frame) && fit(pattern, frame).is_some() {
        // Taken because it ended the operation the pattern waits for.
        ctx.transcript.failed(&connection.name, frame.number);
        let ended = match frame.event_type.as_deref() {
            Some("error") => "failed with a GraphQL `error`",
            _ => "completed",
        };
        let failure = Failure::new(format!(
            "operation `{}` on `{}` {ended} before {} arrived",
            frame.operation.as_deref().unwrap_or_default(),
            connection.name,
            describe(pattern)
        ))
        .note(format!("message: {}", frame.shown(2000)));
        return Err(received_note(ctx, connection, failure));
    }
    if let Some(violation) = &frame.schema_violation {
        ctx.transcript.failed(&connection.name, frame.number);
        // Reported here, precisely; don't report it again at the step boundary.
        let mut state = connection.inbox.lock();
        state.violations.retain(|v| v != violation);
        return Err(Failure::of(FailureKind::SchemaViolation, violation.clone())
            .note(format!("event: {}", frame.shown(usize::MAX))));
    }
    if !pattern.capture.is_empty() {
        ctx.capture(&pattern.capture, &frame.json_or_text())?;
    }
    Ok(())
}

/// Operations a pattern names (`next: chat`) must have been started on the
/// connection: otherwise the wait could only time out.
fn known_operations(connection: &Connection, patterns: &[EventPattern]) -> StepResult {
    for pattern in patterns {
        let Some((kind, name)) = pattern.operation_message() else {
            continue;
        };
        let known = super::graphql_steps::graphql(connection, |state| {
            Ok((state.knows(name), state.names()))
        });
        let (known, names) = known.map_err(|mut f| {
            f.message = format!(
                "`{kind}: {name}` waits for a GraphQL operation's message: {}",
                f.message
            );
            f
        })?;
        if !known {
            let started = if names.is_empty() {
                "none was started".to_string()
            } else {
                format!("started: {}", names.join(", "))
            };
            return Err(Failure::new(format!(
                "no operation `{name}` was started on `{}` ({started})",
                connection.name
            ))
            .hint("a `subscribe` step with this `name` starts it"));
        }
    }
    Ok(())
}

/// How a wait for one pattern ended, for its failure message.
struct Wait<'a> {
    within: Duration,
    end: WaitEnd,
    /// Which item of the step it was ("event 3 of 10"), or empty.
    position: &'a str,
    /// Only frames after this arrival number could match (in a sequence).
    after: Option<usize>,
}

/// Frames still waiting that a failure report diffs against the expectation; more
/// would hold the worker for little gain.
const NEAREST_LIMIT: usize = 1000;

fn timeout_failure(
    ctx: &ScenarioContext,
    connection: &Connection,
    pattern: &EventPattern,
    wait: Wait<'_>,
) -> Failure {
    let place = if wait.position.is_empty() {
        String::new()
    } else {
        format!(" ({})", wait.position)
    };
    let kind = match &wait.end {
        WaitEnd::Deadline => FailureKind::Timeout,
        WaitEnd::Closed(_) => FailureKind::ConnectionClosed,
    };
    let mut failure = Failure::of(
        kind,
        match &wait.end {
            WaitEnd::Deadline => format!(
                "{} on `{}` within {:?}{place}",
                describe_none(pattern),
                connection.name,
                wait.within
            ),
            WaitEnd::Closed(how) => format!(
                "connection `{}` {how} before {} arrived{place}",
                connection.name,
                describe(pattern)
            ),
        },
    );
    let state = connection.inbox.lock();
    // The expected type never arrived: the closest type that did (taken or not) is
    // most likely what was meant.
    let closest = pattern
        .event
        .as_deref()
        .filter(|event| *event != ANY_FRAME && state.seen_types.first_of(event).is_none())
        .and_then(|event| closest_type(event, state.seen_types.names()));
    if let Some(closest) = closest {
        let first = state.seen_types.first_of(closest).unwrap_or_default();
        failure = failure.hint(format!(
            "did you mean `{closest}`? it arrived on `{}` (first as frame #{})",
            connection.name,
            first + 1
        ));
    }
    // Nearest candidate among frames still waiting: the same type, else the closest
    // type, then the fewest mismatches.
    let nearest = state
        .pending
        .iter()
        .filter(|f| wait.after.is_none_or(|a| f.number > a))
        .take(NEAREST_LIMIT)
        .filter_map(|f| fit(pattern, f).map(|m| (f, m)))
        .min_by_key(|(f, m)| {
            let same_type = pattern.event.is_some() && f.event_type == pattern.event;
            let closest_type = closest.is_some() && f.event_type.as_deref() == closest;
            (!same_type, !closest_type, m.len())
        });
    if let Some((frame, mismatches)) = nearest {
        ctx.transcript.failed(&connection.name, frame.number);
        let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
        failure = failure.note(format!(
            "nearest candidate (frame #{}): {}\n{}",
            frame.number + 1,
            frame.shown(400),
            lines.join("\n")
        ));
    }
    drop(state);
    received_note(ctx, connection, failure)
}

/// The event type among `seen` most like `wanted`, if any is alike enough. Looser
/// than a typo check: the candidates are only what arrived, so `member_left` is a
/// fair suggestion for `member_leaves`.
fn closest_type<'a>(wanted: &str, seen: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    seen.map(|t| (strsim::jaro_winkler(wanted, t), t))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, t)| t)
}

/// Add the last frames the connection received to a failure.
fn received_note(ctx: &ScenarioContext, connection: &Connection, failure: Failure) -> Failure {
    const SHOWN: usize = 30;
    let received = ctx.transcript.received_on(&connection.name);
    if received.is_empty() {
        return failure.note(format!("`{}` received nothing", connection.name));
    }
    let shown: Vec<String> = received
        .iter()
        .skip(received.len().saturating_sub(SHOWN))
        .map(|f| {
            let raw = f.raw.as_ref().map_or_else(String::new, |raw| {
                format!(
                    "\n             raw frame: {}",
                    crate::text::truncate(raw, 300)
                )
            });
            format!(
                "  +{:>7.1}ms  {}{raw}",
                f.at_ms,
                crate::text::truncate(&f.data, 300)
            )
        })
        .collect();
    // The transcript may keep only a connection's first and last frames.
    let count = ctx.transcript.received_count(&connection.name);
    failure.note(format!(
        "received on `{}` ({count} frames{}):\n{}",
        connection.name,
        if count > shown.len() {
            format!(", last {} shown", shown.len())
        } else {
            String::new()
        },
        shown.join("\n")
    ))
}

pub async fn expect_none(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: ExpectNoneStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let pattern = EventPattern {
        event: step.event.clone(),
        next: step.next.clone(),
        error: step.error.clone(),
        complete: step.complete.clone(),
        namespace: step.namespace.clone(),
        matches: step.matches.clone(),
        ..EventPattern::default()
    };
    known_operations(&connection, std::slice::from_ref(&pattern))?;
    let mut waiter = Waiter::new(&connection.inbox, Instant::now() + step.during);
    let mut cursor = 0;
    let found = waiter
        .next(|state| find_first(&state.pending, &mut cursor, |f| fit(&pattern, f).is_none()))
        .await;
    match found {
        Ok(frame) => {
            ctx.transcript.failed(&connection.name, frame.number);
            Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "{} arrived on `{}`, and none should have",
                    describe(&pattern),
                    connection.name
                ),
            )
            .note(format!("event: {}", frame.shown(usize::MAX))))
        }
        // Closed: nothing more can arrive, so nothing matching did.
        Err(_) => Ok(()),
    }
}

pub async fn expect_close(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: ExpectCloseStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let within = step.within.unwrap_or_else(|| ctx.step_timeout());
    let mut waiter = Waiter::new(&connection.inbox, Instant::now() + within);
    let closed = waiter
        .next(|state| state.closed.clone().map_or(Pick::Exhausted, Pick::Found))
        .await
        .map_err(|_| {
            Failure::of(
                FailureKind::Timeout,
                format!(
                    "connection `{}` was not closed within {within:?}",
                    connection.name
                ),
            )
        })?;
    if let Some(code) = step.code {
        if closed.code != Some(code) {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "expected `{}` to be closed with code {code}, but it {closed}",
                    connection.name
                ),
            ));
        }
    }
    if let Some(reason) = &step.reason {
        let mismatches = compare(reason, Some(&Value::String(closed.reason.clone())), false);
        if !mismatches.is_empty() {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("close reason: expected {reason}, got {:?}", closed.reason),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::inbox::LazyJson;

    /// A frame as a raw text frame arrives: its JSON not parsed yet.
    fn frame(text: &str) -> Received {
        Received {
            number: 0,
            at: std::time::Instant::now(),
            text: text.to_string().into(),
            json: LazyJson::default(),
            binary: false,
            event_type: None,
            operation: None,
            ends_operation: false,
            raw: None,
            ack_wanted: None,
            ack_of_emit: None,
            schema_violation: None,
            since_last_sent: None,
        }
    }

    /// Whether `compare` finds no mismatch, on the frame parsed.
    fn compared(expected: &Value, text: &str) -> bool {
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        parsed.is_some_and(|json| compare(expected, Some(&json), false).is_empty())
    }

    #[test]
    fn plain_string_patterns_are_read_out_of_the_text_as_compare_reads_the_document() {
        let eligible = serde_json::json!({"user": "usr_1", "data": {"room": "a\"b"}});
        for (text, holds) in [
            (
                r#"{"user":"usr_1","data":{"room":"a\"b","x":1},"more":[1]}"#,
                true,
            ),
            (
                r#"{"user":"usr_1","user":"usr_2","data":{"room":"a\"b"}}"#,
                false,
            ),
            (
                r#"{"user":"usr_2","user":"usr_1","data":{"room":"a\u0022b"}}"#,
                true,
            ),
            (r#"{"user":"usr_1","data":{"room":"ab"}}"#, false),
            (r#"{"user":"usr_1","data":["room"]}"#, false),
            (r#"{"user":"usr_1","data":{"room":"a\"b"}"#, false),
            (r#"{"user":1,"data":{"room":"a\"b"}}"#, false),
            ("not json", false),
        ] {
            assert_eq!(holds_unparsed(&eligible, &frame(text)), holds, "{text}");
            assert_eq!(compared(&eligible, text), holds, "{text}");
        }
        // Placeholders, other leaf types and empty objects are left to `compare`.
        let text = r#"{"user":"usr_1","n":1,"e":{}}"#;
        for (pattern, holds) in [
            (serde_json::json!({"user": "#string"}), true),
            (serde_json::json!({"n": 1}), true),
            (serde_json::json!({"e": {}}), true),
            (serde_json::json!({}), true),
            (serde_json::json!("usr_1"), false),
        ] {
            assert!(!holds_unparsed(&pattern, &frame(text)), "{pattern}");
            assert_eq!(compared(&pattern, text), holds, "{pattern}");
        }
        // A frame already parsed is compared as it is.
        let parsed = frame(r#"{"user":"usr_1"}"#);
        assert!(parsed.json().is_some());
        assert!(!holds_unparsed(
            &serde_json::json!({"user": "usr_1"}),
            &parsed
        ));
    }

    /// Documents and patterns over a few keys and short strings, so that paths are
    /// found, missing, repeated or of another type, and strings often equal.
    fn document() -> impl proptest::strategy::Strategy<Value = Value> {
        skim::documents("a|b|c", "[ab\"é]{0,2}")
    }

    proptest::proptest! {
        #[test]
        fn reading_out_never_says_a_pattern_holds_when_compare_finds_a_mismatch(
            document in document(),
            pattern in document(),
        ) {
            let text = document.to_string();
            if holds_unparsed(&pattern, &frame(&text)) {
                proptest::prop_assert!(compared(&pattern, &text), "{} in {}", pattern, text);
            }
        }
    }
}
