//! The `http` step: a request, its expected status and JSON body subset, captures.

use serde_json::Value;

use super::context::{Failure, ScenarioContext, StepResult};
use super::db::mismatch_failure;
use super::jwt;
use crate::diagnostic::FailureKind;
use crate::matcher::compare;
use crate::spec::model::HttpStep;

pub async fn http(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: HttpStep = ctx.render_step(body, &[])?;
    let method = step.method.as_deref().unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| Failure::of(FailureKind::Spec, format!("bad HTTP method `{method}`")))?;
    let mut request = super::resources::http_client()
        .request(method.clone(), &step.url)
        .timeout(step.within.unwrap_or_else(|| ctx.step_timeout()));
    for (key, value) in &step.headers {
        request = request.header(key, value);
    }
    if let Some(credentials) = &step.bearer {
        request = request.bearer_auth(jwt::token(ctx, credentials)?);
    }
    if let Some(json) = &step.json {
        request = request.json(json);
    } else if let Some(body) = &step.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|e| {
        Failure::of(
            FailureKind::Http,
            format!("{method} {} failed: {e}", step.url),
        )
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| {
        Failure::of(
            FailureKind::Http,
            format!("reading the response of {} failed: {e}", step.url),
        )
    })?;
    let shown = || format!("response ({status}): {}", crate::text::truncate(&text, 800));
    if let Some(expected) = step.status {
        if expected != status {
            return Err(Failure::of(
                FailureKind::Mismatch,
                format!("expected HTTP {expected}, got {status}"),
            )
            .note(shown()));
        }
    } else if status >= 400 {
        return Err(Failure::of(
            FailureKind::Http,
            format!("HTTP {status} from {method} {}", step.url),
        )
        .note(shown())
        .hint("add `status:` to expect an error status"));
    }
    let json: Option<Value> = serde_json::from_str(&text).ok();
    if let Some(expected) = &step.response {
        let mismatches = compare(expected, json.as_ref(), false);
        if !mismatches.is_empty() {
            return Err(
                mismatch_failure("the response body does not match", &mismatches).note(shown()),
            );
        }
    }
    if !step.capture.is_empty() {
        let value = json.unwrap_or(Value::String(text));
        ctx.capture(&step.capture, &value)?;
    }
    Ok(())
}
