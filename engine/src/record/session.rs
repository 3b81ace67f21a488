//! What `engine record` saw: every client connection through the proxy (its handshake
//! and how the upstream answered it) and every frame both ways, in the order they
//! passed. Shared by the proxy's tasks; read whole to write the draft.

use std::sync::{Arc, Mutex};

/// One client's handshake, as the proxy passed it upstream.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// Path and query string, e.g. `/ws?token=…&last_seq=3`.
    pub path_and_query: String,
    /// Headers passed upstream (name in lower case, value), handshake headers left out.
    pub headers: Vec<(String, String)>,
    /// Subprotocols the client offered.
    pub subprotocols: Vec<String>,
    /// The HTTP status the upstream refused the upgrade with, if it did.
    pub refused: Option<u16>,
}

/// Something that passed through the proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Client `connection` opened (its handshake is in [`Session::handshakes`]).
    Opened { connection: usize },
    /// A frame from the client to the upstream (binary frames as lossy UTF-8).
    Sent {
        connection: usize,
        text: String,
        binary: bool,
    },
    /// A frame from the upstream to the client.
    Received {
        connection: usize,
        text: String,
        binary: bool,
    },
    /// The client closed (with a close frame, or by dropping).
    ClientClosed { connection: usize },
    /// The upstream closed first, with this code.
    ServerClosed {
        connection: usize,
        code: Option<u16>,
        reason: String,
    },
}

#[derive(Debug, Default)]
pub struct Session {
    pub handshakes: Vec<Handshake>,
    pub events: Vec<Event>,
}

/// The session, shared by the proxy's tasks.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Session>>);

impl Recorder {
    /// A new client connection; its index.
    pub fn open(&self, handshake: Handshake) -> usize {
        let mut session = self.lock();
        let connection = session.handshakes.len();
        session.handshakes.push(handshake);
        session.events.push(Event::Opened { connection });
        connection
    }

    pub fn push(&self, event: Event) {
        self.lock().events.push(event);
    }

    /// Read the session as it is now.
    pub fn with<T>(&self, read: impl FnOnce(&Session) -> T) -> T {
        read(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        crate::sync::lock(&self.0)
    }
}
