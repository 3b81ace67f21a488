//! The reader task of a connection: classifies every frame into the inbox from the
//! first frame on, answers the server's close frame at once and closes TCP, and fails
//! a connection that breaks the protocol with the right close code (1002, 1007, 1009).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::inbox::{Closed, Inbox, Received};
use super::resources::field;
use super::transcript::{Direction, Transcript};
use super::ws::{nanos_since_origin, FrameRules};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sending half, shared by the steps that send and the reader that must answer a
/// close frame; `None` once closed.
pub type Writer = Arc<tokio::sync::Mutex<Option<SplitSink<Socket, Message>>>>;

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
    pub transcript: Transcript,
    pub name: String,
    /// When the last frame was sent ([`nanos_since_origin`]), shared with the sender.
    pub last_sent: Arc<AtomicU64>,
    /// Frames received so far.
    pub received: usize,
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
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => self.receive(text.to_string(), false).await,
                Some(Ok(Message::Binary(bytes))) => {
                    self.receive(String::from_utf8_lossy(&bytes).into_owned(), true)
                        .await
                }
                Some(Ok(Message::Close(frame))) => {
                    break End::ServerClosed(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        error: None,
                        by_engine: false,
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => break classify_error(error),
                None => {
                    break End::Dropped(Closed {
                        code: None,
                        reason: String::new(),
                        error: None,
                        by_engine: false,
                    })
                }
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

    /// Classify one frame and put it in the inbox.
    async fn receive(&mut self, text: String, binary: bool) {
        let arrived = Instant::now();
        let since_last_sent = match self.last_sent.load(Ordering::Relaxed) {
            0 => None,
            sent => Some(Duration::from_nanos(
                nanos_since_origin(arrived).saturating_sub(sent),
            )),
        };
        let (text, json, event_type, schema_violation) = if text.len() > LARGE_FRAME_BYTES {
            let rules = self.rules.clone();
            let classified =
                tokio::task::spawn_blocking(move || classify(text, binary, &rules)).await;
            match classified {
                Ok(classified) => classified,
                // Only a panic gets here; the frame is lost with it, the run goes on.
                Err(_) => return,
            }
        } else {
            classify(text, binary, &self.rules)
        };
        // The reader alone counts arrivals: its count is the inbox's.
        let number = self.received;
        self.received += 1;
        self.transcript
            .record_received(&self.name, number, &text, schema_violation.as_deref());
        {
            let mut state = self.inbox.lock();
            state.received = self.received;
            if let Some(t) = &event_type {
                state.seen_types.note(t, number);
            }
            if let Some(v) = &schema_violation {
                state.violations.push(v.clone());
            }
            state.pending.push(Received {
                number,
                at: arrived,
                text,
                json,
                binary,
                event_type,
                schema_violation,
                since_last_sent,
            });
        }
        self.inbox.bump();
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

/// Parse a frame, read its event type and check its schema.
fn classify(
    text: String,
    binary: bool,
    rules: &FrameRules,
) -> (String, Option<Value>, Option<String>, Option<String>) {
    let json: Option<Value> = if binary && !rules.binary_json {
        None
    } else {
        serde_json::from_str(&text).ok()
    };
    let event_type = json
        .as_ref()
        .and_then(|j| field(j, &rules.type_field))
        .and_then(Value::as_str)
        .map(str::to_string);
    let schema_violation = match (&rules.schemas, &event_type, &json) {
        (Some(schemas), Some(t), Some(j)) => schemas.violation(t, j, rules.require_schemas),
        _ => None,
    };
    (text, json, event_type, schema_violation)
}

/// What a read error means for the connection.
fn classify_error(error: WsError) -> End {
    let broken = |code: u16, reason: String| {
        End::Broken(Closed {
            code: Some(code),
            reason,
            error: Some(error.to_string()),
            by_engine: true,
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
        }),
        WsError::Protocol(e) => broken(1002, format!("the server broke the protocol: {e}")),
        _ => End::Dropped(Closed {
            code: None,
            reason: String::new(),
            error: Some(error.to_string()),
            by_engine: false,
        }),
    }
}
