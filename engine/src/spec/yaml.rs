//! YAML text → a tree of [`Node`]s that remember where they came from.
//!
//! serde-based YAML crates drop positions once a value is deserialized; a scenario
//! engine needs the line of every step at run time, so we build our own small tree
//! from saphyr-parser's event stream (pure Rust, no panics on bad input) and convert
//! it to `serde_json::Value` plus a pointer → position index.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use crate::diagnostic::Span;

/// A YAML value with the position of its first character.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys are kept as nodes so that a bad key can be pointed at.
    Map(Vec<(Node, Node)>),
}

/// A YAML problem with its position.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub message: String,
    pub span: Span,
}

/// Aliases can multiply a document ("billion laughs"); past this many nodes we refuse.
const MAX_NODES: usize = 200_000;

/// Parse one YAML document. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(error)) => {
                let mark = error.marker();
                return Err(YamlError {
                    message: error.info().to_string(),
                    span: Span {
                        line: mark.line(),
                        col: mark.col() + 1,
                    },
                });
            }
            Some(Ok((event, span))) => {
                let at = Span {
                    line: span.start.line(),
                    col: span.start.col() + 1,
                };
                if builder.on_event(event, at)? {
                    break;
                }
            }
        }
    }
    Ok(builder.root.unwrap_or(Node {
        span: Span { line: 1, col: 1 },
        kind: NodeKind::Null,
    }))
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, usize)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
}

impl Builder {
    /// Returns true once the document is complete.
    fn on_event(&mut self, event: Event<'_>, at: Span) -> Result<bool, YamlError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError {
                        message: "a spec file holds one YAML document; found a second `---`".into(),
                        span: at,
                    });
                }
            }
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, tag) => {
                let kind = resolve_scalar(&text, style, tag.as_deref().map(|t| t.suffix.as_str()));
                self.push(Node { span: at, kind }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    span: at,
                    kind: NodeKind::Seq(Vec::new()),
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    span: at,
                    kind: NodeKind::Map(Vec::new()),
                },
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    if let NodeKind::Map(entries) = &node.kind {
                        if let Some(dup) = duplicate_key(entries) {
                            return Err(dup);
                        }
                    }
                    self.push(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    message: "alias refers to an unknown anchor".into(),
                    span: at,
                })?;
                self.nodes += count_nodes(&node);
                self.push(Node { span: at, ..node }, 0)?;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
        Ok(false)
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                message: format!(
                    "document too large (over {MAX_NODES} values after expanding aliases)"
                ),
                span: node.span,
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, _)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => {
                    // A map is built as alternating key, value; a pending key has Null placeholder.
                    match entries.last_mut() {
                        Some((_, value))
                            if matches!(value.kind, NodeKind::Null) && value.span.line == 0 =>
                        {
                            *value = node;
                        }
                        _ => entries.push((
                            node,
                            Node {
                                span: Span { line: 0, col: 0 },
                                kind: NodeKind::Null,
                            },
                        )),
                    }
                }
                _ => {}
            },
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn duplicate_key(entries: &[(Node, Node)]) -> Option<YamlError> {
    let mut seen = HashMap::new();
    for (key, _) in entries {
        let name = key_text(key);
        if let Some(first) = seen.insert(name.clone(), key.span) {
            return Some(YamlError {
                message: format!(
                    "duplicate key `{name}` (first defined at line {})",
                    first.line
                ),
                span: key.span,
            });
        }
    }
    None
}

/// The text of a map key, whatever scalar type YAML resolved it to.
pub fn key_text(key: &Node) -> String {
    match &key.kind {
        NodeKind::Str(s) => s.clone(),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Float(f) => f.to_string(),
        NodeKind::Bool(b) => b.to_string(),
        NodeKind::Null => "null".into(),
        NodeKind::Seq(_) | NodeKind::Map(_) => "<complex key>".into(),
    }
}

/// YAML 1.2 core schema resolution for plain scalars; quoted ones are strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> NodeKind {
    if style != ScalarStyle::Plain || tag == Some("str") {
        return NodeKind::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return NodeKind::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return NodeKind::Int(i);
        }
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return NodeKind::Float(f);
        }
    }
    NodeKind::Str(text.to_string())
}

/// Positions of every value in a document, by JSON pointer (`/steps/3/expect`).
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    spans: HashMap<String, Span>,
    key_spans: HashMap<String, Span>,
}

impl SpanIndex {
    /// Position of the value at `pointer`, or of its nearest ancestor.
    pub fn lookup(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some(span) = self.spans.get(p) {
                return *span;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Span { line: 1, col: 1 },
            }
        }
    }

    /// Position of the key whose value is at `pointer` (for "unknown key" errors).
    pub fn key(&self, pointer: &str) -> Span {
        self.key_spans
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.lookup(pointer))
    }
}

/// Escape a map key for a JSON pointer (RFC 6901).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Convert the tree to JSON, recording where each value sits.
pub fn to_json(node: &Node) -> (Value, SpanIndex) {
    let mut index = SpanIndex::default();
    let value = convert(node, String::new(), &mut index);
    (value, index)
}

fn convert(node: &Node, pointer: String, index: &mut SpanIndex) -> Value {
    index.spans.insert(pointer.clone(), node.span);
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Bool(b) => Value::Bool(*b),
        NodeKind::Int(i) => Value::Number((*i).into()),
        NodeKind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        NodeKind::Str(s) => Value::String(s.clone()),
        NodeKind::Seq(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, format!("{pointer}/{i}"), index))
                .collect(),
        ),
        NodeKind::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let name = key_text(key);
                let child = format!("{pointer}/{}", pointer_escape(&name));
                index.key_spans.insert(child.clone(), key.span);
                let converted = convert(value, child, index);
                map.insert(name, converted);
            }
            Value::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_nested_values() {
        let text = "name: x\nsteps:\n  - send:\n      json: {a: 1}\n  - expect: {event: b}\n";
        let node = parse(text).unwrap();
        let (value, index) = to_json(&node);
        assert_eq!(value["steps"][0]["send"]["json"]["a"], 1);
        assert_eq!(index.lookup("/steps/1"), Span { line: 5, col: 5 });
        assert_eq!(index.key("/steps/1/expect"), Span { line: 5, col: 5 });
        assert_eq!(
            index.lookup("/steps/0/send/json"),
            Span { line: 4, col: 13 }
        );
    }

    #[test]
    fn resolves_scalars_like_yaml_1_2() {
        let (v, _) = to_json(&parse("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 5s\n").unwrap());
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "1");
        assert_eq!(v["c"], 1.5);
        assert_eq!(v["d"], true);
        assert!(v["e"].is_null());
        assert_eq!(v["f"], "5s");
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1, "{err:?}");
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate key `a`"));
        assert_eq!(err.span.line, 2);
    }

    #[test]
    fn expands_aliases_but_refuses_bombs() {
        let (v, _) = to_json(&parse("x: &a {k: 1}\ny: *a\n").unwrap());
        assert_eq!(v["y"]["k"], 1);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g"])
        {
            bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&bomb).unwrap_err().message.contains("too large"));
    }
}
