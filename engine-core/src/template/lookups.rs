//! Templates that only look names up — `{{ ids.alice }}`, `conn:{{ vars.conn }}`,
//! `{{ env.WS_URL }}/ws`, nearly every template in real specs — rendered by reading the
//! names from the context, without minijinja's evaluation (a VM and its state per
//! expression: most of a step's rendering time). The result is the same as minijinja's:
//! a sole lookup keeps its value's type, text gets each value as minijinja prints it
//! without auto-escaping. Anything the lookup cannot settle (a name that is not there)
//! is left to minijinja, so its errors stay the only ones.

use super::{Found, Scope};

/// A template made only of literal text and `{{ name.name… }}` lookups.
#[derive(Debug, PartialEq)]
pub enum Lookups {
    /// `{{ a.b }}` alone: the value, with its type.
    Sole(Vec<String>),
    /// Text with lookups in it.
    Text(Vec<Piece>),
}

#[derive(Debug, PartialEq)]
pub enum Piece {
    Literal(String),
    Lookup(Vec<String>),
}

/// Words minijinja reads as literals or operators rather than names.
const KEYWORDS: [&str; 13] = [
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else",
];

impl Lookups {
    /// `source` as lookups, when that is all it is. Literal text may hold no brace (no
    /// other tag, no comment) and no line break (minijinja drops a trailing one).
    pub fn parse(source: &str) -> Option<Lookups> {
        if let Some(inner) = super::sole_expression(source) {
            return path(inner).map(Lookups::Sole);
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            let (literal, tail) = rest.split_once("{{").unwrap_or((rest, ""));
            if literal.contains(['{', '}', '\n', '\r']) {
                return None;
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(literal.to_string()));
            }
            if tail.is_empty() && !rest.contains("{{") {
                break;
            }
            let (inner, after) = tail.split_once("}}")?;
            pieces.push(Piece::Lookup(path(inner)?));
            rest = after;
        }
        pieces
            .iter()
            .any(|p| matches!(p, Piece::Lookup(_)))
            .then_some(Lookups::Text(pieces))
    }

    /// The dotted names it reads (`ids.alice`), as minijinja's
    /// `undeclared_variables(true)` gives them, in order of appearance.
    pub fn names(&self) -> Vec<String> {
        match self {
            Lookups::Sole(path) => vec![path.join(".")],
            Lookups::Text(pieces) => pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Lookup(path) => Some(path.join(".")),
                    Piece::Literal(_) => None,
                })
                .collect(),
        }
    }

    /// The rendered value; `None` when a name is not there (minijinja says why).
    pub fn render(&self, scope: &(impl Scope + ?Sized)) -> Option<serde_json::Value> {
        match self {
            Lookups::Sole(path) => match lookup(scope, path)? {
                Found::Json(value) => Some(value.clone()),
                Found::Map(map) => Some(serde_json::Value::Object(map.clone())),
                Found::Minijinja(value) => serde_json::to_value(value).ok(),
            },
            Lookups::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(text) => out.push_str(text),
                        Piece::Lookup(path) => print(&mut out, lookup(scope, path)?),
                    }
                }
                Some(serde_json::Value::String(out))
            }
        }
    }
}

/// Print a value as minijinja prints it when it does not auto-escape: strings and
/// integers directly, anything else (`True`, floats, `none`, maps, lists) by minijinja.
fn print(out: &mut String, found: Found<'_>) {
    use serde_json::Value;
    use std::fmt::Write;
    match found {
        Found::Json(Value::String(text)) => out.push_str(text),
        Found::Json(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            let _ = write!(out, "{n}");
        }
        Found::Json(other) => {
            let _ = write!(out, "{}", minijinja::Value::from_serialize(other));
        }
        Found::Map(map) => {
            let _ = write!(out, "{}", minijinja::Value::from_serialize(map));
        }
        Found::Minijinja(value) => {
            let _ = write!(out, "{value}");
        }
    }
}

/// `a.b.c` as its names, when the expression is only that.
fn path(expression: &str) -> Option<Vec<String>> {
    let names: Vec<String> = expression.trim().split('.').map(str::to_string).collect();
    let is_name = |name: &String| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (names.iter().all(is_name) && !KEYWORDS.contains(&names[0].as_str())).then_some(names)
}

/// The value at `path`, attribute by attribute as minijinja looks it up: a JSON value's
/// attributes are its object's keys.
fn lookup<'s>(scope: &'s (impl Scope + ?Sized), path: &[String]) -> Option<Found<'s>> {
    let (root, rest) = path.split_first()?;
    let mut found = scope.root(root)?;
    for name in rest {
        found = match found {
            Found::Json(value) => Found::Json(value.as_object()?.get(name)?),
            Found::Map(map) => Found::Json(map.get(name)?),
            Found::Minijinja(value) => {
                let value = value.get_attr(name).ok()?;
                if value.is_undefined() {
                    return None;
                }
                Found::Minijinja(value)
            }
        };
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> serde_json::Value {
        json!({
            "ids": {"alice": "usr_1"},
            "vars": {
                "n": 5, "neg": -7, "big": u64::MAX, "f": 1.0, "g": -2.5e-3, "ok": true,
                "no": false, "nothing": null, "obj": {"b": 2, "a": [1, "x"]}, "list": [],
                "text": "a \"quoted\" <b>é</b>"
            },
            "env": {"WS_URL": "ws://x"}
        })
    }

    fn ctx() -> minijinja::Value {
        minijinja::Value::from_serialize(names())
    }

    /// Names kept as JSON, as a scenario keeps them: `ids` and `vars` as maps, the
    /// rest as values, `env` already converted for minijinja.
    struct JsonScope(serde_json::Value);

    impl Scope for JsonScope {
        fn root(&self, name: &str) -> Option<Found<'_>> {
            let value = self.0.get(name)?;
            Some(match (name, value) {
                ("env", env) => Found::Minijinja(minijinja::Value::from_serialize(env)),
                (_, serde_json::Value::Object(map)) => Found::Map(map),
                (_, value) => Found::Json(value),
            })
        }

        fn context(&self) -> minijinja::Value {
            minijinja::Value::from_serialize(&self.0)
        }
    }

    #[test]
    fn only_lookups_and_plain_text_take_the_short_way() {
        let lookup = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            Lookups::parse(" {{ ids.alice }} "),
            Some(Lookups::Sole(lookup("ids.alice")))
        );
        assert_eq!(
            Lookups::parse("{{ env.WS_URL }}/ws?u={{ids.alice}}"),
            Some(Lookups::Text(vec![
                Piece::Lookup(lookup("env.WS_URL")),
                Piece::Literal("/ws?u=".into()),
                Piece::Lookup(lookup("ids.alice")),
            ]))
        );
        for minijinja_only in [
            "{{ vars.n + 1 }}",
            "{{ uuid() }}",
            "{{ vars.n | string }}",
            "{{ vars.list[0] }}",
            "{{ vars.list.0 }}",
            "{{- vars.n }}",
            "{{ none }}",
            "{% if true %}x{% endif %}",
            "{# c #}{{ vars.n }}",
            "a {{ vars.n }}\n",
            "{\"a\": \"{{ vars.n }}\"}",
            "{{ vars.n }",
            "plain",
        ] {
            assert_eq!(Lookups::parse(minijinja_only), None, "{minijinja_only}");
        }
    }

    /// Every template here renders as minijinja renders it.
    #[test]
    fn lookups_render_as_minijinja_does() {
        let env = super::super::environment();
        for source in [
            "{{ vars.n }}",
            "{{ vars.f }}",
            "{{ vars.ok }}",
            "{{ vars.nothing }}",
            "{{ vars.obj }}",
            "{{ vars.obj.a }}",
            "{{ vars.list }}",
            "{{ ids.alice }}",
            "{{ vars }}",
            "n={{ vars.n }} f={{ vars.f }} ok={{ vars.ok }} none={{ vars.nothing }}",
            "neg={{ vars.neg }} big={{ vars.big }} g={{ vars.g }} no={{ vars.no }}",
            "obj={{ vars.obj }} a={{ vars.obj.a }} list={{ vars.list }} ids={{ ids }}",
            "text={{ vars.text }}",
            "{{ env.WS_URL }}/ws/{{ ids.alice }}",
        ] {
            let lookups = Lookups::parse(source).expect(source);
            let fast = lookups.render(&ctx()).unwrap();
            let from_json = lookups.render(&JsonScope(names())).unwrap();
            assert_eq!(from_json, fast, "{source}");
            let slow = match super::super::sole_expression(source) {
                Some(expr) => {
                    serde_json::to_value(env.compile_expression(expr).unwrap().eval(ctx()).unwrap())
                        .unwrap()
                }
                None => json!(env.render_str(source, ctx()).unwrap()),
            };
            assert_eq!(fast, slow, "{source}");
        }
    }

    #[test]
    fn a_name_that_is_not_there_is_left_to_minijinja() {
        for source in [
            "{{ vars.missing }}",
            "x{{ ids.alice.deeper }}",
            "{{ nope.at_all }}",
            "{{ vars.n.deeper }}",
            "{{ vars.list.x }}",
        ] {
            let lookups = Lookups::parse(source).unwrap();
            assert_eq!(lookups.render(&ctx()), None, "{source}");
            assert_eq!(lookups.render(&JsonScope(names())), None, "{source}");
        }
    }
}
