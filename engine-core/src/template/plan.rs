//! A JSON tree's templates, found and compiled once. A step in a loop, or in every
//! iteration of a load test, renders the same body again and again: from its plan it
//! walks only what has templates, without scanning every string for `{{`, looking each
//! template up by its text, or building a pointer per key that only a failure needs.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::{
    compiled, contains_template, is_template, render_compiled, Compiled, Lazy, RenderError, Scope,
    TemplateError,
};

/// A JSON tree ready to render: borrowing the tree's fixed parts for one rendering, or
/// owning them ([`RenderPlan::into_owned`]) to be kept.
pub struct RenderPlan<'a> {
    root: Node<'a>,
}

enum Node<'a> {
    /// Nothing to render below: copied as it is.
    Fixed(Cow<'a, Value>),
    Template(Arc<Compiled>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Key<'a>, Node<'a>)>),
}

enum Key<'a> {
    Fixed(Cow<'a, str>),
    Template(Arc<Compiled>),
}

impl Key<'_> {
    /// The key as written, for pointers.
    fn written(&self) -> &str {
        match self {
            Key::Fixed(key) => key,
            Key::Template(compiled) => compiled.source,
        }
    }
}

impl<'a> RenderPlan<'a> {
    /// The plan of `value`; a template that does not compile fails at its pointer.
    pub fn new(value: &'a Value) -> Result<RenderPlan<'a>, TemplateError> {
        Ok(RenderPlan { root: node(value)? })
    }

    /// The plan with its own copy of the fixed parts, to keep.
    pub fn into_owned(self) -> RenderPlan<'static> {
        RenderPlan {
            root: self.root.into_owned(),
        }
    }

    /// Whether this is the plan of `value` (for checks that a kept plan is found again
    /// for its own tree).
    pub fn is_plan_of(&self, value: &Value) -> bool {
        self.root.is_node_of(value)
    }

    /// Render every string of the tree (keys included).
    pub fn render(&self, scope: &(impl Scope + ?Sized)) -> Result<Value, TemplateError> {
        self.root.render(&Lazy::new(scope))
    }

    /// The rendered tree as JSON text, written as it renders rather than built first
    /// (what a `send` of JSON needs). An object with a templated key is built first:
    /// two of its keys may render alike, and the value keeps the last.
    pub fn render_json_text(&self, scope: &(impl Scope + ?Sized)) -> Result<String, TemplateError> {
        let scope = Lazy::new(scope);
        let mut out = Vec::with_capacity(128);
        if self.root.has_template_key() {
            serialize_into(&mut out, &self.root.render(&scope)?)?;
        } else {
            self.root.write_json(&scope, &mut out)?;
        }
        String::from_utf8(out).map_err(|e| TemplateError::here(RenderError::NotJson(e.to_string())))
    }
}

/// A JSON value's text into `out` (a value always serializes; the error is kept anyway).
fn serialize_into(
    out: &mut Vec<u8>,
    value: &(impl serde::Serialize + ?Sized),
) -> Result<(), TemplateError> {
    serde_json::to_writer(out, value)
        .map_err(|e| TemplateError::here(RenderError::NotJson(e.to_string())))
}

fn node(value: &Value) -> Result<Node<'_>, TemplateError> {
    if !contains_template(value) {
        return Ok(Node::Fixed(Cow::Borrowed(value)));
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
                        Key::Fixed(Cow::Borrowed(key))
                    };
                    Ok((planned, node(item).map_err(|e| e.under(key))?))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => Node::Fixed(Cow::Borrowed(other)),
    })
}

impl Node<'_> {
    fn has_template_key(&self) -> bool {
        match self {
            Node::Fixed(_) | Node::Template(_) => false,
            Node::Array(items) => items.iter().any(Node::has_template_key),
            Node::Object(entries) => entries
                .iter()
                .any(|(key, item)| matches!(key, Key::Template(_)) || item.has_template_key()),
        }
    }

    /// Write the rendered JSON text of a tree without templated keys.
    fn write_json<S: Scope + ?Sized>(
        &self,
        scope: &Lazy<'_, S>,
        out: &mut Vec<u8>,
    ) -> Result<(), TemplateError> {
        match self {
            Node::Fixed(value) => serialize_into(out, value)?,
            Node::Template(compiled) => {
                let value = render_compiled(compiled, scope).map_err(TemplateError::here)?;
                serialize_into(out, &value)?;
            }
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(scope, out)
                        .map_err(|e| e.under(&i.to_string()))?;
                }
                out.push(b']');
            }
            Node::Object(entries) => {
                out.push(b'{');
                for (i, (key, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let name = key.written();
                    serialize_into(out, name)?;
                    out.push(b':');
                    item.write_json(scope, out).map_err(|e| e.under(name))?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }

    fn is_node_of(&self, value: &Value) -> bool {
        match (self, value) {
            (Node::Fixed(fixed), value) => fixed.as_ref() == value,
            (Node::Template(compiled), Value::String(text)) => compiled.source == text,
            (Node::Array(items), Value::Array(values)) => {
                items.len() == values.len()
                    && items.iter().zip(values).all(|(i, v)| i.is_node_of(v))
            }
            (Node::Object(entries), Value::Object(map)) => {
                entries.len() == map.len()
                    && entries.iter().zip(map).all(|((key, item), (name, value))| {
                        key.written() == name && item.is_node_of(value)
                    })
            }
            _ => false,
        }
    }

    fn into_owned(self) -> Node<'static> {
        match self {
            Node::Fixed(value) => Node::Fixed(Cow::Owned(value.into_owned())),
            Node::Template(compiled) => Node::Template(compiled),
            Node::Array(items) => Node::Array(items.into_iter().map(Node::into_owned).collect()),
            Node::Object(entries) => Node::Object(
                entries
                    .into_iter()
                    .map(|(key, item)| {
                        let key = match key {
                            Key::Fixed(name) => Key::Fixed(Cow::Owned(name.into_owned())),
                            Key::Template(compiled) => Key::Template(compiled),
                        };
                        (key, item.into_owned())
                    })
                    .collect(),
            ),
        }
    }

    fn render<S: Scope + ?Sized>(&self, scope: &Lazy<'_, S>) -> Result<Value, TemplateError> {
        Ok(match self {
            Node::Fixed(value) => value.as_ref().clone(),
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
                        Key::Fixed(name) => name.to_string(),
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
        let plan = RenderPlan::new(&body).unwrap().into_owned();
        assert!(plan.is_plan_of(&body));
        assert!(!plan.is_plan_of(&json!({"json": {"type": "ping"}})));
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

    /// The text written as the tree renders is the rendered value's text, keys escaped,
    /// order kept; and two templated keys that render alike keep the last value.
    #[test]
    fn json_text_is_the_rendered_value_as_text() {
        for body in [
            json!({"type": "ping", "user": "{{ ids.a }}", "n": "{{ vars.n }}", "list": [1, "x{{ vars.n }}", {}, []]}),
            json!({"quote\"d": "{{ ids.a }}\n", "é/~": [{"deep": ["{{ vars.n }}"]}], "z": null, "a": 1.5}),
            json!(["{{ vars.n }}", "{{ ids }}", true]),
            json!("{{ ids.a }}"),
            json!({"{{ ids.a }}": 1, "usr_1": 2, "k{{ vars.n }}": "{{ vars.n }}"}),
            json!({"{{ ids.a }}": 1, "{{ ids.a }}x": {"x": "{{ vars.n }}"}}),
        ] {
            let plan = RenderPlan::new(&body).unwrap();
            let text = plan.render_json_text(&scope(3)).unwrap();
            let value = plan.render(&scope(3)).unwrap();
            assert_eq!(text, serde_json::to_string(&value).unwrap(), "{body}");
        }
        let alike = json!({"{{ ids.a }}": 1, "usr_1": 2});
        let plan = RenderPlan::new(&alike).unwrap();
        assert_eq!(plan.render_json_text(&scope(3)).unwrap(), r#"{"usr_1":2}"#);
        let missing = json!({"a": [{"b": "{{ vars.nope }}"}]});
        let plan = RenderPlan::new(&missing).unwrap();
        assert_eq!(
            plan.render_json_text(&scope(3)).unwrap_err().pointer,
            "/a/0/b"
        );
    }

    #[test]
    fn problems_are_at_their_pointer() {
        let bad_syntax = json!({"a/b": [0, "{{ ids.a "]});
        let syntax = RenderPlan::new(&bad_syntax).err().unwrap();
        assert_eq!(syntax.pointer, "/a~1b/1");
        assert!(matches!(
            syntax.message,
            super::super::RenderError::Syntax(_)
        ));
        for (body, pointer) in [
            (json!({"x": {"{{ ids.nope }}": 1}}), "/x/{{ ids.nope }}"),
            (json!([{"y": "{{ vars.missing }}"}]), "/0/y"),
        ] {
            let plan = RenderPlan::new(&body).unwrap();
            assert_eq!(plan.render(&scope(1)).err().unwrap().pointer, pointer);
        }
    }
}
