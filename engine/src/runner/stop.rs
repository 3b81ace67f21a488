//! How a run is asked to stop. Gracefully: nothing new starts, running scenarios (and
//! load iterations) are cancelled at their next wait and tear down. At once: the runner
//! reports what was still running and hands back, so that the caller can kill every
//! process group the run started and exit.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Shared by everything one run starts; cheap to clone. `RunStop::default()` never fires
/// unless asked to.
#[derive(Clone, Default)]
pub struct RunStop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    graceful: CancellationToken,
    now: CancellationToken,
    /// The signal that asked last (0: none, or asked by code).
    signal: AtomicI32,
    /// Set once the report of an immediate stop is written.
    reported: (Mutex<bool>, Condvar),
}

impl RunStop {
    /// Start nothing new; cancel running scenarios at their next wait; tear down.
    pub fn request(&self, signal: i32) {
        self.inner.signal.store(signal, Ordering::SeqCst);
        self.inner.graceful.cancel();
    }

    /// Stop at once: running scenarios are reported as not torn down.
    pub fn request_now(&self, signal: i32) {
        self.request(signal);
        self.inner.now.cancel();
    }

    pub fn is_requested(&self) -> bool {
        self.inner.graceful.is_cancelled()
    }

    pub fn is_immediate(&self) -> bool {
        self.inner.now.is_cancelled()
    }

    /// Resolves once a (graceful or immediate) stop is requested.
    pub async fn requested(&self) {
        self.inner.graceful.cancelled().await
    }

    /// Resolves once an immediate stop is requested.
    pub async fn immediate(&self) {
        self.inner.now.cancelled().await
    }

    /// The signal that asked to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// What asked to stop, for messages: `SIGTERM`, `SIGINT`, or "a stop request".
    pub fn cause(&self) -> String {
        match self.signal() {
            Some(signal) => signal_name(signal),
            None => "a stop request".into(),
        }
    }

    /// The report of an immediate stop is written: the process may exit.
    pub fn mark_reported(&self) {
        let (done, ready) = &self.inner.reported;
        *done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        ready.notify_all();
    }

    /// Wait (blocking this thread) until [`mark_reported`](Self::mark_reported), at
    /// most `limit`; whether it happened.
    pub fn wait_reported(&self, limit: Duration) -> bool {
        let (done, ready) = &self.inner.reported;
        let guard = done.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = ready
            .wait_timeout_while(guard, limit, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// `SIGINT`, `SIGTERM`, … for a signal number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_immediate_stop_is_also_a_graceful_one() {
        let stop = RunStop::default();
        assert!(!stop.is_requested());
        assert_eq!(stop.cause(), "a stop request");
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.requested().await }
        });
        stop.request_now(libc::SIGTERM);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the graceful waiter woke")
            .unwrap();
        assert!(stop.is_requested() && stop.is_immediate());
        assert_eq!(stop.cause(), "SIGTERM");
    }

    #[test]
    fn waiting_for_the_report_ends_when_marked_or_at_the_limit() {
        let stop = RunStop::default();
        assert!(!stop.wait_reported(Duration::from_millis(10)));
        let marker = std::thread::spawn({
            let stop = stop.clone();
            move || stop.mark_reported()
        });
        assert!(stop.wait_reported(Duration::from_secs(5)));
        marker.join().unwrap();
    }
}
