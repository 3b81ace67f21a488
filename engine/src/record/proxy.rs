//! The recording proxy: accepts WebSocket clients, opens the same path and query on
//! the upstream (`ws://` or `wss://`) with the client's headers and subprotocols,
//! answers the client as the upstream answered (its subprotocol, or its refusal
//! status), then relays frames both ways and records them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::session::{Event, Handshake, Recorder};

/// How long the upstream may take to answer a handshake.
const UPSTREAM_HANDSHAKE: Duration = Duration::from_secs(10);

/// Headers of the client's upgrade request that the upstream handshake makes anew.
const HANDSHAKE_HEADERS: [&str; 8] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "content-length",
];

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where to forward, and how.
#[derive(Clone)]
pub struct Forward {
    /// `ws://host:port` or `wss://host:port` (a path prefix is kept).
    pub upstream: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Accept clients until the task is dropped; each is relayed on its own task. Needs a
/// multi-threaded runtime: the upstream handshake runs inside the client's.
pub async fn serve(listener: TcpListener, forward: Forward, recorder: Recorder) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(relay_client(stream, forward.clone(), recorder.clone()));
    }
}

/// One client: handshake with the upstream first (inside the client's handshake, so
/// the client gets the upstream's answer), then relay until either side closes.
async fn relay_client(stream: TcpStream, forward: Forward, recorder: Recorder) {
    let runtime = tokio::runtime::Handle::current();
    let mut opened: Option<(Upstream, usize)> = None;
    let opened_slot = &mut opened;
    // tungstenite's callback signature, with its large error type.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let handshake = handshake_of(request);
        let outcome = tokio::task::block_in_place(|| {
            runtime.block_on(connect_upstream(&forward, &handshake))
        });
        answer(outcome, handshake, response, &recorder, opened_slot)
    };
    let Ok(client) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some((upstream, connection)) = opened else {
        return;
    };
    relay(client, upstream, connection, &recorder).await;
}

/// The client's answer: the upstream's subprotocol, or its refusal.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn answer(
    outcome: Result<(Upstream, Option<String>), Refusal>,
    mut handshake: Handshake,
    mut response: Response,
    recorder: &Recorder,
    opened: &mut Option<(Upstream, usize)>,
) -> Result<Response, ErrorResponse> {
    match outcome {
        Ok((upstream, protocol)) => {
            if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", value);
            }
            *opened = Some((upstream, recorder.open(handshake)));
            Ok(response)
        }
        Err(refusal) => {
            if let Refusal::Status(status, _) = &refusal {
                handshake.refused = Some(*status);
                recorder.open(handshake);
            }
            let (status, body) = match refusal {
                Refusal::Status(status, body) => (status, body),
                Refusal::Unreachable(message) => (502, Some(message)),
            };
            let mut error = ErrorResponse::new(body);
            *error.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            Err(error)
        }
    }
}

/// Why the upstream did not take the connection.
enum Refusal {
    /// It answered the upgrade with this status (and body).
    Status(u16, Option<String>),
    /// It could not be reached.
    Unreachable(String),
}

fn handshake_of(request: &Request) -> Handshake {
    let headers = request
        .headers()
        .iter()
        .filter(|(name, _)| !HANDSHAKE_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let subprotocols = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Handshake {
        path_and_query: request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        headers,
        subprotocols,
        refused: None,
    }
}

async fn connect_upstream(
    forward: &Forward,
    handshake: &Handshake,
) -> Result<(Upstream, Option<String>), Refusal> {
    let url = format!(
        "{}{}",
        forward.upstream.trim_end_matches('/'),
        handshake.path_and_query
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Refusal::Unreachable(format!("bad upstream URL {url}: {e}")))?;
    for (name, value) in &handshake.headers {
        if let (Ok(name), Ok(value)) = (
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    if !handshake.subprotocols.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&handshake.subprotocols.join(", ")) {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
    }
    let connector = forward
        .tls
        .clone()
        .map(tokio_tungstenite::Connector::Rustls);
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
    match tokio::time::timeout(UPSTREAM_HANDSHAKE, connect).await {
        Err(_) => Err(Refusal::Unreachable(format!(
            "no handshake from {url} within {UPSTREAM_HANDSHAKE:?}"
        ))),
        Ok(Err(tungstenite::Error::Http(response))) => Err(Refusal::Status(
            response.status().as_u16(),
            response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        )),
        Ok(Err(e)) => Err(Refusal::Unreachable(format!("cannot reach {url}: {e}"))),
        Ok(Ok((socket, response))) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok((socket, protocol))
        }
    }
}

/// Frames both ways until one side closes; the other is closed with the same frame.
async fn relay(
    client: WebSocketStream<TcpStream>,
    upstream: Upstream,
    connection: usize,
    recorder: &Recorder,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let to_upstream = async {
        while let Some(Ok(message)) = client_rx.next().await {
            match &message {
                Message::Text(text) => recorder.push(Event::Sent {
                    connection,
                    text: text.to_string(),
                    binary: false,
                }),
                Message::Binary(bytes) => recorder.push(Event::Sent {
                    connection,
                    text: String::from_utf8_lossy(bytes).into_owned(),
                    binary: true,
                }),
                Message::Close(_) => {
                    recorder.push(Event::ClientClosed { connection });
                    let _ = upstream_tx.send(message).await;
                    return;
                }
                _ => continue,
            }
            if upstream_tx.send(message).await.is_err() {
                return;
            }
        }
        recorder.push(Event::ClientClosed { connection });
        let _ = upstream_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(message)) = upstream_rx.next().await {
            match &message {
                Message::Text(text) => recorder.push(Event::Received {
                    connection,
                    text: text.to_string(),
                    binary: false,
                }),
                Message::Binary(bytes) => recorder.push(Event::Received {
                    connection,
                    text: String::from_utf8_lossy(bytes).into_owned(),
                    binary: true,
                }),
                Message::Close(frame) => {
                    recorder.push(Event::ServerClosed {
                        connection,
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame
                            .as_ref()
                            .map(|f| f.reason.to_string())
                            .unwrap_or_default(),
                    });
                    let _ = client_tx.send(close_of(frame)).await;
                    return;
                }
                _ => continue,
            }
            if client_tx.send(message).await.is_err() {
                return;
            }
        }
        let _ = client_tx.close().await;
    };
    // Whichever side ends first decides; the other gets a moment to pass on the
    // answering close.
    tokio::pin!(to_upstream, to_client);
    tokio::select! {
        () = &mut to_upstream => {
            let _ = tokio::time::timeout(CLOSING, to_client).await;
        }
        () = &mut to_client => {
            let _ = tokio::time::timeout(CLOSING, to_upstream).await;
        }
    }
}

/// How long the side that did not close may take to answer the close.
const CLOSING: Duration = Duration::from_secs(1);

fn close_of(frame: &Option<CloseFrame>) -> Message {
    Message::Close(frame.clone())
}
