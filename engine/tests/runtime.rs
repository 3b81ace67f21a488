//! The runtime never stalls and connections behave, against real in-process servers:
//! a large backlog is taken quickly, floods do not delay other scenarios' deadlines,
//! deadlines are hard while frames keep arriving, runaway templates stop, the server's
//! close frame is answered at once, protocol breaks close with the right code, and a
//! send the server never reads fails at its deadline.
//!
//! Time bounds here are deliberately generous (a debug build on a busy 2-core
//! machine); `cargo bench -p engine --bench runtime_fairness` prints the figures.

mod common;

use std::time::{Duration, Instant};

use common::{start_observing_server, start_server, Observed, Suite};
use engine::runner::Verdict;

/// The flood tests take turns: each measures the engine, not its neighbours' floods.
static FLOODS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_backlog_is_taken_by_one_count() {
    let _turn = FLOODS.lock().await;
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "backlog.yaml",
        r##"
name: backlog
timeout: 60s
steps:
  - connect: { url: "{{ env.WS_URL }}/flood/100000", within: 20s }
  - sleep: 3s
  - expect: { event: tick, count: 100000, within: 50s }
  - expect_none: { event: tick, during: 50ms }
"##,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    let taken = outcomes[0].step_duration(2);
    eprintln!("100k backlog taken in {taken:?}");
    // Generous (debug build, busy machine); quadratic taking (the old inbox) took
    // over a minute here. The figure comes from the bench.
    assert!(taken < Duration::from_secs(30), "count took {taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_floods_do_not_delay_a_deadline_beside_them() {
    let _turn = FLOODS.lock().await;
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    for n in 0..5 {
        suite.spec(
            &format!("flood{n}.yaml"),
            &format!(
                r##"
name: flood {n}
timeout: 90s
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}/flood/100000", within: 20s }}
  - sleep: 3s
  - expect: {{ event: tick, count: 100000, within: 80s }}
"##
            ),
        );
    }
    suite.spec(
        "silent.yaml",
        r##"
name: silent beside the floods
steps:
  - connect: { url: "{{ env.WS_URL }}/silent", within: 20s }
  - expect: { event: hello, within: 1s }
"##,
    );
    let outcomes = suite.run_jobs(6).await;
    for flood in outcomes.iter().filter(|o| o.name.starts_with("flood")) {
        flood.assert_passed();
    }
    let silent = outcomes
        .iter()
        .find(|o| o.name == "silent beside the floods")
        .unwrap();
    assert_eq!(silent.verdict, Verdict::Failed);
    assert!(
        silent.failure.contains("no `hello` on `default` within 1s"),
        "{}",
        silent.failure
    );
    let waited = silent.step_duration(1);
    eprintln!("1 s deadline beside five floods fired after {waited:?}");
    // Before: 23-28 s. The figure (1 s ± 100 ms) comes from the bench.
    assert!(
        waited >= Duration::from_millis(990) && waited < Duration::from_secs(3),
        "a 1 s deadline fired after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_holds_while_frames_keep_arriving() {
    let _turn = FLOODS.lock().await;
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    // Every frame matches, so the wait never runs dry: the deadline must still hold.
    suite.spec(
        "matching.yaml",
        r##"
name: matching flood
steps:
  - connect: { url: "{{ env.WS_URL }}/flood/5000000", within: 20s }
  - expect: { event: tick, count: 5000000, within: 1s }
"##,
    );
    suite.spec(
        "other.yaml",
        r##"
name: non-matching flood
steps:
  - connect: { url: "{{ env.WS_URL }}/flood/5000000", within: 20s }
  - expect: { event: never_sent, within: 1s }
"##,
    );
    // A backlog is there all along: taking it must not outlive the deadline either.
    suite.spec(
        "backlog.yaml",
        r##"
name: backlog
steps:
  - connect: { url: "{{ env.WS_URL }}/flood/200000", within: 20s }
  - sleep: 2s
  - expect: { event: tick, count: 200001, within: 1s }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    let backlog = by_name("backlog");
    assert!(
        backlog
            .failure
            .contains("no `tick` on `default` within 1s (event "),
        "{}",
        backlog.failure
    );
    let matching = by_name("matching flood");
    assert!(
        matching
            .failure
            .contains("no `tick` on `default` within 1s (event "),
        "{}",
        matching.failure
    );
    let other = by_name("non-matching flood");
    assert!(
        other
            .failure
            .contains("no `never_sent` on `default` within 1s"),
        "{}",
        other.failure
    );
    for (outcome, step) in [(matching, 1), (other, 1), (backlog, 2)] {
        let waited = outcome.step_duration(step);
        assert!(
            waited >= Duration::from_millis(990) && waited < Duration::from_secs(3),
            "{}: a 1 s deadline fired after {waited:?} under a flood",
            outcome.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_template_fails_fast_with_a_clear_message() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "runaway.yaml",
        r##"
name: runaway template
timeout: 3s
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - send: { text: "{% for i in range(100000) * 100000 %}x{% endfor %}" }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    let failure = &outcomes[0].failure;
    assert!(
        failure.contains("the template did too much work and was stopped"),
        "{failure}"
    );
    assert!(!failure.contains("timed out"), "{failure}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Wait for `count` observations, at most `limit`.
async fn observations(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Observed>,
    count: usize,
    limit: Duration,
) -> Vec<Observed> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while seen.len() < count {
            match rx.recv().await {
                Some(observed) => seen.push(observed),
                None => break,
            }
        }
    })
    .await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_close_frame_is_answered_at_once_and_tcp_closed() {
    let (url, mut observed) = start_observing_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "lingers.yaml",
        r##"
name: scenario goes on after the close
steps:
  - connect: { url: "{{ env.WS_URL }}/close/1011" }
  - sleep: 6s
"##,
    );
    let run = tokio::spawn(async move {
        let outcomes = suite.run().await;
        (outcomes, suite)
    });
    // The server sees the answer and the disconnect while the scenario still runs.
    let seen = observations(&mut observed, 1, Duration::from_secs(5)).await;
    assert!(!run.is_finished(), "the scenario ended first: {seen:?}");
    let observed = seen.first().expect("the server saw the close complete");
    let (code, answered) = observed.client_close.expect("a close frame answered");
    assert_eq!(code, 1011);
    // Generous bounds; the bench figure is well under 50 ms.
    assert!(answered < Duration::from_secs(1), "{observed:?}");
    let tcp = observed.tcp_closed.expect("the client closed TCP");
    assert!(tcp < Duration::from_secs(1), "{observed:?}");
    let (outcomes, _suite) = run.await.unwrap();
    outcomes[0].assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_steps_still_see_how_the_server_closed() {
    let (url, _observed) = start_observing_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "expect_close.yaml",
        r##"
name: expect_close after the answer
steps:
  - connect: { url: "{{ env.WS_URL }}/close/1011" }
  - sleep: 200ms
  - expect_close: { code: 1011, reason: "#contains going away" }
"##,
    );
    suite.spec(
        "send_after.yaml",
        r##"
name: send after the close
steps:
  - connect: { url: "{{ env.WS_URL }}/close/1011" }
  - expect_close: { code: 1011 }
  - send: { json: { type: late } }
"##,
    );
    suite.spec(
        "expect_after.yaml",
        r##"
name: expect after the close
steps:
  - connect: { url: "{{ env.WS_URL }}/close/4000" }
  - expect: { event: hello, within: 10s }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    assert!(started.elapsed() < Duration::from_secs(8));
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    by_name("expect_close after the answer").assert_passed();
    let send = &by_name("send after the close").failure;
    assert!(
        send.contains(
            "cannot send on `default`: the connection closed with code 1011 (server going away)"
        ),
        "{send}"
    );
    let expect = &by_name("expect after the close").failure;
    assert!(
        expect.contains(
            "connection `default` closed with code 4000 (server going away) before `hello` arrived"
        ),
        "{expect}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_breaks_close_with_1007_and_1002() {
    let (url, mut observed) = start_observing_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "utf8.yaml",
        r##"
name: invalid utf-8
steps:
  - connect: { url: "{{ env.WS_URL }}/invalid-utf8" }
  - expect: { event: hello, within: 10s }
"##,
    );
    suite.spec(
        "protocol.yaml",
        r##"
name: protocol error
steps:
  - connect: { url: "{{ env.WS_URL }}/protocol-error" }
  - expect_close: { code: 1002, reason: "#contains protocol" }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    assert!(started.elapsed() < Duration::from_secs(8));
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    let utf8 = &by_name("invalid utf-8").failure;
    assert!(
        utf8.contains(
            "connection `default` was closed by the engine with code 1007: the server sent invalid UTF-8 in a text frame before `hello` arrived"
        ),
        "{utf8}"
    );
    by_name("protocol error").assert_passed();
    let mut seen = observations(&mut observed, 2, Duration::from_secs(5)).await;
    seen.sort_by(|a, b| a.route.cmp(&b.route));
    let codes: Vec<(String, Option<u16>)> = seen
        .iter()
        .map(|o| (o.route.clone(), o.client_close.map(|(code, _)| code)))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("/invalid-utf8".to_string(), Some(1007)),
            ("/protocol-error".to_string(), Some(1002)),
        ]
    );
    assert!(seen.iter().all(|o| o.tcp_closed.is_some()), "{seen:?}");
}

#[tokio::test]
async fn a_timed_out_match_reads_naturally() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "match_only.yaml",
        r##"
name: match only
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { match: { n: 2 }, within: 200ms }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    let matching = &by_name("match only").failure;
    assert!(
        matching.contains(r#"no event matching {"n":2} on `default` within 200ms"#),
        "{matching}"
    );
    assert!(!matching.contains("no an event"), "{matching}");
}

#[tokio::test]
async fn a_timed_out_expect_suggests_the_closest_type_that_arrived_even_if_taken() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "members.yaml",
        r##"
name: members
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { event: hello }
  - send:
      json:
        type: emit
        events:
          - { type: member_joined, user: a }
          - { type: member_left, user: a }
          - { type: member_joined, user: b }
  - expect: { event: member_joined, match: { user: a } }
  - expect: { event: member_left }
  - expect: { event: member_leaves, within: 200ms }
"##,
    );
    let outcomes = suite.run().await;
    let failure = &outcomes[0].failure;
    assert!(
        failure.contains("no `member_leaves` on `default` within 200ms"),
        "{failure}"
    );
    assert!(
        failure.contains(
            "hint: did you mean `member_left`? it arrived on `default` (first as frame #3)"
        ),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_are_still_validated_and_matched() {
    let url = start_server().await;
    let suite = Suite::new(&url, "events: { schemas: schemas }\n");
    suite.spec(
        "schemas/hello.json",
        r#"{"type":"object","required":["type","n"],"properties":{"n":{"type":"integer"},"blob":{"type":"string"}}}"#,
    );
    suite.spec(
        "big.yaml",
        r##"
name: big valid
steps:
  - connect: { url: "{{ env.WS_URL }}/big/2000000" }
  - expect: { event: hello, match: { n: 1, blob: "#regex ^x+$" }, within: 10s }
"##,
    );
    suite.spec(
        "big_invalid.yaml",
        r##"
name: big invalid
steps:
  - connect: { url: "{{ env.WS_URL }}/big-invalid/2000000" }
  - expect: { event: hello, within: 10s }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    by_name("big valid").assert_passed();
    let invalid = &by_name("big invalid").failure;
    assert!(invalid.contains("event `hello` violates"), "{invalid}");
    assert!(invalid.contains("at `/n`"), "{invalid}");
}

/// A server that completes the handshake and then never reads: what the engine sends
/// fills the socket buffers until a send cannot finish.
async fn start_deaf_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                    // Held open, never read, for as long as the test runs.
                    std::future::pending::<()>().await;
                    drop(socket);
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_the_server_never_reads_fails_at_the_step_deadline() {
    let url = start_deaf_server().await;
    // The suite's step deadline is 2 s.
    let suite = Suite::new(&url, "");
    let payload = "x".repeat(64 * 1024);
    suite.spec(
        "deaf.yaml",
        &format!(
            r##"
name: deaf server
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}" }}
  - each:
      count: 100000
      steps:
        - send: {{ text: "{payload}" }}
"##
        ),
    );
    let outcomes = suite.run().await;
    let outcome = &outcomes[0];
    assert!(
        outcome
            .failure
            .contains("sending on `default` did not finish within 2s"),
        "{}",
        outcome.failure
    );
    // The step that failed is the `each`: it ran until a send blocked, then 2 s more.
    let each = outcome.step_duration(1);
    assert!(
        each >= Duration::from_millis(1990) && each < Duration::from_secs(15),
        "the send's 2 s deadline ended its `each` after {each:?}"
    );
}
