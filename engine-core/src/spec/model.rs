//! The parsed scenario model. Step bodies stay as JSON until run time, because their
//! strings are templates; each step kind has a typed body that the runner
//! deserializes after rendering (and `engine check` deserializes to validate).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::duration::serde_duration;
use super::schema::{
    CapturesMap, ConnectionRef, CountText, DurationText, HttpMethod, HttpStatus, Identifier,
    JwtAlgorithm, QueryValue, RangeBounds, RedisCommand, RedisKeyType, SignalName, Templated,
};
use crate::diagnostic::{SourceFile, Span};

/// One scenario file, parsed and validated.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub source: Arc<SourceFile>,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub skip: Option<String>,
    pub timeout: Option<Duration>,
    /// Declared IDs, in declaration order: name → kind.
    pub ids: Vec<(String, String)>,
    pub vars: serde_json::Map<String, Value>,
    pub setup: Vec<Action>,
    pub steps: Vec<Step>,
    pub teardown: Vec<Action>,
    pub load: Option<Value>,
    /// Where every value of the file is, for failures in a step's fields at run time.
    pub index: Arc<super::yaml::SpanIndex>,
    /// The case this scenario runs (one row of the spec's `cases:` table), as
    /// `{{ case.<name> }}`; `None` for a spec without cases.
    pub case: Option<Case>,
}

/// One row of a spec's `cases:` table: its position among the cases and its values.
#[derive(Debug, Clone)]
pub struct Case {
    /// 0-based position in the table.
    pub index: usize,
    pub span: Span,
    pub values: serde_json::Map<String, Value>,
}

impl Scenario {
    pub fn path(&self) -> &PathBuf {
        &self.source.path
    }
}

/// A fixture action in `setup`/`teardown`, or a `sql`/`redis` step.
#[derive(Debug, Clone)]
pub struct Action {
    pub span: Span,
    pub body: Value,
}

/// One step: its kind, its (unrendered) body and where it is written.
#[derive(Debug, Clone)]
pub struct Step {
    pub span: Span,
    pub kind: StepKind,
    pub body: Value,
    /// The nested steps of an `each`.
    pub children: Vec<Step>,
    /// The library step a [`StepKind::Call`] runs.
    pub call: Option<Arc<super::library::LibraryStep>>,
    /// Where the step's body is in its file, as a JSON pointer (`/steps/3/expect`), for
    /// locating problems in its fields.
    pub pointer: String,
}

/// Every step kind the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Connect,
    Authenticate,
    Send,
    Expect,
    ExpectNone,
    ExpectClose,
    AssertDb,
    AssertRedis,
    Http,
    Close,
    Disconnect,
    Sql,
    Redis,
    Sleep,
    Each,
    StartProcess,
    StopProcess,
    Assert,
    /// GraphQL (graphql-transport-ws, graphql-ws): start an operation.
    Subscribe,
    /// GraphQL (graphql-transport-ws, graphql-ws): end an operation from the client.
    Complete,
    /// socket.io: emit an event.
    Emit,
    /// socket.io: connect or disconnect a namespace.
    Namespace,
    /// A step from the suite's library, written under its own name.
    Call,
}

impl StepKind {
    /// The built-in kinds (a [`StepKind::Call`] is written under its library step's name).
    pub const ALL: [StepKind; 22] = [
        StepKind::Connect,
        StepKind::Authenticate,
        StepKind::Send,
        StepKind::Expect,
        StepKind::ExpectNone,
        StepKind::ExpectClose,
        StepKind::AssertDb,
        StepKind::AssertRedis,
        StepKind::Http,
        StepKind::Close,
        StepKind::Disconnect,
        StepKind::Sql,
        StepKind::Redis,
        StepKind::Sleep,
        StepKind::Each,
        StepKind::StartProcess,
        StepKind::StopProcess,
        StepKind::Assert,
        StepKind::Subscribe,
        StepKind::Complete,
        StepKind::Emit,
        StepKind::Namespace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StepKind::Connect => "connect",
            StepKind::Authenticate => "authenticate",
            StepKind::Send => "send",
            StepKind::Expect => "expect",
            StepKind::ExpectNone => "expect_none",
            StepKind::ExpectClose => "expect_close",
            StepKind::AssertDb => "assert_db",
            StepKind::AssertRedis => "assert_redis",
            StepKind::Http => "http",
            StepKind::Close => "close",
            StepKind::Disconnect => "disconnect",
            StepKind::Sql => "sql",
            StepKind::Redis => "redis",
            StepKind::Sleep => "sleep",
            StepKind::Each => "each",
            StepKind::StartProcess => "start_process",
            StepKind::StopProcess => "stop_process",
            StepKind::Assert => "assert",
            StepKind::Subscribe => "subscribe",
            StepKind::Complete => "complete",
            StepKind::Emit => "emit",
            StepKind::Namespace => "namespace",
            StepKind::Call => "call",
        }
    }

    /// The built-in kind written as `name` (never [`StepKind::Call`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The connection a step acts on, if it is a connection step.
    pub fn uses_connection(self) -> bool {
        matches!(
            self,
            StepKind::Authenticate
                | StepKind::Send
                | StepKind::Expect
                | StepKind::ExpectNone
                | StepKind::ExpectClose
                | StepKind::Close
                | StepKind::Disconnect
                | StepKind::Subscribe
                | StepKind::Complete
                | StepKind::Emit
                | StepKind::Namespace
        )
    }
}

/// Name → JSONPath.
pub type Captures = BTreeMap<String, String>;

/// A fixture action: one SQL statement, a `.sql` file, or one Redis command.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "action",
    description = "A fixture action: one of `sql`, `sql_file`, `redis`.",
    extend("minProperties" = 1),
    extend("oneOf" = [
        {"required": ["sql"], "not": {"anyOf": [{"required": ["sql_file"]}, {"required": ["redis"]}]}},
        {"required": ["sql_file"], "not": {"anyOf": [{"required": ["sql"]}, {"required": ["redis"]}, {"required": ["params"]}]}},
        {"required": ["redis"], "not": {"anyOf": [{"required": ["sql"]}, {"required": ["sql_file"]}, {"required": ["params"]}, {"required": ["database"]}]}}
    ])
)]
pub struct ActionBody {
    /// One SQL statement, with $1.. parameters.
    #[schemars(example = &"INSERT INTO users (id, name) VALUES ($1, $2)")]
    pub sql: Option<String>,
    /// A .sql file (relative to the spec), templated, run as one batch; use
    /// `{{ ids.x }}` only where the value is not user input.
    #[schemars(example = &"fixtures/thread.sql")]
    pub sql_file: Option<String>,
    /// Values bound to $1, $2, ... Templates are rendered first; values never reach SQL
    /// as text.
    #[serde(default)]
    #[schemars(example = serde_json::json!(["{{ ids.alice }}", "Alice"]))]
    pub params: Vec<Value>,
    /// Name of a database in the suite config `databases` (default: `default`).
    #[schemars(example = &"default")]
    pub database: Option<String>,
    /// A Redis command and its arguments.
    #[schemars(with = "Option<RedisCommand>", example = serde_json::json!(["SET", "flags:{{ ids.alice }}", "beta"]))]
    pub redis: Option<Vec<Value>>,
    /// Name of a Redis server in the suite config `redis` (default: `default`).
    #[schemars(example = &"default")]
    pub server: Option<String>,
}

/// Open a WebSocket connection. Its events go to an inbox of its own from the first
/// frame on. With `profile` (or the suite's `profiles.default`), the profile's URL,
/// authentication and ready event apply; fields given here override it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "connect",
    example = serde_json::json!({"name": "tab1", "profile": "user", "identity": "{{ ids.alice }}"}), transform = super::schema::url_from_profile)]
pub struct ConnectStep {
    /// Name for later steps' `on:` (default `default`).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub name: Option<String>,
    /// ws:// or wss:// URL (required unless a profile gives it).
    #[schemars(example = &"{{ env.WS_URL }}/ws")]
    pub url: String,
    /// A connection profile from the suite config (`profiles:`); default:
    /// `profiles.default` when the step has no `url`. Taken out before the step runs.
    #[serde(default)]
    #[schemars(example = &"user")]
    pub profile: Option<String>,
    /// Who connects: the profile's templates read it as `{{ identity }}` (e.g. a user
    /// ID). Taken out before the step runs.
    #[serde(default)]
    #[schemars(example = &"{{ ids.alice }}")]
    pub identity: Option<Value>,
    /// Headers of the upgrade request.
    #[serde(default)]
    #[schemars(with = "Option<Templated<BTreeMap<String, String>>>")]
    #[schemars(example = serde_json::json!({"x-client": "spec-suite"}))]
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to the URL (percent-encoded).
    #[serde(default)]
    #[schemars(with = "Option<Templated<BTreeMap<String, QueryValue>>>")]
    #[schemars(example = serde_json::json!({"client": "web", "v": 2}))]
    pub query: BTreeMap<String, Value>,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`.
    #[serde(default)]
    #[schemars(with = "Option<Templated<Vec<String>>>", example = serde_json::json!(["chat.v2"]))]
    pub subprotocols: Vec<String>,
    /// PEM file of an extra CA to trust for wss:// (relative to the spec).
    #[schemars(example = &"certs/ca.pem")]
    pub ca_file: Option<String>,
    /// How to present credentials at the handshake (or as the first message).
    #[schemars(example = serde_json::json!({"jwt": {"claims": {"sub": "{{ ids.alice }}"}}, "as": "bearer"}))]
    pub authenticate: Option<Credentials>,
    /// Handshake deadline (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"5s")]
    pub within: Option<Duration>,
    /// Expect the handshake to be refused with this HTTP status (e.g. 401).
    #[schemars(with = "Option<Templated<HttpStatus>>", example = 401)]
    pub expect_status: Option<u16>,
    /// The subprotocol the server must pick in its handshake answer.
    #[schemars(example = &"chat.v2")]
    pub expect_subprotocol: Option<String>,
    /// Read JSON carried in binary frames like text frames (types, matching, schemas).
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = true)]
    pub binary_json: bool,
    /// The protocol spoken over the WebSocket: `raw` frames (default), `socket.io`
    /// (Engine.IO v4 / Socket.IO v5), `graphql-transport-ws` (GraphQL over
    /// WebSocket) or `graphql-ws` (its legacy predecessor, subscriptions-transport-ws). The engine handles the protocol's envelopes, ids and keep-alives;
    /// steps speak its terms.
    #[serde(default)]
    #[schemars(with = "Option<Templated<ProtocolKind>>", example = &"graphql-transport-ws")]
    pub protocol: ProtocolKind,
    /// graphql-transport-ws, graphql-ws: the payload of `connection_init` (e.g. credentials); the
    /// connect step waits for `connection_ack`.
    #[schemars(example = serde_json::json!({"authorization": "Bearer {{ vars.token }}"}))]
    pub connection_init: Option<Value>,
    /// socket.io: the namespaces to connect once the Engine.IO handshake is done
    /// (default `["/"]`), each a name or `{name, auth}` (the `auth` payload of its
    /// CONNECT packet); the connect step waits until the server accepted each one,
    /// and fails with the server's `connect_error` data when it refuses one. The
    /// first is where `emit` goes when it names no `namespace`; `[]` connects none (a
    /// `namespace` step connects them later).
    #[schemars(example = serde_json::json!(["/", {"name": "/admin", "auth": {"token": "{{ vars.token }}"}}]))]
    pub namespaces: Option<Vec<NamespaceConnect>>,
    /// socket.io: server events whose acknowledgement requests the engine answers at
    /// once, with these arguments (`{event: [args]}`, text only), whether or not a step
    /// expects the event; `expect.ack` answers the others.
    #[serde(default)]
    #[schemars(with = "Option<Templated<BTreeMap<String, Vec<Value>>>>")]
    #[schemars(example = serde_json::json!({"confirm": [{"accepted": true}]}))]
    pub acks: BTreeMap<String, Vec<Value>>,
    /// Captures from the ready event, as `vars.<name>`; a profile's ready captures land
    /// under `vars.<connection>.<name>`.
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"connection_id": "$.connection_id"}))]
    pub capture: Captures,
    /// Wait after connecting until this event arrives (taken from the inbox): an event
    /// type, `{event, match, capture}`, or `false` for no wait. Default: the profile's.
    #[schemars(example = &"connection_established")]
    pub ready: Option<ReadyWait>,
}

/// The protocol a connection speaks over its WebSocket: raw frames (the default), or a
/// protocol whose envelopes, ids and keep-alives the engine handles.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, JsonSchema)]
pub enum ProtocolKind {
    /// Raw frames: JSON typed by the suite's type field, or text, or binary.
    #[default]
    #[serde(rename = "raw")]
    Raw,
    /// Engine.IO v4 / Socket.IO v5.
    #[serde(rename = "socket.io")]
    SocketIo,
    /// GraphQL over WebSocket (`graphql-transport-ws`, the `graphql-ws` library's).
    #[serde(rename = "graphql-transport-ws")]
    GraphqlTransportWs,
    /// Legacy GraphQL over WebSocket (`subscriptions-transport-ws`, subprotocol
    /// `graphql-ws`: Apollo Server 2/3, older Hasura).
    #[serde(rename = "graphql-ws")]
    GraphqlWs,
}

impl ProtocolKind {
    /// The name a spec writes.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::Raw => "raw",
            ProtocolKind::SocketIo => "socket.io",
            ProtocolKind::GraphqlTransportWs => "graphql-transport-ws",
            ProtocolKind::GraphqlWs => "graphql-ws",
        }
    }
}

/// A socket.io namespace to connect: its name, or `{name, auth}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NamespaceConnect {
    /// The namespace's name (`/`, `/admin`).
    Name(String),
    Full(NamespaceAuth),
}

/// A socket.io namespace and the `auth` payload of its CONNECT packet.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceAuth {
    /// The namespace's name, starting with `/`.
    #[schemars(example = &"/admin")]
    pub name: String,
    /// The CONNECT packet's payload (the server reads it as `socket.handshake.auth`).
    #[schemars(example = serde_json::json!({"token": "{{ vars.token }}"}))]
    pub auth: Option<Value>,
}

impl NamespaceConnect {
    /// The namespace's name and auth payload.
    pub fn parts(&self) -> (&str, Option<&Value>) {
        match self {
            NamespaceConnect::Name(name) => (name, None),
            NamespaceConnect::Full(full) => (&full.name, full.auth.as_ref()),
        }
    }
}

/// The name a `connect` gives its connection (`default` when it gives none), read from
/// the unrendered body.
pub fn connection_name(body: &Value) -> &str {
    body.get("name")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_CONNECTION)
}

/// Whether a `connect` (its unrendered body, or its fields over its profile's) opens a
/// connection: one that expects its handshake refused (`expect_status`) opens none.
pub fn opens_connection(connect: &Map<String, Value>) -> bool {
    !connect.contains_key("expect_status")
}

/// The connection name of a `connect` without `name:`.
pub const DEFAULT_CONNECTION: &str = "default";

/// The connect fields a profile or a step may set, before profile and step are merged:
/// `profile:` names a suite-config profile, `identity:` is what its templates call
/// `{{ identity }}`.
pub const CONNECT_PROFILE_KEYS: [&str; 2] = ["profile", "identity"];

/// The event that says a new connection is ready, taken from its inbox like `expect`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ReadyWait {
    /// `ready: false` turns a profile's wait off; `true` is an error.
    Off(bool),
    /// `ready: connection_established`.
    Event(String),
    Pattern(Box<EventPattern>),
}

impl ReadyWait {
    /// The pattern to wait for, when waiting at all.
    pub fn pattern(&self) -> Option<EventPattern> {
        match self {
            ReadyWait::Off(_) => None,
            ReadyWait::Event(event) => Some(EventPattern {
                event: Some(event.clone()),
                ..EventPattern::default()
            }),
            ReadyWait::Pattern(p) => Some((**p).clone()),
        }
    }
}

/// How a token is presented.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresentAs {
    /// `Authorization: Bearer <token>` (or `header:`).
    #[default]
    Bearer,
    /// A query parameter (`param:`, default `token`).
    Query,
    /// A subprotocol offered at the handshake.
    Subprotocol,
    /// The first message after the handshake (`message:`).
    Message,
}

/// How to present credentials: mint a `jwt` or use a `token`, and present it `as`
/// bearer header, query parameter, subprotocol or first message. Exactly one of `jwt`
/// and `token` (after a connection profile is merged in: `engine check` checks the
/// merged step).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "authenticate")]
pub struct Credentials {
    /// Mint a JWT with these claims (secret and algorithm from the suite config).
    #[schemars(example = serde_json::json!({"claims": {"sub": "{{ ids.alice }}"}}))]
    pub jwt: Option<JwtSpec>,
    /// A ready token (e.g. `{{ vars.token }}` captured from a login).
    #[schemars(example = &"{{ vars.token }}")]
    pub token: Option<String>,
    /// How the token is presented (default `bearer`), or a template yielding one of
    /// them.
    #[serde(default, rename = "as")]
    #[schemars(with = "Option<Templated<PresentAs>>", example = &"query")]
    pub present_as: PresentAs,
    /// Query parameter name for `as: query` (default `token`).
    #[schemars(example = &"access_token")]
    pub param: Option<String>,
    /// Header for `as: bearer` (default `Authorization`, value `Bearer <token>`).
    #[schemars(example = &"Authorization")]
    pub header: Option<String>,
    /// First message for `as: message`; `{{ token }}` is the token. Default
    /// `{type: auth, token: <token>}` (with the suite's event-type field).
    #[schemars(example = serde_json::json!({"type": "auth", "token": "{{ token }}"}))]
    pub message: Option<Value>,
}

/// Mint a JWT. Secret and algorithm default to the suite config `auth.jwt`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "jwt")]
pub struct JwtSpec {
    /// Claims, templated.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"sub": "{{ ids.alice }}"}))]
    pub claims: serde_json::Map<String, Value>,
    /// Sets `exp` relative to now; a leading `-` makes an expired token (`-1m`).
    #[schemars(regex(pattern = r"^-?(([0-9]+(\.[0-9]+)?(ms|s|m|h))+|.*\{\{.*\}\}.*)$"))]
    #[schemars(example = &"15m")]
    pub expires_in: Option<String>,
    /// Signing algorithm (default: the suite config's, else HS256).
    #[schemars(with = "Option<JwtAlgorithm>", example = &"HS256")]
    pub alg: Option<String>,
    /// HMAC secret (prefer the suite config, which keeps it out of reports).
    #[schemars(example = &"{{ env.JWT_SECRET }}")]
    pub secret: Option<String>,
    /// PEM RSA key for RS256.
    #[schemars(example = &"keys/private.pem")]
    pub private_key_file: Option<String>,
}

/// Present credentials on an open connection as its next message (`as: message`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "authenticate_step",
    example = serde_json::json!({"on": "tab1", "jwt": {"claims": {"sub": "{{ ids.alice }}"}}}),
    extend("oneOf" = [{"required": ["jwt"]}, {"required": ["token"]}])
)]
pub struct AuthenticateStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// Mint a JWT with these claims.
    #[schemars(example = serde_json::json!({"claims": {"sub": "{{ ids.alice }}"}}))]
    pub jwt: Option<JwtSpec>,
    /// A ready token.
    #[schemars(example = &"{{ vars.token }}")]
    pub token: Option<String>,
    /// The message carrying the token; `{{ token }}` is the token. Default
    /// `{type: auth, token: <token>}`.
    #[schemars(example = serde_json::json!({"type": "auth", "token": "{{ token }}"}))]
    pub message: Option<Value>,
}

/// Send one frame: `json` (serialized), `text` (as is) or `binary`: base64, or
/// `{text: …}` / `{json: …}` sent as the UTF-8 bytes of the (templated) value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "send",
    example = serde_json::json!({"on": "tab1", "json": {"type": "user_message", "content": "hi"}}),
    extend("oneOf" = [{"required": ["json"]}, {"required": ["text"]}, {"required": ["binary"]}])
)]
pub struct SendStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// Any JSON value, templated.
    #[schemars(example = serde_json::json!({"type": "user_message", "thread_id": "{{ ids.t1 }}", "content": "hi"}))]
    pub json: Option<Value>,
    /// A text frame, sent as is.
    #[schemars(example = &"PING")]
    pub text: Option<String>,
    /// Base64 bytes, or `{text: …}` / `{json: …}`: the frame carries the UTF-8 of the
    /// templated value.
    #[schemars(example = &"AAEC")]
    pub binary: Option<BinaryPayload>,
    /// Send the frame this many times; `{{ index }}` counts from 0.
    #[schemars(with = "Option<Templated<u64>>", example = 100)]
    pub repeat: Option<u64>,
}

/// A binary frame's bytes: base64, or the UTF-8 of a (templated) text or JSON value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BinaryPayload {
    /// Base64 bytes.
    Base64(#[schemars(extend("contentEncoding" = "base64"))] String),
    /// The UTF-8 bytes of a text.
    Text {
        /// The text whose UTF-8 bytes the frame carries.
        #[schemars(example = &"hello")]
        text: String,
    },
    /// The UTF-8 bytes of a serialized JSON value.
    Json {
        /// The value whose serialized UTF-8 bytes the frame carries.
        #[schemars(example = serde_json::json!({"op": "ping"}))]
        json: Value,
    },
}

/// One pattern an event must match.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "event_pattern")]
pub struct EventPattern {
    /// Event type (read from the suite's `events.type_field`); `*` is any frame at all
    /// (JSON or not, text or binary).
    #[schemars(example = &"message_created")]
    pub event: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): a `next` (result) of the operation a `subscribe` step gave
    /// this name; `match` compares its payload (`{data, errors}`).
    #[schemars(example = &"chat")]
    pub next: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): an `error` of the operation of this name; `match`
    /// compares its payload (the list of GraphQL errors).
    #[schemars(example = &"chat")]
    pub error: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): the `complete` of the operation of this name.
    #[schemars(example = &"chat")]
    pub complete: Option<String>,
    /// socket.io: only events of this namespace (default: any namespace).
    #[schemars(example = &"/admin")]
    pub namespace: Option<String>,
    /// socket.io: the matched event asks for an acknowledgement; answer it with these
    /// arguments (`{"$binary": <base64>}` sends an argument as a binary attachment).
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!([{"accepted": true}]))]
    pub ack: Option<Vec<Value>>,
    /// Subset match; placeholders: #string #number #boolean #array #object #uuid
    /// #present #absent #null #notnull #ignore `#regex <re>`.
    #[serde(rename = "match")]
    #[schemars(example = serde_json::json!({"thread_id": "{{ ids.t1 }}", "seq": "#number"}))]
    pub matches: Option<Value>,
    /// Compare `match` for equality instead of as a subset.
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = false)]
    pub exact: bool,
    /// Values to capture from the matched event.
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"message_id": "$.message_id"}))]
    pub capture: Captures,
    /// socket.io: the acknowledgement of the client's emit with this ack id (set by
    /// `emit`, never written in a spec).
    #[serde(skip)]
    #[schemars(skip)]
    pub ack_of_emit: Option<u64>,
}

impl EventPattern {
    /// The operation message wanted (GraphQL) as its type and the
    /// operation's name: `next: chat` is `("next", "chat")`.
    pub fn operation_message(&self) -> Option<(&'static str, &str)> {
        operation_message(&self.next, &self.error, &self.complete)
    }
}

/// The first of `next`, `error` and `complete` given, as the message type and the
/// operation's name.
pub fn operation_message<'a>(
    next: &'a Option<String>,
    error: &'a Option<String>,
    complete: &'a Option<String>,
) -> Option<(&'static str, &'a str)> {
    [("next", next), ("error", error), ("complete", complete)]
        .into_iter()
        .find_map(|(kind, name)| name.as_deref().map(|name| (kind, name)))
}

/// An event type, or `{event, match, capture}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "pattern_item")]
pub enum PatternItem {
    Type(String),
    Pattern(Box<EventPattern>),
}

impl PatternItem {
    pub fn into_pattern(self) -> EventPattern {
        match self {
            PatternItem::Type(event) => EventPattern {
                event: Some(event),
                ..EventPattern::default()
            },
            PatternItem::Pattern(p) => *p,
        }
    }
}

/// Wait for events on a connection. One event (`event` and/or `match`), several in
/// order (`sequence`), several in any order (`unordered`), or `count` of one pattern.
/// Takes the first matching events from the inbox and leaves the rest.
// Its pattern fields repeat `EventPattern`'s rather than flatten one in: serde's
// `flatten` does not work with `deny_unknown_fields`, which every step keeps so that a
// misspelled field is an error at its own position.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "expect",
    example = serde_json::json!({"on": "tab1", "event": "message_created", "match": {"content": "hi"}, "within": "2s"}),
    extend("anyOf" = [{"required": ["event"]}, {"required": ["match"]}, {"required": ["sequence"]}, {"required": ["unordered"]}, {"required": ["next"]}, {"required": ["error"]}, {"required": ["complete"]}])
)]
pub struct ExpectStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// Event type (from the suite's `events.type_field`); `*` is any frame.
    #[schemars(example = &"message_created")]
    pub event: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): a `next` (result) of the operation a `subscribe` step gave
    /// this name; `match` compares its payload (`{data, errors}`).
    #[schemars(example = &"chat")]
    pub next: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): an `error` of the operation of this name; `match`
    /// compares its payload (the list of GraphQL errors).
    #[schemars(example = &"chat")]
    pub error: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): the `complete` of the operation of this name.
    #[schemars(example = &"chat")]
    pub complete: Option<String>,
    /// socket.io: only events of this namespace (default: any namespace).
    #[schemars(example = &"/admin")]
    pub namespace: Option<String>,
    /// socket.io: the matched event asks for an acknowledgement; answer it with these
    /// arguments (`{"$binary": <base64>}` sends an argument as a binary attachment).
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!([{"accepted": true}]))]
    pub ack: Option<Vec<Value>>,
    /// Subset match with placeholders (`#uuid`, `#number`, `#regex ^a`, `#gte 3`…).
    #[serde(rename = "match")]
    #[schemars(example = serde_json::json!({"content": "hi", "seq": "#number"}))]
    pub matches: Option<Value>,
    /// Compare `match` for equality instead of as a subset.
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = false)]
    pub exact: bool,
    /// Values to capture from the matched event.
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"message_id": "$.message_id"}))]
    pub capture: Captures,
    /// How many events must match `event`/`match`.
    #[schemars(with = "Option<Templated<u64>>", example = 3)]
    pub count: Option<u64>,
    /// Events that must arrive in this order (others may come between, unless
    /// `strict`): a list, or generated: `{for: n, range: [0, 100], item: {event: tick,
    /// match: {seq: "{{ n }}"}}}` (`range` excludes its end; or `in: [..]`).
    #[schemars(example = serde_json::json!(["run_started", {"event": "run_completed", "match": {"status": "completed"}}]))]
    pub sequence: Option<Sequence>,
    /// Events that must all arrive, in any order: a list, or generated like `sequence`
    /// (`{for, range|in, item}`).
    #[schemars(example = serde_json::json!(["presence_joined", "message_created"]))]
    pub unordered: Option<Sequence>,
    /// With `sequence`: the frames arrive one right after another; any other frame
    /// between them fails the step.
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = true)]
    pub strict: bool,
    /// Deadline (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"2s")]
    pub within: Option<Duration>,
}

/// The frames of an ordered expectation: written out, or generated from a range or list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Sequence {
    Items(#[schemars(length(min = 1))] Vec<PatternItem>),
    Generated(SequenceGenerator),
}

/// One sequence item per value of `range` or `in`, rendered with the value as
/// `{{ <for> }}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sequence_generator",
    extend("oneOf" = [{"required": ["range"]}, {"required": ["in"]}]),
    example = serde_json::json!({"for": "n", "range": [0, 100000], "item": {"event": "tick", "match": {"seq": "{{ n }}"}}})
)]
pub struct SequenceGenerator {
    /// The name the item's templates read the value by.
    #[serde(rename = "for")]
    #[schemars(with = "Identifier", example = &"n")]
    pub name: String,
    /// `[start, end]` or `[start, end, step]`; `end` is excluded, as in Python. Each
    /// bound may be a template (`[0, "{{ vars.total }}"]`).
    #[schemars(with = "Option<Templated<RangeBounds>>", example = serde_json::json!([0, 100]))]
    pub range: Option<Vec<i64>>,
    /// A list of values, or a template yielding one.
    #[serde(rename = "in")]
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["a", "b"]))]
    pub items: Option<Vec<Value>>,
    /// The item, rendered once per value (kept unrendered until then).
    #[serde(default)]
    #[schemars(with = "PatternItem", example = serde_json::json!({"event": "tick", "match": {"seq": "{{ n }}"}}))]
    pub item: Value,
}

/// Compare a value (a capture, an ID, a row field, a number, a time) with another; both
/// sides are shown on failure. Numbers compare as numbers, RFC 3339 times as times.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "assert",
    extend("minProperties" = 2),
    example = serde_json::json!({"value": "{{ vars.seq_after }}", "gt": "{{ vars.seq_before }}"})
)]
pub struct AssertStep {
    /// The value under test, usually a template: `{{ vars.after }}`.
    #[schemars(example = &"{{ vars.after }}")]
    pub value: Value,
    /// Equal (numbers by value: 1 equals 1.0).
    #[schemars(example = 3)]
    pub equals: Option<Value>,
    /// Not equal.
    #[schemars(example = &"{{ vars.before }}")]
    pub not_equals: Option<Value>,
    /// Greater than (numbers, times, strings).
    #[schemars(example = &"{{ vars.before }}")]
    pub gt: Option<Value>,
    /// Greater than or equal.
    #[schemars(example = 1)]
    pub gte: Option<Value>,
    /// Less than.
    #[schemars(example = 100)]
    pub lt: Option<Value>,
    /// Less than or equal.
    #[schemars(example = &"{{ vars.deadline }}")]
    pub lte: Option<Value>,
    /// Matches a pattern as in `expect.match`: subset of objects, placeholders
    /// (`#integer`, `#regex ^a`, `#gte 3`).
    #[serde(rename = "match")]
    #[schemars(example = &"#regex ^run_")]
    pub matches: Option<Value>,
    /// A list has this element, an object this key, a string this substring.
    #[schemars(example = &"{{ ids.alice }}")]
    pub contains: Option<Value>,
    /// What the assertion means, shown on failure.
    #[schemars(example = &"seq grows with every message")]
    pub message: Option<String>,
}

/// The comparisons `assert` offers, in the order they are checked.
pub const ASSERT_COMPARISONS: [&str; 8] = [
    "equals",
    "not_equals",
    "gt",
    "gte",
    "lt",
    "lte",
    "match",
    "contains",
];

/// Assert that no matching event arrives during a window (and none already waits in
/// the inbox).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "expect_none",
    example = serde_json::json!({"on": "tab2", "event": "message_created", "during": "500ms"}))]
pub struct ExpectNoneStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab2")]
    pub on: Option<String>,
    /// Event type; `*` is any frame.
    #[schemars(example = &"message_created")]
    pub event: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): a `next` (result) of the operation a `subscribe` step gave
    /// this name; `match` compares its payload (`{data, errors}`).
    #[schemars(example = &"chat")]
    pub next: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): an `error` of the operation of this name; `match`
    /// compares its payload (the list of GraphQL errors).
    #[schemars(example = &"chat")]
    pub error: Option<String>,
    /// GraphQL (graphql-transport-ws, graphql-ws): the `complete` of the operation of this name.
    #[schemars(example = &"chat")]
    pub complete: Option<String>,
    /// socket.io: only events of this namespace (default: any namespace).
    #[schemars(example = &"/admin")]
    pub namespace: Option<String>,
    /// Subset match with placeholders.
    #[serde(rename = "match")]
    #[schemars(example = serde_json::json!({"thread_id": "{{ ids.t1 }}"}))]
    pub matches: Option<Value>,
    /// How long to watch.
    #[serde(deserialize_with = "serde_duration::deserialize")]
    #[schemars(with = "DurationText", example = &"500ms")]
    pub during: Duration,
}

/// Wait for the server to close the connection, optionally with a close code.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "expect_close",
    example = serde_json::json!({"on": "tab1", "code": 4001, "within": "5s"}))]
pub struct ExpectCloseStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// The close code the server must send.
    #[schemars(with = "Option<Templated<u16>>", example = 4001)]
    pub code: Option<u16>,
    /// Subset match on the close reason (placeholders allowed).
    #[schemars(example = &"#regex expired")]
    pub reason: Option<Value>,
    /// Deadline (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"5s")]
    pub within: Option<Duration>,
}

/// Run a SELECT and check its rows. Columns are compared as JSON (Postgres
/// `row_to_json`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "assert_db",
    example = serde_json::json!({"query": "SELECT status FROM runs WHERE id = $1", "params": ["{{ vars.run_id }}"], "row": {"status": "completed"}, "eventually": "2s"}))]
pub struct AssertDbStep {
    /// One read-only statement, with $1.. parameters.
    #[schemars(example = &"SELECT status FROM runs WHERE id = $1")]
    pub query: String,
    /// Values bound to $1, $2, ... (never spliced into the SQL text).
    #[serde(default)]
    #[schemars(example = serde_json::json!(["{{ vars.run_id }}"]))]
    pub params: Vec<Value>,
    /// Name of a database in the suite config `databases` (default: `default`).
    #[schemars(example = &"default")]
    pub database: Option<String>,
    /// Expected rows, in order; each a subset match.
    #[schemars(with = "Option<Templated<Vec<serde_json::Map<String, Value>>>>")]
    #[schemars(example = serde_json::json!([{"status": "completed"}]))]
    pub rows: Option<Vec<Value>>,
    /// Exactly one row, matching this subset.
    #[schemars(with = "Option<Templated<serde_json::Map<String, Value>>>")]
    #[schemars(example = serde_json::json!({"status": "completed", "tokens": "#gte 1"}))]
    pub row: Option<Value>,
    /// How many rows: a number or a comparison placeholder (`#gte 1`).
    #[schemars(with = "Option<CountText>", example = 1)]
    pub row_count: Option<Value>,
    /// JSONPath into the rows array (`$[0].id`).
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"seq": "$[0].seq"}))]
    pub capture: Captures,
    /// Poll until the assertion holds or this deadline passes.
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"2s")]
    pub eventually: Option<Duration>,
}

/// A key's time to live.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ttl_range")]
pub struct TtlRange {
    /// At least this long.
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"50s")]
    pub min: Option<Duration>,
    /// At most this long.
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"60s")]
    pub max: Option<Duration>,
    /// The key exists and has no expiry.
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = true)]
    pub none: bool,
}

/// A stream's length and/or its entries' fields (subset match, in order).
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamExpectation {
    /// How many entries: a number or a comparison placeholder (`#gte 1`).
    #[schemars(with = "Option<CountText>", example = &"#gte 1")]
    pub length: Option<Value>,
    /// The entries' fields, oldest first (subset match each).
    #[schemars(with = "Option<Templated<Vec<serde_json::Map<String, Value>>>>")]
    #[schemars(example = serde_json::json!([{"type": "message_created"}]))]
    pub entries: Option<Vec<Value>>,
    /// Fields of the newest entry (subset).
    #[schemars(with = "Option<Templated<serde_json::Map<String, Value>>>")]
    #[schemars(example = serde_json::json!({"type": "run_completed"}))]
    pub last: Option<Value>,
}

/// Check a Redis key: existence, type and value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "assert_redis",
    example = serde_json::json!({"key": "presence:{{ ids.t1 }}", "set_contains": ["{{ ids.alice }}"], "ttl": {"max": "60s"}}))]
pub struct AssertRedisStep {
    /// The key.
    #[schemars(example = &"presence:{{ ids.t1 }}")]
    pub key: String,
    /// Name of a Redis server in the suite config `redis` (default: `default`).
    #[schemars(example = &"default")]
    pub server: Option<String>,
    /// The key exists (or not).
    #[schemars(with = "Option<Templated<bool>>", example = true)]
    pub exists: Option<bool>,
    /// Value of a string key (placeholders allowed).
    #[schemars(example = &"beta")]
    pub string: Option<Value>,
    /// Subset of a hash's fields.
    #[schemars(with = "Option<Templated<serde_json::Map<String, Value>>>")]
    #[schemars(example = serde_json::json!({"status": "running"}))]
    pub hash: Option<Value>,
    /// All of a hash's fields.
    #[schemars(with = "Option<Templated<serde_json::Map<String, Value>>>")]
    #[schemars(example = serde_json::json!({"status": "running", "owner": "{{ ids.alice }}"}))]
    pub hash_exact: Option<Value>,
    /// Exact members of a set (any order).
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["{{ ids.alice }}"]))]
    pub set: Option<Vec<Value>>,
    /// Members the set must include.
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["{{ ids.alice }}"]))]
    pub set_contains: Option<Vec<Value>>,
    /// Members the set must not include.
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["{{ ids.bob }}"]))]
    pub set_excludes: Option<Vec<Value>>,
    /// Exact list, in order.
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["a", "b"]))]
    pub list: Option<Vec<Value>>,
    /// Exact sorted set, in score order: members or {member, score}.
    #[schemars(with = "Option<Templated<Vec<Value>>>")]
    #[schemars(example = serde_json::json!([{"member": "{{ ids.alice }}", "score": 1}]))]
    pub zset: Option<Vec<Value>>,
    /// A stream's length and/or its entries' fields.
    #[schemars(example = serde_json::json!({"length": "#gte 1"}))]
    pub stream: Option<StreamExpectation>,
    /// STRLEN/HLEN/SCARD/LLEN/ZCARD/XLEN by type: a number or `#gte 1`.
    #[schemars(with = "Option<CountText>", example = 2)]
    pub length: Option<Value>,
    /// The key's type (`none`: it does not exist).
    #[serde(rename = "type")]
    #[schemars(with = "Option<RedisKeyType>", example = &"hash")]
    pub key_type: Option<String>,
    /// Its time to live.
    #[schemars(example = serde_json::json!({"min": "50s", "max": "60s"}))]
    pub ttl: Option<TtlRange>,
    /// JSONPath into the value (`$.field` for a hash).
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"owner": "$.owner"}))]
    pub capture: Captures,
    /// Poll until the assertion holds or this deadline passes.
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"2s")]
    pub eventually: Option<Duration>,
}

/// An HTTP request, its expected status and JSON body subset, and captures.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "http",
    example = serde_json::json!({"method": "POST", "url": "{{ env.HTTP_URL }}/api/threads", "json": {"title": "hi"}, "status": 201, "capture": {"thread_id": "$.id"}}))]
pub struct HttpStep {
    /// The method (default GET).
    #[schemars(with = "Option<HttpMethod>", example = &"POST")]
    pub method: Option<String>,
    /// The URL.
    #[schemars(example = &"{{ env.HTTP_URL }}/api/threads")]
    pub url: String,
    /// Request headers.
    #[serde(default)]
    #[schemars(with = "Option<Templated<BTreeMap<String, String>>>")]
    #[schemars(example = serde_json::json!({"x-request-id": "{{ ids.req }}"}))]
    pub headers: BTreeMap<String, String>,
    /// Present a token (`jwt` or `token`) as `Authorization: Bearer`.
    #[schemars(example = serde_json::json!({"jwt": {"claims": {"sub": "{{ ids.alice }}"}}}))]
    pub bearer: Option<Credentials>,
    /// Request body as JSON.
    #[schemars(example = serde_json::json!({"title": "hello"}))]
    pub json: Option<Value>,
    /// Raw request body.
    #[schemars(example = &"a=1&b=2")]
    pub body: Option<String>,
    /// The expected status.
    #[schemars(with = "Option<Templated<HttpStatus>>", example = 201)]
    pub status: Option<u16>,
    /// Subset match on the JSON response body.
    #[schemars(example = serde_json::json!({"id": "#uuid"}))]
    pub response: Option<Value>,
    /// JSONPath into the response body.
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"thread_id": "$.id"}))]
    pub capture: Captures,
    /// Deadline (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"5s")]
    pub within: Option<Duration>,
}

/// Start a GraphQL operation (subscription, query or mutation) on a
/// GraphQL connection (graphql-transport-ws or graphql-ws) under a name later steps use (`expect: {next:
/// <name>}`, `complete: <name>`); the engine allocates its id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "subscribe",
    example = serde_json::json!({"name": "chat", "query": "subscription ($room: String!) { messageAdded(room: $room) { text } }", "variables": {"room": "{{ ids.room }}"}}))]
pub struct SubscribeStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// The spec's name for the operation; a name may be used again once its
    /// operation ended.
    #[schemars(example = &"chat")]
    pub name: String,
    /// The GraphQL document.
    #[schemars(example = &"subscription { messageAdded { text } }")]
    pub query: String,
    /// The operation's variables.
    #[schemars(example = serde_json::json!({"room": "{{ ids.room }}"}))]
    pub variables: Option<Value>,
    /// GraphQL's `operationName`, when the document holds several operations (it
    /// also names the event schema of the operation's results).
    #[schemars(example = &"OnMessage")]
    pub operation_name: Option<String>,
    /// The request's `extensions`.
    #[schemars(example = serde_json::json!({"persistedQuery": {"version": 1}}))]
    pub extensions: Option<Value>,
}

/// End a running GraphQL operation from the client (`complete`; legacy `stop`):
/// its name, or `{name, on}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "complete", example = &"chat")]
pub enum CompleteStep {
    Name(String),
    Full(CompleteOn),
}

/// `complete: {name, on}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteOn {
    /// The operation's name (from its `subscribe`).
    #[schemars(example = &"chat")]
    pub name: String,
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
}

/// socket.io: emit an event with arguments in a namespace, and optionally wait for
/// its acknowledgement. An argument written `{"$binary": <base64>}` goes as a binary
/// attachment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "emit",
    example = serde_json::json!({"event": "create_room", "args": [{"name": "{{ ids.room }}"}], "ack": {"match": [{"ok": true}], "capture": {"room_id": "$[0].id"}}}))]
pub struct EmitStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// The event's name.
    #[schemars(example = &"chat message")]
    pub event: String,
    /// The event's arguments, in order.
    #[serde(default)]
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["hello", {"room": "{{ ids.room }}"}]))]
    pub args: Vec<Value>,
    /// The namespace (default: the connection's first, from `connect.namespaces`).
    #[schemars(example = &"/admin")]
    pub namespace: Option<String>,
    /// Ask the server to acknowledge the event and wait for its answer: `true`, or
    /// `{match, exact, capture, within}` on the acknowledgement's arguments.
    #[schemars(example = serde_json::json!({"match": [{"ok": true}], "capture": {"id": "$[0].id"}}))]
    pub ack: Option<AckWait>,
}

/// socket.io: connect a namespace mid-scenario (with an `auth` payload), waiting for
/// the server's answer, or disconnect one. With `refused`, the server must refuse the
/// connection with matching `connect_error` data.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "namespace",
    example = serde_json::json!({"connect": "/admin", "auth": {"token": "{{ vars.token }}"}}),
    extend("oneOf" = [{"required": ["connect"]}, {"required": ["disconnect"]}]))]
pub struct NamespaceStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// The namespace to connect.
    #[schemars(example = &"/admin")]
    pub connect: Option<String>,
    /// The CONNECT packet's payload (the server reads it as `socket.handshake.auth`).
    #[schemars(example = serde_json::json!({"token": "{{ vars.token }}"}))]
    pub auth: Option<Value>,
    /// The server must refuse the connection: `true`, or a subset match on its
    /// `connect_error` data.
    #[schemars(example = serde_json::json!({"message": "unauthorized"}))]
    pub refused: Option<Value>,
    /// The namespace to disconnect from the client (a DISCONNECT packet).
    #[schemars(example = &"/admin")]
    pub disconnect: Option<String>,
    /// Deadline for the server's answer (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"2s")]
    pub within: Option<Duration>,
}

/// Wait for the acknowledgement of an emit: `true`, or a pattern on its arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AckWait {
    /// `ack: true`: any acknowledgement.
    Any(bool),
    Pattern(AckPattern),
}

/// What the acknowledgement of an emit must hold.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckPattern {
    /// Subset match on the acknowledgement's arguments (a list).
    #[serde(rename = "match")]
    #[schemars(example = serde_json::json!([{"ok": true}]))]
    pub matches: Option<Value>,
    /// Compare `match` for equality instead of as a subset.
    #[serde(default)]
    #[schemars(with = "Option<Templated<bool>>", example = false)]
    pub exact: bool,
    /// Values to capture from the arguments (`$[0].id`).
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"room_id": "$[0].id"}))]
    pub capture: Captures,
    /// Deadline (default: the suite's step timeout).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"2s")]
    pub within: Option<Duration>,
}

/// Close a connection from the client side with a close frame.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "close",
    example = serde_json::json!({"on": "tab1", "code": 1000}))]
pub struct CloseStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
    /// The close code (default 1000).
    #[schemars(with = "Option<Templated<u16>>", example = 1000)]
    pub code: Option<u16>,
    /// The close reason.
    #[schemars(example = &"bye")]
    pub reason: Option<String>,
}

/// Drop a connection without a close frame, as a network failure would.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "disconnect",
    example = serde_json::json!({"on": "tab1"}))]
pub struct DisconnectStep {
    /// The connection (may be left out when the scenario has one).
    #[schemars(with = "Option<ConnectionRef>", example = &"tab1")]
    pub on: Option<String>,
}

/// Execute a SQL statement mid-scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sql_step",
    example = serde_json::json!({"query": "UPDATE runs SET status = 'cancelled' WHERE id = $1", "params": ["{{ vars.run_id }}"]}))]
pub struct SqlStep {
    /// One statement, with $1.. parameters.
    #[schemars(example = &"UPDATE runs SET status = 'cancelled' WHERE id = $1")]
    pub query: String,
    /// Values bound to $1, $2, ... (never spliced into the SQL text).
    #[serde(default)]
    #[schemars(example = serde_json::json!(["{{ vars.run_id }}"]))]
    pub params: Vec<Value>,
    /// Name of a database in the suite config `databases` (default: `default`).
    #[schemars(example = &"default")]
    pub database: Option<String>,
}

/// Execute a Redis command mid-scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "redis_step",
    example = serde_json::json!({"command": ["HGET", "session:{{ ids.alice }}", "status"], "capture": {"status": "$"}}))]
pub struct RedisStep {
    /// The command and its arguments.
    #[schemars(with = "RedisCommand", example = serde_json::json!(["GET", "flags:{{ ids.alice }}"]))]
    pub command: Vec<Value>,
    /// Name of a Redis server in the suite config `redis` (default: `default`).
    #[schemars(example = &"default")]
    pub server: Option<String>,
    /// JSONPath into the reply.
    #[serde(default)]
    #[schemars(with = "Option<CapturesMap>", example = serde_json::json!({"flag": "$"}))]
    pub capture: Captures,
}

/// Run nested steps once per item (`items`) or `count` times, in order. The loop
/// variable (`as`, default `i`) is the item or the 0-based index: `{{ i }}`. Use it to
/// name many connections (`name: "u{{ i }}"`) or derive many IDs
/// (`"{{ ids.batch }}-{{ i }}"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "each",
    example = serde_json::json!({"count": 50, "as": "n", "steps": [{"connect": {"name": "u{{ n }}", "url": "{{ env.WS_URL }}/ws"}}]})
)]
pub struct EachStep {
    /// Run the steps this many times.
    #[schemars(with = "Option<Templated<u64>>", example = 50)]
    pub count: Option<u64>,
    /// Run the steps once per item.
    #[schemars(with = "Option<Templated<Vec<Value>>>", example = serde_json::json!(["alice", "bob"]))]
    pub items: Option<Vec<Value>>,
    /// The loop variable's name (default `i`).
    #[serde(rename = "as")]
    #[schemars(with = "Option<Identifier>", example = &"n")]
    pub name: Option<String>,
    /// The nested steps (kept as JSON: they run from the parsed `Step::children`).
    #[schemars(with = "Vec<super::document::StepEntry>", length(min = 1))]
    #[schemars(example = serde_json::json!([{"send": {"on": "u{{ n }}", "json": {"type": "ping"}}}]))]
    pub steps: Vec<Value>,
}

/// Start a process for this scenario (for example a second instance of the system
/// under test, to restart it). Stopped at teardown if still running.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "start_process",
    example = serde_json::json!({"name": "backend2", "command": "cargo run -p backend", "env": {"BIND": "127.0.0.1:0"}, "ready_log": "listening on http://127\\.0\\.0\\.1:(?P<port>\\d+)"}))]
pub struct StartProcessStep {
    /// The name `stop_process` refers to.
    #[schemars(example = &"backend2")]
    pub name: String,
    /// Shell command.
    #[schemars(example = &"cargo run -p backend")]
    pub command: String,
    /// Extra environment variables.
    #[serde(default)]
    #[schemars(with = "Option<Templated<BTreeMap<String, String>>>")]
    #[schemars(example = serde_json::json!({"BIND": "127.0.0.1:0"}))]
    pub env: BTreeMap<String, String>,
    /// Working folder, relative to the suite config (default: its folder).
    #[schemars(example = &"..")]
    pub cwd: Option<String>,
    /// Readiness check: http(s)://, tcp://host:port, postgres://, redis://.
    #[schemars(example = &"http://127.0.0.1:8790/healthz")]
    pub ready: Option<String>,
    /// Regex matched against each line of the process's output: ready once a line
    /// matches, and its named groups become variables — e.g. bind port 0 and capture
    /// the port the process reports: `listening on http://127\.0\.0\.1:(?P<port>\d+)`
    /// gives `{{ vars.port }}`.
    #[schemars(example = &r"listening on http://127\.0\.0\.1:(?P<port>\d+)")]
    pub ready_log: Option<String>,
    /// Readiness deadline (default 30s).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"30s")]
    pub within: Option<Duration>,
}

/// Stop a process started by `start_process`, with a signal (TERM for a graceful stop,
/// KILL for a crash).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "stop_process",
    example = serde_json::json!({"name": "backend2", "signal": "KILL"}))]
pub struct StopProcessStep {
    /// The process's name.
    #[schemars(example = &"backend2")]
    pub name: String,
    /// TERM (default), KILL or INT.
    #[schemars(with = "Option<SignalName>", example = &"KILL")]
    pub signal: Option<String>,
    /// How long to wait for the exit (default 10s).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<DurationText>", example = &"10s")]
    pub within: Option<Duration>,
}
