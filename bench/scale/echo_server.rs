//! The scale bench's server (bench/scale.sh): a minimal tokio-tungstenite echo server
//! that many processes can share one port with (SO_REUSEPORT; the kernel spreads the
//! connections over them), since one process holds at most its open-files limit.
//! Connections start with a 4 KiB read buffer, as the engine's do, instead of
//! tungstenite's 128 KiB, so idle connections cost what the socket and task need.
//!
//! `scale-echo-server [ADDR]` (default `127.0.0.1:0`) prints `ws://HOST:PORT` once
//! listening.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Pending connections the kernel queues (capped by net.core.somaxconn).
const BACKLOG: u32 = 4096;

#[tokio::main(flavor = "current_thread")]
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
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    println!("ws://{}", listener.local_addr()?);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors (EMFILE): back off rather than spin; the connection
            // waits in the accept queue until one is free.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut socket) =
                tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
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
