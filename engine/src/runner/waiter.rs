//! Waiting on a connection's inbox under a hard deadline. The deadline is checked on
//! every pass, not only when nothing is ready, so a flood of frames cannot keep a wait
//! alive; and every pass spends coop budget, so a backlog being scanned or taken never
//! holds a runtime worker that other scenarios need.

use std::sync::Arc;

use tokio::time::Instant;

use super::inbox::{Inbox, InboxState, Pending, Received, Scan};
use super::ws::Connection;

/// Frames (of ordinary size) a pass examines while holding the inbox lock.
pub const SCAN_BUDGET: usize = 32;

/// What one look at the inbox found.
pub enum Pick<T> {
    Found(T),
    /// Examined its share of the inbox: look again after yielding.
    Paused,
    /// Nothing (more) to examine until something arrives.
    Exhausted,
}

/// Why a wait ended without finding anything.
pub enum WaitEnd {
    Deadline,
    /// The connection closed (how, for the message) and nothing left can match.
    Closed(String),
}

/// Waits on one connection until a deadline.
pub struct Waiter {
    inbox: Arc<Inbox>,
    deadline: Instant,
}

impl Waiter {
    pub fn new(connection: &Connection, deadline: Instant) -> Waiter {
        Waiter {
            inbox: connection.inbox.clone(),
            deadline,
        }
    }

    /// Look with `pick` until it finds something, the connection closes, or the
    /// deadline passes (then `Deadline`, even if frames are still arriving).
    pub async fn next<T>(
        &mut self,
        mut pick: impl FnMut(&mut InboxState) -> Pick<T>,
    ) -> Result<T, WaitEnd> {
        loop {
            tokio::task::coop::consume_budget().await;
            if Instant::now() >= self.deadline {
                return Err(WaitEnd::Deadline);
            }
            let changed = self.inbox.changed();
            let closed = {
                let mut state = self.inbox.lock();
                match pick(&mut state) {
                    Pick::Found(found) => return Ok(found),
                    Pick::Paused => continue,
                    Pick::Exhausted => state.closed.as_ref().map(ToString::to_string),
                }
            };
            if let Some(how) = closed {
                return Err(WaitEnd::Closed(how));
            }
            let _ = tokio::time::timeout_at(self.deadline, changed).await;
        }
    }
}

/// Take the first frame from `cursor` on that `matches`, examining one pass's worth.
pub fn take_first(
    pending: &mut Pending,
    cursor: &mut usize,
    matches: impl FnMut(&Received) -> bool,
) -> Pick<Received> {
    match pending.scan(cursor, SCAN_BUDGET, matches) {
        // `take` finds what `scan` found under the same lock; `Paused` would rescan.
        Scan::Found(index) => pending.take(index).map_or(Pick::Paused, Pick::Found),
        Scan::Paused => Pick::Paused,
        Scan::Exhausted => Pick::Exhausted,
    }
}

/// Like [`take_first`], but leave the frame where it is and return a copy.
pub fn find_first(
    pending: &Pending,
    cursor: &mut usize,
    matches: impl FnMut(&Received) -> bool,
) -> Pick<Received> {
    match pending.scan(cursor, SCAN_BUDGET, matches) {
        Scan::Found(index) => pending
            .get(index)
            .cloned()
            .map_or(Pick::Paused, Pick::Found),
        Scan::Paused => Pick::Paused,
        Scan::Exhausted => Pick::Exhausted,
    }
}
