//! Thresholds: pass/fail criteria on a load result, as in k6.
//!
//! `event_latency.p95: "< 200ms"` in the `load:` block, or
//! `--threshold "event_latency.p95 < 200ms"`. Metrics: `connect_time`,
//! `event_latency`, `iteration_duration` and `steps.N` (N = step number, from 1) with
//! `p50`, `p90`, `p95`, `p99`, `pNN.N`, `min`, `max`, `avg`, `count`; `failures.rate`,
//! `failures.count`; `iterations.rate`, `iterations.count`, `iterations.dropped`;
//! `frames_sent.rate|count`, `frames_received.rate|count`. Durations compare in
//! milliseconds (`200ms`, `1.5s`, `500us`; a bare number is ms), rates as fractions
//! (`0.1%` = 0.001) or per second.

use super::metrics::{Distribution, LoadResult, ResultError, ThresholdOutcome};
use crate::spec::duration::{parse_duration, DurationError};

/// Why a threshold cannot be read, or its metric not found in a result.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold `{0}`: expected METRIC < VALUE, e.g. \"event_latency.p95 < 200ms\"")]
    NoComparison(String),
    #[error("{}", unknown_metric(.0))]
    UnknownMetric(String),
    #[error("`{metric}`: `{text}` is not a percentile like p95 or p99.9")]
    BadPercentile { metric: String, text: String },
    #[error("`{0}`: expected steps.N.STAT, e.g. steps.3.p95")]
    StepForm(String),
    #[error("`{0}`: the step number counts from 1")]
    StepNumber(String),
    #[error("`{0}`: a condition starts with <, <=, >, >= or ==, e.g. \"< 200ms\"")]
    BadComparison(String),
    #[error("`{metric}`: `{text}` is not a number")]
    NotANumber { metric: String, text: String },
    #[error("`{metric}`: {source}")]
    BadDuration {
        metric: String,
        source: DurationError,
    },
    #[error("threshold `{expression}`: step {number} never ran")]
    StepNeverRan { expression: String, number: usize },
    #[error(transparent)]
    Result(#[from] ResultError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl Comparison {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => value < limit,
            Comparison::LessOrEqual => value <= limit,
            Comparison::Greater => value > limit,
            Comparison::GreaterOrEqual => value >= limit,
            Comparison::Equal => (value - limit).abs() < 1e-9,
        }
    }
}

/// What a threshold reads from a result.
#[derive(Debug, Clone, PartialEq)]
enum MetricRef {
    /// A duration statistic of a distribution, in ms (or a count).
    Distribution {
        source: Source,
        statistic: Statistic,
    },
    FailureRate,
    FailureCount,
    IterationRate,
    IterationCount,
    DroppedIterations,
    FramesSentRate,
    FramesSentCount,
    FramesReceivedRate,
    FramesReceivedCount,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    ConnectTime,
    EventLatency,
    IterationDuration,
    /// 1-based step number.
    Step(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Statistic {
    Percentile(f64),
    Min,
    Max,
    Mean,
    Count,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As the user wrote it, normalized: `event_latency.p95 < 200ms`.
    pub expression: String,
    metric: MetricRef,
    comparison: Comparison,
    /// In the metric's unit (ms for durations, a fraction for failures.rate).
    limit: f64,
}

const DISTRIBUTIONS: [&str; 3] = ["connect_time", "event_latency", "iteration_duration"];
const SCALARS: [&str; 9] = [
    "failures.rate",
    "failures.count",
    "iterations.rate",
    "iterations.count",
    "iterations.dropped",
    "frames_sent.rate",
    "frames_sent.count",
    "frames_received.rate",
    "frames_received.count",
];

fn known_names() -> Vec<String> {
    let mut names: Vec<String> = DISTRIBUTIONS
        .iter()
        .flat_map(|d| ["p50", "p90", "p95", "p99", "max", "avg"].map(|s| format!("{d}.{s}")))
        .collect();
    names.extend(SCALARS.iter().map(|s| s.to_string()));
    names
}

/// "unknown threshold metric", with the nearest known name or the list of them.
fn unknown_metric(name: &str) -> String {
    let names = known_names();
    let nearest = names
        .iter()
        .min_by_key(|n| strsim::levenshtein(n, name))
        .filter(|n| strsim::levenshtein(n, name) <= 4);
    match nearest {
        Some(n) => format!("unknown threshold metric `{name}` (did you mean `{n}`?)"),
        None => format!(
            "unknown threshold metric `{name}`; known: {}, steps.N.p95, …",
            names.join(", ")
        ),
    }
}

fn parse_statistic(text: &str, metric: &str) -> Result<Statistic, ThresholdError> {
    match text {
        "min" => Ok(Statistic::Min),
        "max" => Ok(Statistic::Max),
        "avg" | "mean" => Ok(Statistic::Mean),
        "count" => Ok(Statistic::Count),
        p if p.starts_with('p') => match p[1..].parse::<f64>() {
            Ok(q) if (0.0..=100.0).contains(&q) => Ok(Statistic::Percentile(q)),
            _ => Err(ThresholdError::BadPercentile {
                metric: metric.to_string(),
                text: p.to_string(),
            }),
        },
        _ => Err(ThresholdError::UnknownMetric(metric.to_string())),
    }
}

fn parse_metric(name: &str) -> Result<MetricRef, ThresholdError> {
    let scalar = match name {
        "failures.rate" => Some(MetricRef::FailureRate),
        "failures.count" => Some(MetricRef::FailureCount),
        "iterations.rate" => Some(MetricRef::IterationRate),
        "iterations.count" => Some(MetricRef::IterationCount),
        "iterations.dropped" => Some(MetricRef::DroppedIterations),
        "frames_sent.rate" => Some(MetricRef::FramesSentRate),
        "frames_sent.count" => Some(MetricRef::FramesSentCount),
        "frames_received.rate" => Some(MetricRef::FramesReceivedRate),
        "frames_received.count" => Some(MetricRef::FramesReceivedCount),
        _ => None,
    };
    if let Some(metric) = scalar {
        return Ok(metric);
    }
    if let Some(rest) = name.strip_prefix("steps.") {
        let (number, statistic) = rest
            .split_once('.')
            .ok_or_else(|| ThresholdError::StepForm(name.to_string()))?;
        let number: usize = number
            .parse()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| ThresholdError::StepNumber(name.to_string()))?;
        return Ok(MetricRef::Distribution {
            source: Source::Step(number),
            statistic: parse_statistic(statistic, name)?,
        });
    }
    let (base, statistic) = name
        .split_once('.')
        .ok_or_else(|| ThresholdError::UnknownMetric(name.to_string()))?;
    let source = match base {
        "connect_time" => Source::ConnectTime,
        "event_latency" => Source::EventLatency,
        "iteration_duration" => Source::IterationDuration,
        _ => return Err(ThresholdError::UnknownMetric(name.to_string())),
    };
    Ok(MetricRef::Distribution {
        source,
        statistic: parse_statistic(statistic, name)?,
    })
}

fn parse_comparison(text: &str) -> Result<(Comparison, &str), ThresholdError> {
    let text = text.trim_start();
    for (symbol, comparison) in [
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("==", Comparison::Equal),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ] {
        if let Some(rest) = text.strip_prefix(symbol) {
            return Ok((comparison, rest.trim()));
        }
    }
    Err(ThresholdError::BadComparison(text.to_string()))
}

fn parse_limit(metric: &MetricRef, text: &str, name: &str) -> Result<f64, ThresholdError> {
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| ThresholdError::NotANumber {
                metric: name.to_string(),
                text: text.to_string(),
            })
    };
    match metric {
        MetricRef::Distribution {
            statistic: Statistic::Count,
            ..
        } => number(text),
        MetricRef::Distribution { .. } => {
            if let Some(micros) = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")) {
                return Ok(number(micros)? / 1000.0);
            }
            if text.trim().parse::<f64>().is_ok() {
                return number(text);
            }
            parse_duration(text)
                .map(|d| d.as_secs_f64() * 1000.0)
                .map_err(|source| ThresholdError::BadDuration {
                    metric: name.to_string(),
                    source,
                })
        }
        MetricRef::FailureRate => match text.strip_suffix('%') {
            Some(percent) => Ok(number(percent)? / 100.0),
            None => number(text),
        },
        MetricRef::IterationRate | MetricRef::FramesSentRate | MetricRef::FramesReceivedRate => {
            number(text.strip_suffix("/s").unwrap_or(text))
        }
        _ => number(text),
    }
}

impl Threshold {
    /// A threshold from a metric name and a condition (`< 200ms`).
    pub fn new(metric: &str, condition: &str) -> Result<Threshold, ThresholdError> {
        let metric_name = metric.trim();
        let parsed = parse_metric(metric_name)?;
        let (comparison, limit_text) = parse_comparison(condition)?;
        let limit = parse_limit(&parsed, limit_text, metric_name)?;
        Ok(Threshold {
            expression: format!("{metric_name} {}", condition.trim()),
            metric: parsed,
            comparison,
            limit,
        })
    }

    /// A threshold from one expression: `event_latency.p95 < 200ms`.
    pub fn parse(expression: &str) -> Result<Threshold, ThresholdError> {
        let at = expression
            .find(['<', '>', '='])
            .ok_or_else(|| ThresholdError::NoComparison(expression.to_string()))?;
        Threshold::new(&expression[..at], &expression[at..])
    }

    /// The metric's value in `result`.
    pub fn value(&self, result: &LoadResult) -> Result<f64, ThresholdError> {
        let distribution_value = |d: &Distribution, statistic: Statistic| match statistic {
            Statistic::Percentile(q) => Ok(d.percentile_ms(q)?),
            Statistic::Min => Ok(d.min_ms),
            Statistic::Max => Ok(d.max_ms),
            Statistic::Mean => Ok(d.mean_ms),
            Statistic::Count => Ok(d.count as f64),
        };
        match &self.metric {
            MetricRef::Distribution { source, statistic } => {
                let distribution = match source {
                    Source::ConnectTime => &result.connect_time,
                    Source::EventLatency => &result.event_latency,
                    Source::IterationDuration => &result.iteration_duration,
                    Source::Step(number) => result
                        .steps
                        .iter()
                        .find(|s| s.index + 1 == *number)
                        .map(|s| &s.duration)
                        .ok_or_else(|| ThresholdError::StepNeverRan {
                            expression: self.expression.clone(),
                            number: *number,
                        })?,
                };
                distribution_value(distribution, *statistic)
            }
            MetricRef::FailureRate => Ok(result.failures.rate),
            MetricRef::FailureCount => Ok(result.failures.count as f64),
            MetricRef::IterationRate => Ok(result.iterations.rate),
            MetricRef::IterationCount => Ok(result.iterations.count as f64),
            MetricRef::DroppedIterations => Ok(result.iterations.dropped as f64),
            MetricRef::FramesSentRate => Ok(result.frames.sent_rate),
            MetricRef::FramesSentCount => Ok(result.frames.sent as f64),
            MetricRef::FramesReceivedRate => Ok(result.frames.received_rate),
            MetricRef::FramesReceivedCount => Ok(result.frames.received as f64),
        }
    }

    /// Whether the result meets this threshold (a metric that cannot be read fails).
    pub fn check(&self, result: &LoadResult) -> ThresholdOutcome {
        match self.value(result) {
            Ok(value) => ThresholdOutcome {
                expression: self.expression.clone(),
                value,
                passed: self.comparison.holds(value, self.limit),
            },
            Err(_) => ThresholdOutcome {
                expression: self.expression.clone(),
                value: f64::NAN,
                passed: false,
            },
        }
    }

    /// How the value reads in messages: `12.3ms`, `0.25%`, `98.1/s`.
    pub fn format_value(&self, value: f64) -> String {
        match &self.metric {
            MetricRef::Distribution {
                statistic: Statistic::Count,
                ..
            } => format!("{value}"),
            MetricRef::Distribution { .. } => format!("{value:.3}ms"),
            MetricRef::FailureRate => format!("{:.3}%", value * 100.0),
            MetricRef::IterationRate
            | MetricRef::FramesSentRate
            | MetricRef::FramesReceivedRate => {
                format!("{value:.2}/s")
            }
            _ => format!("{value}"),
        }
    }
}

/// Check every threshold; the outcomes in order.
pub fn evaluate(thresholds: &[Threshold], result: &LoadResult) -> Vec<ThresholdOutcome> {
    thresholds.iter().map(|t| t.check(result)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::{new_histogram, Failures, IterationCounts};

    fn result() -> LoadResult {
        let mut h = new_histogram();
        for micros in 1..=1000u64 {
            h.record(micros * 1000).unwrap(); // 1ms ..= 1000ms
        }
        LoadResult {
            event_latency: Distribution::of(&h),
            iterations: IterationCounts {
                count: 2000,
                failed: 1,
                rate: 40.0,
                ..Default::default()
            },
            failures: Failures {
                count: 1,
                rate: 1.0 / 2000.0,
                ..Default::default()
            },
            ..LoadResult::default()
        }
    }

    #[test]
    fn latency_percentiles_compare_in_milliseconds() {
        let r = result();
        assert!(
            Threshold::new("event_latency.p95", "< 1s")
                .unwrap()
                .check(&r)
                .passed
        );
        let broken = Threshold::new("event_latency.p95", "< 200ms")
            .unwrap()
            .check(&r);
        assert!(!broken.passed);
        assert!((broken.value - 950.0).abs() < 1.0, "{}", broken.value);
        assert!(
            Threshold::parse("event_latency.p99.9 <= 1001ms")
                .unwrap()
                .check(&r)
                .passed
        );
        assert!(
            !Threshold::parse("event_latency.max<500")
                .unwrap()
                .check(&r)
                .passed
        );
    }

    #[test]
    fn failure_rate_reads_percentages() {
        let r = result();
        assert!(
            Threshold::new("failures.rate", "< 0.1%")
                .unwrap()
                .check(&r)
                .passed
        );
        assert!(
            !Threshold::new("failures.rate", "< 0.01%")
                .unwrap()
                .check(&r)
                .passed
        );
        assert!(
            Threshold::parse("iterations.rate >= 40/s")
                .unwrap()
                .check(&r)
                .passed
        );
        assert!(
            !Threshold::parse("iterations.count > 2000")
                .unwrap()
                .check(&r)
                .passed
        );
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        let e = Threshold::new("event_latncy.p95", "< 1s").unwrap_err();
        assert!(matches!(&e, ThresholdError::UnknownMetric(name) if name == "event_latncy.p95"));
        assert!(
            e.to_string().contains("did you mean `event_latency.p95`"),
            "{e}"
        );
        let e = Threshold::new("event_latency.p95", "about 1s").unwrap_err();
        assert!(matches!(e, ThresholdError::BadComparison(_)), "{e}");
        assert!(e.to_string().contains("starts with"), "{e}");
        assert!(matches!(
            Threshold::new("event_latency.p95", "< soon"),
            Err(ThresholdError::BadDuration { .. })
        ));
        assert!(matches!(
            Threshold::parse("event_latency.p95"),
            Err(ThresholdError::NoComparison(_))
        ));
        assert!(matches!(
            Threshold::new("steps.0.p95", "< 1s"),
            Err(ThresholdError::StepNumber(_))
        ));
    }

    #[test]
    fn a_step_that_never_ran_fails_its_threshold() {
        let outcome = Threshold::new("steps.4.p95", "< 1s")
            .unwrap()
            .check(&result());
        assert!(!outcome.passed);
    }
}
