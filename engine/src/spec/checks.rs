//! Checks of spec contents that the schema cannot express and that need another
//! module's knowledge: durations in range, JSONPaths of captures. The checker in `load.rs` calls these and
//! locates each problem by the JSON pointer returned with it.

use serde_json::Value;

use super::duration::parse_duration;
use super::model::StepKind;
use super::yaml::pointer_escape;
use crate::diagnostic::Diagnostic;
use crate::template;

/// A problem and the JSON pointer of the field it is about.
pub type Located = (String, Diagnostic);

/// Problems in scenario-level fields.
pub fn scenario(value: &Value) -> Vec<Located> {
    let mut out = Vec::new();
    if let Some(text) = value.get("timeout").and_then(Value::as_str) {
        duration(text, "/timeout", &mut out);
    }
    out
}

/// Problems in one step's body; `pointer` is where the body sits.
pub fn step(kind: StepKind, body: &Value, pointer: &str) -> Vec<Located> {
    let mut out = Vec::new();
    if kind == StepKind::Sleep {
        if let Some(text) = body.as_str() {
            duration(text, pointer, &mut out);
        }
    }
    captures(body, pointer, &mut out);
    out
}

/// Every `capture:` path must parse, as it will at run time.
fn captures(value: &Value, pointer: &str, out: &mut Vec<Located>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let at = format!("{pointer}/{}", pointer_escape(key));
                match (key.as_str(), item) {
                    ("capture", Value::Object(paths)) => {
                        for (name, path) in paths {
                            let Some(path) = path.as_str().filter(|p| !template::is_template(p))
                            else {
                                continue;
                            };
                            if let Err(message) = crate::json_path::parse(path) {
                                out.push((
                                    format!("{at}/{}", pointer_escape(name)),
                                    Diagnostic::new(message)
                                        .hint("captures take JSONPath (RFC 9535): `$.id`, `$.items[0].name`"),
                                ));
                            }
                        }
                    }
                    _ => captures(item, &at, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                captures(item, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A duration the schema's pattern accepts can still be out of range.
fn duration(text: &str, pointer: &str, out: &mut Vec<Located>) {
    if template::is_template(text) {
        return;
    }
    if let Err(message) = parse_duration(text) {
        out.push((pointer.to_string(), Diagnostic::new(message)));
    }
}
