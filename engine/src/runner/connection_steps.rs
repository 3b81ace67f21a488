//! Steps that open, use and end connections: connect, authenticate, send, close,
//! disconnect.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use super::context::{Failure, ScenarioContext, StepResult};
use super::jwt;
use super::plan::{Outgoing, OutgoingFrame, SendPlan};
use super::protocol;
use super::ws::{tls_config, ConnectError, ConnectRequest, Connection, FrameRules};
use crate::diagnostic::FailureKind;
use crate::spec::model::*;
use crate::spec::profile;
use crate::text::percent_encode;

/// The step merged over its profile (`profile:`, else `profiles.default` when the step
/// has no `url`), and the identity the profile's templates read as `{{ identity }}`.
fn with_profile(ctx: &ScenarioContext, body: &Value) -> Result<(Value, Value), Failure> {
    let mut own = body.as_object().cloned().unwrap_or_default();
    let named = match own.remove("profile") {
        Some(name) => match ctx.render_value(&name, &[])? {
            Value::String(name) => Some(name),
            other => {
                return Err(Failure::of(
                    FailureKind::Spec,
                    format!("`profile` must be a name, got {other}"),
                ))
            }
        },
        None => None,
    };
    let identity = match own.remove("identity") {
        Some(identity) => ctx.render_value(&identity, &[])?,
        None => Value::Null,
    };
    let profile = profile::profile_of(&ctx.config, &own, named.as_deref())
        .map_err(|unknown| Failure::of(FailureKind::Spec, unknown.to_string()))?;
    let mut merged = Value::Object(profile.cloned().unwrap_or_default());
    profile::merge(&mut merged, Value::Object(own));
    Ok((merged, identity))
}

pub async fn connect(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let (mut body, identity) = with_profile(ctx, body)?;
    let per_connection = profile::captures_per_connection(&body);
    // `authenticate.message` is rendered later, once `{{ token }}` exists; the ready
    // pattern is rendered by the wait.
    let message_template = body
        .get_mut("authenticate")
        .and_then(Value::as_object_mut)
        .and_then(|auth| auth.remove("message"));
    let locals = [("identity", identity)];
    let mut step: ConnectStep = ctx.render(&body, &locals)?;
    if let Some(credentials) = step.authenticate.as_mut() {
        credentials.message = message_template;
    }
    let name = step
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_CONNECTION.into());
    // A closed connection's name can be reused (reconnect as the same tab).
    let taken = match ctx.connections.get(&name) {
        Some(existing) => existing.is_open().await,
        None => false,
    };
    if taken {
        return Err(Failure::of(
            FailureKind::Spec,
            format!("a connection named `{name}` is already open"),
        )
        .hint("give the new connection another `name:`"));
    }
    let mut url = step.url.clone();
    let mut headers: Vec<(String, String)> = step.headers.clone().into_iter().collect();
    let mut subprotocols = step.subprotocols.clone();
    let mut query: Vec<(String, String)> = step
        .query
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let mut first_message = None;
    if let Some(credentials) = &step.authenticate {
        let token = jwt::token(ctx, credentials)?;
        match credentials.present_as {
            PresentAs::Bearer => headers.push((
                credentials
                    .header
                    .clone()
                    .unwrap_or_else(|| "Authorization".into()),
                format!("Bearer {token}"),
            )),
            PresentAs::Query => query.push((
                credentials.param.clone().unwrap_or_else(|| "token".into()),
                token,
            )),
            PresentAs::Subprotocol => subprotocols.push(token),
            PresentAs::Message => {
                first_message = Some(auth_message(
                    ctx,
                    credentials.message.as_ref(),
                    &token,
                    &locals[0].1,
                )?)
            }
        }
    }
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&encoded.join("&"));
    }
    if step.protocol == ProtocolKind::SocketIo {
        url = protocol::socket_io::engine_io_url(&url);
    }
    let rules = FrameRules {
        binary_json: step.binary_json,
        ..ctx.rules.clone()
    };
    let protocol = protocol::for_connection(&step, &rules)?;
    if let Some(wanted) = protocol::lock(&protocol).subprotocol() {
        if !subprotocols.iter().any(|s| s == wanted) {
            subprotocols.push(wanted.to_string());
        }
    }
    let tls = if url.starts_with("wss://") {
        let ca = step.ca_file.as_ref().map(|f| ctx.base_dir().join(f));
        Some(tls_config(ca.as_deref())?)
    } else {
        None
    };
    let within = step.within.unwrap_or_else(|| ctx.step_timeout());
    let request = ConnectRequest {
        url: url.clone(),
        headers,
        subprotocols,
        tls,
        timeout: within,
        local_ip: ctx.resources.local_ip(),
    };
    let connecting = std::time::Instant::now();
    let opened = Connection::open(&name, request, rules, protocol, ctx.transcript.clone()).await;
    if let (Ok(_), Some(meter)) = (&opened, ctx.transcript.meter()) {
        meter.connected(connecting.elapsed());
    }
    match (opened, step.expect_status) {
        (Ok(connection), None) => {
            if let Some(expected) = &step.expect_subprotocol {
                if connection.subprotocol.as_deref() != Some(expected.as_str()) {
                    return Err(Failure::of(
                        FailureKind::Mismatch,
                        format!(
                            "expected the server to pick subprotocol `{expected}`, {}",
                            match &connection.subprotocol {
                                Some(picked) => format!("it picked `{picked}`"),
                                None => "it picked none".to_string(),
                            }
                        ),
                    ));
                }
            }
            let connection = Arc::new(connection);
            // Kept before opening, so teardown closes it whatever happens.
            ctx.connections.insert(name.clone(), connection.clone());
            // The protocol's opening phase shares the handshake's deadline.
            let left = within.saturating_sub(connecting.elapsed());
            protocol::open(&connection, left).await?;
            if let Some(message) = first_message {
                connection.send_text(message, ctx.step_timeout()).await?;
            }
            let Some(mut ready) = step.ready.as_ref().and_then(ReadyWait::pattern) else {
                return Ok(());
            };
            // Ready captures are kept per connection (`vars.<name>.<capture>`) unless
            // the step has a `capture:` of its own.
            if !step.capture.is_empty() {
                ready.capture = step.capture.clone();
            }
            let captured = super::expect::await_ready(ctx, &name, &ready, within).await?;
            if per_connection {
                ctx.vars_mut().insert(name, Value::Object(captured));
            } else {
                ctx.vars_mut().extend(captured);
            }
            Ok(())
        }
        (Ok(_), Some(status)) => Err(Failure::of(
            FailureKind::Mismatch,
            format!("expected the handshake to be refused with HTTP {status}, but it was accepted"),
        )),
        (Err(ConnectError::Refused { status, body }), Some(expected)) if status == expected => {
            let _ = body;
            Ok(())
        }
        (Err(ConnectError::Refused { status, body }), expected) => {
            let (kind, message) = match expected {
                Some(e) => (
                    FailureKind::Mismatch,
                    format!(
                        "expected the handshake to be refused with HTTP {e}, got HTTP {status}"
                    ),
                ),
                None => (
                    FailureKind::Refused,
                    format!("the server refused the WebSocket handshake with HTTP {status}"),
                ),
            };
            Err(Failure::of(kind, message).note(format!(
                "response body: {}",
                crate::text::truncate(&body, 300)
            )))
        }
        (Err(other), _) => Err(other.into()),
    }
}

/// The first message carrying a token: the spec's template with `{{ token }}`, or
/// `{type: auth, token}` using the configured type field.
fn auth_message(
    ctx: &ScenarioContext,
    template: Option<&Value>,
    token: &str,
    identity: &Value,
) -> Result<String, Failure> {
    let message = match template {
        Some(t) => ctx.render_value(
            t,
            &[
                ("token", Value::String(token.to_string())),
                ("identity", identity.clone()),
            ],
        )?,
        None => {
            let mut m = serde_json::Map::new();
            m.insert(ctx.config.events.type_field.clone(), json!("auth"));
            m.insert("token".into(), json!(token));
            Value::Object(m)
        }
    };
    Ok(message.to_string())
}

pub async fn authenticate(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    // `message` is rendered later, with `token` in scope.
    let mut without_message = body.clone();
    let message = without_message
        .as_object_mut()
        .and_then(|m| m.remove("message"));
    let step: AuthenticateStep = ctx.render(&without_message, &[])?;
    let credentials = Credentials {
        jwt: step.jwt,
        token: step.token,
        present_as: PresentAs::Message,
        param: None,
        header: None,
        message: None,
    };
    let token = jwt::token(ctx, &credentials)?;
    let text = auth_message(ctx, message.as_ref(), &token, &Value::Null)?;
    ctx.connection(step.on.as_deref())?
        .send_text(text, ctx.step_timeout())
        .await?;
    Ok(())
}

pub async fn send(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    // A body without templates is the same every time (whatever `index`).
    let planned = ctx.planned(&ctx.plans.sends, body, || {
        Ok(SendPlan {
            outgoing: outgoing(ctx, body, 0)?,
            repeat: repeat(ctx, body)?,
        })
    })?;
    let repeat = match &planned {
        Some(plan) => plan.repeat,
        None => repeat(ctx, body)?,
    };
    for index in 0..repeat {
        let rendered;
        let outgoing = match &planned {
            Some(plan) => &plan.outgoing,
            None => {
                rendered = outgoing(ctx, body, index)?;
                &rendered
            }
        };
        let connection = ctx.connection(outgoing.on.as_deref())?;
        let timeout = ctx.step_timeout();
        match &outgoing.frame {
            OutgoingFrame::Text(text) => connection.send_text(text.clone(), timeout).await?,
            OutgoingFrame::Binary(bytes) => connection.send_binary(bytes.clone(), timeout).await?,
        }
    }
    Ok(())
}

/// How many times a `send` sends (`repeat:`, 1 without it).
fn repeat(ctx: &ScenarioContext, body: &Value) -> Result<u64, Failure> {
    Ok(body
        .get("repeat")
        .map(|r| ctx.render_value(r, &[]))
        .transpose()?
        .and_then(|r| r.as_u64())
        .unwrap_or(1))
}

/// A `send` of `json` (on a connection maybe), the send that runs in loops: its payload
/// written as text straight from its plan, where rendering it as a value, reading that
/// into the step and serializing it again cost most of a templated send. `None` for
/// any other body, or one that does not render or fit: the whole body is rendered then,
/// which reports the problem at its field.
fn json_outgoing(
    ctx: &ScenarioContext,
    body: &Value,
    locals: &[(&str, Value)],
) -> Option<Outgoing> {
    let fields = body.as_object()?;
    let payload = fields.get("json")?;
    if fields
        .keys()
        .any(|key| !matches!(key.as_str(), "json" | "on" | "repeat"))
    {
        return None;
    }
    let on = match fields.get("on") {
        Some(on) => match ctx.field_value(on, locals)? {
            Value::String(name) => Some(name),
            _ => return None,
        },
        None => None,
    };
    let text = ctx.field_text(payload, locals)?;
    // `json: null` is no payload at all, as the step reads it.
    (text != "null").then_some(Outgoing {
        on,
        frame: OutgoingFrame::Text(text.into()),
    })
}

/// A JSON payload as text, written straight into its bytes: `Display` goes through the
/// formatter, which cost a templated round trip 3,000 more instructions. A JSON value
/// always serializes.
fn json_text(json: &Value) -> String {
    serde_json::to_string(json).unwrap_or_else(|_| json.to_string())
}

/// The frame a `send` body gives, rendered with `index` (its repetition).
fn outgoing(ctx: &ScenarioContext, body: &Value, index: u64) -> Result<Outgoing, Failure> {
    let locals = [("index", json!(index))];
    if let Some(outgoing) = json_outgoing(ctx, body, &locals) {
        return Ok(outgoing);
    }
    let step: SendStep = ctx.render_step(body, &locals)?;
    let frame = match (step.json, step.text, step.binary) {
        (Some(json), _, _) => OutgoingFrame::Text(json_text(&json).into()),
        (None, Some(text), _) => OutgoingFrame::Text(text.into()),
        (None, None, Some(payload)) => OutgoingFrame::Binary(match payload {
            BinaryPayload::Base64(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    Failure::of(FailureKind::Spec, format!("`binary` is not base64: {e}"))
                })?,
            BinaryPayload::Text { text } => text.into_bytes(),
            BinaryPayload::Json { json } => json_text(&json).into_bytes(),
        }),
        (None, None, None) => {
            return Err(Failure::of(
                FailureKind::Spec,
                "`send` needs `json`, `text` or `binary`",
            ))
        }
    };
    Ok(Outgoing { on: step.on, frame })
}

pub async fn close(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: CloseStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    connection
        .close(
            step.code.unwrap_or(1000),
            step.reason.as_deref().unwrap_or(""),
            ctx.step_timeout(),
        )
        .await;
    Ok(())
}

pub async fn disconnect(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: DisconnectStep = ctx.render_step(body, &[])?;
    ctx.connection(step.on.as_deref())?.drop_transport().await;
    Ok(())
}
