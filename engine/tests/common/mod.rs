//! Test support: a small in-process WebSocket server with well-behaved and
//! misbehaving routes, and a suite harness that writes specs to a temporary folder,
//! runs them through the library and collects verdicts and failure texts.

#![allow(dead_code)]
// The handshake callback signature is tungstenite's, not ours.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use engine::runner::{self, Listener, Planned, Resources, RunEvent, RunOptions, Verdict};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Create a table of the tests' own if it is missing. Never dropped: other test
/// binaries and runs share it (rows are keyed by fresh IDs and deleted). Postgres's
/// `CREATE TABLE IF NOT EXISTS` is not safe against itself (two at once on a fresh
/// database: one fails on `pg_type`), so creations are serialized by an advisory lock.
pub async fn create_table(ddl: &str) {
    let pool = sqlx::PgPool::connect(DATABASE_URL)
        .await
        .expect("Postgres at 127.0.0.1:5432 must be reachable for these tests");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(872341)")
        .execute(&mut *tx)
        .await
        .expect("advisory lock");
    sqlx::raw_sql(ddl)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{ddl}: {e}"));
    tx.commit().await.expect("commit");
}

/// A table of the tests' own (see [`create_table`]) and clients of the database and
/// Redis, for an in-process server under test that keeps state.
pub async fn stateful_services(ddl: &str) -> (sqlx::PgPool, redis::aio::ConnectionManager) {
    create_table(ddl).await;
    let db = sqlx::PgPool::connect(DATABASE_URL)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable for these tests");
    let redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_connection_manager()
        .await
        .expect("Redis at 127.0.0.1:6379 must be reachable for these tests");
    (db, redis)
}

/// `engine load SPEC --no-serve --vus VUS --iterations ITERATIONS` through the binary;
/// asserts it exited 0 and returns its `--json` result.
pub async fn load_passes(spec: &Path, vus: u32, iterations: u32) -> serde_json::Value {
    let out = spec.with_extension("result.json");
    let args = [
        "load".to_string(),
        spec.display().to_string(),
        "--no-serve".into(),
        "--vus".into(),
        vus.to_string(),
        "--iterations".into(),
        iterations.to_string(),
        "--json".into(),
        out.display().to_string(),
    ];
    let (code, stdout, stderr) =
        run_engine_async(args.to_vec(), vec![("CI".into(), "1".into())]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    serde_json::from_str(&std::fs::read_to_string(&out).expect("the --json result"))
        .expect("the result is JSON")
}

/// Start the test server on a free port; returns `ws://127.0.0.1:PORT`.
///
/// Routes: `/echo` greets with `{"type":"hello","n":1}` and answers every JSON frame
/// with `{"type":"echo","body":…}` (a `{"type":"burst","count":N}` frame gets N
/// `tick` events, and `{"type":"emit","events":[…]}` gets those events as they are); `/close-early` closes with 4001 at once; `/garbage` sends non-JSON
/// text and a binary frame; `/silent` never sends; `/refuse` answers HTTP 403;
/// `/bad-schema` greets with a `hello` whose `n` is a string; `/drop` drops TCP;
/// `/nested` sends an event typed by `meta.kind`; `/subprotocols` selects the first
/// subprotocol offered and reports the whole list in its `hello`; `/flood/N` sends N
/// `tick` events (`i` from 0) at once, as fast as the socket takes them; `/big/N`
/// greets with a `hello` carrying N more bytes (`/big-invalid/N`: with `n` a string).
pub async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    format!("ws://{addr}")
}

/// The same routes over TLS (certificate for 127.0.0.1 signed by `fixtures/ca.pem`);
/// returns `wss://127.0.0.1:PORT`.
pub async fn start_tls_server() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(format!("{dir}/server.pem")).unwrap(),
    ))
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(format!("{dir}/server.key")).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls).await;
                }
            });
        }
    });
    format!("wss://127.0.0.1:{}", addr.port())
}

pub async fn serve<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let protocols = Arc::new(Mutex::new(String::new()));
    let offered = protocols.clone();
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        *seen.lock().unwrap() = req.uri().path().to_string();
        if req.uri().path() == "/refuse" {
            let mut refusal = ErrorResponse::new(Some("go away".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        // Select the first subprotocol offered, as a server must; remember them all.
        if let Some(list) = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
        {
            *offered.lock().unwrap() = list.to_string();
            if let Some(first) = list.split(',').next() {
                if let Ok(value) = first.trim().parse() {
                    resp.headers_mut().insert("sec-websocket-protocol", value);
                }
            }
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let route = path.lock().unwrap().clone();
    let big = |prefix: &str, n: serde_json::Value| {
        let size: usize = route.strip_prefix(prefix)?.parse().ok()?;
        let hello = serde_json::json!({"type": "hello", "n": n, "blob": "x".repeat(size)});
        Some(hello.to_string())
    };
    if let Some(hello) = big("/big/", 1.into()).or_else(|| big("/big-invalid/", "one".into())) {
        let _ = ws.send(Message::text(hello)).await;
        while ws.next().await.is_some() {}
        return;
    }
    if let Some(count) = route.strip_prefix("/flood/") {
        flood(&mut ws, count.parse().unwrap_or(0)).await;
        while ws.next().await.is_some() {}
        return;
    }
    match route.as_str() {
        "/close-early" => {
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::from(4001),
                    reason: "bye early".into(),
                }))
                .await;
        }
        "/garbage" => {
            let _ = ws.send(Message::text("this is not json {")).await;
            let _ = ws.send(Message::binary(vec![0u8, 159, 146, 150])).await;
            while ws.next().await.is_some() {}
        }
        "/silent" => while ws.next().await.is_some() {},
        "/drop" => drop(ws),
        "/nested" => {
            // An application whose event type is nested (`meta.kind`), not `type`.
            let _ = ws
                .send(Message::text(r#"{"meta":{"kind":"greeting"},"text":"hi"}"#))
                .await;
            while ws.next().await.is_some() {}
        }
        "/subprotocols" => {
            let offered = protocols.lock().unwrap().clone();
            let hello = serde_json::json!({"type": "hello", "protocols": offered});
            let _ = ws.send(Message::text(hello.to_string())).await;
            while ws.next().await.is_some() {}
        }
        "/bad-schema" => {
            let _ = ws
                .send(Message::text(r#"{"type":"hello","n":"one"}"#))
                .await;
            while ws.next().await.is_some() {}
        }
        _ => {
            let _ = ws.send(Message::text(r#"{"type":"hello","n":1}"#)).await;
            while let Some(Ok(msg)) = ws.next().await {
                let text = match msg {
                    Message::Text(text) => text,
                    // Binary frames come back as they are.
                    Message::Binary(bytes) => {
                        if ws.send(Message::binary(bytes)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    _ => continue,
                };
                let body: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => serde_json::json!(text.to_string()),
                };
                if body["type"] == "emit" {
                    for event in body["events"].as_array().into_iter().flatten() {
                        let _ = ws.send(Message::text(event.to_string())).await;
                    }
                    continue;
                }
                if body["type"] == "burst" {
                    for i in 0..body["count"].as_u64().unwrap_or(0) {
                        let tick = serde_json::json!({"type": "tick", "i": i});
                        if ws.send(Message::text(tick.to_string())).await.is_err() {
                            break;
                        }
                    }
                    continue;
                }
                let reply = serde_json::json!({"type": "echo", "body": body});
                if ws.send(Message::text(reply.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Send `count` `tick` events, flushing in batches (a flush per frame would make the
/// server, not the engine, the bottleneck).
async fn flood<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, count: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..count {
        let tick = format!(r#"{{"type":"tick","i":{i}}}"#);
        if ws.feed(Message::text(tick)).await.is_err() {
            return;
        }
        if i % 1000 == 999 && ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.flush().await;
}

/// What a [`start_observing_server`] route saw of the engine's side of a close.
#[derive(Debug, Clone)]
pub struct Observed {
    pub route: String,
    /// The close frame the client sent (code), and when, from the server's close
    /// frame (or its bad frame) on.
    pub client_close: Option<(u16, std::time::Duration)>,
    /// When the client closed TCP, from the same start.
    pub tcp_closed: Option<std::time::Duration>,
}

/// A server whose routes misbehave or close, and report what the client did:
/// `/close/CODE` closes with CODE and reason `server going away`; `/invalid-utf8` sends
/// a text frame that is not UTF-8; `/protocol-error` sends a frame with a reserved
/// opcode. Each reports one [`Observed`] when the connection is over.
pub async fn start_observing_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<Observed>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(observed) = observe(stream).await {
                    let _ = tx.send(observed);
                }
            });
        }
    });
    (format!("ws://{addr}"), rx)
}

async fn observe(stream: tokio::net::TcpStream) -> Option<Observed> {
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        *seen.lock().unwrap() = req.uri().path().to_string();
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .ok()?;
    let route = path.lock().unwrap().clone();
    let bad = |data: &[u8], opcode| {
        Message::Frame(Frame::message(data.to_vec(), OpCode::Data(opcode), true))
    };
    let message = match route.as_str() {
        "/invalid-utf8" => bad(&[b'{', 0xff, 0xfe, b'}'], Data::Text),
        "/protocol-error" => bad(b"x", Data::Reserved(3)),
        close => Message::Close(Some(CloseFrame {
            code: CloseCode::from(close.strip_prefix("/close/")?.parse::<u16>().ok()?),
            reason: "server going away".into(),
        })),
    };
    let started = std::time::Instant::now();
    ws.send(message).await.ok()?;
    let mut observed = Observed {
        route,
        client_close: None,
        tcp_closed: None,
    };
    let limit = std::time::Duration::from_secs(10);
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                observed.client_close = Some((code, started.elapsed()));
            }
        }
    })
    .await;
    // The WebSocket is over; the client closing TCP shows as end of file (or a reset).
    let mut buf = [0u8; 64];
    let raw = ws.get_mut();
    let eof = tokio::time::timeout(limit, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    if eof.is_ok() {
        observed.tcp_closed = Some(started.elapsed());
    }
    Some(observed)
}

/// A folder with `engine.yaml` and specs.
pub struct Suite {
    pub dir: tempfile::TempDir,
}

/// What the test sees of one scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
    /// Rendered failure (and teardown failures), empty when it passed.
    pub failure: String,
    /// The kind of the last attempt's failure.
    pub kind: Option<engine::diagnostic::FailureKind>,
    pub ids: serde_json::Map<String, serde_json::Value>,
    /// The steps of the last attempt, with their durations.
    pub steps: Vec<engine::runner::scenario::StepRecord>,
}

impl Outcome {
    /// Duration of the step at this index of the last attempt.
    #[track_caller]
    pub fn step_duration(&self, index: usize) -> std::time::Duration {
        let step = self
            .steps
            .iter()
            .find(|s| s.index == index)
            .unwrap_or_else(|| panic!("{}: no step {index} ran", self.name));
        std::time::Duration::from_secs_f64(step.duration_ms / 1000.0)
    }
}

impl Outcome {
    /// Fail the test with the scenario's rendered failure unless it passed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert_eq!(
            self.verdict,
            Verdict::Passed,
            "{}: {}",
            self.name,
            self.failure
        );
    }
}

struct Collector(Arc<Mutex<Vec<Outcome>>>);

impl Listener for Collector {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        if let RunEvent::ScenarioFinished(report) = event {
            let last = report.last();
            let failure: String = last
                .failure
                .iter()
                .chain(last.teardown_failures.iter())
                .map(|d| d.render(false))
                .collect();
            self.0.lock().unwrap().push(Outcome {
                name: report.planned.scenario.name.clone(),
                verdict: report.verdict,
                failure,
                kind: last.failure.as_ref().map(|d| d.kind),
                ids: last.ids.clone(),
                steps: last.steps.clone(),
            });
        }
    }
}

impl Suite {
    /// A suite whose env has WS_URL set to `ws_url` and the shared DB/Redis URLs.
    pub fn new(ws_url: &str, extra_config: &str) -> Suite {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "env:\n  WS_URL: {ws_url}\n  DATABASE_URL: {DATABASE_URL}\n  REDIS_URL: {REDIS_URL}\n  SECRET: test-secret-value\nsecrets: [SECRET]\nids:\n  user: {{ prefix: \"usr_\" }}\n  item: {{ prefix: \"it_\", format: hex }}\nauth:\n  jwt: {{ secret: \"{{{{ env.SECRET }}}}\" }}\ntimeouts: {{ step: 2s, scenario: 20s }}\n{extra_config}"
        );
        std::fs::write(dir.path().join("engine.yaml"), config).expect("write config");
        Suite { dir }
    }

    pub fn spec(&self, file: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, yaml).expect("write spec");
        path
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Load and run every spec; panics on spec errors (use `load_errors` for those).
    pub async fn run(&self) -> Vec<Outcome> {
        self.run_jobs(4).await
    }

    /// [`Suite::run`] with `jobs` scenarios at a time.
    pub async fn run_jobs(&self, jobs: usize) -> Vec<Outcome> {
        let loaded = engine::discover::load_all(&[self.path()]).expect("discover");
        assert!(
            loaded.problems.is_empty(),
            "spec problems: {}",
            loaded
                .problems
                .iter()
                .map(|d| d.render(false))
                .collect::<String>()
        );
        let plan: Vec<Planned> = loaded
            .scenarios
            .into_iter()
            .map(|(scenario, config)| Planned {
                scenario,
                config,
                iteration: 0,
            })
            .collect();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut listeners: Vec<Box<dyn Listener>> = vec![Box::new(Collector(outcomes.clone()))];
        let options = RunOptions {
            jobs,
            retries: 0,
            fail_fast: false,
            flaky_fails: false,
            report_frames: Default::default(),
            start_order: Vec::new(),
        };
        runner::run(plan, options, Resources::new(4), &mut listeners).await;
        let mut out = outcomes.lock().unwrap().clone();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Problems found when loading (spec errors), rendered.
    pub fn load_errors(&self) -> Vec<String> {
        let loaded = engine::discover::load_all(&[self.path()]).expect("discover");
        loaded.problems.iter().map(|d| d.render(false)).collect()
    }
}

/// Run the `engine` binary with `NO_COLOR` set and `GITHUB_ACTIONS` removed (unless
/// `envs` sets them); (exit code, stdout, stderr).
pub fn run_engine(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_engine"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run engine");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`run_engine`] off the async runtime's threads (the binary may talk to servers the
/// test runs on this runtime).
pub async fn run_engine_async(
    args: Vec<String>,
    envs: Vec<(String, String)>,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_engine(&args, &envs)
    })
    .await
    .expect("join")
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379 must be reachable for these tests")
}

/// A TCP port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fresh() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Specs whose frames break or lack event schemas on the `/echo` and `/bad-schema` routes
/// (`good format` passes, `bad format` has a bad date-time, `undocumented` gets a `tick`,
/// `bad hello` a `hello` with a string `n`): the same for every source of schemas.
pub fn schema_specs(suite: &Suite) {
    suite.spec(
        "bad_format.yaml",
        "name: bad format\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - send: { json: { type: say, at: yesterday } }\n  - expect: { event: echo }\n",
    );
    suite.spec(
        "good_format.yaml",
        "name: good format\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - send: { json: { type: say, at: \"2026-11-25T16:00:00Z\" } }\n  - expect: { event: echo }\n",
    );
    suite.spec(
        "undocumented.yaml",
        "name: undocumented\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - send: { json: { type: burst, count: 1 } }\n  - expect: { match: { i: 0 } }\n",
    );
    suite.spec(
        "bad_hello.yaml",
        "name: bad hello\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/bad-schema\" }\n  - expect: { event: hello }\n",
    );
}
