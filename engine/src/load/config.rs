//! The `load:` block of a spec and the `engine load` flags that override it, turned
//! into an [`Executor`] and [`Threshold`]s.

use std::time::Duration;

use super::executor::{Executor, Stage};
use super::threshold::{Threshold, ThresholdError};
use crate::spec::duration::parse_duration;

pub use crate::spec::load_block::{LoadBlock, StageBlock};

/// Most iterations in flight for the arrival-rate executor when `max_vus` is not set.
pub const DEFAULT_MAX_VUS: u64 = 1000;

/// Most VUs any setting may ask for: each VU is a task with its own connections, and
/// counts beyond this only exhaust memory (or overflow a semaphore) before anything runs.
pub const VU_LIMIT: u64 = 1_000_000;

/// Why the load settings (the spec's `load:` block and the flags) cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid `load:` block: {0}")]
    Block(serde_json::Error),
    /// The executor lacks a setting it needs, or one is out of its range.
    #[error("{0}")]
    Executor(&'static str),
    #[error("`rate` must be a positive number, got {0}")]
    Rate(f64),
    #[error("unknown executor `{0}`; use constant-vus, ramping-vus or constant-arrival-rate")]
    UnknownExecutor(String),
    #[error("{name} is at most {VU_LIMIT}, got {value}")]
    TooManyVus { name: &'static str, value: u64 },
    #[error("--stage `{0}`: expected DURATION:TARGET, e.g. 30s:100")]
    StageForm(String),
    #[error("--stage `{text}`: {source}")]
    StageDuration {
        text: String,
        source: crate::spec::duration::DurationError,
    },
    #[error("--stage `{0}`: the target must be a whole number of VUs")]
    StageTarget(String),
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
}

/// What load mode makes of a `load:` block (the block's type is the spec model's).
pub trait LoadSettings: Sized {
    /// Read the raw `load:` block of a scenario.
    fn from_spec(raw: Option<&serde_json::Value>) -> Result<Self, SettingsError>;
    /// `self` with every field that `flags` sets replaced; thresholds add up.
    fn overridden_by(self, flags: Self) -> Self;
    /// The executor the fields ask for.
    fn executor(&self) -> Result<Executor, SettingsError>;
    /// The thresholds, each checked for a known metric and a readable condition.
    fn thresholds(&self) -> Result<Vec<Threshold>, ThresholdError>;
}

impl LoadSettings for LoadBlock {
    fn from_spec(raw: Option<&serde_json::Value>) -> Result<LoadBlock, SettingsError> {
        match raw {
            None | Some(serde_json::Value::Null) => Ok(LoadBlock::default()),
            Some(value) => serde_json::from_value(value.clone()).map_err(SettingsError::Block),
        }
    }

    fn overridden_by(mut self, flags: LoadBlock) -> LoadBlock {
        macro_rules! take {
            ($($field:ident),*) => { $( if flags.$field.is_some() { self.$field = flags.$field; } )* };
        }
        take!(executor, vus, duration, iterations, start_vus, stages, rate, time_unit, max_vus);
        self.thresholds.extend(flags.thresholds);
        self
    }

    fn executor(&self) -> Result<Executor, SettingsError> {
        vus_within_limit(self)?;
        let kind = match (&self.executor, &self.stages, self.rate) {
            (Some(kind), _, _) => kind.as_str(),
            (None, Some(_), _) => "ramping-vus",
            (None, None, Some(_)) => "constant-arrival-rate",
            (None, None, None) => "constant-vus",
        };
        match kind {
            "constant-vus" => {
                let vus = self.vus.unwrap_or(1);
                if vus == 0 {
                    return Err(SettingsError::Executor("`vus` must be at least 1"));
                }
                if self.duration.is_none() && self.iterations.is_none() {
                    return Err(SettingsError::Executor("constant-vus needs `duration` and/or `iterations` (e.g. --duration 30s or --iterations 100)"));
                }
                Ok(Executor::ConstantVus {
                    vus,
                    duration: self.duration,
                    iterations: self.iterations,
                })
            }
            "ramping-vus" => {
                let stages: Vec<Stage> = self
                    .stages
                    .as_ref()
                    .ok_or(SettingsError::Executor(
                        "ramping-vus needs `stages` (e.g. --stage 10s:100 --stage 20s:100)",
                    ))?
                    .iter()
                    .map(|s| Stage {
                        duration: s.duration,
                        target: s.target,
                    })
                    .collect();
                if stages.is_empty() || stages.iter().all(|s| s.duration.is_zero()) {
                    return Err(SettingsError::Executor(
                        "ramping-vus needs at least one stage with a duration",
                    ));
                }
                Ok(Executor::RampingVus {
                    start_vus: self.start_vus.unwrap_or(0),
                    stages,
                })
            }
            "constant-arrival-rate" => {
                let rate = self.rate.ok_or(SettingsError::Executor(
                    "constant-arrival-rate needs `rate` (iterations per time unit)",
                ))?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(SettingsError::Rate(rate));
                }
                let duration = self.duration.ok_or(SettingsError::Executor(
                    "constant-arrival-rate needs `duration`",
                ))?;
                let time_unit = self.time_unit.unwrap_or(Duration::from_secs(1));
                if time_unit.is_zero() {
                    return Err(SettingsError::Executor(
                        "`time_unit` must be longer than zero",
                    ));
                }
                Ok(Executor::ConstantArrivalRate {
                    rate,
                    time_unit,
                    duration,
                    max_vus: self.max_vus.unwrap_or(DEFAULT_MAX_VUS).max(1),
                })
            }
            other => Err(SettingsError::UnknownExecutor(other.to_string())),
        }
    }

    fn thresholds(&self) -> Result<Vec<Threshold>, ThresholdError> {
        self.thresholds
            .iter()
            .map(|(metric, condition)| Threshold::new(metric, condition))
            .collect()
    }
}

/// Every VU count within [`VU_LIMIT`].
fn vus_within_limit(block: &LoadBlock) -> Result<(), SettingsError> {
    let stages = block
        .stages
        .iter()
        .flatten()
        .map(|s| ("stage `target`", Some(s.target)));
    for (name, value) in [
        ("`vus`", block.vus),
        ("`start_vus`", block.start_vus),
        ("`max_vus`", block.max_vus),
    ]
    .into_iter()
    .chain(stages)
    {
        if let Some(value) = value.filter(|&v| v > VU_LIMIT) {
            return Err(SettingsError::TooManyVus { name, value });
        }
    }
    Ok(())
}

/// `--stage 10s:100` → a stage.
pub fn parse_stage(text: &str) -> Result<StageBlock, SettingsError> {
    let (duration, target) = text
        .split_once(':')
        .ok_or_else(|| SettingsError::StageForm(text.to_string()))?;
    Ok(StageBlock {
        duration: parse_duration(duration).map_err(|source| SettingsError::StageDuration {
            text: text.to_string(),
            source,
        })?,
        target: target
            .trim()
            .parse()
            .map_err(|_| SettingsError::StageTarget(text.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_executor_follows_from_the_fields() {
        let ramp =
            LoadBlock::from_spec(Some(&json!({"stages": [{"duration": "10s", "target": 5}]})))
                .unwrap();
        assert_eq!(ramp.executor().unwrap().name(), "ramping-vus");
        let rate = LoadBlock::from_spec(Some(&json!({"rate": 20, "duration": "1m"}))).unwrap();
        assert_eq!(
            rate.executor().unwrap(),
            Executor::ConstantArrivalRate {
                rate: 20.0,
                time_unit: Duration::from_secs(1),
                duration: Duration::from_secs(60),
                max_vus: DEFAULT_MAX_VUS
            }
        );
        assert!(LoadBlock::from_spec(Some(&json!({"vus": 3})))
            .unwrap()
            .executor()
            .is_err());
        assert!(LoadBlock::from_spec(Some(&json!({"vsu": 3}))).is_err());
        let huge = LoadBlock::from_spec(Some(
            &json!({"rate": 1, "duration": "1s", "max_vus": u64::MAX}),
        ));
        let err = huge.unwrap().executor().unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError::TooManyVus {
                    name: "`max_vus`",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("at most 1000000"), "{err}");
    }

    #[test]
    fn flags_override_the_block() {
        let block = LoadBlock::from_spec(Some(
            &json!({"vus": 3, "duration": "10s", "thresholds": {"failures.rate": "< 1%"}}),
        ))
        .unwrap();
        let flags = LoadBlock {
            vus: Some(7),
            thresholds: [("event_latency.p95".to_string(), "< 1s".to_string())].into(),
            ..LoadBlock::default()
        };
        let merged = block.overridden_by(flags);
        assert_eq!(
            merged.executor().unwrap(),
            Executor::ConstantVus {
                vus: 7,
                duration: Some(Duration::from_secs(10)),
                iterations: None
            }
        );
        assert_eq!(merged.thresholds().unwrap().len(), 2);
    }

    #[test]
    fn stages_parse_from_flags() {
        let stage = parse_stage("1m:250").unwrap();
        assert_eq!(
            (stage.duration, stage.target),
            (Duration::from_secs(60), 250)
        );
        assert!(parse_stage("1m").is_err());
        assert!(parse_stage("soon:3").is_err());
    }
}
