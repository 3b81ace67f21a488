//! A connection's inbox: every frame received and not yet taken by a step, in arrival
//! order, plus how the connection ended. Steps scan it from a cursor and take frames
//! out of any position; taking is O(1) amortized whatever the backlog, and a scan can
//! stop after a bounded number of frames so the waiter can yield to the scheduler.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use serde_json::Value;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One frame received on a connection.
#[derive(Debug, Clone)]
pub struct Received {
    /// Arrival order on this connection, from 0.
    pub number: usize,
    pub at: Instant,
    /// The message as text (for raw frames, the frame itself, not copied).
    pub text: Utf8Bytes,
    /// The message as JSON, when it is JSON: see [`Received::json`].
    pub json: LazyJson,
    pub binary: bool,
    /// The event type: for raw frames read from the configured type field; for other
    /// protocols as the protocol defines it.
    pub event_type: Option<String>,
    /// The spec's name of the operation the message belongs to (protocols that
    /// multiplex operations on one socket).
    pub operation: Option<String>,
    /// The last message of its operation (see [`crate::runner::protocol::Message`]).
    pub ends_operation: bool,
    /// The frame as received, when it differs from `text` (a protocol's envelope).
    pub raw: Option<String>,
    /// socket.io: the server asks for an acknowledgement under this id.
    pub ack_wanted: Option<u64>,
    /// socket.io: the server's acknowledgement of the client's emit with this id.
    pub ack_of_emit: Option<u64>,
    pub schema_violation: Option<String>,
    /// Time from the last frame sent on this connection to this frame's arrival
    /// (`None` when nothing was sent before it): the event latency load mode reports.
    pub since_last_sent: Option<Duration>,
}

/// A received message's JSON: given by its protocol, or parsed from the message's text
/// the first time a step looks at it (raw frames are only skimmed for their type on
/// arrival).
#[derive(Debug, Clone, Default)]
pub struct LazyJson(OnceLock<Option<Value>>);

impl LazyJson {
    /// JSON already known (or known not to be there).
    pub fn known(json: Option<Value>) -> LazyJson {
        LazyJson(OnceLock::from(json))
    }
}

impl Received {
    /// The message as JSON, when it is JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .0
            .get_or_init(|| serde_json::from_str(&self.text).ok())
            .as_ref()
    }

    /// The message as a step captures from it: its JSON, else its text as a string.
    pub fn json_or_text(&self) -> Value {
        self.json()
            .cloned()
            .unwrap_or_else(|| Value::String(self.text.as_str().to_owned()))
    }

    /// The frame's text while its JSON is still only that: not parsed yet, and not
    /// given apart by its protocol.
    pub fn unparsed_json(&self) -> Option<&str> {
        self.json.0.get().is_none().then_some(self.text.as_str())
    }

    /// How much examining this frame costs, in frames of ordinary size: large frames
    /// count for more, so a scan over them yields sooner.
    pub fn weight(&self) -> usize {
        1 + self.text.len() / (16 * 1024)
    }

    /// The message for failure output, at most `limit` characters of each form: the
    /// decoded text, then the raw frame when it differs.
    pub fn shown(&self, limit: usize) -> String {
        let text = crate::text::truncate(&self.text, limit);
        match &self.raw {
            Some(raw) => format!(
                "{text}\n    raw frame: {}",
                crate::text::truncate(raw, limit)
            ),
            None => text.to_string(),
        }
    }
}

/// How a connection ended, as seen by the reader.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The code of the close frame that ended the connection.
    pub code: Option<u16>,
    pub reason: String,
    /// Transport or protocol error, or a close without a close frame.
    pub error: Option<String>,
    /// The engine sent the close frame, failing a connection that broke the protocol
    /// (1002, 1007, 1009, or the connection's own protocol); `code` and `reason` are
    /// then the engine's.
    pub by_engine: bool,
    /// What the connection's protocol says the code means.
    pub meaning: Option<&'static str>,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.by_engine {
            let code = self.code.unwrap_or_default();
            return write!(
                f,
                "was closed by the engine with code {code}: {}",
                self.reason
            );
        }
        match (&self.code, &self.error) {
            (Some(code), _) if self.reason.is_empty() => write!(f, "closed with code {code}")?,
            (Some(code), _) => write!(f, "closed with code {code} ({})", self.reason)?,
            (None, Some(error)) => write!(f, "dropped: {error}")?,
            (None, None) => write!(f, "closed without a close frame")?,
        }
        match self.meaning {
            Some(meaning) => write!(f, " [{meaning}]"),
            None => Ok(()),
        }
    }
}

/// Frames not yet taken, in arrival order. A frame taken from the middle leaves a
/// tombstone (so positions stay put and taking is O(1)); tombstones at the front are
/// dropped at once, and the rest are swept out when they outnumber the live frames.
#[derive(Default)]
pub struct Pending {
    /// Arrival number and frame (`None` once taken), by increasing arrival number.
    /// Boxed: a frame is 280 bytes, moved from the reader into the inbox and out
    /// to the step that takes it, at every round trip; a box moves as a pointer.
    slots: VecDeque<(usize, Option<Box<Received>>)>,
    live: usize,
}

/// What a bounded scan found.
pub enum Scan {
    /// The position (for [`Pending::take`]) of the first frame that matched.
    Found(usize),
    /// Examined the whole inbox from the cursor on: nothing matched.
    Exhausted,
    /// Ran out of budget before the end: scan again (after yielding) from the cursor.
    Paused,
}

/// Tombstones tolerated before a sweep, whatever the number of live frames.
const TOMBSTONE_SLACK: usize = 1024;

impl Pending {
    pub fn push(&mut self, frame: Box<Received>) {
        self.slots.push_back((frame.number, Some(frame)));
        self.live += 1;
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Frames waiting, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &Received> {
        self.slots.iter().filter_map(|(_, frame)| frame.as_deref())
    }

    /// Look for the first frame, from arrival number `cursor` on, that `matches`;
    /// examine frames worth at most `budget` (see [`Received::weight`]). `cursor`
    /// moves past every frame examined, so the next scan resumes where this one ended.
    pub fn scan(
        &self,
        cursor: &mut usize,
        budget: usize,
        mut matches: impl FnMut(&Received) -> bool,
    ) -> Scan {
        let start = self.slots.partition_point(|(number, _)| number < cursor);
        let mut spent = 0;
        for index in start..self.slots.len() {
            let (number, frame) = &self.slots[index];
            if spent >= budget {
                *cursor = *number;
                return Scan::Paused;
            }
            *cursor = number + 1;
            let Some(frame) = frame else { continue };
            spent += frame.weight();
            if matches(frame) {
                *cursor = *number;
                return Scan::Found(index);
            }
        }
        Scan::Exhausted
    }

    /// The frame at a position [`Pending::scan`] found, if still there.
    pub fn get(&self, index: usize) -> Option<&Received> {
        self.slots.get(index)?.1.as_deref()
    }

    /// Take the frame at a position [`Pending::scan`] found (under the same lock).
    pub fn take(&mut self, index: usize) -> Option<Box<Received>> {
        let frame = self.slots.get_mut(index)?.1.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some((_, None))) {
            self.slots.pop_front();
        }
        let tombstones = self.slots.len() - self.live;
        if tombstones > TOMBSTONE_SLACK && tombstones > self.live {
            self.slots.retain(|(_, frame)| frame.is_some());
        }
        Some(frame)
    }
}

/// Each event type seen on a connection, with the arrival number of its first frame.
/// Bounded: a server inventing a type per frame cannot grow it without limit.
#[derive(Default)]
pub struct SeenTypes {
    first: BTreeMap<String, usize>,
    /// The type noted last, its bytes kept in place (when short): a busy connection
    /// repeats its types, and this is compared without reaching for the map's nodes
    /// and keys elsewhere in memory, at every frame.
    last: [u8; LAST_BYTES],
    last_len: Option<usize>,
}

const MAX_SEEN_TYPES: usize = 1000;
const LAST_BYTES: usize = 31;

impl SeenTypes {
    pub fn note(&mut self, event_type: &str, number: usize) {
        let bytes = event_type.as_bytes();
        if self.last_len.map(|len| &self.last[..len]) == Some(bytes) {
            return;
        }
        if self.first.len() < MAX_SEEN_TYPES && !self.first.contains_key(event_type) {
            self.first.insert(event_type.to_string(), number);
        }
        self.last_len = (bytes.len() <= LAST_BYTES).then(|| {
            self.last[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        });
    }

    /// Arrival number of the first frame of this type.
    pub fn first_of(&self, event_type: &str) -> Option<usize> {
        self.first.get(event_type).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.first.keys().map(String::as_str)
    }
}

#[derive(Default)]
pub struct InboxState {
    /// Frames not yet taken by a step, in arrival order.
    pub pending: Pending,
    /// Every frame ever received (for failure reports).
    pub received: usize,
    /// Event types of every frame received, taken or not (for "did you mean").
    pub seen_types: SeenTypes,
    pub closed: Option<Closed>,
    /// Schema violations not yet reported.
    pub violations: Vec<String>,
}

/// The inbox, and the signal of every change to it (a frame arrived, the connection
/// closed).
///
/// One wait at a time: a connection belongs to one scenario, which runs one step at a
/// time, so a change wakes one task, without the waiter list (and its lock) a
/// `tokio::sync::Notify` keeps for many, at every frame. Every wait has a deadline.
pub struct Inbox {
    pub state: Mutex<InboxState>,
    /// Counts changes: a wait is over once it moved past what the wait saw.
    changes: AtomicU64,
    waiter: AtomicWaker,
    /// Waits registered and not yet over: debug builds (the tests, the suite) hold the
    /// one-wait contract with it, since a second wait would only end at its deadline.
    #[cfg(debug_assertions)]
    waits: std::sync::atomic::AtomicUsize,
    /// The deadline timer of the last wait on this inbox, kept for the next one (see
    /// [`super::waiter::Waiter`]).
    spare_timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl Inbox {
    pub fn new() -> Inbox {
        Inbox {
            state: Mutex::default(),
            changes: AtomicU64::new(0),
            waiter: AtomicWaker::new(),
            #[cfg(debug_assertions)]
            waits: Default::default(),
            spare_timer: Mutex::default(),
        }
    }

    /// The state, even if a thread panicked while holding it (it stays consistent:
    /// every update is a single push or field write).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        crate::sync::lock(&self.state)
    }

    /// The timer a wait on this inbox left, if no other wait holds it.
    pub fn take_spare_timer(&self) -> Option<Pin<Box<Sleep>>> {
        crate::sync::lock(&self.spare_timer).take()
    }

    /// Keep a wait's timer for the next wait.
    pub fn keep_spare_timer(&self, timer: Pin<Box<Sleep>>) {
        *crate::sync::lock(&self.spare_timer) = Some(timer);
    }

    /// Wake whoever waits for a change.
    pub fn bump(&self) {
        self.changes.fetch_add(1, Ordering::Release);
        self.waiter.wake();
    }

    /// Resolves at the first change after this call, polled or not: take it before
    /// looking at the state, then await it, and no change can slip in between.
    pub fn changed(&self) -> Changed<'_> {
        Changed {
            inbox: self,
            seen: self.changes.load(Ordering::Acquire),
            #[cfg(debug_assertions)]
            registered: false,
        }
    }
}

/// A wait for the next change to an inbox (see [`Inbox::changed`]).
pub struct Changed<'a> {
    inbox: &'a Inbox,
    seen: u64,
    #[cfg(debug_assertions)]
    registered: bool,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let moved = |this: &Self| this.inbox.changes.load(Ordering::Acquire) != this.seen;
        if moved(this) {
            return Poll::Ready(());
        }
        // Registered, then looked at again: a change in between is not missed.
        this.inbox.waiter.register(cx.waker());
        #[cfg(debug_assertions)]
        if !this.registered {
            this.registered = true;
            let others = this.inbox.waits.fetch_add(1, Ordering::Relaxed);
            debug_assert_eq!(others, 0, "two waits at once on one inbox");
        }
        if moved(this) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(debug_assertions)]
impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.inbox.waits.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: usize, event: &str) -> Received {
        Received {
            number,
            at: Instant::now(),
            text: format!("{{\"type\":\"{event}\"}}").into(),
            json: LazyJson::known(None),
            binary: false,
            event_type: Some(event.into()),
            operation: None,
            ends_operation: false,
            ack_wanted: None,
            ack_of_emit: None,
            raw: None,
            schema_violation: None,
            since_last_sent: None,
        }
    }

    fn inbox(types: &[&str]) -> Pending {
        let mut pending = Pending::default();
        for (n, t) in types.iter().enumerate() {
            pending.push(Box::new(frame(n, t)));
        }
        pending
    }

    fn find(pending: &Pending, cursor: &mut usize, event: &str) -> Option<usize> {
        loop {
            match pending.scan(cursor, 2, |f| f.event_type.as_deref() == Some(event)) {
                Scan::Found(index) => return Some(index),
                Scan::Exhausted => return None,
                Scan::Paused => continue,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_sees_every_change_after_it_began_and_none_before() {
        let inbox = std::sync::Arc::new(Inbox::new());
        let second = Duration::from_secs(1);
        // A change before the wait began is not one it waits for.
        inbox.bump();
        assert!(tokio::time::timeout(second, inbox.changed()).await.is_err());
        // A change between taking the wait and awaiting it is not missed.
        let changed = inbox.changed();
        inbox.bump();
        assert!(tokio::time::timeout(second, changed).await.is_ok());
        // A change from another task wakes a wait already pending.
        let bumper = inbox.clone();
        tokio::spawn(async move {
            tokio::time::sleep(second / 2).await;
            bumper.bump();
        });
        let start = tokio::time::Instant::now();
        assert!(tokio::time::timeout(second, inbox.changed()).await.is_ok());
        assert_eq!(start.elapsed(), second / 2);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "two waits at once on one inbox")]
    fn two_waits_at_once_on_one_inbox_are_caught_in_debug_builds() {
        let inbox = Inbox::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut first, mut second) = (inbox.changed(), inbox.changed());
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        let _ = Pin::new(&mut second).poll(&mut cx);
    }

    #[test]
    fn seen_types_keep_the_first_arrival_of_each_type() {
        let long = "x".repeat(40);
        let mut seen = SeenTypes::default();
        for (number, t) in ["a", "a", "b", "a", "", &long, &long, "ab", "b", ""]
            .iter()
            .enumerate()
        {
            seen.note(t, number);
        }
        let first: Vec<_> = seen
            .names()
            .map(|n| (n.to_string(), seen.first_of(n)))
            .collect();
        let want = [("", 4), ("a", 0), ("ab", 7), ("b", 2), (long.as_str(), 5)];
        let want: Vec<_> = want
            .iter()
            .map(|(n, i)| (n.to_string(), Some(*i)))
            .collect();
        assert_eq!(first, want);
    }

    #[test]
    fn takes_the_first_match_and_keeps_the_order_of_the_rest() {
        let mut pending = inbox(&["a", "b", "a", "b", "c"]);
        let mut cursor = 0;
        let index = find(&pending, &mut cursor, "b").unwrap();
        assert_eq!(pending.take(index).unwrap().number, 1);
        let index = find(&pending, &mut cursor, "b").unwrap();
        assert_eq!(pending.take(index).unwrap().number, 3);
        assert!(find(&pending, &mut cursor, "b").is_none());
        let left: Vec<usize> = pending.iter().map(|f| f.number).collect();
        assert_eq!(left, vec![0, 2, 4]);
        assert_eq!(pending.len(), 3);
        // A fresh cursor starts from the oldest frame again.
        let index = find(&pending, &mut 0, "a").unwrap();
        assert_eq!(pending.take(index).unwrap().number, 0);
    }

    #[test]
    fn a_paused_scan_resumes_where_it_stopped() {
        let pending = inbox(&["a", "a", "a", "a", "b"]);
        let mut cursor = 0;
        let mut pauses = 0;
        let found = loop {
            match pending.scan(&mut cursor, 2, |f| f.event_type.as_deref() == Some("b")) {
                Scan::Found(index) => break index,
                Scan::Exhausted => panic!("b is there"),
                Scan::Paused => pauses += 1,
            }
        };
        assert_eq!(found, 4);
        assert_eq!(pauses, 2);
    }

    #[test]
    fn tombstones_are_swept_and_positions_stay_valid() {
        // Every other frame taken from behind a frame that is never taken.
        let mut types = vec!["stale"];
        types.extend(std::iter::repeat_n(["x", "y"], 5000).flatten());
        let mut pending = inbox(&types);
        let mut cursor = 0;
        let mut taken = Vec::new();
        while let Some(index) = find(&pending, &mut cursor, "y") {
            taken.push(pending.take(index).unwrap().number);
        }
        assert_eq!(taken.len(), 5000);
        assert!(taken.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(pending.len(), 5001);
        assert!(pending.slots.len() <= 2 * pending.len() + TOMBSTONE_SLACK + 1);
        let index = find(&pending, &mut 0, "stale").unwrap();
        assert_eq!(pending.take(index).unwrap().number, 0);
    }
}
