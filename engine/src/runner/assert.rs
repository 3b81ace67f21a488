//! `assert`: compare a value (a capture, an ID, a row field, a number, a time) with
//! another. Numbers compare as numbers (also when one side is a numeric string, as
//! Redis and many APIs return them), RFC 3339 times as times. A failure shows each
//! side as written and as rendered.

use std::cmp::Ordering;

use serde_json::Value;

use super::context::{Failure, ScenarioContext, StepResult};
use crate::diagnostic::FailureKind;
use crate::matcher::compare;
use crate::spec::model::AssertStep;

pub fn assert(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: AssertStep = ctx.render_step(body, &[])?;
    let written = |key: &str| body.get(key).map(show_written).unwrap_or_default();
    let checks: [(&str, &Option<Value>); 8] = [
        ("equals", &step.equals),
        ("not_equals", &step.not_equals),
        ("gt", &step.gt),
        ("gte", &step.gte),
        ("lt", &step.lt),
        ("lte", &step.lte),
        ("match", &step.matches),
        ("contains", &step.contains),
    ];
    let mut compared = false;
    for (op, expected) in checks {
        let Some(expected) = expected else { continue };
        compared = true;
        if let Err(why) = check(op, &step.value, expected) {
            let mut failure = Failure::of(
                FailureKind::Assertion,
                match &step.message {
                    Some(message) => format!("assertion failed: {message}"),
                    None => format!(
                        "assertion failed: {} {} {}",
                        written("value"),
                        words(op),
                        written(op)
                    ),
                },
            )
            .note(format!("value:    {}", show(&step.value)))
            .note(format!("{:<9} {}", format!("{}:", op), show(expected)));
            if !why.is_empty() {
                failure = failure.note(why);
            }
            return Err(failure);
        }
    }
    if !compared {
        return Err(
            Failure::of(FailureKind::Spec, "`assert` needs a comparison").hint(format!(
                "one of: {}",
                crate::spec::model::ASSERT_COMPARISONS.join(", ")
            )),
        );
    }
    Ok(())
}

fn words(op: &str) -> &'static str {
    match op {
        "equals" => "equals",
        "not_equals" => "differs from",
        "gt" => ">",
        "gte" => ">=",
        "lt" => "<",
        "lte" => "<=",
        "match" => "matches",
        _ => "contains",
    }
}

fn show_written(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => crate::text::truncate(&other.to_string(), 200),
    }
}

fn show(value: &Value) -> String {
    crate::text::truncate(&value.to_string(), 300)
}

/// `Ok` when `value <op> expected` holds; `Err` says why not (may be empty).
fn check(op: &str, value: &Value, expected: &Value) -> Result<(), String> {
    let holds = match op {
        "equals" => equal(value, expected),
        "not_equals" => !equal(value, expected),
        "gt" | "gte" | "lt" | "lte" => {
            let ordering = order(value, expected)?;
            match op {
                "gt" => ordering == Ordering::Greater,
                "gte" => ordering != Ordering::Less,
                "lt" => ordering == Ordering::Less,
                _ => ordering != Ordering::Greater,
            }
        }
        "match" => {
            let mismatches = compare(expected, Some(value), false);
            if !mismatches.is_empty() {
                let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
                return Err(format!("differences:\n{}", lines.join("\n")));
            }
            true
        }
        _ => contains(value, expected)?,
    };
    if holds {
        Ok(())
    } else {
        Err(String::new())
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn time(value: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
}

fn equal(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    // A number against a number or a numeric string: by value.
    if a.is_number() || b.is_number() {
        if let (Some(x), Some(y)) = (number(a), number(b)) {
            return x == y;
        }
    }
    if let (Some(x), Some(y)) = (time(a), time(b)) {
        return x == y;
    }
    false
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x
            .partial_cmp(&y)
            .ok_or_else(|| "numbers that cannot be ordered".to_string());
    }
    if let (Some(x), Some(y)) = (time(a), time(b)) {
        return Ok(x.cmp(&y));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "cannot order {} and {}: compare numbers, RFC 3339 times or strings",
            kind(a),
            kind(b)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn contains(value: &Value, expected: &Value) -> Result<bool, String> {
    match (value, expected) {
        (Value::Array(items), _) => Ok(items.iter().any(|i| equal(i, expected))),
        (Value::Object(map), Value::String(key)) => Ok(map.contains_key(key)),
        (Value::String(text), Value::String(part)) => Ok(text.contains(part.as_str())),
        _ => Err(format!(
            "`contains` takes a list, an object (with a key) or a string; the value is {}",
            kind(value)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_also_as_numeric_strings() {
        assert!(check("equals", &json!(5), &json!("5")).is_ok());
        assert!(check("equals", &json!(1), &json!(1.0)).is_ok());
        assert!(check("gt", &json!("10"), &json!(9)).is_ok());
        assert!(
            check("gt", &json!("10"), &json!("9")).is_ok(),
            "numeric, not lexicographic"
        );
        assert!(check("lte", &json!(3), &json!(2)).is_err());
        assert!(
            check("equals", &json!("5"), &json!("05")).is_err(),
            "two strings stay strings"
        );
    }

    #[test]
    fn times_compare_as_times() {
        let earlier = json!("2026-01-01T10:00:00+02:00");
        let later = json!("2026-01-01T09:00:00Z");
        assert!(check("lt", &earlier, &later).is_ok());
        assert!(check("equals", &json!("2026-01-01T08:00:00Z"), &earlier).is_ok());
    }

    #[test]
    fn match_contains_and_type_errors() {
        assert!(check(
            "match",
            &json!({"a": 1, "b": "x"}),
            &json!({"a": "#integer"})
        )
        .is_ok());
        let why = check("match", &json!({"a": "1"}), &json!({"a": "#integer"})).unwrap_err();
        assert!(why.contains("$.a"), "{why}");
        assert!(check("contains", &json!([1, 2]), &json!(2)).is_ok());
        assert!(check("contains", &json!({"k": 1}), &json!("k")).is_ok());
        assert!(check("contains", &json!("hello"), &json!("ell")).is_ok());
        assert!(check("contains", &json!(5), &json!(5))
            .unwrap_err()
            .contains("a number"));
        assert!(check("gt", &json!({}), &json!(1))
            .unwrap_err()
            .contains("cannot order"));
        assert!(check("not_equals", &json!("a"), &json!("b")).is_ok());
    }
}
