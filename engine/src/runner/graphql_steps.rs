//! Steps of GraphQL-over-WebSocket connections (graphql-transport-ws, graphql-ws): `subscribe` starts an operation under a
//! name (the engine allocates its id), `complete` ends one from the client. Their
//! messages are expected with `expect: {next | error | complete: <name>}`.

use serde_json::{Map, Value};

use super::context::{Failure, ScenarioContext, StepResult};
use super::protocol::graphql::{Graphql, OperationError};
use super::protocol::{self, ProtocolKind};
use super::ws::Connection;
use crate::spec::model::{CompleteStep, SubscribeStep};

pub async fn subscribe(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let step: SubscribeStep = ctx.render_step(body, &[])?;
    let connection = ctx.connection(step.on.as_deref())?;
    let mut payload = Map::new();
    payload.insert("query".into(), Value::String(step.query));
    if let Some(variables) = step.variables {
        payload.insert("variables".into(), variables);
    }
    if let Some(name) = step.operation_name {
        payload.insert("operationName".into(), Value::String(name));
    }
    if let Some(extensions) = step.extensions {
        payload.insert("extensions".into(), extensions);
    }
    let (shown, frame) = graphql(&connection, |state| state.subscribe(&step.name, payload))?;
    connection
        .send_encoded(&shown, frame, ctx.step_timeout())
        .await?;
    Ok(())
}

pub async fn complete(ctx: &mut ScenarioContext, body: &Value) -> StepResult {
    let (name, on) = match ctx.render_step::<CompleteStep>(body, &[])? {
        CompleteStep::Name(name) => (name, None),
        CompleteStep::Full(step) => (step.name, step.on),
    };
    let connection = ctx.connection(on.as_deref())?;
    let (shown, frame) = graphql(&connection, |state| state.complete(&name))?;
    connection
        .send_encoded(&shown, frame, ctx.step_timeout())
        .await?;
    Ok(())
}

/// Run `f` on the connection's GraphQL-over-WebSocket state.
pub fn graphql<R>(
    connection: &Connection,
    f: impl FnOnce(&mut Graphql) -> Result<R, OperationError>,
) -> Result<R, Failure> {
    match protocol::with_state(connection.protocol(), f) {
        Some(result) => result.map_err(Failure::from),
        None => Err(not_graphql(connection)),
    }
}

fn not_graphql(connection: &Connection) -> Failure {
    let kind = protocol::lock(connection.protocol()).kind();
    Failure::new(format!(
        "connection `{}` speaks {}, not GraphQL over WebSocket",
        connection.name,
        kind.name()
    ))
    .hint(format!(
        "connect with `protocol: {}` (or `{}` for subscriptions-transport-ws servers)",
        ProtocolKind::GraphqlTransportWs.name(),
        ProtocolKind::GraphqlWs.name()
    ))
}
