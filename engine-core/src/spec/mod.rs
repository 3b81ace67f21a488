//! The spec model and its loader: YAML with positions, validation, and the typed
//! model the runner executes. No network, no services: only reading files.

pub mod asyncapi;
pub mod cases;
pub mod checks;
pub mod config;
pub mod document;
pub mod duration;
pub mod library;
pub mod load;
pub mod load_block;
pub mod model;
pub mod profile;
pub mod protocols;
pub mod schema;
pub mod sql;
pub mod template_calls;
pub mod yaml;
