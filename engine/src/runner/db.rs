//! SQL: fixtures, `sql` steps and `assert_db`. Values reach SQL only as bound
//! parameters. Fixtures and `sql` steps are the only writers: `assert_db` reads in a
//! read-only transaction. Rows come back as JSON via Postgres's own `json_agg`, so any
//! column type compares the same way, whatever the application's schema.

use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;

use super::context::{Failure, ScenarioContext, StepResult};
use super::observed::{Observation, Store};
use super::poll::poll;
use crate::diagnostic::FailureKind;
use crate::matcher::compare;
use crate::spec::model::{AssertDbStep, SqlStep};

fn bind<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [Value],
) -> Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) if n.is_i64() => query.bind(n.as_i64()),
            Value::Number(n) => query.bind(n.as_f64()),
            Value::String(s) => query.bind(s.as_str()),
            // Homogeneous arrays bind as Postgres arrays (`= ANY($1)`); others as JSON.
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => query
                .bind(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<String>>(),
                ),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_i64) => {
                query.bind(items.iter().filter_map(Value::as_i64).collect::<Vec<i64>>())
            }
            other => query.bind(sqlx::types::Json(other)),
        };
    }
    query
}

pub async fn execute(
    ctx: &ScenarioContext,
    database: Option<&str>,
    sql: &str,
    params: &[Value],
) -> Result<u64, Failure> {
    let url = ctx.database_url(database)?;
    let pool = ctx.resources.postgres(&url).await?;
    let run = || async {
        if params.is_empty() && sql.contains(';') {
            // Several statements (a fixture file): run as a batch.
            sqlx::raw_sql(sql).execute(&pool).await
        } else {
            bind(sqlx::query(sql), params).execute(&pool).await
        }
    };
    // A write runs again only when its session was ended (so it was rolled back).
    once_more_if(session_ended, run)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| {
            Failure::of(FailureKind::Database, format!("SQL failed: {e}"))
                .note(format!("statement: {}", crate::text::truncate(sql, 400)))
        })
}

pub async fn sql_step(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: SqlStep = ctx.render_step(body, &[])?;
    execute(ctx, step.database.as_deref(), &step.query, &step.params).await?;
    Ok(())
}

/// Time a read may take past its statement timeout (connecting, the round trips around
/// it) before the step gives up on it anyway.
const READ_GRACE: Duration = Duration::from_millis(500);

/// All rows of an `assert_db` query (and so of its captures) as JSON objects keyed by
/// their own column names. The query runs on a read-only connection with a statement
/// timeout of the step timeout: only `sql` steps and fixtures write.
async fn rows(ctx: &ScenarioContext, step: &AssertDbStep) -> Result<Vec<Value>, Failure> {
    let url = ctx.database_url(step.database.as_deref())?;
    let limit = ctx.step_timeout();
    let pool = ctx.resources.postgres_reader(&url, limit).await?;
    let query = step.query.trim().trim_end_matches(';').trim_end();
    // A read is safe to run again whatever happened to its connection.
    let read = once_more_if(connection_lost, || read(&pool, query, &step.params));
    match tokio::time::timeout(limit + READ_GRACE, read).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(read_failure(&e, query, limit)),
        Err(_) => Err(too_slow(query, limit)),
    }
}

/// One round trip: the rows as one JSON array. The pool's connections are read-only by
/// their start-up options (a query cannot reach a transaction statement: it is wrapped
/// in a `SELECT`), so no transaction is opened around it. A read may still turn its
/// session's defaults (`set_config('default_transaction_read_only', 'off', false)`):
/// the same statement reports them once the rows are aggregated, and a connection left
/// read-write or without a statement timeout is closed rather than serve another read.
async fn read(
    pool: &sqlx::PgPool,
    query: &str,
    params: &[Value],
) -> Result<Vec<Value>, sqlx::Error> {
    // `q.*` is the whole row even when a column is itself named `q`; the line break ends
    // a trailing `-- comment` in the query.
    let wrapped = format!(
        "SELECT COALESCE(json_agg(q.*), '[]'::json), \
         pg_catalog.current_setting('default_transaction_read_only') = 'on' \
         AND pg_catalog.current_setting('statement_timeout') <> '0' \
         FROM ({query}\n) AS q"
    );
    let mut connection = pool.acquire().await?;
    let row = bind(sqlx::query(&wrapped), params)
        .fetch_one(&mut *connection)
        .await?;
    let still_read_only: bool = sqlx::Row::try_get(&row, 1)?;
    if !still_read_only {
        connection.close_on_drop();
    }
    let value: sqlx::types::Json<Value> = sqlx::Row::try_get(&row, 0)?;
    Ok(match value.0 {
        Value::Array(rows) => rows,
        other => vec![other],
    })
}

/// Run `statement`, and once more (on another pooled connection) when its first try
/// failed as `safe_again` allows. A pooled connection is not pinged when it was used a
/// moment ago (see `Resources::postgres`): one the server ended since fails at once.
async fn once_more_if<T, Run, Ran>(
    safe_again: fn(&sqlx::Error) -> bool,
    statement: Run,
) -> Result<T, sqlx::Error>
where
    Run: Fn() -> Ran,
    Ran: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match statement().await {
        Err(e) if safe_again(&e) => statement().await,
        done => done,
    }
}

/// Whether the connection was gone (the server ended the session, the socket closed)
/// rather than the statement at fault.
fn connection_lost(error: &sqlx::Error) -> bool {
    // Class 08: a connection exception.
    matches!(error, sqlx::Error::Io(_)) || session_ended(error) || sqlstate_in(error, "08")
}

/// Whether the server ended the session (class 57P: terminated, shut down, idle too
/// long): whatever it was running was rolled back, so even a write may run again.
fn session_ended(error: &sqlx::Error) -> bool {
    sqlstate_in(error, "57P")
}

/// Whether Postgres reported the error with a SQLSTATE of this class.
fn sqlstate_in(error: &sqlx::Error, class: &str) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with(class))
}

/// Why a read failed, in the user's terms: it tried to write, it was too slow, or what
/// Postgres said.
fn read_failure(error: &sqlx::Error, query: &str, limit: Duration) -> Failure {
    let shown = format!("query: {}", crate::text::truncate(query, 400));
    let Some(db) = error.as_database_error() else {
        return Failure::of(FailureKind::Database, format!("query failed: {error}")).note(shown);
    };
    let code = db.code().unwrap_or_default();
    let writes = match code.as_ref() {
        // read_only_sql_transaction: a write, directly or inside a function.
        "25006" => Some(db.message().to_string()),
        // A data-modifying WITH can only be a top-level statement.
        "0A000" if db.message().contains("data-modifying") => Some(db.message().to_string()),
        // INSERT/UPDATE/DELETE… cannot be a subquery: Postgres sees a syntax error.
        "42601" => write_keyword(query).map(|k| format!("`{k}` is a write statement")),
        _ => None,
    };
    if let Some(reason) = writes {
        return Failure::of(
            FailureKind::Spec,
            format!("the query writes, but `assert_db` queries run read-only: {reason}"),
        )
        .note(shown)
        .hint(
            "change data with a `sql` step or a fixture; `assert_db` and its captures only read",
        );
    }
    if code == "57014" {
        return too_slow(query, limit);
    }
    Failure::of(FailureKind::Database, format!("query failed: {error}")).note(shown)
}

fn too_slow(query: &str, limit: Duration) -> Failure {
    Failure::of(
        FailureKind::Timeout,
        format!(
            "the query did not finish within {limit:?} (the step timeout, its statement timeout)"
        ),
    )
    .note(format!("query: {}", crate::text::truncate(query, 400)))
    .hint("make the query cheaper, or raise `timeouts.step` in engine.yaml")
}

/// The keyword a statement begins with, when it changes data or schema.
fn write_keyword(query: &str) -> Option<String> {
    const WRITES: [&str; 14] = [
        "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "CREATE", "DROP", "ALTER", "GRANT",
        "REVOKE", "COPY", "CALL", "DO", "VACUUM",
    ];
    let first = query
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?
        .to_ascii_uppercase();
    WRITES.contains(&first.as_str()).then_some(first)
}

fn check(step: &AssertDbStep, rows: &[Value]) -> Result<(), Failure> {
    let got = || {
        format!(
            "rows: {}",
            crate::text::truncate(&Value::Array(rows.to_vec()).to_string(), 1500)
        )
    };
    if let Some(count) = &step.row_count {
        if !crate::matcher::count_holds(count, rows.len()) {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "expected {} rows, got {}",
                    crate::matcher::show_count(count),
                    rows.len()
                ),
            )
            .note(got()));
        }
    }
    if let Some(expected) = &step.row {
        if rows.len() != 1 {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("expected exactly one row, got {}", rows.len()),
            )
            .note(got()));
        }
        let mismatches = compare(expected, Some(&rows[0]), false);
        if !mismatches.is_empty() {
            return Err(mismatch_failure("the row does not match", &mismatches).note(got()));
        }
    }
    if let Some(expected) = &step.rows {
        let mismatches = compare(
            &Value::Array(expected.clone()),
            Some(&Value::Array(rows.to_vec())),
            false,
        );
        if !mismatches.is_empty() {
            return Err(mismatch_failure("rows do not match", &mismatches).note(got()));
        }
    }
    Ok(())
}

pub fn mismatch_failure(message: &str, mismatches: &[crate::matcher::Mismatch]) -> Failure {
    let lines: Vec<String> = mismatches
        .iter()
        .take(20)
        .map(|m| format!("  {m}"))
        .collect();
    Failure::of(FailureKind::Mismatch, message).note(format!("differences:\n{}", lines.join("\n")))
}

pub async fn assert_db(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let rendered = ctx.render_value(body, &[])?;
    let step: AssertDbStep = ctx.typed(rendered.clone())?;
    let deadline = step.eventually.unwrap_or(Duration::ZERO);
    // The last rows read, shown in reports whether the check passed or not.
    let seen = std::sync::Mutex::new(Value::Null);
    let outcome = poll(deadline, || async {
        *crate::sync::lock(&seen) = Value::Null;
        let rows = rows(ctx, &step).await?;
        *crate::sync::lock(&seen) = Value::Array(rows.clone());
        check(&step, &rows)?;
        Ok(rows)
    })
    .await;
    let actual = crate::sync::into_inner(seen);
    ctx.observed(Observation::new(
        Store::Postgres,
        &step.query,
        &rendered,
        actual,
        outcome.is_ok(),
    ));
    let rows = outcome?;
    if !step.capture.is_empty() {
        ctx.capture(&step.capture, &Value::Array(rows))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_keyword;

    #[test]
    fn recognises_statements_that_write() {
        assert_eq!(write_keyword("DELETE FROM t").as_deref(), Some("DELETE"));
        assert_eq!(
            write_keyword("  (update t set a = 1)").as_deref(),
            Some("UPDATE")
        );
        assert_eq!(write_keyword("SELECT * FROM deleted_rows"), None);
        assert_eq!(write_keyword("WITH x AS (SELECT 1) SELECT * FROM x"), None);
        assert_eq!(write_keyword(""), None);
    }
}
