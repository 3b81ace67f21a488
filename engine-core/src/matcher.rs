//! Matching received values against expectations: subset match by default (listed
//! keys must match, others are ignored), `exact` equality on request, and Karate-style
//! placeholders (`#string`, `#uuid`, `#regex ^a.*` …). Mismatches are reported as a
//! list of `path: expected …, got …` lines, which also rank "nearest candidates".

use regex::Regex;
use serde_json::Value;

/// One difference between an expectation and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub path: String,
    pub expected: String,
    pub got: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "$"
        } else {
            &self.path
        };
        write!(f, "{path}: expected {}, got {}", self.expected, self.got)
    }
}

/// Compare; an empty result means it matches.
pub fn compare(expected: &Value, actual: Option<&Value>, exact: bool) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(expected, actual, exact, &mut String::from("$"), &mut out);
    out
}

pub fn matches(expected: &Value, actual: &Value, exact: bool) -> bool {
    compare(expected, Some(actual), exact).is_empty()
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "nothing (key absent)".into(),
        Some(v) => {
            let text = v.to_string();
            crate::text::truncate(&text, 200)
        }
    }
}

fn walk(
    expected: &Value,
    actual: Option<&Value>,
    exact: bool,
    path: &mut String,
    out: &mut Vec<Mismatch>,
) {
    let mut miss = |expected: String, actual: Option<&Value>| {
        out.push(Mismatch {
            path: path.clone(),
            expected,
            got: show(actual),
        })
    };
    if let Value::String(pattern) = expected {
        if let Some(result) = placeholder(pattern, actual) {
            if let Err(description) = result {
                miss(description, actual);
            }
            return;
        }
    }
    let Some(actual_value) = actual else {
        miss(show(Some(expected)), None);
        return;
    };
    match (expected, actual_value) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, want_value) in want {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                walk(want_value, got.get(key), exact, path, out);
                path.truncate(len);
            }
            if exact {
                for key in got.keys().filter(|k| !want.contains_key(*k)) {
                    out.push(Mismatch {
                        path: format!("{path}.{key}"),
                        expected: "no such key (exact match)".into(),
                        got: show(got.get(key)),
                    });
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                out.push(Mismatch {
                    path: path.clone(),
                    expected: format!("{} items", want.len()),
                    got: format!("{} items: {}", got.len(), show(Some(actual_value))),
                });
                return;
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(w, Some(g), exact, path, out);
                path.truncate(len);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            if a.as_f64() != b.as_f64() {
                miss(a.to_string(), actual);
            }
        }
        (want, got) => {
            if want != got {
                miss(show(Some(want)), actual);
            }
        }
    }
}

/// `Some(Ok)` when `pattern` is a placeholder that holds, `Some(Err(what))` when it
/// does not, `None` when `pattern` is not a placeholder.
fn placeholder(pattern: &str, actual: Option<&Value>) -> Option<Result<(), String>> {
    let rest = pattern.strip_prefix('#')?;
    let (name, arg) = match rest.split_once(' ') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    let ok = |cond: bool, what: &str| Some(if cond { Ok(()) } else { Err(what.to_string()) });
    match (name, arg) {
        ("ignore", None) => Some(Ok(())),
        ("present", None) => ok(actual.is_some(), "a value (#present)"),
        ("absent", None) => ok(actual.is_none(), "no such key (#absent)"),
        ("null", None) => ok(matches!(actual, Some(Value::Null)), "null"),
        ("notnull", None) => ok(
            matches!(actual, Some(v) if !v.is_null()),
            "a non-null value",
        ),
        ("string", None) => ok(matches!(actual, Some(Value::String(_))), "a string"),
        ("number", None) => ok(matches!(actual, Some(Value::Number(_))), "a number"),
        ("integer", None) => ok(
            matches!(actual, Some(Value::Number(n)) if n.is_i64() || n.is_u64()),
            "an integer",
        ),
        ("boolean", None) => ok(matches!(actual, Some(Value::Bool(_))), "a boolean"),
        ("array", None) => ok(matches!(actual, Some(Value::Array(_))), "an array"),
        ("object", None) => ok(matches!(actual, Some(Value::Object(_))), "an object"),
        ("uuid", None) => ok(
            matches!(actual, Some(Value::String(s)) if is_uuid(s)),
            "a UUID",
        ),
        ("regex", Some(re)) => {
            let text = match actual {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            Some(match compiled(re) {
                Err(e) => Err(format!("a valid regex (`{re}`: {e})")),
                Ok(regex) if text.as_deref().is_some_and(|t| regex.is_match(t)) => Ok(()),
                Ok(_) => Err(format!("a string matching /{re}/")),
            })
        }
        ("contains", Some(needle)) => ok(
            matches!(actual, Some(Value::String(s)) if s.contains(needle)),
            &format!("a string containing `{needle}`"),
        ),
        (cmp @ ("gt" | "gte" | "lt" | "lte"), Some(bound)) => {
            let bound: f64 = match bound.trim().parse() {
                Ok(b) => b,
                Err(_) => return Some(Err(format!("a number bound in `#{cmp} {bound}`"))),
            };
            let value = actual.and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            });
            let holds = value.is_some_and(|v| match cmp {
                "gt" => v > bound,
                "gte" => v >= bound,
                "lt" => v < bound,
                _ => v <= bound,
            });
            ok(holds, &format!("a number {cmp} {bound}"))
        }
        // `##` escapes a literal string that starts with `#`.
        _ if rest.starts_with('#') => Some(if actual == Some(&Value::String(rest.to_string())) {
            Ok(())
        } else {
            Err(format!("\"{rest}\""))
        }),
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    // Accept prefixed IDs like `run_<uuid>` too: the engine's typed IDs look like that.
    let tail = if s.len() > 36 { &s[s.len() - 36..] } else { s };
    uuid::Uuid::parse_str(tail).is_ok() && tail.len() == 36
}

fn compiled(re: &str) -> Result<std::sync::Arc<Regex>, regex::Error> {
    static REGEXES: crate::memo::Memo<Regex> = crate::memo::Memo::new();
    REGEXES.get_or_try_insert(re, || Regex::new(re))
}

/// Does a count (`3`, or `#gte 1`) hold for `actual`?
pub fn count_holds(expected: &Value, actual: usize) -> bool {
    matches(expected, &Value::from(actual), false)
}

/// A count expectation as written: `3`, `#gte 1`.
pub fn show_count(expected: &Value) -> String {
    expected
        .as_str()
        .map_or_else(|| expected.to_string(), str::to_string)
}

/// Check that a placeholder string is well formed (for `engine check`).
pub fn placeholder_problem(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix("#regex ")?;
    // Parsing alone finds what `Regex::new` would refuse for its syntax, at a tenth of
    // the cost of compiling (what `engine check` of a large suite spent most time on).
    regex_syntax::Parser::new()
        .parse(rest)
        .err()
        .map(|e| e.to_string())
}

/// Every placeholder, and whether it takes an argument (`#gte 1`) or none (`#string`).
pub const PLACEHOLDERS: &[(&str, bool)] = &[
    ("ignore", false),
    ("present", false),
    ("absent", false),
    ("null", false),
    ("notnull", false),
    ("string", false),
    ("number", false),
    ("integer", false),
    ("boolean", false),
    ("array", false),
    ("object", false),
    ("uuid", false),
    ("regex", true),
    ("contains", true),
    ("gt", true),
    ("gte", true),
    ("lt", true),
    ("lte", true),
];

/// A string in an expectation that starts with `#` but is no placeholder the matcher
/// knows, or one used without its argument: it would be compared as literal text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceholderMisuse {
    pub message: String,
    pub hint: String,
}

/// Check a string in an expectation (for `engine check`). `##…` is a literal.
pub fn placeholder_misuse(pattern: &str) -> Option<PlaceholderMisuse> {
    let rest = pattern.strip_prefix('#')?;
    if rest.starts_with('#') {
        return None;
    }
    let (name, arg) = match rest.split_once(' ') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    if crate::template::is_template(name) {
        return None; // `#{{ vars.kind }}`: known once rendered
    }
    let misuse = |message: String, hint: String| Some(PlaceholderMisuse { message, hint });
    let Some(&(_, takes_arg)) = PLACEHOLDERS.iter().find(|(known, _)| *known == name) else {
        let names = PLACEHOLDERS.iter().map(|(n, _)| *n);
        let hint = match crate::diagnostic::did_you_mean(name, names) {
            Some(_) => {
                let nearest = PLACEHOLDERS
                    .iter()
                    .min_by_key(|(n, _)| strsim::damerau_levenshtein(name, n))
                    .map_or("", |(n, _)| *n);
                format!("did you mean `#{nearest}`? (write `##{rest}` for literal text)")
            }
            None => format!(
                "placeholders: {}; write `##{rest}` for literal text starting with `#`",
                PLACEHOLDERS
                    .iter()
                    .map(|(n, _)| format!("#{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return misuse(format!("unknown placeholder `#{name}`"), hint);
    };
    match (takes_arg, arg.map(str::trim)) {
        (true, None | Some("")) => misuse(
            format!("`#{name}` needs an argument"),
            match name {
                "regex" => "e.g. `#regex ^run_`".into(),
                "contains" => "e.g. `#contains error`".into(),
                _ => format!("e.g. `#{name} 1`"),
            },
        ),
        (false, Some(arg)) => misuse(
            format!("`#{name}` takes no argument, so `{pattern}` would be compared as text"),
            format!("write `#{name}` alone, or `##{rest}` for literal text (`{arg}` is extra)"),
        ),
        (true, Some(bound))
            if matches!(name, "gt" | "gte" | "lt" | "lte")
                && !crate::template::is_template(bound)
                && bound.parse::<f64>().is_err() =>
        {
            misuse(
                format!("`#{name} {bound}`: the bound must be a number"),
                format!("e.g. `#{name} 1`"),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_match_ignores_extra_keys_and_exact_does_not() {
        let got = json!({"type": "a", "n": 1, "extra": true});
        assert!(matches(&json!({"type": "a"}), &got, false));
        let diff = compare(&json!({"type": "a", "n": 1}), Some(&got), true);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].path, "$.extra");
    }

    #[test]
    fn placeholders() {
        let got =
            json!({"id": "550e8400-e29b-41d4-a716-446655440000", "s": "abc", "n": 3, "z": null});
        assert!(matches(
            &json!({"id": "#uuid", "s": "#regex ^a.c$", "n": "#number", "z": "#null", "q": "#absent"}),
            &got,
            false
        ));
        assert!(matches(
            &json!({"n": "#gte 3", "s": "#contains bc", "id": "#present"}),
            &got,
            false
        ));
        let diff = compare(
            &json!({"s": "#number", "n": "#lt 2", "missing": "#present"}),
            Some(&got),
            false,
        );
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert_eq!(diff[0].to_string(), "$.s: expected a number, got \"abc\"");
    }

    #[test]
    fn arrays_compare_by_position_and_length() {
        assert!(matches(
            &json!([1, {"a": 1}]),
            &json!([1, {"a": 1, "b": 2}]),
            false
        ));
        let diff = compare(&json!([1, 2]), Some(&json!([1])), false);
        assert!(diff[0].expected.contains("2 items"));
    }

    #[test]
    fn misspelt_and_malformed_placeholders_are_named() {
        let misuse = placeholder_misuse("#interger").unwrap();
        assert_eq!(misuse.message, "unknown placeholder `#interger`");
        assert!(
            misuse.hint.starts_with("did you mean `#integer`?"),
            "{misuse:?}"
        );
        let misuse = placeholder_misuse("#general").unwrap();
        assert!(misuse.hint.contains("##general"), "{misuse:?}");
        assert!(placeholder_misuse("#gte")
            .unwrap()
            .message
            .contains("needs an argument"));
        assert!(placeholder_misuse("#gte abc")
            .unwrap()
            .message
            .contains("must be a number"));
        assert!(placeholder_misuse("#uuid x")
            .unwrap()
            .message
            .contains("takes no argument"));
        for fine in [
            "#integer",
            "#gte 1",
            "#regex ^a",
            "##interger",
            "plain",
            "#lt {{ vars.n }}",
        ] {
            assert_eq!(placeholder_misuse(fine), None, "{fine}");
        }
        // Every placeholder the check knows, the matcher knows (and the other way round).
        for (name, takes_arg) in PLACEHOLDERS {
            let pattern = if *takes_arg {
                format!("#{name} 1")
            } else {
                format!("#{name}")
            };
            assert!(
                placeholder(&pattern, Some(&json!(1))).is_some(),
                "{pattern}"
            );
        }
        assert!(placeholder("#interger", Some(&json!(1))).is_none());
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(matches(&json!(5), &json!(5.0), false));
        assert!(!matches(&json!("5"), &json!(5), false));
    }
}
