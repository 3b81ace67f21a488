//! GraphQL over WebSocket, in two dialects that share one state machine:
//! `graphql-transport-ws` (the protocol of the `graphql-ws` library) and the legacy
//! `subscriptions-transport-ws` (subprotocol `graphql-ws`: Apollo Server 2/3, older
//! Hasura). `connection_init` and its ack open the connection; each operation
//! (subscription, query, mutation) runs under an id the engine allocates and the spec
//! names; the server's results (`next`, legacy `data`), `error` and `complete` reach
//! the inbox as `next`, `error` and `complete` of that name, so specs read the same in
//! both dialects. Pings (graphql-transport-ws) are answered at once; keep-alives
//! (legacy `ka`) are only shown. Anything else the server sends breaks the protocol:
//! the engine closes with the dialect's "bad response" code.

use std::any::Any;
use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{Breach, Decoded, Incoming, Json, Message, Opening, Protocol, ProtocolKind};

/// Which GraphQL-over-WebSocket protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `subscriptions-transport-ws`, subprotocol `graphql-ws`.
    SubscriptionsTransportWs,
}

impl Dialect {
    fn kind(self) -> ProtocolKind {
        match self {
            Dialect::TransportWs => ProtocolKind::GraphqlTransportWs,
            Dialect::SubscriptionsTransportWs => ProtocolKind::GraphqlWs,
        }
    }

    /// The WebSocket subprotocol.
    fn subprotocol(self) -> &'static str {
        match self {
            Dialect::TransportWs => "graphql-transport-ws",
            Dialect::SubscriptionsTransportWs => "graphql-ws",
        }
    }

    /// The protocol's name in breach reasons.
    fn described(self) -> &'static str {
        match self {
            Dialect::TransportWs => "graphql-transport-ws",
            Dialect::SubscriptionsTransportWs => "graphql-ws (subscriptions-transport-ws)",
        }
    }

    /// The message types that start and stop an operation from the client.
    fn start_and_stop(self) -> (&'static str, &'static str) {
        match self {
            Dialect::TransportWs => ("subscribe", "complete"),
            Dialect::SubscriptionsTransportWs => ("start", "stop"),
        }
    }

    /// The close code the engine sends when the server breaks the protocol: the
    /// `graphql-ws` client's "bad response"; the legacy protocol defines none, so the
    /// WebSocket "protocol error".
    fn bad_response(self) -> u16 {
        match self {
            Dialect::TransportWs => 4004,
            Dialect::SubscriptionsTransportWs => 1002,
        }
    }

    /// The server's message type as the inbox names it: legacy `data` is `next`.
    fn operation_message(self, kind: &str) -> Option<&'static str> {
        match (self, kind) {
            (Dialect::TransportWs, "next") | (Dialect::SubscriptionsTransportWs, "data") => {
                Some("next")
            }
            (_, "error") => Some("error"),
            (_, "complete") => Some("complete"),
            _ => None,
        }
    }
}

/// What graphql-transport-ws says its close codes mean.
pub fn close_meaning(code: u16) -> Option<&'static str> {
    Some(match code {
        4400 => "graphql-transport-ws 4400 bad request: the server could not accept a message the client sent",
        4401 => "graphql-transport-ws 4401 unauthorized: a `subscribe` before the server acknowledged `connection_init`",
        4403 => "graphql-transport-ws 4403 forbidden: the server refused the connection (e.g. the `connection_init` payload)",
        4406 => "graphql-transport-ws 4406: the server does not accept the subprotocol",
        4408 => "graphql-transport-ws 4408 connection initialisation timeout: no `connection_init` reached the server in time",
        4409 => "graphql-transport-ws 4409 subscriber already exists: an operation id the server still runs was used again",
        4429 => "graphql-transport-ws 4429 too many initialisation requests: `connection_init` was sent more than once",
        4500 => "graphql-transport-ws 4500 internal server error",
        _ => return None,
    })
}

/// An operation the spec started.
#[derive(Debug)]
struct Operation {
    name: String,
    /// Its GraphQL operation name: the event schema of its `next` payloads.
    graphql_name: Option<String>,
    ended: Ended,
}

/// Whether an operation still runs, and who ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Running,
    /// The client sent `complete`.
    ByClient,
    /// The server sent `error` or `complete`.
    ByServer,
}

/// One connection's GraphQL-over-WebSocket state.
pub struct Graphql {
    dialect: Dialect,
    init_payload: Option<Value>,
    acknowledged: bool,
    /// The server's `connection_error` payload (legacy dialect), before the ack.
    refused: Option<String>,
    /// Operations by wire id.
    operations: HashMap<String, Operation>,
    /// Wire id of the latest operation of each spec name.
    by_name: HashMap<String, String>,
    next_id: u64,
}

/// Why a `subscribe` or `complete` step cannot start or end an operation: the spec
/// names operations, so these are the spec's mistakes.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("operation `{0}` is still running on this connection; `complete: {0}` ends it, or give the new one another name")]
    StillRunning(String),
    #[error("no operation `{0}` was started on this connection (`subscribe` starts one)")]
    NotStarted(String),
    #[error("operation `{0}` has already ended")]
    AlreadyEnded(String),
}

impl From<OperationError> for crate::diagnostic::Diagnostic {
    fn from(e: OperationError) -> Self {
        Self::of(crate::diagnostic::FailureKind::Spec, e.to_string())
    }
}

impl Graphql {
    pub fn new(dialect: Dialect, init_payload: Option<Value>) -> Self {
        Graphql {
            dialect,
            init_payload,
            acknowledged: false,
            refused: None,
            operations: HashMap::new(),
            by_name: HashMap::new(),
            next_id: 1,
        }
    }

    /// Start operation `name`: allocate its id and encode its `subscribe` (legacy
    /// `start`) frame.
    /// Returns the message as the transcript shows it and the frame.
    pub fn subscribe(
        &mut self,
        name: &str,
        mut payload: Map<String, Value>,
    ) -> Result<(String, String), OperationError> {
        if let Some(id) = self.by_name.get(name) {
            if self
                .operations
                .get(id)
                .is_some_and(|op| op.ended == Ended::Running)
            {
                return Err(OperationError::StillRunning(name.to_string()));
            }
        }
        let id = self.next_id.to_string();
        self.next_id += 1;
        let graphql_name = payload
            .get("operationName")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                payload
                    .get("query")
                    .and_then(Value::as_str)
                    .and_then(operation_name)
            });
        payload.retain(|_, v| !v.is_null());
        let payload = Value::Object(payload);
        let shown = json!({"subscribe": name, "payload": payload}).to_string();
        let (start, _) = self.dialect.start_and_stop();
        let frame = json!({"id": id, "type": start, "payload": payload}).to_string();
        self.operations.insert(
            id.clone(),
            Operation {
                name: name.to_string(),
                graphql_name,
                ended: Ended::Running,
            },
        );
        self.by_name.insert(name.to_string(), id);
        Ok((shown, frame))
    }

    /// End operation `name` from the client: encode its `complete` (legacy `stop`)
    /// frame.
    pub fn complete(&mut self, name: &str) -> Result<(String, String), OperationError> {
        let id = self
            .by_name
            .get(name)
            .ok_or_else(|| OperationError::NotStarted(name.to_string()))?;
        let operation = self
            .operations
            .get_mut(id)
            .ok_or_else(|| OperationError::NotStarted(name.to_string()))?;
        if operation.ended != Ended::Running {
            return Err(OperationError::AlreadyEnded(name.to_string()));
        }
        operation.ended = Ended::ByClient;
        let shown = json!({"complete": name}).to_string();
        let (_, stop) = self.dialect.start_and_stop();
        let frame = json!({"id": id, "type": stop}).to_string();
        Ok((shown, frame))
    }

    /// Whether the spec started an operation of this name on the connection.
    pub fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Names of the operations started, for hints.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }

    fn breach(&self, reason: String, frame: &str) -> Decoded {
        Decoded {
            breach: Some(Breach {
                code: self.dialect.bad_response(),
                reason: format!(
                    "the server broke {}: {reason}: {}",
                    self.dialect.described(),
                    crate::text::truncate(frame, 200)
                ),
            }),
            ..Decoded::default()
        }
    }

    /// An operation's `next`, `error` or `complete` (`kind` as the inbox names it;
    /// breach reasons name the message as sent, `wire`).
    fn operation_message(
        &mut self,
        kind: &'static str,
        wire: &str,
        message: &Map<String, Value>,
        raw: String,
    ) -> Decoded {
        let Some(id) = message.get("id").and_then(Value::as_str) else {
            return self.breach(format!("`{wire}` without an `id`"), &raw);
        };
        let Some(operation) = self.operations.get_mut(id) else {
            return self.breach(
                format!("`{wire}` for id `{id}`, which the client never used"),
                &raw,
            );
        };
        match operation.ended {
            Ended::Running => {}
            // The client's `complete` may cross the server's last messages: those are
            // shown in the transcript, not delivered.
            Ended::ByClient => {
                return Decoded {
                    chatter: Some(raw),
                    ..Decoded::default()
                }
            }
            Ended::ByServer => {
                let name = operation.name.clone();
                return self.breach(
                    format!("`{wire}` for operation `{name}` after it ended"),
                    &raw,
                );
            }
        }
        let mut payload = message.get("payload").cloned();
        // Legacy servers send one error as an object: the inbox sees a list either way.
        if kind == "error" && self.dialect == Dialect::SubscriptionsTransportWs {
            if let Some(Value::Object(_)) = &payload {
                payload = payload.map(|error| Value::Array(vec![error]));
            }
        }
        match (kind, &payload) {
            ("next", Some(Value::Object(_))) => {}
            ("error", Some(Value::Array(_))) => {}
            ("complete", _) => {}
            ("next", _) => {
                return self.breach(
                    format!("`{wire}` without an execution result as payload"),
                    &raw,
                )
            }
            _ => return self.breach("`error` without a list of errors as payload".into(), &raw),
        }
        if kind != "next" {
            operation.ended = Ended::ByServer;
        }
        let name = operation.name.clone();
        let shown = match &payload {
            Some(payload) => json!({kind: name, "payload": payload}),
            None => json!({kind: name}),
        };
        Decoded::message(Message {
            text: shown.to_string().into(),
            json: Json::Parsed(payload.unwrap_or(Value::Null)),
            event_type: Some(kind.to_string()),
            schema_type: (kind == "next")
                .then(|| operation.graphql_name.clone())
                .flatten(),
            operation: Some(name),
            ends_operation: kind != "next",
            raw: Some(raw),
            binary: false,
            ack_wanted: None,
            ack_of_emit: None,
        })
    }
}

/// The name in `subscription OnMessage(...) {`, `query Q {`, `mutation M {`.
fn operation_name(query: &str) -> Option<String> {
    let query = query.trim_start();
    let rest = ["subscription", "query", "mutation"]
        .iter()
        .find_map(|keyword| query.strip_prefix(keyword))?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Frames the transcript shows and nothing else.
fn chatter(text: String) -> Decoded {
    Decoded {
        chatter: Some(text),
        ..Decoded::default()
    }
}

impl Protocol for Graphql {
    fn kind(&self) -> ProtocolKind {
        self.dialect.kind()
    }

    fn subprotocol(&self) -> Option<&'static str> {
        Some(self.dialect.subprotocol())
    }

    fn start(&mut self) -> Vec<String> {
        let init = match &self.init_payload {
            Some(payload) => json!({"type": "connection_init", "payload": payload}),
            None => json!({"type": "connection_init"}),
        };
        vec![init.to_string()]
    }

    fn opening(&self) -> Opening {
        if let Some(why) = &self.refused {
            Opening::Refused(format!("`connection_error`: {why}"))
        } else if self.acknowledged {
            Opening::Open
        } else {
            Opening::Waiting("`connection_ack`".into())
        }
    }

    fn close_meaning(&self, code: u16) -> Option<&'static str> {
        match self.dialect {
            Dialect::TransportWs => close_meaning(code),
            Dialect::SubscriptionsTransportWs => None,
        }
    }

    /// The legacy protocol ends the session with `connection_terminate`.
    fn farewell(&mut self) -> Vec<String> {
        match self.dialect {
            Dialect::SubscriptionsTransportWs if self.acknowledged => {
                vec![json!({"type": "connection_terminate"}).to_string()]
            }
            _ => Vec::new(),
        }
    }

    fn decode(&mut self, frame: Incoming) -> Decoded {
        if frame.binary {
            return self.breach(
                "a binary frame (the protocol is text only)".into(),
                &frame.text,
            );
        }
        // This protocol's messages are made from the frame's text: one copy of it.
        let text = frame.text.as_str().to_owned();
        let message = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(message)) => message,
            _ => return self.breach("a frame that is not a JSON object".into(), &text),
        };
        let Some(kind) = message
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return self.breach("a message without a `type`".into(), &text);
        };
        let legacy = self.dialect == Dialect::SubscriptionsTransportWs;
        match kind.as_str() {
            "ping" if !legacy => Decoded {
                replies: vec![json!({"type": "pong"}).to_string()],
                chatter: Some(text),
                ..Decoded::default()
            },
            "pong" if !legacy => chatter(text),
            "ka" if legacy => chatter(text),
            // Before the ack it refuses the connection; after it, the server closes.
            "connection_error" if legacy => {
                if !self.acknowledged {
                    let payload = message.get("payload").unwrap_or(&Value::Null);
                    self.refused = Some(payload.to_string());
                }
                chatter(text)
            }
            "connection_ack" if self.acknowledged => {
                self.breach("a second `connection_ack`".into(), &text)
            }
            "connection_ack" => {
                self.acknowledged = true;
                chatter(text)
            }
            _ if !self.acknowledged => {
                self.breach(format!("`{kind}` before `connection_ack`"), &text)
            }
            other => match self.dialect.operation_message(other) {
                Some(kind) => self.operation_message(kind, other, &message, text),
                None => self.breach(
                    format!("a message of type `{other}`, which the server may not send"),
                    &text,
                ),
            },
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(text: &str) -> Incoming {
        Incoming {
            text: text.into(),
            binary: false,
            bytes: None,
        }
    }

    fn open() -> Graphql {
        let mut state = Graphql::new(Dialect::TransportWs, Some(json!({"token": "t"})));
        assert_eq!(
            state.start(),
            [r#"{"type":"connection_init","payload":{"token":"t"}}"#]
        );
        assert!(matches!(state.opening(), Opening::Waiting(_)));
        let ack = state.decode(incoming(r#"{"type":"connection_ack"}"#));
        assert!(ack.messages.is_empty() && ack.breach.is_none());
        assert_eq!(state.opening(), Opening::Open);
        state
    }

    fn subscribe(state: &mut Graphql, name: &str) -> String {
        let mut payload = Map::new();
        payload.insert("query".into(), json!("subscription OnTick { tick }"));
        let (_, frame) = state.subscribe(name, payload).unwrap();
        let frame: Value = serde_json::from_str(&frame).unwrap();
        frame["id"].as_str().unwrap().to_string()
    }

    #[test]
    fn messages_of_an_operation_carry_its_name_and_schema_and_end_it() {
        let mut state = open();
        let id = subscribe(&mut state, "ticks");
        let next = state.decode(incoming(&format!(
            r#"{{"id":"{id}","type":"next","payload":{{"data":{{"tick":1}}}}}}"#
        )));
        let message = &next.messages[0];
        assert_eq!(message.event_type.as_deref(), Some("next"));
        assert_eq!(message.operation.as_deref(), Some("ticks"));
        assert_eq!(message.schema_type.as_deref(), Some("OnTick"));
        assert_eq!(message.json, Json::Parsed(json!({"data": {"tick": 1}})));
        assert!(message.raw.as_deref().unwrap().contains(r#""type":"next""#));
        let done = state.decode(incoming(&format!(r#"{{"id":"{id}","type":"complete"}}"#)));
        assert!(done.messages[0].ends_operation);
        // A new operation may reuse the name once the first ended; it gets a new id.
        assert_ne!(subscribe(&mut state, "ticks"), id);
    }

    #[test]
    fn pings_are_answered_and_breaches_close_with_4004() {
        let mut state = open();
        let ping = state.decode(incoming(r#"{"type":"ping"}"#));
        assert_eq!(ping.replies, [r#"{"type":"pong"}"#]);
        for bad in [
            "not json",
            r#"{"type":"next","id":"99","payload":{}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"connection_ack"}"#,
            r#"{"id":"1"}"#,
        ] {
            let decoded = state.decode(incoming(bad));
            assert_eq!(decoded.breach.map(|b| b.code), Some(4004), "{bad}");
        }
        let mut fresh = Graphql::new(Dialect::TransportWs, None);
        let early = fresh.decode(incoming(r#"{"id":"1","type":"next","payload":{}}"#));
        assert!(early
            .breach
            .unwrap()
            .reason
            .contains("before `connection_ack`"));
    }

    #[test]
    fn the_legacy_dialect_keeps_alive_refuses_with_connection_error_and_breaks_with_1002() {
        let mut state = Graphql::new(Dialect::SubscriptionsTransportWs, None);
        assert_eq!(state.subprotocol(), Some("graphql-ws"));
        assert_eq!(state.start(), [r#"{"type":"connection_init"}"#]);
        let ka = state.decode(incoming(r#"{"type":"ka"}"#));
        assert!(ka.replies.is_empty() && ka.messages.is_empty() && ka.breach.is_none());
        assert_eq!(ka.chatter.as_deref(), Some(r#"{"type":"ka"}"#));
        state.decode(incoming(r#"{"type":"connection_ack"}"#));
        assert_eq!(state.opening(), Opening::Open);
        let mut payload = Map::new();
        payload.insert("query".into(), json!("subscription OnTick { tick }"));
        let (_, frame) = state.subscribe("ticks", payload).unwrap();
        assert!(frame.contains(r#""type":"start""#), "{frame}");
        let data = state.decode(incoming(
            r#"{"id":"1","type":"data","payload":{"data":{"tick":1}}}"#,
        ));
        assert_eq!(data.messages[0].event_type.as_deref(), Some("next"));
        assert_eq!(
            data.messages[0].text,
            r#"{"next":"ticks","payload":{"data":{"tick":1}}}"#
        );
        let error = state.decode(incoming(
            r#"{"id":"1","type":"error","payload":{"message":"no"}}"#,
        ));
        assert_eq!(
            error.messages[0].json,
            Json::Parsed(json!([{"message": "no"}]))
        );
        for bad in [
            r#"{"type":"ping"}"#,
            r#"{"type":"next","id":"1","payload":{}}"#,
            r#"{"type":"start_ack"}"#,
        ] {
            let decoded = state.decode(incoming(bad));
            assert_eq!(decoded.breach.map(|b| b.code), Some(1002), "{bad}");
        }
        assert_eq!(state.farewell(), [r#"{"type":"connection_terminate"}"#]);
        let (_, stop) = {
            let mut payload = Map::new();
            payload.insert("query".into(), json!("{ a }"));
            state.subscribe("q", payload).unwrap();
            state.complete("q").unwrap()
        };
        assert_eq!(stop, r#"{"id":"2","type":"stop"}"#);

        let mut refused = Graphql::new(Dialect::SubscriptionsTransportWs, Some(json!({})));
        refused.start();
        let error = refused.decode(incoming(
            r#"{"type":"connection_error","payload":{"message":"who?"}}"#,
        ));
        assert!(error.breach.is_none());
        assert_eq!(
            refused.opening(),
            Opening::Refused(r#"`connection_error`: {"message":"who?"}"#.into())
        );
        assert!(refused.farewell().is_empty());
    }

    #[test]
    fn a_running_name_cannot_be_reused_and_complete_needs_a_running_operation() {
        let mut state = open();
        subscribe(&mut state, "a");
        assert!(state.subscribe("a", Map::new()).is_err());
        let (shown, frame) = state.complete("a").unwrap();
        assert_eq!(shown, r#"{"complete":"a"}"#);
        assert!(frame.contains(r#""type":"complete""#));
        assert!(state.complete("a").is_err());
        assert!(state.complete("b").is_err());
    }

    #[test]
    fn operation_names_are_read_from_the_query() {
        assert_eq!(
            operation_name("subscription OnMsg($r: ID!) { m }").as_deref(),
            Some("OnMsg")
        );
        assert_eq!(
            operation_name("  mutation Send { send }").as_deref(),
            Some("Send")
        );
        assert_eq!(operation_name("{ hello }"), None);
        assert_eq!(operation_name("query { hello }"), None);
        assert_eq!(operation_name("queryX { hello }"), None);
    }
}
