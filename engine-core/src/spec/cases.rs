//! Parametrized scenarios: a spec's `cases:` table becomes one scenario per row, each
//! run, listed, filtered, sharded and reported on its own, named from its values.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::{Case, Scenario};
use super::yaml::SpanIndex;
use crate::diagnostic::{Diagnostic, SourceFile};

/// The rows of `cases:`, each with its position. Every row must name the same keys, so
/// that `{{ case.x }}` means something in every case.
pub fn read(
    source: &Arc<SourceFile>,
    value: &Value,
    index: &SpanIndex,
) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let Some(rows) = value.get("cases").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let values = row.as_object().cloned().unwrap_or_default();
        let span = index.lookup(&format!("/cases/{i}"));
        if let Some(first) = cases.first().map(|c: &Case| &c.values) {
            let missing: Vec<&String> = first.keys().filter(|k| !values.contains_key(*k)).collect();
            let extra: Vec<&String> = values.keys().filter(|k| !first.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                let mut d = Diagnostic::new(format!(
                    "case {} does not have the same keys as case 1",
                    i + 1
                ))
                .at(source, span);
                if !missing.is_empty() {
                    d = d.note(format!("missing: {}", join(&missing)));
                }
                if !extra.is_empty() {
                    d = d.note(format!("not in case 1: {}", join(&extra)));
                }
                problems.push(d.hint("every row of `cases:` names the same keys"));
            }
        }
        cases.push(Case {
            index: i,
            span,
            values,
        });
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

fn join(keys: &[&String]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One scenario per case (the scenario itself when there are none). A name with
/// templates is rendered with `case`; a plain name gets the row's values appended.
pub fn expand(scenario: Scenario, cases: Vec<Case>) -> Result<Vec<Scenario>, Diagnostic> {
    if cases.is_empty() {
        return Ok(vec![scenario]);
    }
    let mut expanded: Vec<Scenario> = Vec::with_capacity(cases.len());
    for case in cases {
        let name = case_name(&scenario.name, &case.values).map_err(|e| {
            Diagnostic::new(format!("cannot name case {}: {e}", case.index + 1))
                .at(&scenario.source, case.span)
                .hint("the name may read `{{ case.<key> }}` and nothing else")
        })?;
        if let Some(twin) = expanded.iter().find(|s| s.name == name) {
            let first = twin.case.as_ref().map_or(0, |c| c.index) + 1;
            return Err(Diagnostic::new(format!(
                "cases {first} and {} have the same name `{name}`",
                case.index + 1
            ))
            .at(&scenario.source, case.span)
            .hint("put a value that tells them apart in the name: `{{ case.<key> }}`"));
        }
        let mut one = scenario.clone();
        one.name = name;
        one.case = Some(case);
        expanded.push(one);
    }
    Ok(expanded)
}

fn case_name(template: &str, values: &Map<String, Value>) -> Result<String, String> {
    if !crate::template::is_template(template) {
        let shown: Vec<String> = values
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        return Ok(format!("{template} [{}]", shown.join(", ")));
    }
    let ctx = minijinja::Value::from_serialize(serde_json::json!({ "case": values }));
    match crate::template::render_str(template, &ctx).map_err(|e| e.to_string())? {
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}
