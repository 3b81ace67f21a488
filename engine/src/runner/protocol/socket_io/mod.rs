//! Socket.IO v5 over Engine.IO v4 (`connect.protocol: socket.io`): the engine reads
//! the Engine.IO handshake, connects the spec's namespaces (with their `auth`
//! payloads) inside the connect deadline, answers pings and closes a connection whose
//! server stops pinging (pingInterval + pingTimeout from the handshake). A server
//! event reaches the inbox under its own name, its arguments as the JSON that `match:`
//! compares; the acknowledgements the client asked for reach only the emit that asked.
//! Binary attachments are joined to their packet before it is delivered. Anything the
//! protocol does not allow closes the connection with 1002.

pub mod codec;

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Breach, Decoded, Incoming, Json, Keepalive, Message, Opening, Protocol, ProtocolKind};
use codec::{EnginePacket, Kind, Packet};

/// The close code the engine sends when the server breaks the protocol.
const PROTOCOL_ERROR: u16 = 1002;

/// The close code the engine sends when the server stopped pinging.
const GOING_AWAY: u16 = 1001;

/// How long teardown waits for the server to answer the engine's close frame: some
/// servers (socketioxide) never answer it.
const CLOSE_ANSWER_WAIT: Duration = Duration::from_millis(500);

/// Where a namespace stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Namespace {
    /// CONNECT sent, no answer yet.
    Connecting,
    Connected,
    /// Refused with this CONNECT_ERROR data.
    Refused(Value),
    /// Disconnected by either side.
    Disconnected,
}

/// A binary packet waiting for its attachments.
struct Partial {
    packet: Packet,
    raw: String,
    attachments: Vec<Vec<u8>>,
}

/// An emit that asked for an acknowledgement.
struct AwaitedAck {
    namespace: String,
    event: String,
}

/// Why the spec's emit or acknowledgement cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum SocketIoError {
    #[error("namespace `{namespace}` is not connected (connected: {connected})")]
    NotConnected {
        namespace: String,
        connected: String,
    },
    #[error("namespace `{0}` was disconnected")]
    Disconnected(String),
    #[error("namespace `{namespace}` is already {}", if *connecting { "being connected" } else { "connected" })]
    AlreadyConnected { namespace: String, connecting: bool },
    #[error("`{0}` is reserved by Socket.IO: a client cannot emit it")]
    Reserved(String),
    #[error("`acks.{0}` has a binary argument; the engine answers automatic acknowledgements with text only (`expect` with `ack:` can send binary ones)")]
    BinaryAutoAck(String),
    #[error("`{0}` was already acknowledged by `connect.acks`")]
    AlreadyAnswered(String),
    #[error(transparent)]
    Binary(#[from] codec::CodecError),
}

impl From<SocketIoError> for crate::diagnostic::Diagnostic {
    fn from(e: SocketIoError) -> Self {
        let kind = match e {
            SocketIoError::Disconnected(_) => crate::diagnostic::FailureKind::ConnectionClosed,
            _ => crate::diagnostic::FailureKind::Spec,
        };
        Self::of(kind, e.to_string())
    }
}

/// An emit or an acknowledgement encoded: what the transcript shows, the text frame
/// and the attachments that follow it.
pub struct Encoded {
    pub shown: String,
    pub text: String,
    pub attachments: Vec<Vec<u8>>,
    /// The ack id the emit asked the server to answer under.
    pub ack_id: Option<u64>,
}

/// One connection's Socket.IO state.
pub struct SocketIo {
    /// Namespaces to connect once the handshake is read, with their auth payloads.
    wanted: Vec<(String, Option<Value>)>,
    /// The handshake's session id.
    sid: Option<String>,
    namespaces: BTreeMap<String, Namespace>,
    /// Why the server refused the opening (a namespace's CONNECT_ERROR).
    refused: Option<String>,
    /// The opening phase is over: every namespace of the connect step was accepted.
    opened: bool,
    next_ack: u64,
    awaited: HashMap<u64, AwaitedAck>,
    partial: Option<Partial>,
    /// The deadline for the server's pings, from its handshake.
    keepalive: Option<Keepalive>,
    /// Events whose acknowledgement requests are answered at once, with these
    /// arguments (`connect.acks`).
    auto_acks: BTreeMap<String, Vec<Value>>,
    /// Acknowledgement requests answered at once: (namespace, ack id).
    answered: HashSet<(String, u64)>,
}

impl SocketIo {
    /// `wanted`: the namespaces to connect and their auth payloads (`/` when `None`; an
    /// empty list connects none, for steps to connect them later).
    pub fn new(wanted: Option<Vec<(String, Option<Value>)>>) -> Self {
        let wanted = match wanted {
            Some(wanted) => wanted
                .into_iter()
                .map(|(name, auth)| (namespace_name(&name), auth))
                .collect(),
            None => vec![("/".into(), None)],
        };
        SocketIo {
            wanted,
            sid: None,
            namespaces: BTreeMap::new(),
            refused: None,
            opened: false,
            next_ack: 0,
            awaited: HashMap::new(),
            partial: None,
            keepalive: None,
            auto_acks: BTreeMap::new(),
            answered: HashSet::new(),
        }
    }

    /// Answer the acknowledgement requests of these events at once with these
    /// arguments. Err: binary arguments (the engine answers at once with text frames).
    pub fn with_auto_acks(
        mut self,
        acks: BTreeMap<String, Vec<Value>>,
    ) -> Result<Self, SocketIoError> {
        for (event, args) in &acks {
            let mut attachments = Vec::new();
            codec::deconstruct(&mut Value::Array(args.clone()), &mut attachments)?;
            if !attachments.is_empty() {
                return Err(SocketIoError::BinaryAutoAck(event.clone()));
            }
        }
        self.auto_acks = acks;
        Ok(self)
    }

    /// The namespace `emit` uses when it names none: the first the spec connected.
    fn default_namespace(&self) -> &str {
        self.wanted.first().map_or("/", |(name, _)| name)
    }

    fn connected(&self) -> Vec<&str> {
        self.namespaces
            .iter()
            .filter(|(_, s)| **s == Namespace::Connected)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    fn connecting(&self) -> bool {
        self.namespaces
            .values()
            .any(|s| *s == Namespace::Connecting)
    }

    /// Where `namespace` stands (`None`: the client never connected it).
    pub fn namespace(&self, namespace: &str) -> Option<Namespace> {
        self.namespaces.get(namespace).cloned()
    }

    /// Encode the CONNECT of `namespace` with its auth payload; the server's answer
    /// shows in [`SocketIo::namespace`].
    pub fn connect_namespace(
        &mut self,
        namespace: &str,
        auth: Option<Value>,
    ) -> Result<Encoded, SocketIoError> {
        let namespace = &namespace_name(namespace);
        if let Some(state @ (Namespace::Connecting | Namespace::Connected)) =
            self.namespaces.get(namespace)
        {
            return Err(SocketIoError::AlreadyConnected {
                namespace: namespace.to_string(),
                connecting: *state == Namespace::Connecting,
            });
        }
        self.namespaces
            .insert(namespace.to_string(), Namespace::Connecting);
        let mut shown = Map::new();
        shown.insert("connect".into(), json!(namespace));
        if let Some(auth) = &auth {
            shown.insert("auth".into(), auth.clone());
        }
        let text = codec::encode(&Packet {
            kind: Kind::Connect,
            namespace: namespace.to_string(),
            id: None,
            attachments: 0,
            data: auth,
        });
        Ok(Encoded {
            shown: Value::Object(shown).to_string(),
            text,
            attachments: Vec::new(),
            ack_id: None,
        })
    }

    /// Encode the client's DISCONNECT of `namespace`.
    pub fn disconnect_namespace(&mut self, namespace: &str) -> Result<Encoded, SocketIoError> {
        let namespace = &namespace_name(namespace);
        self.check_connected(namespace)?;
        self.namespaces
            .insert(namespace.to_string(), Namespace::Disconnected);
        Ok(Encoded {
            shown: json!({ "disconnect": namespace }).to_string(),
            text: codec::encode(&Packet {
                kind: Kind::Disconnect,
                namespace: namespace.to_string(),
                id: None,
                attachments: 0,
                data: None,
            }),
            attachments: Vec::new(),
            ack_id: None,
        })
    }

    fn check_connected(&self, namespace: &str) -> Result<(), SocketIoError> {
        match self.namespaces.get(namespace) {
            Some(Namespace::Connected) => Ok(()),
            Some(Namespace::Disconnected) => {
                Err(SocketIoError::Disconnected(namespace.to_string()))
            }
            _ => Err(SocketIoError::NotConnected {
                namespace: namespace.to_string(),
                connected: match self.connected() {
                    c if c.is_empty() => "none".to_string(),
                    c => c.join(", "),
                },
            }),
        }
    }

    /// Encode an emit of `event` with `args`; with `ack`, under a new ack id.
    pub fn emit(
        &mut self,
        namespace: Option<&str>,
        event: &str,
        args: Vec<Value>,
        ack: bool,
    ) -> Result<Encoded, SocketIoError> {
        let namespace = namespace_name(namespace.unwrap_or(self.default_namespace()));
        if codec::RESERVED_EVENTS.contains(&event) {
            return Err(SocketIoError::Reserved(event.to_string()));
        }
        self.check_connected(&namespace)?;
        let ack_id = ack.then(|| {
            let id = self.next_ack;
            self.next_ack += 1;
            self.awaited.insert(
                id,
                AwaitedAck {
                    namespace: namespace.clone(),
                    event: event.to_string(),
                },
            );
            id
        });
        let mut shown = Map::new();
        shown.insert("emit".into(), json!(event));
        shown.insert("args".into(), Value::Array(args.clone()));
        let mut data = vec![json!(event)];
        data.extend(args);
        let mut encoded = encode(Kind::Event, &namespace, ack_id, Value::Array(data), shown)?;
        encoded.ack_id = ack_id;
        Ok(encoded)
    }

    /// Encode the acknowledgement of the server's event `id` in `namespace`.
    pub fn acknowledge(
        &mut self,
        namespace: &str,
        event: &str,
        id: u64,
        args: Vec<Value>,
    ) -> Result<Encoded, SocketIoError> {
        self.check_connected(namespace)?;
        if self.answered.contains(&(namespace.to_string(), id)) {
            return Err(SocketIoError::AlreadyAnswered(event.to_string()));
        }
        let mut shown = Map::new();
        shown.insert("ack".into(), json!(id));
        shown.insert("args".into(), Value::Array(args.clone()));
        encode(Kind::Ack, namespace, Some(id), Value::Array(args), shown)
    }

    fn breach(&mut self, why: String, frame: &str) -> Decoded {
        Decoded {
            breach: Some(Breach {
                code: PROTOCOL_ERROR,
                reason: format!(
                    "the server broke Socket.IO: {why}: {}",
                    crate::text::truncate(frame, 200)
                ),
            }),
            ..Decoded::default()
        }
    }

    /// The Engine.IO handshake: connect the spec's namespaces; the server must ping
    /// within pingInterval + pingTimeout.
    fn open(&mut self, data: &str, frame: String) -> Decoded {
        if self.sid.is_some() {
            return self.breach("a second Engine.IO handshake".into(), &frame);
        }
        let handshake: Value = serde_json::from_str(data).unwrap_or_default();
        let (Some(sid), Some(interval), Some(timeout)) = (
            handshake.get("sid").and_then(Value::as_str),
            handshake.get("pingInterval").and_then(Value::as_u64),
            handshake.get("pingTimeout").and_then(Value::as_u64),
        ) else {
            return self.breach(
                "an Engine.IO handshake without `sid`, `pingInterval` and `pingTimeout`".into(),
                &frame,
            );
        };
        self.sid = Some(sid.to_string());
        let mut replies = Vec::new();
        for (name, auth) in &self.wanted {
            self.namespaces.insert(name.clone(), Namespace::Connecting);
            replies.push(codec::encode(&Packet {
                kind: Kind::Connect,
                namespace: name.clone(),
                id: None,
                attachments: 0,
                data: auth.clone(),
            }));
        }
        self.opened = self.wanted.is_empty();
        self.keepalive = Some(keepalive(interval, timeout));
        Decoded {
            replies,
            chatter: Some(frame),
            keepalive: self.keepalive.clone(),
            ..Decoded::default()
        }
    }

    /// A Socket.IO packet, whole (its attachments joined).
    fn packet(&mut self, mut packet: Packet, raw: String) -> Decoded {
        let namespace = packet.namespace.clone();
        let state = self.namespaces.get(&namespace).cloned();
        match packet.kind {
            Kind::Connect if state == Some(Namespace::Connecting) => {
                self.namespaces.insert(namespace, Namespace::Connected);
                self.opened = self.opened || !self.connecting();
                chatter(raw)
            }
            Kind::ConnectError if state == Some(Namespace::Connecting) => {
                let data = packet.data.unwrap_or_default();
                if !self.opened {
                    self.refused.get_or_insert(format!(
                        "namespace `{namespace}` refused the connection: {data}"
                    ));
                }
                self.namespaces.insert(namespace, Namespace::Refused(data));
                chatter(raw)
            }
            Kind::Connect | Kind::ConnectError => self.breach(
                format!(
                    "{} for namespace `{namespace}`, which the client was not connecting",
                    packet.kind.name()
                ),
                &raw,
            ),
            _ if state != Some(Namespace::Connected) => self.breach(
                format!(
                    "{} in namespace `{namespace}`, which is not connected",
                    packet.kind.name()
                ),
                &raw,
            ),
            Kind::Disconnect => {
                self.namespaces
                    .insert(namespace.clone(), Namespace::Disconnected);
                // As the Socket.IO client reports it: `disconnect` with the reason.
                let args = json!(["io server disconnect"]);
                event_message("disconnect", &namespace, args, None, raw)
            }
            Kind::Event | Kind::BinaryEvent => {
                let mut data = match packet.data.take() {
                    Some(Value::Array(data)) => data,
                    _ => Vec::new(),
                };
                let name = match data.remove(0) {
                    Value::String(name) => name,
                    other => other.to_string(),
                };
                let mut decoded =
                    event_message(&name, &namespace, Value::Array(data), packet.id, raw);
                if let (Some(id), Some(args)) = (packet.id, self.auto_acks.get(&name)) {
                    decoded.replies.push(codec::encode(&Packet {
                        kind: Kind::Ack,
                        namespace: namespace.clone(),
                        id: Some(id),
                        attachments: 0,
                        data: Some(Value::Array(args.clone())),
                    }));
                    self.answered.insert((namespace, id));
                }
                decoded
            }
            Kind::Ack | Kind::BinaryAck => {
                let id = packet.id.unwrap_or_default();
                match self.awaited.remove(&id) {
                    Some(awaited) if awaited.namespace == namespace => {
                        let args = packet.data.unwrap_or_default();
                        ack_message(&awaited.event, &namespace, id, args, raw)
                    }
                    _ => self.breach(
                        format!("an acknowledgement for id {id}, which no emit in `{namespace}` is waiting for"),
                        &raw,
                    ),
                }
            }
        }
    }

    /// A binary frame: the next attachment of the packet waiting for them.
    fn attachment(&mut self, bytes: Vec<u8>) -> Decoded {
        let Some(partial) = self.partial.as_mut() else {
            let shown = format!("<binary {} bytes>", bytes.len());
            return self.breach("a binary frame that no packet announced".into(), &shown);
        };
        partial
            .raw
            .push_str(&format!("\n<binary {} bytes>", bytes.len()));
        partial.attachments.push(bytes);
        if partial.attachments.len() < partial.packet.attachments {
            return Decoded::default();
        }
        let Some(Partial {
            mut packet,
            raw,
            attachments,
        }) = self.partial.take()
        else {
            return Decoded::default();
        };
        if let Some(data) = packet.data.as_mut() {
            if let Err(e) = codec::reconstruct(data, &attachments) {
                return self.breach(e.to_string(), &raw);
            }
        }
        self.packet(packet, raw)
    }
}

/// A namespace's name as the protocol writes it: with its leading `/` (as the servers
/// read `admin`).
pub fn namespace_name(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// The deadline for the server's next ping, from the handshake's figures.
fn keepalive(interval_ms: u64, timeout_ms: u64) -> Keepalive {
    let within = Duration::from_millis(interval_ms.saturating_add(timeout_ms));
    Keepalive {
        within,
        breach: Breach {
            code: GOING_AWAY,
            reason: format!(
                "ping timeout: the server sent no Engine.IO ping within {within:?} (pingInterval {interval_ms} ms + pingTimeout {timeout_ms} ms from its handshake)"
            ),
        },
    }
}

fn chatter(frame: String) -> Decoded {
    Decoded {
        chatter: Some(frame),
        ..Decoded::default()
    }
}

/// Encode a packet of `kind` (its binary form when `data` holds binary arguments).
fn encode(
    kind: Kind,
    namespace: &str,
    id: Option<u64>,
    mut data: Value,
    mut shown: Map<String, Value>,
) -> Result<Encoded, SocketIoError> {
    let mut attachments = Vec::new();
    codec::deconstruct(&mut data, &mut attachments)?;
    let kind = match (kind, attachments.is_empty()) {
        (Kind::Event, false) => Kind::BinaryEvent,
        (Kind::Ack, false) => Kind::BinaryAck,
        (kind, _) => kind,
    };
    if namespace != "/" {
        shown.insert("namespace".into(), json!(namespace));
    }
    let text = codec::encode(&Packet {
        kind,
        namespace: namespace.to_string(),
        id,
        attachments: attachments.len(),
        data: Some(data),
    });
    Ok(Encoded {
        shown: Value::Object(shown).to_string(),
        text,
        attachments,
        ack_id: None,
    })
}

/// A server event for the inbox: its name is the event type, its arguments the JSON.
fn event_message(
    name: &str,
    namespace: &str,
    args: Value,
    ack_wanted: Option<u64>,
    raw: String,
) -> Decoded {
    let mut shown = Map::new();
    shown.insert("event".into(), json!(name));
    shown.insert("args".into(), args.clone());
    if namespace != "/" {
        shown.insert("namespace".into(), json!(namespace));
    }
    if let Some(id) = ack_wanted {
        shown.insert("ack".into(), json!(id));
    }
    // The client library's own events are not the application's: no schema applies.
    let schema_type = (!codec::RESERVED_EVENTS.contains(&name)).then(|| name.to_string());
    Decoded::message(Message {
        text: Value::Object(shown).to_string().into(),
        json: Json::Parsed(args),
        event_type: Some(name.to_string()),
        schema_type,
        operation: Some(namespace.to_string()),
        raw: Some(raw),
        ack_wanted,
        ..Message::default()
    })
}

/// The server's acknowledgement of the client's emit `id`.
fn ack_message(event: &str, namespace: &str, id: u64, args: Value, raw: String) -> Decoded {
    let mut shown = Map::new();
    shown.insert("ack".into(), json!(event));
    shown.insert("args".into(), args.clone());
    if namespace != "/" {
        shown.insert("namespace".into(), json!(namespace));
    }
    Decoded::message(Message {
        text: Value::Object(shown).to_string().into(),
        json: Json::Parsed(args),
        operation: Some(namespace.to_string()),
        raw: Some(raw),
        ack_of_emit: Some(id),
        ..Message::default()
    })
}

/// The URL of the Engine.IO endpoint: `/socket.io/` when the URL has no path, and the
/// Engine.IO version and transport in its query.
pub fn engine_io_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let mut out = match base[after_scheme..].find('/') {
        Some(i) if base.len() > after_scheme + i + 1 => base.to_string(),
        Some(i) => format!("{}/socket.io/", &base[..after_scheme + i]),
        None => format!("{base}/socket.io/"),
    };
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("EIO=")) {
        params.push("EIO=4");
    }
    if !params.iter().any(|p| p.starts_with("transport=")) {
        params.push("transport=websocket");
    }
    out.push('?');
    out.push_str(&params.join("&"));
    out
}

impl Protocol for SocketIo {
    fn kind(&self) -> ProtocolKind {
        ProtocolKind::SocketIo
    }

    fn opening(&self) -> Opening {
        if let Some(why) = &self.refused {
            return Opening::Refused(why.clone());
        }
        if self.sid.is_none() {
            return Opening::Waiting("Engine.IO handshake (`0` open packet)".into());
        }
        match self
            .namespaces
            .iter()
            .find(|(_, s)| **s == Namespace::Connecting)
        {
            Some((name, _)) => {
                Opening::Waiting(format!("answer to the CONNECT of namespace `{name}`"))
            }
            None => Opening::Open,
        }
    }

    fn farewell(&mut self) -> Vec<String> {
        let connected: Vec<String> = self.connected().into_iter().map(String::from).collect();
        connected
            .into_iter()
            .map(|namespace| {
                self.namespaces
                    .insert(namespace.clone(), Namespace::Disconnected);
                codec::encode(&Packet {
                    kind: Kind::Disconnect,
                    namespace,
                    id: None,
                    attachments: 0,
                    data: None,
                })
            })
            .collect()
    }

    fn close_answer_wait(&self) -> Option<Duration> {
        Some(CLOSE_ANSWER_WAIT)
    }

    fn decode(&mut self, frame: Incoming) -> Decoded {
        if frame.binary {
            return self.attachment(frame.bytes.map(|b| b.to_vec()).unwrap_or_default());
        }
        // This protocol's messages are made from the frame's text: one copy of it.
        let text = frame.text.as_str().to_owned();
        if let Some(partial) = &self.partial {
            let why = format!(
                "a text frame while {} attachment(s) of a binary packet were still due",
                partial.packet.attachments - partial.attachments.len()
            );
            return self.breach(why, &text);
        }
        let packet = match codec::engine_packet(&text) {
            Ok(packet) => packet,
            Err(e) => return self.breach(e.to_string(), &text),
        };
        if self.sid.is_none() && !matches!(packet, EnginePacket::Open(_)) {
            return self.breach("a packet before the Engine.IO handshake".into(), &text);
        }
        match packet {
            EnginePacket::Open(data) => {
                let data = data.to_string();
                self.open(&data, text)
            }
            EnginePacket::Ping(data) => {
                let reply = format!("3{data}");
                Decoded {
                    replies: vec![reply],
                    chatter: Some(text),
                    keepalive: self.keepalive.clone(),
                    ..Decoded::default()
                }
            }
            EnginePacket::Noop | EnginePacket::Close => chatter(text),
            EnginePacket::Pong(_) => {
                self.breach("a pong, though the client sent no ping".into(), &text)
            }
            EnginePacket::Upgrade => self.breach(
                "an upgrade packet, though the client asked for no upgrade".into(),
                &text,
            ),
            EnginePacket::Message(data) => match codec::decode(data) {
                Err(e) => self.breach(e.to_string(), &text),
                Ok(packet) if packet.attachments > 0 => {
                    self.partial = Some(Partial {
                        packet,
                        raw: text,
                        attachments: Vec::new(),
                    });
                    Decoded::default()
                }
                Ok(packet) => self.packet(packet, text),
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

    fn text(text: &str) -> Incoming {
        Incoming {
            text: text.into(),
            binary: false,
            bytes: None,
        }
    }

    fn binary(bytes: &[u8]) -> Incoming {
        Incoming {
            text: String::from_utf8_lossy(bytes).into_owned().into(),
            binary: true,
            bytes: Some(bytes.to_vec().into()),
        }
    }

    const OPEN: &str = r#"0{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":200}"#;

    /// A state past the handshake with `/` and `/admin` (auth) connected.
    fn open() -> SocketIo {
        let mut state = SocketIo::new(Some(vec![
            ("/".into(), None),
            ("/admin".into(), Some(json!({"token": "t"}))),
        ]));
        assert!(matches!(state.opening(), Opening::Waiting(_)));
        let handshake = state.decode(text(OPEN));
        assert_eq!(handshake.replies, ["40", r#"40/admin,{"token":"t"}"#]);
        assert_eq!(
            handshake.keepalive.map(|k| k.within),
            Some(Duration::from_millis(500))
        );
        assert!(state.decode(text(r#"40{"sid":"a"}"#)).breach.is_none());
        assert!(matches!(state.opening(), Opening::Waiting(w) if w.contains("/admin")));
        assert!(state
            .decode(text(r#"40/admin,{"sid":"b"}"#))
            .breach
            .is_none());
        assert_eq!(state.opening(), Opening::Open);
        state
    }

    #[test]
    fn events_carry_their_name_namespace_and_ack_request_and_pings_are_answered() {
        let mut state = open();
        let ping = state.decode(text("2"));
        assert_eq!(ping.replies, ["3"]);
        assert!(ping.keepalive.is_some());
        let event = state.decode(text(r#"42/admin,5["confirm",{"order":1}]"#));
        let message = &event.messages[0];
        assert_eq!(message.event_type.as_deref(), Some("confirm"));
        assert_eq!(message.operation.as_deref(), Some("/admin"));
        assert_eq!(message.json, Json::Parsed(json!([{"order": 1}])));
        assert_eq!(message.ack_wanted, Some(5));
        assert_eq!(
            message.text,
            r#"{"event":"confirm","args":[{"order":1}],"namespace":"/admin","ack":5}"#
        );
        let answer = state
            .acknowledge("/admin", "confirm", 5, vec![json!(true)])
            .unwrap();
        assert_eq!(answer.text, "43/admin,5[true]");
        let binary = state
            .acknowledge("/", "confirm", 6, vec![json!({"$binary": "AAE="})])
            .unwrap();
        assert_eq!(binary.text, r#"461-6[{"_placeholder":true,"num":0}]"#);
        assert_eq!(binary.attachments, vec![vec![0u8, 1]]);
        let kicked = state.decode(text("41"));
        assert_eq!(kicked.messages[0].schema_type, None);
    }

    #[test]
    fn acknowledgements_reach_their_emit_and_binary_packets_are_joined() {
        let mut state = open();
        let emit = state
            .emit(None, "up", vec![json!({"$binary": "AAE="})], true)
            .unwrap();
        assert_eq!(emit.text, r#"451-0["up",{"_placeholder":true,"num":0}]"#);
        assert_eq!(emit.attachments, vec![vec![0u8, 1]]);
        assert_eq!(emit.ack_id, Some(0));
        let header = state.decode(text(r#"461-0[{"_placeholder":true,"num":0}]"#));
        assert!(header.messages.is_empty() && header.breach.is_none());
        let ack = state.decode(binary(&[7, 7]));
        let message = &ack.messages[0];
        assert_eq!(message.ack_of_emit, Some(0));
        assert_eq!(message.json, Json::Parsed(json!([{"$binary": "Bwc="}])));
        assert!(message
            .raw
            .as_deref()
            .unwrap()
            .ends_with("<binary 2 bytes>"));
        // The same id again: no emit waits for it any more.
        let again = state.decode(text("430[]"));
        assert_eq!(again.breach.map(|b| b.code), Some(PROTOCOL_ERROR));
    }

    #[test]
    fn refusals_disconnects_and_forbidden_packets() {
        let mut refused = SocketIo::new(Some(vec![("/admin".into(), None)]));
        refused.decode(text(OPEN));
        refused.decode(text(r#"44/admin,{"message":"no"}"#));
        assert_eq!(
            refused.opening(),
            Opening::Refused(
                r#"namespace `/admin` refused the connection: {"message":"no"}"#.into()
            )
        );
        let mut state = open();
        let kicked = state.decode(text("41/admin,"));
        assert_eq!(kicked.messages[0].event_type.as_deref(), Some("disconnect"));
        assert_eq!(
            kicked.messages[0].json,
            Json::Parsed(json!(["io server disconnect"]))
        );
        assert!(state.emit(Some("/admin"), "x", vec![], false).is_err());
        assert!(state.emit(None, "disconnect", vec![], false).is_err());
        for bad in [r#"42/admin,["x"]"#, "3", "5", OPEN, r#"40{"sid":"again"}"#] {
            let decoded = state.decode(text(bad));
            assert_eq!(
                decoded.breach.map(|b| b.code),
                Some(PROTOCOL_ERROR),
                "{bad}"
            );
        }
        let mut fresh = SocketIo::new(None);
        assert!(fresh.decode(text("2")).breach.is_some());
        assert_eq!(open().farewell(), ["41", "41/admin,"]);
    }

    #[test]
    fn namespaces_connect_later_and_a_refusal_after_the_opening_is_the_steps_to_judge() {
        let mut state = SocketIo::new(Some(Vec::new()));
        let handshake = state.decode(text(OPEN));
        assert!(handshake.replies.is_empty());
        assert_eq!(state.opening(), Opening::Open);
        let connect = state
            .connect_namespace("/admin", Some(json!({"token": "t"})))
            .unwrap();
        assert_eq!(connect.text, r#"40/admin,{"token":"t"}"#);
        assert!(matches!(
            state.connect_namespace("/admin", None),
            Err(SocketIoError::AlreadyConnected {
                connecting: true,
                ..
            })
        ));
        state.decode(text(r#"44/admin,{"message":"no"}"#));
        assert_eq!(
            state.namespace("/admin"),
            Some(Namespace::Refused(json!({"message": "no"})))
        );
        assert_eq!(state.opening(), Opening::Open);
        state.connect_namespace("/admin", None).unwrap();
        state.decode(text(r#"40/admin,{"sid":"x"}"#));
        assert_eq!(state.namespace("/admin"), Some(Namespace::Connected));
        let leave = state.disconnect_namespace("/admin").unwrap();
        assert_eq!(leave.text, "41/admin,");
        assert!(matches!(
            state.emit(Some("/admin"), "x", vec![], false),
            Err(SocketIoError::Disconnected(_))
        ));
        // Names are read with their leading slash, as the servers read them.
        let again = state.connect_namespace("admin", None).unwrap();
        assert_eq!(again.text, "40/admin,");
    }

    /// Frames a peer could send: Engine.IO and Socket.IO shapes, with noise.
    fn frame() -> impl proptest::strategy::Strategy<Value = Incoming> {
        use proptest::prelude::*;
        let texts = prop_oneof![
            Just(OPEN.to_string()),
            Just("2".to_string()),
            Just(r#"40{"sid":"a"}"#.to_string()),
            "4[0-6][0-9]{0,2}-?(/[a-z]{1,3},)?[0-9]{0,3}"
                .prop_map(|s| s + r#"["e",{"_placeholder":true,"num":0}]"#),
            "4[0-6].{0,12}",
            ".{0,16}",
        ];
        prop_oneof![
            texts.prop_map(|t| text(&t)),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| binary(&b)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn no_sequence_of_frames_makes_the_state_panic(
            frames in proptest::collection::vec(frame(), 0..12)
        ) {
            let mut state = SocketIo::new(Some(vec![("/".into(), None), ("/a".into(), None)]));
            for frame in frames {
                let _ = state.decode(frame);
                let _ = state.opening();
            }
            let _ = state.emit(None, "x", vec![json!({"$binary": "AAE="})], true);
            let _ = state.farewell();
        }
    }

    #[test]
    fn connect_acks_are_answered_at_once_and_only_once() {
        let mut acks = BTreeMap::new();
        acks.insert("confirm".to_string(), vec![json!({"ok": true})]);
        let mut state = SocketIo::new(None).with_auto_acks(acks).unwrap();
        state.decode(text(OPEN));
        state.decode(text("40"));
        let asked = state.decode(text(r#"429["confirm",1]"#));
        assert_eq!(asked.replies, [r#"439[{"ok":true}]"#]);
        assert_eq!(asked.messages[0].event_type.as_deref(), Some("confirm"));
        assert!(matches!(
            state.acknowledge("/", "confirm", 9, vec![]),
            Err(SocketIoError::AlreadyAnswered(_))
        ));
        // Events it does not name, and events that ask for nothing, get no answer.
        assert!(state.decode(text(r#"4210["other"]"#)).replies.is_empty());
        assert!(state.decode(text(r#"42["confirm"]"#)).replies.is_empty());
        let mut binary = BTreeMap::new();
        binary.insert("x".to_string(), vec![json!({"$binary": "AAE="})]);
        assert!(SocketIo::new(None).with_auto_acks(binary).is_err());
    }

    #[test]
    fn the_url_gets_the_engine_io_path_and_query() {
        assert_eq!(
            engine_io_url("ws://h:1"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            engine_io_url("ws://h:1/?token=a"),
            "ws://h:1/socket.io/?token=a&EIO=4&transport=websocket"
        );
        assert_eq!(
            engine_io_url("wss://h/custom/?EIO=4"),
            "wss://h/custom/?EIO=4&transport=websocket"
        );
    }
}
