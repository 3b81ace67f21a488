//! Engine.IO v4 and Socket.IO v5 packets as they travel over a WebSocket, pure: no
//! state, no I/O. An Engine.IO packet is a type digit and its data (`0{…}` open, `2`
//! ping, `4…` message); a message carries one Socket.IO packet:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`. Binary arguments travel
//! as placeholders (`{"_placeholder":true,"num":N}`) in the packet, their bytes in the
//! binary frames that follow it; specs write and see them as `{"$binary": <base64>}`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The key a spec writes a binary argument under: `{"$binary": "<base64>"}`.
pub const BINARY_KEY: &str = "$binary";

/// Event names a Socket.IO peer may not emit: the client library reserves them for its
/// own events.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// One Engine.IO packet of a text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0`: the handshake (JSON: sid, pingInterval, pingTimeout, maxPayload).
    Open(&'a str),
    /// `1`: the session ends.
    Close,
    Ping(&'a str),
    Pong(&'a str),
    /// `4`: a Socket.IO packet.
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Why a frame is not a packet of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("an empty text frame")]
    Empty,
    #[error("an Engine.IO packet of unknown type `{0}`")]
    UnknownEngineType(char),
    #[error("a Socket.IO packet of unknown type `{0}`")]
    UnknownType(char),
    #[error("a binary packet without its attachment count (`<n>-`)")]
    NoAttachmentCount,
    #[error("an ack id that is not a number of at most 2^53")]
    BadId,
    #[error("a payload that is not JSON ({0})")]
    NotJson(String),
    #[error("a Socket.IO {kind} whose payload is {why}")]
    InvalidPayload {
        kind: &'static str,
        why: &'static str,
    },
    #[error("a placeholder for attachment {num}, but the packet announced {count}")]
    BadPlaceholder { num: u64, count: usize },
    #[error("`$binary` is not base64: {0}")]
    NotBase64(String),
}

/// Read the Engine.IO packet of a text frame.
pub fn engine_packet(text: &str) -> Result<EnginePacket<'_>, CodecError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(CodecError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(data),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(data),
        '3' => EnginePacket::Pong(data),
        '4' => EnginePacket::Message(data),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        other => return Err(CodecError::UnknownEngineType(other)),
    })
}

/// A Socket.IO packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Connect,
        Kind::Disconnect,
        Kind::Event,
        Kind::Ack,
        Kind::ConnectError,
        Kind::BinaryEvent,
        Kind::BinaryAck,
    ];

    fn digit(self) -> char {
        char::from(b'0' + Kind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8)
    }

    /// The name the protocol's documentation uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "CONNECT",
            Kind::Disconnect => "DISCONNECT",
            Kind::Event => "EVENT",
            Kind::Ack => "ACK",
            Kind::ConnectError => "CONNECT_ERROR",
            Kind::BinaryEvent => "BINARY_EVENT",
            Kind::BinaryAck => "BINARY_ACK",
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// One Socket.IO packet, its attachments not yet joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: Kind,
    /// `/` unless the packet names another.
    pub namespace: String,
    pub id: Option<u64>,
    /// Binary frames that follow the packet (binary kinds only).
    pub attachments: usize,
    pub data: Option<Value>,
}

/// Largest ack id: JavaScript peers read ids as numbers.
const MAX_ID: u64 = 1 << 53;

/// Read a Socket.IO packet (the data of an Engine.IO message) and check that its
/// payload is what its type allows.
pub fn decode(text: &str) -> Result<Packet, CodecError> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(CodecError::Empty)?;
    let kind = first
        .to_digit(10)
        .and_then(|d| Kind::ALL.get(d as usize).copied())
        .ok_or(CodecError::UnknownType(first))?;
    let mut rest = chars.as_str();
    let mut attachments = 0;
    if kind.is_binary() {
        let (count, after) = rest.split_once('-').ok_or(CodecError::NoAttachmentCount)?;
        attachments = count
            .parse::<usize>()
            .map_err(|_| CodecError::NoAttachmentCount)?;
        rest = after;
    }
    let mut namespace = "/".to_string();
    if rest.starts_with('/') {
        let (name, after) = rest.split_once(',').unwrap_or((rest, ""));
        namespace = name.to_string();
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        let id = rest[..digits]
            .parse::<u64>()
            .ok()
            .filter(|id| *id <= MAX_ID)
            .ok_or(CodecError::BadId)?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|e| CodecError::NotJson(e.to_string()))?)
    };
    let packet = Packet {
        kind,
        namespace,
        id,
        attachments,
        data,
    };
    check_payload(&packet)?;
    Ok(packet)
}

/// What each packet type may carry (as the reference parser checks it).
fn check_payload(packet: &Packet) -> Result<(), CodecError> {
    let invalid = |why| {
        Err(CodecError::InvalidPayload {
            kind: packet.kind.name(),
            why,
        })
    };
    match (packet.kind, &packet.data) {
        // The client's CONNECT to a namespace without auth has no payload.
        (Kind::Connect, None | Some(Value::Object(_))) => Ok(()),
        (Kind::Connect, _) => invalid("not an object"),
        (Kind::Disconnect, None) => Ok(()),
        (Kind::Disconnect, Some(_)) => invalid("not empty"),
        (Kind::ConnectError, Some(Value::Object(_) | Value::String(_))) => Ok(()),
        (Kind::ConnectError, _) => invalid("neither an object nor a string"),
        (Kind::Event | Kind::BinaryEvent, Some(Value::Array(items))) => match items.first() {
            Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                invalid("an event name the protocol reserves")
            }
            Some(Value::String(_) | Value::Number(_)) => Ok(()),
            _ => invalid("not a list that starts with the event's name"),
        },
        (Kind::Event | Kind::BinaryEvent, _) => invalid("not a list"),
        (Kind::Ack | Kind::BinaryAck, _) if packet.id.is_none() => invalid("without an ack id"),
        (Kind::Ack | Kind::BinaryAck, Some(Value::Array(_))) => Ok(()),
        (Kind::Ack | Kind::BinaryAck, _) => invalid("not a list"),
    }
}

/// A packet as the text of its frame (with the Engine.IO message prefix `4`).
pub fn encode(packet: &Packet) -> String {
    let mut out = String::from("4");
    out.push(packet.kind.digit());
    if packet.kind.is_binary() {
        out.push_str(&format!("{}-", packet.attachments));
    }
    if packet.namespace != "/" {
        out.push_str(&packet.namespace);
        out.push(',');
    }
    if let Some(id) = packet.id {
        out.push_str(&id.to_string());
    }
    if let Some(data) = &packet.data {
        out.push_str(&data.to_string());
    }
    out
}

/// Move the spec's binary arguments (`{"$binary": <base64>}`) out of `value` into
/// attachments, leaving placeholders. Err: an argument that is not base64.
pub fn deconstruct(value: &mut Value, attachments: &mut Vec<Vec<u8>>) -> Result<(), CodecError> {
    match value {
        Value::Object(map) => {
            if let Some(b64) = binary_argument(map) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| CodecError::NotBase64(e.to_string()))?;
                *value = json!({"_placeholder": true, "num": attachments.len()});
                attachments.push(bytes);
                return Ok(());
            }
            map.values_mut()
                .try_for_each(|v| deconstruct(v, attachments))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| deconstruct(v, attachments)),
        _ => Ok(()),
    }
}

fn binary_argument(map: &Map<String, Value>) -> Option<&str> {
    match (map.len(), map.get(BINARY_KEY)) {
        (1, Some(Value::String(b64))) => Some(b64),
        _ => None,
    }
}

/// Put a binary packet's attachments in place of its placeholders, as
/// `{"$binary": <base64>}`.
pub fn reconstruct(value: &mut Value, attachments: &[Vec<u8>]) -> Result<(), CodecError> {
    match value {
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                if let Some(num) = map.get("num").and_then(Value::as_u64) {
                    let bytes = usize::try_from(num)
                        .ok()
                        .and_then(|n| attachments.get(n))
                        .ok_or(CodecError::BadPlaceholder {
                            num,
                            count: attachments.len(),
                        })?;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    *value = json!({ BINARY_KEY: b64 });
                    return Ok(());
                }
            }
            map.values_mut()
                .try_for_each(|v| reconstruct(v, attachments))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| reconstruct(v, attachments)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_io_packets_are_read_by_their_type_digit() {
        assert_eq!(engine_packet("0{}"), Ok(EnginePacket::Open("{}")));
        assert_eq!(engine_packet("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(engine_packet("3probe"), Ok(EnginePacket::Pong("probe")));
        assert_eq!(
            engine_packet("42[\"a\"]"),
            Ok(EnginePacket::Message("2[\"a\"]"))
        );
        assert_eq!(engine_packet("6"), Ok(EnginePacket::Noop));
        assert_eq!(engine_packet(""), Err(CodecError::Empty));
        assert_eq!(engine_packet("x"), Err(CodecError::UnknownEngineType('x')));
    }

    #[test]
    fn packets_round_trip_with_namespace_id_and_attachments() {
        let cases = [
            "40",
            r#"40/admin,{"token":"t"}"#,
            "41/admin,",
            r#"42["chat","hi",{"n":1}]"#,
            r#"42/admin,7["chat"]"#,
            r#"4313[{"ok":true}]"#,
            r#"451-["up",{"_placeholder":true,"num":0}]"#,
            r#"462-/admin,9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            r#"44{"message":"no"}"#,
        ];
        for frame in cases {
            let packet = decode(&frame[1..]).unwrap_or_else(|e| panic!("{frame}: {e}"));
            let again = encode(&packet);
            // `41/admin,` encodes back without the trailing comma's empty payload.
            assert_eq!(again.trim_end_matches(','), frame.trim_end_matches(','));
        }
        let event = decode(r#"2/admin,7["chat",1]"#).unwrap();
        assert_eq!(event.kind, Kind::Event);
        assert_eq!(event.namespace, "/admin");
        assert_eq!(event.id, Some(7));
        assert_eq!(event.data, Some(json!(["chat", 1])));
        let binary = decode(r#"62-/x,9[]"#).unwrap();
        assert_eq!((binary.kind, binary.attachments), (Kind::BinaryAck, 2));
    }

    #[test]
    fn payloads_the_protocol_does_not_allow_are_refused() {
        let bad = [
            ("9", "unknown type `9`"),
            ("2{}", "EVENT whose payload is not a list"),
            ("2[]", "not a list that starts with the event's name"),
            (r#"2["disconnect"]"#, "reserves"),
            ("3[1]", "without an ack id"),
            ("31{}", "ACK whose payload is not a list"),
            ("0[]", "CONNECT whose payload is not an object"),
            ("1{}", "DISCONNECT whose payload is not empty"),
            ("4[1]", "neither an object nor a string"),
            ("5[\"a\"]", "attachment count"),
            ("2[\"a\"", "not JSON"),
            ("299999999999999999999[\"a\"]", "ack id"),
        ];
        for (text, why) in bad {
            let error = decode(text).expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn binary_arguments_become_placeholders_and_back() {
        let mut args =
            json!(["up", {"file": {"$binary": "aGVsbG8="}, "name": "a"}, {"$binary": "AAE="}]);
        let mut attachments = Vec::new();
        deconstruct(&mut args, &mut attachments).unwrap();
        assert_eq!(attachments, vec![b"hello".to_vec(), vec![0, 1]]);
        assert_eq!(
            args,
            json!(["up", {"file": {"_placeholder": true, "num": 0}, "name": "a"}, {"_placeholder": true, "num": 1}])
        );
        reconstruct(&mut args, &attachments).unwrap();
        assert_eq!(
            args,
            json!(["up", {"file": {"$binary": "aGVsbG8="}, "name": "a"}, {"$binary": "AAE="}])
        );
        let mut missing = json!([{"_placeholder": true, "num": 2}]);
        assert_eq!(
            reconstruct(&mut missing, &attachments),
            Err(CodecError::BadPlaceholder { num: 2, count: 2 })
        );
        let mut not_base64 = json!([{"$binary": "***"}]);
        assert!(deconstruct(&mut not_base64, &mut Vec::new()).is_err());
    }
}
