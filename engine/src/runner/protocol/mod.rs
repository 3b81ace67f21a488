//! The protocol a connection speaks over its WebSocket (`connect.protocol`): raw frames
//! by default, or a protocol whose envelopes, ids and keep-alives the engine handles so
//! that steps speak the protocol's own terms.
//!
//! The seam: each connection owns one [`Protocol`] state, shared by the reader task
//! (which [`Protocol::decode`]s every frame into messages for the inbox, frames owed
//! to the server at once, and breaches) and by the steps that send (which encode
//! through the same state, so ids allocated by a send are known to the reader). The
//! state sits behind a `std::sync::Mutex` that is never held across an `.await`.
//! After the WebSocket handshake, [`open`] runs the protocol's opening phase (frames
//! from [`Protocol::start`], then waiting on [`Protocol::opening`]) within the connect
//! step's deadline. Adding a protocol: a module here, an arm in [`for_connection`].
//!
//! Seam change (errors helper): [`for_connection`] and [`open`] return a
//! [`ProtocolError`] instead of a `String`, so a failure keeps its kind (refused,
//! closed, timeout…); the messages are unchanged. A protocol's refusal still comes as
//! `Opening::Refused(why)`.

pub mod graphql;
pub mod raw;
pub mod skim;
pub mod socket_io;

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use smallvec::SmallVec;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::ws::{Closed, Connection, FrameRules, SendError};
use crate::diagnostic::FailureKind;
use crate::spec::model::ConnectStep;
pub use crate::spec::model::ProtocolKind;

/// One WebSocket frame as read.
#[derive(Debug)]
pub struct Incoming {
    /// The frame's text (a binary frame's bytes read as UTF-8, lossily), shared with
    /// the frame read, not copied.
    pub text: Utf8Bytes,
    pub binary: bool,
    /// A binary frame's bytes (shared with the frame, not copied).
    pub bytes: Option<tokio_tungstenite::tungstenite::Bytes>,
}

/// One message for the inbox, as steps see it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The decoded message as text: what failure output and the transcript show, and
    /// what `match:` compares when there is no JSON.
    pub text: Utf8Bytes,
    /// The decoded message as steps match it, when it is JSON.
    pub json: Json,
    /// The event type as the protocol defines it (`event:` matches it).
    pub event_type: Option<String>,
    /// Which event schema applies (a schemas folder's file name), if any.
    pub schema_type: Option<String>,
    /// The spec's name of the operation (stream, subscription) the message belongs
    /// to, for protocols that multiplex them on one socket.
    pub operation: Option<String>,
    /// The last message of its operation (e.g. a GraphQL `error` or `complete`): a
    /// step waiting for another message of the operation fails at once.
    pub ends_operation: bool,
    /// The frame(s) as received, when they differ from `text`.
    pub raw: Option<String>,
    pub binary: bool,
    /// socket.io: the server asks for an acknowledgement of this event under this id
    /// (`expect.ack` answers it).
    pub ack_wanted: Option<u64>,
    /// socket.io: the server's acknowledgement of the client's emit with this id: only
    /// the emit that asked for it takes it.
    pub ack_of_emit: Option<u64>,
}

/// A message's JSON, as its protocol decoded it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Json {
    /// The message is not JSON.
    #[default]
    Absent,
    /// Parsed while decoding.
    Parsed(Value),
    /// `text` is JSON, left unparsed: it is parsed when a step looks at more than the
    /// event type (see [`skim`]).
    InText,
}

/// A frame the peer sent that the protocol does not allow: the engine closes the
/// connection with this code and reason, and every step waiting on it fails with them.
#[derive(Debug, Clone)]
pub struct Breach {
    pub code: u16,
    pub reason: String,
}

/// What one frame meant.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Messages for the inbox, in order (none for keep-alives, acks, partial frames).
    /// Nearly always one: kept in place, not allocated for every frame.
    pub messages: SmallVec<[Message; 1]>,
    /// Frames owed to the server at once (a pong, an automatic ack), sent in order by
    /// the reader and shown in the transcript.
    pub replies: Vec<String>,
    /// The frame, when it gives no message (a keep-alive, an ack, a late message):
    /// the transcript shows it.
    pub chatter: Option<String>,
    pub breach: Option<Breach>,
    /// The peer must send its next keep-alive within this time from now, or the
    /// engine closes the connection (replaces the previous deadline).
    pub keepalive: Option<Keepalive>,
}

/// A keep-alive deadline: how long the peer may stay silent, and the breach when it
/// does.
#[derive(Debug, Clone)]
pub struct Keepalive {
    pub within: Duration,
    pub breach: Breach,
}

impl Decoded {
    pub fn message(message: Message) -> Self {
        Decoded {
            messages: smallvec::smallvec![message],
            ..Decoded::default()
        }
    }
}

/// Where a protocol's opening phase stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// Open: steps may use the connection.
    Open,
    /// Waiting for the server (what for, as a noun phrase: "`connection_ack`").
    Waiting(String),
    /// The server refused (why).
    Refused(String),
}

/// A connection's protocol state.
pub trait Protocol: Send + 'static {
    fn kind(&self) -> ProtocolKind;

    /// Read one frame.
    fn decode(&mut self, frame: Incoming) -> Decoded;

    /// The WebSocket subprotocol to ask for in the handshake (added to the step's).
    fn subprotocol(&self) -> Option<&'static str> {
        None
    }

    /// Frames to send as soon as the WebSocket is open (e.g. `connection_init`).
    fn start(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Where the opening phase stands.
    fn opening(&self) -> Opening {
        Opening::Open
    }

    /// What the protocol says a close code means (e.g. 4408 → "connection_init
    /// timeout"), shown with the close.
    fn close_meaning(&self, _code: u16) -> Option<&'static str> {
        None
    }

    /// Frames to send before the engine closes the connection (e.g. leaving the
    /// protocol's sessions), best effort.
    fn farewell(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// How long teardown waits for the server to answer the engine's close frame, when
    /// the protocol bounds it (servers of the protocol known not to answer it).
    fn close_answer_wait(&self) -> Option<Duration> {
        None
    }

    /// For steps of this protocol to reach its own state ([`with_state`]).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The state shared by a connection's reader and its senders.
pub type SharedProtocol = Arc<Mutex<Box<dyn Protocol>>>;

/// The protocol state, even if a thread panicked while holding it.
pub fn lock(protocol: &SharedProtocol) -> MutexGuard<'_, Box<dyn Protocol>> {
    crate::sync::lock(protocol)
}

/// Run `f` on a connection's protocol state if it is a `T`.
pub fn with_state<T: Protocol, R>(
    protocol: &SharedProtocol,
    f: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    let mut state = lock(protocol);
    state.as_any_mut().downcast_mut::<T>().map(f)
}

/// Why a connection's protocol cannot be used, or did not open.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("protocol `{0}` is not supported yet by this engine")]
    Unsupported(&'static str),
    /// The step's protocol options cannot be used.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("the server refused to open `{connection}`: {why}")]
    Refused { connection: String, why: String },
    #[error("connection `{connection}` {closed} while waiting for {waiting_for}")]
    Closed {
        connection: String,
        closed: Closed,
        waiting_for: String,
    },
    #[error("no {waiting_for} on `{connection}` within {within:?}")]
    Timeout {
        connection: String,
        waiting_for: String,
        within: Duration,
    },
}

impl From<ProtocolError> for crate::diagnostic::Diagnostic {
    fn from(e: ProtocolError) -> Self {
        let kind = match e {
            ProtocolError::Send(send) => return send.into(),
            ProtocolError::Unsupported(_) | ProtocolError::Invalid(_) => FailureKind::Spec,
            ProtocolError::Refused { .. } => FailureKind::Refused,
            ProtocolError::Closed { .. } => FailureKind::ConnectionClosed,
            ProtocolError::Timeout { .. } => FailureKind::Timeout,
        };
        Self::of(kind, e.to_string())
    }
}

/// The protocol state for a new connection.
pub fn for_connection(
    step: &ConnectStep,
    rules: &FrameRules,
) -> Result<SharedProtocol, ProtocolError> {
    let state: Box<dyn Protocol> = match step.protocol {
        ProtocolKind::Raw => Box::new(raw::Raw::new(rules)),
        ProtocolKind::GraphqlTransportWs => Box::new(graphql::Graphql::new(
            graphql::Dialect::TransportWs,
            step.connection_init.clone(),
        )),
        ProtocolKind::GraphqlWs => Box::new(graphql::Graphql::new(
            graphql::Dialect::SubscriptionsTransportWs,
            step.connection_init.clone(),
        )),
        ProtocolKind::SocketIo => {
            let namespaces = step.namespaces.as_ref().map(|namespaces| {
                namespaces
                    .iter()
                    .map(|n| {
                        let (name, auth) = n.parts();
                        (name.to_string(), auth.cloned())
                    })
                    .collect()
            });
            let state = socket_io::SocketIo::new(namespaces)
                .with_auto_acks(step.acks.clone())
                .map_err(|e| ProtocolError::Invalid(e.to_string()))?;
            Box::new(state)
        }
    };
    Ok(Arc::new(Mutex::new(state)))
}

/// The opening phase after the WebSocket handshake: send the protocol's first frames,
/// then wait until it is open, refused, or the connection ends, until `within`.
pub async fn open(connection: &Connection, within: Duration) -> Result<(), ProtocolError> {
    let deadline = tokio::time::Instant::now() + within;
    let first = lock(connection.protocol()).start();
    for frame in first {
        connection.send_text(frame, within).await?;
    }
    loop {
        let changed = connection.inbox.changed();
        let waiting_for = match lock(connection.protocol()).opening() {
            Opening::Open => return Ok(()),
            Opening::Refused(why) => {
                return Err(ProtocolError::Refused {
                    connection: connection.name.clone(),
                    why,
                })
            }
            Opening::Waiting(what) => what,
        };
        if let Some(closed) = &connection.inbox.lock().closed {
            return Err(ProtocolError::Closed {
                connection: connection.name.clone(),
                closed: closed.clone(),
                waiting_for,
            });
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(ProtocolError::Timeout {
                connection: connection.name.clone(),
                waiting_for,
                within,
            });
        }
    }
}
