//! The filters, tests and functions a template calls, checked against the engine's
//! template environment: `{{ name | upperr }}` or `{{ uuidd() }}` is an error at
//! `engine check`, not a surprise at run time. Read from minijinja's compiled
//! instructions (its `unstable_machinery` API; Cargo.lock pins the version), so every
//! call site counts, in any block or macro.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use minijinja::machinery::{get_compiled_template, Instruction, Instructions};
use minijinja::ErrorKind;

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::template;

/// Names a template calls, by kind.
#[derive(Debug, Default, PartialEq)]
pub struct Calls {
    pub filters: BTreeSet<String>,
    pub tests: BTreeSet<String>,
    pub functions: BTreeSet<String>,
}

/// A template's names (as [`template::referenced_names`] gives them) and what it
/// calls, from one reading: a template that only looks names up (nearly all) calls
/// nothing and is read off its text; any other is parsed and compiled by minijinja.
pub fn names_and_calls(text: &str) -> Result<(Vec<String>, Calls), template::RenderError> {
    if let Some(names) = template::lookup_names(text) {
        return Ok((names, Calls::default()));
    }
    let names = template::referenced_names(text)?;
    Ok((names, calls(text).unwrap_or_default()))
}

/// What `text` calls; `None` when it does not compile (reported elsewhere).
pub fn calls(text: &str) -> Option<Calls> {
    let env = template::environment();
    // A sole `{{ expr }}` is compiled as an expression at run time; as a template it
    // calls the same things.
    let compiled = env.template_from_str(text).ok()?;
    let compiled = get_compiled_template(&compiled);
    let mut calls = Calls::default();
    collect(&compiled.instructions, &mut calls);
    for block in compiled.blocks.values() {
        collect(block, &mut calls);
    }
    Some(calls)
}

fn collect(instructions: &Instructions<'_>, calls: &mut Calls) {
    for index in 0..instructions.len() {
        match instructions.get(index as u32) {
            Some(Instruction::ApplyFilter(name, ..)) => {
                calls.filters.insert(name.to_string());
            }
            Some(Instruction::PerformTest(name, ..)) => {
                calls.tests.insert(name.to_string());
            }
            Some(Instruction::CallFunction(name, ..)) => {
                calls.functions.insert(name.to_string());
            }
            _ => {}
        }
    }
}

/// Problems with what a template calls. `defined` tells the names a call may resolve
/// to without being a global function (loop variables, `{% set %}`, macros).
pub fn problems(calls: &Calls, defined: &dyn Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for name in &calls.filters {
        if !exists(Kind::Filter, name) {
            out.push(unknown("filter", name, known(Kind::Filter)));
        }
    }
    for name in &calls.tests {
        if !exists(Kind::Test, name) {
            out.push(unknown("test", name, known(Kind::Test)));
        }
    }
    let functions: Vec<String> = template::environment()
        .globals()
        .map(|(name, _)| name.to_string())
        .collect();
    for name in &calls.functions {
        if !functions.contains(name) && !defined(name) {
            out.push(unknown("function", name, functions.clone()));
        }
    }
    out
}

fn unknown(what: &str, name: &str, known: Vec<String>) -> Diagnostic {
    let hint = did_you_mean(name, known.iter().map(String::as_str))
        .unwrap_or_else(|| format!("{what}s: {}", known.join(", ")));
    Diagnostic::new(format!("unknown template {what} `{name}`")).hint(hint)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Filter,
    Test,
}

/// Does the environment have this filter or test? minijinja has no public lookup, so
/// ask it: calling an unknown one fails with `UnknownFilter`/`UnknownTest`, whatever
/// the argument (a known one may fail too, for other reasons). Answers are kept.
fn exists(kind: Kind, name: &str) -> bool {
    static SEEN: OnceLock<Mutex<std::collections::HashMap<(Kind, String), bool>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(answer) = seen
        .lock()
        .ok()
        .and_then(|s| s.get(&(kind, name.to_string())).copied())
    {
        return answer;
    }
    let ident = name.chars().all(|c| c.is_alphanumeric() || c == '_');
    let answer = ident && {
        let (probe, missing) = match kind {
            Kind::Filter => (format!("{{{{ none | {name} }}}}"), ErrorKind::UnknownFilter),
            Kind::Test => (format!("{{{{ none is {name} }}}}"), ErrorKind::UnknownTest),
        };
        match template::environment().render_str(&probe, ()) {
            Ok(_) => true,
            Err(e) => e.kind() != missing,
        }
    };
    if let Ok(mut s) = seen.lock() {
        s.insert((kind, name.to_string()), answer);
    }
    answer
}

/// minijinja's built-in filters and tests, those this build has: the candidates for
/// "did you mean".
fn known(kind: Kind) -> Vec<String> {
    let candidates: &[&str] = match kind {
        Kind::Filter => &[
            "abs",
            "attr",
            "batch",
            "bool",
            "capitalize",
            "chain",
            "count",
            "d",
            "default",
            "dictsort",
            "e",
            "escape",
            "first",
            "float",
            "format",
            "groupby",
            "indent",
            "int",
            "items",
            "join",
            "last",
            "length",
            "lines",
            "list",
            "lower",
            "map",
            "max",
            "min",
            "pprint",
            "reject",
            "rejectattr",
            "replace",
            "reverse",
            "round",
            "safe",
            "select",
            "selectattr",
            "slice",
            "sort",
            "split",
            "string",
            "sum",
            "title",
            "tojson",
            "trim",
            "unique",
            "upper",
            "urlencode",
            "zip",
        ],
        Kind::Test => &[
            "boolean",
            "defined",
            "divisibleby",
            "endingwith",
            "eq",
            "equalto",
            "escaped",
            "even",
            "false",
            "filter",
            "float",
            "ge",
            "greaterthan",
            "gt",
            "in",
            "integer",
            "iterable",
            "le",
            "lessthan",
            "lower",
            "lt",
            "mapping",
            "ne",
            "none",
            "number",
            "odd",
            "safe",
            "sameas",
            "sequence",
            "startingwith",
            "string",
            "test",
            "true",
            "undefined",
            "upper",
        ],
    };
    candidates
        .iter()
        .filter(|name| exists(kind, name))
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<(String, Option<String>)> {
        problems(&calls(text).unwrap(), &|name| name == "m")
            .into_iter()
            .map(|d| (d.message, d.hint))
            .collect()
    }

    #[test]
    fn lookup_templates_call_nothing_compiled_or_not() {
        for text in ["{{ ids.alice }}", "x{{ a.b }}y{{ c }}"] {
            assert_eq!(
                names_and_calls(text).map(|(_, calls)| calls).ok(),
                Some(Calls::default())
            );
            assert_eq!(calls(text), Some(Calls::default()));
        }
    }

    #[test]
    fn finds_calls_in_expressions_blocks_and_macros() {
        let calls = calls("{% macro m() %}{{ x | lower }}{% endmacro %}{{ y is odd }}{{ uuid() }}")
            .unwrap();
        assert!(calls.filters.contains("lower"));
        assert!(calls.tests.contains("odd"));
        assert!(calls.functions.contains("uuid"));
    }

    #[test]
    fn unknown_filters_tests_and_functions_suggest_the_real_one() {
        assert_eq!(
            messages("{{ vars.name | upperr }}"),
            vec![(
                "unknown template filter `upperr`".to_string(),
                Some("did you mean `upper`?".to_string())
            )]
        );
        assert_eq!(
            messages("{{ uuidd() }}")[0],
            (
                "unknown template function `uuidd`".to_string(),
                Some("did you mean `uuid`?".to_string())
            )
        );
        assert_eq!(
            messages("{{ x is odd_ }}")[0].0,
            "unknown template test `odd_`"
        );
        assert!(messages("{{ x | zzzzzz }}")[0]
            .1
            .as_deref()
            .unwrap()
            .starts_with("filters: abs"));
        for fine in [
            "{{ vars.n | int }}",
            "{{ range(3) | list | length }}",
            "{{ now_ms() }} {{ uuid() }} {{ free_port is defined }}",
            "{{ m() }}",
            "{{ x | default('a') | tojson }}",
        ] {
            assert_eq!(messages(fine), vec![], "{fine}");
        }
    }
}
