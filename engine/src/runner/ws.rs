//! WebSocket connections of a scenario: open, send, close. Each connection has an
//! inbox fed by its own reader task ([`super::reader`]) from the first frame on, so no
//! event is lost between steps; steps take frames out of the inbox and leave the rest.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::StreamExt;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

pub use super::inbox::{Closed, Inbox, InboxState, Received};
use super::protocol::SharedProtocol;
use super::reader::{Reader, Writer};
use super::resources::EventSchemas;
use super::transcript::{Direction, Transcript};
use crate::diagnostic::FailureKind;

/// Initial read buffer of a connection. tungstenite's default (128 KiB) is zero-filled
/// on the first read, which would cost 128 KiB of memory per idle connection in load
/// mode; larger frames grow the buffer as needed.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Nanoseconds since a process-wide origin (0 = never), so an instant fits an atomic.
pub(super) fn nanos_since_origin(at: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(origin).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// An open (or closed) connection of a scenario.
pub struct Connection {
    pub name: String,
    pub inbox: Arc<Inbox>,
    writer: Writer,
    reader: tokio::task::JoinHandle<()>,
    transcript: Transcript,
    /// When the last frame was sent ([`nanos_since_origin`]), shared with the reader.
    last_sent: Arc<AtomicU64>,
    /// The subprotocol the server picked in its handshake answer.
    pub subprotocol: Option<String>,
    /// The protocol spoken over the WebSocket, shared with the reader.
    protocol: SharedProtocol,
}

/// What the reader needs to classify frames.
#[derive(Clone)]
pub struct FrameRules {
    pub type_field: String,
    pub schemas: Option<Arc<EventSchemas>>,
    /// Every event type must have a schema (`events.require_schemas`).
    pub require_schemas: bool,
    /// Binary frames carry JSON: read them like text frames (`connect.binary_json`).
    pub binary_json: bool,
}

/// How to open a connection.
pub struct ConnectRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
    /// The source address to connect from (load mode's `--local-ips`); else the
    /// system's choice.
    pub local_ip: Option<IpAddr>,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server answered the upgrade with an HTTP status.
    #[error("the server refused the WebSocket handshake with HTTP {status}")]
    Refused { status: u16, body: String },
    /// The request cannot be made: a bad URL, header or subprotocol list.
    #[error("{0}")]
    Invalid(String),
    #[error("no WebSocket handshake from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// No connection: refused, unreachable, a TLS or protocol error.
    #[error("cannot connect to {url}: {source}")]
    Unreachable {
        url: String,
        source: Box<tungstenite::Error>,
    },
}

impl From<ConnectError> for crate::diagnostic::Diagnostic {
    fn from(e: ConnectError) -> Self {
        let kind = match &e {
            ConnectError::Refused { .. } | ConnectError::Unreachable { .. } => FailureKind::Refused,
            ConnectError::Invalid(_) => FailureKind::Spec,
            ConnectError::Timeout { .. } => FailureKind::Timeout,
        };
        Self::of(kind, e.to_string())
    }
}

/// Why a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot send on `{name}`: the connection {closed}")]
    ClosedByServer { name: String, closed: Closed },
    #[error("connection `{name}` is already closed by this scenario")]
    ClosedByScenario { name: String },
    #[error("cannot send on `{name}`: {source}")]
    Failed {
        name: String,
        source: Box<tungstenite::Error>,
    },
    #[error("sending on `{name}` did not finish within {timeout:?}")]
    Timeout { name: String, timeout: Duration },
}

impl From<SendError> for crate::diagnostic::Diagnostic {
    fn from(e: SendError) -> Self {
        let kind = match &e {
            SendError::Timeout { .. } => FailureKind::Timeout,
            _ => FailureKind::ConnectionClosed,
        };
        Self::of(kind, e.to_string())
    }
}

/// Why a TLS client config cannot be built from `connect.ca_file`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("bad PEM in {}: {source}", path.display())]
    Pem {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("bad certificate in {}: {source}", path.display())]
    Certificate {
        path: std::path::PathBuf,
        source: rustls::Error,
    },
    #[error("no certificate found in {}", path.display())]
    Empty { path: std::path::PathBuf },
    #[error("{0}")]
    Protocols(rustls::Error),
}

impl From<TlsError> for crate::diagnostic::Diagnostic {
    fn from(e: TlsError) -> Self {
        Self::of(FailureKind::Spec, e.to_string())
    }
}

impl Connection {
    pub async fn open(
        name: &str,
        request: ConnectRequest,
        rules: FrameRules,
        protocol: SharedProtocol,
        transcript: Transcript,
    ) -> Result<Connection, ConnectError> {
        let mut http = request
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Invalid(format!("bad URL `{}`: {e}", request.url)))?;
        for (key, value) in &request.headers {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|e| ConnectError::Invalid(format!("bad header name `{key}`: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ConnectError::Invalid(format!("bad value for header `{key}`: {e}")))?;
            http.headers_mut().append(name, value);
        }
        if !request.subprotocols.is_empty() {
            let joined = request.subprotocols.join(", ");
            let value = HeaderValue::from_str(&joined)
                .map_err(|e| ConnectError::Invalid(format!("bad subprotocol list: {e}")))?;
            http.headers_mut().insert("sec-websocket-protocol", value);
        }
        let connector = request.tls.map(tokio_tungstenite::Connector::Rustls);
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let handshake = async {
            match request.local_ip {
                None => {
                    tokio_tungstenite::connect_async_tls_with_config(
                        http,
                        Some(config),
                        true,
                        connector,
                    )
                    .await
                }
                Some(local) => {
                    let tcp = connect_from(http.uri(), local)
                        .await
                        .map_err(tungstenite::Error::Io)?;
                    tokio_tungstenite::client_async_tls_with_config(
                        http,
                        tcp,
                        Some(config),
                        connector,
                    )
                    .await
                }
            }
        };
        let (socket, response) = match tokio::time::timeout(request.timeout, handshake).await {
            Err(_) => {
                return Err(ConnectError::Timeout {
                    url: request.url,
                    timeout: request.timeout,
                })
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
                return Err(ConnectError::Unreachable {
                    url: request.url,
                    source: Box::new(e),
                })
            }
            Ok(Ok((socket, response))) => (socket, response),
        };
        let subprotocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (sink, stream) = socket.split();
        let inbox = Arc::new(Inbox::new());
        let last_sent = Arc::new(AtomicU64::new(0));
        let writer: Writer = Arc::new(futures_util::lock::Mutex::new(Some(sink)));
        let reader = tokio::spawn(
            Reader {
                stream,
                writer: writer.clone(),
                inbox: inbox.clone(),
                rules,
                protocol: protocol.clone(),
                transcript: transcript.clone(),
                name: name.to_string(),
                last_sent: last_sent.clone(),
                received: 0,
                keepalive: None,
            }
            .run(),
        );
        Ok(Connection {
            name: name.to_string(),
            inbox,
            writer,
            reader,
            transcript,
            last_sent,
            subprotocol,
            protocol,
        })
    }

    /// The connection's protocol state (see [`super::protocol`]).
    pub fn protocol(&self) -> &SharedProtocol {
        &self.protocol
    }

    pub async fn send_text(
        &self,
        text: impl Into<Utf8Bytes>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let text = text.into();
        self.transcript.record(&self.name, Direction::Sent, &text);
        self.send(Message::Text(text), timeout).await
    }

    /// Send a frame the connection's protocol encoded: the transcript shows `shown`
    /// (the message as the step wrote it) and the raw frame.
    pub async fn send_encoded(
        &self,
        shown: &str,
        raw: String,
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.transcript.record_encoded(&self.name, shown, &raw);
        self.send(Message::text(raw), timeout).await
    }

    /// Send a message the connection's protocol encoded as a text frame and the binary
    /// frames that must follow it at once (attachments); the transcript shows `shown`
    /// and the raw frames.
    pub async fn send_encoded_with(
        &self,
        shown: &str,
        text: String,
        attachments: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let mut raw = text.clone();
        for bytes in &attachments {
            raw.push_str(&format!("\n<binary {} bytes>", bytes.len()));
        }
        self.transcript.record_encoded(&self.name, shown, &raw);
        let mut frames = vec![Message::text(text)];
        frames.extend(attachments.into_iter().map(Message::binary));
        self.send_all(frames, timeout).await
    }

    pub async fn send_binary(&self, bytes: Vec<u8>, timeout: Duration) -> Result<(), SendError> {
        self.transcript.record(
            &self.name,
            Direction::Sent,
            &format!("<binary {} bytes>", bytes.len()),
        );
        self.send(Message::binary(bytes), timeout).await
    }

    async fn send(&self, message: Message, timeout: Duration) -> Result<(), SendError> {
        self.send_all(std::iter::once(message), timeout).await
    }

    /// Send frames one right after the other: no other frame goes between them.
    async fn send_all(
        &self,
        messages: impl IntoIterator<Item = Message, IntoIter: Send>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let mut writer = self.writer.lock().await;
        let name = || self.name.clone();
        let Some(sink) = writer.as_mut() else {
            return Err(match &self.inbox.lock().closed {
                Some(closed) => SendError::ClosedByServer {
                    name: name(),
                    closed: closed.clone(),
                },
                None => SendError::ClosedByScenario { name: name() },
            });
        };
        // Before sending: an answer can arrive before `send` returns.
        self.last_sent
            .store(nanos_since_origin(Instant::now()), Ordering::Relaxed);
        let sent = async {
            for message in messages {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match timeout_when_pending(timeout, sent).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(SendError::Failed {
                name: name(),
                source: Box::new(e),
            }),
            None => Err(SendError::Timeout {
                name: name(),
                timeout,
            }),
        }
    }

    /// Close with a close frame; the reader keeps running to record the server's answer.
    pub async fn close(&self, code: u16, reason: &str, timeout: Duration) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let farewell = super::protocol::lock(&self.protocol).farewell();
        let mut writer = self.writer.lock().await;
        if let Some(sink) = writer.as_mut() {
            let _ = tokio::time::timeout(timeout, async {
                for text in farewell {
                    self.transcript.record(&self.name, Direction::Sent, &text);
                    sink.feed(Message::text(text)).await?;
                }
                sink.send(Message::Close(Some(frame))).await
            })
            .await;
        }
        writer.take();
    }

    /// Still usable: not closed by this scenario and not closed by the server.
    pub async fn is_open(&self) -> bool {
        let closed = self.inbox.lock().closed.is_some();
        !closed && self.writer.lock().await.is_some()
    }

    /// Drop the TCP connection without a close frame.
    pub async fn drop_transport(&self) {
        self.writer.lock().await.take();
        self.reader.abort();
        self.inbox.lock().closed.get_or_insert(Closed {
            code: None,
            reason: String::new(),
            error: Some("dropped by the scenario".into()),
            by_engine: false,
            meaning: None,
        });
        self.inbox.bump();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A TCP connection (without delay) to the URI's host from the source address `local`.
/// Its port is picked at connect time (IP_BIND_ADDRESS_NO_PORT), so that one source
/// address reaches as many servers as it has free ports for each, not for all of them.
async fn connect_from(
    uri: &tungstenite::http::Uri,
    local: IpAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let mut failed = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        bind_address_no_port(&socket);
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.unwrap_or_else(|| {
        std::io::Error::other(format!(
            "{host} has no address of the family of the source address {local}"
        ))
    }))
}

/// Leave the port of a bound socket to `connect` (Linux); elsewhere `bind` picks it.
fn bind_address_no_port(socket: &tokio::net::TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and an int option of the right size. Failing
        // only means bind picks the port, as without the option.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// The system's root certificates, read once per process: reading them means reading
/// and parsing every file of the system's store.
fn native_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// A rustls client config with the system's roots, plus an extra CA when given. Built
/// once per process for the system's roots alone, and once per distinct CA file
/// content (the file is read each time, so a CA rewritten between connects is seen).
pub fn tls_config(
    extra_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static SYSTEM_ONLY: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static WITH_CA: crate::memo::Memo<rustls::ClientConfig> = crate::memo::Memo::new();
    let Some(path) = extra_ca else {
        if let Some(config) = SYSTEM_ONLY.get() {
            return Ok(config.clone());
        }
        let config = Arc::new(client_config(native_roots().clone())?);
        return Ok(SYSTEM_ONLY.get_or_init(|| config).clone());
    };
    let pem = std::fs::read(path).map_err(|source| TlsError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let key = format!("{}\n{}", path.display(), String::from_utf8_lossy(&pem));
    WITH_CA.get_or_try_insert(&key, || {
        let mut roots = native_roots().clone();
        let mut reader = std::io::BufReader::new(pem.as_slice());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|source| TlsError::Pem {
                path: path.to_path_buf(),
                source,
            })?;
            roots.add(cert).map_err(|source| TlsError::Certificate {
                path: path.to_path_buf(),
                source,
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::Empty {
                path: path.to_path_buf(),
            });
        }
        client_config(roots)
    })
}

fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

pin_project_lite::pin_project! {
    /// `tokio::time::timeout`, with its timer made only when the first poll does not
    /// finish: nearly every send is written at once, and a timer is a clock read and an
    /// entry in the runtime's timer wheel. The first poll does not wait, so the limit
    /// holds. A future of its own, not an async fn: that would keep the wrapped future
    /// twice in its state (as its argument and pinned), and every send would write both.
    struct TimeoutWhenPending<F> {
        #[pin]
        future: F,
        limit: Duration,
        // Boxed: rarely needed, and in place it would enlarge every send's future.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

/// `future`, or `None` if it has not finished `limit` after its first poll.
fn timeout_when_pending<F: Future>(limit: Duration, future: F) -> TimeoutWhenPending<F> {
    TimeoutWhenPending {
        future,
        limit,
        timer: None,
    }
}

impl<F: Future> Future for TimeoutWhenPending<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let limit = *this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_limit_armed_only_when_pending_still_holds() {
        let limit = Duration::from_secs(5);
        assert_eq!(timeout_when_pending(limit, async { 1 }).await, Some(1));
        let start = tokio::time::Instant::now();
        let late = timeout_when_pending(limit, tokio::time::sleep(Duration::from_secs(6))).await;
        assert!(late.is_none());
        assert_eq!(start.elapsed(), limit);
        let start = tokio::time::Instant::now();
        let in_time = timeout_when_pending(limit, tokio::time::sleep(Duration::from_secs(4))).await;
        assert_eq!(in_time, Some(()));
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        let never = timeout_when_pending(limit, std::future::pending::<()>()).await;
        assert!(never.is_none());
    }
}
