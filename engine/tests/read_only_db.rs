//! `assert_db` (and its captures) only read: its queries run on read-only connections
//! with a statement timeout, against the real Postgres. Rows keep their own column names.
//! Each test creates its own schema and drops only that.

mod common;

use std::time::{Duration, Instant};

use common::{fresh, start_server, Suite, DATABASE_URL};
use engine::runner::Verdict;

/// A schema of this test's own, with a table of two rows and a function that deletes
/// one; dropped (with everything in it) when the test ends.
struct Scratch {
    schema: String,
    pool: sqlx::PgPool,
}

impl Scratch {
    async fn new() -> Scratch {
        let pool = sqlx::PgPool::connect(DATABASE_URL)
            .await
            .expect("Postgres at 127.0.0.1:5432 must be reachable for these tests");
        let schema = format!("engine_it_{}", fresh());
        for statement in [
            format!("CREATE SCHEMA {schema}"),
            format!("CREATE TABLE {schema}.items (id int PRIMARY KEY, q text, b int)"),
            format!("INSERT INTO {schema}.items VALUES (1, 'one', 10), (2, 'two', 20)"),
            format!("CREATE SEQUENCE {schema}.counter"),
            format!(
                "CREATE FUNCTION {schema}.zap() RETURNS int LANGUAGE sql AS \
                 'DELETE FROM {schema}.items WHERE id = 1 RETURNING id'"
            ),
        ] {
            sqlx::query(&statement).execute(&pool).await.unwrap();
        }
        Scratch { schema, pool }
    }

    async fn ids(&self) -> Vec<i32> {
        sqlx::query_scalar(&format!("SELECT id FROM {}.items ORDER BY id", self.schema))
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_query_that_writes_fails_and_writes_nothing() {
    let scratch = Scratch::new().await;
    let s = &scratch.schema;
    let suite = Suite::new(&start_server().await, "");
    // Statements that write on their face are spec errors (`engine check`); what writes
    // only when it runs (a function, a sequence) is stopped by the read-only transaction.
    let plain = Suite::new(&start_server().await, "");
    for (i, query) in [
        format!("DELETE FROM {s}.items WHERE id = 1"),
        format!("WITH d AS (DELETE FROM {s}.items WHERE id = 1 RETURNING *) SELECT * FROM d"),
    ]
    .iter()
    .enumerate()
    {
        plain.spec(
            &format!("p{i}.yaml"),
            &format!(
                "name: writes {i}\nsteps:\n  - assert_db: {{ query: \"{query}\", row_count: 1 }}\n"
            ),
        );
    }
    let errors = plain.load_errors().join("\n");
    for i in 0..2 {
        assert!(errors.contains(&format!("p{i}.yaml:3:")), "{errors}");
    }
    assert!(errors.contains("`assert_db` only reads"), "{errors}");
    let writes = [
        ("through a function", format!("SELECT {s}.zap()")),
        ("with nextval", format!("SELECT nextval('{s}.counter')")),
    ];
    for (i, (name, query)) in writes.iter().enumerate() {
        suite.spec(
            &format!("w{i}.yaml"),
            &format!("name: writes {name}\nsteps:\n  - assert_db: {{ query: \"{query}\", row_count: 1 }}\n"),
        );
    }
    // A read that turns its session's default to read-write: its connection is closed
    // (its server process goes away) rather than serve another read.
    suite.spec(
        "w2.yaml",
        &format!(
            "name: writes after set_config\nsteps:\n  - assert_db: {{ query: \"SELECT set_config('default_transaction_read_only', 'off', false) AS v, pg_backend_pid() AS pid\", row: {{ v: 'off' }}, capture: {{ pid: '$[0].pid' }} }}\n  - assert_db: {{ query: \"SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1\", params: ['{{{{ vars.pid }}}}'], row: {{ n: 0 }}, eventually: 5s }}\n  - assert_db: {{ query: \"SELECT {s}.zap()\", row_count: 1 }}\n"
        ),
    );
    let outcomes = suite.run().await;
    assert_eq!(outcomes.len(), writes.len() + 1);
    for outcome in &outcomes {
        assert_eq!(outcome.verdict, Verdict::Failed, "{}", outcome.name);
        assert!(
            outcome
                .failure
                .contains("the query writes, but `assert_db` queries run read-only"),
            "{}: {}",
            outcome.name,
            outcome.failure
        );
        assert!(
            outcome
                .failure
                .contains("hint: change data with a `sql` step or a fixture"),
            "{}",
            outcome.failure
        );
    }
    assert_eq!(scratch.ids().await, vec![1, 2], "a read-only query wrote");
    let next: i64 = sqlx::query_scalar(&format!("SELECT nextval('{s}.counter')"))
        .fetch_one(&scratch.pool)
        .await
        .unwrap();
    assert_eq!(next, 1, "nextval ran inside assert_db");
    scratch.drop().await;
}

#[tokio::test]
async fn rows_keep_their_own_column_names_and_sql_steps_still_write() {
    let scratch = Scratch::new().await;
    let s = &scratch.schema;
    let suite = Suite::new(&start_server().await, "");
    // `q` was the wrapper's alias; `json_agg`, `coalesce` and `row` are names it uses or
    // that Postgres treats specially.
    suite.spec(
        "names.yaml",
        &format!(
            "name: names\nsteps:\n  - assert_db: {{ query: \"SELECT id, q, b FROM {s}.items WHERE id = $1\", params: [1], row: {{ id: 1, q: one, b: 10 }} }}\n  - assert_db: {{ query: \"SELECT 1 AS q, 2 AS json_agg, 3 AS coalesce, 4 AS row -- a trailing comment\", row: {{ q: 1, json_agg: 2, coalesce: 3, row: 4 }} }}\n  - assert_db: {{ query: \"SELECT q FROM {s}.items ORDER BY id\", rows: [{{ q: one }}, {{ q: two }}], capture: {{ first: '$[0].q' }} }}\n  - sql: {{ query: \"INSERT INTO {s}.items VALUES (3, '{{{{ vars.first }}}}', 30)\" }}\n  - assert_db: {{ query: \"SELECT q, b FROM {s}.items WHERE id = 3\", row: {{ q: one, b: 30 }} }}\n"
        ),
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
    assert_eq!(scratch.ids().await, vec![1, 2, 3]);
    scratch.drop().await;
}

#[tokio::test]
async fn a_slow_query_is_cancelled_at_the_step_timeout() {
    let suite = Suite::new(&start_server().await, "");
    suite.spec(
        "slow.yaml",
        "name: slow\nsteps:\n  - assert_db: { query: \"SELECT pg_sleep(30)\", row_count: 1 }\n",
    );
    let started = Instant::now();
    let outcomes = suite.run().await;
    let took = started.elapsed();
    assert_eq!(outcomes[0].verdict, Verdict::Failed);
    assert!(
        outcomes[0]
            .failure
            .contains("the query did not finish within 2s"),
        "{}",
        outcomes[0].failure
    );
    // The suite's step timeout is 2 s; the query asked for 30: well under 30 s even on
    // a loaded machine, or the query was not cancelled.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[tokio::test]
async fn a_statement_on_a_connection_the_server_closed_runs_again_on_another() {
    let suite = Suite::new(&start_server().await, "");
    // Each pool's connection is ended by the server a moment after its last use (too
    // soon for the pool to ping it first): the next read and the next write still run.
    let name = format!("engine-it-{}", fresh());
    suite.spec(
        "ended.yaml",
        &format!(
            "name: ended\nsteps:\n  - assert_db: {{ query: \"SELECT pg_backend_pid() AS pid\", row_count: 1, capture: {{ pid: '$[0].pid' }} }}\n  - sql: {{ query: \"SELECT pg_terminate_backend($1::int)\", params: [\"{{{{ vars.pid }}}}\"] }}\n  - assert_db: {{ query: \"SELECT pg_backend_pid() <> $1::int AS replaced\", params: [\"{{{{ vars.pid }}}}\"], row: {{ replaced: true }} }}\n  - sql: {{ query: \"SELECT set_config('application_name', '{name}', false)\" }}\n  - assert_db: {{ query: \"SELECT count(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity WHERE application_name = '{name}'\", row: {{ ended: 1 }} }}\n  - sql: {{ query: \"SELECT 1\" }}\n"
        ),
    );
    let outcomes = suite.run().await;
    outcomes[0].assert_passed();
}
