//! Event schemas from an AsyncAPI document (`events.asyncapi`), against a real
//! in-process WebSocket server: frames are validated by their message's payload exactly
//! as by a schemas folder, `require_schemas` included, and the checker knows the
//! document's event types.

mod common;

use common::{start_server, Suite};

/// 2.6, YAML: `hello` and `echo` are sent by the server (subscribe); `say` is the
/// client's (publish), so it is no event type.
const V2_YAML: &str = r##"asyncapi: 2.6.0
info: { title: echo, version: 1.0.0 }
channels:
  /echo:
    subscribe:
      message:
        oneOf:
          - $ref: '#/components/messages/hello'
          - $ref: '#/components/messages/echo'
    publish:
      message: { payload: { properties: { type: { const: say } } } }
components:
  messages:
    hello:
      payload:
        type: object
        required: [type, n]
        properties:
          type: { const: hello }
          n: { type: integer }
    echo:
      payload:
        type: object
        properties:
          type: { const: echo }
          body:
            type: object
            properties:
              at: { $ref: '#/components/schemas/Timestamp' }
  schemas:
    Timestamp: { type: string, format: date-time }
"##;

/// The same server events as 3.0, JSON.
const V3_JSON: &str = r##"{
  "asyncapi": "3.0.0",
  "info": { "title": "echo", "version": "1.0.0" },
  "channels": {
    "echo": {
      "address": "/echo",
      "messages": {
        "hello": { "payload": { "type": "object", "required": ["type", "n"], "properties": { "type": { "const": "hello" }, "n": { "type": "integer" } } } },
        "echo": { "payload": { "$ref": "#/components/schemas/Echo" } },
        "say": { "payload": { "properties": { "type": { "const": "say" } } } }
      }
    }
  },
  "operations": {
    "reply": { "action": "send", "channel": { "$ref": "#/channels/echo" }, "messages": [{ "$ref": "#/channels/echo/messages/hello" }, { "$ref": "#/channels/echo/messages/echo" }] },
    "listen": { "action": "receive", "channel": { "$ref": "#/channels/echo" }, "messages": [{ "$ref": "#/channels/echo/messages/say" }] }
  },
  "components": {
    "schemas": {
      "Echo": { "type": "object", "properties": { "type": { "const": "echo" }, "body": { "type": "object", "properties": { "at": { "type": "string", "format": "date-time" } } } } }
    }
  }
}
"##;

async fn validates_like_a_schemas_folder(document_name: &str, document: &str) {
    let url = start_server().await;
    let suite = Suite::new(
        &url,
        &format!("events: {{ asyncapi: {document_name}, require_schemas: true }}\n"),
    );
    suite.spec(document_name, document);
    common::schema_specs(&suite);
    let outcomes = suite.run().await;
    let by_name = |n: &str| outcomes.iter().find(|o| o.name == n).unwrap();
    by_name("good format").assert_passed();
    let bad = &by_name("bad format").failure;
    assert!(
        bad.contains("at `/body/at`") && bad.contains("date-time"),
        "{bad}"
    );
    assert!(
        bad.contains("violates message `echo` (") && bad.contains(&format!("{document_name}:")),
        "the failure names the AsyncAPI message: {bad}"
    );
    let bad_hello = &by_name("bad hello").failure;
    assert!(bad_hello.contains("at `/n`"), "{bad_hello}");
    let undocumented = &by_name("undocumented").failure;
    assert!(
        undocumented.contains("event type `tick` has no schema (no message in"),
        "{undocumented}"
    );
}

#[tokio::test]
async fn an_asyncapi_2_6_yaml_document_validates_frames() {
    validates_like_a_schemas_folder("api.yaml", V2_YAML).await;
}

#[tokio::test]
async fn an_asyncapi_3_0_json_document_validates_frames() {
    validates_like_a_schemas_folder("api.json", V3_JSON).await;
}

#[tokio::test]
async fn the_checker_knows_the_documents_event_types() {
    let url = start_server().await;
    let suite = Suite::new(
        &url,
        "events: { asyncapi: api.json, require_schemas: true }\n",
    );
    suite.spec("api.json", V3_JSON);
    suite.spec(
        "typo.yaml",
        "name: typo\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { sequence: [hello, { event: ecoh }] }\n  - expect_none: { event: say, during: 10ms }\n",
    );
    let errors = suite.load_errors().join("\n");
    assert!(errors.contains("no event type `ecoh`"), "{errors}");
    assert!(errors.contains("did you mean `echo`?"), "{errors}");
    assert!(
        errors.contains("no event type `say`"),
        "a message the client sends is no event: {errors}"
    );
}

fn config_error(extra_config: &str, files: &[(&str, &str)]) -> String {
    let suite = Suite::new("ws://127.0.0.1:9", extra_config);
    for (name, text) in files {
        suite.spec(name, text);
    }
    suite.spec("x.yaml", "name: x\nsteps: []\n");
    match engine::discover::load_all(&[suite.path()]) {
        Err(diagnostic) => diagnostic.render(false),
        Ok(loaded) => panic!(
            "the config is accepted; problems: {:?}",
            loaded
                .problems
                .iter()
                .map(|d| d.render(false))
                .collect::<Vec<_>>()
        ),
    }
}

#[test]
fn a_broken_document_is_a_located_config_error() {
    let broken = V2_YAML.replace(
        "#/components/schemas/Timestamp",
        "#/components/schemas/Time",
    );
    let error = config_error("events: { asyncapi: api.yaml }\n", &[("api.yaml", &broken)]);
    assert!(
        error.contains("`$ref: #/components/schemas/Time` points at nothing"),
        "{error}"
    );
    assert!(
        error.contains("api.yaml:29:"),
        "located in the document: {error}"
    );
    assert!(error.contains("read for `events.asyncapi`"), "{error}");
}

#[test]
fn a_missing_document_and_two_sources_are_config_errors() {
    let error = config_error("events:\n  asyncapi: nowhere.yaml\n", &[]);
    assert!(error.contains("cannot read"), "{error}");
    assert!(
        error.contains("engine.yaml:"),
        "located in the config: {error}"
    );
    let error = config_error(
        "events:\n  schemas: schemas\n  asyncapi: api.yaml\n",
        &[("api.yaml", V2_YAML)],
    );
    assert!(
        error.contains("two sources of the same event schemas"),
        "{error}"
    );
}

#[test]
fn the_source_can_be_chosen_by_environment() {
    // A path that renders empty is no path: the folder is used.
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        "events:\n  asyncapi: \"{{ env.ENGINE_TEST_NO_SUCH_VAR | default('') }}\"\n  schemas: schemas\n",
    );
    std::fs::create_dir_all(suite.path().join("schemas")).unwrap();
    suite.spec("x.yaml", "name: x\nsteps: []\n");
    let loaded = engine::discover::load_all(&[suite.path()]).expect("an empty path is none");
    assert!(loaded.configs[0].events.asyncapi.is_none());
    assert!(loaded.configs[0].event_catalog.is_none());
    // A path rendered from env names the document.
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        "events:\n  asyncapi: \"{{ 'api' if env.WS_URL else 'nothing' }}.yaml\"\n",
    );
    suite.spec("api.yaml", V2_YAML);
    suite.spec("x.yaml", "name: x\nsteps: []\n");
    let loaded = engine::discover::load_all(&[suite.path()]).expect("the document loads");
    let catalog = loaded.configs[0].event_catalog.clone().expect("a catalog");
    assert_eq!(
        catalog.messages.keys().collect::<Vec<_>>(),
        ["echo", "hello"]
    );
}
