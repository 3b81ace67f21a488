//! Running library steps: bind the call's arguments to the step's parameters, run its
//! steps in a scope of their own, hand back its returned values, and register its
//! cleanup, which runs at teardown in reverse order of calls — also after a failure,
//! a timeout or an interruption.

use std::time::Duration;

use serde_json::{Map, Value};

use super::context::{Cleanup, Failure, Frame, ScenarioContext};
use super::scenario::{run_action, run_step, Located};
use crate::diagnostic::Diagnostic;
use crate::diagnostic::FailureKind;
use crate::spec::library::LibraryStep;
use crate::spec::model::Step;
use crate::template;

/// Run a [`StepKind::Call`](crate::spec::model::StepKind::Call) step.
pub async fn call(ctx: &mut ScenarioContext, step: &Step) -> Located {
    let library = step
        .call
        .clone()
        .ok_or_else(|| Failure::of(FailureKind::Spec, "a library call without its library step"))?;
    let caller = ctx.source().clone();
    ctx.set_step_at(&step.pointer);
    let (params, keep_as) =
        bind(ctx, &library, &step.body).map_err(|f| f.at_if_unlocated(&caller, step.span))?;
    let cleanup = ctx.cleanups.len();
    ctx.cleanups.push(Cleanup {
        library: library.clone(),
        params: params.clone(),
        vars: Map::new(),
    });
    let outer_locals = std::mem::take(&mut ctx.locals);
    ctx.frames.push(Frame {
        library: library.clone(),
        params,
        vars: Map::new(),
        cleanup,
        outer_locals,
    });
    let mut outcome = Ok(());
    for child in &library.steps {
        if let Err(failure) = run_step(ctx, child).await {
            outcome = Err(failure);
            break;
        }
    }
    let returned = match outcome {
        Ok(()) => returns(ctx, &library),
        Err(failure) => Err(failure),
    };
    let frame = ctx.frames.pop().expect("the frame pushed above");
    ctx.locals = frame.outer_locals;
    if let Some(entry) = ctx.cleanups.get_mut(frame.cleanup) {
        entry.vars = frame.vars;
    }
    let returned = returned.map_err(|f| f.called_from(&caller, step.span))?;
    match keep_as {
        Some(name) => {
            ctx.vars_mut().insert(name, Value::Object(returned));
        }
        None => ctx.vars_mut().extend(returned),
    }
    Ok(())
}

/// Render the call's arguments in the caller's scope, add defaults (rendered in the
/// step's scope, which has only `env` and earlier parameters), and check types.
fn bind(
    ctx: &ScenarioContext,
    library: &LibraryStep,
    body: &Value,
) -> Result<(Map<String, Value>, Option<String>), Failure> {
    let mut args = match ctx.render_value(body, &[])? {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(Failure::of(
                FailureKind::Spec,
                format!(
                    "`{}` takes its parameters as a map, got {other}",
                    library.name
                ),
            ))
        }
    };
    let keep_as = match args.remove("as") {
        Some(Value::String(name)) => Some(name),
        Some(other) => {
            return Err(Failure::of(
                FailureKind::Spec,
                format!("`as` must be a name, got {other}"),
            ))
        }
        None => None,
    };
    let mut params = Map::new();
    for param in &library.params {
        let value = match (args.remove(&param.name), &param.default) {
            (Some(value), _) => value,
            (None, Some(default)) => render_default(ctx, &params, default)?,
            (None, None) => {
                return Err(Failure::of(
                    FailureKind::Spec,
                    format!("`{}` needs parameter `{}`", library.name, param.name),
                ))
            }
        };
        if !param.kind.admits(&value) {
            return Err(Failure::of(
                FailureKind::Spec,
                format!(
                    "parameter `{}` of `{}` must be a {}, got {value}",
                    param.name,
                    library.name,
                    param.kind.name()
                ),
            ));
        }
        params.insert(param.name.clone(), value);
    }
    if let Some(unknown) = args.keys().next() {
        return Err(Failure::of(
            FailureKind::Spec,
            format!("`{}` has no parameter `{unknown}`", library.name),
        ));
    }
    Ok((params, keep_as))
}

fn render_default(
    ctx: &ScenarioContext,
    earlier: &Map<String, Value>,
    default: &Value,
) -> Result<Value, Failure> {
    if !template::contains_template(default) {
        return Ok(default.clone());
    }
    let mut scope: Vec<(String, minijinja::Value)> = vec![("env".into(), ctx.env())];
    scope.extend(
        earlier
            .iter()
            .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v))),
    );
    let scope: minijinja::Value = scope.into_iter().collect();
    template::render_value(default, &scope).map_err(|e| {
        Failure::of(
            FailureKind::Template,
            format!("default value: {}", e.message),
        )
    })
}

/// The step's `returns`, rendered in its own scope once its steps have run.
fn returns(ctx: &ScenarioContext, library: &LibraryStep) -> Result<Map<String, Value>, Failure> {
    if library.returns.is_empty() {
        return Ok(Map::new());
    }
    match ctx.render_value(&Value::Object(library.returns.clone()), &[]) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(f) => Err(Failure {
            message: format!("returns of `{}`: {}", library.name, f.message),
            ..f
        }
        .in_file(&library.source)),
    }
}

/// Run every registered cleanup, last registered first, each action under `limit`.
/// A call interrupted mid-way (timeout, signal) still has its frame on the stack: its
/// variables so far are what its cleanup sees. An action that reads a variable the call
/// never produced is skipped: what it would undo was never created.
pub async fn run_cleanups(ctx: &mut ScenarioContext, limit: Duration) -> Vec<Diagnostic> {
    while let Some(frame) = ctx.frames.pop() {
        ctx.locals = frame.outer_locals;
        if let Some(entry) = ctx.cleanups.get_mut(frame.cleanup) {
            entry.vars = frame.vars;
        }
    }
    let mut failures = Vec::new();
    while let Some(cleanup) = ctx.cleanups.pop() {
        let Cleanup {
            library,
            params,
            vars,
        } = cleanup;
        for action in &library.cleanup {
            if reads_missing_var(&action.body, &vars) {
                continue;
            }
            ctx.frames.push(Frame {
                library: library.clone(),
                params: params.clone(),
                vars: vars.clone(),
                cleanup: usize::MAX,
                outer_locals: Map::new(),
            });
            let result = tokio::time::timeout(limit, run_action(ctx, action)).await;
            ctx.frames.pop();
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(f)) => Failure {
                    message: format!("cleanup of `{}`: {}", library.name, f.message),
                    ..f
                },
                Err(_) => Failure::of(
                    FailureKind::Timeout,
                    format!(
                        "cleanup of `{}` did not finish within {limit:?}",
                        library.name
                    ),
                ),
            };
            failures.push(failure.at_if_unlocated(&library.source, action.span));
        }
    }
    failures
}

fn reads_missing_var(body: &Value, vars: &Map<String, Value>) -> bool {
    match body {
        Value::String(s) if template::is_template(s) => template::referenced_names(s)
            .unwrap_or_default()
            .iter()
            .filter_map(|name| name.strip_prefix("vars."))
            .any(|name| !vars.contains_key(name.split('.').next().unwrap_or(name))),
        Value::Array(items) => items.iter().any(|i| reads_missing_var(i, vars)),
        Value::Object(map) => map.values().any(|v| reads_missing_var(v, vars)),
        _ => false,
    }
}
