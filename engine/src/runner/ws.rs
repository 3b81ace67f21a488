//! WebSocket connections of a scenario. Each connection has an inbox fed by its own
//! reader task from the first frame on, so no event is lost between steps; steps take
//! frames out of the inbox and leave the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::resources::{field, EventSchemas};
use super::transcript::{Direction, Transcript};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Initial read buffer of a connection. tungstenite's default (128 KiB) is zero-filled
/// on the first read, which would cost 128 KiB of memory per idle connection in load
/// mode; larger frames grow the buffer as needed.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Nanoseconds since a process-wide origin (0 = never), so an instant fits an atomic.
fn nanos_since_origin(at: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(origin).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One frame received on a connection.
#[derive(Debug, Clone)]
pub struct Received {
    /// Arrival order on this connection, from 0.
    pub number: usize,
    pub at: Instant,
    pub text: String,
    /// Parsed JSON, when the frame was JSON.
    pub json: Option<Value>,
    pub binary: bool,
    /// The event type read from the configured type field.
    pub event_type: Option<String>,
    pub schema_violation: Option<String>,
    /// Time from the last frame sent on this connection to this frame's arrival
    /// (`None` when nothing was sent before it): the event latency load mode reports.
    pub since_last_sent: Option<Duration>,
}

/// How a connection ended, as seen by the reader.
#[derive(Debug, Clone)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
    /// Transport error, or a close without a close frame.
    pub error: Option<String>,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.error) {
            (Some(code), _) if self.reason.is_empty() => write!(f, "closed with code {code}"),
            (Some(code), _) => write!(f, "closed with code {code} ({})", self.reason),
            (None, Some(error)) => write!(f, "dropped: {error}"),
            (None, None) => write!(f, "closed without a close frame"),
        }
    }
}

#[derive(Default)]
pub struct InboxState {
    /// Frames not yet taken by a step, in arrival order.
    pub pending: Vec<Received>,
    /// Every frame ever received (for failure reports).
    pub received: usize,
    pub closed: Option<Closed>,
    /// Schema violations not yet reported.
    pub violations: Vec<String>,
}

/// The inbox plus a counter that changes whenever something arrives.
pub struct Inbox {
    pub state: Mutex<InboxState>,
    pub changed: watch::Sender<u64>,
}

impl Inbox {
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// An open (or closed) connection of a scenario.
pub struct Connection {
    pub name: String,
    pub inbox: Arc<Inbox>,
    writer: tokio::sync::Mutex<Option<SplitSink<Socket, Message>>>,
    reader: tokio::task::JoinHandle<()>,
    transcript: Transcript,
    /// When the last frame was sent ([`nanos_since_origin`]), shared with the reader.
    last_sent: Arc<AtomicU64>,
}

/// What the reader needs to classify frames.
#[derive(Clone)]
pub struct FrameRules {
    pub type_field: String,
    pub schemas: Option<Arc<EventSchemas>>,
    /// Every event type must have a schema (`events.require_schemas`).
    pub require_schemas: bool,
}

/// How to open a connection.
pub struct ConnectRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade with an HTTP status.
    Refused {
        status: u16,
        body: String,
    },
    Other(String),
}

impl Connection {
    pub async fn open(
        name: &str,
        request: ConnectRequest,
        rules: FrameRules,
        transcript: Transcript,
    ) -> Result<Connection, ConnectError> {
        let mut http = request
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Other(format!("bad URL `{}`: {e}", request.url)))?;
        for (key, value) in &request.headers {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|e| ConnectError::Other(format!("bad header name `{key}`: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ConnectError::Other(format!("bad value for header `{key}`: {e}")))?;
            http.headers_mut().append(name, value);
        }
        if !request.subprotocols.is_empty() {
            let joined = request.subprotocols.join(", ");
            let value = HeaderValue::from_str(&joined)
                .map_err(|e| ConnectError::Other(format!("bad subprotocol list: {e}")))?;
            http.headers_mut().insert("sec-websocket-protocol", value);
        }
        let connector = request.tls.map(tokio_tungstenite::Connector::Rustls);
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let handshake =
            tokio_tungstenite::connect_async_tls_with_config(http, Some(config), true, connector);
        let socket = match tokio::time::timeout(request.timeout, handshake).await {
            Err(_) => {
                return Err(ConnectError::Other(format!(
                    "no WebSocket handshake from {} within {:?}",
                    request.url, request.timeout
                )))
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(ConnectError::Refused {
                    status: response.status().as_u16(),
                    body,
                });
            }
            Ok(Err(e)) => {
                return Err(ConnectError::Other(format!(
                    "cannot connect to {}: {e}",
                    request.url
                )))
            }
            Ok(Ok((socket, _response))) => socket,
        };
        let (sink, stream) = socket.split();
        let (changed, _) = watch::channel(0);
        let inbox = Arc::new(Inbox {
            state: Mutex::default(),
            changed,
        });
        let last_sent = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn(read_frames(
            stream,
            inbox.clone(),
            rules,
            transcript.clone(),
            name.to_string(),
            last_sent.clone(),
        ));
        Ok(Connection {
            name: name.to_string(),
            inbox,
            writer: tokio::sync::Mutex::new(Some(sink)),
            reader,
            transcript,
            last_sent,
        })
    }

    pub async fn send_text(&self, text: String, timeout: Duration) -> Result<(), String> {
        self.transcript.record(&self.name, Direction::Sent, &text);
        self.send(Message::text(text), timeout).await
    }

    pub async fn send_binary(&self, bytes: Vec<u8>, timeout: Duration) -> Result<(), String> {
        self.transcript.record(
            &self.name,
            Direction::Sent,
            &format!("<binary {} bytes>", bytes.len()),
        );
        self.send(Message::binary(bytes), timeout).await
    }

    async fn send(&self, message: Message, timeout: Duration) -> Result<(), String> {
        let mut writer = self.writer.lock().await;
        let sink = writer.as_mut().ok_or_else(|| {
            format!(
                "connection `{}` is already closed by this scenario",
                self.name
            )
        })?;
        // Before sending: an answer can arrive before `send` returns.
        self.last_sent
            .store(nanos_since_origin(Instant::now()), Ordering::Relaxed);
        match tokio::time::timeout(timeout, sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot send on `{}`: {e}", self.name)),
            Err(_) => Err(format!(
                "sending on `{}` did not finish within {timeout:?}",
                self.name
            )),
        }
    }

    /// Close with a close frame; the reader keeps running to record the server's answer.
    pub async fn close(&self, code: u16, reason: &str, timeout: Duration) -> Result<(), String> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let mut writer = self.writer.lock().await;
        if let Some(sink) = writer.as_mut() {
            let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(frame)))).await;
        }
        writer.take();
        Ok(())
    }

    /// Still usable: not closed by this scenario and not closed by the server.
    pub async fn is_open(&self) -> bool {
        let closed = self
            .inbox
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .is_some();
        !closed && self.writer.lock().await.is_some()
    }

    /// Drop the TCP connection without a close frame.
    pub async fn drop_transport(&self) {
        self.writer.lock().await.take();
        self.reader.abort();
        let mut state = self.inbox.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed.get_or_insert(Closed {
            code: None,
            reason: String::new(),
            error: Some("dropped by the scenario".into()),
        });
        drop(state);
        self.inbox.bump();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_frames(
    mut stream: futures_util::stream::SplitStream<Socket>,
    inbox: Arc<Inbox>,
    rules: FrameRules,
    transcript: Transcript,
    name: String,
    last_sent: Arc<AtomicU64>,
) {
    let mut received = 0;
    let closed = loop {
        let (text, binary) = match stream.next().await {
            Some(Ok(Message::Text(text))) => (text.to_string(), false),
            Some(Ok(Message::Binary(bytes))) => {
                (String::from_utf8_lossy(&bytes).into_owned(), true)
            }
            Some(Ok(Message::Close(frame))) => {
                break Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    error: None,
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                break Closed {
                    code: None,
                    reason: String::new(),
                    error: Some(e.to_string()),
                }
            }
            None => {
                break Closed {
                    code: None,
                    reason: String::new(),
                    error: None,
                }
            }
        };
        let arrived = Instant::now();
        let since_last_sent = match last_sent.load(Ordering::Relaxed) {
            0 => None,
            sent => Some(Duration::from_nanos(
                nanos_since_origin(arrived).saturating_sub(sent),
            )),
        };
        let json: Option<Value> = if binary {
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
        // The reader alone counts arrivals: its count is the inbox's.
        let number = received;
        received += 1;
        transcript.record_received(&name, number, &text, schema_violation.as_deref());
        {
            let mut state = inbox.state.lock().unwrap_or_else(|p| p.into_inner());
            state.received = received;
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
        inbox.bump();
    };
    transcript.record(&name, Direction::Closed, &closed.to_string());
    inbox
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .closed
        .get_or_insert(closed);
    inbox.bump();
}

/// A rustls client config with the system's roots, plus an extra CA when given.
pub fn tls_config(extra_ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let mut reader = std::io::BufReader::new(pem.as_slice());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| format!("bad PEM in {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("no certificate found in {}", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
