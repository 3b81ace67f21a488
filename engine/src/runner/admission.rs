//! How many scenarios run at once. Scenarios mostly wait (for the server, a timer, a
//! row), so the CPU count says little about how many fit: up to a floor they start at
//! once; past it, one more starts only while the runtime keeps up, up to the `jobs` cap.
//! Whether it keeps up is measured, not guessed: a probe sleeps a short tick over and
//! over, and how late it wakes is how long ready work waits for a CPU, the engine's own
//! backlog or a machine busy with the server under test (or anything else).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How often the probe wakes, and the pace at which scenarios past the floor start.
pub const TICK: Duration = Duration::from_millis(10);

/// Past the floor, a scenario starts only while the probe's lateness is below this. An
/// idle machine wakes it within the timer's 1 ms granularity; on the 2-core machine
/// with a load average of 20 a sleeping thread woke 14 ms late (median), and there the
/// suite's backend already waited seconds for its Postgres pool.
pub const LATE_LIMIT: Duration = Duration::from_millis(5);

/// Scenarios per CPU that start without asking (the floor), as the runner always did.
pub const FLOOR_PER_CPU: usize = 4;

/// The default `jobs` cap: scenarios at once when the runtime keeps up.
pub const DEFAULT_JOBS: usize = 64;

/// The probe's view of the runtime: how late it woke, smoothed.
#[derive(Default)]
pub struct Lateness {
    /// Exponentially smoothed lateness in microseconds.
    micros: AtomicU64,
}

impl Lateness {
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// One sample; a quarter of the weight goes to it, so one late wake-up alone does
    /// not close the door, and a backlog shows within a few ticks.
    pub fn record(&self, late: Duration) {
        let sample = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let old = self.micros.load(Ordering::Relaxed);
        let new = old.saturating_mul(3).saturating_add(sample) / 4;
        self.micros.store(new, Ordering::Relaxed);
    }
}

/// Decides when the next scenario may start. Dropping it stops the probe.
pub struct Admission {
    floor: usize,
    lateness: Arc<Lateness>,
    probe: Option<tokio::task::JoinHandle<()>>,
}

impl Admission {
    /// Floor: `FLOOR_PER_CPU` per CPU, never above the `jobs` cap. The probe runs only
    /// when there is room above the floor.
    pub fn new(jobs: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let floor = (cpus * FLOOR_PER_CPU).clamp(1, jobs.max(1));
        let lateness = Arc::new(Lateness::default());
        let probe = (jobs > floor).then(|| tokio::spawn(probe(lateness.clone())));
        Self {
            floor,
            lateness,
            probe,
        }
    }

    /// With a lateness of its own (tests set it), no probe.
    pub fn with_lateness(floor: usize, lateness: Arc<Lateness>) -> Self {
        Self {
            floor,
            lateness,
            probe: None,
        }
    }

    pub fn floor(&self) -> usize {
        self.floor
    }

    /// Resolves when one more scenario may start, `running()` of them running now:
    /// at once below the floor; past it, after a tick, once the runtime keeps up. It
    /// cannot wait for ever: running scenarios have deadlines, and once they are below
    /// the floor the next one starts.
    pub async fn admit(&self, running: impl Fn() -> usize) {
        while running() >= self.floor {
            tokio::time::sleep(TICK).await;
            if self.lateness.now() < LATE_LIMIT {
                return;
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }
}

/// Sleep a tick, note how late the wake-up was, for ever.
async fn probe(lateness: Arc<Lateness>) {
    loop {
        let asleep = Instant::now();
        tokio::time::sleep(TICK).await;
        lateness.record(asleep.elapsed().saturating_sub(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn lateness_follows_a_backlog_within_a_few_samples_and_forgets_it() {
        let lateness = Lateness::default();
        lateness.record(LATE_LIMIT * 2);
        assert!(lateness.now() < LATE_LIMIT, "one late wake-up is damped");
        for _ in 0..4 {
            lateness.record(LATE_LIMIT * 2);
        }
        assert!(lateness.now() > LATE_LIMIT, "{:?}", lateness.now());
        for _ in 0..20 {
            lateness.record(Duration::ZERO);
        }
        assert!(lateness.now() < LATE_LIMIT, "{:?}", lateness.now());
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_floor_at_once_past_it_only_while_the_runtime_keeps_up() {
        let lateness = Arc::new(Lateness::default());
        let admission = Admission::with_lateness(2, lateness.clone());
        let running = Arc::new(AtomicUsize::new(1));
        let count = || running.load(Ordering::SeqCst);
        let started = Instant::now();
        admission.admit(count).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "below the floor");

        running.store(2, Ordering::SeqCst);
        admission.admit(count).await;
        assert_eq!(started.elapsed(), TICK, "past the floor: one per tick");

        // Late: nothing past the floor starts until the lateness falls...
        for _ in 0..10 {
            lateness.record(Duration::from_millis(500));
        }
        let late = tokio::time::timeout(Duration::from_secs(1), admission.admit(count)).await;
        assert!(late.is_err(), "admitted while the runtime is late");
        // ...or a scenario ends and the running ones are below the floor again.
        running.store(1, Ordering::SeqCst);
        let freed = tokio::time::timeout(TICK, admission.admit(count)).await;
        assert!(freed.is_ok(), "below the floor, even while late");
    }

    #[tokio::test]
    async fn the_floor_never_exceeds_the_cap_and_no_probe_runs_without_room() {
        let one = Admission::new(1);
        assert_eq!(one.floor(), 1);
        assert!(one.probe.is_none());
        let many = Admission::new(10_000);
        assert!(many.floor() >= FLOOR_PER_CPU);
        assert!(many.probe.is_some());
    }
}
