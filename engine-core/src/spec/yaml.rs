//! YAML text → a tree of [`Node`]s that remember where they came from.
//!
//! serde-based YAML crates drop positions once a value is deserialized; a scenario
//! engine needs the line of every step at run time, so we build our own small tree
//! from saphyr-parser's event stream (pure Rust, no panics on bad input) and convert
//! it to `serde_json::Value` plus a pointer → position index.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use crate::diagnostic::{Diagnostic, SourceFile, Span};

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
    /// What to do about it, when we know better than "check indentation".
    pub hint: Option<String>,
}

impl YamlError {
    fn new(message: impl Into<String>, span: Span) -> Self {
        Self {
            message: message.into(),
            span,
            hint: None,
        }
    }

    fn with_hint(mut self, hint: String) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The user-facing form, located in `source`.
    pub fn diagnostic(&self, source: &Arc<SourceFile>) -> Diagnostic {
        Diagnostic::new(format!("invalid YAML: {}", self.message))
            .at(source, self.span)
            .hint(
                self.hint
                    .as_deref()
                    .unwrap_or("check indentation and quoting near this position"),
            )
    }
}

/// Aliases can multiply a document ("billion laughs"); past this many nodes we refuse.
const MAX_NODES: usize = 200_000;

/// Deepest nesting of lists and maps a document may have. Everything downstream (JSON
/// conversion, schema validation, templating, matching, serde, drop) walks values
/// recursively, on 2 MiB runtime threads; a bound here bounds them all. Hand-written
/// specs and payloads stay far below it.
pub const MAX_DEPTH: usize = 64;

/// Parse one YAML document. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(error)) => {
                let mark = error.marker();
                let at = Span {
                    line: mark.line(),
                    col: mark.col() + 1,
                };
                if error.info() == "recursion limit exceeded" {
                    // saphyr's own bound on `[`/`{` nesting, reached before ours.
                    return Err(too_deep(at));
                }
                return Err(builder
                    .unclosed_flow(text, at)
                    .unwrap_or_else(|| YamlError::new(error.info().to_string(), at)));
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
    /// Anchored nodes with their nesting depth (an alias adds that much depth).
    anchors: HashMap<usize, (Node, usize)>,
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
                    return Err(YamlError::new(
                        "a spec file holds one YAML document; found a second `---`",
                        at,
                    ));
                }
            }
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, tag) => {
                let kind = resolve_scalar(&text, style, tag.as_deref().map(|t| t.suffix.as_str()))
                    .map_err(|message| {
                        YamlError::new(message, at)
                            .with_hint("quote it to use it as text: '…'".to_string())
                    })?;
                self.push(Node { span: at, kind }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(NodeKind::Seq(Vec::new()), anchor, at)?;
            }
            Event::MappingStart(anchor, _) => {
                self.open(NodeKind::Map(Vec::new()), anchor, at)?;
            }
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
                let (node, depth) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| YamlError::new("alias refers to an unknown anchor", at))?;
                if self.stack.len() + depth > MAX_DEPTH {
                    return Err(too_deep(at));
                }
                self.nodes += count_nodes(&node);
                self.push(Node { span: at, ..node }, 0)?;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
        Ok(false)
    }

    /// Start a list or map, refusing to nest deeper than [`MAX_DEPTH`].
    fn open(&mut self, kind: NodeKind, anchor: usize, at: Span) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(at));
        }
        self.stack.push((Node { span: at, kind }, anchor));
        Ok(())
    }

    /// A syntax error inside a flow collection (`{…}`, `[…]`) that reaches past its
    /// line almost always means the closing bracket is missing: point at the opening
    /// one instead of at the next line, where the parser noticed.
    fn unclosed_flow(&self, text: &str, error_at: Span) -> Option<YamlError> {
        let (node, _) = self.stack.last()?;
        let (open, close, what) = match char_at(text, node.span)? {
            '{' => ('{', '}', "flow mapping"),
            '[' => ('[', ']', "flow sequence"),
            _ => return None,
        };
        if error_at.line <= node.span.line {
            return None;
        }
        Some(
            YamlError::new(
                format!("unclosed `{open}`: this {what} has no matching `{close}`"),
                node.span,
            )
            .with_hint(format!(
                "add the missing `{close}`; the parser reached line {} still inside the {what}",
                error_at.line
            )),
        )
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlError::new(
                format!("document too large (over {MAX_NODES} values after expanding aliases)"),
                node.span,
            ));
        }
        if anchor != 0 {
            let depth = depth_of(&node);
            self.anchors.insert(anchor, (node.clone(), depth));
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

fn too_deep(at: Span) -> YamlError {
    YamlError::new(
        format!("nested too deeply: more than {MAX_DEPTH} levels of lists and maps"),
        at,
    )
    .with_hint("flatten the structure; no spec needs this much nesting".to_string())
}

/// The character at a 1-based line and column, if there is one.
fn char_at(text: &str, span: Span) -> Option<char> {
    let line = text.lines().nth(span.line.checked_sub(1)?)?;
    line.chars().nth(span.col.checked_sub(1)?)
}

/// Levels of lists and maps in `node` (a scalar is 0). Bounded by [`MAX_DEPTH`].
fn depth_of(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| depth_of(k).max(depth_of(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
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
    let mut seen: FxHashMap<Cow<str>, Span> = FxHashMap::default();
    for (key, _) in entries {
        let name = key_text(key);
        if let Some(first) = seen.get(&name) {
            return Some(YamlError::new(
                format!(
                    "duplicate key `{name}` (first defined at line {})",
                    first.line
                ),
                key.span,
            ));
        }
        seen.insert(name, key.span);
    }
    None
}

/// The text of a map key, whatever scalar type YAML resolved it to (nearly always a
/// string: borrowed, not copied).
pub fn key_text(key: &Node) -> Cow<'_, str> {
    match &key.kind {
        NodeKind::Str(s) => Cow::Borrowed(s),
        NodeKind::Int(i) => i.to_string().into(),
        NodeKind::Float(f) => f.to_string().into(),
        NodeKind::Bool(b) => b.to_string().into(),
        NodeKind::Null => "null".into(),
        NodeKind::Seq(_) | NodeKind::Map(_) => "<complex key>".into(),
    }
}

/// YAML 1.2 core schema resolution for plain scalars; quoted ones are strings. A number
/// that does not fit (an integer beyond 64 bits, a float beyond `f64`) is an error, not
/// a silently rounded or null value.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<NodeKind, String> {
    if style != ScalarStyle::Plain || tag == Some("str") {
        return Ok(NodeKind::Str(text.to_string()));
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(NodeKind::Null),
        "true" | "True" | "TRUE" => return Ok(NodeKind::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(NodeKind::Bool(false)),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map(NodeKind::Int).map_err(|_| {
            format!(
                "integer `{text}` does not fit in 64 bits (from {} to {})",
                i64::MIN,
                i64::MAX
            )
        });
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return i64::from_str_radix(hex, 16)
                .map(NodeKind::Int)
                .map_err(|_| format!("integer `{text}` does not fit in 64 bits"));
        }
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            if !f.is_finite() {
                return Err(format!("number `{text}` is out of range"));
            }
            return Ok(NodeKind::Float(f));
        }
    }
    Ok(NodeKind::Str(text.to_string()))
}

/// Positions of every value in a document, by JSON pointer (`/steps/3/expect`). Every
/// spec file is indexed whole when it loads (`engine check specs/` indexes tens of
/// thousands of values), so a value's own span and its key's share one entry.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    spans: FxHashMap<String, Spans>,
}

#[derive(Debug, Clone, Copy)]
struct Spans {
    value: Span,
    /// Of the key the value sits under; `None` for list items and the document.
    key: Option<Span>,
}

impl SpanIndex {
    /// Position of the value at `pointer`, or of its nearest ancestor.
    pub fn lookup(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some(spans) = self.spans.get(p) {
                return spans.value;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Span { line: 1, col: 1 },
            }
        }
    }

    /// Position of the key whose value is at `pointer` (for "unknown key" errors).
    pub fn key(&self, pointer: &str) -> Span {
        self.spans
            .get(pointer)
            .and_then(|spans| spans.key)
            .unwrap_or_else(|| self.lookup(pointer))
    }
}

/// Escape a map key for a JSON pointer (RFC 6901).
pub fn pointer_escape(key: &str) -> String {
    let mut escaped = String::with_capacity(key.len());
    push_escaped(&mut escaped, key);
    escaped
}

/// Extend `pointer` by the map key `key`, escaped as [`pointer_escape`] does. Walkers
/// that visit every value extend one pointer and cut it back (to its old length, which
/// this returns) rather than format a new one per value.
pub fn push_key(pointer: &mut String, key: &str) -> usize {
    let own = pointer.len();
    pointer.push('/');
    push_escaped(pointer, key);
    own
}

/// Extend `pointer` by the list index `i`; its old length.
pub fn push_index(pointer: &mut String, i: usize) -> usize {
    let own = pointer.len();
    // A number appended to a String cannot fail.
    let _ = write!(pointer, "/{i}");
    own
}

/// Append `key` to `pointer`, escaped as [`pointer_escape`] does.
fn push_escaped(pointer: &mut String, key: &str) {
    if !key.contains(['~', '/']) {
        pointer.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Convert the tree to JSON, recording where each value sits. The tree's strings move
/// into the JSON.
pub fn to_json(node: Node) -> (Value, SpanIndex) {
    let mut index = SpanIndex::default();
    let value = convert(node, &mut String::new(), None, &mut index);
    (value, index)
}

/// `pointer` is the node's own; it is extended for each child and cut back after it,
/// so that the only copy of it made is the index's key.
fn convert(node: Node, pointer: &mut String, key: Option<Span>, index: &mut SpanIndex) -> Value {
    let spans = Spans {
        value: node.span,
        key,
    };
    index.spans.insert(pointer.clone(), spans);
    match node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Bool(b) => Value::Bool(b),
        NodeKind::Int(i) => Value::Number(i.into()),
        NodeKind::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        NodeKind::Str(s) => Value::String(s),
        NodeKind::Seq(items) => {
            let mut array = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let own = push_index(pointer, i);
                array.push(convert(item, pointer, None, index));
                pointer.truncate(own);
            }
            Value::Array(array)
        }
        NodeKind::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (key, value) in entries {
                let key_span = key.span;
                let name = match key.kind {
                    NodeKind::Str(name) => name,
                    _ => key_text(&key).into_owned(),
                };
                let own = push_key(pointer, &name);
                let converted = convert(value, pointer, Some(key_span), index);
                pointer.truncate(own);
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
        let (value, index) = to_json(node);
        assert_eq!(value["steps"][0]["send"]["json"]["a"], 1);
        assert_eq!(index.lookup("/steps/1"), Span { line: 5, col: 5 });
        assert_eq!(index.key("/steps/1/expect"), Span { line: 5, col: 5 });
        assert_eq!(
            index.lookup("/steps/0/send/json"),
            Span { line: 4, col: 13 }
        );
    }

    /// A key's span and its value's are told apart, keys are escaped as JSON pointers
    /// (RFC 6901), and a pointer past the document falls back to its nearest ancestor.
    #[test]
    fn keys_values_and_escaped_keys_have_their_own_positions() {
        let text = "vars:\n  a/b:   1\n  ~c: [x, {d: 2}]\n  7: seven\n";
        let (value, index) = to_json(parse(text).unwrap());
        assert_eq!(value["vars"]["a/b"], 1);
        assert_eq!(value["vars"]["7"], "seven");
        assert_eq!(index.key("/vars/a~1b"), Span { line: 2, col: 3 });
        assert_eq!(index.lookup("/vars/a~1b"), Span { line: 2, col: 10 });
        assert_eq!(index.key("/vars/~0c"), Span { line: 3, col: 3 });
        assert_eq!(index.lookup("/vars/~0c/1/d"), Span { line: 3, col: 15 });
        // A list item has no key: its own position stands in.
        assert_eq!(index.key("/vars/~0c/0"), Span { line: 3, col: 8 });
        assert_eq!(index.lookup("/vars/7"), Span { line: 4, col: 6 });
        assert_eq!(
            index.lookup("/vars/~0c/1/nothing/here"),
            Span { line: 3, col: 11 }
        );
        assert_eq!(pointer_escape("a/~b"), "a~1~0b");
    }

    #[test]
    fn resolves_scalars_like_yaml_1_2() {
        let (v, _) = to_json(parse("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 5s\n").unwrap());
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
        let (v, _) = to_json(parse("x: &a {k: 1}\ny: *a\n").unwrap());
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

    /// Every way YAML can nest, far past the limit: a located error, never a crash.
    fn deep_documents(depth: usize) -> Vec<(&'static str, String)> {
        let block_map: String = (0..depth)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        let block_seq: String = (0..depth)
            .map(|i| format!("{}-\n", " ".repeat(i * 2)))
            .collect();
        vec![
            ("compact", format!("{}x\n", "- ".repeat(depth))),
            ("block map", format!("vars:\n{block_map}")),
            ("block seq", block_seq),
            (
                "flow seq",
                format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
            ),
            (
                "flow map",
                format!("a: {}1{}\n", "{k: ".repeat(depth), "}".repeat(depth)),
            ),
            (
                "mixed",
                format!(
                    "a: {}1{}\n",
                    "[{k: ".repeat(depth / 2),
                    "}]".repeat(depth / 2)
                ),
            ),
        ]
    }

    #[test]
    fn any_nesting_past_the_limit_is_a_located_error() {
        for depth in [MAX_DEPTH + 1, 300, 20_000] {
            for (form, text) in deep_documents(depth) {
                let err = parse(&text).unwrap_err();
                assert!(
                    err.message.contains("nested too deeply"),
                    "{form} at {depth}: {err:?}"
                );
                assert!(err.span.line >= 1 && err.span.col >= 1, "{form}: {err:?}");
            }
        }
        for (form, text) in deep_documents(MAX_DEPTH - 2) {
            assert!(parse(&text).is_ok(), "{form} within the limit");
        }
    }

    #[test]
    fn aliases_count_towards_depth() {
        let half = MAX_DEPTH / 2 + 2;
        let text = format!(
            "a: &x {}1{}\nb: {}*x{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("nested too deeply"), "{err:?}");
        assert_eq!(err.span.line, 2);
    }

    #[test]
    fn numbers_that_do_not_fit_are_errors() {
        let err = parse("a: 99999999999999999999999\n").unwrap_err();
        assert!(err.message.contains("does not fit in 64 bits"), "{err:?}");
        assert_eq!((err.span.line, err.span.col), (1, 4));
        let err = parse("a:\n  - 1e999\n").unwrap_err();
        assert!(err.message.contains("out of range"), "{err:?}");
        assert_eq!(err.span.line, 2);
        assert!(parse("a: 0xFFFFFFFFFFFFFFFFFF\n").is_err());
        let (v, _) =
            to_json(parse("a: '99999999999999999999999'\nb: -9223372036854775808\n").unwrap());
        assert_eq!(v["a"], "99999999999999999999999");
        assert_eq!(v["b"], i64::MIN);
    }

    #[test]
    fn an_unclosed_brace_is_reported_where_it_opens() {
        let err = parse("name: x\nsteps:\n  - send: {json: {a: 1}\n  - sleep: 1s\n").unwrap_err();
        assert!(err.message.starts_with("unclosed `{`"), "{err:?}");
        assert_eq!((err.span.line, err.span.col), (3, 11));
        assert!(err.hint.unwrap().contains("add the missing `}`"));
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("unclosed `[`"), "{err:?}");
        assert_eq!((err.span.line, err.span.col), (1, 4));
        // A flow mapping may span lines when it is closed.
        assert!(parse("a: {b: 1,\n  c: 2}\nd: 3\n").is_ok());
    }
}
