//! Every frame sent and received on every connection of a scenario, with its time:
//! shown when a step fails and written to the JSON report. It also feeds the run's
//! [`Meter`] (load mode), since every frame passes through it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::meter::SharedMeter;

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
}

/// Shared, append-only log of a scenario's frames.
#[derive(Clone)]
pub struct Transcript {
    started: Instant,
    frames: Arc<Mutex<Vec<FrameRecord>>>,
    enabled: bool,
    meter: Option<SharedMeter>,
}

impl Transcript {
    pub fn new(enabled: bool) -> Self {
        Self {
            started: Instant::now(),
            frames: Arc::default(),
            enabled,
            meter: None,
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

    pub fn record(&self, connection: &str, direction: Direction, data: &str) {
        if let Some(meter) = &self.meter {
            match direction {
                Direction::Sent => meter.frame_sent(),
                Direction::Received => meter.frame_received(),
                Direction::Closed => {}
            }
        }
        if !self.enabled {
            return;
        }
        let record = FrameRecord {
            connection: connection.to_string(),
            direction,
            at_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            data: data.to_string(),
        };
        if let Ok(mut frames) = self.frames.lock() {
            frames.push(record);
        }
    }

    pub fn frames(&self) -> Vec<FrameRecord> {
        self.frames.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Received frames of one connection, for failure reports.
    pub fn received_on(&self, connection: &str) -> Vec<FrameRecord> {
        self.frames()
            .into_iter()
            .filter(|f| f.connection == connection && f.direction != Direction::Sent)
            .collect()
    }
}
