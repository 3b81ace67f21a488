//! The reader task of a connection: decodes every frame with the connection's
//! protocol into the inbox from the first frame on (checking schemas, sending the
//! replies the protocol owes at once), answers the server's close frame at once and
//! closes TCP, and fails a connection that breaks the protocol with the right close
//! code (1002, 1007, 1009, or the connection protocol's own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::inbox::{Closed, Inbox, LazyJson, Received};
use super::protocol::{self, Breach, Decoded, Incoming, Json, SharedProtocol};
use super::transcript::{Direction, Transcript};
use super::ws::{nanos_since_origin, FrameRules};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sending half, shared by the steps that send and the reader that must answer a
/// close frame; `None` once closed. futures' lock, not tokio's: taken at every send,
/// and tokio's locks its list of waiters at every release.
pub type Writer = Arc<futures_util::lock::Mutex<Option<SplitSink<Socket, Message>>>>;

/// Frames larger than this are parsed and validated on the blocking pool, so a huge
/// event does not hold a runtime worker that other scenarios need.
const LARGE_FRAME_BYTES: usize = 64 * 1024;

/// How long the reader waits for the writer (a send in progress) or for the server's
/// answer to a close frame the engine sent, before it drops the connection anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Everything the reader task owns.
pub struct Reader {
    pub stream: SplitStream<Socket>,
    pub writer: Writer,
    pub inbox: Arc<Inbox>,
    pub rules: FrameRules,
    /// The connection's protocol state, shared with the steps that send.
    pub protocol: SharedProtocol,
    pub transcript: Transcript,
    pub name: String,
    /// When the last frame was sent (`ws::nanos_since_origin`), shared with the sender.
    pub last_sent: Arc<AtomicU64>,
    /// Frames received so far.
    pub received: usize,
    /// When the peer's next keep-alive is due, and the breach if it is not (set by
    /// the protocol).
    pub keepalive: Option<(tokio::time::Instant, Breach)>,
}

/// Why reading stopped, and what the engine owes the server.
enum End {
    /// The server sent a close frame: tungstenite queued the answer; flush it.
    ServerClosed(Closed),
    /// The server broke the protocol: send this close frame.
    Broken(Closed),
    /// The transport ended: nothing to send.
    Dropped(Closed),
}

impl Reader {
    pub async fn run(mut self) {
        let end = loop {
            // Frames already buffered are read without touching the socket, so without
            // this a flood would be classified for as long as it lasts, on one worker.
            tokio::task::coop::consume_budget().await;
            let next = match &self.keepalive {
                Some((due, breach)) => {
                    match tokio::time::timeout_at(*due, self.stream.next()).await {
                        Ok(next) => next,
                        Err(_) => break End::Broken(breach_closed(breach.clone())),
                    }
                }
                None => self.stream.next().await,
            };
            let breach = match next {
                // Not copied: the inbox keeps the frame's own bytes.
                Some(Ok(Message::Text(text))) => self.receive(text, None).await,
                Some(Ok(Message::Binary(bytes))) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    self.receive(text.into(), Some(bytes)).await
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code));
                    break End::ServerClosed(Closed {
                        code,
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        error: None,
                        by_engine: false,
                        meaning: code.and_then(|c| protocol::lock(&self.protocol).close_meaning(c)),
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => break classify_error(error),
                None => {
                    break End::Dropped(Closed {
                        code: None,
                        reason: String::new(),
                        error: None,
                        by_engine: false,
                        meaning: None,
                    })
                }
            };
            if let Some(breach) = breach {
                break End::Broken(breach_closed(breach));
            }
        };
        let closed = match &end {
            End::ServerClosed(c) | End::Broken(c) | End::Dropped(c) => c.clone(),
        };
        // Steps see how it ended before the handshake is finished.
        self.transcript
            .record(&self.name, Direction::Closed, &closed.to_string());
        self.inbox.lock().closed.get_or_insert(closed);
        self.inbox.bump();
        self.finish(end).await;
    }

    /// Decode one frame and put its messages in the inbox; send what the protocol owes
    /// the server. A breach of the protocol ends the connection.
    async fn receive(
        &mut self,
        text: Utf8Bytes,
        bytes: Option<tokio_tungstenite::tungstenite::Bytes>,
    ) -> Option<Breach> {
        let arrived = Instant::now();
        let since_last_sent = match self.last_sent.load(Ordering::Relaxed) {
            0 => None,
            sent => Some(Duration::from_nanos(
                nanos_since_origin(arrived).saturating_sub(sent),
            )),
        };
        let frame = Incoming {
            text,
            binary: bytes.is_some(),
            bytes,
        };
        let (decoded, violations) = if frame.text.len() > LARGE_FRAME_BYTES {
            let rules = self.rules.clone();
            let protocol = self.protocol.clone();
            let decoded =
                tokio::task::spawn_blocking(move || decode(&protocol, frame, &rules)).await;
            match decoded {
                Ok(decoded) => decoded,
                // Only a panic gets here; the frame is lost with it, the run goes on.
                Err(_) => return None,
            }
        } else {
            decode(&self.protocol, frame, &self.rules)
        };
        let Decoded {
            messages,
            replies,
            chatter,
            breach,
            keepalive,
        } = decoded;
        if let Some(keepalive) = keepalive {
            let due = tokio::time::Instant::now() + keepalive.within;
            self.keepalive = Some((due, keepalive.breach));
        }
        if let Some(frame) = chatter {
            self.transcript
                .record(&self.name, Direction::Received, &frame);
        }
        let mut violations = violations.into_iter();
        for message in messages {
            let schema_violation = violations.next().flatten();
            self.push(message, schema_violation, arrived, since_last_sent);
        }
        self.inbox.bump();
        for reply in replies {
            self.reply(reply).await;
        }
        breach
    }

    /// One decoded message into the transcript and the inbox.
    fn push(
        &mut self,
        message: protocol::Message,
        schema_violation: Option<String>,
        arrived: Instant,
        since_last_sent: Option<Duration>,
    ) {
        // The reader alone counts arrivals: its count is the inbox's.
        let number = self.received;
        self.received += 1;
        self.transcript.record_received(
            &self.name,
            number,
            &message.text,
            message.raw.as_deref(),
            schema_violation.as_deref(),
        );
        let mut state = self.inbox.lock();
        state.received = self.received;
        if let Some(t) = &message.event_type {
            state.seen_types.note(t, number);
        }
        if let Some(v) = &schema_violation {
            state.violations.push(v.clone());
        }
        state.pending.push(Box::new(Received {
            number,
            at: arrived,
            text: message.text,
            json: match message.json {
                Json::InText => LazyJson::default(),
                Json::Parsed(json) => LazyJson::known(Some(json)),
                Json::Absent => LazyJson::known(None),
            },
            binary: message.binary,
            event_type: message.event_type,
            operation: message.operation,
            ends_operation: message.ends_operation,
            raw: message.raw,
            ack_wanted: message.ack_wanted,
            ack_of_emit: message.ack_of_emit,
            schema_violation,
            since_last_sent,
        }));
    }

    /// Send a frame the protocol owes the server (a pong, an ack); if the writer is
    /// busy or gone past [`CLOSE_GRACE`], the frame is dropped: the reader must go on.
    async fn reply(&self, frame: String) {
        self.transcript.record_reply(&self.name, &frame);
        let sent = tokio::time::timeout(CLOSE_GRACE, async {
            let mut writer = self.writer.lock().await;
            if let Some(sink) = writer.as_mut() {
                let _ = sink.send(Message::text(frame)).await;
            }
        });
        let _ = sent.await;
    }

    /// Answer or send the close frame, then release the TCP connection.
    async fn finish(self, end: End) {
        let Reader {
            mut stream, writer, ..
        } = self;
        let sink = match tokio::time::timeout(CLOSE_GRACE, writer.lock()).await {
            Ok(mut writer) => writer.take(),
            Err(_) => None,
        };
        match (end, sink) {
            // Flushes the answer tungstenite queued when the close frame arrived.
            (End::ServerClosed(_), Some(mut sink)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
            }
            (End::Broken(closed), Some(mut sink)) => {
                let frame = CloseFrame {
                    code: CloseCode::from(closed.code.unwrap_or(1002)),
                    reason: crate::text::truncate(&closed.reason, 120).into(),
                };
                let sent =
                    tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame))));
                if let Ok(Ok(())) = sent.await {
                    // Let the server answer before TCP goes, so it reads our frame.
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(message)) = stream.next().await {
                            if message.is_close() {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            _ => {}
        }
        // Both halves dropped here: the TCP connection closes now, not at teardown.
    }
}

/// How a connection ends when the engine closes it for a breach of its protocol.
fn breach_closed(breach: Breach) -> Closed {
    Closed {
        code: Some(breach.code),
        reason: breach.reason,
        error: None,
        by_engine: true,
        meaning: None,
    }
}

/// Decode a frame with the connection's protocol and check each message's schema: the
/// violations, message by message, or none at all (nothing allocated) without schemas.
fn decode(
    protocol: &SharedProtocol,
    frame: Incoming,
    rules: &FrameRules,
) -> (Decoded, Vec<Option<String>>) {
    let decoded = protocol::lock(protocol).decode(frame);
    let Some(schemas) = &rules.schemas else {
        return (decoded, Vec::new());
    };
    let violations = decoded
        .messages
        .iter()
        .map(|m| match (&m.schema_type, &m.json) {
            (Some(t), Json::Parsed(j)) => schemas.violation(t, j, rules.require_schemas),
            _ => None,
        })
        .collect();
    (decoded, violations)
}

/// What a read error means for the connection.
fn classify_error(error: WsError) -> End {
    let broken = |code: u16, reason: String| {
        End::Broken(Closed {
            code: Some(code),
            reason,
            error: Some(error.to_string()),
            by_engine: true,
            meaning: None,
        })
    };
    match &error {
        WsError::Utf8(_) => broken(1007, "the server sent invalid UTF-8 in a text frame".into()),
        WsError::Capacity(e) => broken(1009, format!("the server sent a frame too big: {e}")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Dropped(Closed {
            code: None,
            reason: String::new(),
            error: Some(error.to_string()),
            by_engine: false,
            meaning: None,
        }),
        WsError::Protocol(e) => broken(1002, format!("the server broke the protocol: {e}")),
        _ => End::Dropped(Closed {
            code: None,
            reason: String::new(),
            error: Some(error.to_string()),
            by_engine: false,
            meaning: None,
        }),
    }
}
