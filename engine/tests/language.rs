//! The spec language's reuse and expressiveness, run against a real WebSocket server
//! and real Redis: library steps (parameters, returned values, cleanup in reverse
//! order also after a failure, failures shown at the call site and the library line),
//! connection profiles, case tables, `assert`, generated and strict sequences, the
//! any-frame wildcard, and the spec errors `engine check` reports for all of them.

mod common;

use common::{fresh, redis, start_server, Suite};
use engine::runner::Verdict;
use redis::AsyncCommands;

/// A library step that writes a key and registers its removal plus a log entry, so
/// the order cleanups ran in can be read back.
const MARK: &str = r#"
step: mark
params:
  key: string
  log: string
  value: { type: string, default: "v-{{ env.WS_URL | length }}" }
steps:
  - redis: { command: [SET, "{{ key }}", "{{ value }}"] }
  - redis: { command: [GET, "{{ key }}"], capture: { read: $ } }
returns: { written: "{{ vars.read }}" }
cleanup:
  - redis: [RPUSH, "{{ log }}", "{{ value }}"]
  - redis: [DEL, "{{ key }}"]
"#;

/// Connects and waits for an event that never comes, inside a nested call.
const NEVER: &str = r#"
step: wait_for_nothing
params: { name: string, log: string }
steps:
  - connect: { name: "{{ name }}", url: "{{ env.WS_URL }}/echo" }
  - expect: { on: "{{ name }}", event: hello }
  - expect: { on: "{{ name }}", event: never_sent, within: 200ms }
  - redis: { command: [TIME], capture: { late: "$[0]" } }
cleanup:
  - redis: [RPUSH, "{{ log }}", never-cleanup]
  - redis: [RPUSH, "{{ log }}", "{{ vars.late }}"]
"#;

#[tokio::test]
async fn library_steps_return_values_and_clean_up_in_reverse_order_after_a_failure() {
    let url = start_server().await;
    let suite = Suite::new(&url, "library: [lib]\n");
    suite.spec("lib/mark.yaml", MARK);
    suite.spec("lib/never.yaml", NEVER);
    let key = format!("engine-it:lib:{}", fresh());
    suite.spec(
        "calls.yaml",
        &format!(
            r##"
name: calls
steps:
  - mark: {{ key: "{key}:a", log: "{key}:log", value: first }}
  - mark: {{ key: "{key}:b", log: "{key}:log", as: second }}
  - assert: {{ value: "{{{{ vars.written }}}}", equals: first }}
  - assert: {{ value: "{{{{ vars.second.written }}}}", match: "#regex ^v-\\d+$" }}
  - wait_for_nothing: {{ name: tab, log: "{key}:log" }}
teardown:
  - redis: [RPUSH, "{key}:log", scenario-teardown]
"##
        ),
    );
    let outcomes = suite.run().await;
    let outcome = &outcomes[0];
    assert_eq!(outcome.verdict, Verdict::Failed, "{}", outcome.failure);
    // The failure points at the library line, then at the call site.
    let failure = &outcome.failure;
    let library_line = failure.find("lib/never.yaml:7:5").expect(failure);
    let call_site = failure.find("called from").expect(failure);
    assert!(library_line < call_site, "{failure}");
    assert!(failure.contains("calls.yaml:8:5"), "{failure}");
    assert!(
        failure.contains("- wait_for_nothing: { name: tab"),
        "{failure}"
    );

    let mut redis = redis().await;
    // Cleanups ran in reverse order of calls, the scenario's own teardown after them;
    // the action reading a variable the failed call never captured was skipped.
    let log: Vec<String> = redis.lrange(format!("{key}:log"), 0, -1).await.unwrap();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0], "never-cleanup", "{log:?}");
    assert!(log[1].starts_with("v-"), "{log:?}");
    assert_eq!(&log[2..], ["first", "scenario-teardown"], "{log:?}");
    let left: i64 = redis
        .exists(&[format!("{key}:a"), format!("{key}:b")])
        .await
        .unwrap();
    assert_eq!(left, 0, "cleanup deleted both keys");
    let _: () = redis.del(format!("{key}:log")).await.unwrap();
}

#[tokio::test]
async fn check_reports_bad_calls_cycles_and_scope_errors() {
    let suite = Suite::new("ws://127.0.0.1:1", "library: [lib]\n");
    suite.spec("lib/mark.yaml", MARK);
    suite.spec("lib/ping.yaml", "step: ping\nsteps:\n  - pong: {}\n");
    suite.spec("lib/pong.yaml", "step: pong\nsteps:\n  - ping: {}\n");
    suite.spec(
        "lib/peek.yaml",
        "step: peek\nparams: { key: string }\nsteps:\n  - redis: { command: [GET, \"{{ ids.alice }}\"] }\n",
    );
    suite.spec(
        "bad.yaml",
        r#"
name: "bad {{ case.mode }}"
cases: [ { mode: a }, { mode: b } ]
steps:
  - mark: { kye: x, log: l }
  - mark: { key: 5, log: l }
  - mrak: { key: x }
  - assert: { value: "{{ case.mdoe }}", equals: 1 }
"#,
    );
    let errors = suite.load_errors().join("\n");
    for expected in [
        "library step `ping` calls itself: ping → pong → ping",
        "a library step cannot read the caller's IDs",
        "`mark` has no parameter `kye`",
        "did you mean `key`?",
        "`mark` needs `key`",
        "parameter `key` of `mark` is a string, got 5",
        "unknown step kind `mrak`",
        "did you mean `mark`?",
        "no case key `mdoe`",
        "did you mean `mode`?",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

#[tokio::test]
async fn check_names_a_connection_a_library_step_opens_as_its_profile_does() {
    let suite = Suite::new(
        "ws://127.0.0.1:1",
        "library: [lib]\nprofiles:\n  admin: { url: 'ws://127.0.0.1:1/admin', name: admin }\n  refused: { url: 'ws://127.0.0.1:1/x', expect_status: 401 }\n",
    );
    suite.spec(
        "lib/open.yaml",
        "step: open_admin\nsteps:\n  - connect: { profile: admin }\n  - connect: { profile: refused, name: gone }\n",
    );
    suite.spec(
        "good.yaml",
        "name: good\nsteps:\n  - open_admin: {}\n  - send: { json: 1 }\n  - send: { on: admin, json: 2 }\n",
    );
    assert_eq!(suite.load_errors(), Vec::<String>::new());
    suite.spec(
        "bad.yaml",
        "name: bad\nsteps:\n  - open_admin: {}\n  - send: { on: default, json: 1 }\n",
    );
    let errors = suite.load_errors().join("\n");
    assert!(
        errors.contains("connection `default`") && errors.contains("bad.yaml"),
        "{errors}"
    );
}

#[tokio::test]
async fn cases_are_separate_scenarios_with_their_own_ids() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "cases.yaml",
        r#"
name: "echo of {{ case.word }} has {{ case.length }} letters"
cases:
  - { word: one, length: 3 }
  - { word: three, length: 5 }
  - { word: eleven, length: 6 }
ids: { owner: user }
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - send: { json: { type: say, word: "{{ case.word }}", owner: "{{ ids.owner }}" } }
  - expect: { event: echo, match: { body: { word: "{{ case.word }}" } }, capture: { heard: $.body.word } }
  - assert: { value: "{{ vars.heard | length }}", equals: "{{ case.length }}" }
"#,
    );
    suite.spec(
        "plain.yaml",
        "name: plain\ncases: [ { n: 1 }, { n: 2 } ]\nsteps:\n  - assert: { value: \"{{ case.n }}\", lt: 3 }\n",
    );
    let outcomes = suite.run().await;
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "echo of eleven has 6 letters",
            "echo of one has 3 letters",
            "echo of three has 5 letters",
            "plain [n=1]",
            "plain [n=2]",
        ]
    );
    outcomes.iter().for_each(|o| o.assert_passed());
    let owners: std::collections::BTreeSet<_> = outcomes
        .iter()
        .filter_map(|o| o.ids.get("owner"))
        .map(|v| v.to_string())
        .collect();
    assert_eq!(owners.len(), 3, "each case mints its own IDs");
}

#[tokio::test]
async fn profiles_open_authenticate_and_await_ready_with_per_step_overrides() {
    let url = start_server().await;
    let config = r#"
profiles:
  default:
    url: "{{ env.WS_URL }}/subprotocols"
    subprotocols: ["as-{{ identity }}"]
    ready: { event: hello, capture: { offered: $.protocols } }
  echo:
    url: "{{ env.WS_URL }}/echo"
    ready: hello
"#;
    let suite = Suite::new(&url, config);
    suite.spec(
        "profiles.yaml",
        r#"
name: profiles
ids: { alice: user }
steps:
  - connect: { name: tab1, identity: "{{ ids.alice }}" }
  - assert: { value: "{{ vars.tab1.offered }}", equals: "as-{{ ids.alice }}" }
  - connect: { name: tab2, identity: bob, subprotocols: [first, "as-{{ identity }}"], capture: { seen: $.protocols } }
  - assert: { value: "{{ vars.seen }}", equals: "first, as-bob" }
  - connect: { name: quiet, profile: echo, ready: false }
  - expect: { on: quiet, event: hello }
  - connect: { name: loud, profile: echo }
  - send: { on: loud, json: { type: hi } }
  - expect: { on: loud, event: echo }
"#,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
}

#[tokio::test]
async fn assert_shows_both_sides_when_it_fails() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "assert.yaml",
        r#"
name: assert
vars: { before: 7, after: "5", at: "2026-01-01T10:00:00Z" }
steps:
  - assert: { value: "{{ vars.at }}", lt: "2026-01-01T10:00:01+00:00" }
  - assert: { value: "{{ vars.after }}", gt: "{{ vars.before }}" }
"#,
    );
    let outcomes = suite.run().await;
    let failure = &outcomes[0].failure;
    assert_eq!(outcomes[0].verdict, Verdict::Failed);
    assert!(
        failure.contains("assertion failed: `{{ vars.after }}` > `{{ vars.before }}`"),
        "{failure}"
    );
    assert!(failure.contains("value:    \"5\""), "{failure}");
    assert!(failure.contains("gt:       7"), "{failure}");
    assert!(failure.contains("assert.yaml:6:5"), "{failure}");
}

#[tokio::test]
async fn generated_sequences_strict_order_and_the_any_frame_wildcard() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "in_order.yaml",
        r#"
name: a burst arrives in order with nothing in between
vars: { total: 3000 }
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { event: hello }
  - send: { json: { type: burst, count: "{{ vars.total }}" } }
  - expect:
      strict: true
      within: 15s
      sequence: { for: n, range: [0, "{{ vars.total }}"], item: { event: tick, match: { i: "{{ n }}" } } }
  - send: { json: { type: burst, count: 4 } }
  - expect: { sequence: { for: n, in: [0, 2, 3], item: { event: tick, match: { i: "{{ n }}" } } } }
  - send: { text: not json at all }
  - expect: { event: "*", count: 2 }
  - expect_none: { event: "*", during: 100ms }
"#,
    );
    suite.spec(
        "broken.yaml",
        r#"
name: a strict sequence fails on a frame in between
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { event: hello }
  - send: { json: { type: burst, count: 3 } }
  - expect:
      strict: true
      sequence: [ { event: tick, match: { i: 0 } }, { event: tick, match: { i: 2 } } ]
"#,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name.starts_with(n)).unwrap();
    by_name("a burst").assert_passed();
    let broken = by_name("a strict");
    assert_eq!(broken.verdict, Verdict::Failed);
    assert!(
        broken.failure.contains("strict sequence broken"),
        "{}",
        broken.failure
    );
    assert!(
        broken.failure.contains(r#"{"type":"tick","i":1}"#),
        "the frame in between is shown: {}",
        broken.failure
    );
}

#[tokio::test]
async fn profile_overrides_whole_value_templates_and_generated_unordered() {
    let url = start_server().await;
    let config = r#"
library: [lib]
profiles:
  default:
    url: "{{ env.WS_URL }}/echo"
    authenticate: { jwt: { claims: { sub: "{{ identity }}" } } }
    ready: { event: hello, capture: { n: $.n } }
"#;
    let suite = Suite::new(&url, config);
    // Only cleanup: a library step may have no steps.
    suite.spec(
        "lib/remember.yaml",
        "step: remember\nparams: { key: string }\ncleanup:\n  - redis: [DEL, \"{{ key }}\"]\n",
    );
    suite.spec(
        "lib/send_as.yaml",
        r#"
step: send_as
params: { on: string, body: object, headers: { type: object, default: {} } }
steps:
  - send: { on: "{{ on }}", json: "{{ body }}" }
  - http: { url: "http://127.0.0.1:9/", headers: "{{ headers }}", within: 1ms }
"#,
    );
    suite.spec(
        "overrides.yaml",
        r#"
name: overrides
ids: { alice: user }
steps:
  - remember: { key: "engine-it:{{ ids.alice }}" }
  - connect: { name: a, identity: "{{ ids.alice }}", authenticate: { as: query } }
  - connect: { name: b, identity: "{{ ids.alice }}", ready: { match: { n: 1 } } }
  - assert: { value: "{{ vars.b.n }}", equals: 1 }
  - assert: { value: "{{ vars.a.n }}", equals: 1 }
  - send: { on: a, json: { type: burst, count: 5 } }
  - expect: { on: a, unordered: { for: n, in: [4, 0, 3, 1, 2], item: { event: tick, match: { i: "{{ n }}" } } } }
"#,
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    suite.spec(
        "bad_credentials.yaml",
        "name: bad\nsteps:\n  - connect: { name: a, identity: x, authenticate: { token: t } }\n  - connect: { name: b, url: \"ws://x\", authenticate: { as: query } }\n",
    );
    let errors = suite.load_errors().join("\n");
    assert!(
        errors.contains("credentials have both `jwt` and `token`"),
        "{errors}"
    );
    assert!(
        errors.contains("credentials need `jwt` (minted) or `token` (given)"),
        "{errors}"
    );
    assert!(errors.contains("bad_credentials.yaml:4:"), "{errors}");
}

#[tokio::test]
async fn a_value_that_fails_after_rendering_is_reported_at_its_field() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "field.yaml",
        r#"
name: field
vars: { method: sideways }
steps:
  - connect:
      url: "{{ env.WS_URL }}/echo"
      authenticate:
        token: abc
        as: "{{ vars.method }}"
"#,
    );
    let outcomes = suite.run().await;
    let failure = &outcomes[0].failure;
    assert!(failure.contains("`authenticate.as`"), "{failure}");
    assert!(failure.contains("field.yaml:9:13"), "{failure}");
}

/// `send` and `expect` render a scenario's own bodies from a plan kept for the run: a
/// value that does not fit is still found at its field, on every execution.
#[tokio::test]
async fn send_and_expect_values_that_fail_after_rendering_are_reported_at_their_field() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    for (file, step) in [
        (
            "send.yaml",
            r#"send: { json: { type: ping }, on: "{{ vars.n }}" }"#,
        ),
        (
            "expect.yaml",
            r#"expect: { event: hello, within: "{{ vars.n }}" }"#,
        ),
        (
            "expect_on.yaml",
            r#"expect: { event: hello, on: "{{ vars.n }}" }"#,
        ),
    ] {
        suite.spec(
            file,
            &format!(
                r#"
name: {file}
vars: {{ n: 5 }}
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}/echo" }}
  - each:
      count: 2
      steps:
        - {step}
"#
            ),
        );
    }
    let outcomes = suite.run().await;
    assert_eq!(outcomes.len(), 3);
    for (outcome, field, at) in [
        (&outcomes[0], "`within`", "expect.yaml:9:43"),
        (&outcomes[1], "`on`", "expect_on.yaml:9:39"),
        (&outcomes[2], "`on`", "send.yaml:9:45"),
    ] {
        let failure = &outcome.failure;
        assert!(
            failure.contains("invalid step after templating"),
            "{failure}"
        );
        assert!(failure.contains(field), "{failure}");
        assert!(failure.contains(at), "{failure}");
    }
}

#[tokio::test]
async fn binary_json_templated_binary_frames_and_the_negotiated_subprotocol() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "binary.yaml",
        r#"
name: binary frames and subprotocols
ids: { alice: user }
steps:
  - connect: { name: bin, url: "{{ env.WS_URL }}/echo", binary_json: true }
  - connect: { name: raw, url: "{{ env.WS_URL }}/echo" }
  - send: { on: bin, binary: { json: { type: packed, who: "{{ ids.alice }}" } } }
  - expect: { on: bin, event: packed, match: { who: "{{ ids.alice }}" } }
  - send: { on: raw, binary: { text: "{\"type\":\"packed\"}" } }
  - expect: { on: raw, event: hello }
  - expect: { on: raw, event: "*" }
  - send: { on: raw, binary: "AAE=" }
  - expect: { on: raw, event: "*" }
  - expect_none: { on: raw, event: packed, during: 100ms }
  - connect: { name: gql, url: "{{ env.WS_URL }}/subprotocols", subprotocols: [graphql-transport-ws, other], expect_subprotocol: graphql-transport-ws }
"#,
    );
    suite.spec(
        "wrong_protocol.yaml",
        "name: wrong subprotocol\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/subprotocols\", subprotocols: [a, b], expect_subprotocol: b }\n",
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    assert_eq!(outcomes[1].verdict, Verdict::Failed);
    assert!(
        outcomes[1]
            .failure
            .contains("expected the server to pick subprotocol `b`, it picked `a`"),
        "{}",
        outcomes[1].failure
    );
}
