//! SQL: fixtures, `sql` steps and `assert_db`. Values reach SQL only as bound
//! parameters. Rows come back as JSON via Postgres's own `json_agg`, so any column
//! type compares the same way, whatever the application's schema.

use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;

use super::context::{Failure, ScenarioContext, StepResult};
use super::poll::poll;
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
    let pool = ctx.resources.postgres(&url).await.map_err(Failure::new)?;
    let result = if params.is_empty() && sql.contains(';') {
        // Several statements (a fixture file): run as a batch.
        sqlx::raw_sql(sql).execute(&pool).await
    } else {
        bind(sqlx::query(sql), params).execute(&pool).await
    };
    result.map(|r| r.rows_affected()).map_err(|e| {
        Failure::new(format!("SQL failed: {e}"))
            .note(format!("statement: {}", crate::text::truncate(sql, 400)))
    })
}

pub async fn sql_step(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: SqlStep = ctx.render(body, &[])?;
    execute(ctx, step.database.as_deref(), &step.query, &step.params).await?;
    Ok(())
}

/// All rows of a query as a JSON array of objects.
async fn rows(ctx: &ScenarioContext, step: &AssertDbStep) -> Result<Vec<Value>, Failure> {
    let url = ctx.database_url(step.database.as_deref())?;
    let pool = ctx.resources.postgres(&url).await.map_err(Failure::new)?;
    let inner = step.query.trim().trim_end_matches(';');
    let wrapped = format!("SELECT COALESCE(json_agg(q), '[]'::json) FROM ({inner}) AS q");
    let row = bind(sqlx::query(&wrapped), &step.params)
        .fetch_one(&pool)
        .await
        .map_err(|e| Failure::new(format!("query failed: {e}")).note(format!("query: {inner}")))?;
    let value: sqlx::types::Json<Value> = sqlx::Row::try_get(&row, 0)
        .map_err(|e| Failure::new(format!("cannot read the query's rows as JSON: {e}")))?;
    match value.0 {
        Value::Array(rows) => Ok(rows),
        other => Ok(vec![other]),
    }
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
            return Err(Failure::new(format!(
                "expected {} rows, got {}",
                crate::matcher::show_count(count),
                rows.len()
            ))
            .note(got()));
        }
    }
    if let Some(expected) = &step.row {
        if rows.len() != 1 {
            return Err(
                Failure::new(format!("expected exactly one row, got {}", rows.len())).note(got()),
            );
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
    Failure::new(message).note(format!("differences:\n{}", lines.join("\n")))
}

pub async fn assert_db(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: AssertDbStep = ctx.render(body, &[])?;
    let deadline = step.eventually.unwrap_or(Duration::ZERO);
    let rows = poll(deadline, || async {
        let rows = rows(ctx, &step).await?;
        check(&step, &rows)?;
        Ok(rows)
    })
    .await?;
    if !step.capture.is_empty() {
        ctx.capture(&step.capture, &Value::Array(rows))?;
    }
    Ok(())
}
