//! The reference backend's event schemas exist twice: one file per event in
//! `schemas/events/` and the AsyncAPI document `schemas/asyncapi.yaml`. They must
//! describe the same events with the same schemas, so the suite passes with either
//! (`EVENT_SCHEMAS=asyncapi` in specs/engine.yaml).
//!
//! Equal, not merely equivalent: after the document's `$ref`s are resolved, each
//! message's payload is the file's schema without `$schema` and `$id`. Those two name the
//! file and its dialect (2020-12), which is also the dialect the engine compiles a
//! payload without `$schema` in; they constrain nothing.

use std::collections::BTreeSet;
use std::path::Path;

use engine::spec::asyncapi;
use serde_json::Value;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn asyncapi_yaml_and_the_event_schema_folder_agree() {
    let catalog = asyncapi::load(&repo().join("schemas/asyncapi.yaml"), "type")
        .unwrap_or_else(|e| panic!("{}", e.render(false)));
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("schemas/events")).unwrap() {
        let path = entry.unwrap().path();
        let event_type = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let object = schema.as_object_mut().unwrap();
        assert_eq!(
            object.remove("$schema"),
            Some(Value::from(DIALECT)),
            "{}: the engine's default dialect",
            path.display()
        );
        object.remove("$id");
        let message = catalog
            .messages
            .get(&event_type)
            .unwrap_or_else(|| panic!("schemas/asyncapi.yaml has no message for `{event_type}`"));
        assert_eq!(
            message.schema,
            schema,
            "{event_type}: {} and {} differ",
            message.describe(&catalog.path),
            path.display()
        );
        files.insert(event_type);
    }
    let documented: BTreeSet<String> = catalog.messages.keys().cloned().collect();
    assert_eq!(
        documented, files,
        "the document's event types are the folder's files"
    );
    assert!(files.len() >= 12, "{files:?}");
}
