//! A JSON tree's templates, found and compiled once. A step in a loop, or in every
//! iteration of a load test, renders the same body again and again: from its plan it
//! walks only what has templates, without scanning every string for `{{`, looking each
//! template up by its text, or building a pointer per key that only a failure needs.

use std::sync::Arc;

use serde_json::Value;

use super::{
    compiled, contains_template, is_template, render_compiled, Compiled, Lazy, Scope, TemplateError,
};

/// A JSON tree ready to render.
pub struct RenderPlan {
    root: Node,
}

enum Node {
    /// Nothing to render below: copied as it is.
    Fixed(Value),
    Template(Arc<Compiled>),
    Array(Vec<Node>),
    Object(Vec<(Key, Node)>),
}

enum Key {
    Fixed(String),
    Template(Arc<Compiled>),
}

impl Key {
    /// The key as written, for pointers.
    fn written(&self) -> &str {
        match self {
            Key::Fixed(key) => key,
            Key::Template(compiled) => compiled.source,
        }
    }
}

impl RenderPlan {
    /// The plan of `value`; a template that does not compile fails at its pointer.
    pub fn new(value: &Value) -> Result<RenderPlan, TemplateError> {
        Ok(RenderPlan { root: node(value)? })
    }

    /// Render every string of the tree (keys included).
    pub fn render(&self, scope: &(impl Scope + ?Sized)) -> Result<Value, TemplateError> {
        self.root.render(&Lazy::new(scope))
    }
}

fn node(value: &Value) -> Result<Node, TemplateError> {
    if !contains_template(value) {
        return Ok(Node::Fixed(value.clone()));
    }
    Ok(match value {
        Value::String(text) => Node::Template(compiled(text).map_err(TemplateError::here)?),
        Value::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| node(item).map_err(|e| e.under(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Node::Object(
            map.iter()
                .map(|(key, item)| {
                    let planned = if is_template(key) {
                        let compiled = compiled(key).map_err(TemplateError::here);
                        Key::Template(compiled.map_err(|e| e.under(key))?)
                    } else {
                        Key::Fixed(key.clone())
                    };
                    Ok((planned, node(item).map_err(|e| e.under(key))?))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => Node::Fixed(other.clone()),
    })
}

impl Node {
    fn render<S: Scope + ?Sized>(&self, scope: &Lazy<'_, S>) -> Result<Value, TemplateError> {
        Ok(match self {
            Node::Fixed(value) => value.clone(),
            Node::Template(compiled) => {
                render_compiled(compiled, scope).map_err(TemplateError::here)?
            }
            Node::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| item.render(scope).map_err(|e| e.under(&i.to_string())))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Object(entries) => {
                let mut out = serde_json::Map::with_capacity(entries.len());
                for (key, item) in entries {
                    let under = |e: TemplateError| e.under(key.written());
                    let name = match key {
                        Key::Fixed(name) => name.clone(),
                        Key::Template(compiled) => {
                            match render_compiled(compiled, scope).map_err(TemplateError::here) {
                                Ok(Value::String(name)) => name,
                                Ok(other) => other.to_string(),
                                Err(e) => return Err(under(e)),
                            }
                        }
                    };
                    out.insert(name, item.render(scope).map_err(under)?);
                }
                Value::Object(out)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(n: i64) -> minijinja::Value {
        minijinja::Value::from_serialize(json!({"ids": {"a": "usr_1"}, "vars": {"n": n}}))
    }

    #[test]
    fn one_plan_renders_with_each_scope() {
        let body = json!({
            "json": {"type": "ping", "user": "{{ ids.a }}", "n": "{{ vars.n }}",
                     "list": [1, "n={{ vars.n }}", {"deep": "{{ vars.n + 1 }}"}]},
            "{{ ids.a }}_key": true,
            "fixed": {"x": [1, 2]}
        });
        let plan = RenderPlan::new(&body).unwrap();
        for n in [1, 2] {
            assert_eq!(
                plan.render(&scope(n)).unwrap(),
                json!({
                    "json": {"type": "ping", "user": "usr_1", "n": n,
                             "list": [1, format!("n={n}"), {"deep": n + 1}]},
                    "usr_1_key": true,
                    "fixed": {"x": [1, 2]}
                })
            );
        }
    }

    #[test]
    fn problems_are_at_their_pointer() {
        let syntax = RenderPlan::new(&json!({"a/b": [0, "{{ ids.a "]}))
            .err()
            .unwrap();
        assert_eq!(syntax.pointer, "/a~1b/1");
        assert!(matches!(
            syntax.message,
            super::super::RenderError::Syntax(_)
        ));
        let plan = RenderPlan::new(&json!({"x": {"{{ ids.nope }}": 1}})).unwrap();
        assert_eq!(
            plan.render(&scope(1)).err().unwrap().pointer,
            "/x/{{ ids.nope }}"
        );
        let plan = RenderPlan::new(&json!([{"y": "{{ vars.missing }}"}])).unwrap();
        assert_eq!(plan.render(&scope(1)).err().unwrap().pointer, "/0/y");
    }
}
