//! Local `$ref`s inlined into a message's payload schema, so the schema stands alone:
//! the validator, failure output and the agreement test see one self-contained schema.
//!
//! A `$ref` is replaced by what it names. One with sibling keywords keeps them and adds
//! the target as an `allOf` member (applying both, as JSON Schema 2019+ does). A
//! recursive reference (a schema that contains itself) cannot be inlined: its target
//! goes into the payload's `$defs` under its document pointer, and the recursion refers
//! there. Values that are data, not schemas (`const`, `enum`, `default`, examples), are
//! copied as they are.

use serde_json::{Map, Value};

use super::{shape, Doc, Located};
use crate::spec::yaml::pointer_escape;

/// Keywords whose values are data: a `$ref` key inside them is not a reference.
const DATA_KEYWORDS: &[&str] = &["const", "enum", "default", "examples", "example"];

/// Keywords whose values map names (of properties, definitions) to schemas.
const NAME_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// The schema at `pointer` with every local `$ref` resolved.
pub(super) fn resolve(doc: &Doc, schema: &Value, pointer: &str) -> Result<Value, Located> {
    let mut inliner = Inliner {
        doc,
        stack: vec![pointer.to_string()],
        recursive: Vec::new(),
    };
    let mut resolved = inliner.inline(schema, pointer)?;
    let mut defs = Map::new();
    let mut next = 0;
    while let Some(target) = inliner.recursive.get(next).cloned() {
        next += 1;
        let value = doc.root.pointer(&target).unwrap_or(&Value::Null);
        inliner.stack = vec![target.clone()];
        defs.insert(def_name(&target), inliner.inline(value, &target)?);
    }
    if let (false, Value::Object(root)) = (defs.is_empty(), &mut resolved) {
        match root
            .entry("$defs")
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(existing) => existing.extend(defs),
            _ => return Err(shape(pointer, "$defs", "a mapping").at(format!("{pointer}/$defs"))),
        }
    }
    Ok(resolved)
}

/// The `$defs` key of a recursive target: its pointer without the leading `/`.
fn def_name(pointer: &str) -> String {
    pointer.trim_start_matches('/').to_string()
}

struct Inliner<'d, 'a> {
    doc: &'d Doc<'a>,
    /// Pointers being inlined, outermost first: a `$ref` to one of them is recursion.
    stack: Vec<String>,
    /// Targets of recursive references, in the order found (each once).
    recursive: Vec<String>,
}

impl Inliner<'_, '_> {
    fn inline(&mut self, value: &Value, pointer: &str) -> Result<Value, Located> {
        match value {
            Value::Object(map) => match map.get("$ref") {
                Some(Value::String(reference)) => self.reference(map, reference, pointer),
                Some(_) => Err(shape(pointer, "$ref", "a string").at(format!("{pointer}/$ref"))),
                None => self.object(map, pointer, false).map(Value::Object),
            },
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.inline(item, &format!("{pointer}/{i}")))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    /// A schema object's keywords; with `names`, every value is a schema (a name map).
    fn object(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        names: bool,
    ) -> Result<Map<String, Value>, Located> {
        let mut out = Map::new();
        for (key, value) in map {
            let child = format!("{pointer}/{}", pointer_escape(key));
            let resolved = if names {
                self.inline(value, &child)?
            } else if DATA_KEYWORDS.contains(&key.as_str()) {
                value.clone()
            } else if let (true, Value::Object(inner)) = (NAME_MAPS.contains(&key.as_str()), value)
            {
                Value::Object(self.object(inner, &child, true)?)
            } else {
                self.inline(value, &child)?
            };
            out.insert(key.clone(), resolved);
        }
        Ok(out)
    }

    fn reference(
        &mut self,
        map: &Map<String, Value>,
        reference: &str,
        pointer: &str,
    ) -> Result<Value, Located> {
        let (target, target_pointer) = self.doc.target(reference, &format!("{pointer}/$ref"))?;
        let resolved = if self.stack.contains(&target_pointer) {
            if !self.recursive.contains(&target_pointer) {
                self.recursive.push(target_pointer.clone());
            }
            let name = pointer_escape(&def_name(&target_pointer));
            serde_json::json!({ "$ref": format!("#/$defs/{name}") })
        } else {
            self.stack.push(target_pointer.clone());
            let inlined = self.inline(target, &target_pointer);
            self.stack.pop();
            inlined?
        };
        let mut siblings = map.clone();
        siblings.remove("$ref");
        if siblings.is_empty() {
            return Ok(resolved);
        }
        let mut out = self.object(&siblings, pointer, false)?;
        match out
            .entry("allOf")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(members) => members.push(resolved),
            _ => return Err(shape(pointer, "allOf", "a list").at(format!("{pointer}/allOf"))),
        }
        Ok(Value::Object(out))
    }
}
