//! graphql-transport-ws (and its legacy predecessor, graphql-ws) against real servers,
//! in-process: async-graphql (over axum)
//! with subscriptions, backed by PostgreSQL and Redis (a mutation inserts a row, bumps
//! a counter and publishes to the room's subscribers); and a scripted peer that
//! misbehaves (pings, GraphQL `error`s, 44xx closes, messages the protocol forbids).

// The handshake callback signature is tungstenite's, not ours.
#![allow(clippy::result_large_err)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::{Context, Object, Schema, SimpleObject, Subscription};
use async_graphql_axum::GraphQLSubscription;
use common::{fresh, Suite};
use engine::runner::Verdict;
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

#[derive(SimpleObject, Clone)]
struct Message {
    id: String,
    room: String,
    text: String,
    /// The room's message count after this one (a Redis counter).
    count: i64,
}

/// What a room subscriber sees: `joined` once it listens, then each message.
#[derive(SimpleObject, Clone)]
struct RoomEvent {
    kind: String,
    message: Option<Message>,
}

struct State {
    db: sqlx::PgPool,
    redis: redis::aio::ConnectionManager,
    posted: broadcast::Sender<Message>,
}

struct Query;

#[Object]
impl Query {
    async fn hello(&self, name: String) -> String {
        format!("hello {name}")
    }
}

struct Mutation;

#[Object]
impl Mutation {
    /// Insert the message, bump the room's counter, publish it.
    async fn post_message(
        &self,
        ctx: &Context<'_>,
        room: String,
        text: String,
    ) -> async_graphql::Result<Message> {
        let state = ctx.data::<State>()?;
        let id = format!("msg_{}", fresh());
        sqlx::query("INSERT INTO engine_gql_messages (id, room, text) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&room)
            .bind(&text)
            .execute(&state.db)
            .await?;
        let mut redis = state.redis.clone();
        let count: i64 = redis::cmd("INCR")
            .arg(format!("engine_gql:{room}:count"))
            .query_async(&mut redis)
            .await?;
        let message = Message {
            id,
            room,
            text,
            count,
        };
        let _ = state.posted.send(message.clone());
        Ok(message)
    }
}

struct Subscription;

#[Subscription]
impl Subscription {
    /// `joined`, then the messages posted to `room`.
    async fn room_events(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> async_graphql::Result<impl Stream<Item = RoomEvent>> {
        let posted = ctx.data::<State>()?.posted.subscribe();
        let joined = RoomEvent {
            kind: "joined".into(),
            message: None,
        };
        let messages = futures_util::stream::unfold((posted, room), |(mut rx, room)| async move {
            loop {
                match rx.recv().await {
                    Ok(m) if m.room == room => {
                        let event = RoomEvent {
                            kind: "message".into(),
                            message: Some(m),
                        };
                        return Some((event, (rx, room)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(futures_util::stream::iter([joined]).chain(messages))
    }

    /// `from`, `from - 1`, … 0, then complete.
    async fn countdown(&self, from: i32) -> impl Stream<Item = i32> {
        futures_util::stream::iter((0..=from).rev())
    }
}

/// async-graphql over axum on a free port at `/graphql`, speaking graphql-transport-ws
/// or the legacy graphql-ws as the client's subprotocol asks; it accepts any
/// `connection_init`. Returns `ws://127.0.0.1:PORT`.
async fn start_async_graphql() -> String {
    let (db, redis) = common::stateful_services(
        "CREATE TABLE IF NOT EXISTS engine_gql_messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, text TEXT NOT NULL)",
    )
    .await;
    let schema = Schema::build(Query, Mutation, Subscription)
        .data(State {
            db,
            redis,
            posted: broadcast::channel(64).0,
        })
        .finish();
    let app = axum::Router::new().route_service("/graphql", GraphQLSubscription::new(schema));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("ws://{addr}")
}

#[tokio::test]
async fn a_subscription_sees_what_a_mutation_wrote_to_postgres_and_redis() {
    let url = start_async_graphql().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "chat.yaml",
        r##"
name: graphql chat
ids: { room: item }
steps:
  - connect:
      name: alice
      url: "{{ env.WS_URL }}/graphql"
      protocol: graphql-transport-ws
      connection_init: { user: alice }
  - subscribe:
      on: alice
      name: room
      query: "subscription OnRoom($room: String!) { roomEvents(room: $room) { kind message { id text count } } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { on: alice, next: room, match: { data: { roomEvents: { kind: joined } } } }
  - connect:
      name: bob
      url: "{{ env.WS_URL }}/graphql"
      protocol: graphql-transport-ws
  - subscribe:
      on: bob
      name: post
      query: "mutation ($room: String!, $text: String!) { postMessage(room: $room, text: $text) { id count } }"
      variables: { room: "{{ ids.room }}", text: hi }
  - expect: { on: bob, next: post, match: { data: { postMessage: { id: "#string", count: 1 } } }, capture: { id: $.data.postMessage.id } }
  - expect: { on: bob, complete: post }
  - expect:
      on: alice
      next: room
      match: { data: { roomEvents: { kind: message, message: { id: "{{ vars.id }}", text: hi, count: 1 } } } }
  - assert_db:
      query: "SELECT room, text FROM engine_gql_messages WHERE id = $1"
      params: ["{{ vars.id }}"]
      row: { room: "{{ ids.room }}", text: hi }
  - assert_redis: { key: "engine_gql:{{ ids.room }}:count", string: "1" }
  # A query and a strict sequence on the same socket as the subscription.
  - subscribe: { on: alice, name: greet, query: "{ hello(name: \"alice\") }" }
  - expect: { on: alice, sequence: [{ next: greet, match: { data: { hello: hello alice } } }, { complete: greet }], strict: true }
  - subscribe: { on: alice, name: count, query: "subscription { countdown(from: 2) }" }
  - expect:
      on: alice
      strict: true
      sequence:
        - { next: count, match: { data: { countdown: 2 } } }
        - { next: count, match: { data: { countdown: 1 } } }
        - { next: count, match: { data: { countdown: 0 } } }
        - { complete: count }
  - expect_none: { on: alice, next: room, during: 100ms }
  # The client ends the room subscription; the name can start a new one.
  - complete: { name: room, on: alice }
  - subscribe:
      on: alice
      name: room
      query: "subscription ($room: String!) { roomEvents(room: $room) { kind } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { on: alice, next: room, count: 1 }
  - subscribe:
      on: bob
      name: post
      query: "mutation ($room: String!) { postMessage(room: $room, text: \"again\") { count } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { on: bob, next: post, match: { data: { postMessage: { count: 2 } } } }
  - expect: { on: alice, next: room, match: { data: { roomEvents: { kind: message } } } }
  - assert_redis: { key: "engine_gql:{{ ids.room }}:count", string: "2" }
teardown:
  - sql: "DELETE FROM engine_gql_messages WHERE room = '{{ ids.room }}'"
  - redis: [DEL, "engine_gql:{{ ids.room }}:count"]
"##,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
}

#[tokio::test]
async fn the_same_steps_speak_the_legacy_graphql_ws_protocol() {
    let url = start_async_graphql().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "legacy.yaml",
        r##"
name: graphql chat over subscriptions-transport-ws
ids: { room: item }
steps:
  - connect:
      url: "{{ env.WS_URL }}/graphql"
      protocol: graphql-ws
      expect_subprotocol: graphql-ws
      connection_init: { user: alice }
  - subscribe:
      name: room
      query: "subscription OnRoom($room: String!) { roomEvents(room: $room) { kind } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { next: room, match: { data: { roomEvents: { kind: joined } } } }
  - subscribe: { name: count, query: "subscription { countdown(from: 1) }" }
  - expect:
      strict: true
      sequence:
        - { next: count, match: { data: { countdown: 1 } } }
        - { next: count, match: { data: { countdown: 0 } } }
        - { complete: count }
  - complete: room
  - expect_none: { next: room, during: 100ms }
"##,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
}

#[tokio::test]
async fn load_mode_runs_over_graphql_transport_ws() {
    let url = start_async_graphql().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "load.yaml",
        r##"
name: graphql chat under load
ids: { room: item }
steps:
  - connect: { url: "{{ env.WS_URL }}/graphql", protocol: graphql-transport-ws, connection_init: { user: vu } }
  - subscribe:
      name: room
      query: "subscription ($room: String!) { roomEvents(room: $room) { kind message { text count } } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { next: room, match: { data: { roomEvents: { kind: joined } } } }
  - subscribe:
      name: post
      query: "mutation ($room: String!) { postMessage(room: $room, text: \"hi\") { count } }"
      variables: { room: "{{ ids.room }}" }
  - expect: { sequence: [{ next: post, match: { data: { postMessage: { count: 1 } } } }, { complete: post }] }
  - expect: { next: room, match: { data: { roomEvents: { kind: message, message: { text: hi, count: 1 } } } } }
  - assert_db:
      query: "SELECT count(*)::int AS n FROM engine_gql_messages WHERE room = $1"
      params: ["{{ ids.room }}"]
      row: { n: 1 }
teardown:
  - sql: "DELETE FROM engine_gql_messages WHERE room = '{{ ids.room }}'"
  - redis: [DEL, "engine_gql:{{ ids.room }}:count"]
"##,
    );
    let result = common::load_passes(&spec, 4, 16).await;
    assert_eq!(result["iterations"]["count"], 16, "{result}");
    assert_eq!(result["iterations"]["failed"], 0, "{result}");
    assert_eq!(result["connections"]["opened"], 16, "{result}");
    // Per iteration at least: connection_ack, the subscription's two nexts, the
    // mutation's next and complete.
    let received = result["frames"]["received"].as_u64().unwrap();
    assert!(received >= 16 * 5, "{result}");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7, "{result}");
    assert!(
        steps.iter().all(|s| s["duration"]["count"] == 16),
        "{result}"
    );
}

#[tokio::test]
async fn a_wrong_expectation_shows_the_decoded_message_and_the_raw_frame() {
    let url = start_async_graphql().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "wrong.yaml",
        r##"
name: wrong greeting
steps:
  - connect: { url: "{{ env.WS_URL }}/graphql", protocol: graphql-transport-ws }
  - subscribe: { name: greet, query: "{ hello(name: \"bob\") }" }
  - expect: { next: greet, match: { data: { hello: hello alice } }, within: 300ms }
"##,
    );
    suite.spec(
        "unknown.yaml",
        r##"
name: unknown operation
steps:
  - connect: { url: "{{ env.WS_URL }}/graphql", protocol: graphql-transport-ws }
  - subscribe: { name: greet, query: "{ hello(name: \"bob\") }" }
  - expect: { next: greeting }
"##,
    );
    let outcomes = suite.run().await;
    let wrong = &outcomes[1];
    assert_eq!(wrong.verdict, Verdict::Failed);
    assert!(
        // The server completed the operation after its one `next`: the wait ends at once.
        wrong
            .failure
            .contains("operation `greet` on `default` completed before `next` of `greet` matching"),
        "{}",
        wrong.failure
    );
    assert!(
        wrong
            .failure
            .contains(r#"{"next":"greet","payload":{"data":{"hello":"hello bob"}}}"#),
        "{}",
        wrong.failure
    );
    assert!(
        wrong.failure.contains(
            r#"raw frame: {"type":"next","id":"1","payload":{"data":{"hello":"hello bob"}}}"#
        ),
        "{}",
        wrong.failure
    );
    let unknown = &outcomes[0];
    assert_eq!(unknown.verdict, Verdict::Failed);
    assert!(
        unknown
            .failure
            .contains("no operation `greeting` was started on `default` (started: greet)"),
        "{}",
        unknown.failure
    );
}

/// What the scripted peer saw of the client: every text frame, and its close code.
#[derive(Default, Debug)]
struct Seen {
    frames: Vec<String>,
    close: Option<u16>,
}

/// A graphql-transport-ws peer that follows a script chosen by its path:
/// `/ok` acknowledges and answers each `subscribe` with one `next` and `complete`;
/// `/ping` pings after the ack and answers a `subscribe` only once it got the pong;
/// `/error` answers each `subscribe` with a GraphQL `error`; `/close/CODE` closes
/// with CODE on the first `subscribe`; `/init-close/CODE` closes with CODE on
/// `connection_init`; `/no-ack` never acknowledges; `/bad-id` answers a `subscribe`
/// with a `next` for an id the client never used; `/refuse` (speaking the legacy
/// graphql-ws when the client offers it) answers `connection_init` with a
/// `connection_error`. Returns the URL and what it saw.
async fn start_scripted_peer() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let all = all.clone();
            tokio::spawn(async move {
                let seen = script(stream).await;
                all.lock().unwrap().push(seen);
            });
        }
    });
    (format!("ws://{addr}"), seen)
}

async fn script(stream: tokio::net::TcpStream) -> Seen {
    let path = Arc::new(Mutex::new(String::new()));
    let route = path.clone();
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        *route.lock().unwrap() = req.uri().path().to_string();
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let spoken = ["graphql-transport-ws", "graphql-ws"]
            .into_iter()
            .find(|wanted| offered.split(',').any(|p| p.trim() == *wanted));
        if let Some(spoken) = spoken {
            resp.headers_mut()
                .insert("sec-websocket-protocol", spoken.parse().unwrap());
        }
        Ok(resp)
    };
    let mut seen = Seen::default();
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return seen;
    };
    let path = path.lock().unwrap().clone();
    let close_on = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|c| c.parse::<u16>().ok())
    };
    let mut ponged = false;
    let mut waiting: Option<String> = None;
    while let Some(Ok(frame)) = ws.next().await {
        let text = match frame {
            Frame::Text(text) => text.to_string(),
            Frame::Close(close) => {
                seen.close = close.map(|c| u16::from(c.code));
                break;
            }
            _ => continue,
        };
        seen.frames.push(text.clone());
        let message: Value = serde_json::from_str(&text).unwrap_or_default();
        let id = message["id"].as_str().unwrap_or_default().to_string();
        let mut out: Vec<Value> = Vec::new();
        let mut close = None;
        match message["type"].as_str().unwrap_or_default() {
            "connection_init" => match close_on("/init-close/") {
                Some(code) => close = Some(code),
                None if path == "/no-ack" => {}
                None if path == "/refuse" => out.push(
                    json!({"type": "connection_error", "payload": {"message": "unknown token"}}),
                ),
                None => {
                    out.push(json!({"type": "connection_ack"}));
                    if path == "/ping" {
                        out.push(json!({"type": "ping"}));
                    }
                }
            },
            "pong" => {
                ponged = true;
                if let Some(id) = waiting.take() {
                    out.push(json!({"id": id, "type": "next", "payload": {"data": {"ponged": true}}}));
                }
            }
            "subscribe" => match path.as_str() {
                "/error" => out.push(json!({"id": id, "type": "error", "payload": [{"message": "Cannot query field \"nope\" on type \"Query\"."}]})),
                "/bad-id" => out.push(json!({"id": "nope", "type": "next", "payload": {"data": {}}})),
                "/ping" if !ponged => waiting = Some(id),
                "/ping" => out.push(json!({"id": id, "type": "next", "payload": {"data": {"ponged": true}}})),
                _ => match close_on("/close/") {
                    Some(code) => close = Some(code),
                    None => {
                        out.push(json!({"id": id, "type": "next", "payload": {"data": {"n": 1}}}));
                        out.push(json!({"id": id, "type": "complete"}));
                    }
                },
            },
            _ => {}
        }
        for message in out {
            let _ = ws.send(Frame::text(message.to_string())).await;
        }
        if let Some(code) = close {
            let _ = ws
                .send(Frame::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: "scripted".into(),
                })))
                .await;
        }
    }
    seen
}

#[tokio::test]
async fn pings_are_answered_and_errors_and_closes_fail_clearly_within_the_deadline() {
    let (url, seen) = start_scripted_peer().await;
    let suite = Suite::new(&url, "");
    let spec = |file: &str, path: &str, expect: &str| {
        suite.spec(
            file,
            &format!(
                r##"
name: {file}
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}{path}", protocol: graphql-transport-ws, connection_init: {{ token: t1 }}, within: 500ms }}
  - subscribe: {{ name: op, query: "subscription {{ n }}", variables: {{ v: 1 }} }}
  - expect: {expect}
"##
            ),
        );
    };
    spec(
        "ok.yaml",
        "/ok",
        "{ sequence: [{ next: op, match: { data: { n: 1 } } }, { complete: op }], strict: true }",
    );
    spec(
        "ping.yaml",
        "/ping",
        "{ next: op, match: { data: { ponged: true } } }",
    );
    spec(
        "error-expected.yaml",
        "/error",
        "{ error: op, match: [{ message: \"#regex ^Cannot query\" }] }",
    );
    spec(
        "error-unexpected.yaml",
        "/error",
        "{ next: op, within: 5s }",
    );
    for code in [4400, 4401, 4403, 4408, 4409, 4429] {
        spec(
            &format!("close-{code}.yaml"),
            &format!("/close/{code}"),
            "{ next: op, within: 5s }",
        );
    }
    spec("init-close.yaml", "/init-close/4403", "{ next: op }");
    spec("no-ack.yaml", "/no-ack", "{ next: op }");
    spec("bad-id.yaml", "/bad-id", "{ next: op, within: 5s }");
    let started = Instant::now();
    let outcomes = suite.run_jobs(16).await;
    // Every failure came long before the 5 s deadlines of its expectation.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
    for passing in ["ok.yaml", "ping.yaml", "error-expected.yaml"] {
        by_name(passing).assert_passed();
    }
    let failure = |name: &str, wanted: &[&str]| {
        let outcome = by_name(name);
        assert_eq!(outcome.verdict, Verdict::Failed, "{name}");
        for text in wanted {
            assert!(
                outcome.failure.contains(text),
                "{name}: {text}\n{}",
                outcome.failure
            );
        }
    };
    failure(
        "error-unexpected.yaml",
        &[
            "operation `op` on `default` failed with a GraphQL `error` before `next` of `op` arrived",
            r#"{"error":"op","payload":[{"message":"Cannot query field \"nope\" on type \"Query\"."}]}"#,
            r#"raw frame: {"id":"1","type":"error""#,
        ],
    );
    let meanings = [
        (4400, "bad request"),
        (4401, "unauthorized"),
        (4403, "forbidden"),
        (4408, "connection initialisation timeout"),
        (4409, "subscriber already exists"),
        (4429, "too many initialisation requests"),
    ];
    for (code, meaning) in meanings {
        failure(
            &format!("close-{code}.yaml"),
            &[&format!(
                "closed with code {code} (scripted) [graphql-transport-ws {code} {meaning}"
            )],
        );
    }
    failure(
        "init-close.yaml",
        &[
            "closed with code 4403 (scripted) [graphql-transport-ws 4403 forbidden",
            "while waiting for `connection_ack`",
        ],
    );
    failure("no-ack.yaml", &["no `connection_ack` on `default` within"]);
    failure(
        "bad-id.yaml",
        &["was closed by the engine with code 4004: the server broke graphql-transport-ws: `next` for id `nope`, which the client never used"],
    );
    // What the peers saw: the init payload, the engine's ids and pong, its 4004 close.
    let seen = seen.lock().unwrap();
    let frames: Vec<&String> = seen.iter().flat_map(|s| &s.frames).collect();
    assert!(frames
        .iter()
        .any(|f| *f == r#"{"type":"connection_init","payload":{"token":"t1"}}"#));
    assert!(frames.iter().any(|f| *f == r#"{"type":"pong"}"#));
    assert!(frames.iter().any(|f| f.contains(r#""id":"1","type":"subscribe","payload":{"query":"subscription { n }","variables":{"v":1}}"#)));
    assert!(seen.iter().any(|s| s.close == Some(4004)), "{seen:?}");
}

#[tokio::test]
async fn a_legacy_connection_error_fails_the_connect_with_its_payload() {
    let (url, seen) = start_scripted_peer().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "refused.yaml",
        r#"
name: refused
steps:
  - connect: { url: "{{ env.WS_URL }}/refuse", protocol: graphql-ws, connection_init: { token: t0 }, within: 2s }
  - subscribe: { name: op, query: "subscription { n }" }
"#,
    );
    let started = Instant::now();
    let outcomes = suite.run_jobs(1).await;
    // Refused at once, not at the end of the connect's 2 s.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let outcome = &outcomes[0];
    assert_eq!(outcome.verdict, Verdict::Failed, "{}", outcome.failure);
    assert!(
        outcome
            .failure
            .contains(r#"`connection_error`: {"message":"unknown token"}"#),
        "{}",
        outcome.failure
    );
    assert!(
        outcome
            .failure
            .contains("the server refused to open `default`"),
        "{}",
        outcome.failure
    );
    assert!(
        outcome.failure.contains("refused.yaml:4:5"),
        "{}",
        outcome.failure
    );
    let seen = seen.lock().unwrap();
    let frames: Vec<&String> = seen.iter().flat_map(|s| &s.frames).collect();
    assert!(
        frames
            .iter()
            .any(|f| *f == r#"{"type":"connection_init","payload":{"token":"t0"}}"#),
        "{frames:?}"
    );
    // Nothing was started on a refused connection.
    assert!(!frames.iter().any(|f| f.contains("start")), "{frames:?}");
}
