//! The scenario engine's core: everything about a spec that needs no network and no
//! async runtime, so it can be tested (and reused by editors and linters) without a
//! socket. The `engine` crate runs what this crate loads.
//!
//! - [`spec`]: the typed model, its loader and its checker.
//! - [`diagnostic`]: the one renderer of every error a user sees.
//! - [`template`]: the template language of spec values.
//! - [`matcher`]: how an expected value matches a received one.
//! - [`json_path`]: JSONPath queries with bounded nesting.
//! - [`memo`], [`text`]: small shared utilities.

pub mod diagnostic;
pub mod json_path;
pub mod matcher;
pub mod memo;
pub mod spec;
pub mod template;
pub mod text;
