//! Locking `std::sync` locks whose holder may have panicked: the engine's shared state
//! stays consistent across a panic (each update is a single write or push), and one
//! panicking task must not take the run down with it. Every lock of the engine goes
//! through these, so that none of them can turn a panic into a second one.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// The guard of `mutex`, even if a thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `mutex` holds, even if a thread panicked while holding it.
pub fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// A read guard of `lock`, even if a thread panicked while writing.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// The write guard of `lock`, even if a thread panicked while holding it.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Wait on `ready` while `waiting` holds, at most `limit`; the guard back.
pub fn wait_while<'a, T>(
    ready: &Condvar,
    guard: MutexGuard<'a, T>,
    limit: Duration,
    waiting: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    match ready.wait_timeout_while(guard, limit, waiting) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A lock poisoned by a panicking holder still hands out its value.
    #[test]
    fn a_poisoned_lock_still_gives_its_value() {
        let mutex = Arc::new(Mutex::new(1));
        let rw = Arc::new(RwLock::new(2));
        let (m, r) = (mutex.clone(), rw.clone());
        let panicked = std::thread::spawn(move || {
            let _m = m.lock().unwrap();
            let _r = r.write().unwrap();
            panic!("holder panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*read(&rw), 2);
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 3);
        let ready = Condvar::new();
        let guard = wait_while(&ready, lock(&mutex), Duration::ZERO, |n| *n < 10);
        assert_eq!(*guard, 2);
        drop(guard);
        let mutex = Arc::try_unwrap(mutex).expect("only owner");
        assert_eq!(into_inner(mutex), 2);
    }
}
