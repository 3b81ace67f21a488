//! socket.io (Engine.IO v4 / Socket.IO v5) against real servers, in-process:
//! socketioxide over axum, backed by PostgreSQL and Redis (a chat message is a row and
//! a counter), with namespaces behind an auth check, acknowledgements both ways and
//! binary attachments; and a scripted peer that misbehaves (stops pinging, sends
//! packets the protocol does not allow). One `engine load` run goes over socket.io.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{fresh, Suite};
use engine::runner::Verdict;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Frame;

#[derive(Clone)]
struct State {
    db: sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
}

/// `chat(room, text)`: a row, a counter, a `message` to the room, an acknowledgement.
async fn chat(state: &State, socket: &SocketRef, room: String, text: String) -> Value {
    let id = format!("msg_{}", fresh());
    let inserted =
        sqlx::query("INSERT INTO engine_sio_messages (id, room, text) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&room)
            .bind(&text)
            .execute(&state.db)
            .await;
    if let Err(e) = inserted {
        return json!({"ok": false, "error": e.to_string()});
    }
    let mut redis = state.redis.clone();
    let count: i64 = redis::cmd("INCR")
        .arg(format!("engine_sio:{room}:count"))
        .query_async(&mut redis)
        .await
        .unwrap_or(-1);
    let message = json!({"id": id, "room": room, "text": text, "count": count});
    let _ = socket.within(room).emit("message", &message).await;
    json!({"ok": true, "id": id, "count": count})
}

/// The handlers of `/`.
fn on_root(state: State) -> impl Fn(SocketRef) -> std::future::Ready<()> + Clone + Send + Sync {
    move |socket: SocketRef| {
        let _ = socket.emit("welcome", &json!({"sid": socket.id.to_string()}));
        socket.on(
            "join",
            async |socket: SocketRef, Data(room): Data<String>, ack: AckSender| {
                socket.join(room.clone());
                let _ = ack.send(&json!({"joined": room}));
            },
        );
        let chat_state = state.clone();
        socket.on(
            "chat",
            async move |socket: SocketRef,
                        Data((room, text)): Data<(String, String)>,
                        ack: AckSender| {
                let answer = chat(&chat_state, &socket, room, text).await;
                let _ = ack.send(&answer);
            },
        );
        // `count_to(n)`: `tick` {n: 1} … {n: n}.
        socket.on("count_to", async |socket: SocketRef, Data(n): Data<u32>| {
            for i in 1..=n {
                let _ = socket.emit("tick", &json!({"n": i}));
            }
        });
        // `confirm_me(order)`: asks the client to confirm; its answer goes to Redis and
        // comes back as `confirmed`.
        let confirm_state = state.clone();
        socket.on(
            "confirm_me",
            async move |socket: SocketRef, Data(order): Data<String>| {
                let asked = socket.emit_with_ack::<_, Value>("confirm", &json!({"order": order}));
                let answer = match asked {
                    Ok(stream) => match stream.await {
                        Ok(answer) => answer,
                        Err(e) => json!({"error": e.to_string()}),
                    },
                    Err(e) => json!({"error": e.to_string()}),
                };
                let mut redis = confirm_state.redis.clone();
                let _: Result<(), _> = redis::cmd("SET")
                    .arg(format!("engine_sio:confirm:{order}"))
                    .arg(answer.to_string())
                    .query_async(&mut redis)
                    .await;
                let _ = socket.emit("confirmed", &answer);
            },
        );
        // `upload(name, bytes)`: acknowledged with the size and the bytes reversed, and
        // a `download` event carrying them too.
        socket.on(
            "upload",
            async |socket: SocketRef, Data((name, data)): Data<(String, Bytes)>, ack: AckSender| {
                let reversed: Vec<u8> = data.iter().rev().copied().collect();
                let reversed = Bytes::from(reversed);
                let _ = socket.emit("download", &(json!({"name": name}), reversed.clone()));
                let _ = ack.send(&(json!({"name": name, "size": data.len()}), reversed));
            },
        );
        socket.on("kick", async |socket: SocketRef| {
            let _ = socket.disconnect();
        });
        std::future::ready(())
    }
}

/// `/admin` accepts only `auth: {token: let-me-in}`.
async fn admin_auth(Data(auth): Data<Value>) -> Result<(), &'static str> {
    match auth.get("token").and_then(Value::as_str) {
        Some("let-me-in") => Ok(()),
        _ => Err("unauthorized"),
    }
}

/// socketioxide over axum on a free port; returns `ws://127.0.0.1:PORT`.
async fn start_socketioxide() -> String {
    let (db, redis) = common::stateful_services(
        "CREATE TABLE IF NOT EXISTS engine_sio_messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, text TEXT NOT NULL)",
    )
    .await;
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_root(State { db, redis }));
    io.ns(
        "/admin",
        (async |socket: SocketRef, Data(auth): Data<Value>| {
            let _ = socket.emit("hello", &json!({"role": "admin"}));
            socket.on("whoami", async move |ack: AckSender| {
                let _ = ack.send(&json!({"auth": auth}));
            });
        })
        .with(admin_auth),
    );
    let app = axum::Router::new().layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("ws://{addr}")
}

#[tokio::test]
async fn emits_events_and_acknowledgements_meet_postgres_and_redis() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "chat.yaml",
        r##"
name: socket.io chat
ids: { room: item }
steps:
  - connect: { name: alice, url: "{{ env.WS_URL }}", protocol: socket.io }
  - expect: { on: alice, event: welcome, match: [{ sid: "#string" }], capture: { alice_sid: "$[0].sid" } }
  - connect: { name: bob, url: "{{ env.WS_URL }}", protocol: socket.io }
  - expect: { on: bob, event: welcome }
  - emit: { on: alice, event: join, args: ["{{ ids.room }}"], ack: { match: [{ joined: "{{ ids.room }}" }] } }
  - emit: { on: bob, event: join, args: ["{{ ids.room }}"], ack: true }
  - emit:
      on: alice
      event: chat
      args: ["{{ ids.room }}", hi]
      ack: { match: [{ ok: true, count: 1 }], capture: { id: "$[0].id" } }
  - expect: { on: bob, event: message, match: [{ id: "{{ vars.id }}", room: "{{ ids.room }}", text: hi, count: 1 }] }
  - expect: { on: alice, event: message, match: [{ id: "{{ vars.id }}" }], exact: false }
  - assert_db:
      query: "SELECT room, text FROM engine_sio_messages WHERE id = $1"
      params: ["{{ vars.id }}"]
      row: { room: "{{ ids.room }}", text: hi }
  - assert_redis: { key: "engine_sio:{{ ids.room }}:count", string: "1" }
  - assert: { value: "{{ vars.alice_sid }}", match: "#regex ^.+$" }
  # count, strict sequence, unordered and expect_none over socket.io events.
  - emit: { on: bob, event: count_to, args: [3] }
  - expect: { on: bob, event: tick, count: 3 }
  - emit: { on: bob, event: count_to, args: [3] }
  - expect:
      on: bob
      strict: true
      sequence:
        - { event: tick, match: [{ n: 1 }] }
        - { event: tick, match: [{ n: 2 }] }
        - { event: tick, match: [{ n: 3 }] }
  - emit: { on: bob, event: count_to, args: [2] }
  - expect: { on: bob, unordered: [{ event: tick, match: [{ n: 2 }] }, { event: tick, match: [{ n: 1 }] }] }
  - expect_none: { on: bob, event: tick, during: 100ms }
  - expect_none: { on: alice, event: message, during: 100ms }
  # A server emit that asks for an acknowledgement, answered by the engine.
  - emit: { on: alice, event: confirm_me, args: ["{{ ids.room }}"] }
  - expect: { on: alice, event: confirm, match: [{ order: "{{ ids.room }}" }], ack: [{ accepted: true }] }
  - expect: { on: alice, event: confirmed, match: [{ accepted: true }] }
  - assert_redis: { key: "engine_sio:confirm:{{ ids.room }}", string: '{"accepted":true}' }
teardown:
  - sql: "DELETE FROM engine_sio_messages WHERE room = '{{ ids.room }}'"
  - redis: [DEL, "engine_sio:{{ ids.room }}:count", "engine_sio:confirm:{{ ids.room }}"]
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    // Teardown does not wait long for socketioxide, which never answers a close frame.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn namespaces_connect_with_auth_and_a_refusal_fails_the_connect_clearly() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "admin.yaml",
        r##"
name: admin namespace
steps:
  - connect:
      url: "{{ env.WS_URL }}"
      protocol: socket.io
      namespaces: ["/", { name: /admin, auth: { token: let-me-in } }]
  - expect: { event: hello, namespace: /admin, match: [{ role: admin }] }
  - expect: { event: welcome, namespace: / }
  - emit: { event: whoami, namespace: /admin, ack: { match: [{ auth: { token: let-me-in } }], exact: true } }
"##,
    );
    suite.spec(
        "refused.yaml",
        r##"
name: refused namespace
steps:
  - connect:
      url: "{{ env.WS_URL }}"
      protocol: socket.io
      namespaces: [{ name: /admin, auth: { token: nope } }]
"##,
    );
    suite.spec(
        "not-connected.yaml",
        r##"
name: emit to a namespace not connected
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit: { event: whoami, namespace: /admin }
"##,
    );
    suite.spec(
        "steps.yaml",
        r##"
name: namespace steps
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io, namespaces: [] }
  - namespace: { connect: /admin, auth: { token: nope }, refused: { message: unauthorized } }
  - namespace: { connect: /admin, auth: { token: let-me-in } }
  - expect: { event: hello, namespace: /admin }
  - namespace: { connect: / }
  - expect: { event: welcome, namespace: / }
  - emit: { event: whoami, namespace: /admin, ack: true }
  - namespace: { disconnect: /admin }
  - emit: { event: count_to, args: [1] }
  - expect: { event: tick }
"##,
    );
    suite.spec(
        "refused-step.yaml",
        r##"
name: namespace step refused
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - namespace: { connect: /admin, auth: { token: nope } }
"##,
    );
    suite.spec(
        "after-disconnect.yaml",
        r##"
name: emit after the namespace was disconnected
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io, namespaces: ["/", { name: /admin, auth: { token: let-me-in } }] }
  - namespace: { disconnect: /admin }
  - emit: { event: whoami, namespace: /admin }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
    by_name("namespace steps").assert_passed();
    let failure = |name: &str, wanted: &str| {
        let outcome = by_name(name);
        assert_eq!(outcome.verdict, Verdict::Failed, "{name}");
        assert!(
            outcome.failure.contains(wanted),
            "{name}: {wanted}\n{}",
            outcome.failure
        );
    };
    failure(
        "namespace step refused",
        r#"namespace `/admin` on `default` refused the connection: {"message":"unauthorized"}"#,
    );
    failure(
        "emit after the namespace was disconnected",
        "on `default`: namespace `/admin` was disconnected",
    );
    by_name("admin namespace").assert_passed();
    failure(
        "emit to a namespace not connected",
        "namespace `/admin` is not connected (connected: /)",
    );
    let refused = by_name("refused namespace");
    assert_eq!(refused.verdict, Verdict::Failed);
    assert_eq!(
        refused.kind,
        Some(engine::diagnostic::FailureKind::Refused),
        "{}",
        refused.failure
    );
    assert!(
        refused.failure.contains(
            r#"the server refused to open `default`: namespace `/admin` refused the connection: {"message":"unauthorized"}"#
        ),
        "{}",
        refused.failure
    );
}

#[tokio::test]
async fn binary_attachments_go_both_ways() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "binary.yaml",
        r##"
name: binary
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit:
      event: upload
      args: [a.bin, { $binary: aGVsbG8= }]
      ack: { match: [{ name: a.bin, size: 5 }, { $binary: b2xsZWg= }], exact: true }
  - expect: { event: download, match: [{ name: a.bin }, { $binary: b2xsZWg= }] }
"##,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
}

#[tokio::test]
async fn the_servers_disconnect_and_a_wrong_expectation_show_decoded_and_raw() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "kicked.yaml",
        r##"
name: kicked
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit: { event: kick }
  - expect: { event: disconnect, match: [io server disconnect] }
"##,
    );
    suite.spec(
        "wrong.yaml",
        r##"
name: wrong tick
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit: { event: count_to, args: [1] }
  - expect: { event: tick, match: [{ n: 2 }], within: 300ms }
"##,
    );
    suite.spec(
        "gone.yaml",
        r##"
name: waiting after a kick
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit: { event: kick }
  - expect: { event: tick, within: 1s }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
    by_name("kicked").assert_passed();
    let wrong = by_name("wrong tick");
    assert_eq!(wrong.verdict, Verdict::Failed);
    for text in [
        "no `tick` matching [{\"n\":2}] on `default` within 300ms",
        r#"{"event":"tick","args":[{"n":1}]}"#,
        r#"raw frame: 42["tick",{"n":1}]"#,
    ] {
        assert!(wrong.failure.contains(text), "{text}\n{}", wrong.failure);
    }
    let gone = by_name("waiting after a kick");
    assert_eq!(gone.verdict, Verdict::Failed);
    assert!(
        gone.failure
            .contains(r#"{"event":"disconnect","args":["io server disconnect"]}"#),
        "{}",
        gone.failure
    );
}

#[tokio::test]
async fn load_mode_runs_over_socket_io() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "load.yaml",
        r##"
name: chat under load
ids: { room: item }
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - expect: { event: welcome }
  - emit: { event: join, args: ["{{ ids.room }}"], ack: true }
  - emit: { event: chat, args: ["{{ ids.room }}", hi], ack: { match: [{ ok: true, count: 1 }] } }
  - expect: { event: message, match: [{ room: "{{ ids.room }}", count: 1 }] }
teardown:
  - sql: "DELETE FROM engine_sio_messages WHERE room = '{{ ids.room }}'"
  - redis: [DEL, "engine_sio:{{ ids.room }}:count"]
"##,
    );
    let result = common::load_passes(&spec, 3, 12).await;
    assert_eq!(result["iterations"]["count"], 12);
    assert_eq!(result["iterations"]["failed"], 0);
    assert_eq!(result["connections"]["opened"], 12);
    // Per iteration at least the handshake, the namespace's CONNECT, the welcome, two
    // acknowledgements and the message (socketioxide may ping at once, too).
    let received = result["frames"]["received"].as_u64().unwrap();
    assert!(received >= 72, "{result}");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    assert!(
        steps.iter().all(|s| s["duration"]["count"] == 12),
        "{result}"
    );
    assert_eq!(steps[3]["label"], "#4 emit (line 8)");
}

/// A scripted Socket.IO peer, chosen by path (each hands out pingInterval 300 ms and
/// pingTimeout 200 ms, but `/deaf`: 25 s and 20 s): `/deaf` accepts the namespace and
/// then stops reading (it never answers a close frame); `/pinging` pings every 250 ms
/// for 1.5 s, then emits `still_here`; `/no-ping` never pings; `/ping` pings right after the namespace
/// connect and emits `ponged` only once the pong came; `/reserved` emits a `connect`
/// event (reserved); `/bad-ack` acknowledges an id the client never used; `/garbage`
/// sends an Engine.IO packet of unknown type; `/stray-binary` sends a binary frame no
/// packet announced. Returns `ws://127.0.0.1:PORT` and the frames each peer saw.
async fn start_scripted_peer() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let all = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let all = all.clone();
            tokio::spawn(async move {
                let path = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                let route = path.clone();
                #[allow(clippy::result_large_err)]
                let callback =
                    move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                        *route.lock().unwrap() = req.uri().to_string();
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let uri = path.lock().unwrap().clone();
                all.lock().unwrap().push(format!("GET {uri}"));
                let script = uri.split('?').next().unwrap_or_default().to_string();
                let (interval, timeout) = if script == "/deaf/" {
                    (25_000, 20_000)
                } else {
                    (300, 200)
                };
                let open = json!({"sid": "s1", "upgrades": [], "pingInterval": interval, "pingTimeout": timeout, "maxPayload": 1000000});
                let _ = ws.send(Frame::text(format!("0{open}"))).await;
                while let Some(Ok(frame)) = ws.next().await {
                    let Frame::Text(text) = frame else { continue };
                    all.lock().unwrap().push(format!("{script} {text}"));
                    let out: Vec<Frame> = match (script.as_str(), text.as_str()) {
                        (_, "40") => match script.as_str() {
                            "/ping/" => vec![Frame::text(r#"40{"sid":"n1"}"#), Frame::text("2")],
                            "/reserved/" => vec![
                                Frame::text(r#"40{"sid":"n1"}"#),
                                Frame::text(r#"42["connect"]"#),
                            ],
                            "/bad-ack/" => {
                                vec![Frame::text(r#"40{"sid":"n1"}"#), Frame::text(r#"437[]"#)]
                            }
                            "/garbage/" => {
                                vec![Frame::text(r#"40{"sid":"n1"}"#), Frame::text("9nope")]
                            }
                            "/stray-binary/" => vec![
                                Frame::text(r#"40{"sid":"n1"}"#),
                                Frame::binary(vec![1u8, 2, 3]),
                            ],
                            _ => vec![Frame::text(r#"40{"sid":"n1"}"#)],
                        },
                        ("/ping/", "3") => vec![Frame::text(r#"42["ponged"]"#)],
                        _ => vec![],
                    };
                    for frame in out {
                        let _ = ws.send(frame).await;
                    }
                    if script == "/pinging/" && text == "40" {
                        // Pings well inside the 500 ms window for 1.5 s, then emits.
                        for _ in 0..6 {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            let _ = ws.send(Frame::text("2")).await;
                        }
                        let _ = ws.send(Frame::text(r#"42["still_here"]"#)).await;
                    }
                    if script == "/deaf/" {
                        // Holds the connection without reading: no close answer.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            });
        }
    });
    (format!("ws://{addr}"), seen)
}

#[tokio::test]
async fn a_silent_or_misbehaving_server_fails_clearly_within_the_deadline() {
    let (url, seen) = start_scripted_peer().await;
    let suite = Suite::new(&url, "");
    let spec = |name: &str, path: &str, expect: &str| {
        suite.spec(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\nsteps:\n  - connect: {{ url: \"{{{{ env.WS_URL }}}}{path}\", protocol: socket.io, within: 1s }}\n  - expect: {expect}\n"
            ),
        );
    };
    spec("ponged", "/ping/", "{ event: ponged }");
    // Each ping restarts the 500 ms window: the connection outlives it three times over.
    spec("pinging", "/pinging/", "{ event: still_here, within: 3s }");
    spec("no-ping", "/no-ping/", "{ event: never, within: 5s }");
    spec("reserved", "/reserved/", "{ event: never, within: 5s }");
    spec("bad-ack", "/bad-ack/", "{ event: never, within: 5s }");
    spec("garbage", "/garbage/", "{ event: never, within: 5s }");
    spec(
        "stray-binary",
        "/stray-binary/",
        "{ event: never, within: 5s }",
    );
    let started = Instant::now();
    let outcomes = suite.run_jobs(8).await;
    // Every failure came long before the 5 s deadlines of its expectation.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
    by_name("ponged").assert_passed();
    by_name("pinging").assert_passed();
    let failure = |name: &str, wanted: &str| {
        let outcome = by_name(name);
        assert_eq!(outcome.verdict, Verdict::Failed, "{name}");
        assert!(
            outcome.failure.contains(wanted),
            "{name}: {wanted}\n{}",
            outcome.failure
        );
    };
    failure(
        "no-ping",
        "was closed by the engine with code 1001: ping timeout: the server sent no Engine.IO ping within 500ms (pingInterval 300 ms + pingTimeout 200 ms from its handshake)",
    );
    failure(
        "reserved",
        r#"was closed by the engine with code 1002: the server broke Socket.IO: a Socket.IO EVENT whose payload is an event name the protocol reserves: 42["connect"]"#,
    );
    failure(
        "bad-ack",
        "the server broke Socket.IO: an acknowledgement for id 7, which no emit in `/` is waiting for: 437[]",
    );
    failure(
        "garbage",
        "the server broke Socket.IO: an Engine.IO packet of unknown type `9`: 9nope",
    );
    failure(
        "stray-binary",
        "the server broke Socket.IO: a binary frame that no packet announced: <binary 3 bytes>",
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|f| f.starts_with("GET /ping/?EIO=4&transport=websocket")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|f| f == "/ping/ 3"), "{seen:?}");
}

#[tokio::test]
async fn teardown_does_not_wait_long_for_a_server_that_never_answers_the_close() {
    let (url, _) = start_scripted_peer().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "deaf.yaml",
        "name: deaf\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/deaf/\", protocol: socket.io }\n",
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    // The teardown budget is 15 s, half of it for close answers; socket.io waits 500 ms.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn event_schemas_validate_an_events_arguments_by_its_name() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "events: { schemas: schemas }\n");
    suite.spec(
        "schemas/tick.json",
        r#"{"type":"array","prefixItems":[{"type":"object","required":["n"],"properties":{"n":{"type":"integer","maximum":1}}}],"minItems":1,"maxItems":1}"#,
    );
    suite.spec(
        "ticks.yaml",
        r##"
name: ticks
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - emit: { event: count_to, args: [2] }
  - expect: { event: tick, match: [{ n: 1 }] }
  - expect: { event: tick, match: [{ n: 2 }] }
"##,
    );
    let outcomes = suite.run().await;
    let ticks = &outcomes[0];
    assert_eq!(ticks.verdict, Verdict::Failed);
    assert_eq!(
        ticks.kind,
        Some(engine::diagnostic::FailureKind::SchemaViolation),
        "{}",
        ticks.failure
    );
    // The first tick fits its schema; the second breaks `maximum` in its first argument.
    for wanted in [
        "event `tick` violates",
        "tick.json: at `/0/n`: value is greater than the maximum of 1",
    ] {
        assert!(
            ticks.failure.contains(wanted),
            "{wanted}\n{}",
            ticks.failure
        );
    }
}

#[tokio::test]
async fn the_json_report_keeps_each_message_decoded_and_its_raw_frames() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "report.yaml",
        r##"
name: report
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io }
  - expect: { event: welcome }
  - emit: { event: upload, args: [a.bin, { $binary: aGVsbG8= }], ack: true }
"##,
    );
    let json = suite.path().join("report.json");
    let args = vec![
        "run".to_string(),
        suite.path().display().to_string(),
        "--json".into(),
        json.display().to_string(),
        "--report-frames".into(),
        "all".into(),
    ];
    let (code, stdout, stderr) = common::run_engine_async(args, vec![]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let frames = report["scenarios"][0]["attempts"][0]["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    let find = |direction: &str, data_prefix: &str| {
        frames
            .iter()
            .find(|f| {
                f["direction"] == direction
                    && f["data"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(data_prefix)
            })
            .unwrap_or_else(|| panic!("no {direction} {data_prefix} in {frames:?}"))
    };
    let welcome = find("received", r#"{"event":"welcome","args":[{"sid":"#);
    assert!(welcome["raw"]
        .as_str()
        .unwrap()
        .starts_with(r#"42["welcome",{"sid":"#));
    let upload = find(
        "sent",
        r#"{"emit":"upload","args":["a.bin",{"$binary":"aGVsbG8="}]}"#,
    );
    assert_eq!(
        upload["raw"],
        "451-0[\"upload\",\"a.bin\",{\"_placeholder\":true,\"num\":0}]\n<binary 5 bytes>"
    );
    let ack = find(
        "received",
        r#"{"ack":"upload","args":[{"name":"a.bin","size":5},{"$binary":"b2xsZWg="}]}"#,
    );
    assert!(ack["raw"].as_str().unwrap().ends_with("\n<binary 5 bytes>"));
    // The handshake and the pong are in the transcript as they went.
    find("received", "0{\"sid\":");
    find("sent", "40");
}

#[tokio::test]
async fn connect_acks_answer_the_servers_acknowledgement_requests_at_once() {
    let url = start_socketioxide().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "auto.yaml",
        r##"
name: automatic acknowledgement
ids: { order: item }
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io, acks: { confirm: [{ auto: true }] } }
  - emit: { event: confirm_me, args: ["{{ ids.order }}"] }
  # The event still reaches the inbox; the server already has its answer.
  - expect: { event: confirmed, match: [{ auto: true }] }
  - expect: { event: confirm, match: [{ order: "{{ ids.order }}" }] }
  - assert_redis: { key: "engine_sio:confirm:{{ ids.order }}", string: '{"auto":true}' }
teardown:
  - redis: [DEL, "engine_sio:confirm:{{ ids.order }}"]
"##,
    );
    suite.spec(
        "twice.yaml",
        r##"
name: acknowledged twice
ids: { order: item }
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io, acks: { confirm: [1] } }
  - emit: { event: confirm_me, args: ["{{ ids.order }}"] }
  - expect: { event: confirm, ack: [2] }
teardown:
  - redis: [DEL, "engine_sio:confirm:{{ ids.order }}"]
"##,
    );
    suite.spec(
        "binary.yaml",
        r##"
name: binary automatic acknowledgement
steps:
  - connect: { url: "{{ env.WS_URL }}", protocol: socket.io, acks: { confirm: [{ $binary: AAE= }] } }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
    by_name("automatic acknowledgement").assert_passed();
    let failure = |name: &str, wanted: &str| {
        let outcome = by_name(name);
        assert_eq!(outcome.verdict, Verdict::Failed, "{name}");
        assert!(
            outcome.failure.contains(wanted),
            "{name}: {wanted}\n{}",
            outcome.failure
        );
    };
    failure(
        "acknowledged twice",
        "on `default`: `confirm` was already acknowledged by `connect.acks`",
    );
    failure(
        "binary automatic acknowledgement",
        "`acks.confirm` has a binary argument",
    );
}
