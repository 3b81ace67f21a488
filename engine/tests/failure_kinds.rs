//! Every failure carries its kind as a type, set where it is made: one scenario per
//! kind, each failing the way that kind names, against a real WebSocket server, real
//! Postgres and real Redis.

mod common;

use common::{free_port, fresh, start_server, Suite};
use engine::diagnostic::FailureKind;

#[tokio::test]
async fn each_failure_has_the_kind_of_what_went_wrong() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let closed_port = free_port();
    let key = format!("engine-kind-test:{}", fresh());
    let cases: Vec<(&str, String, FailureKind)> = vec![
        (
            "nobody listens",
            format!("  - connect: {{ url: \"ws://127.0.0.1:{closed_port}/\" }}\n"),
            FailureKind::Refused,
        ),
        (
            "handshake refused",
            "  - connect: { url: \"{{ env.WS_URL }}/refuse\" }\n".into(),
            FailureKind::Refused,
        ),
        (
            "server closes",
            "  - connect: { url: \"{{ env.WS_URL }}/close-early\" }\n  - expect: { event: hello, within: 2s }\n".into(),
            FailureKind::ConnectionClosed,
        ),
        (
            "server is silent",
            "  - connect: { url: \"{{ env.WS_URL }}/silent\" }\n  - expect: { event: hello, within: 100ms }\n".into(),
            FailureKind::Timeout,
        ),
        (
            "key missing",
            format!("  - assert_redis: {{ key: \"{key}\", exists: true }}\n"),
            FailureKind::Mismatch,
        ),
        (
            "assertion",
            "  - assert: { value: 1, equals: 2 }\n".into(),
            FailureKind::Assertion,
        ),
        (
            "template",
            "  - assert: { value: \"{{ 'a' + 1 }}\", equals: 2 }\n".into(),
            FailureKind::Template,
        ),
        (
            "redis command",
            "  - redis: { command: [NO_SUCH_COMMAND, x] }\n".into(),
            FailureKind::Redis,
        ),
        (
            "sql",
            "  - sql: { query: \"SELECT no_such_column FROM no_such_table_anywhere\" }\n".into(),
            FailureKind::Database,
        ),
        (
            "http",
            format!("  - http: {{ method: GET, url: \"http://127.0.0.1:{closed_port}/\" }}\n"),
            FailureKind::Http,
        ),
        (
            "process",
            format!("  - start_process: {{ name: p, command: \"exit 3\", ready: \"tcp://127.0.0.1:{closed_port}\", within: 5s }}\n"),
            FailureKind::Process,
        ),
        (
            "not a duration",
            "  - sleep: \"{{ 'soon' }}\"\n".into(),
            FailureKind::Spec,
        ),
    ];
    for (i, (name, steps, _)) in cases.iter().enumerate() {
        suite.spec(
            &format!("k{i}.yaml"),
            &format!("name: \"{name}\"\nsteps:\n{steps}"),
        );
    }
    let outcomes = suite.run().await;
    assert_eq!(outcomes.len(), cases.len());
    for (name, _, kind) in &cases {
        let outcome = outcomes.iter().find(|o| o.name == *name).unwrap();
        assert_eq!(outcome.kind, Some(*kind), "{name}: {}", outcome.failure);
    }
}
