//! Steps of socket.io connections: `emit` sends an event (and waits for its
//! acknowledgement when it asks for one); `namespace` connects (waiting for the
//! server's answer) or disconnects a namespace; `expect` with `ack:` answers a server
//! event that asks for one ([`acknowledge`]).

use std::time::Duration;

use serde_json::Value;

use super::context::{Failure, ScenarioContext, StepResult};
use super::inbox::Received;
use super::protocol::socket_io::{self, Namespace, SocketIo, SocketIoError};
use super::protocol::{self, ProtocolKind};
use super::ws::Connection;
use crate::diagnostic::FailureKind;
use crate::matcher::compare;
use crate::spec::model::{AckPattern, AckWait, EmitStep, EventPattern, NamespaceStep};

pub async fn emit(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: EmitStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let wait = match step.ack {
        None | Some(AckWait::Any(false)) => None,
        Some(AckWait::Any(true)) => Some(AckPattern::default()),
        Some(AckWait::Pattern(pattern)) => Some(pattern),
    };
    let encoded = socket_io(&connection, |state| {
        state.emit(
            step.namespace.as_deref(),
            &step.event,
            step.args,
            wait.is_some(),
        )
    })?;
    let ack_id = encoded.ack_id;
    send(&connection, encoded, ctx.step_timeout()).await?;
    let (Some(wait), Some(id)) = (wait, ack_id) else {
        return Ok(());
    };
    let pattern = EventPattern {
        matches: wait.matches,
        exact: wait.exact,
        capture: wait.capture,
        ack_of_emit: Some(id),
        ..EventPattern::default()
    };
    let within: Duration = wait.within.unwrap_or_else(|| ctx.step_timeout());
    super::expect::expect_one(ctx, &connection, &pattern, within).await
}

pub async fn namespace(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: NamespaceStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let timeout = ctx.step_timeout();
    let name = match (&step.connect, &step.disconnect) {
        (Some(name), None) => socket_io::namespace_name(name),
        (None, Some(name)) => {
            let encoded = socket_io(&connection, |state| state.disconnect_namespace(name))?;
            send(&connection, encoded, timeout).await?;
            return Ok(());
        }
        _ => {
            return Err(Failure::of(
                FailureKind::Spec,
                "`namespace` needs one of `connect` and `disconnect`",
            ))
        }
    };
    let encoded = socket_io(&connection, |state| {
        state.connect_namespace(&name, step.auth.clone())
    })?;
    send(&connection, encoded, timeout).await?;
    let within = step.within.unwrap_or(timeout);
    let answer = namespace_answer(&connection, &name, within).await?;
    match (answer, &step.refused) {
        (Namespace::Refused(data), None) => Err(Failure::of(
            FailureKind::Refused,
            format!("namespace `{name}` on `{}` refused the connection: {data}", connection.name),
        )),
        (Namespace::Refused(data), Some(wanted)) => {
            if *wanted == Value::Bool(true) {
                return Ok(());
            }
            let mismatches = compare(wanted, Some(&data), false);
            if mismatches.is_empty() {
                return Ok(());
            }
            let lines: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
            Err(Failure::of(
                FailureKind::Mismatch,
                format!(
                    "namespace `{name}` on `{}` refused the connection, but not as expected: {data}",
                    connection.name
                ),
            )
            .note(lines.join("\n")))
        }
        (_, Some(wanted)) => Err(Failure::of(
            FailureKind::Mismatch,
            format!(
                "namespace `{name}` on `{}` accepted the connection; a refusal matching {wanted} was expected",
                connection.name
            ),
        )),
        (_, None) => Ok(()),
    }
}

/// Wait until the server answered the CONNECT of `name` (accepted or refused), the
/// connection closed, or `within` passed.
async fn namespace_answer(
    connection: &Connection,
    name: &str,
    within: Duration,
) -> Result<Namespace, Failure> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let changed = connection.inbox.changed();
        let state =
            protocol::with_state(connection.protocol(), |s: &mut SocketIo| s.namespace(name))
                .flatten();
        if let Some(answer) = state.filter(|s| *s != Namespace::Connecting) {
            return Ok(answer);
        }
        if let Some(closed) = &connection.inbox.lock().closed {
            return Err(Failure::of(
                FailureKind::ConnectionClosed,
                format!(
                    "connection `{}` {closed} while waiting for the answer to the CONNECT of namespace `{name}`",
                    connection.name
                ),
            ));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(Failure::of(
                FailureKind::Timeout,
                format!(
                    "no answer to the CONNECT of namespace `{name}` on `{}` within {within:?}",
                    connection.name
                ),
            ));
        }
    }
}

/// Answer the acknowledgement a server event asks for with the pattern's `ack:`
/// arguments (nothing to do when the pattern has none).
pub async fn acknowledge(
    ctx: &ScenarioContext,
    connection: &Connection,
    pattern: &EventPattern,
    frame: &Received,
) -> StepResult {
    let Some(args) = &pattern.ack else {
        return Ok(());
    };
    let event = frame.event_type.as_deref().unwrap_or_default();
    let Some(id) = frame.ack_wanted else {
        return Err(Failure::of(
            FailureKind::Mismatch,
            format!(
                "`{event}` on `{}` asked for no acknowledgement, so `ack:` has nothing to answer",
                connection.name
            ),
        )
        .note(format!("event: {}", frame.shown(500)))
        .hint("leave `ack:` out, or have the server emit it with an acknowledgement callback"));
    };
    let namespace = frame.operation.as_deref().unwrap_or("/");
    let encoded = socket_io(connection, |state| {
        state.acknowledge(namespace, event, id, args.clone())
    })?;
    send(connection, encoded, ctx.step_timeout()).await?;
    Ok(())
}

/// Send what the Socket.IO state encoded: its frame, then its binary attachments.
async fn send(
    connection: &Connection,
    encoded: socket_io::Encoded,
    timeout: Duration,
) -> Result<(), super::ws::SendError> {
    connection
        .send_encoded_with(&encoded.shown, encoded.text, encoded.attachments, timeout)
        .await
}

/// Run `f` on the connection's socket.io state.
fn socket_io<R>(
    connection: &Connection,
    f: impl FnOnce(&mut SocketIo) -> Result<R, SocketIoError>,
) -> Result<R, Failure> {
    match protocol::with_state(connection.protocol(), f) {
        Some(result) => result.map_err(|e| {
            let mut failure = Failure::from(e);
            failure.message = format!("on `{}`: {}", connection.name, failure.message);
            failure
        }),
        None => {
            let kind = protocol::lock(connection.protocol()).kind();
            Err(Failure::of(
                FailureKind::Spec,
                format!(
                    "connection `{}` speaks {}, not socket.io",
                    connection.name,
                    kind.name()
                ),
            )
            .hint(format!(
                "connect with `protocol: {}`",
                ProtocolKind::SocketIo.name()
            )))
        }
    }
}
