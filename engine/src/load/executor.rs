//! Executors, as in k6: when virtual users start iterations.
//!
//! - constant VUs: a fixed number of VUs loop over the scenario for a duration and/or
//!   until a shared number of iterations is done (closed model);
//! - ramping VUs: the number of looping VUs follows linear stages (closed model);
//! - constant arrival rate: iterations start on a fixed schedule whether or not earlier
//!   ones finished (open model), at most `max_vus` at once; late ones are dropped.
//!
//! An executor only schedules: it calls an [`Iteration`] and never interrupts one.
//! When asked to stop (or when its time is up) it starts nothing new and returns once
//! every running iteration has finished, so every iteration gets its teardown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::segment::Segment;

/// One iteration of the scenario, run by VU (or schedule slot) number.
pub type Iteration = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One ramping stage: move linearly to `target` VUs over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    ConstantVus {
        vus: u64,
        duration: Option<Duration>,
        /// Total iterations, shared by all VUs.
        iterations: Option<u64>,
    },
    RampingVus {
        start_vus: u64,
        stages: Vec<Stage>,
    },
    ConstantArrivalRate {
        /// Iterations started per `time_unit`.
        rate: f64,
        time_unit: Duration,
        duration: Duration,
        /// Most iterations running at once; a start beyond it is dropped.
        max_vus: u64,
    },
}

impl Executor {
    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::RampingVus { .. } => "ramping-vus",
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
        }
    }

    /// Most VUs (or concurrent iterations) the whole test uses, over all segments.
    pub fn max_vus(&self) -> u64 {
        match self {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => {
                stages.iter().map(|s| s.target).fold(*start_vus, u64::max)
            }
            Executor::ConstantArrivalRate { max_vus, .. } => *max_vus,
        }
    }

    /// Its settings as JSON, for reports.
    pub fn describe(&self) -> serde_json::Value {
        use serde_json::json;
        let secs = |d: &Duration| d.as_secs_f64();
        match self {
            Executor::ConstantVus {
                vus,
                duration,
                iterations,
            } => {
                json!({"executor": self.name(), "vus": vus, "duration_s": duration.as_ref().map(secs), "iterations": iterations})
            }
            Executor::RampingVus { start_vus, stages } => json!({
                "executor": self.name(),
                "start_vus": start_vus,
                "stages": stages.iter().map(|s| json!({"duration_s": secs(&s.duration), "target": s.target})).collect::<Vec<_>>(),
            }),
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                max_vus,
            } => {
                json!({"executor": self.name(), "rate": rate, "time_unit_s": secs(time_unit), "duration_s": secs(duration), "max_vus": max_vus})
            }
        }
    }

    /// Run this segment's share of the test. Returns when every started iteration has
    /// finished. `dropped` counts arrival-rate starts skipped for lack of a free VU.
    pub async fn drive(
        &self,
        segment: Segment,
        iteration: Iteration,
        stop: watch::Receiver<bool>,
        dropped: Arc<AtomicU64>,
    ) {
        let start = Instant::now();
        match self {
            Executor::ConstantVus {
                vus,
                duration,
                iterations,
            } => {
                let end = duration.map(|d| start + d);
                let budget = iterations.map(|n| Arc::new(AtomicU64::new(segment.share_of(n))));
                let mut tasks = tokio::task::JoinSet::new();
                for vu in segment.numbers(*vus) {
                    let (iteration, stop, budget) =
                        (iteration.clone(), stop.clone(), budget.clone());
                    tasks.spawn(async move {
                        loop {
                            if *stop.borrow() || end.is_some_and(|e| Instant::now() >= e) {
                                break;
                            }
                            if let Some(budget) = &budget {
                                let took =
                                    budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                                        r.checked_sub(1)
                                    });
                                if took.is_err() {
                                    break;
                                }
                            }
                            iteration(vu).await;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            }
            Executor::RampingVus { start_vus, stages } => {
                let ramp = Arc::new(Ramp::new(*start_vus, stages));
                let mut tasks = tokio::task::JoinSet::new();
                for vu in segment.numbers(self.max_vus()) {
                    let (iteration, mut stop, ramp) =
                        (iteration.clone(), stop.clone(), ramp.clone());
                    tasks.spawn(async move {
                        loop {
                            if *stop.borrow() {
                                break;
                            }
                            let now = start.elapsed();
                            if now >= ramp.total() {
                                break;
                            }
                            if ramp.target_at(now) > vu {
                                iteration(vu).await;
                                continue;
                            }
                            let Some(wake) = ramp.next_above(vu, now) else {
                                break;
                            };
                            tokio::select! {
                                _ = tokio::time::sleep_until(start + wake) => {}
                                _ = stop.wait_for(|&s| s) => break,
                            }
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            }
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                max_vus,
            } => {
                let interval = time_unit.as_secs_f64() / rate;
                let slots = Arc::new(Semaphore::new(segment.share_of(*max_vus).max(1) as usize));
                let mut stop = stop.clone();
                let mut tasks = tokio::task::JoinSet::new();
                for number in segment.numbers_from_zero() {
                    // A tiny `rate` puts later starts past any duration (and past
                    // what a `Duration` holds): those are simply after the end.
                    let at = Duration::try_from_secs_f64(number as f64 * interval)
                        .unwrap_or(Duration::MAX);
                    if at >= *duration {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(start + at) => {}
                        _ = stop.wait_for(|&s| s) => break,
                    }
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            let iteration = iteration.clone();
                            tasks.spawn(async move {
                                iteration(number).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
            }
        }
    }
}

/// The VU target of a ramping test over time: piecewise linear through the stages.
#[derive(Debug, Clone)]
pub struct Ramp {
    /// (time from start, VUs) at each stage boundary, from (0, start_vus).
    points: Vec<(Duration, u64)>,
}

impl Ramp {
    pub fn new(start_vus: u64, stages: &[Stage]) -> Ramp {
        let mut points = vec![(Duration::ZERO, start_vus)];
        let mut at = Duration::ZERO;
        for stage in stages {
            at += stage.duration;
            points.push((at, stage.target));
        }
        Ramp { points }
    }

    pub fn total(&self) -> Duration {
        self.points.last().map_or(Duration::ZERO, |p| p.0)
    }

    /// VUs that should be active at `t` (rounded down).
    pub fn target_at(&self, t: Duration) -> u64 {
        for pair in self.points.windows(2) {
            let ((t0, a), (t1, b)) = (pair[0], pair[1]);
            if t >= t0 && t < t1 {
                let fraction = (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64();
                return (a as f64 + (b as f64 - a as f64) * fraction).floor() as u64;
            }
        }
        self.points.last().map_or(0, |p| p.1)
    }

    /// The first time at or after `now` when VU number `vu` is active, if any.
    pub fn next_above(&self, vu: u64, now: Duration) -> Option<Duration> {
        let needed = (vu + 1) as f64;
        // A microsecond inside each crossing, so that rounding can't land on the
        // wrong side of the target.
        let margin = Duration::from_micros(1);
        for pair in self.points.windows(2) {
            let ((t0, a), (t1, b)) = (pair[0], pair[1]);
            if t1 <= now || t1 == t0 {
                continue;
            }
            let (a, b) = (a as f64, b as f64);
            let crossing = |value: f64| t0 + (t1 - t0).mul_f64((value - a) / (b - a));
            // The times within this stage when the target is at least `needed`.
            let (from, until) = match (a >= needed, b >= needed) {
                (true, true) => (t0, t1),
                (true, false) => (t0, crossing(needed).saturating_sub(margin)),
                (false, true) => (crossing(needed) + margin, t1),
                (false, false) => continue,
            };
            let at = from.max(now);
            if at < until {
                return Some(at);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(list: &[(u64, u64)]) -> Vec<Stage> {
        list.iter()
            .map(|&(secs, target)| Stage {
                duration: Duration::from_secs(secs),
                target,
            })
            .collect()
    }

    #[test]
    fn ramp_interpolates_between_stages() {
        let ramp = Ramp::new(0, &stages(&[(10, 100), (10, 100), (10, 0)]));
        assert_eq!(ramp.total(), Duration::from_secs(30));
        assert_eq!(ramp.target_at(Duration::ZERO), 0);
        assert_eq!(ramp.target_at(Duration::from_secs(5)), 50);
        assert_eq!(ramp.target_at(Duration::from_secs(15)), 100);
        assert_eq!(ramp.target_at(Duration::from_secs(25)), 50);
    }

    #[test]
    fn next_above_is_when_the_target_passes_the_vu() {
        let ramp = Ramp::new(0, &stages(&[(10, 100), (10, 0), (10, 50)]));
        let wake = ramp.next_above(49, Duration::ZERO).unwrap();
        assert!(ramp.target_at(wake) > 49);
        assert!(ramp.target_at(wake - Duration::from_millis(1)) <= 49);
        // Ramping down, VU 60 is still active at 12s (target 80), gone by 15s (50),
        // and the third stage never reaches it again.
        assert_eq!(
            ramp.next_above(60, Duration::from_secs(12)),
            Some(Duration::from_secs(12))
        );
        assert_eq!(ramp.next_above(60, Duration::from_secs(15)), None);
        let later = ramp.next_above(10, Duration::from_secs(19)).unwrap();
        assert!(later > Duration::from_secs(20) && ramp.target_at(later) > 10);
    }

    #[tokio::test(start_paused = true)]
    async fn arrival_rate_starts_on_schedule_without_waiting_for_earlier_iterations() {
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let origin = Instant::now();
        let record = started.clone();
        let iteration: Iteration = Arc::new(move |n| {
            let record = record.clone();
            Box::pin(async move {
                record.lock().unwrap().push((n, origin.elapsed()));
                // Each iteration takes far longer than the interval between starts.
                tokio::time::sleep(Duration::from_secs(5)).await;
            })
        });
        let executor = Executor::ConstantArrivalRate {
            rate: 10.0,
            time_unit: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            max_vus: 100,
        };
        let (_tx, rx) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        executor
            .drive(Segment::WHOLE, iteration, rx, dropped.clone())
            .await;
        let started = started.lock().unwrap();
        assert_eq!(started.len(), 20);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        for (n, at) in started.iter() {
            assert_eq!(at.as_millis(), u128::from(*n) * 100, "iteration {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn arrival_rate_drops_starts_beyond_max_vus() {
        let iteration: Iteration =
            Arc::new(|_| Box::pin(tokio::time::sleep(Duration::from_secs(10))));
        let executor = Executor::ConstantArrivalRate {
            rate: 10.0,
            time_unit: Duration::from_secs(1),
            duration: Duration::from_secs(1),
            max_vus: 4,
        };
        let (_tx, rx) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        executor
            .drive(Segment::WHOLE, iteration, rx, dropped.clone())
            .await;
        assert_eq!(dropped.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn constant_vus_share_the_iterations() {
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let iteration: Iteration = Arc::new(move |_| {
            let counter = counter.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            })
        });
        let executor = Executor::ConstantVus {
            vus: 3,
            duration: None,
            iterations: Some(10),
        };
        let (_tx, rx) = watch::channel(false);
        let half = Segment { index: 2, count: 2 };
        executor
            .drive(half, iteration, rx, Arc::new(AtomicU64::new(0)))
            .await;
        assert_eq!(count.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_lets_running_iterations_finish_and_starts_no_more() {
        let finished = Arc::new(AtomicU64::new(0));
        let counter = finished.clone();
        let iteration: Iteration = Arc::new(move |_| {
            let counter = counter.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            })
        });
        let executor = Executor::ConstantVus {
            vus: 4,
            duration: Some(Duration::from_secs(3600)),
            iterations: None,
        };
        let (tx, rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            tx.send(true).unwrap();
        });
        let begun = Instant::now();
        executor
            .drive(Segment::WHOLE, iteration, rx, Arc::new(AtomicU64::new(0)))
            .await;
        stopper.await.unwrap();
        // 4 VUs x 3 iterations: the third (running when stop came) finished, no fourth.
        assert_eq!(finished.load(Ordering::SeqCst), 12);
        assert_eq!(begun.elapsed(), Duration::from_secs(3));
    }
}
