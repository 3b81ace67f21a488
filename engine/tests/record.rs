//! `engine record` with the reference backend (in-process, real Postgres and Redis): two
//! clients of one user go through the proxy — one by a bearer JWT, one by an auth
//! message — and chat; the draft it writes names no token or recorded ID, passes
//! `engine check`, and replayed with `engine run` against the same backend passes. And
//! through a `wss://` upstream, subprotocols and the query string pass both ways.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{fresh, run_engine_async};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "record-test-secret";

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a frame within 10s")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Wait for the frame of type `kind`, skipping others.
async fn until(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = next_json(client).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// Start `engine record` towards `upstream`; the child, its stderr, and the address it
/// listens on.
fn start_recorder(
    upstream: &str,
    draft: &std::path::Path,
    extra: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    String,
) {
    let mut recorder = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["record", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .arg("--out")
        .arg(draft)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(recorder.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let proxy = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches(',')
        .to_string();
    (recorder, stderr, proxy)
}

/// SIGINT, then the exit status and the rest of stderr.
async fn stop_recorder(
    recorder: std::process::Child,
    mut stderr: BufReader<std::process::ChildStderr>,
) -> (std::process::ExitStatus, String) {
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(recorder.id() as i32, libc::SIGINT);
    }
    let mut recorder = recorder;
    let status = tokio::task::spawn_blocking(move || recorder.wait())
        .await
        .unwrap()
        .unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    (status, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_upstream_gets_the_clients_subprotocols_and_query() {
    let upstream = common::start_tls_server().await;
    let suite = tempfile::tempdir().unwrap();
    std::fs::write(
        suite.path().join("engine.yaml"),
        "env: {}
",
    )
    .unwrap();
    let draft = suite.path().join("recorded.yaml");
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ca.pem");
    let (recorder, stderr, proxy) = start_recorder(&upstream, &draft, &["--ca-file", ca]);
    let mut request = format!("{proxy}/subprotocols?x=1&y=two")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "chat.v1, other".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "chat.v1",
        "the upstream's choice reaches the client"
    );
    let hello = next_json(&mut client).await;
    assert_eq!(
        hello["protocols"], "chat.v1, other",
        "the offer reaches the upstream"
    );
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    let (status, rest) = stop_recorder(recorder, stderr).await;
    assert!(status.success(), "{rest}");
    let text = std::fs::read_to_string(&draft).unwrap();
    for expected in [
        "\"url\":\"wss://127.0.0.1:",
        "/subprotocols\"",
        "\"query\":{\"x\":\"1\",\"y\":\"two\"}",
        "\"subprotocols\":[\"chat.v1\",\"other\"]",
        "\"ca_file\":",
        "\"event\":\"hello\"",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not in the draft:\n{text}"
        );
    }
    let dir = suite.path().display().to_string();
    let (code, stdout, stderr) = run_engine_async(vec!["run".into(), dir], vec![]).await;
    assert_eq!(code, 0, "engine run:\n{stdout}{stderr}\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_becomes_a_draft_that_checks_and_replays() {
    let backend = backend::run(backend::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: common::DATABASE_URL.into(),
        jwt_secret: SECRET.into(),
        ..Default::default()
    })
    .await
    .expect("the reference backend starts (Postgres and Redis must be reachable)");
    let suite = tempfile::tempdir().unwrap();
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events");
    std::fs::write(
        suite.path().join("engine.yaml"),
        format!(
            "env:\n  WS_URL: ws://{addr}\n  JWT_SECRET: {SECRET}\n  DATABASE_URL: {db}\n  REDIS_URL: {redis}\nsecrets: [JWT_SECRET]\nids:\n  user: {{ prefix: \"usr_\" }}\n  thread: {{ prefix: \"thr_\" }}\n  message: {{ prefix: \"msg_\" }}\nauth:\n  jwt: {{ secret: \"{{{{ env.JWT_SECRET }}}}\", alg: HS256, expires_in: 5m }}\nevents:\n  type_field: type\n  schemas: {schemas}\n  require_schemas: true\n",
            addr = backend.addr,
            db = common::DATABASE_URL,
            redis = common::REDIS_URL,
        ),
    )
    .unwrap();
    let draft = suite.path().join("recorded.yaml");

    let (recorder, stderr, proxy) = start_recorder(&format!("ws://{}", backend.addr), &draft, &[]);

    // A session: two tabs of one user, a message, its broadcast, a ping.
    let user = format!("usr_{}", uuid::Uuid::new_v4());
    let thread = format!("thr_{}", uuid::Uuid::new_v4());
    let exp = chrono::Utc::now().timestamp() + 300;
    let token = backend::auth::mint_token(SECRET, &user, exp);
    let mut request = format!("{proxy}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("x-client", "record-test".parse().unwrap());
    let (mut tab1, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let ready = until(&mut tab1, "connection_established").await;
    assert_eq!(ready["user_id"], user.as_str());
    let (mut tab2, _) = tokio_tungstenite::connect_async(format!("{proxy}/ws"))
        .await
        .unwrap();
    let auth = json!({"type": "auth", "token": token});
    tab2.send(Message::text(auth.to_string())).await.unwrap();
    until(&mut tab2, "connection_established").await;
    let content = format!("hello {}", fresh());
    let message = json!({"type": "user_message", "thread_id": thread, "content": content});
    tab1.send(Message::text(message.to_string())).await.unwrap();
    let created = until(&mut tab1, "message_created").await;
    assert_eq!(until(&mut tab2, "message_created").await, created);
    tab2.send(Message::text(json!({"type": "ping"}).to_string()))
        .await
        .unwrap();
    until(&mut tab2, "pong").await;
    tab1.close(None).await.unwrap();
    tab2.close(None).await.unwrap();
    // Both closes passed the proxy (each tab got the server's answer).
    while tab1.next().await.is_some() {}
    while tab2.next().await.is_some() {}

    // SIGINT ends the recording and writes the draft.
    let (status, rest) = stop_recorder(recorder, stderr).await;
    assert!(status.success(), "{rest}");
    let text = std::fs::read_to_string(&draft).unwrap();
    println!("{text}");
    for recorded in [token.as_str(), user.as_str(), thread.as_str(), SECRET] {
        assert!(
            !text.contains(recorded),
            "`{recorded}` is in the draft:\n{text}"
        );
    }
    for expected in [
        "\"url\":\"{{ env.WS_URL }}/ws\"",
        "\"as\":\"bearer\"",
        "\"as\":\"message\"",
        "\"x-client\":\"record-test\"",
        "\"thread_id\":\"{{ ids.thread1 }}\"",
        "\"sub\":\"{{ ids.user1 }}\"",
        "\"event\":\"message_created\"",
        "\"connection_id\":\"$.connection_id\"",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not in the draft:\n{text}"
        );
    }

    let dir = suite.path().display().to_string();
    let (code, stdout, stderr) = run_engine_async(vec!["check".into(), dir.clone()], vec![]).await;
    assert_eq!(code, 0, "engine check:\n{stdout}{stderr}\n{text}");
    let (code, stdout, stderr) = run_engine_async(vec!["run".into(), dir], vec![]).await;
    assert_eq!(code, 0, "engine run:\n{stdout}{stderr}\n{text}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
}
