//! Redis: fixture commands, `redis` steps and `assert_redis` (string, hash, set, list,
//! sorted set, stream, existence, type, length, TTL), with `eventually`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::{json, Map, Value};

use super::context::{Failure, ScenarioContext, StepResult};
use super::db::mismatch_failure;
use super::observed::{Observation, Store};
use super::poll::poll;
use crate::diagnostic::FailureKind;
use crate::matcher::compare;
use crate::spec::model::{AssertRedisStep, RedisStep};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

fn arg_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Redis reply → JSON (bulk strings as text; maps as objects).
pub fn to_json(value: redis::Value) -> Value {
    match value {
        redis::Value::Nil => Value::Null,
        redis::Value::Int(i) => json!(i),
        redis::Value::BulkString(bytes) => {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        redis::Value::SimpleString(s) => Value::String(s),
        redis::Value::Okay => Value::String("OK".into()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            Value::Array(items.into_iter().map(to_json).collect())
        }
        redis::Value::Map(pairs) => {
            let mut map = Map::new();
            for (k, v) in pairs {
                map.insert(arg_text(&to_json(k)), to_json(v));
            }
            Value::Object(map)
        }
        redis::Value::Double(d) => json!(d),
        redis::Value::Boolean(b) => json!(b),
        redis::Value::VerbatimString { text, .. } => Value::String(text),
        other => Value::String(format!("{other:?}")),
    }
}

async fn connection(
    ctx: &ScenarioContext,
    server: Option<&str>,
) -> Result<ConnectionManager, Failure> {
    let url = ctx.redis_url(server)?;
    Ok(ctx.resources.redis(&url).await?)
}

async fn run(conn: &mut ConnectionManager, command: &[Value]) -> Result<Value, Failure> {
    let Some((name, args)) = command.split_first() else {
        return Err(Failure::of(FailureKind::Spec, "empty Redis command"));
    };
    let mut cmd = redis::cmd(&arg_text(name));
    for arg in args {
        cmd.arg(arg_text(arg));
    }
    let shown = command.iter().map(arg_text).collect::<Vec<_>>().join(" ");
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<redis::Value>(conn)).await {
        Ok(Ok(value)) => Ok(to_json(value)),
        Ok(Err(e)) => Err(
            Failure::of(FailureKind::Redis, format!("Redis command failed: {e}"))
                .note(format!("command: {shown}")),
        ),
        Err(_) => Err(Failure::of(
            FailureKind::Timeout,
            format!("Redis did not answer within {COMMAND_TIMEOUT:?}"),
        )
        .note(format!("command: {shown}"))),
    }
}

pub async fn execute(
    ctx: &ScenarioContext,
    server: Option<&str>,
    command: &[Value],
) -> Result<Value, Failure> {
    let mut conn = connection(ctx, server).await?;
    run(&mut conn, command).await
}

pub async fn redis_step(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: RedisStep = ctx.render_step(body, &[])?;
    let reply = execute(ctx, step.server.as_deref(), &step.command).await?;
    if !step.capture.is_empty() {
        ctx.capture(&step.capture, &reply)?;
    }
    Ok(())
}

/// Redis stores strings: compare expected scalars as their text.
fn as_redis_text(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_redis_text(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(as_redis_text).collect()),
        other => other.clone(),
    }
}

fn pairs_to_object(flat: &Value) -> Value {
    let mut map = Map::new();
    if let Value::Array(items) = flat {
        for pair in items.chunks(2) {
            if let [k, v] = pair {
                map.insert(arg_text(k), v.clone());
            }
        }
    } else if let Value::Object(m) = flat {
        return Value::Object(m.clone());
    }
    Value::Object(map)
}

fn expect_match(what: &str, expected: &Value, actual: &Value, exact: bool) -> Result<(), Failure> {
    let mismatches = compare(&as_redis_text(expected), Some(actual), exact);
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatch_failure(what, &mismatches).note(format!(
            "value: {}",
            crate::text::truncate(&actual.to_string(), 1500)
        )))
    }
}

fn sorted_texts(items: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = items.iter().map(arg_text).collect();
    texts.sort();
    texts
}

/// Redis never stores an empty set, list, sorted set, hash or stream: a missing key is
/// what "empty" looks like, so a step that only expects emptiness holds for it.
fn expects_only_emptiness(step: &AssertRedisStep) -> bool {
    let empty = |v: &Option<Vec<Value>>| v.as_ref().is_none_or(Vec::is_empty);
    let stream_empty = step.stream.as_ref().is_none_or(|s| {
        s.length.as_ref().is_none_or(|n| n == &Value::from(0))
            && empty(&s.entries)
            && s.last.is_none()
    });
    empty(&step.set)
        && empty(&step.list)
        && empty(&step.zset)
        && empty(&step.set_contains)
        && step.length.as_ref().is_none_or(|n| n == &Value::from(0))
        && stream_empty
        && step.string.is_none()
        && step.hash.is_none()
        && step.hash_exact.is_none()
        && step.ttl.is_none()
        && step.capture.is_empty()
}

/// A key's value as JSON, read with the command for its type.
async fn fetch(
    conn: &mut ConnectionManager,
    key_type: &str,
    key: &Value,
) -> Result<Value, Failure> {
    let key = key.clone();
    Ok(match key_type {
        "string" => run(conn, &[json!("GET"), key.clone()]).await?,
        "hash" => pairs_to_object(&run(conn, &[json!("HGETALL"), key.clone()]).await?),
        "set" => {
            let mut members = run(conn, &[json!("SMEMBERS"), key.clone()]).await?;
            if let Value::Array(items) = &mut members {
                items.sort_by_key(arg_text);
            }
            members
        }
        "list" => run(conn, &[json!("LRANGE"), key.clone(), json!(0), json!(-1)]).await?,
        "zset" => {
            let flat = run(
                conn,
                &[
                    json!("ZRANGE"),
                    key.clone(),
                    json!(0),
                    json!(-1),
                    json!("WITHSCORES"),
                ],
            )
            .await?;
            let items = flat.as_array().cloned().unwrap_or_default();
            Value::Array(
                items
                    .chunks(2)
                    .map(|pair| json!({"member": pair[0], "score": pair.get(1).map(arg_text).and_then(|s| s.parse::<f64>().ok())}))
                    .collect(),
            )
        }
        "stream" => {
            let entries = run(
                conn,
                &[json!("XRANGE"), key.clone(), json!("-"), json!("+")],
            )
            .await?;
            Value::Array(
                entries
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|entry| {
                        let id = entry.get(0).cloned().unwrap_or(Value::Null);
                        let fields = entry.get(1).map(pairs_to_object).unwrap_or_default();
                        json!({"id": id, "fields": fields})
                    })
                    .collect(),
            )
        }
        _ => Value::Null,
    })
}

/// The type a step's expectations imply (`hash:` → hash …), if exactly one.
fn implied_type(step: &AssertRedisStep) -> Option<&'static str> {
    let mut types = Vec::new();
    if step.string.is_some() {
        types.push("string");
    }
    if step.hash.is_some() || step.hash_exact.is_some() {
        types.push("hash");
    }
    if step.set.is_some() || step.set_contains.is_some() || step.set_excludes.is_some() {
        types.push("set");
    }
    if step.list.is_some() {
        types.push("list");
    }
    if step.zset.is_some() {
        types.push("zset");
    }
    if step.stream.is_some() {
        types.push("stream");
    }
    types.dedup();
    (types.len() == 1).then(|| types[0])
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Check a key once; returns the value as JSON (for captures).
/// `seen` gets the value read, for reports.
async fn check_key(
    conn: &mut ConnectionManager,
    step: &AssertRedisStep,
    seen: &std::sync::Mutex<Value>,
) -> Result<Value, Failure> {
    let key = Value::String(step.key.clone());
    // One round trip where the expectation implies the type: read the value with that
    // type's command (Redis keeps no empty collections, so empty means absent); only a
    // wrong type, or an explicit `type:`, costs a TYPE query.
    let (key_type, prefetched) = match implied_type(step).filter(|_| step.key_type.is_none()) {
        Some(implied) => match fetch(conn, implied, &key).await {
            Ok(value) if is_empty_value(&value) => ("none".to_string(), None),
            Ok(value) => (implied.to_string(), Some(value)),
            Err(_) => (
                arg_text(&run(conn, &[json!("TYPE"), key.clone()]).await?),
                None,
            ),
        },
        None => (
            arg_text(&run(conn, &[json!("TYPE"), key.clone()]).await?),
            None,
        ),
    };
    let exists = key_type != "none";
    if let Some(want) = step.exists {
        if want != exists {
            return Err(Failure::of(
                FailureKind::Mismatch,
                if want {
                    format!("key `{}` does not exist", step.key)
                } else {
                    format!("key `{}` exists (type {key_type}) and should not", step.key)
                },
            ));
        }
    }
    if let Some(want) = &step.key_type {
        if want != &key_type {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("key `{}` has type {key_type}, expected {want}", step.key),
            ));
        }
    }
    let wants_value = step.string.is_some()
        || step.hash.is_some()
        || step.hash_exact.is_some()
        || step.set.is_some()
        || step.set_contains.is_some()
        || step.set_excludes.is_some()
        || step.list.is_some()
        || step.zset.is_some()
        || step.stream.is_some()
        || step.length.is_some()
        || step.ttl.is_some()
        || !step.capture.is_empty();
    if !exists {
        if wants_value && !expects_only_emptiness(step) {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("key `{}` does not exist", step.key),
            ));
        }
        return Ok(Value::Null);
    }
    let value = match prefetched {
        Some(value) => value,
        None => fetch(conn, &key_type, &key).await?,
    };
    *crate::sync::lock(seen) = value.clone();
    if let Some(expected) = &step.string {
        expect_match(
            &format!("string `{}` does not match", step.key),
            expected,
            &value,
            false,
        )?;
    }
    if let Some(expected) = &step.hash {
        expect_match(
            &format!("hash `{}` does not match", step.key),
            expected,
            &value,
            false,
        )?;
    }
    if let Some(expected) = &step.hash_exact {
        expect_match(
            &format!("hash `{}` does not match exactly", step.key),
            expected,
            &value,
            true,
        )?;
    }
    let members = value.as_array().cloned().unwrap_or_default();
    if let Some(expected) = &step.set {
        if sorted_texts(expected) != sorted_texts(&members) {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "set `{}` does not have exactly the expected members",
                    step.key
                ),
            )
            .note(format!(
                "expected: {:?}\n     got: {:?}",
                sorted_texts(expected),
                sorted_texts(&members)
            )));
        }
    }
    if let Some(expected) = &step.set_contains {
        let have = sorted_texts(&members);
        let missing: Vec<String> = expected
            .iter()
            .map(arg_text)
            .filter(|m| !have.contains(m))
            .collect();
        if !missing.is_empty() {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("set `{}` lacks {missing:?}", step.key),
            )
            .note(format!("members: {have:?}")));
        }
    }
    if let Some(excluded) = &step.set_excludes {
        let have = sorted_texts(&members);
        let present: Vec<String> = excluded
            .iter()
            .map(arg_text)
            .filter(|m| have.contains(m))
            .collect();
        if !present.is_empty() {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("set `{}` contains {present:?}, which it must not", step.key),
            ));
        }
    }
    if let Some(expected) = &step.list {
        expect_match(
            &format!("list `{}` does not match", step.key),
            &Value::Array(expected.clone()),
            &value,
            false,
        )?;
    }
    if let Some(expected) = &step.zset {
        let normalized: Vec<Value> = expected
            .iter()
            .map(|item| match item {
                Value::String(_) => json!({"member": item}),
                other => other.clone(),
            })
            .collect();
        let mismatches = compare(&Value::Array(normalized), Some(&value), false);
        if !mismatches.is_empty() {
            return Err(mismatch_failure(
                &format!("sorted set `{}` does not match", step.key),
                &mismatches,
            )
            .note(format!("value: {value}")));
        }
    }
    if let Some(stream) = &step.stream {
        let entries = value.as_array().cloned().unwrap_or_default();
        if let Some(length) = &stream.length {
            if !crate::matcher::count_holds(length, entries.len()) {
                return Err(Failure::of(
                    FailureKind::Mismatch,
                    format!(
                        "stream `{}` has {} entries, expected {}",
                        step.key,
                        entries.len(),
                        crate::matcher::show_count(length)
                    ),
                ));
            }
        }
        let fields: Vec<Value> = entries.iter().map(|e| e["fields"].clone()).collect();
        if let Some(expected) = &stream.entries {
            expect_match(
                &format!("stream `{}` entries do not match", step.key),
                &Value::Array(expected.clone()),
                &Value::Array(fields.clone()),
                false,
            )?;
        }
        if let Some(expected) = &stream.last {
            let last = fields.last().cloned().unwrap_or(Value::Null);
            expect_match(
                &format!("last entry of stream `{}` does not match", step.key),
                expected,
                &last,
                false,
            )?;
        }
    }
    if let Some(length) = &step.length {
        let actual = match &value {
            Value::String(s) => s.len(),
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if !crate::matcher::count_holds(length, actual) {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "key `{}` has length {actual}, expected {}",
                    step.key,
                    crate::matcher::show_count(length)
                ),
            ));
        }
    }
    if let Some(ttl) = &step.ttl {
        let pttl = run(conn, &[json!("PTTL"), key.clone()])
            .await?
            .as_i64()
            .unwrap_or(-2);
        if ttl.none {
            if pttl != -1 {
                return Err(Failure::of(
                    FailureKind::Mismatch,
                    format!("key `{}` has a TTL of {pttl}ms, expected none", step.key),
                ));
            }
        } else {
            if pttl < 0 {
                return Err(Failure::of(
                    FailureKind::Mismatch,
                    format!("key `{}` has no expiry", step.key),
                ));
            }
            let remaining = Duration::from_millis(pttl as u64);
            if ttl.min.is_some_and(|min| remaining < min)
                || ttl.max.is_some_and(|max| remaining > max)
            {
                return Err(Failure::of(
                    FailureKind::Mismatch,
                    format!(
                        "key `{}` TTL is {remaining:?}, expected {}",
                        step.key,
                        ttl_range(ttl.min, ttl.max)
                    ),
                ));
            }
        }
    }
    Ok(value)
}

/// A TTL range in words: "between 26s and 28.5s", "at least 26s", "at most 28.5s".
fn ttl_range(min: Option<Duration>, max: Option<Duration>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("between {min:?} and {max:?}"),
        (Some(min), None) => format!("at least {min:?}"),
        (None, Some(max)) => format!("at most {max:?}"),
        (None, None) => "any TTL".into(),
    }
}

pub async fn assert_redis(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let rendered = ctx.render_value(body, &[])?;
    let step: AssertRedisStep = ctx.typed(rendered.clone())?;
    let conn = connection(ctx, step.server.as_deref()).await?;
    let window = step.eventually.unwrap_or(Duration::ZERO);
    let seen = std::sync::Mutex::new(Value::Null);
    let outcome = poll(window, || {
        let mut conn = conn.clone();
        let step = &step;
        let seen = &seen;
        async move {
            *crate::sync::lock(seen) = Value::Null;
            check_key(&mut conn, step, seen).await
        }
    })
    .await;
    let actual = crate::sync::into_inner(seen);
    ctx.observed(Observation::new(
        Store::Redis,
        &step.key,
        &rendered,
        actual,
        outcome.is_ok(),
    ));
    let value = outcome?;
    if !step.capture.is_empty() {
        ctx.capture(&step.capture, &value)?;
    }
    Ok(())
}
