//! A process-wide memo of things compiled from spec text (regexes, templates, JSONPaths).
//! Spec strings are few and live for the whole run, so compiling each distinct one once
//! is bounded, and it keeps parsing out of the per-step and per-iteration hot paths.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Memo<T> {
    map: OnceLock<Mutex<HashMap<String, Arc<T>>>>,
}

impl<T> Memo<T> {
    pub const fn new() -> Self {
        Self {
            map: OnceLock::new(),
        }
    }

    /// The value compiled from `key`, compiling it with `make` the first time. Errors
    /// are not kept: a bad spec string fails every time it is used.
    pub fn get_or_try_insert<E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let map = self.map.get_or_init(Default::default);
        if let Some(found) = map.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(found);
        }
        let value = Arc::new(make()?);
        if let Ok(mut m) = map.lock() {
            m.insert(key.to_string(), value.clone());
        }
        Ok(value)
    }
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_and_does_not_keep_errors() {
        let memo: Memo<usize> = Memo::new();
        let mut calls = 0;
        let mut make = |ok: bool| {
            calls += 1;
            if ok {
                Ok(7)
            } else {
                Err("bad")
            }
        };
        assert_eq!(memo.get_or_try_insert("x", || make(false)), Err("bad"));
        assert_eq!(*memo.get_or_try_insert("x", || make(true)).unwrap(), 7);
        assert_eq!(*memo.get_or_try_insert("x", || make(true)).unwrap(), 7);
        assert_eq!(calls, 2);
    }
}
