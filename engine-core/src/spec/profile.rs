//! Connection profiles: a `connect` step is its profile with the step's own fields
//! merged over it. One merge for the checker (before anything runs) and the runner.

use serde_json::{Map, Value};

use super::config::SuiteConfig;

/// Deep merge: objects key by key, anything else replaced by the override.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, over) => *slot = over,
    }
}

/// A step names a connection profile the suite config does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no connection profile `{0}` in the suite config")]
pub struct UnknownProfile(pub String);

/// The profile a connect step uses: the one it names, else `default` when the step
/// has no `url`.
pub fn profile_of<'a>(
    config: &'a SuiteConfig,
    step: &Map<String, Value>,
    named: Option<&str>,
) -> Result<Option<&'a Map<String, Value>>, UnknownProfile> {
    match named {
        Some(name) => config
            .profiles
            .get(name)
            .map(Some)
            .ok_or_else(|| UnknownProfile(name.to_string())),
        None if !step.contains_key("url") => Ok(config.profiles.get("default")),
        None => Ok(None),
    }
}

/// A connect step's fields over its profile's (named, or `default` without a `url`), as
/// the runner opens it.
pub fn over_profile(
    config: &SuiteConfig,
    step: &Map<String, Value>,
) -> Result<Value, UnknownProfile> {
    let named = step.get("profile").and_then(Value::as_str);
    let profile = profile_of(config, step, named)?;
    let mut merged = Value::Object(profile.cloned().unwrap_or_default());
    merge(&mut merged, Value::Object(step.clone()));
    Ok(merged)
}

/// Do the ready event's captures land under `vars.<connection>`? When the merged
/// step waits for a ready event with captures, and the step has no `capture:` of its
/// own (which puts them in `vars` directly).
pub fn captures_per_connection(merged: &Value) -> bool {
    merged.get("capture").is_none()
        && merged
            .get("ready")
            .and_then(|r| r.get("capture"))
            .and_then(Value::as_object)
            .is_some_and(|c| !c.is_empty())
}
