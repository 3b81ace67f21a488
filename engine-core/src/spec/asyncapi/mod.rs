//! Event schemas from an AsyncAPI document (`events.asyncapi` in the suite config):
//! the payload schemas of the messages the application sends, keyed by event type.
//!
//! - Versions 2.6 and 3.0, written in YAML or JSON (one parser: [`super::yaml`]).
//! - Messages the application sends: 2.6 `channels.*.subscribe.message` (one message or
//!   `oneOf`); 3.0 the messages of every operation with `action: send` (its `messages`,
//!   or all of its channel's messages when it lists none). What the application
//!   receives (2.6 `publish`, 3.0 `receive`) describes the client's frames: not events.
//! - A message's event type: its `x-event-type` (a string or a list), else the `const`
//!   (or `enum`) of the type field in its payload (`properties.<type_field>`, dotted paths
//!   follow nested `properties`, `allOf` members are searched).
//! - Only local `$ref`s (`#/…`), inlined (see the `refs` module).
//!
//! Every problem is a located [`Diagnostic`] in the AsyncAPI file.

mod refs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::yaml::{self, pointer_escape, SpanIndex};
use crate::diagnostic::{Diagnostic, SourceFile};

/// Follow at most this many `$ref`s from one reference to the object it names.
const MAX_REF_HOPS: usize = 32;

/// The event types an AsyncAPI document describes, each with its payload schema.
#[derive(Debug)]
pub struct EventCatalog {
    /// The AsyncAPI file.
    pub path: PathBuf,
    pub messages: BTreeMap<String, EventMessage>,
}

/// One message of the document: where it is and its payload schema, `$ref`s resolved.
#[derive(Debug, Clone)]
pub struct EventMessage {
    /// Its `name`, else `messageId` (2.6), else its key in the document.
    pub name: String,
    /// JSON pointer of the message object in the document.
    pub pointer: String,
    /// Line of the message object in the file (for failure output).
    pub line: usize,
    pub schema: Value,
}

impl EventMessage {
    /// How failures name it: `message `X` (asyncapi.yaml:12)`.
    pub fn describe(&self, path: &Path) -> String {
        format!("message `{}` ({}:{})", self.name, path.display(), self.line)
    }
}

/// What is wrong with an AsyncAPI document (located by [`Located::pointer`]).
#[derive(Debug, thiserror::Error)]
pub enum AsyncApiError {
    #[error("not an AsyncAPI document: it has no `asyncapi` version field")]
    NotAsyncApi,
    #[error("version `{0}` is not supported: the engine reads 2.6 and 3.0")]
    UnsupportedVersion(String),
    #[error("{what} must be {expected}")]
    Shape {
        what: String,
        expected: &'static str,
    },
    #[error(
        "`$ref: {0}` points outside this document; only local references (`#/…`) are supported"
    )]
    ExternalRef(String),
    #[error("`$ref: {0}` points at nothing in this document")]
    MissingRef(String),
    #[error("`$ref: {0}` starts a chain of more than {MAX_REF_HOPS} references (a loop?)")]
    RefLoop(String),
    #[error("message `{message}` has no event type: its payload pins no `{type_field}` (no `properties.{type_field}.const` or `enum`) and it has no `x-event-type`")]
    NoEventType { message: String, type_field: String },
    #[error("message `{message}` has no `payload`")]
    NoPayload { message: String },
    #[error("message `{message}` has schema format `{format}`; only JSON Schema and AsyncAPI schemas are supported")]
    SchemaFormat { message: String, format: String },
    #[error("event type `{event_type}` is described by two messages with different payloads: `{first}` and `{second}`")]
    DuplicateType {
        event_type: String,
        first: String,
        second: String,
    },
    #[error("the document describes no message the application sends")]
    NoMessages { version: Version },
}

/// An error and the JSON pointer of the value it is about.
#[derive(Debug)]
pub struct Located {
    pub error: AsyncApiError,
    pub pointer: String,
}

impl AsyncApiError {
    fn at(self, pointer: impl Into<String>) -> Located {
        Located {
            error: self,
            pointer: pointer.into(),
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NotAsyncApi | Self::UnsupportedVersion(_) => {
                "write `asyncapi: 3.0.0` (or 2.6.0) at the top of the document".into()
            }
            Self::ExternalRef(_) => {
                "move the referenced schema into `components.schemas` and refer to it as `#/components/schemas/…`".into()
            }
            Self::NoEventType { type_field, .. } => format!(
                "give the payload `properties: {{ {type_field}: {{ const: <event type> }} }}`, or the message `x-event-type: <event type>`"
            ),
            Self::NoMessages {
                version: Version::V2,
            } => "2.6: list what the server sends under a channel's `subscribe.message`".into(),
            Self::NoMessages {
                version: Version::V3,
            } => "3.0: declare an operation with `action: send` on the channel of the messages".into(),
            _ => return None,
        })
    }
}

/// The two AsyncAPI versions the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// Read and resolve an AsyncAPI file.
pub fn load(path: &Path, type_field: &str) -> Result<EventCatalog, Diagnostic> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", path.display())))?;
    parse(&SourceFile::new(path, text), type_field)
}

/// Resolve an AsyncAPI document already read.
pub fn parse(source: &Arc<SourceFile>, type_field: &str) -> Result<EventCatalog, Diagnostic> {
    let node = yaml::parse(&source.text).map_err(|e| e.diagnostic(source))?;
    let (root, index) = yaml::to_json(node);
    let messages = catalog(&Doc { root: &root }, &index, type_field).map_err(|located| {
        // A message or an operation is pointed at by its key, a value at itself.
        let span = match root.pointer(&located.pointer) {
            Some(Value::Object(_) | Value::Array(_)) => index.key(&located.pointer),
            _ => index.lookup(&located.pointer),
        };
        let mut diagnostic =
            Diagnostic::new(format!("AsyncAPI: {}", located.error)).at(source, span);
        if let Some(hint) = located.error.hint() {
            diagnostic = diagnostic.hint(hint);
        }
        diagnostic
    })?;
    Ok(EventCatalog {
        path: source.path.clone(),
        messages,
    })
}

/// A parsed document, for following `$ref`s.
pub(crate) struct Doc<'a> {
    root: &'a Value,
}

impl<'a> Doc<'a> {
    /// The value a local `$ref` names, and its pointer; `at` is where the `$ref` is.
    fn target(&self, reference: &str, at: &str) -> Result<(&'a Value, String), Located> {
        let fragment = reference
            .strip_prefix('#')
            .filter(|f| f.is_empty() || f.starts_with('/'))
            .ok_or_else(|| AsyncApiError::ExternalRef(reference.into()).at(at))?;
        let pointer =
            String::from_utf8_lossy(&crate::text::percent_decode(fragment, false)).into_owned();
        match self.root.pointer(&pointer) {
            Some(value) => Ok((value, pointer)),
            None => Err(AsyncApiError::MissingRef(reference.into()).at(at)),
        }
    }

    /// Follow `$ref`s from the value at `pointer` to the object they name.
    fn deref(&self, value: &'a Value, pointer: String) -> Result<(&'a Value, String), Located> {
        let mut current = (value, pointer);
        for _ in 0..MAX_REF_HOPS {
            match current.0.get("$ref") {
                None => return Ok(current),
                Some(Value::String(reference)) => {
                    current = self.target(reference, &format!("{}/$ref", current.1))?
                }
                Some(_) => return Err(shape(&current.1, "$ref", "a string").at(current.1)),
            }
        }
        let first = value
            .get("$ref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(AsyncApiError::RefLoop(first.into()).at(current.1))
    }

    /// The entries of the mapping at `key` under `pointer` (none when absent).
    fn entries(
        &self,
        parent: &'a Value,
        pointer: &str,
        key: &str,
    ) -> Result<Vec<(String, &'a Value)>, Located> {
        match parent.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => Ok(map
                .iter()
                .map(|(k, v)| (format!("{pointer}/{key}/{}", pointer_escape(k)), v))
                .collect()),
            Some(_) => Err(shape(pointer, key, "a mapping").at(format!("{pointer}/{key}"))),
        }
    }
}

fn shape(pointer: &str, key: &str, expected: &'static str) -> AsyncApiError {
    AsyncApiError::Shape {
        what: format!("`{}`", display_path(&format!("{pointer}/{key}"))),
        expected,
    }
}

/// `/channels/chat~1x/subscribe` → `channels.chat/x.subscribe`, as a reader names it.
fn display_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

fn version(root: &Value) -> Result<Version, Located> {
    let Some(version) = root.get("asyncapi") else {
        return Err(AsyncApiError::NotAsyncApi.at(""));
    };
    let text = match version {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut parts = text.split('.');
    match (parts.next(), parts.next()) {
        (Some("2"), Some("6")) => Ok(Version::V2),
        (Some("3"), Some("0")) => Ok(Version::V3),
        _ => Err(AsyncApiError::UnsupportedVersion(text).at("/asyncapi")),
    }
}

/// Every event type of the document with its message.
fn catalog(
    doc: &Doc,
    index: &SpanIndex,
    type_field: &str,
) -> Result<BTreeMap<String, EventMessage>, Located> {
    if !doc.root.is_object() {
        return Err(AsyncApiError::NotAsyncApi.at(""));
    }
    let version = version(doc.root)?;
    let sent = match version {
        Version::V2 => sent_messages_v2(doc)?,
        Version::V3 => sent_messages_v3(doc)?,
    };
    if sent.is_empty() {
        return Err(AsyncApiError::NoMessages { version }.at(""));
    }
    let mut by_type: BTreeMap<String, EventMessage> = BTreeMap::new();
    for (message, pointer) in sent {
        let (types, event) = event_message(doc, index, message, pointer, type_field)?;
        for event_type in types {
            match by_type.get(&event_type) {
                Some(known) if known.pointer == event.pointer || known.schema == event.schema => {}
                Some(known) => {
                    return Err(AsyncApiError::DuplicateType {
                        event_type,
                        first: known.name.clone(),
                        second: event.name.clone(),
                    }
                    .at(event.pointer))
                }
                None => {
                    by_type.insert(event_type, event.clone());
                }
            }
        }
    }
    Ok(by_type)
}

/// 2.6: the messages of every channel's `subscribe` (what the application sends).
fn sent_messages_v2<'a>(doc: &Doc<'a>) -> Result<Vec<(&'a Value, String)>, Located> {
    let mut sent = Vec::new();
    for (pointer, channel) in doc.entries(doc.root, "", "channels")? {
        let (channel, pointer) = doc.deref(channel, pointer)?;
        let Some(operation) = channel.get("subscribe") else {
            continue;
        };
        let (operation, pointer) = doc.deref(operation, format!("{pointer}/subscribe"))?;
        let Some(message) = operation.get("message") else {
            continue;
        };
        let (message, pointer) = doc.deref(message, format!("{pointer}/message"))?;
        match message.get("oneOf") {
            None => sent.push((message, pointer)),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    sent.push(doc.deref(item, format!("{pointer}/oneOf/{i}"))?);
                }
            }
            Some(_) => {
                return Err(
                    shape(&pointer, "oneOf", "a list of messages").at(format!("{pointer}/oneOf"))
                )
            }
        }
    }
    Ok(sent)
}

/// 3.0: the messages of every operation with `action: send`.
fn sent_messages_v3<'a>(doc: &Doc<'a>) -> Result<Vec<(&'a Value, String)>, Located> {
    let mut sent = Vec::new();
    for (pointer, operation) in doc.entries(doc.root, "", "operations")? {
        let (operation, pointer) = doc.deref(operation, pointer)?;
        match operation.get("action").and_then(Value::as_str) {
            Some("send") => {}
            Some("receive") => continue,
            _ => {
                return Err(shape(&pointer, "action", "`send` or `receive`")
                    .at(format!("{pointer}/action")))
            }
        }
        let Some(channel) = operation.get("channel") else {
            return Err(shape(&pointer, "channel", "a `$ref` to a channel")
                .at(format!("{pointer}/channel")));
        };
        let (channel, channel_pointer) = doc.deref(channel, format!("{pointer}/channel"))?;
        match operation.get("messages") {
            None => {
                for (message_pointer, message) in
                    doc.entries(channel, &channel_pointer, "messages")?
                {
                    sent.push(doc.deref(message, message_pointer)?);
                }
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    sent.push(doc.deref(item, format!("{pointer}/messages/{i}"))?);
                }
            }
            Some(_) => {
                return Err(shape(&pointer, "messages", "a list of `$ref`s to messages")
                    .at(format!("{pointer}/messages")))
            }
        }
    }
    Ok(sent)
}

/// A message's event types and its resolved payload schema.
fn event_message(
    doc: &Doc,
    index: &SpanIndex,
    message: &Value,
    pointer: String,
    type_field: &str,
) -> Result<(Vec<String>, EventMessage), Located> {
    let name = ["name", "messageId"]
        .iter()
        .find_map(|k| message.get(k).and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| {
            display_path(&pointer)
                .rsplit('.')
                .next()
                .unwrap_or("")
                .into()
        });
    let Some(payload) = message.get("payload") else {
        return Err(AsyncApiError::NoPayload { message: name }.at(pointer));
    };
    let (mut payload, mut payload_pointer) = (payload, format!("{pointer}/payload"));
    let mut format = message.get("schemaFormat");
    // 3.0: a Multi Format Schema Object wraps the schema with its format.
    if let (Some(inner), Some(inner_format)) = (payload.get("schema"), payload.get("schemaFormat"))
    {
        format = Some(inner_format);
        payload = inner;
        payload_pointer = format!("{payload_pointer}/schema");
    }
    if let Some(format) = format {
        let text = format.as_str().unwrap_or_default();
        let json_schema = [
            "application/vnd.aai.asyncapi",
            "application/schema+json",
            "application/schema+yaml",
        ]
        .iter()
        .any(|prefix| text.starts_with(prefix));
        if !json_schema {
            return Err(AsyncApiError::SchemaFormat {
                message: name,
                format: text.into(),
            }
            .at(pointer));
        }
    }
    let schema = refs::resolve(doc, payload, &payload_pointer)?;
    let types = match message.get("x-event-type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(
                shape(&pointer, "x-event-type", "a string or a list of strings")
                    .at(format!("{pointer}/x-event-type")),
            )
        }
        None => {
            let path: Vec<&str> = type_field.split('.').collect();
            pinned_types(&schema, &path)
        }
    };
    if types.is_empty() {
        return Err(AsyncApiError::NoEventType {
            message: name,
            type_field: type_field.into(),
        }
        .at(pointer));
    }
    let line = index.lookup(&pointer).line;
    Ok((
        types,
        EventMessage {
            name,
            pointer,
            line,
            schema,
        },
    ))
}

/// The values a schema pins the field at `path` to: `const`, or the strings of `enum`.
fn pinned_types(schema: &Value, path: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    match path.split_first() {
        None => {
            if let Some(Value::String(c)) = schema.get("const") {
                found.push(c.clone());
            } else if let Some(Value::Array(values)) = schema.get("enum") {
                found.extend(values.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
        Some((first, rest)) => {
            if let Some(property) = schema.get("properties").and_then(|p| p.get(*first)) {
                found.extend(pinned_types(property, rest));
            }
        }
    }
    for member in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        found.extend(pinned_types(member, path));
    }
    found.dedup();
    found
}

#[cfg(test)]
mod tests;
