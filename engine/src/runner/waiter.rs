//! Waiting on a connection's inbox under a hard deadline. The deadline is checked on
//! every pass, not only when nothing is ready, so a flood of frames cannot keep a wait
//! alive; and every pass spends coop budget, so a backlog being scanned or taken never
//! holds a runtime worker that other scenarios need.
//!
//! Each wait needs a timer for its deadline. A new timer is an insertion into the
//! runtime's timer wheel and a removal, at every `expect` of every round trip; so a
//! connection keeps the timer of its last wait for the next one, and a timer still to
//! fire before the new deadline is not even moved (see `timer`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::time::{Instant, Sleep};

use super::inbox::{Inbox, InboxState, Pending, Received, Scan};

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
    /// Fires at the deadline (or earlier, left over from a wait before: the deadline
    /// is checked at every pass).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Waiter {
    /// A wait on a connection's inbox.
    pub fn new(inbox: &Arc<Inbox>, deadline: Instant) -> Waiter {
        Waiter {
            inbox: inbox.clone(),
            deadline,
            timer: None,
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
            let mut changed = std::pin::pin!(changed);
            let timer = timer(&mut self.timer, &self.inbox, self.deadline);
            std::future::poll_fn(|cx| {
                if changed.as_mut().poll(cx).is_ready() || timer.as_mut().poll(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            self.inbox.keep_spare_timer(timer);
        }
    }
}

/// The timer of a wait: the connection's spare one if it has one (no other wait holds
/// it), else a new one. A timer still to fire before this deadline is left as it is:
/// moving it is a timer-wheel update at every wait, while leaving it costs one early
/// wake per `within` at most (the deadline is checked at every pass). A timer that
/// fired, or would fire late, is set to the deadline.
fn timer<'a>(
    slot: &'a mut Option<Pin<Box<Sleep>>>,
    inbox: &Inbox,
    deadline: Instant,
) -> &'a mut Pin<Box<Sleep>> {
    let timer = slot.get_or_insert_with(|| {
        inbox
            .take_spare_timer()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)))
    });
    if timer.deadline() > deadline || timer.is_elapsed() {
        timer.as_mut().reset(deadline);
    }
    timer
}

/// Take the first frame from `cursor` on that `matches`, examining one pass's worth.
pub fn take_first(
    pending: &mut Pending,
    cursor: &mut usize,
    matches: impl FnMut(&Received) -> bool,
) -> Pick<Box<Received>> {
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
) -> Pick<Box<Received>> {
    match pending.scan(cursor, SCAN_BUDGET, matches) {
        Scan::Found(index) => pending
            .get(index)
            .map_or(Pick::Paused, |frame| Pick::Found(Box::new(frame.clone()))),
        Scan::Paused => Pick::Paused,
        Scan::Exhausted => Pick::Exhausted,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Waits until `ready` is set (then `Ok`) or the deadline passes; how long it took.
    async fn wait(inbox: &Arc<Inbox>, within: Duration, ready: &AtomicBool) -> (bool, Duration) {
        let start = Instant::now();
        let mut waiter = Waiter::new(inbox, start + within);
        let found = waiter
            .next(|_| match ready.load(Ordering::SeqCst) {
                true => Pick::Found(()),
                false => Pick::Exhausted,
            })
            .await;
        (found.is_ok(), start.elapsed())
    }

    /// Sets `ready` and wakes the inbox's waiters after `after`.
    fn ready_after(inbox: &Arc<Inbox>, after: Duration, ready: &Arc<AtomicBool>) {
        let (inbox, ready) = (inbox.clone(), ready.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            ready.store(true, Ordering::SeqCst);
            inbox.bump();
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_its_own_deadline_whatever_timer_the_last_wait_left() {
        let inbox = Arc::new(Inbox::new());
        let ready = Arc::new(AtomicBool::new(false));
        let secs = Duration::from_secs;
        // Leaves a timer due at +5 s, before the next wait's deadline.
        ready_after(&inbox, secs(1), &ready);
        assert_eq!(wait(&inbox, secs(5), &ready).await, (true, secs(1)));
        ready.store(false, Ordering::SeqCst);
        // The early timer fires at +5 s; the wait goes on to its own deadline.
        assert_eq!(wait(&inbox, secs(10), &ready).await, (false, secs(10)));
        // Leaves a timer due at +30 s, after the next wait's deadline.
        ready_after(&inbox, secs(1), &ready);
        assert_eq!(wait(&inbox, secs(30), &ready).await, (true, secs(1)));
        ready.store(false, Ordering::SeqCst);
        assert_eq!(wait(&inbox, secs(2), &ready).await, (false, secs(2)));
        // A timer that fired is set again.
        assert_eq!(wait(&inbox, secs(3), &ready).await, (false, secs(3)));
    }
}
