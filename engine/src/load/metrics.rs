//! What a load run measures, and the result it produces.
//!
//! Durations go into HDR histograms in microseconds (1 µs to 1 h, 3 significant
//! digits). Counters are atomics, so the per-frame hot path takes no lock. Once a
//! second [`LoadMetrics::tick`] closes a window: a point of the time series with that
//! second's counts and event-latency percentiles. Histograms travel in the JSON result
//! as base64 HDR V2, so results of several processes merge exactly
//! ([`LoadResult::merge`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::runner::meter::Meter;
use crate::runner::scenario::{Attempt, Status};
use crate::spec::model::Scenario;
use crate::sync::lock;

/// Largest duration a histogram holds: one hour, in microseconds.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// An empty duration histogram (microseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, HIGHEST_MICROS));
}

/// A distribution of durations: percentiles in milliseconds plus the histogram itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The HDR histogram (microseconds), V2 format, base64.
    pub hdr: String,
}

impl Distribution {
    pub fn of(histogram: &Histogram<u64>) -> Distribution {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let empty = histogram.is_empty();
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        Distribution {
            count: histogram.len(),
            min_ms: if empty { 0.0 } else { ms(histogram.min()) },
            mean_ms: if empty {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: if empty { 0.0 } else { ms(histogram.max()) },
            hdr: encode(histogram),
        }
    }

    /// The histogram back from its base64 form.
    pub fn histogram(&self) -> Result<Histogram<u64>, ResultError> {
        decode(&self.hdr)
    }

    /// A percentile (0–100) in milliseconds, read from the histogram for exactness.
    pub fn percentile_ms(&self, percentile: f64) -> Result<f64, ResultError> {
        let histogram = self.histogram()?;
        if histogram.is_empty() {
            return Ok(0.0);
        }
        Ok(histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0)
    }
}

pub fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    match V2Serializer::new().serialize(histogram, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Why load results cannot be read back or merged.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("bad base64 histogram: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("bad HDR histogram: {0:?}")]
    Hdr(hdrhistogram::serialization::DeserializeError),
    #[error("cannot merge histograms: {0:?}")]
    Add(hdrhistogram::AdditionError),
    #[error("nothing to merge")]
    Nothing,
    #[error("cannot merge results of different scenarios: `{0}` and `{1}`")]
    DifferentScenarios(String, String),
    #[error("segment {0} appears twice")]
    SegmentTwice(String),
}

pub fn decode(text: &str) -> Result<Histogram<u64>, ResultError> {
    if text.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(ResultError::Hdr)
}

fn add(into: &mut Histogram<u64>, other: &Histogram<u64>) -> Result<(), ResultError> {
    into.add(other).map_err(ResultError::Add)
}

/// One step's durations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepDurations {
    /// Position in the scenario (0-based).
    pub index: usize,
    /// e.g. `#3 expect (line 14)`.
    pub label: String,
    pub duration: Distribution,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecondPoint {
    /// Seconds since the start at the end of this window (1, 2, …).
    pub second: u64,
    /// Iterations running at the end of the window.
    pub vus: u64,
    pub open_connections: u64,
    pub iterations: u64,
    pub failures: u64,
    pub dropped_iterations: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Event latency within this second.
    pub event_latency: Distribution,
    /// Resident memory of this process at the end of the window.
    pub rss_kib: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IterationCounts {
    pub count: u64,
    pub failed: u64,
    /// Cancelled by a stop request (Ctrl-C, SIGTERM) and torn down; neither passed nor
    /// failed, and left out of the duration histograms.
    #[serde(default)]
    pub interrupted: u64,
    /// Arrival-rate starts skipped because `max_vus` iterations were running.
    pub dropped: u64,
    /// Finished iterations per second.
    pub rate: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Failures {
    /// Failed iterations.
    pub count: u64,
    /// Failed iterations / iterations.
    pub rate: f64,
    /// By what failed: the step kind (`connect`, `expect`, …), `setup`, `timeout`,
    /// `teardown` (counted besides the step that failed, if any).
    pub by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FrameCounts {
    pub sent: u64,
    pub received: u64,
    pub sent_rate: f64,
    pub received_rate: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnectionCounts {
    pub opened: u64,
    /// Most connections open at once (sampled every second).
    pub peak_open: u64,
}

/// Memory of one engine process (absent from merged results).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    /// Resident memory before the first VU started.
    pub rss_start_kib: u64,
    pub rss_peak_kib: u64,
    /// Resident memory when the most connections were open, and how many.
    pub rss_at_peak_open_kib: u64,
    pub peak_open_connections: u64,
    /// (rss_at_peak_open - rss_start) / peak_open_connections.
    pub kib_per_open_connection: Option<f64>,
}

/// Whether one threshold held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdOutcome {
    pub expression: String,
    pub value: f64,
    pub passed: bool,
}

/// Everything a load run found; written by `--json`, read by `engine load merge`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadResult {
    pub scenario: String,
    pub file: String,
    pub executor: serde_json::Value,
    /// The segments this result covers (`["1/1"]` for a whole run).
    pub segments: Vec<String>,
    /// Whether a stop request (Ctrl-C, SIGTERM) ended the run early.
    pub interrupted: bool,
    pub duration_s: f64,
    pub iterations: IterationCounts,
    pub failures: Failures,
    pub frames: FrameCounts,
    pub connections: ConnectionCounts,
    pub connect_time: Distribution,
    pub event_latency: Distribution,
    pub iteration_duration: Distribution,
    pub steps: Vec<StepDurations>,
    pub memory: Option<Memory>,
    pub series: Vec<SecondPoint>,
    /// Threshold expressions, as given (`event_latency.p95 < 200ms`).
    pub threshold_expressions: Vec<String>,
    pub thresholds: Vec<ThresholdOutcome>,
    /// What the figures tell about the system under test (see `load::diagnosis`), one
    /// line each; set with the thresholds.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl LoadResult {
    /// One result from several segments' results: counters add up, histograms merge
    /// exactly, time series add up second by second (aligned on each run's start).
    pub fn merge(parts: &[LoadResult]) -> Result<LoadResult, ResultError> {
        let first = parts.first().ok_or(ResultError::Nothing)?;
        if let Some(other) = parts.iter().find(|p| p.scenario != first.scenario) {
            return Err(ResultError::DifferentScenarios(
                first.scenario.clone(),
                other.scenario.clone(),
            ));
        }
        let mut segments: Vec<String> = parts.iter().flat_map(|p| p.segments.clone()).collect();
        segments.sort();
        if let Some(pair) = segments.windows(2).find(|w| w[0] == w[1]) {
            return Err(ResultError::SegmentTwice(pair[0].clone()));
        }
        let merge_dist =
            |pick: &dyn Fn(&LoadResult) -> &Distribution| -> Result<Distribution, ResultError> {
                let mut total = new_histogram();
                for part in parts {
                    add(&mut total, &pick(part).histogram()?)?;
                }
                Ok(Distribution::of(&total))
            };
        let duration_s = parts.iter().map(|p| p.duration_s).fold(0.0, f64::max);
        let per_second = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let sum = |pick: &dyn Fn(&LoadResult) -> u64| parts.iter().map(pick).sum::<u64>();
        let iterations = sum(&|p| p.iterations.count);
        let failed = sum(&|p| p.iterations.failed);
        let mut by_kind = BTreeMap::new();
        for part in parts {
            for (kind, n) in &part.failures.by_kind {
                *by_kind.entry(kind.clone()).or_insert(0) += n;
            }
        }
        let mut steps: BTreeMap<usize, (String, Histogram<u64>)> = BTreeMap::new();
        for part in parts {
            for step in &part.steps {
                let entry = steps
                    .entry(step.index)
                    .or_insert_with(|| (step.label.clone(), new_histogram()));
                add(&mut entry.1, &step.duration.histogram()?)?;
            }
        }
        let mut series: BTreeMap<u64, (SecondPoint, Histogram<u64>)> = BTreeMap::new();
        for part in parts {
            for point in &part.series {
                let (merged, latency) = series.entry(point.second).or_insert_with(|| {
                    (
                        SecondPoint {
                            second: point.second,
                            ..SecondPoint::default()
                        },
                        new_histogram(),
                    )
                });
                merged.vus += point.vus;
                merged.open_connections += point.open_connections;
                merged.iterations += point.iterations;
                merged.failures += point.failures;
                merged.dropped_iterations += point.dropped_iterations;
                merged.frames_sent += point.frames_sent;
                merged.frames_received += point.frames_received;
                merged.rss_kib += point.rss_kib;
                add(latency, &point.event_latency.histogram()?)?;
            }
        }
        let mut expressions: Vec<String> = Vec::new();
        for part in parts {
            for e in &part.threshold_expressions {
                if !expressions.contains(e) {
                    expressions.push(e.clone());
                }
            }
        }
        let sent = sum(&|p| p.frames.sent);
        let received = sum(&|p| p.frames.received);
        Ok(LoadResult {
            scenario: first.scenario.clone(),
            file: first.file.clone(),
            executor: first.executor.clone(),
            segments,
            interrupted: parts.iter().any(|p| p.interrupted),
            duration_s,
            iterations: IterationCounts {
                count: iterations,
                failed,
                interrupted: sum(&|p| p.iterations.interrupted),
                dropped: sum(&|p| p.iterations.dropped),
                rate: per_second(iterations),
            },
            failures: Failures {
                count: failed,
                rate: if iterations > 0 {
                    failed as f64 / iterations as f64
                } else {
                    0.0
                },
                by_kind,
            },
            frames: FrameCounts {
                sent,
                received,
                sent_rate: per_second(sent),
                received_rate: per_second(received),
            },
            connections: ConnectionCounts {
                opened: sum(&|p| p.connections.opened),
                peak_open: sum(&|p| p.connections.peak_open),
            },
            connect_time: merge_dist(&|p| &p.connect_time)?,
            event_latency: merge_dist(&|p| &p.event_latency)?,
            iteration_duration: merge_dist(&|p| &p.iteration_duration)?,
            steps: steps
                .into_iter()
                .map(|(index, (label, h))| StepDurations {
                    index,
                    label,
                    duration: Distribution::of(&h),
                })
                .collect(),
            memory: None,
            series: series
                .into_values()
                .map(|(mut point, latency)| {
                    point.event_latency = Distribution::of(&latency);
                    point
                })
                .collect(),
            threshold_expressions: expressions,
            thresholds: Vec::new(),
            notes: Vec::new(),
        })
    }
}

/// Histograms of the whole run and of the current one-second window.
struct LatencyHistograms {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

/// Cumulative counters as of the last tick, to compute a window's counts.
#[derive(Default, Clone, Copy)]
struct Totals {
    iterations: u64,
    failures: u64,
    dropped: u64,
    sent: u64,
    received: u64,
}

/// The live measurements of one load run (one process). Shared by all VUs; it is the
/// runner's [`Meter`].
pub struct LoadMetrics {
    started: Instant,
    event_latency: Mutex<LatencyHistograms>,
    connect_time: Mutex<Histogram<u64>>,
    iteration_duration: Mutex<Histogram<u64>>,
    steps: Mutex<BTreeMap<usize, (String, Histogram<u64>)>>,
    failures_by_kind: Mutex<BTreeMap<String, u64>>,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    iterations: AtomicU64,
    failed_iterations: AtomicU64,
    interrupted_iterations: AtomicU64,
    running: AtomicU64,
    /// Arrival-rate starts dropped; the executor adds to it.
    pub dropped: Arc<AtomicU64>,
    series: Mutex<Vec<SecondPoint>>,
    previous: Mutex<Totals>,
    memory: Mutex<Memory>,
}

impl Meter for LoadMetrics {
    fn connected(&self, took: Duration) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
        record(&mut lock(&self.connect_time), took);
    }
    fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
    }
    fn frame_sent(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }
    fn frame_received(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }
    fn event_latency(&self, latency: Duration) {
        let mut histograms = lock(&self.event_latency);
        record(&mut histograms.total, latency);
        record(&mut histograms.window, latency);
    }
}

impl Default for LoadMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadMetrics {
    pub fn new() -> LoadMetrics {
        let rss = resident_kib();
        LoadMetrics {
            started: Instant::now(),
            event_latency: Mutex::new(LatencyHistograms {
                total: new_histogram(),
                window: new_histogram(),
            }),
            connect_time: Mutex::new(new_histogram()),
            iteration_duration: Mutex::new(new_histogram()),
            steps: Mutex::default(),
            failures_by_kind: Mutex::default(),
            frames_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            iterations: AtomicU64::new(0),
            failed_iterations: AtomicU64::new(0),
            interrupted_iterations: AtomicU64::new(0),
            running: AtomicU64::new(0),
            dropped: Arc::default(),
            series: Mutex::default(),
            previous: Mutex::default(),
            memory: Mutex::new(Memory {
                rss_start_kib: rss,
                rss_peak_kib: rss,
                rss_at_peak_open_kib: rss,
                ..Memory::default()
            }),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// An iteration is starting.
    pub fn iteration_started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// An iteration finished: its duration, its steps' durations, and what failed.
    pub fn iteration_finished(&self, attempt: &Attempt) {
        let interrupted = attempt.status == Status::Interrupted;
        if interrupted {
            self.interrupted_iterations.fetch_add(1, Ordering::Relaxed);
        } else {
            // A cut-short iteration would pull the durations down.
            record(&mut lock(&self.iteration_duration), attempt.duration);
        }
        {
            let mut steps = lock(&self.steps);
            for step in attempt
                .steps
                .iter()
                .filter(|s| s.status != Status::Interrupted)
            {
                let entry = steps.entry(step.index).or_insert_with(|| {
                    let label = format!(
                        "#{} {} (line {})",
                        step.index + 1,
                        step.kind.name(),
                        step.line
                    );
                    (label, new_histogram())
                });
                record(
                    &mut entry.1,
                    Duration::from_secs_f64(step.duration_ms / 1000.0),
                );
            }
        }
        if attempt.status == Status::Failed {
            self.failed_iterations.fetch_add(1, Ordering::Relaxed);
            let mut kinds = lock(&self.failures_by_kind);
            if let Some(failure) = &attempt.failure {
                *kinds.entry(failure.kind.name().to_string()).or_insert(0) += 1;
            }
            if !attempt.teardown_failures.is_empty() {
                *kinds.entry("teardown".into()).or_insert(0) += 1;
            }
        }
        self.iterations.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn iterations(&self) -> u64 {
        self.iterations.load(Ordering::Relaxed)
    }

    pub fn failed_iterations(&self) -> u64 {
        self.failed_iterations.load(Ordering::Relaxed)
    }

    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    pub fn open_connections(&self) -> u64 {
        self.connections_opened
            .load(Ordering::Relaxed)
            .saturating_sub(self.connections_closed.load(Ordering::Relaxed))
    }

    /// Close the current one-second window: append it to the series and return it.
    pub fn tick(&self) -> SecondPoint {
        let now = Totals {
            iterations: self.iterations.load(Ordering::Relaxed),
            failures: self.failed_iterations.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.frames_sent.load(Ordering::Relaxed),
            received: self.frames_received.load(Ordering::Relaxed),
        };
        let before = std::mem::replace(&mut *lock(&self.previous), now);
        let latency = {
            let mut histograms = lock(&self.event_latency);
            let window = Distribution::of(&histograms.window);
            histograms.window.reset();
            window
        };
        let open = self.open_connections();
        let rss = resident_kib();
        {
            let mut memory = lock(&self.memory);
            memory.rss_peak_kib = memory.rss_peak_kib.max(rss);
            if open > memory.peak_open_connections {
                memory.peak_open_connections = open;
                memory.rss_at_peak_open_kib = rss;
            }
        }
        let mut series = lock(&self.series);
        let point = SecondPoint {
            second: series.len() as u64 + 1,
            vus: self.running(),
            open_connections: open,
            iterations: now.iterations - before.iterations,
            failures: now.failures - before.failures,
            dropped_iterations: now.dropped - before.dropped,
            frames_sent: now.sent - before.sent,
            frames_received: now.received - before.received,
            event_latency: latency,
            rss_kib: rss,
        };
        series.push(point.clone());
        point
    }

    /// The result so far (thresholds not yet evaluated).
    pub fn result(
        &self,
        scenario: &Scenario,
        executor: serde_json::Value,
        segment: String,
    ) -> LoadResult {
        let duration_s = self.started.elapsed().as_secs_f64();
        let per_second = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let iterations = self.iterations();
        let failed = self.failed_iterations();
        let sent = self.frames_sent.load(Ordering::Relaxed);
        let received = self.frames_received.load(Ordering::Relaxed);
        let mut memory = lock(&self.memory).clone();
        let grown = memory
            .rss_at_peak_open_kib
            .saturating_sub(memory.rss_start_kib);
        memory.kib_per_open_connection = (memory.peak_open_connections > 0)
            .then(|| grown as f64 / memory.peak_open_connections as f64);
        LoadResult {
            scenario: scenario.name.clone(),
            file: scenario.path().display().to_string(),
            executor,
            segments: vec![segment],
            interrupted: false,
            duration_s,
            iterations: IterationCounts {
                count: iterations,
                failed,
                interrupted: self.interrupted_iterations.load(Ordering::Relaxed),
                dropped: self.dropped.load(Ordering::Relaxed),
                rate: per_second(iterations),
            },
            failures: Failures {
                count: failed,
                rate: if iterations > 0 {
                    failed as f64 / iterations as f64
                } else {
                    0.0
                },
                by_kind: lock(&self.failures_by_kind).clone(),
            },
            frames: FrameCounts {
                sent,
                received,
                sent_rate: per_second(sent),
                received_rate: per_second(received),
            },
            connections: ConnectionCounts {
                opened: self.connections_opened.load(Ordering::Relaxed),
                peak_open: memory.peak_open_connections,
            },
            connect_time: Distribution::of(&lock(&self.connect_time)),
            event_latency: Distribution::of(&lock(&self.event_latency).total),
            iteration_duration: Distribution::of(&lock(&self.iteration_duration)),
            steps: lock(&self.steps)
                .iter()
                .map(|(index, (label, h))| StepDurations {
                    index: *index,
                    label: label.clone(),
                    duration: Distribution::of(h),
                })
                .collect(),
            memory: Some(memory),
            series: lock(&self.series).clone(),
            threshold_expressions: Vec::new(),
            thresholds: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Resident memory of this process in KiB (0 where /proc is missing).
pub fn resident_kib() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page_size).unwrap_or(4096) / 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    /// A deterministic spread of values (a linear congruential generator).
    fn values(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1 + (x >> 33) % 2_000_000
            })
            .collect()
    }

    fn result_with(latencies: &[u64], segment: &str) -> LoadResult {
        let h = histogram_of(latencies);
        LoadResult {
            scenario: "s".into(),
            segments: vec![segment.into()],
            duration_s: 10.0,
            iterations: IterationCounts {
                count: latencies.len() as u64,
                failed: 1,
                ..Default::default()
            },
            failures: Failures {
                count: 1,
                by_kind: [("expect".to_string(), 1)].into(),
                ..Default::default()
            },
            event_latency: Distribution::of(&h),
            connect_time: Distribution::of(&h),
            iteration_duration: Distribution::of(&h),
            series: vec![SecondPoint {
                second: 1,
                iterations: 3,
                event_latency: Distribution::of(&h),
                ..Default::default()
            }],
            ..LoadResult::default()
        }
    }

    #[test]
    fn histograms_survive_base64() {
        let h = histogram_of(&values(1, 1000));
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn merged_percentiles_equal_those_of_one_histogram_with_all_values() {
        let (a, b, c) = (values(1, 5000), values(2, 300), values(3, 12_000));
        let merged = LoadResult::merge(&[
            result_with(&a, "1/3"),
            result_with(&b, "2/3"),
            result_with(&c, "3/3"),
        ])
        .unwrap();
        let all: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
        let expected = Distribution::of(&histogram_of(&all));
        assert_eq!(merged.event_latency.count, 17_300);
        for (got, want) in [
            (merged.event_latency.p50_ms, expected.p50_ms),
            (merged.event_latency.p90_ms, expected.p90_ms),
            (merged.event_latency.p95_ms, expected.p95_ms),
            (merged.event_latency.p99_ms, expected.p99_ms),
            (merged.event_latency.max_ms, expected.max_ms),
            (merged.event_latency.min_ms, expected.min_ms),
        ] {
            assert_eq!(got, want);
        }
        assert_eq!(
            merged.event_latency.histogram().unwrap(),
            histogram_of(&all)
        );
        assert_eq!(merged.iterations.count, 17_300);
        assert_eq!(merged.failures.by_kind["expect"], 3);
        assert_eq!(merged.series.len(), 1);
        assert_eq!(merged.series[0].iterations, 9);
        assert_eq!(merged.series[0].event_latency.count, 17_300);
        assert_eq!(merged.segments, vec!["1/3", "2/3", "3/3"]);
    }

    #[test]
    fn merge_refuses_a_segment_twice_and_other_scenarios() {
        let a = result_with(&[1, 2], "1/2");
        assert!(matches!(
            LoadResult::merge(&[a.clone(), a.clone()]),
            Err(ResultError::SegmentTwice(segment)) if segment == "1/2"
        ));
        let mut other = result_with(&[1], "2/2");
        other.scenario = "other".into();
        let err = LoadResult::merge(&[a, other]).unwrap_err();
        assert!(matches!(err, ResultError::DifferentScenarios(..)), "{err}");
        assert!(err.to_string().contains("different scenarios"), "{err}");
    }

    #[test]
    fn ticks_count_each_second_separately() {
        let metrics = LoadMetrics::new();
        metrics.frame_sent();
        metrics.frame_received();
        metrics.frame_received();
        metrics.event_latency(Duration::from_millis(3));
        let first = metrics.tick();
        metrics.frame_sent();
        let second = metrics.tick();
        assert_eq!(
            (
                first.frames_sent,
                first.frames_received,
                first.event_latency.count
            ),
            (1, 2, 1)
        );
        assert_eq!(
            (
                second.frames_sent,
                second.frames_received,
                second.event_latency.count
            ),
            (1, 0, 0)
        );
        assert_eq!(second.second, 2);
    }
}
