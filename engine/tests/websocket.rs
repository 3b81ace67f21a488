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
    outcomes[0].assert_passed();
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
  - expect: { event: hello, within: 60s }
"##,
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    // Far below the deadline whatever the machine's load: the close ends the wait.
    assert!(
        started.elapsed() < Duration::from_secs(30),
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
    by_name("closing").assert_passed();
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
    by_name("refusal expected").assert_passed();
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
    good.assert_passed();
}

/// A loop whose steps have no template does not set its variable (nothing could read
/// it); one that has, inner loops included, does, and every loop leaves the variables
/// as it found them.
#[tokio::test]
async fn loop_variables_reach_nested_loops_and_are_restored() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "nested.yaml",
        r##"
name: nested loops
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - each:
      items: [x, y]
      steps:
        - each:
            count: 2
            steps:
              - send: { json: { type: say, n: plain } }
              - expect: { event: echo, match: { body: { n: plain } } }
        - each:
            count: 1
            as: inner
            steps:
              - each:
                  count: 1
                  as: innermost
                  steps:
                    - send: { json: { type: say, n: "{{ i }}{{ inner }}{{ innermost }}" } }
              - expect: { event: echo, match: { body: { n: "{{ i }}{{ inner }}0" } } }
        - send: { json: { type: say, n: "{{ i }}" } }
        - expect: { event: echo, match: { body: { n: "{{ i }}" } } }
"##,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
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
    outcomes[0].assert_passed();
}

#[tokio::test]
async fn wss_trusts_a_given_ca_file_and_refuses_an_unknown_one() {
    let url = common::start_tls_server().await;
    let suite = Suite::new(&url, "");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ca.pem"),
        suite.path().join("ca.pem"),
    )
    .unwrap();
    suite.spec(
        "trusted.yaml",
        "name: trusted\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\", ca_file: ca.pem }\n  - expect: { event: hello }\n",
    );
    suite.spec(
        "untrusted.yaml",
        "name: untrusted\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n",
    );
    let outcomes = suite.run().await;
    let trusted = outcomes.iter().find(|o| o.name == "trusted").unwrap();
    trusted.assert_passed();
    let untrusted = &outcomes
        .iter()
        .find(|o| o.name == "untrusted")
        .unwrap()
        .failure;
    assert!(
        untrusted.contains("cannot connect to wss://"),
        "{untrusted}"
    );
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
}

#[tokio::test]
async fn minted_tokens_carry_claims_expiry_and_the_chosen_algorithm() {
    let url = start_server().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let suite = Suite::new(&url, "");
    std::fs::copy(format!("{dir}/jwt_rs256.key"), suite.path().join("rs.key")).unwrap();
    // Reports never hold tokens, so the scenario hands them over through Redis.
    let key = format!("engine-it:{}:tokens", common::fresh());
    suite.spec(
        "tokens.yaml",
        &format!(
            r##"
name: tokens
ids: {{ alice: user }}
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}/echo" }}
  - authenticate: {{ jwt: {{ claims: {{ sub: "{{{{ ids.alice }}}}", role: admin }} }} }}
  - expect: {{ event: echo, capture: {{ hs: $.body.token }} }}
  - authenticate: {{ jwt: {{ claims: {{ sub: "{{{{ ids.alice }}}}" }}, alg: RS256, private_key_file: rs.key, expires_in: -1m }} }}
  - expect: {{ event: echo, capture: {{ rs: $.body.token }} }}
  - redis: {{ command: [HSET, "{key}", hs, "{{{{ vars.hs }}}}", rs, "{{{{ vars.rs }}}}", alice, "{{{{ ids.alice }}}}"] }}
  - redis: {{ command: [EXPIRE, "{key}", 60] }}
"##
        ),
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    let mut conn = common::redis().await;
    let handed: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (hs, rs, alice) = (&handed["hs"], &handed["rs"], handed["alice"].as_str());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = true;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        hs,
        &jsonwebtoken::DecodingKey::from_secret(b"test-secret-value"),
        &validation,
    )
    .expect("HS256 token signed with the suite's secret")
    .claims;
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["role"], "admin");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(
        (290..=310).contains(&lifetime),
        "default expiry is 5m, got {lifetime}s"
    );
    let public = std::fs::read(format!("{dir}/jwt_rs256.pub")).unwrap();
    let mut rs_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    rs_validation.validate_exp = false;
    let rs_claims = jsonwebtoken::decode::<serde_json::Value>(
        rs,
        &jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap(),
        &rs_validation,
    )
    .expect("RS256 token verifies with the public key")
    .claims;
    assert!(
        rs_claims["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp(),
        "expires_in: -1m mints an expired token"
    );
}

#[tokio::test]
async fn formats_are_asserted_and_required_schemas_catch_undocumented_events() {
    let url = start_server().await;
    let suite = Suite::new(
        &url,
        "events: { schemas: schemas, require_schemas: true }\n",
    );
    suite.spec(
        "schemas/hello.json",
        r#"{"type":"object","required":["type","n"],"properties":{"n":{"type":"integer"}}}"#,
    );
    suite.spec(
        "schemas/echo.json",
        r#"{"type":"object","properties":{"body":{"type":"object","properties":{"at":{"type":"string","format":"date-time"}}}}}"#,
    );
    common::schema_specs(&suite);
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    by_name("good format").assert_passed();
    let bad = &by_name("bad format").failure;
    assert!(
        bad.contains("at `/body/at`") && bad.contains("date-time"),
        "{bad}"
    );
    let undocumented = &by_name("undocumented").failure;
    assert!(
        undocumented.contains("event type `tick` has no schema"),
        "{undocumented}"
    );
}

#[tokio::test]
async fn misspelt_event_types_are_caught_before_and_during_the_run() {
    let url = start_server().await;
    // With required schemas, an event type without one is a spec error.
    let strict = Suite::new(
        &url,
        "events: { schemas: schemas, require_schemas: true }\n",
    );
    strict.spec("schemas/hello.json", r#"{"type":"object"}"#);
    strict.spec("schemas/echo.json", r#"{"type":"object"}"#);
    strict.spec(
        "typo.yaml",
        "name: typo\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { sequence: [hello, { event: ecoh }] }\n",
    );
    let errors = strict.load_errors().join("\n");
    assert!(errors.contains("no event type `ecoh`"), "{errors}");
    assert!(errors.contains("typo.yaml:4:"), "{errors}");
    assert!(errors.contains("did you mean `echo`?"), "{errors}");

    // Without schemas, a timed-out expect suggests the nearest type that did arrive.
    let loose = Suite::new(&url, "");
    loose.spec(
        "typo.yaml",
        "name: runtime typo\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: helo, within: 100ms }\n",
    );
    let outcomes = loose.run().await;
    assert!(
        outcomes[0].failure.contains("hint: did you mean `hello`?"),
        "{}",
        outcomes[0].failure
    );
}

#[tokio::test]
async fn the_event_type_field_and_token_placement_come_from_config_and_spec() {
    let url = start_server().await;
    let nested = Suite::new(&url, "events: { type_field: meta.kind }\n");
    nested.spec(
        "nested.yaml",
        "name: nested type\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/nested\" }\n  - expect: { event: greeting, match: { text: hi } }\n",
    );
    nested.run().await[0].assert_passed();

    let suite = Suite::new(&url, "");
    suite.spec(
        "subprotocol.yaml",
        r##"
name: token as subprotocol
ids: { alice: user }
steps:
  - connect:
      url: "{{ env.WS_URL }}/subprotocols"
      subprotocols: [chat.v1]
      authenticate: { jwt: { claims: { sub: "{{ ids.alice }}" } }, as: subprotocol }
  - expect: { event: hello, match: { protocols: "#regex ^chat\\.v1, ey[A-Za-z0-9_-]+\\.ey" } }
"##,
    );
    suite.run().await[0].assert_passed();
}
