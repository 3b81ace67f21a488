//! The same scenario done by the engine and by a hand-written client
//! (tokio-tungstenite + sqlx + redis), against the reference backend started
//! in-process, on the real Postgres and Redis. Each round runs interleaved pairs (which
//! goes first alternates), so that machine noise hits both alike; the figure that
//! matters is the median of the rounds' ratios.
//!
//! Run: `cargo bench -p engine --bench scenario_vs_handwritten` (ITERATIONS, ROUNDS env).
//!
//! The scenario: connect with a bearer JWT, expect `connection_established`, send a
//! `user_message`, expect `message_created`, check the `messages` row and the
//! connection's Redis hash, close and wait for the server's close (so that the cleanup
//! cannot race the server's own writes); teardown deletes what it created. The engine
//! also validates every received event against its JSON Schema, as the suite config
//! says. With the engine's mean time per step printed, to show where its time goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::diagnostic::SourceFile;
use engine::runner::scenario::ScenarioRun;
use engine::runner::{Resources, RunEnv, Status};
use engine::spec::config::SuiteConfig;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dagentchat";
const REDIS_URL: &str = "redis://127.0.0.1:6379";
const SECRET: &str = "bench-secret";

const SPEC: &str = r##"
name: message round trip
ids: { alice: user, thread: thread }
steps:
  - connect:
      url: "{{ env.WS_URL }}/ws"
      authenticate: { jwt: { claims: { sub: "{{ ids.alice }}" } } }
  - expect: { event: connection_established, match: { user_id: "{{ ids.alice }}" }, capture: { conn: $.connection_id } }
  - send: { json: { type: user_message, thread_id: "{{ ids.thread }}", content: hello } }
  - expect: { event: message_created, match: { content: hello }, capture: { msg: $.message_id } }
  - assert_db:
      query: "SELECT content, user_id FROM messages WHERE id = $1"
      params: ["{{ vars.msg }}"]
      row: { content: hello, user_id: "{{ ids.alice }}" }
  - assert_redis: { key: "conn:{{ vars.conn }}", hash: { state: ready, user_id: "{{ ids.alice }}" } }
  - close: {}
teardown:
  - sql: "DELETE FROM messages WHERE thread_id = $1"
    params: ["{{ ids.thread }}"]
  - sql: "DELETE FROM threads WHERE id = $1"
    params: ["{{ ids.thread }}"]
  - redis: [DEL, "user:{{ ids.alice }}:events", "user:{{ ids.alice }}:seq"]
"##;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Handwritten {
    ws_url: String,
    pool: sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    /// Time spent in each phase, summed over iterations: (phase, milliseconds).
    phases: std::sync::Mutex<Vec<(&'static str, f64)>>,
}

/// Marks the end of each phase of one hand-written iteration.
struct Lap<'a> {
    hand: &'a Handwritten,
    since: Instant,
    phase: usize,
}

impl Lap<'_> {
    fn done(&mut self, name: &'static str) {
        let ms = self.since.elapsed().as_secs_f64() * 1000.0;
        let mut phases = self.hand.phases.lock().unwrap();
        match phases.get_mut(self.phase) {
            Some((_, total)) => *total += ms,
            None => phases.push((name, ms)),
        }
        self.phase += 1;
        self.since = Instant::now();
    }
}

impl Handwritten {
    async fn next_event(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        kind: &str,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("event within 5s");
            if let Some(Ok(Message::Text(text))) = frame {
                let value: Value = serde_json::from_str(&text).expect("JSON event");
                if value["type"] == kind {
                    return value;
                }
            } else if frame.is_none() {
                panic!("connection closed before {kind}");
            }
        }
    }

    async fn iteration(&self) {
        let mut lap = Lap {
            hand: self,
            since: Instant::now(),
            phase: 0,
        };
        let alice = format!("usr_{}", uuid::Uuid::new_v4());
        let thread = format!("thr_{}", uuid::Uuid::new_v4());
        let exp = chrono::Utc::now().timestamp() + 300;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": alice, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let mut request = format!("{}/ws", self.ws_url).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        // As the engine connects: a 4 KiB read buffer (not tungstenite's 128 KiB, zeroed
        // before every read) and TCP_NODELAY. Equal footing.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .unwrap();
        lap.done("connect (IDs, JWT, handshake)");
        let established = Self::next_event(&mut ws, "connection_established").await;
        assert_eq!(established["user_id"], alice.as_str());
        let conn = established["connection_id"].as_str().unwrap().to_string();
        lap.done("connection_established");
        let message = json!({"type": "user_message", "thread_id": thread, "content": "hello"});
        ws.send(Message::text(message.to_string())).await.unwrap();
        let created = Self::next_event(&mut ws, "message_created").await;
        assert_eq!(created["content"], "hello");
        let msg = created["message_id"].as_str().unwrap().to_string();
        lap.done("send, message_created");
        let (content, user_id): (String, String) =
            sqlx::query_as("SELECT content, user_id FROM messages WHERE id = $1")
                .bind(&msg)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        assert_eq!(
            (content.as_str(), user_id.as_str()),
            ("hello", alice.as_str())
        );
        lap.done("the row");
        let mut redis = self.redis.clone();
        let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("conn:{conn}"))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(hash.get("state").map(String::as_str), Some("ready"));
        assert_eq!(hash.get("user_id"), Some(&alice));
        lap.done("the Redis hash");
        // Like the engine, wait for the server's close before cleaning up: it answers
        // after acting on the frames sent before, so the deletes below cannot race the
        // server's own writes for this connection.
        ws.close(None).await.unwrap();
        let closed = async { while let Some(Ok(_)) = ws.next().await {} };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the server's close within 5s");
        lap.done("close, the server's close");
        sqlx::query("DELETE FROM messages WHERE thread_id = $1")
            .bind(&thread)
            .execute(&self.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM threads WHERE id = $1")
            .bind(&thread)
            .execute(&self.pool)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(format!("user:{alice}:events"))
            .arg(format!("user:{alice}:seq"))
            .query_async(&mut redis)
            .await
            .unwrap();
        lap.done("cleanup (2 deletes, DEL)");
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let iterations = env_usize("ITERATIONS", 100);
    let rounds = env_usize("ROUNDS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = backend::run(backend::config::Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url: "postgres://postgres@127.0.0.1:5432/test".into(),
            jwt_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .expect("reference backend starts (Postgres and Redis must be up)");
        let ws_url = format!("ws://{}", server.addr);

        let config_text = format!(
            "env: {{ WS_URL: \"{ws_url}\", DATABASE_URL: \"{DATABASE_URL}\", REDIS_URL: \"{REDIS_URL}\" }}\nevents: {{ schemas: {}/../schemas/events }}\nids: {{ user: {{ prefix: usr_ }}, thread: {{ prefix: thr_ }} }}\nauth: {{ jwt: {{ secret: {SECRET} }} }}\n",
            env!("CARGO_MANIFEST_DIR")
        );
        let config = Arc::new(SuiteConfig::parse(&SourceFile::new("bench/engine.yaml", config_text)).unwrap());
        let scenario = Arc::new(engine::spec::load::load_str(SourceFile::new("bench/round_trip.yaml", SPEC), &config, &Default::default()).unwrap().remove(0));
        let resources = Resources::new(1);
        let run = ScenarioRun {
            scenario,
            config: config.clone(),
            resources,
            run_env: Arc::new(RunEnv::new(&config)),
            frames: engine::runner::transcript::Keep::Ends(
                engine::runner::transcript::FRAMES_KEPT_AT_EACH_END,
            ),
            meter: None,
            stop: Default::default(),
            plans: Default::default(),
        };
        let hand = Handwritten {
            ws_url,
            // As the engine's pools: no ping before handing out a connection used a moment
            // ago (sqlx's default pings every time, a round trip more per statement).
            pool: sqlx::postgres::PgPoolOptions::new().max_connections(2).test_before_acquire(false).connect(DATABASE_URL).await.unwrap(),
            redis: redis::Client::open(REDIS_URL).unwrap().get_connection_manager().await.unwrap(),
            phases: Default::default(),
        };
        // Warm both paths (pools, schema compilation, code caches).
        for _ in 0..10 {
            assert_eq!(run.attempt().await.status, Status::Passed);
            hand.iteration().await;
        }
        hand.phases.lock().unwrap().clear(); // the warm-up's
        let (mut engine_ms, mut hand_ms) = (Vec::new(), Vec::new());
        let mut ratios = Vec::new();
        // Where the engine's time goes: each step's mean, and what is left (minting IDs,
        // rendering, teardown), over every measured attempt.
        let mut step_ms: Vec<(String, f64)> = Vec::new();
        let mut attempts_ms = 0.0f64;
        for round in 0..rounds {
            // Pairs, alternating which goes first: machine noise lands on both alike.
            let (mut e_total, mut h_total) = (0.0f64, 0.0f64);
            for i in 0..iterations {
                let engine_first = i % 2 == 0;
                for turn in 0..2 {
                    let started = Instant::now();
                    if (turn == 0) == engine_first {
                        let attempt = run.attempt().await;
                        e_total += started.elapsed().as_secs_f64();
                        assert_eq!(attempt.status, Status::Passed, "{:?}", attempt.failure.map(|d| d.render(false)));
                        attempts_ms += attempt.duration.as_secs_f64() * 1000.0;
                        for step in &attempt.steps {
                            match step_ms.get_mut(step.index) {
                                Some((_, total)) => *total += step.duration_ms,
                                None => step_ms.push((step.label.clone(), step.duration_ms)),
                            }
                        }
                    } else {
                        hand.iteration().await;
                        h_total += started.elapsed().as_secs_f64();
                    }
                }
            }
            let e = e_total * 1000.0 / iterations as f64;
            let h = h_total * 1000.0 / iterations as f64;
            println!("round {}: engine {e:.3} ms/scenario, hand-written {h:.3} ms/scenario, ratio {:.3}", round + 1, e / h);
            engine_ms.push(e);
            hand_ms.push(h);
            ratios.push(e / h);
        }
        let (e, h) = (median(&mut engine_ms), median(&mut hand_ms));
        let ratio = median(&mut ratios);
        let measured = (rounds * iterations) as f64;
        println!("the engine's mean per step:");
        let mut in_steps = 0.0;
        for (label, total) in &step_ms {
            in_steps += total;
            println!("  {:>7.3} ms  {}", total / measured, engine::text::truncate(label, 90));
        }
        println!("  {:>7.3} ms  the rest of the attempt (IDs, setup, teardown)", (attempts_ms - in_steps) / measured);
        println!("the hand-written client's mean per phase:");
        for (phase, total) in hand.phases.lock().unwrap().iter() {
            println!("  {:>7.3} ms  {phase}", total / measured);
        }
        println!("median over {rounds} rounds of {iterations} interleaved pairs: engine {e:.3} ms, hand-written {h:.3} ms; median ratio engine/hand-written = {ratio:.3} (target <= 1.05)");
        server.shutdown().await;
    });
}
