//! Templates that only look names up — `{{ ids.alice }}`, `conn:{{ vars.conn }}`,
//! `{{ env.WS_URL }}/ws`, nearly every template in real specs — rendered by reading the
//! names from the context, without minijinja's evaluation (a VM and its state per
//! expression: most of a step's rendering time). The result is the same as minijinja's:
//! a sole lookup keeps its value's type, text gets each value as minijinja prints it
//! without auto-escaping. Anything the lookup cannot settle (a name that is not there)
//! is left to minijinja, so its errors stay the only ones.

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

    /// The rendered value; `None` when a name is not there (minijinja says why).
    pub fn render(&self, ctx: &minijinja::Value) -> Option<serde_json::Value> {
        match self {
            Lookups::Sole(path) => serde_json::to_value(lookup(ctx, path)?).ok(),
            Lookups::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(text) => out.push_str(text),
                        // How minijinja prints a value when it does not auto-escape.
                        Piece::Lookup(path) => out.push_str(&lookup(ctx, path)?.to_string()),
                    }
                }
                Some(serde_json::Value::String(out))
            }
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

/// The value at `path`, attribute by attribute as minijinja looks it up.
fn lookup(ctx: &minijinja::Value, path: &[String]) -> Option<minijinja::Value> {
    let mut value = ctx.clone();
    for name in path {
        value = value.get_attr(name).ok()?;
        if value.is_undefined() {
            return None;
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> minijinja::Value {
        minijinja::Value::from_serialize(json!({
            "ids": {"alice": "usr_1"},
            "vars": {"n": 5, "f": 1.0, "ok": true, "nothing": null, "obj": {"b": 2, "a": [1, "x"]}},
            "env": {"WS_URL": "ws://x"}
        }))
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
            "{{ ids.alice }}",
            "n={{ vars.n }} f={{ vars.f }} ok={{ vars.ok }} none={{ vars.nothing }}",
            "obj={{ vars.obj }} a={{ vars.obj.a }}",
            "{{ env.WS_URL }}/ws/{{ ids.alice }}",
        ] {
            let fast = Lookups::parse(source)
                .expect(source)
                .render(&ctx())
                .unwrap();
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
        ] {
            assert_eq!(
                Lookups::parse(source).unwrap().render(&ctx()),
                None,
                "{source}"
            );
        }
    }
}
