//! What a scenario run reports while it runs, for load mode: connect times, frames
//! sent and received, and event latencies. `engine run` runs without a meter.

use std::sync::Arc;
use std::time::Duration;

/// Receives measurements from the steps and connections of a scenario run. Called on
/// hot paths (every frame): implementations must be cheap and must not block.
pub trait Meter: Send + Sync {
    /// A WebSocket handshake succeeded after `took`.
    fn connected(&self, took: Duration);
    /// A connection of the scenario was closed at teardown.
    fn connection_closed(&self);
    /// A frame was sent on a connection.
    fn frame_sent(&self);
    /// A frame arrived on a connection.
    fn frame_received(&self);
    /// An `expect` matched a frame that arrived `latency` after the last frame sent on
    /// its connection.
    fn event_latency(&self, latency: Duration);
}

/// A meter shared by every scenario run of a load test.
pub type SharedMeter = Arc<dyn Meter>;
