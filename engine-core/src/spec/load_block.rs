//! A spec's `load:` block as written: the defaults `engine load` runs the scenario with
//! (every field optional; the command's flags fill in or override). What load mode
//! makes of it (executors, thresholds) is the engine's `load` module.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::serde_duration;
use super::schema::{fixed_schema, PlainDuration};

/// The `load:` block.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "Optional defaults for `engine load`: how this scenario runs as \
    virtual users (VUs), each iteration with fresh IDs, its own connections and its teardown."
)]
pub struct LoadBlock {
    /// When iterations start, as in k6. `constant-vus`: `vus` VUs loop for `duration`
    /// and/or until `iterations` are done. `ramping-vus`: the number of looping VUs
    /// follows `stages`. `constant-arrival-rate`: `rate` iterations start per
    /// `time_unit` for `duration`, whether or not earlier ones finished (open model), at
    /// most `max_vus` at once. Default: `ramping-vus` with `stages`,
    /// `constant-arrival-rate` with `rate`, else `constant-vus`.
    #[schemars(with = "Option<ExecutorName>", example = &"constant-vus")]
    pub executor: Option<String>,
    /// Virtual users of `constant-vus` (default 1).
    #[schemars(range(min = 1, max = 1_000_000), example = 50)]
    pub vus: Option<u64>,
    /// How long iterations start (`constant-vus`, `constant-arrival-rate`), e.g. `30s`,
    /// `2m`. Running iterations then finish and tear down.
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<PlainDuration>", example = &"30s")]
    pub duration: Option<Duration>,
    /// `constant-vus`: total iterations, shared by the VUs; the run ends when they are
    /// done (or at `duration`, whichever comes first).
    #[schemars(range(min = 1), example = 1000)]
    pub iterations: Option<u64>,
    /// VUs at the start of a `ramping-vus` test (default 0).
    #[schemars(range(max = 1_000_000), example = 0)]
    pub start_vus: Option<u64>,
    /// `ramping-vus`: move linearly to `target` VUs over each stage's `duration`, in
    /// order.
    #[schemars(length(min = 1))]
    #[schemars(example = serde_json::json!([{"duration": "10s", "target": 100}, {"duration": "20s", "target": 100}]))]
    pub stages: Option<Vec<StageBlock>>,
    /// `constant-arrival-rate`: iterations started per `time_unit`.
    #[schemars(extend("exclusiveMinimum" = 0), example = 200.0)]
    pub rate: Option<f64>,
    /// The unit of `rate` (default `1s`).
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    #[schemars(with = "Option<PlainDuration>", example = &"1s")]
    pub time_unit: Option<Duration>,
    /// `constant-arrival-rate`: most iterations running at once (default 1000); a start
    /// beyond it is dropped and counted in `iterations.dropped`.
    #[schemars(range(min = 1, max = 1_000_000), example = 1000)]
    pub max_vus: Option<u64>,
    /// Pass/fail criteria: metric → condition. A broken threshold makes `engine load`
    /// exit with code 1 and names it. Metrics: `connect_time`, `event_latency`,
    /// `iteration_duration`, `steps.N` (step number from 1) with `.p50` `.p90` `.p95`
    /// `.p99` `.pNN.N` `.min` `.max` `.avg` `.count`; `failures.rate` `failures.count`;
    /// `iterations.rate` `iterations.count` `iterations.dropped`;
    /// `frames_sent.rate|count`, `frames_received.rate|count`. Conditions: `<`, `<=`,
    /// `>`, `>=`, `==` and a value: durations in ms or with a unit (`200ms`, `1.5s`,
    /// `500us`), `failures.rate` as a fraction or a percentage (`0.1%`), rates per
    /// second.
    #[serde(default)]
    #[schemars(with = "Option<Thresholds>")]
    #[schemars(example = serde_json::json!({"event_latency.p95": "< 200ms", "failures.rate": "< 0.1%"}))]
    pub thresholds: BTreeMap<String, String>,
}

/// One stage of `ramping-vus`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageBlock {
    /// Length of the stage.
    #[serde(deserialize_with = "serde_duration::deserialize")]
    #[schemars(with = "PlainDuration", example = &"10s")]
    pub duration: Duration,
    /// VUs at the end of the stage.
    #[schemars(range(max = 1_000_000), example = 100)]
    pub target: u64,
}

fixed_schema! {
    /// The executors load mode knows.
    struct ExecutorName = inline "executor" { "enum": ["constant-vus", "ramping-vus", "constant-arrival-rate"] };

    /// Metric → condition.
    struct Thresholds = inline "thresholds" {
        "type": "object",
        "propertyNames": {
            "pattern": r"^((connect_time|event_latency|iteration_duration|steps\.[1-9][0-9]*)\.(p[0-9]+(\.[0-9]+)?|min|max|avg|mean|count)|failures\.(rate|count)|iterations\.(rate|count|dropped)|frames_(sent|received)\.(rate|count))$"
        },
        "additionalProperties": { "type": "string", "pattern": r"^\s*(<=|>=|==|<|>)\s*\S+" }
    };
}
