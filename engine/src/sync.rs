//! Locking a `std::sync::Mutex` whose holder may have panicked: the engine's shared
//! state stays consistent across a panic (each update is a single write or push), and
//! one panicking task must not take the run down with it.

use std::sync::{Mutex, MutexGuard};

/// The guard of `mutex`, even if a thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
