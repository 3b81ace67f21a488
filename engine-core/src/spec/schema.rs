//! The JSON Schemas of the spec format (`schemas/spec.schema.json`, library files
//! included) and of the suite config (`schemas/engine.schema.json`), generated from the
//! model's types: the types are the one source of truth, the checked-in files are their
//! output (a test fails when they differ), and `engine check` validates with them.
//!
//! Besides the generators, this module holds the schema-only types that describe how a
//! field may be written before it is rendered: [`Templated`] (a value, or one
//! `{{ expression }}` that must render to one), [`DurationText`], [`CountText`],
//! [`CapturesMap`], [`ConnectionRef`] and friends.

use std::borrow::Cow;
use std::marker::PhantomData;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// The pattern of a template that is exactly one `{{ expression }}`.
pub const WHOLE_TEMPLATE_PATTERN: &str = r"^\s*\{\{.*\}\}\s*$";

/// The spec schema's `$id`.
const SPEC_ID: &str = "https://github.com/scenario-engine/engine/schemas/spec.schema.json";
/// The suite config schema's `$id`.
const ENGINE_ID: &str = "https://github.com/scenario-engine/engine/schemas/engine.schema.json";

/// The generator every schema here is made with: draft 2020-12, definitions under
/// `$defs`.
fn generator() -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::draft2020_12())
}

/// The spec format: a scenario file at the root, a library file under
/// `$defs/LibraryDocument` (both share every step definition).
pub fn spec_schema() -> Value {
    let mut generator = generator();
    // Registered so library files can be validated against the same `$defs`.
    generator.subschema_for::<super::library::LibraryDocument>();
    let mut schema = generator.into_root_schema_for::<super::document::SpecDocument>();
    schema.insert("$id".into(), SPEC_ID.into());
    schema.insert("title".into(), "Scenario spec".into());
    schema.to_value()
}

/// The suite config, `engine.yaml`.
pub fn engine_schema() -> Value {
    let mut schema = generator().into_root_schema_for::<super::config::SuiteConfig>();
    schema.insert("$id".into(), ENGINE_ID.into());
    schema.insert("title".into(), "Suite config (engine.yaml)".into());
    schema.to_value()
}

/// A schema as the checked-in file holds it: pretty JSON and a final newline.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// Schema-only types whose schema is a fixed JSON value:
/// `struct Name = inline|named "schema_name" { …json… };`. `inline` ones are written
/// out where they are used, `named` ones once under `$defs` and referenced there.
macro_rules! fixed_schema {
    (@inline inline) => { true };
    (@inline named) => { false };
    ($($(#[$doc:meta])* $vis:vis struct $name:ident = $kind:ident $schema_name:literal $schema:tt;)+) => {$(
        $(#[$doc])*
        $vis struct $name;

        impl ::schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                fixed_schema!(@inline $kind)
            }
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!($schema)
            }
        }
    )+};
}
pub(crate) use fixed_schema;

/// Schema-only: a value of type `T` as written, or a whole-value template
/// (`"{{ vars.code }}"`) that must render to one. The runtime type stays `T`: the body
/// is rendered first, then deserialized, and a value of the wrong type is reported at
/// its field.
pub struct Templated<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Templated<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Templated_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<T>();
        let template = generator.subschema_for::<WholeTemplate>();
        json_schema!({ "anyOf": [value, template] })
    }
}

fixed_schema! {
    /// A template that is exactly one `{{ expression }}`.
    pub struct WholeTemplate = named "whole_template" {
        "type": "string",
        "pattern": WHOLE_TEMPLATE_PATTERN,
        "description": "A template that is exactly one `{{ expression }}`: it yields a value of any type, checked when rendered.",
        "examples": ["{{ vars.expected_count }}"]
    };

    /// A duration as written: `500ms`, `2s`, `1m30s`, `1h`, or a template yielding one.
    pub struct DurationText = named "duration" {
        "type": "string",
        "pattern": r"^(([0-9]+(\.[0-9]+)?(ms|s|m|h))+|.*\{\{.*\}\}.*)$",
        "description": "A duration: `500ms`, `2s`, `1m30s`, `1h`.",
        "examples": ["2s", "500ms"]
    };

    /// A duration without templates (the `load:` block is not rendered).
    pub struct PlainDuration = named "plain_duration" {
        "type": "string",
        "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        "description": "A duration, not templated: `500ms`, `30s`, `2m`.",
        "examples": ["30s"]
    };

    /// A count: a number, a comparison placeholder (`#gte 1`) or a template.
    pub struct CountText = named "count" {
        "description": "A count: a number, a comparison placeholder (`#gte 1`, `#lt 10`) or a template.",
        "oneOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": r"^(#(gt|gte|lt|lte) [0-9]+(\.[0-9]+)?|.*\{\{.*\}\}.*)$" }
        ],
        "examples": [3, "#gte 1"]
    };

    /// Variables to capture: name → JSONPath.
    pub struct CapturesMap = named "captures" {
        "type": "object",
        "description": "Variables to capture: name → JSONPath into the value (`$.run_id`, `$.items[0].id`).",
        "additionalProperties": { "type": "string", "pattern": "^\\$" },
        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
        "examples": [{ "run_id": "$.run_id" }]
    };

    /// The name of a connection opened by an earlier `connect`.
    pub struct ConnectionRef = named "connection_ref" {
        "type": "string",
        "pattern": r"^([A-Za-z_][A-Za-z0-9_.-]*|.*\{\{.*\}\}.*)$",
        "description": "Name of a connection opened by an earlier `connect` step. May be left out when the scenario has one connection.",
        "examples": ["tab2"]
    };

    /// A name variables and parameters are read by (`{{ name }}`).
    pub struct Identifier = named "identifier" {
        "type": "string",
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        "description": "A name templates read a value by.",
        "examples": ["n"]
    };

    /// A Redis command and its arguments.
    pub struct RedisCommand = named "redis_command" {
        "type": "array",
        "minItems": 1,
        "items": { "type": ["string", "number", "integer"] },
        "description": "A Redis command and its arguments.",
        "examples": [["SET", "flags:{{ ids.alice }}", "beta"]]
    };

    /// Any JSON value (a pattern, a body, a template).
    pub struct AnyValue = inline "any" true;

    /// An HTTP status code.
    pub struct HttpStatus = inline "http_status" { "type": "integer", "minimum": 100, "maximum": 599 };

    /// A query parameter's value: written as text, a number or a boolean.
    pub struct QueryValue = inline "query_value" { "type": ["string", "number", "boolean"] };

    /// HTTP methods of the `http` step.
    pub struct HttpMethod = inline "http_method" {
        "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    };

    /// JWT signing algorithms.
    pub struct JwtAlgorithm = inline "jwt_algorithm" { "enum": ["HS256", "HS384", "HS512", "RS256"] };

    /// Redis key types `assert_redis` checks.
    pub struct RedisKeyType = inline "redis_key_type" {
        "enum": ["string", "hash", "set", "list", "zset", "stream", "none"]
    };

    /// Signals `stop_process` sends.
    pub struct SignalName = inline "signal" { "enum": ["TERM", "KILL", "INT"] };
}

/// `[start, end]` or `[start, end, step]` of a generated sequence, each a number or a
/// template.
pub struct RangeBounds;

impl JsonSchema for RangeBounds {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "range".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let bound = generator.subschema_for::<Templated<i64>>();
        json_schema!({ "type": "array", "minItems": 2, "maxItems": 3, "items": bound })
    }
}

/// `connect.url` may come from a connection profile, so the spec need not write it.
pub fn url_from_profile(schema: &mut Schema) {
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| name != "url");
        if required.is_empty() {
            schema.remove("required");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn schemas_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    /// The checked-in schema equals what the types generate; `SCHEMA_BLESS=1` writes it.
    fn check_file(name: &str, generated: &Value) {
        let path = schemas_dir().join(name);
        let text = to_file_text(generated);
        if std::env::var_os("SCHEMA_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} differs from the schema the types generate; run `SCHEMA_BLESS=1 cargo test -p engine-core schema` and review the diff",
            path.display()
        );
    }

    #[test]
    fn checked_in_spec_schema_is_the_generated_one() {
        check_file("spec.schema.json", &spec_schema());
    }

    #[test]
    fn checked_in_engine_schema_is_the_generated_one() {
        check_file("engine.schema.json", &engine_schema());
    }

    /// Every property of every object, anywhere in the schema, with where it is.
    fn properties<'a>(at: String, node: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, schema) in props {
                        out.push((format!("{at}/properties/{name}"), schema));
                    }
                }
                for (key, child) in map {
                    properties(format!("{at}/{key}"), child, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    properties(format!("{at}/{i}"), child, out);
                }
            }
            _ => {}
        }
    }

    /// A property's own schema, or what its `$ref` points at when it says nothing itself.
    fn resolved<'a>(root: &'a Value, field: &'a Value, key: &str) -> Option<&'a Value> {
        field.get(key).or_else(|| {
            let target = field.get("$ref")?.as_str()?.strip_prefix('#')?;
            root.pointer(target)?.get(key)
        })
    }

    fn assert_documented(schema: &Value) {
        let mut found = Vec::new();
        properties(String::new(), schema, &mut found);
        assert!(found.len() > 50, "only {} properties found", found.len());
        let missing: Vec<String> = found
            .iter()
            .filter_map(|(at, field)| {
                let described = resolved(schema, field, "description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                let exemplified = resolved(schema, field, "examples")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty());
                (!(described && exemplified)).then(|| {
                    format!(
                        "{at}:{}{}",
                        if described { "" } else { " no description" },
                        if exemplified { "" } else { " no example" }
                    )
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "fields without description or example:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn every_spec_field_has_a_description_and_an_example() {
        assert_documented(&spec_schema());
    }

    #[test]
    fn every_config_field_has_a_description_and_an_example() {
        assert_documented(&engine_schema());
    }

    /// The examples the schema gives are themselves valid where they are given.
    #[test]
    fn the_spec_schema_is_valid_draft_2020_12() {
        let schema = spec_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        jsonschema::draft202012::meta::validate(&schema).unwrap();
        jsonschema::draft202012::meta::validate(&engine_schema()).unwrap();
    }
}
