//! The bench's yardstick: the ping scenario of
//! `bench/ping_round_trip.yaml`, written by hand with
//! tokio-tungstenite, jsonwebtoken and sqlx, run by N looping users for a duration.
//! Each iteration: connect with a bearer JWT for a fresh user, wait for
//! `connection_established`, 10 × (send `ping`, wait for `pong`), close and wait for
//! the server's close, delete the user's `connections` rows. Prints one JSON line:
//! iterations, iterations/s, frames/s and ping→pong latency percentiles.
//!
//! `cargo run --release -p engine --example handwritten_load -- URL VUS SECONDS`
//! (env `DATABASE_URL`, `JWT_SECRET`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const PINGS: usize = 10;
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

struct Totals {
    iterations: AtomicU64,
    failures: AtomicU64,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Read frames until one whose `type` is `wanted` (or the deadline / the end).
async fn until_type(socket: &mut Socket, wanted: &str, totals: &Totals) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| format!("no {wanted} in time"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                totals.frames_received.fetch_add(1, Ordering::Relaxed);
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if value["type"] == wanted {
                    return Ok(());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}

async fn iteration(
    url: &str,
    secret: &str,
    db: &sqlx::PgPool,
    totals: &Totals,
) -> Result<(), String> {
    let user = format!("usr_{}", uuid::Uuid::new_v4());
    let exp = chrono::Utc::now().timestamp() + 300;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": user, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|_| "bad header")?,
    );
    // As the engine connects: a 4 KiB read buffer (not tungstenite's 128 KiB, zeroed
    // before every read) and TCP_NODELAY. Equal footing.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let outcome = async {
        let (mut socket, _) = tokio::time::timeout(STEP_TIMEOUT, connect)
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        until_type(&mut socket, "connection_established", totals).await?;
        for _ in 0..PINGS {
            let sent = Instant::now();
            socket
                .send(Message::text(r#"{"type":"ping"}"#))
                .await
                .map_err(|e| e.to_string())?;
            totals.frames_sent.fetch_add(1, Ordering::Relaxed);
            until_type(&mut socket, "pong", totals).await?;
            let micros = sent.elapsed().as_micros() as u64;
            let _ = totals
                .latency
                .lock()
                .map(|mut h| h.saturating_record(micros.max(1)));
        }
        socket.close(None).await.map_err(|e| e.to_string())?;
        // Wait for the server's close frame, as the spec's expect_close does.
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, socket.next()).await {}
        Ok::<(), String>(())
    }
    .await;
    // Teardown, always.
    sqlx::query("DELETE FROM connections WHERE user_id = $1")
        .bind(&user)
        .execute(db)
        .await
        .map_err(|e| e.to_string())?;
    outcome
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8787/ws".into());
    let vus: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let database = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dagentchat".into()
    });
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| "dev-secret".into());
    let db = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(64)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&database)
        .await
    {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("error: cannot connect to Postgres: {e}");
            std::process::exit(2);
        }
    };
    let totals = Arc::new(Totals {
        iterations: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        frames_received: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")),
    });
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..vus {
        let (url, secret, db, totals) = (url.clone(), secret.clone(), db.clone(), totals.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                if let Err(e) = iteration(&url, &secret, &db, &totals).await {
                    if totals.failures.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("iteration failed: {e}");
                    }
                }
                totals.iterations.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let latency = totals
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let iterations = totals.iterations.load(Ordering::Relaxed);
    let frames =
        totals.frames_sent.load(Ordering::Relaxed) + totals.frames_received.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "vus": vus,
            "duration_s": elapsed,
            "iterations": iterations,
            "failures": totals.failures.load(Ordering::Relaxed),
            "iterations_per_s": iterations as f64 / elapsed,
            "frames_per_s": frames as f64 / elapsed,
            "latency_p50_ms": ms(0.50),
            "latency_p99_ms": ms(0.99),
            "latency_max_ms": latency.max() as f64 / 1000.0,
        })
    );
}
