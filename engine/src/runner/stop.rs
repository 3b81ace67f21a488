//! How a run is asked to stop. Gracefully: nothing new starts, running scenarios (and
//! load iterations) are cancelled at their next wait and tear down. At once: the runner
//! reports what was still running and hands back, so that the caller can kill every
//! process group the run started and exit.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

use crate::sync::lock;

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
    /// Whether each token was cancelled, read without the token's lock (which every
    /// scenario would take at every step).
    graceful_requested: AtomicBool,
    now_requested: AtomicBool,
    /// The scenarios watching for a graceful stop ([`StopWatch`]), woken by it.
    watchers: Mutex<Watchers>,
}

/// Weak references to the scenarios watching for a stop; the dead ones are swept out
/// whenever the list has doubled since the last sweep.
#[derive(Default)]
struct Watchers {
    watching: Vec<Weak<WatchState>>,
    sweep_at: usize,
}

impl Watchers {
    fn add(&mut self, watcher: Weak<WatchState>) {
        if self.watching.len() >= self.sweep_at {
            self.watching.retain(|w| w.strong_count() > 0);
            self.sweep_at = (2 * self.watching.len()).max(64);
        }
        self.watching.push(watcher);
    }
}

impl RunStop {
    /// Start nothing new; cancel running scenarios at their next wait; tear down.
    pub fn request(&self, signal: i32) {
        self.inner.signal.store(signal, Ordering::SeqCst);
        self.inner.graceful_requested.store(true, Ordering::SeqCst);
        self.inner.graceful.cancel();
        let watchers = std::mem::take(&mut *lock(&self.inner.watchers));
        for watcher in watchers.watching.iter().filter_map(Weak::upgrade) {
            watcher.waker.wake();
        }
    }

    /// Stop at once: running scenarios are reported as not torn down.
    pub fn request_now(&self, signal: i32) {
        self.request(signal);
        self.inner.now_requested.store(true, Ordering::SeqCst);
        self.inner.now.cancel();
    }

    pub fn is_requested(&self) -> bool {
        self.inner.graceful_requested.load(Ordering::SeqCst)
    }

    pub fn is_immediate(&self) -> bool {
        self.inner.now_requested.load(Ordering::SeqCst)
    }

    /// One scenario's watch for a graceful stop, which it polls at every step that
    /// waits: registered here once, then polled without touching anything the other
    /// scenarios share.
    pub fn watch(&self) -> StopWatch {
        let state = Arc::new(WatchState {
            stop: self.clone(),
            waker: AtomicWaker::new(),
        });
        lock(&self.inner.watchers).add(Arc::downgrade(&state));
        StopWatch { state }
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
        *lock(done) = true;
        ready.notify_all();
    }

    /// Wait (blocking this thread) until [`mark_reported`](Self::mark_reported), at
    /// most `limit`; whether it happened.
    pub fn wait_reported(&self, limit: Duration) -> bool {
        let (done, ready) = &self.inner.reported;
        let guard = crate::sync::wait_while(ready, lock(done), limit, |done| !*done);
        *guard
    }
}

/// One scenario's watch for a graceful stop (see [`RunStop::watch`]); cheap to clone.
#[derive(Clone)]
pub struct StopWatch {
    state: Arc<WatchState>,
}

struct WatchState {
    stop: RunStop,
    waker: AtomicWaker,
}

impl StopWatch {
    pub fn is_requested(&self) -> bool {
        self.state.stop.is_requested()
    }

    pub fn cause(&self) -> String {
        self.state.stop.cause()
    }

    /// Resolves once a graceful stop is requested.
    pub fn requested(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.is_requested() {
                return Poll::Ready(());
            }
            self.state.waker.register(cx.waker());
            // A request between the first look and the registration woke no one.
            if self.is_requested() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
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

    #[tokio::test]
    async fn a_watch_wakes_at_a_stop_requested_before_or_after_it_was_made() {
        let stop = RunStop::default();
        let before = stop.watch();
        let watches: Vec<StopWatch> = (0..100).map(|_| stop.watch()).collect();
        drop(watches); // swept, never woken
        let waiter = tokio::spawn({
            let watch = stop.watch();
            async move { watch.requested().await }
        });
        tokio::task::yield_now().await;
        assert!(!before.is_requested());
        stop.request(libc::SIGINT);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the watching scenario woke")
            .unwrap();
        assert!(before.is_requested());
        assert_eq!(before.cause(), "SIGINT");
        let after = stop.watch();
        tokio::time::timeout(Duration::from_secs(5), after.requested())
            .await
            .expect("a watch made after the request is ready at once");
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
