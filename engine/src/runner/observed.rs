//! What a state assertion (`assert_db`, `assert_redis`) expected and what it found, kept
//! on its step's record so that reports can show both sides, passed or failed.
//! Bounded: a report shows a handful per step and cuts values that are large.

use serde_json::Value;

/// Observations kept per top-level step (an `each` may assert many times).
pub const KEPT_PER_STEP: usize = 10;

/// Serialized size above which a value is kept as its cut text.
const MAX_VALUE_BYTES: usize = 4096;

/// One check of a state assertion: the last read it made (the one that decided).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Observation {
    /// Which store: `postgres` or `redis`.
    pub store: Store,
    /// What was read: the query, or the key.
    pub target: String,
    /// The step's expectations (its `row`, `rows`, `row_count`, `hash`, `stream`…).
    pub expected: Value,
    /// What the read returned (`null` when the check failed before reading).
    pub actual: Value,
    pub passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    Postgres,
    Redis,
}

impl Observation {
    /// `expected` is the rendered step body; the fields that say what to read (and how
    /// long to retry, and what to capture) are left out of it.
    pub fn new(store: Store, target: &str, body: &Value, actual: Value, passed: bool) -> Self {
        const NOT_EXPECTATIONS: [&str; 8] = [
            "query",
            "params",
            "database",
            "key",
            "server",
            "eventually",
            "capture",
            "on",
        ];
        let expected = match body {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| !NOT_EXPECTATIONS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        };
        Self {
            store,
            target: crate::text::truncate(target, 1000),
            expected: bounded(expected),
            actual: bounded(actual),
            passed,
        }
    }
}

/// `value`, or its serialized text cut short when it is large.
fn bounded(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_VALUE_BYTES {
        value
    } else {
        Value::String(crate::text::truncate(&text, MAX_VALUE_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_expectations_and_cuts_large_values() {
        let body = json!({"query": "SELECT 1", "params": [1], "row": {"a": 1}, "eventually": "1s"});
        let rows = Value::Array((0..2000).map(|i| json!({ "n": i })).collect());
        let seen = Observation::new(Store::Postgres, "SELECT 1", &body, rows, false);
        assert_eq!(seen.expected, json!({"row": {"a": 1}}));
        let Value::String(cut) = &seen.actual else {
            panic!("a large value is kept as text: {:?}", seen.actual)
        };
        assert!(cut.len() <= MAX_VALUE_BYTES + '…'.len_utf8() && cut.ends_with('…'));
        let small = Observation::new(Store::Redis, "k", &json!({"key": "k"}), json!("v"), true);
        assert_eq!(small.actual, json!("v"));
        assert_eq!(small.expected, json!({}));
    }
}
