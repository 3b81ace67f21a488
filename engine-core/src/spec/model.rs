//! The parsed scenario model. Step bodies stay as JSON until run time, because their
//! strings are templates; each step kind has a typed body that the runner
//! deserializes after rendering (and `engine check` deserializes to validate).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::duration::serde_duration;
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
    /// A step from the suite's library, written under its own name.
    Call,
}

impl StepKind {
    /// The built-in kinds (a [`StepKind::Call`] is written under its library step's name).
    pub const ALL: [StepKind; 18] = [
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
        )
    }
}

/// Name → JSONPath.
pub type Captures = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub sql: Option<String>,
    pub sql_file: Option<String>,
    #[serde(default)]
    pub params: Vec<Value>,
    pub database: Option<String>,
    pub redis: Option<Vec<Value>>,
    pub server: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectStep {
    pub name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, Value>,
    #[serde(default)]
    pub subprotocols: Vec<String>,
    pub ca_file: Option<String>,
    pub authenticate: Option<Credentials>,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
    pub expect_status: Option<u16>,
    /// The subprotocol the server must pick in its handshake answer.
    pub expect_subprotocol: Option<String>,
    /// Read JSON carried in binary frames like text frames (matching, types, schemas).
    #[serde(default)]
    pub binary_json: bool,
    /// Captures from the ready event (see [`ReadyWait`]).
    #[serde(default)]
    pub capture: Captures,
    /// Wait after connecting until this event arrives (a profile's `ready`, overridable).
    pub ready: Option<ReadyWait>,
}

/// The name a `connect` gives its connection (`default` when it gives none), read from
/// the unrendered body.
pub fn connection_name(body: &Value) -> &str {
    body.get("name")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_CONNECTION)
}

/// The connection name of a `connect` without `name:`.
pub const DEFAULT_CONNECTION: &str = "default";

/// The connect fields a profile or a step may set, before profile and step are merged:
/// `profile:` names a suite-config profile, `identity:` is what its templates call
/// `{{ identity }}`.
pub const CONNECT_PROFILE_KEYS: [&str; 2] = ["profile", "identity"];

/// The event that says a new connection is ready, taken from its inbox like `expect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReadyWait {
    /// `ready: false` turns a profile's wait off; `true` is an error.
    Off(bool),
    /// `ready: connection_established`.
    Event(String),
    Pattern(EventPattern),
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
            ReadyWait::Pattern(p) => Some(p.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PresentAs {
    #[default]
    Bearer,
    Query,
    Subprotocol,
    Message,
}

/// A token to present, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub jwt: Option<JwtSpec>,
    pub token: Option<String>,
    #[serde(default, rename = "as")]
    pub present_as: PresentAs,
    pub param: Option<String>,
    pub header: Option<String>,
    pub message: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    pub expires_in: Option<String>,
    pub alg: Option<String>,
    pub secret: Option<String>,
    pub private_key_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateStep {
    pub on: Option<String>,
    pub jwt: Option<JwtSpec>,
    pub token: Option<String>,
    pub message: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    pub on: Option<String>,
    pub json: Option<Value>,
    pub text: Option<String>,
    pub binary: Option<BinaryPayload>,
    pub repeat: Option<u64>,
}

/// A binary frame's bytes: base64, or the UTF-8 of a (templated) text or JSON value.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BinaryPayload {
    Base64(String),
    Text { text: String },
    Json { json: Value },
}

/// One pattern an event must match.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventPattern {
    pub event: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<Value>,
    #[serde(default)]
    pub exact: bool,
    #[serde(default)]
    pub capture: Captures,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PatternItem {
    Type(String),
    Pattern(EventPattern),
}

impl PatternItem {
    pub fn into_pattern(self) -> EventPattern {
        match self {
            PatternItem::Type(event) => EventPattern {
                event: Some(event),
                ..EventPattern::default()
            },
            PatternItem::Pattern(p) => p,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    pub on: Option<String>,
    pub event: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<Value>,
    #[serde(default)]
    pub exact: bool,
    #[serde(default)]
    pub capture: Captures,
    pub count: Option<u64>,
    pub sequence: Option<Sequence>,
    pub unordered: Option<Sequence>,
    /// With `sequence`: its frames arrive one right after the other, nothing between.
    #[serde(default)]
    pub strict: bool,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
}

/// The frames of an ordered expectation: written out, or generated from a range or list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sequence {
    Items(Vec<PatternItem>),
    Generated(SequenceGenerator),
}

/// `{for: n, range: [0, 100000], item: {event: tick, match: {seq: "{{ n }}"}}}`: one
/// item per value, rendered with the value under the `for` name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceGenerator {
    #[serde(rename = "for")]
    pub name: String,
    /// `[start, end]` or `[start, end, step]`; `end` is excluded, as in Python.
    pub range: Option<Vec<i64>>,
    #[serde(rename = "in")]
    pub items: Option<Vec<Value>>,
    /// Kept unrendered: rendered once per value (the runner takes it out first).
    #[serde(default)]
    pub item: Value,
}

/// `assert`: a value compared with another, both shown on failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertStep {
    pub value: Value,
    pub equals: Option<Value>,
    pub not_equals: Option<Value>,
    pub gt: Option<Value>,
    pub gte: Option<Value>,
    pub lt: Option<Value>,
    pub lte: Option<Value>,
    /// A pattern as in `match:` (placeholders, subsets of objects).
    #[serde(rename = "match")]
    pub matches: Option<Value>,
    /// An element of a list, a key of an object, or a substring.
    pub contains: Option<Value>,
    /// What the assertion means, shown on failure.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectNoneStep {
    pub on: Option<String>,
    pub event: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<Value>,
    #[serde(with = "serde_duration")]
    pub during: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCloseStep {
    pub on: Option<String>,
    pub code: Option<u16>,
    pub reason: Option<Value>,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertDbStep {
    pub query: String,
    #[serde(default)]
    pub params: Vec<Value>,
    pub database: Option<String>,
    pub rows: Option<Vec<Value>>,
    pub row: Option<Value>,
    /// A number, or a comparison placeholder (`#gte 1`).
    pub row_count: Option<Value>,
    #[serde(default)]
    pub capture: Captures,
    #[serde(default, with = "serde_duration::option")]
    pub eventually: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TtlRange {
    #[serde(default, with = "serde_duration::option")]
    pub min: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    pub max: Option<Duration>,
    #[serde(default)]
    pub none: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StreamExpectation {
    /// A number, or a comparison placeholder (`#gte 1`).
    pub length: Option<Value>,
    pub entries: Option<Vec<Value>>,
    pub last: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertRedisStep {
    pub key: String,
    pub server: Option<String>,
    pub exists: Option<bool>,
    pub string: Option<Value>,
    pub hash: Option<Value>,
    pub hash_exact: Option<Value>,
    pub set: Option<Vec<Value>>,
    pub set_contains: Option<Vec<Value>>,
    pub set_excludes: Option<Vec<Value>>,
    pub list: Option<Vec<Value>>,
    pub zset: Option<Vec<Value>>,
    pub stream: Option<StreamExpectation>,
    /// A number, or a comparison placeholder (`#gte 1`).
    pub length: Option<Value>,
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    pub ttl: Option<TtlRange>,
    #[serde(default)]
    pub capture: Captures,
    #[serde(default, with = "serde_duration::option")]
    pub eventually: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub bearer: Option<Credentials>,
    pub json: Option<Value>,
    pub body: Option<String>,
    pub status: Option<u16>,
    pub response: Option<Value>,
    #[serde(default)]
    pub capture: Captures,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseStep {
    pub on: Option<String>,
    pub code: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectStep {
    pub on: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlStep {
    pub query: String,
    #[serde(default)]
    pub params: Vec<Value>,
    pub database: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStep {
    pub command: Vec<Value>,
    pub server: Option<String>,
    #[serde(default)]
    pub capture: Captures,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EachStep {
    pub count: Option<u64>,
    pub items: Option<Vec<Value>>,
    #[serde(rename = "as")]
    pub name: Option<String>,
    /// Kept as JSON: the nested steps are run from the parsed `Step::children`.
    pub steps: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartProcessStep {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub ready: Option<String>,
    /// Regex on the output; ready when a line matches, named groups become variables.
    pub ready_log: Option<String>,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopProcessStep {
    pub name: String,
    /// TERM (default), KILL or INT.
    pub signal: Option<String>,
    #[serde(default, with = "serde_duration::option")]
    pub within: Option<Duration>,
}
