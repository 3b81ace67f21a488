//! Checks of spec contents that the schema cannot express and that need another
//! module's knowledge: durations in range, JSONPaths of captures, placeholders the
//! matcher knows in the fields it matches, `assert_db` queries that only read. The checker in `load.rs` calls these and
//! locates each problem by the JSON pointer returned with it.

use serde_json::Value;

use super::duration::parse_duration;
use super::model::StepKind;
use super::yaml::{self, pointer_escape};
use crate::diagnostic::Diagnostic;
use crate::template;

/// A problem and the JSON pointer of the field it is about.
pub type Located = (String, Diagnostic);

/// Problems in scenario-level fields.
pub fn scenario(value: &Value) -> Vec<Located> {
    let mut out = Vec::new();
    if let Some(text) = value.get("timeout").and_then(Value::as_str) {
        duration(text, "/timeout", &mut out);
    }
    out
}

/// Problems in one step's body; `pointer` is where the body sits.
pub fn step(kind: StepKind, body: &Value, pointer: &str) -> Vec<Located> {
    let mut out = Vec::new();
    if kind == StepKind::Sleep {
        if let Some(text) = body.as_str() {
            duration(text, pointer, &mut out);
        }
    }
    captures(body, &mut pointer.to_string(), &mut out);
    for field in expectation_fields(kind) {
        for (at, value) in fields(body, pointer, field) {
            placeholders(value, at, &mut out);
        }
    }
    if kind == StepKind::AssertDb {
        if let Some(query) = body.get("query").and_then(Value::as_str) {
            if let Some(why) = super::sql::not_a_read(query) {
                out.push((
                    format!("{pointer}/query"),
                    Diagnostic::new(format!("`assert_db` only reads, and this query does not: {why}"))
                        .hint("change data in a `sql` step; `assert_db` runs its query again while it waits (`eventually`)"),
                ));
            }
        }
    }
    out
}

/// Fields of a step body that the matcher compares (so placeholders are meaningful),
/// as paths; `*` is every item of a list.
fn expectation_fields(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Expect => &["match", "sequence/*/match", "unordered/*/match"],
        StepKind::ExpectNone => &["match"],
        StepKind::ExpectClose => &["reason"],
        StepKind::AssertDb => &["rows", "row", "row_count"],
        StepKind::AssertRedis => &[
            "string",
            "hash",
            "hash_exact",
            "set",
            "set_contains",
            "set_excludes",
            "list",
            "zset",
            "stream/entries",
            "stream/last",
            "stream/length",
            "length",
        ],
        StepKind::Http => &["response"],
        StepKind::Assert => &["match"],
        _ => &[],
    }
}

/// The values at `path` under `value`, each with its pointer.
fn fields<'v>(value: &'v Value, pointer: &str, path: &str) -> Vec<(String, &'v Value)> {
    let Some((head, rest)) = path.split_once('/').or(Some((path, ""))) else {
        return Vec::new();
    };
    let children: Vec<(String, &Value)> = match (head, value) {
        ("*", Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{pointer}/{i}"), item))
            .collect(),
        (key, Value::Object(map)) => map
            .get(key)
            .map(|item| (format!("{pointer}/{}", pointer_escape(key)), item))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    if rest.is_empty() {
        return children;
    }
    children
        .into_iter()
        .flat_map(|(at, child)| fields(child, &at, rest))
        .collect()
}

/// A string starting with `#` in an expectation must be a placeholder (or `##`).
fn placeholders(value: &Value, pointer: String, out: &mut Vec<Located>) {
    match value {
        Value::String(text) => {
            if let Some(misuse) = crate::matcher::placeholder_misuse(text) {
                out.push((pointer, Diagnostic::new(misuse.message).hint(misuse.hint)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                placeholders(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                placeholders(item, format!("{pointer}/{}", pointer_escape(key)), out);
            }
        }
        _ => {}
    }
}

/// Every `capture:` path must parse, as it will at run time. `pointer` is `value`'s
/// own; it is extended for each child and cut back after it.
fn captures(value: &Value, pointer: &mut String, out: &mut Vec<Located>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let own = yaml::push_key(pointer, key);
                match (key.as_str(), item) {
                    ("capture", Value::Object(paths)) => {
                        for (name, path) in paths {
                            let Some(path) = path.as_str().filter(|p| !template::is_template(p))
                            else {
                                continue;
                            };
                            if let Err(message) = crate::json_path::parse(path) {
                                out.push((
                                    format!("{pointer}/{}", pointer_escape(name)),
                                    Diagnostic::from(message)
                                        .hint("captures take JSONPath (RFC 9535): `$.id`, `$.items[0].name`"),
                                ));
                            }
                        }
                    }
                    _ => captures(item, pointer, out),
                }
                pointer.truncate(own);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let own = yaml::push_index(pointer, i);
                captures(item, pointer, out);
                pointer.truncate(own);
            }
        }
        _ => {}
    }
}

/// A duration the schema's pattern accepts can still be out of range.
fn duration(text: &str, pointer: &str, out: &mut Vec<Located>) {
    if template::is_template(text) {
        return;
    }
    if let Err(problem) = parse_duration(text) {
        out.push((pointer.to_string(), Diagnostic::from(problem)));
    }
}
