use serde_json::json;

use super::*;

fn fixture(name: &str, type_field: &str) -> EventCatalog {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asyncapi")
        .join(name);
    load(&path, type_field).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn types(catalog: &EventCatalog) -> Vec<&str> {
    catalog.messages.keys().map(String::as_str).collect()
}

fn error(text: &str, type_field: &str) -> Diagnostic {
    parse(&SourceFile::new("api.yaml", text), type_field).expect_err("the document is refused")
}

fn line(diagnostic: &Diagnostic) -> Option<usize> {
    diagnostic.span.map(|s| s.line)
}

#[test]
fn v2_yaml_takes_subscribe_messages_with_one_of_and_channel_refs() {
    let catalog = fixture("v2.yaml", "kind");
    // `say` is published by the client: not an event.
    assert_eq!(types(&catalog), ["echo", "echo_again", "hello", "tick"]);
    let hello = &catalog.messages["hello"];
    assert_eq!(hello.name, "Hello");
    assert_eq!(hello.pointer, "/components/messages/Hello");
    assert_eq!(
        hello.schema["properties"]["at"],
        json!({ "type": "string", "format": "date-time" }),
        "the local $ref is inlined"
    );
    assert_eq!(
        catalog.messages["tick"].pointer,
        "/components/channels/ticks/subscribe/message"
    );
    assert_eq!(
        catalog.messages["echo"].name, "Echo",
        "the key names a message without name"
    );
}

#[test]
fn recursive_refs_go_to_defs() {
    let catalog = fixture("v2.yaml", "kind");
    let echo = &catalog.messages["echo_again"].schema;
    let node = &echo["properties"]["body"];
    assert_eq!(node["properties"]["text"], json!({ "type": "string" }));
    assert_eq!(
        node["properties"]["children"]["items"],
        json!({ "$ref": "#/$defs/components~1schemas~1Node" })
    );
    assert_eq!(
        echo["$defs"]["components/schemas/Node"]["properties"]["children"]["items"],
        json!({ "$ref": "#/$defs/components~1schemas~1Node" })
    );
    let validator = jsonschema::validator_for(echo).expect("the resolved schema compiles");
    let deep =
        json!({ "kind": "echo", "body": { "children": [{ "children": [{ "text": "x" }] }] } });
    assert!(validator.is_valid(&deep));
    let wrong =
        json!({ "kind": "echo", "body": { "children": [{ "children": [{ "text": 1 }] }] } });
    assert!(
        !validator.is_valid(&wrong),
        "the recursion is checked at depth"
    );
}

#[test]
fn v2_json_reads_a_single_message_and_x_event_type() {
    let catalog = fixture("v2.json", "type");
    assert_eq!(types(&catalog), ["counted"]);
    assert_eq!(catalog.messages["counted"].name, "counted");
    assert_eq!(catalog.messages["counted"].line, 7);
}

#[test]
fn v3_yaml_takes_send_operations_only() {
    let catalog = fixture("v3.yaml", "kind");
    // `greet` lists hello and echo; `tick` lists none (all of its channel); `say` is received.
    assert_eq!(types(&catalog), ["echo", "hello", "tick"]);
    assert_eq!(
        catalog.messages["hello"].pointer,
        "/components/messages/Hello"
    );
    assert_eq!(
        catalog.messages["echo"].schema["allOf"][0],
        json!({ "type": "object", "properties": { "kind": { "const": "echo" } } }),
        "a type pinned inside allOf is found"
    );
    assert_eq!(
        catalog.messages["tick"].pointer,
        "/channels/ticks/messages/tick"
    );
}

#[test]
fn v3_json_reads_a_multi_format_payload() {
    let catalog = fixture("v3.json", "type");
    assert_eq!(types(&catalog), ["counted"]);
    assert_eq!(
        catalog.messages["counted"].schema["properties"]["count"],
        json!({ "type": "integer", "minimum": 0 })
    );
}

#[test]
fn a_dotted_type_field_follows_nested_properties() {
    let doc = "asyncapi: 3.0.0\nchannels:\n  c:\n    messages:\n      m:\n        payload:\n          properties:\n            meta:\n              properties: { kind: { const: nested } }\noperations:\n  o: { action: send, channel: { $ref: '#/channels/c' } }\n";
    let catalog = parse(&SourceFile::new("api.yaml", doc), "meta.kind").unwrap();
    assert_eq!(types(&catalog), ["nested"]);
}

#[test]
fn ref_siblings_are_kept_beside_the_target() {
    let doc = "asyncapi: 3.0.0\nchannels:\n  c:\n    messages:\n      m:\n        payload:\n          $ref: '#/components/schemas/Base'\n          required: [type]\noperations:\n  o: { action: send, channel: { $ref: '#/channels/c' } }\ncomponents:\n  schemas:\n    Base: { properties: { type: { const: t } } }\n";
    let catalog = parse(&SourceFile::new("api.yaml", doc), "type").unwrap();
    assert_eq!(
        catalog.messages["t"].schema,
        json!({ "required": ["type"], "allOf": [{ "properties": { "type": { "const": "t" } } }] })
    );
}

#[test]
fn data_keywords_are_not_resolved() {
    let doc = "asyncapi: 2.6.0\nchannels:\n  c:\n    subscribe:\n      message:\n        payload:\n          properties:\n            type: { const: t }\n            enum: { const: { $ref: '#/nowhere' } }\n";
    let catalog = parse(&SourceFile::new("api.yaml", doc), "type").unwrap();
    assert_eq!(
        catalog.messages["t"].schema["properties"]["enum"],
        json!({ "const": { "$ref": "#/nowhere" } }),
        "a property named `enum` is a schema; a `const` is data"
    );
}

const MISSING_REF: &str = "asyncapi: 2.6.0
channels:
  c:
    subscribe:
      message:
        payload:
          properties:
            type: { const: t }
            at: { $ref: '#/components/schemas/Missing' }
";

#[test]
fn a_ref_to_nothing_is_located() {
    let e = error(MISSING_REF, "type");
    assert!(
        e.message
            .contains("`$ref: #/components/schemas/Missing` points at nothing"),
        "{e}"
    );
    assert_eq!(line(&e), Some(9), "{e}");
}

#[test]
fn an_external_ref_is_refused_with_a_hint() {
    let e = error(
        &MISSING_REF.replace("#/components/schemas/Missing", "common.yaml#/Time"),
        "type",
    );
    assert!(e.message.contains("points outside this document"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or_default()
            .contains("components.schemas"),
        "{e}"
    );
    assert_eq!(line(&e), Some(9), "{e}");
}

#[test]
fn a_message_without_event_type_is_located() {
    let doc = "asyncapi: 3.0.0\nchannels:\n  c:\n    messages:\n      untyped:\n        payload: { type: object }\noperations:\n  o: { action: send, channel: { $ref: '#/channels/c' } }\n";
    let e = error(doc, "type");
    assert!(
        e.message.contains("message `untyped` has no event type"),
        "{e}"
    );
    assert!(
        e.hint
            .as_deref()
            .unwrap_or_default()
            .contains("x-event-type"),
        "{e}"
    );
    assert_eq!(line(&e), Some(5), "the message's key: {e}");
}

#[test]
fn versions_other_than_2_6_and_3_0_are_refused() {
    for (doc, expected) in [
        (
            "asyncapi: 2.5.0\nchannels: {}\n",
            "version `2.5.0` is not supported",
        ),
        (
            "asyncapi: 3.1.0\nchannels: {}\n",
            "version `3.1.0` is not supported",
        ),
        ("openapi: 3.0.0\npaths: {}\n", "not an AsyncAPI document"),
        ("[1, 2]\n", "not an AsyncAPI document"),
    ] {
        let e = error(doc, "type");
        assert!(e.message.contains(expected), "{doc}: {e}");
        assert!(e.hint.is_some(), "{e}");
    }
}

#[test]
fn two_messages_with_one_type_and_different_payloads_are_refused() {
    let doc = "asyncapi: 2.6.0\nchannels:\n  a:\n    subscribe:\n      message: { name: A, payload: { properties: { type: { const: t } } } }\n  b:\n    subscribe:\n      message: { name: B, payload: { properties: { type: { const: t }, n: { type: integer } } } }\n";
    let e = error(doc, "type");
    assert!(
        e.message
            .contains("event type `t` is described by two messages"),
        "{e}"
    );
    assert_eq!(line(&e), Some(8), "{e}");
}

#[test]
fn non_json_schema_formats_and_empty_documents_are_refused() {
    let avro = "asyncapi: 2.6.0\nchannels:\n  a:\n    subscribe:\n      message:\n        schemaFormat: application/vnd.apache.avro;version=1.9.0\n        payload: { type: record }\n";
    let e = error(avro, "type");
    assert!(
        e.message
            .contains("schema format `application/vnd.apache.avro"),
        "{e}"
    );
    let receive_only = "asyncapi: 3.0.0\nchannels:\n  c: { messages: { m: { payload: {} } } }\noperations:\n  o: { action: receive, channel: { $ref: '#/channels/c' } }\n";
    let e = error(receive_only, "type");
    assert!(
        e.message
            .contains("describes no message the application sends"),
        "{e}"
    );
    assert!(
        e.hint
            .as_deref()
            .unwrap_or_default()
            .contains("action: send"),
        "{e}"
    );
}

#[test]
fn a_bad_action_and_a_ref_loop_are_located() {
    let doc = "asyncapi: 3.0.0\nchannels: {}\noperations:\n  o:\n    action: publish\n";
    let e = error(doc, "type");
    assert!(
        e.message
            .contains("operations.o.action` must be `send` or `receive`"),
        "{e}"
    );
    assert_eq!(line(&e), Some(5), "{e}");
    let looped = "asyncapi: 2.6.0\nchannels:\n  a: { $ref: '#/channels/b' }\n  b: { $ref: '#/channels/a' }\n";
    let e = error(looped, "type");
    assert!(e.message.contains("more than 32 references"), "{e}");
}
