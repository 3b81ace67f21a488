//! Postgres and Redis steps against the real services: fixtures, assertions that pass
//! and fail with useful differences, `eventually`, and teardown that always runs.

mod common;

use common::{fresh, redis, start_server, Suite};
use engine::runner::Verdict;

/// A table of our own for these tests (see `common::create_table`).
async fn ensure_table() {
    common::create_table(
        "CREATE TABLE IF NOT EXISTS engine_it_items (id TEXT PRIMARY KEY, owner TEXT NOT NULL, n INT, note TEXT, created_at TIMESTAMPTZ DEFAULT now())",
    )
    .await;
}

#[tokio::test]
async fn sql_fixtures_and_db_assertions() {
    ensure_table().await;
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "db_ok.yaml",
        r##"
name: db rows
ids: { a: item, b: item, owner: user }
setup:
  - sql: "INSERT INTO engine_it_items (id, owner, n, note) VALUES ($1, $3, 1, 'first'), ($2, $3, 2, NULL)"
    params: ["{{ ids.a }}", "{{ ids.b }}", "{{ ids.owner }}"]
steps:
  - assert_db:
      query: "SELECT id, n, note FROM engine_it_items WHERE owner = $1 ORDER BY n"
      params: ["{{ ids.owner }}"]
      rows: [{ id: "{{ ids.a }}", n: 1, note: first }, { n: 2, note: null }]
      row_count: 2
      capture: { second: "$[1].id" }
  - assert_db:
      query: "SELECT id FROM engine_it_items WHERE owner = $1"
      params: ["{{ ids.owner }}"]
      row_count: "#gte 1"
  - assert_db:
      query: "SELECT n, created_at FROM engine_it_items WHERE id = $1"
      params: ["{{ vars.second }}"]
      row: { n: "#gte 2", created_at: "#regex ^\\d{4}-" }
  - assert_db:
      query: "SELECT id FROM engine_it_items WHERE id = ANY($1) AND n = ANY($2)"
      params: [["{{ ids.a }}", "{{ ids.b }}"], [1, 2]]
      row_count: 2
  - sql: { query: "UPDATE engine_it_items SET n = n + 10 WHERE owner = $1", params: ["{{ ids.owner }}"] }
  - assert_db:
      query: "SELECT count(*) AS big FROM engine_it_items WHERE owner = $1 AND n > $2"
      params: ["{{ ids.owner }}", 10]
      row: { big: 2 }
teardown:
  - sql: "DELETE FROM engine_it_items WHERE owner = $1"
    params: ["{{ ids.owner }}"]
"##,
    );
    suite.spec(
        "db_fail.yaml",
        r##"
name: db mismatch
ids: { a: item, owner: user }
setup:
  - sql: "INSERT INTO engine_it_items (id, owner, n) VALUES ($1, $2, 7)"
    params: ["{{ ids.a }}", "{{ ids.owner }}"]
steps:
  - assert_db:
      query: "SELECT n FROM engine_it_items WHERE owner = $1"
      params: ["{{ ids.owner }}"]
      rows: [{ n: 8 }]
      eventually: 200ms
teardown:
  - sql: "DELETE FROM engine_it_items WHERE owner = $1"
    params: ["{{ ids.owner }}"]
"##,
    );
    let outcomes = suite.run().await;
    let ok = outcomes.iter().find(|o| o.name == "db rows").unwrap();
    ok.assert_passed();
    let bad = &outcomes
        .iter()
        .find(|o| o.name == "db mismatch")
        .unwrap()
        .failure;
    assert!(
        bad.contains("rows do not match (still failing after 200ms)"),
        "{bad}"
    );
    assert!(bad.contains("$[0].n: expected 8, got 7"), "{bad}");
    assert!(bad.contains("db_fail.yaml:8:5"), "{bad}");
    // Teardown ran for both: no rows left for their owners.
    let pool = sqlx::PgPool::connect(common::DATABASE_URL).await.unwrap();
    for o in &outcomes {
        let owner = o.ids["owner"].as_str().unwrap();
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM engine_it_items WHERE owner = $1")
                .bind(owner)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(left, 0, "teardown of {} left rows", o.name);
    }
}

#[tokio::test]
async fn redis_assertions_cover_every_type() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "kv.yaml",
        r##"
name: redis types
ids: { k: item }
setup:
  - redis: [SET, "{{ ids.k }}:s", "42", EX, 100]
  - redis: [HSET, "{{ ids.k }}:h", state, ready, n, 3]
  - redis: [SADD, "{{ ids.k }}:set", a, b]
  - redis: [RPUSH, "{{ ids.k }}:l", x, y]
  - redis: [ZADD, "{{ ids.k }}:z", 2, two, 1, one]
  - redis: [XADD, "{{ ids.k }}:x", "*", seq, 1]
  - redis: [XADD, "{{ ids.k }}:x", "*", seq, 2]
steps:
  - assert_redis: { key: "{{ ids.k }}:s", string: 42, ttl: { min: 90s, max: 100s }, type: string }
  - assert_redis: { key: "{{ ids.k }}:h", hash: { state: ready, n: "#regex ^3$" }, length: 2, capture: { st: $.state } }
  - assert_redis: { key: "{{ ids.k }}:h", hash_exact: { state: "{{ vars.st }}", n: 3 }, ttl: { none: true } }
  - assert_redis: { key: "{{ ids.k }}:set", set: [b, a], set_contains: [a], set_excludes: [c] }
  - assert_redis: { key: "{{ ids.k }}:l", list: [x, y] }
  - assert_redis: { key: "{{ ids.k }}:z", zset: [one, { member: two, score: 2 }] }
  - assert_redis: { key: "{{ ids.k }}:x", stream: { length: 2, entries: [{ seq: 1 }, { seq: 2 }], last: { seq: 2 } } }
  - assert_redis: { key: "{{ ids.k }}:x", stream: { length: "#lt 3" } }
  - assert_redis: { key: "{{ ids.k }}:l", length: "#gte 2" }
  - assert_redis: { key: "{{ ids.k }}:missing", exists: false }
  - assert_redis: { key: "{{ ids.k }}:missing", set: [], length: 0, set_excludes: [a] }
  - assert_redis: { key: "{{ ids.k }}:missing", stream: { length: 0 } }
  - redis: { command: [INCR, "{{ ids.k }}:s"], capture: { now: "$" } }
  - assert_redis: { key: "{{ ids.k }}:s", string: "{{ vars.now }}" }
teardown:
  - redis: [DEL, "{{ ids.k }}:s", "{{ ids.k }}:h", "{{ ids.k }}:set", "{{ ids.k }}:l", "{{ ids.k }}:z", "{{ ids.k }}:x"]
"##,
    );
    suite.spec(
        "kv_fail.yaml",
        r##"
name: redis mismatch
ids: { k: item }
setup:
  - redis: [HSET, "{{ ids.k }}:h", state, closing]
steps:
  - assert_redis: { key: "{{ ids.k }}:h", hash: { state: ready } }
teardown:
  - redis: [DEL, "{{ ids.k }}:h"]
"##,
    );
    suite.spec(
        "kv_missing.yaml",
        "name: missing key is not a non-empty set\nids: { k: item }\nsteps:\n  - assert_redis: { key: \"{{ ids.k }}:none\", set: [a] }\n",
    );
    suite.spec(
        "kv_count.yaml",
        "name: count placeholder fails\nids: { k: item }\nsetup:\n  - redis: [RPUSH, \"{{ ids.k }}:l\", x]\nsteps:\n  - assert_redis: { key: \"{{ ids.k }}:l\", length: \"#gte 2\" }\nteardown:\n  - redis: [DEL, \"{{ ids.k }}:l\"]\n",
    );
    let outcomes = suite.run().await;
    let ok = outcomes.iter().find(|o| o.name == "redis types").unwrap();
    ok.assert_passed();
    let bad = &outcomes
        .iter()
        .find(|o| o.name == "redis mismatch")
        .unwrap()
        .failure;
    assert!(
        bad.contains("$.state: expected \"ready\", got \"closing\""),
        "{bad}"
    );
}

#[tokio::test]
async fn teardown_runs_after_a_failure_and_after_a_timeout() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let key_fail = format!("engine-it:{}:after-failure", fresh());
    let key_timeout = format!("engine-it:{}:after-timeout", fresh());
    suite.spec(
        "fails.yaml",
        &format!(
            "name: fails\nsteps:\n  - connect: {{ url: \"{{{{ env.WS_URL }}}}/silent\" }}\n  - expect: {{ event: never, within: 100ms }}\nteardown:\n  - redis: [SET, \"{key_fail}\", done, EX, 60]\n"
        ),
    );
    suite.spec(
        "times_out.yaml",
        &format!(
            "name: times out\ntimeout: 300ms\nsteps:\n  - sleep: 10s\nteardown:\n  - redis: [SET, \"{key_timeout}\", done, EX, 60]\n"
        ),
    );
    let outcomes = suite.run().await;
    assert!(outcomes.iter().all(|o| o.verdict == Verdict::Failed));
    let mut conn = redis().await;
    for key in [&key_fail, &key_timeout] {
        let value: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            value.as_deref(),
            Some("done"),
            "teardown did not run for {key}"
        );
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn minted_ids_are_fresh_per_run_and_shown_on_failure() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "ids.yaml",
        "name: ids\nids: { alice: user, thing: item }\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: nope, within: 50ms }\n",
    );
    let first = suite.run().await;
    let second = suite.run().await;
    let a1 = first[0].ids["alice"].as_str().unwrap().to_string();
    let a2 = second[0].ids["alice"].as_str().unwrap().to_string();
    assert_ne!(a1, a2);
    assert!(
        a1.starts_with("usr_") && uuid::Uuid::parse_str(&a1[4..]).is_ok(),
        "{a1}"
    );
    assert_eq!(first[0].ids["thing"].as_str().unwrap().len(), 3 + 32);
}

#[tokio::test]
async fn sql_files_are_templated_fixtures_and_missing_ones_are_spec_errors() {
    ensure_table().await;
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "fixtures/seed.sql",
        "-- two rows for this scenario's owner\nINSERT INTO engine_it_items (id, owner, n) VALUES ('{{ ids.a }}', '{{ ids.owner }}', 1);\nINSERT INTO engine_it_items (id, owner, n) VALUES ('{{ ids.b }}', '{{ ids.owner }}', 2);\n",
    );
    suite.spec(
        "seeded.yaml",
        r##"
name: seeded from a file
ids: { a: item, b: item, owner: user }
setup:
  - sql_file: fixtures/seed.sql
steps:
  - assert_db:
      query: "SELECT sum(n)::int AS total FROM engine_it_items WHERE owner = $1"
      params: ["{{ ids.owner }}"]
      row: { total: 3 }
teardown:
  - sql: "DELETE FROM engine_it_items WHERE owner = $1"
    params: ["{{ ids.owner }}"]
"##,
    );
    suite.run().await[0].assert_passed();

    let broken = Suite::new(&url, "");
    broken.spec(
        "missing.yaml",
        "name: missing file\nsetup:\n  - sql_file: nowhere.sql\nsteps:\n  - sleep: 1ms\n",
    );
    let errors = broken.load_errors().join("\n");
    assert!(errors.contains("file `nowhere.sql` not found"), "{errors}");
    assert!(errors.contains("missing.yaml:3:"), "{errors}");
}

#[tokio::test]
async fn a_ttl_out_of_range_is_reported_in_words() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "ttl.yaml",
        r##"
name: ttl between
ids: { k: item }
setup:
  - redis: [SET, "{{ ids.k }}", "1", EX, 100]
steps:
  - assert_redis: { key: "{{ ids.k }}", ttl: { min: 26s, max: 28500ms } }
teardown:
  - redis: [DEL, "{{ ids.k }}"]
"##,
    );
    suite.spec(
        "ttl_min.yaml",
        r##"
name: ttl at least
ids: { k: item }
setup:
  - redis: [SET, "{{ ids.k }}", "1", EX, 100]
steps:
  - assert_redis: { key: "{{ ids.k }}", ttl: { min: 200s } }
teardown:
  - redis: [DEL, "{{ ids.k }}"]
"##,
    );
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    let between = &by_name("ttl between").failure;
    assert!(
        between.contains("expected between 26s and 28.5s"),
        "{between}"
    );
    assert!(!between.contains("Some("), "{between}");
    let at_least = &by_name("ttl at least").failure;
    assert!(at_least.contains("expected at least 200s"), "{at_least}");
}
