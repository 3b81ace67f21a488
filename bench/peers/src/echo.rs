//! The peers bench's target: a minimal tokio-tungstenite echo server. Every text or
//! binary frame comes back as it is; a close frame is answered (tungstenite queues the
//! answer, the next read flushes it).
//!
//! It listens with a backlog of 4,096 (capped by net.core.somaxconn): with the 128 that
//! `TcpListener::bind` asks for, a client opening its 1,000 connections at once can
//! overflow the accept queue, and each SYN the kernel drops is retried only after a
//! second, which a run's throughput then measures instead of the client.
//!
//! `peers-echo [ADDR]` (default `127.0.0.1:0`) prints `ws://HOST:PORT` once listening.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;

/// Pending connections the kernel queues (capped by net.core.somaxconn).
const BACKLOG: u32 = 4096;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(std::io::Error::other)?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    println!("ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
}
