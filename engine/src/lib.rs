//! A declarative scenario engine for WebSocket applications with state: YAML specs
//! that connect, authenticate, send, expect events, and assert Postgres rows and Redis
//! keys, run against the real application.
//!
//! - [`spec`]: the model and its loader (no network), from the `engine-core` crate.
//! - [`runner`]: executes scenarios and emits events.
//! - [`report`]: listeners that print or write reports.
//! - [`load`]: load mode, a scenario run as many virtual users.
//! - [`record`]: a proxy that turns a real session into a spec draft.
//! - [`lifecycle`]: services, signals and exit codes around `run` and `load`.
//! - [`cli`]: the command line.

pub use engine_core::{diagnostic, json_path, matcher, memo, spec, template, text};

pub mod cli;
pub mod discover;
pub mod ids;
pub mod lifecycle;
pub mod load;
pub mod record;
pub mod redact;
pub mod report;
pub mod runner;
pub mod sync;
