//! The frames sent and received on every connection of a scenario, with their time:
//! shown when a step fails and written to the JSON report. Bounded: by default each
//! connection keeps its first and last frames and counts the ones in between, so a
//! flood costs neither memory nor report size. It also feeds the run's [`Meter`](super::meter::Meter) (load
//! mode), since every frame passes through it.
//!
//! For timelines it knows which step is running (a frame sent belongs to it), and
//! steps mark received frames by their arrival number: the step that took a frame, the
//! frame that failed an expectation. Marks on frames not kept are dropped with them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::meter::SharedMeter;

/// Frames kept at each end of a connection by default ([`Keep::Ends`]).
pub const FRAMES_KEPT_AT_EACH_END: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sent,
    Received,
    Closed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FrameRecord {
    pub connection: String,
    pub direction: Direction,
    /// Milliseconds since the scenario started.
    pub at_ms: f64,
    pub data: String,
    /// The frame as received, when it differs from `data` (the decoded message of a
    /// protocol such as graphql-transport-ws).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The step (top-level index) that sent this frame, or that took it from the inbox;
    /// `None` for frames no step took, and for frames outside the steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Why this received event breaks its JSON Schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_violation: Option<String>,
    /// This frame failed an expectation: the nearest candidate of one that timed out,
    /// one that broke a strict sequence, one `expect_none` forbade, one whose schema
    /// failed the step that took it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Arrival order among the connection's received frames, from 0.
    #[serde(skip)]
    pub number: Option<usize>,
}

/// One frame to record.
struct Entry<'a> {
    connection: &'a str,
    direction: Direction,
    data: &'a str,
    raw: Option<&'a str>,
    step: Option<usize>,
    schema_violation: Option<&'a str>,
    number: Option<usize>,
}

/// No step is running.
const NO_STEP: usize = usize::MAX;

/// How many frames a transcript keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None (load mode): frames are only counted by the meter.
    Nothing,
    /// The first and the last `n` of each connection; the rest are counted.
    Ends(usize),
    /// Every frame.
    All,
}

/// What a transcript kept: frames in time order, and per connection how many it left
/// out.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub frames: Vec<FrameRecord>,
    pub omitted: BTreeMap<String, u64>,
}

/// One connection's frames: a head that fills first, then a sliding tail.
#[derive(Default)]
struct ConnectionLog {
    head: Vec<(u64, FrameRecord)>,
    /// Where received frame `n` is in `head`, for the first received frames.
    head_received: Vec<usize>,
    tail: VecDeque<(u64, FrameRecord)>,
    omitted: u64,
    /// Received and closed frames seen, kept or not.
    received: usize,
}

#[derive(Default)]
struct Log {
    next: u64,
    connections: BTreeMap<String, ConnectionLog>,
}

/// Shared, append-only log of a scenario's frames.
#[derive(Clone)]
pub struct Transcript {
    started: Instant,
    log: Arc<Mutex<Log>>,
    keep: Keep,
    meter: Option<SharedMeter>,
    /// The top-level step running ([`NO_STEP`] outside the steps).
    step: Arc<AtomicUsize>,
}

impl Transcript {
    pub fn new(keep: Keep) -> Self {
        Self {
            started: Instant::now(),
            log: Arc::default(),
            keep,
            meter: None,
            step: Arc::new(AtomicUsize::new(NO_STEP)),
        }
    }

    /// Milliseconds since the attempt started: the clock of every `at_ms`.
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Top-level step `index` is running: frames sent from now on are its own.
    pub fn step_started(&self, index: usize) {
        self.step.store(index, Ordering::Relaxed);
    }

    /// No step is running any more (teardown).
    pub fn step_ended(&self) {
        self.step.store(NO_STEP, Ordering::Relaxed);
    }

    fn current_step(&self) -> Option<usize> {
        Some(self.step.load(Ordering::Relaxed)).filter(|s| *s != NO_STEP)
    }

    /// The running step took received frame `number` of `connection` from its inbox.
    pub fn taken(&self, connection: &str, number: usize) {
        let step = self.current_step();
        self.mark(connection, number, |f| f.step = step);
    }

    /// Received frame `number` of `connection` failed an expectation.
    pub fn failed(&self, connection: &str, number: usize) {
        self.mark(connection, number, |f| f.failed = true);
    }

    /// Change received frame `number` of `connection`, if it is kept.
    fn mark(&self, connection: &str, number: usize, change: impl FnOnce(&mut FrameRecord)) {
        if self.keep == Keep::Nothing {
            return;
        }
        let mut log = crate::sync::lock(&self.log);
        let Some(entry) = log.connections.get_mut(connection) else {
            return;
        };
        let frame = match entry.head_received.get(number) {
            Some(&at) => entry.head.get_mut(at).map(|(_, f)| f),
            None => entry
                .tail
                .iter_mut()
                .map(|(_, f)| f)
                .find(|f| f.number == Some(number)),
        };
        if let Some(frame) = frame {
            change(frame);
        }
    }

    /// The same transcript, also counting frames into `meter`.
    pub fn metered(mut self, meter: Option<SharedMeter>) -> Self {
        self.meter = meter;
        self
    }

    /// The run's meter, when it has one (load mode).
    pub fn meter(&self) -> Option<&SharedMeter> {
        self.meter.as_ref()
    }

    /// A frame sent (by the running step) or a close.
    pub fn record(&self, connection: &str, direction: Direction, data: &str) {
        let step = match direction {
            Direction::Sent => self.current_step(),
            Direction::Received | Direction::Closed => None,
        };
        self.push(Entry {
            connection,
            direction,
            data,
            raw: None,
            step,
            schema_violation: None,
            number: None,
        });
    }

    /// A frame the connection's protocol sent by itself (a pong, an automatic ack):
    /// no step sent it.
    pub fn record_reply(&self, connection: &str, data: &str) {
        self.push(Entry {
            connection,
            direction: Direction::Sent,
            data,
            raw: None,
            step: None,
            schema_violation: None,
            number: None,
        });
    }

    /// A frame sent by the running step, encoded by the connection's protocol: `data`
    /// as the step wrote it, `raw` as it went on the wire.
    pub fn record_encoded(&self, connection: &str, data: &str, raw: &str) {
        self.push(Entry {
            connection,
            direction: Direction::Sent,
            data,
            raw: Some(raw),
            step: self.current_step(),
            schema_violation: None,
            number: None,
        });
    }

    /// Received message `number` of `connection` (arrival order, from 0), with its
    /// raw frame when it differs.
    pub fn record_received(
        &self,
        connection: &str,
        number: usize,
        data: &str,
        raw: Option<&str>,
        schema_violation: Option<&str>,
    ) {
        self.push(Entry {
            connection,
            direction: Direction::Received,
            data,
            raw,
            step: None,
            schema_violation,
            number: Some(number),
        });
    }

    fn push(&self, entry: Entry<'_>) {
        let Entry {
            connection,
            direction,
            data,
            raw,
            step,
            schema_violation,
            number,
        } = entry;
        if let Some(meter) = &self.meter {
            match direction {
                Direction::Sent => meter.frame_sent(),
                Direction::Received => meter.frame_received(),
                Direction::Closed => {}
            }
        }
        let each_end = match self.keep {
            Keep::Nothing => return,
            Keep::Ends(n) => n,
            Keep::All => usize::MAX,
        };
        let record = FrameRecord {
            connection: connection.to_string(),
            direction,
            at_ms: self.elapsed_ms(),
            data: data.to_string(),
            raw: raw.map(str::to_string),
            step,
            schema_violation: schema_violation.map(str::to_string),
            failed: false,
            number,
        };
        let mut log = crate::sync::lock(&self.log);
        let seq = log.next;
        log.next += 1;
        if !log.connections.contains_key(connection) {
            log.connections
                .insert(connection.to_string(), ConnectionLog::default());
        }
        let Some(entry) = log.connections.get_mut(connection) else {
            return;
        };
        if direction != Direction::Sent {
            entry.received += 1;
        }
        if entry.head.len() < each_end {
            if number == Some(entry.head_received.len()) {
                entry.head_received.push(entry.head.len());
            }
            entry.head.push((seq, record));
            return;
        }
        entry.tail.push_back((seq, record));
        if entry.tail.len() > each_end {
            entry.tail.pop_front();
            entry.omitted += 1;
        }
    }

    /// Everything kept, in the order it happened.
    pub fn kept(&self) -> Kept {
        let log = crate::sync::lock(&self.log);
        let mut frames: Vec<&(u64, FrameRecord)> = log
            .connections
            .values()
            .flat_map(|c| c.head.iter().chain(c.tail.iter()))
            .collect();
        frames.sort_by_key(|(seq, _)| *seq);
        Kept {
            frames: frames.into_iter().map(|(_, f)| f.clone()).collect(),
            omitted: log
                .connections
                .iter()
                .filter(|(_, c)| c.omitted > 0)
                .map(|(name, c)| (name.clone(), c.omitted))
                .collect(),
        }
    }

    /// Received frames of one connection that were kept, for failure reports.
    pub fn received_on(&self, connection: &str) -> Vec<FrameRecord> {
        let log = crate::sync::lock(&self.log);
        log.connections
            .get(connection)
            .map(|c| {
                c.head
                    .iter()
                    .chain(c.tail.iter())
                    .filter(|(_, f)| f.direction != Direction::Sent)
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many frames one connection received (and closed), kept or not.
    pub fn received_count(&self, connection: &str) -> usize {
        let log = crate::sync::lock(&self.log);
        log.connections.get(connection).map_or(0, |c| c.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(kept: &Kept) -> Vec<&str> {
        kept.frames.iter().map(|f| f.data.as_str()).collect()
    }

    #[test]
    fn keeps_the_first_and_last_frames_of_each_connection_and_counts_the_rest() {
        let t = Transcript::new(Keep::Ends(2));
        for i in 0..10 {
            t.record("a", Direction::Received, &format!("a{i}"));
            if i < 3 {
                t.record("b", Direction::Sent, &format!("b{i}"));
            }
        }
        let kept = t.kept();
        assert_eq!(data(&kept), ["a0", "b0", "a1", "b1", "b2", "a8", "a9"]);
        assert_eq!(kept.omitted, BTreeMap::from([("a".to_string(), 6)]));
        assert_eq!(t.received_count("a"), 10);
        assert_eq!(t.received_count("b"), 0);
        let received: Vec<String> = t.received_on("a").into_iter().map(|f| f.data).collect();
        assert_eq!(received, ["a0", "a1", "a8", "a9"]);
    }

    #[test]
    fn marks_reach_kept_frames_by_arrival_number_and_sent_frames_know_their_step() {
        let t = Transcript::new(Keep::Ends(3));
        t.step_started(3);
        t.record("a", Direction::Sent, "s");
        for n in 0..6 {
            t.record_received("a", n, &format!("r{n}"), None, (n == 5).then_some("bad"));
        }
        t.taken("a", 1);
        t.failed("a", 5);
        t.taken("a", 2); // not kept: no effect
        t.step_ended();
        t.record("a", Direction::Sent, "late");
        let kept = t.kept();
        let by_data = |d: &str| kept.frames.iter().find(|f| f.data == d).unwrap().clone();
        assert_eq!(by_data("s").step, Some(3));
        assert_eq!(by_data("r1").step, Some(3));
        assert_eq!(by_data("r0").step, None);
        assert!(by_data("r5").failed && by_data("r5").schema_violation.as_deref() == Some("bad"));
        assert_eq!(by_data("late").step, None);
        assert!(kept.frames.iter().all(|f| f.data != "r2"));
    }

    #[test]
    fn all_keeps_everything_and_nothing_keeps_nothing() {
        let all = Transcript::new(Keep::All);
        let none = Transcript::new(Keep::Nothing);
        for i in 0..1000 {
            all.record("a", Direction::Sent, &i.to_string());
            none.record("a", Direction::Sent, &i.to_string());
        }
        assert_eq!(all.kept().frames.len(), 1000);
        assert!(all.kept().omitted.is_empty());
        assert!(none.kept().frames.is_empty());
    }
}
