//! The peers bench's yardstick: the workload written by hand with tokio-tungstenite.
//! CONNECTIONS connections at once, each: connect, ROUNDS × (send `{"type":"ping"}`,
//! wait for the next frame, parse it as JSON, check its `type`), closed loop; then
//! close and wait for the server's close. Each connection keeps its own latency
//! histogram (no shared lock per frame); they are merged at the end. Connections read
//! through a 4 KiB buffer, as the engine's do, rather than tungstenite's 128 KiB, which
//! is zeroed again before every read: equal footing, so the comparison measures what
//! the engine adds.
//!
//! `peers-client URL CONNECTIONS ROUNDS` prints one JSON line: round trips, failures,
//! seconds (from the first connect to the last close), msg/s (round trips per second)
//! and the round-trip latency p50/p99/max in milliseconds.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Every wait (connect, echo, close) has this deadline.
const DEADLINE: Duration = Duration::from_secs(10);
const READ_BUFFER_BYTES: usize = 4 * 1024;
const PAYLOAD: &str = r#"{"type":"ping"}"#;

/// Latencies in µs, up to the deadline (a thousand of these are held at once).
fn histogram() -> Histogram<u64> {
    let highest = u64::try_from(DEADLINE.as_micros()).expect("fits");
    Histogram::new_with_bounds(1, highest, 3).expect("valid bounds")
}

/// One connection's share of the workload: its latencies (µs), or why it failed.
async fn connection(url: String, rounds: u64) -> Result<Histogram<u64>, String> {
    let mut latencies = histogram();
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
    let (mut socket, _) = tokio::time::timeout(DEADLINE, connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    for _ in 0..rounds {
        let sent = Instant::now();
        socket
            .send(Message::text(PAYLOAD))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let echo = tokio::time::timeout(DEADLINE, socket.next())
            .await
            .map_err(|_| "no echo in time".to_string())?;
        let text = match echo {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(other)) => return Err(format!("unexpected frame {other:?}")),
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed by the server".into()),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        if value["type"] != "ping" {
            return Err(format!("unexpected echo {text}"));
        }
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        latencies.saturating_record(micros.max(1));
    }
    socket
        .close(None)
        .await
        .map_err(|e| format!("close: {e}"))?;
    let closed = async { while let Some(Ok(_)) = socket.next().await {} };
    tokio::time::timeout(DEADLINE, closed)
        .await
        .map_err(|_| "no close from the server in time".to_string())?;
    Ok(latencies)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:9000".into());
    let connections: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection(url.clone(), rounds));
    }
    let mut latencies = histogram();
    let mut failures = 0u64;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(h) => latencies.add(&h).expect("same bounds"),
            Err(e) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("connection failed: {e}");
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "connections": connections,
            "round_trips": latencies.len(),
            "failures": failures,
            "seconds": seconds,
            "msg_per_s": latencies.len() as f64 / seconds,
            "p50_ms": ms(latencies.value_at_quantile(0.50)),
            "p99_ms": ms(latencies.value_at_quantile(0.99)),
            "max_ms": ms(latencies.max()),
        })
    );
}
