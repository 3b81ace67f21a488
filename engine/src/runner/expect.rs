//! Waiting for events: `expect` (one, a sequence, an unordered set, a count),
//! `expect_none` and `expect_close`. Each takes the first matching frames from the
//! connection's inbox and leaves the rest. A timeout reports every frame the
//! connection received and diffs the nearest candidate against the expectation.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::context::{Failure, ScenarioContext, StepResult};
use super::ws::{Connection, Received};
use crate::matcher::{compare, Mismatch};
use crate::spec::model::*;

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
    if let Some(expected) = &pattern.matches {
        match &frame.json {
            Some(json) => problems.extend(compare(expected, Some(json), pattern.exact)),
            None => {
                let expected_text = Value::String(frame.text.clone());
                if expected != &expected_text {
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

fn describe(pattern: &EventPattern) -> String {
    let event = pattern.event.as_ref().filter(|e| *e != ANY_FRAME);
    match (event, &pattern.matches) {
        (Some(e), Some(m)) => format!("`{e}` matching {m}"),
        (Some(e), None) => format!("`{e}`"),
        (None, Some(m)) => format!("an event matching {m}"),
        (None, None) => "any frame".into(),
    }
}

/// Wait until `pick` finds something in the inbox, the connection closes, or the deadline.
async fn wait_for<T>(
    connection: &Connection,
    deadline: Instant,
    mut pick: impl FnMut(&mut Vec<Received>) -> Option<T>,
) -> Result<T, WaitEnd> {
    let mut changes = connection.inbox.changed.subscribe();
    loop {
        changes.borrow_and_update();
        {
            let mut state = connection
                .inbox
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(found) = pick(&mut state.pending) {
                return Ok(found);
            }
            if let Some(closed) = &state.closed {
                return Err(WaitEnd::Closed(closed.to_string()));
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(WaitEnd::Deadline),
        }
    }
}

enum WaitEnd {
    Deadline,
    Closed(String),
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
            return Err(Failure::new(
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
            Failure::new(format!(
                "template error in the sequence item for `{}` = {value}: {}",
                generator.name, e.message
            ))
        })?;
        let item: PatternItem = serde_json::from_value(rendered)
            .map_err(|e| Failure::new(format!("invalid sequence item: {e}")))?;
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
            return Err(Failure::new(
                "`range` is `[start, end]` or `[start, end, step]`",
            ))
        }
    };
    if step == 0 {
        return Err(Failure::new("`range` step cannot be 0"));
    }
    let count = (i128::from(end) - i128::from(start) + i128::from(step)
        - i128::from(step.signum()))
        / i128::from(step);
    if count > i128::from(MAX_ITEMS) {
        return Err(Failure::new(format!(
            "`range` gives {count} items; a sequence holds at most {MAX_ITEMS}"
        )));
    }
    let count = count.max(0) as i64;
    Ok((0..count).map(|i| Value::from(start + i * step)).collect())
}

pub async fn expect(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    // A generated sequence's item is rendered per value, not with the step.
    let mut body = body.clone();
    let item = ["sequence", "unordered"].into_iter().find_map(|key| {
        body.get_mut(key)
            .and_then(Value::as_object_mut)
            .and_then(|generator| generator.remove("item"))
    });
    let step: ExpectStep = ctx.render(&body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let within = step.within.unwrap_or_else(|| ctx.step_timeout());
    let deadline = Instant::now() + within;
    let single = EventPattern {
        event: step.event.clone(),
        matches: step.matches.clone(),
        exact: step.exact,
        capture: step.capture.clone(),
    };
    if let Some(sequence) = step.sequence {
        let patterns = patterns_of(ctx, sequence, item.as_ref())?;
        let mut after: Option<usize> = None;
        for (i, pattern) in patterns.iter().enumerate() {
            let found = wait_for(&connection, deadline, |pending| match after {
                Some(a) if step.strict => take_next_strictly(pending, a, pattern),
                _ => {
                    let pos = pending.iter().position(|f| {
                        after.is_none_or(|a| f.number > a) && fit(pattern, f).is_none()
                    })?;
                    Some(Ok(pending.remove(pos)))
                }
            })
            .await;
            match found {
                Ok(Ok(frame)) => {
                    after = Some(frame.number);
                    take(ctx, &connection, pattern, &frame)?;
                }
                Ok(Err(between)) => {
                    return Err(between_failure(
                        ctx,
                        &connection,
                        &between,
                        pattern,
                        i,
                        patterns.len(),
                    ))
                }
                Err(end) => {
                    let position = format!("item {} of {} in the sequence", i + 1, patterns.len());
                    return Err(timeout_failure(
                        ctx,
                        &connection,
                        pattern,
                        within,
                        end,
                        &position,
                        after,
                    ));
                }
            }
        }
        return Ok(());
    }
    if let Some(items) = step.unordered {
        let patterns = patterns_of(ctx, items, item.as_ref())?;
        let mut open: Vec<usize> = (0..patterns.len()).collect();
        while !open.is_empty() {
            let found = wait_for(&connection, deadline, |pending| {
                for (slot, &p) in open.iter().enumerate() {
                    if let Some(pos) = pending.iter().position(|f| fit(&patterns[p], f).is_none()) {
                        return Some((slot, pending.remove(pos)));
                    }
                }
                None
            })
            .await;
            match found {
                Ok((slot, frame)) => {
                    let p = open.remove(slot);
                    take(ctx, &connection, &patterns[p], &frame)?;
                }
                Err(end) => {
                    let missing: Vec<String> =
                        open.iter().map(|&p| describe(&patterns[p])).collect();
                    return Err(timeout_failure(
                        ctx,
                        &connection,
                        &patterns[open[0]],
                        within,
                        end,
                        "the unordered set",
                        None,
                    )
                    .note(format!("still missing: {}", missing.join(", "))));
                }
            }
        }
        return Ok(());
    }
    let count = step.count.unwrap_or(1);
    for n in 0..count {
        let found = wait_for(&connection, deadline, |pending| {
            let pos = pending.iter().position(|f| fit(&single, f).is_none())?;
            Some(pending.remove(pos))
        })
        .await;
        match found {
            Ok(frame) => take(ctx, &connection, &single, &frame)?,
            Err(end) => {
                let position = if count > 1 {
                    format!("event {} of {count}", n + 1)
                } else {
                    String::new()
                };
                return Err(timeout_failure(
                    ctx,
                    &connection,
                    &single,
                    within,
                    end,
                    &position,
                    None,
                ));
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
    let deadline = Instant::now() + within;
    let found = wait_for(&connection, deadline, |pending| {
        let pos = pending.iter().position(|f| fit(pattern, f).is_none())?;
        Some(pending.remove(pos))
    })
    .await;
    let frame = match found {
        Ok(frame) => frame,
        Err(end) => {
            return Err(timeout_failure(
                ctx,
                &connection,
                pattern,
                within,
                end,
                "the connection's ready event",
                None,
            ))
        }
    };
    let bare = EventPattern {
        capture: Default::default(),
        ..pattern.clone()
    };
    take(ctx, &connection, &bare, &frame)?;
    let json = frame
        .json
        .clone()
        .unwrap_or(Value::String(frame.text.clone()));
    let mut captured = serde_json::Map::new();
    for (var, path) in &pattern.capture {
        match super::context::json_path(path, &json)? {
            Some(value) => {
                captured.insert(var.clone(), value);
            }
            None => {
                return Err(Failure::new(format!(
                    "capture `{var}`: `{path}` found nothing in the ready event"
                ))
                .note(format!(
                    "event: {}",
                    crate::text::truncate(&frame.text, 500)
                )))
            }
        }
    }
    Ok(captured)
}

/// In a strict sequence, the frame right after `after` must be the next item: take it
/// when it fits; `Err` with what arrived in between when it doesn't (a frame that
/// doesn't fit, or one an earlier step already took); `None` while it hasn't arrived.
fn take_next_strictly(
    pending: &mut Vec<Received>,
    after: usize,
    pattern: &EventPattern,
) -> Option<Result<Received, Between>> {
    let next = pending.iter().position(|f| f.number > after)?;
    if pending[next].number != after + 1 {
        return Some(Err(Between::Taken(after + 1)));
    }
    match fit(pattern, &pending[next]) {
        None => Some(Ok(pending.remove(next))),
        Some(mismatches) => Some(Err(Between::Frame(
            Box::new(pending[next].clone()),
            mismatches,
        ))),
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
            Failure::new(head).note(format!(
                "frame #{} arrived instead: {}\n{}",
                frame.number + 1,
                crate::text::truncate(&frame.text, 400),
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
            Failure::new(head).note(format!(
                "frame #{} arrived in between (an earlier step took it): {text}",
                number + 1
            ))
        }
    }
    .hint("without `strict: true`, other frames may arrive between the items")
}

/// A frame was taken: check its schema, then capture.
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
    if let Some(violation) = &frame.schema_violation {
        ctx.transcript.failed(&connection.name, frame.number);
        // Reported here, precisely; don't report it again at the step boundary.
        let mut state = connection
            .inbox
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        state.violations.retain(|v| v != violation);
        return Err(Failure::new(violation.clone()).note(format!("event: {}", frame.text)));
    }
    if !pattern.capture.is_empty() {
        let json = frame
            .json
            .clone()
            .unwrap_or(Value::String(frame.text.clone()));
        ctx.capture(&pattern.capture, &json)?;
    }
    Ok(())
}

fn timeout_failure(
    ctx: &ScenarioContext,
    connection: &Connection,
    pattern: &EventPattern,
    within: Duration,
    end: WaitEnd,
    position: &str,
    after: Option<usize>,
) -> Failure {
    let what = describe(pattern);
    let place = if position.is_empty() {
        String::new()
    } else {
        format!(" ({position})")
    };
    let mut failure = Failure::new(match &end {
        WaitEnd::Deadline => format!(
            "no {what} on `{}` within {within:?}{place}",
            connection.name
        ),
        WaitEnd::Closed(how) => format!(
            "connection `{}` {how} before {what} arrived{place}",
            connection.name
        ),
    });
    let state = connection
        .inbox
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Nearest candidate among frames still waiting: fewest mismatches, same type first.
    let nearest = state
        .pending
        .iter()
        .filter(|f| after.is_none_or(|a| f.number > a))
        .filter_map(|f| fit(pattern, f).map(|m| (f, m)))
        .min_by_key(|(f, m)| {
            let same_type = pattern.event.is_some() && f.event_type == pattern.event;
            (!same_type, m.len())
        });
    if let Some((frame, mismatches)) = nearest {
        ctx.transcript.failed(&connection.name, frame.number);
        let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
        failure = failure.note(format!(
            "nearest candidate (frame #{}): {}\n{}",
            frame.number + 1,
            crate::text::truncate(&frame.text, 400),
            lines.join("\n")
        ));
    }
    // A type that never arrived at all is often a typo: suggest the nearest one that did.
    if let Some(event) = &pattern.event {
        let seen: std::collections::BTreeSet<&str> = state
            .pending
            .iter()
            .filter_map(|f| f.event_type.as_deref())
            .collect();
        if !seen.contains(event.as_str()) {
            if let Some(hint) = crate::diagnostic::did_you_mean(event, seen.iter().copied()) {
                failure = failure.hint(hint);
            }
        }
    }
    drop(state);
    let received = ctx.transcript.received_on(&connection.name);
    if received.is_empty() {
        failure = failure.note(format!("`{}` received nothing", connection.name));
    } else {
        let shown: Vec<String> = received
            .iter()
            .rev()
            .take(30)
            .rev()
            .map(|f| {
                format!(
                    "  +{:>7.1}ms  {}",
                    f.at_ms,
                    crate::text::truncate(&f.data, 300)
                )
            })
            .collect();
        // The transcript may keep only a connection's first and last frames.
        let count = ctx.transcript.received_count(&connection.name);
        failure = failure.note(format!(
            "received on `{}` ({} frames{}):\n{}",
            connection.name,
            count,
            if count > shown.len() {
                format!(", last {} shown", shown.len())
            } else {
                String::new()
            },
            shown.join("\n")
        ));
    }
    failure
}

pub async fn expect_none(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: ExpectNoneStep = ctx.render(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let pattern = EventPattern {
        event: step.event.clone(),
        matches: step.matches.clone(),
        ..EventPattern::default()
    };
    let deadline = Instant::now() + step.during;
    let found = wait_for(&connection, deadline, |pending| {
        pending.iter().find(|f| fit(&pattern, f).is_none()).cloned()
    })
    .await;
    match found {
        Ok(frame) => {
            ctx.transcript.failed(&connection.name, frame.number);
            Err(Failure::new(format!(
                "{} arrived on `{}`, and none should have",
                describe(&pattern),
                connection.name
            ))
            .note(format!("event: {}", frame.text)))
        }
        // Closed: nothing more can arrive, so nothing matching did.
        Err(_) => Ok(()),
    }
}

pub async fn expect_close(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: ExpectCloseStep = ctx.render(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let within = step.within.unwrap_or_else(|| ctx.step_timeout());
    let deadline = Instant::now() + within;
    let mut changes = connection.inbox.changed.subscribe();
    let closed = loop {
        changes.borrow_and_update();
        if let Some(closed) = connection
            .inbox
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .clone()
        {
            break closed;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err(Failure::new(format!(
                "connection `{}` was not closed within {within:?}",
                connection.name
            )));
        }
    };
    if let Some(code) = step.code {
        if closed.code != Some(code) {
            return Err(Failure::new(format!(
                "expected `{}` to be closed with code {code}, but it {closed}",
                connection.name
            )));
        }
    }
    if let Some(reason) = &step.reason {
        let mismatches = compare(reason, Some(&Value::String(closed.reason.clone())), false);
        if !mismatches.is_empty() {
            return Err(Failure::new(format!(
                "close reason: expected {reason}, got {:?}",
                closed.reason
            )));
        }
    }
    Ok(())
}
