//! A spec file as written: its top-level keys typed; its steps and fixture actions are
//! described by the typed body of their kind but read by the loader with their
//! positions (they stay JSON: their strings are templates, rendered at run time). The
//! loader reads the top level through [`SpecDocument`]; the spec schema is generated
//! from it ([`super::schema`]).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::{
    ActionBody, AssertDbStep, AssertRedisStep, AssertStep, AuthenticateStep, CloseStep,
    CompleteStep, ConnectStep, DisconnectStep, EachStep, EmitStep, ExpectCloseStep, ExpectNoneStep,
    ExpectStep, HttpStep, NamespaceStep, RedisStep, SendStep, SqlStep, StartProcessStep, StepKind,
    StopProcessStep, SubscribeStep,
};
use super::schema::{fixed_schema, DurationText, Identifier};

/// A scenario file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "One scenario: what it proves (`name`), the IDs it mints, fixtures, \
    steps that connect, send, expect events and assert rows and keys, and the teardown that \
    always runs."
)]
pub struct SpecDocument {
    /// What the scenario proves, as a sentence.
    #[schemars(length(min = 1))]
    #[schemars(example = &"a message is broadcast to every tab of its author and to nobody else")]
    pub name: String,
    /// Longer explanation, shown in reports.
    #[schemars(example = &"The author has two tabs open; a third user watches the same thread.")]
    pub description: Option<String>,
    /// Labels for `--tag` / `--skip-tag` selection.
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9_.:-]+$")))]
    #[schemars(example = serde_json::json!(["smoke", "agent"]))]
    pub tags: Vec<String>,
    /// Skip this scenario, giving the reason.
    #[schemars(example = &"waits for the backend to support resumable uploads")]
    pub skip: Option<String>,
    /// Deadline for the whole scenario (setup and steps; teardown has its own). Default
    /// from the suite config.
    #[schemars(with = "Option<DurationText>", example = &"30s")]
    pub timeout: Option<String>,
    /// Typed IDs minted fresh for every run of this scenario: name → kind. Kinds
    /// (prefix, format) are declared in the suite config `engine.yaml`. Use them as
    /// `{{ ids.alice }}`.
    #[serde(default)]
    #[schemars(with = "Option<IdDeclarations>")]
    #[schemars(example = serde_json::json!({"alice": "user", "t1": "thread"}))]
    pub ids: Map<String, Value>,
    /// Initial variables, templated once the IDs are minted; captures add to them. Use
    /// as `{{ vars.name }}`.
    #[serde(default)]
    #[schemars(with = "Option<NamedValues>")]
    #[schemars(example = serde_json::json!({"greeting": "hello {{ ids.alice }}"}))]
    pub vars: Map<String, Value>,
    /// A table of cases: each row is its own scenario (run, listed, filtered, sharded
    /// and reported on its own, with fresh IDs), its values read as
    /// `{{ case.<name> }}`. The scenario's name is rendered with `case`, or gets the
    /// row's values appended.
    #[schemars(with = "Option<CaseTable>")]
    #[schemars(example = serde_json::json!([{"method": "bearer"}, {"method": "query"}]))]
    pub cases: Option<Vec<Value>>,
    /// Fixtures applied before the steps: SQL statements or files, Redis commands.
    /// Templated with the scenario's IDs.
    #[serde(default)]
    #[schemars(with = "Option<Vec<ActionBody>>")]
    #[schemars(example = serde_json::json!([{"sql": "INSERT INTO users (id) VALUES ($1)", "params": ["{{ ids.alice }}"]}]))]
    pub setup: IgnoredAny,
    /// What the scenario does and checks, in order. Each step is a map with exactly one
    /// key: the step kind.
    #[schemars(with = "Vec<StepEntry>", length(min = 1))]
    #[schemars(example = serde_json::json!([{"connect": {"name": "tab", "identity": "{{ ids.alice }}"}}, {"expect": {"on": "tab", "event": "connection_established"}}]))]
    pub steps: IgnoredAny,
    /// Clean-up that always runs: after success, failure or timeout.
    #[serde(default)]
    #[schemars(with = "Option<Vec<ActionBody>>")]
    #[schemars(example = serde_json::json!([{"redis": ["DEL", "presence:{{ ids.alice }}"]}]))]
    pub teardown: IgnoredAny,
    /// Optional defaults for `engine load`: how this scenario runs as virtual users
    /// (VUs), each iteration with fresh IDs, its own connections and its teardown.
    /// Flags of `engine load` override these fields; `--threshold` adds to
    /// `thresholds`. `engine run` ignores this block.
    #[schemars(with = "Option<super::load_block::LoadBlock>")]
    #[schemars(example = serde_json::json!({"vus": 50, "duration": "30s", "thresholds": {"event_latency.p99": "< 200ms"}}))]
    pub load: Option<Value>,
}

/// One step as written: a map with exactly one key, the step kind (built in, or a
/// library step's name). Kept as JSON: its strings are templates.
pub struct StepEntry;

impl JsonSchema for StepEntry {
    fn schema_name() -> Cow<'static, str> {
        "step".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut kinds = Map::new();
        for kind in StepKind::ALL {
            kinds.insert(kind.name().into(), body_schema(kind, generator).to_value());
        }
        json_schema!({
            "type": "object",
            "description": "One step: a map with exactly one key, the step kind.",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": kinds,
            "additionalProperties": {
                "description": "A step from the suite's library (`library:` in engine.yaml), called by its name with its parameters, plus `as: name` to keep its returned values under `vars.name`."
            }
        })
    }
}

/// The schema of a built-in step kind's body; every kind has one, so a new kind cannot
/// be left out of the schema.
fn body_schema(kind: StepKind, generator: &mut SchemaGenerator) -> Schema {
    match kind {
        StepKind::Connect => generator.subschema_for::<ConnectStep>(),
        StepKind::Authenticate => generator.subschema_for::<AuthenticateStep>(),
        StepKind::Send => generator.subschema_for::<SendStep>(),
        StepKind::Expect => generator.subschema_for::<ExpectStep>(),
        StepKind::ExpectNone => generator.subschema_for::<ExpectNoneStep>(),
        StepKind::ExpectClose => generator.subschema_for::<ExpectCloseStep>(),
        StepKind::AssertDb => generator.subschema_for::<AssertDbStep>(),
        StepKind::AssertRedis => generator.subschema_for::<AssertRedisStep>(),
        StepKind::Http => generator.subschema_for::<HttpStep>(),
        StepKind::Close => generator.subschema_for::<CloseStep>(),
        StepKind::Disconnect => generator.subschema_for::<DisconnectStep>(),
        StepKind::Sql => generator.subschema_for::<SqlStep>(),
        StepKind::Redis => generator.subschema_for::<RedisStep>(),
        StepKind::Sleep => {
            let mut schema = generator.subschema_for::<DurationText>();
            schema.insert(
                "description".into(),
                "Wait a fixed time. Prefer `within`/`eventually`, which wait for a condition."
                    .into(),
            );
            schema.insert("examples".into(), serde_json::json!(["200ms"]));
            schema
        }
        StepKind::Each => generator.subschema_for::<EachStep>(),
        StepKind::StartProcess => generator.subschema_for::<StartProcessStep>(),
        StepKind::StopProcess => generator.subschema_for::<StopProcessStep>(),
        StepKind::Assert => generator.subschema_for::<AssertStep>(),
        StepKind::Subscribe => generator.subschema_for::<SubscribeStep>(),
        StepKind::Complete => generator.subschema_for::<CompleteStep>(),
        StepKind::Emit => generator.subschema_for::<EmitStep>(),
        StepKind::Namespace => generator.subschema_for::<NamespaceStep>(),
        // Written under the library step's own name: `additionalProperties` above.
        StepKind::Call => json_schema!(true),
    }
}

/// `ids:`: name → ID kind.
struct IdDeclarations;

impl JsonSchema for IdDeclarations {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "ids".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let name = generator.subschema_for::<Identifier>();
        json_schema!({
            "type": "object",
            "additionalProperties": name,
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }
        })
    }
}

fixed_schema! {
    /// A map whose keys are names templates read values by (`vars:`).
    struct NamedValues = inline "named_values" {
        "type": "object",
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }
    };

    /// `cases:`: rows of named values.
    struct CaseTable = inline "cases" {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }
        }
    };
}
