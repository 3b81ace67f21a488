//! WebSocket steps against a real in-process server: matching, captures, sequences,
//! negative windows, and misbehaving servers that must fail clearly and fast.

mod common;

use std::time::{Duration, Instant};

use common::{start_server, Suite};
use engine::runner::Verdict;

#[tokio::test]
async fn a_well_behaved_conversation_passes() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "ok.yaml",
        r##"
name: echo conversation
ids: { alice: user }
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { event: hello, match: { n: "#number" }, capture: { n: $.n } }
  - send: { json: { type: say, who: "{{ ids.alice }}", n: "{{ vars.n }}" } }
  - expect:
      event: echo
      match: { body: { who: "{{ ids.alice }}", n: 1 } }
      exact: false
  - send: { json: { type: burst, count: 5 } }
  - expect:
      sequence:
        - { event: tick, match: { i: 0 } }
        - { event: tick, match: { i: 2 } }
        - { event: tick, match: { i: 4 }, capture: { last: $.i } }
  - expect_none: { event: tick, match: { i: 2 }, during: 100ms }
  - send: { json: { type: burst, count: 3 } }
  - expect: { event: tick, count: 3 }
  - send: { json: { type: burst, count: 2 }, repeat: 2 }
  - expect:
      unordered:
        - { event: tick, match: { i: 1 } }
        - { event: tick, match: { i: 0 } }
  - close: {}
"##,
    );
    let outcomes = suite.run().await;
    assert_eq!(
        outcomes[0].verdict,
        Verdict::Passed,
        "{}",
        outcomes[0].failure
    );
}

#[tokio::test]
async fn a_failed_expect_shows_the_nearest_candidate_and_every_frame() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "fail.yaml",
        r##"
name: wrong expectation
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - send: { json: { type: say, text: hi } }
  - expect:
      event: echo
      match: { body: { text: bye } }
      within: 300ms
"##,
    );
    let outcomes = suite.run().await;
    let failure = &outcomes[0].failure;
    assert_eq!(outcomes[0].verdict, Verdict::Failed);
    assert!(failure.contains("no `echo` matching"), "{failure}");
    assert!(failure.contains("fail.yaml:6:5"), "{failure}");
    assert!(
        failure.contains("$.body.text: expected \"bye\", got \"hi\""),
        "{failure}"
    );
    assert!(
        failure.contains("received on `default` (2 frames)"),
        "{failure}"
    );
    assert!(failure.contains(r#"{"type":"hello","n":1}"#), "{failure}");
}

#[tokio::test]
async fn a_server_that_closes_early_fails_at_once_with_its_close_code() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "early.yaml",
        r##"
name: closes early
steps:
  - connect: { url: "{{ env.WS_URL }}/close-early" }
  - expect: { event: hello, within: 10s }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the deadline"
    );
    let failure = &outcomes[0].failure;
    assert!(
        failure.contains("closed with code 4001 (bye early) before `hello` arrived"),
        "{failure}"
    );
}

#[tokio::test]
async fn garbage_frames_are_shown_not_fatal_and_expect_close_checks_codes() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "garbage.yaml",
        r##"
name: garbage
steps:
  - connect: { url: "{{ env.WS_URL }}/garbage" }
  - expect: { event: hello, within: 300ms }
"##,
    );
    suite.spec(
        "closing.yaml",
        r##"
name: closing
steps:
  - connect: { url: "{{ env.WS_URL }}/close-early" }
  - expect_close: { code: 4001, reason: "#contains early" }
"##,
    );
    suite.spec(
        "wrong_code.yaml",
        r##"
name: wrong close code
steps:
  - connect: { url: "{{ env.WS_URL }}/close-early" }
  - expect_close: { code: 1000 }
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    assert_eq!(
        by_name("closing").verdict,
        Verdict::Passed,
        "{}",
        by_name("closing").failure
    );
    let garbage = &by_name("garbage").failure;
    assert!(garbage.contains("this is not json {"), "{garbage}");
    let wrong = &by_name("wrong close code").failure;
    assert!(
        wrong.contains(
            "expected `default` to be closed with code 1000, but it closed with code 4001"
        ),
        "{wrong}"
    );
}

#[tokio::test]
async fn a_silent_server_hits_the_step_deadline_and_the_scenario_timeout() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "silent.yaml",
        r##"
name: silent step
steps:
  - connect: { url: "{{ env.WS_URL }}/silent" }
  - expect: { event: hello, within: 200ms }
"##,
    );
    suite.spec(
        "timeout.yaml",
        r##"
name: whole scenario timeout
timeout: 400ms
steps:
  - connect: { url: "{{ env.WS_URL }}/silent" }
  - expect: { event: hello, within: 30s }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let silent = &outcomes
        .iter()
        .find(|o| o.name == "silent step")
        .unwrap()
        .failure;
    assert!(
        silent.contains("no `hello` on `default` within 200ms"),
        "{silent}"
    );
    assert!(silent.contains("`default` received nothing"), "{silent}");
    let timeout = &outcomes
        .iter()
        .find(|o| o.name == "whole scenario timeout")
        .unwrap()
        .failure;
    assert!(
        timeout.contains("scenario timed out after 400ms while running this step"),
        "{timeout}"
    );
    assert!(timeout.contains("timeout.yaml:6:5"), "{timeout}");
}

#[tokio::test]
async fn refused_handshakes_and_unreachable_servers() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "refused_expected.yaml",
        "name: refusal expected\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/refuse\", expect_status: 403 }\n",
    );
    suite.spec(
        "refused.yaml",
        "name: refusal unexpected\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/refuse\" }\n",
    );
    suite.spec(
        "unreachable.yaml",
        "name: unreachable\nsteps:\n  - connect: { url: \"ws://127.0.0.1:9/ws\" }\n",
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    assert_eq!(
        by_name("refusal expected").verdict,
        Verdict::Passed,
        "{}",
        by_name("refusal expected").failure
    );
    assert!(by_name("refusal unexpected")
        .failure
        .contains("refused the WebSocket handshake with HTTP 403"));
    assert!(
        by_name("unreachable")
            .failure
            .contains("cannot connect to ws://127.0.0.1:9/ws"),
        "{}",
        by_name("unreachable").failure
    );
}

#[tokio::test]
async fn schema_violations_fail_the_step_naming_pointer_and_rule() {
    let url = start_server().await;
    let suite = Suite::new(&url, "events: { schemas: schemas }\n");
    suite.spec(
        "schemas/hello.json",
        r#"{"type":"object","required":["type","n"],"properties":{"type":{"const":"hello"},"n":{"type":"integer"}}}"#,
    );
    suite.spec(
        "bad.yaml",
        "name: bad schema\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/bad-schema\" }\n  - expect: { event: hello }\n",
    );
    suite.spec(
        "good.yaml",
        "name: good schema\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: hello }\n",
    );
    let outcomes = suite.run().await;
    let bad = &outcomes
        .iter()
        .find(|o| o.name == "bad schema")
        .unwrap()
        .failure;
    assert!(bad.contains("event `hello` violates"), "{bad}");
    assert!(bad.contains("at `/n`"), "{bad}");
    assert!(bad.contains("/properties/n/type"), "{bad}");
    let good = outcomes.iter().find(|o| o.name == "good schema").unwrap();
    assert_eq!(good.verdict, Verdict::Passed, "{}", good.failure);
}

#[tokio::test]
async fn many_connections_in_an_each_loop() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "each.yaml",
        r##"
name: fan out
steps:
  - each:
      count: 50
      as: n
      steps:
        - connect: { name: "c{{ n }}", url: "{{ env.WS_URL }}/echo" }
        - send: { on: "c{{ n }}", json: { type: say, n: "{{ n }}" } }
  - each:
      count: 50
      as: n
      steps:
        - expect: { on: "c{{ n }}", event: echo, match: { body: { n: "{{ n }}" } } }
"##,
    );
    let outcomes = suite.run().await;
    assert_eq!(
        outcomes[0].verdict,
        Verdict::Passed,
        "{}",
        outcomes[0].failure
    );
}
