//! The suite config `engine.yaml`, found by walking up from a spec: environment
//! defaults, where an event's type lives, event schemas, ID kinds, JWT settings,
//! timeouts, service URLs and `serve` entries. Everything application-specific lives
//! here or in specs, never in engine code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::asyncapi::{self, EventCatalog};
use super::duration::serde_duration;
use super::schema::{JwtAlgorithm, PlainDuration};
use super::yaml;
use crate::diagnostic::{did_you_mean, Diagnostic, SourceFile};

pub const CONFIG_FILE: &str = "engine.yaml";

/// The suite config, `engine.yaml`: found by walking up from each spec. Everything
/// application-specific lives here or in specs: the engine knows nothing of any one
/// backend.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// Defaults for `{{ env.X }}`; the process environment wins. Values may refer to
    /// other variables (`{{ env.PG_PORT }}`).
    #[serde(default)]
    #[schemars(example = serde_json::json!({"WS_URL": "ws://127.0.0.1:8787", "PG_PORT": "5432", "DATABASE_URL": "postgres://postgres@127.0.0.1:{{ env.PG_PORT }}/test"}))]
    pub env: BTreeMap<String, String>,
    /// Env vars whose values never appear in output or reports.
    #[serde(default)]
    #[schemars(example = serde_json::json!(["JWT_SECRET", "API_TOKEN"]))]
    pub secrets: Vec<String>,
    /// Default `--jobs`: scenarios run at once (else the CPU count).
    #[schemars(range(min = 1), example = 8)]
    pub jobs: Option<usize>,
    /// Default deadlines.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"scenario": "60s", "step": "5s", "teardown": "15s"}))]
    pub timeouts: Timeouts,
    /// How received frames are read: where their type is, and their schemas.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"type_field": "type", "schemas": "../schemas/events", "require_schemas": true}))]
    pub events: EventsConfig,
    /// ID kinds specs declare IDs of: a prefix and a format.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"user": {"prefix": "usr_", "format": "uuid"}}))]
    pub ids: BTreeMap<String, IdKindSpec>,
    /// How tokens are minted by default.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"jwt": {"secret": "{{ env.JWT_SECRET }}", "alg": "HS256"}}))]
    pub auth: AuthConfig,
    /// Postgres URLs by name (templated); steps choose with `database:`, default
    /// `default`.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"default": "{{ env.DATABASE_URL }}"}))]
    pub databases: BTreeMap<String, String>,
    /// Redis URLs by name (templated); steps choose with `server:`, default `default`.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"default": "{{ env.REDIS_URL }}"}))]
    pub redis: BTreeMap<String, String>,
    /// Services for the run, in order: reused when `ready` already answers, else
    /// started and stopped after the run.
    #[serde(default)]
    #[schemars(example = serde_json::json!([{"name": "backend", "command": "cargo run -p backend", "ready": "http://127.0.0.1:8787/healthz", "timeout": "5m"}]))]
    pub serve: Vec<ServeSpec>,
    /// Folders of reusable steps, relative to this file. Each `*.yaml` there defines one
    /// step (`step: name`, `params`, `steps`, `returns`, `cleanup`) that specs call by
    /// its name; these files are not scenarios.
    #[serde(default)]
    #[schemars(example = serde_json::json!(["_lib"]))]
    pub library: Vec<PathBuf>,
    /// Files and folders, relative to this file, whose YAML is not specs (CI workflows,
    /// Kubernetes manifests, another tool's config): runs and checks pass over them,
    /// even when named on the command line.
    #[serde(default)]
    #[schemars(example = serde_json::json!(["ci", "k8s-job.yaml"]))]
    pub ignore: Vec<PathBuf>,
    /// Connection profiles: how a connection for an identity is opened, authenticated
    /// and awaited until ready. Any `connect` field, plus `ready` (an event type or
    /// `{event, match, capture}`); templates read `{{ identity }}`. A spec opens one
    /// with `connect: { name: tab1, profile: user, identity: "{{ ids.alice }}" }`;
    /// fields given in the step override the profile's. `default` applies to a
    /// `connect` with neither `url` nor `profile`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::model::ConnectStep>")]
    #[schemars(example = serde_json::json!({"default": {"url": "{{ env.WS_URL }}/ws", "authenticate": {"jwt": {"claims": {"sub": "{{ identity }}"}}}, "ready": {"event": "connection_established", "capture": {"connection_id": "$.connection_id"}}}}))]
    pub profiles: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Where this config was read from (the folder relative paths resolve against).
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The event types and payload schemas of `events.asyncapi`, read with the config.
    #[serde(skip)]
    pub event_catalog: Option<Arc<EventCatalog>>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            env: BTreeMap::new(),
            secrets: Vec::new(),
            jobs: None,
            timeouts: Timeouts::default(),
            events: EventsConfig::default(),
            ids: BTreeMap::new(),
            auth: AuthConfig::default(),
            databases: BTreeMap::new(),
            redis: BTreeMap::new(),
            serve: Vec::new(),
            library: Vec::new(),
            ignore: Vec::new(),
            profiles: BTreeMap::new(),
            dir: PathBuf::from("."),
            path: None,
            event_catalog: None,
        }
    }
}

/// Default deadlines.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Whole-scenario deadline when a spec gives none (default 60s).
    #[serde(
        default = "default_scenario_timeout",
        deserialize_with = "serde_duration::deserialize"
    )]
    #[schemars(with = "PlainDuration", example = &"60s")]
    pub scenario: Duration,
    /// Default `within` of waits: expect, connect, http (default 5s).
    #[serde(
        default = "default_step_timeout",
        deserialize_with = "serde_duration::deserialize"
    )]
    #[schemars(with = "PlainDuration", example = &"5s")]
    pub step: Duration,
    /// Deadline for a scenario's teardown (default 15s).
    #[serde(
        default = "default_teardown_timeout",
        deserialize_with = "serde_duration::deserialize"
    )]
    #[schemars(with = "PlainDuration", example = &"15s")]
    pub teardown: Duration,
}

fn default_scenario_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_step_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_teardown_timeout() -> Duration {
    Duration::from_secs(15)
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            scenario: default_scenario_timeout(),
            step: default_step_timeout(),
            teardown: default_teardown_timeout(),
        }
    }
}

/// How received frames are read.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Dotted path of the event type in each JSON frame (default `type`).
    #[serde(default = "default_type_field")]
    #[schemars(example = &"type")]
    pub type_field: String,
    /// Folder of `<type>.json` JSON Schemas, relative to this file; every received
    /// event of a type with a schema is validated. May use `{{ env.X }}`; a value that
    /// renders empty means none.
    #[schemars(example = &"../schemas/events")]
    pub schemas: Option<PathBuf>,
    /// AsyncAPI document (2.6 or 3.0, YAML or JSON), relative to this file: the payload
    /// schemas of the messages the application sends, keyed by their event type (the
    /// payload's `const`/`enum` of the type field, or the message's `x-event-type`).
    /// Instead of `schemas`. May use `{{ env.X }}`; a value that renders empty means none.
    #[schemars(example = &"../schemas/asyncapi.yaml")]
    pub asyncapi: Option<PathBuf>,
    /// An event whose type has no schema fails the step; an expectation naming such a
    /// type is a spec error.
    #[serde(default)]
    #[schemars(example = true)]
    pub require_schemas: bool,
}

fn default_type_field() -> String {
    "type".into()
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            type_field: default_type_field(),
            schemas: None,
            asyncapi: None,
            require_schemas: false,
        }
    }
}

/// How values of one ID kind look.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdKindSpec {
    /// Text before every minted value.
    #[serde(default)]
    #[schemars(example = &"usr_")]
    pub prefix: String,
    /// How the value after the prefix is made (default `uuid`).
    #[serde(default)]
    #[schemars(example = &"uuid")]
    pub format: IdFormat,
}

/// The format of minted IDs.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    #[default]
    Uuid,
    /// UUID without dashes.
    Hex,
    Ulid,
    /// A random positive 53-bit integer (safe in JSON numbers), rendered as text.
    Int,
}

/// How tokens are minted by default.
#[derive(Debug, Clone, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Defaults of every `jwt:` a spec mints.
    #[schemars(example = serde_json::json!({"secret": "{{ env.JWT_SECRET }}", "alg": "HS256", "expires_in": "5m"}))]
    pub jwt: Option<JwtDefaults>,
}

/// Defaults of minted JWTs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtDefaults {
    /// HMAC secret, templated (`{{ env.JWT_SECRET }}`); treated as a secret, never shown.
    #[schemars(example = &"{{ env.JWT_SECRET }}")]
    pub secret: Option<String>,
    /// Signing algorithm (default HS256).
    #[serde(default = "default_alg")]
    #[schemars(with = "JwtAlgorithm", example = &"HS256")]
    pub alg: String,
    /// PEM RSA private key for RS256, relative to this file.
    #[schemars(example = &"keys/private.pem")]
    pub private_key_file: Option<PathBuf>,
    /// Default lifetime when a spec gives no `expires_in` (default 5m).
    #[serde(
        default = "default_expiry",
        deserialize_with = "serde_duration::deserialize"
    )]
    #[schemars(with = "PlainDuration", example = &"5m")]
    pub expires_in: Duration,
    /// Claims added to every minted token (a spec's claims win).
    #[serde(default)]
    #[schemars(example = serde_json::json!({"iss": "spec-suite"}))]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

fn default_alg() -> String {
    "HS256".into()
}
fn default_expiry() -> Duration {
    Duration::from_secs(300)
}

/// A service the run needs: reused when `ready` already answers, else started.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    /// The service's name, in progress lines and failures.
    #[schemars(example = &"backend")]
    pub name: String,
    /// Shell command; `{{ tmpdir }}` is a fresh folder removed after the run.
    #[schemars(example = &"cargo run -p backend")]
    pub command: String,
    /// Readiness check: `http(s)://…` (2xx), `tcp://host:port`, `postgres://…`,
    /// `redis://…`.
    #[schemars(example = &"http://127.0.0.1:8787/healthz")]
    pub ready: String,
    /// Extra environment variables (templated).
    #[serde(default)]
    #[schemars(example = serde_json::json!({"BIND": "127.0.0.1:8787"}))]
    pub env: BTreeMap<String, String>,
    /// Working folder, relative to this file.
    #[schemars(example = &"..")]
    pub cwd: Option<PathBuf>,
    /// Readiness deadline after starting (default 120s).
    #[serde(
        default = "default_serve_timeout",
        deserialize_with = "serde_duration::deserialize"
    )]
    #[schemars(with = "PlainDuration", example = &"5m")]
    pub timeout: Duration,
}

fn default_serve_timeout() -> Duration {
    Duration::from_secs(120)
}

impl SuiteConfig {
    /// The nearest `engine.yaml` at or above `start` (a file or folder), or defaults.
    pub fn discover(start: &Path) -> Result<Arc<SuiteConfig>, Diagnostic> {
        // A bare file name's parent is the empty path: start from the current folder.
        let start = if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            start
        };
        let absolute = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = if absolute.is_dir() {
            Some(absolute.as_path())
        } else {
            absolute.parent()
        };
        while let Some(d) = dir {
            let candidate = d.join(CONFIG_FILE);
            if candidate.is_file() {
                return Self::load(&candidate).map(Arc::new);
            }
            dir = d.parent();
        }
        Ok(Arc::new(SuiteConfig::default()))
    }

    pub fn load(path: &Path) -> Result<SuiteConfig, Diagnostic> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", path.display())))?;
        let source = SourceFile::new(path, text);
        Self::parse(&source)
    }

    pub fn parse(source: &Arc<SourceFile>) -> Result<SuiteConfig, Diagnostic> {
        let node = yaml::parse(&source.text).map_err(|e| e.diagnostic(source))?;
        let (value, index) = yaml::to_json(node);
        let mut config: SuiteConfig = serde_json::from_value(value.clone())
            .map_err(|e| config_error(source, &value, &index, &e.to_string()))?;
        let path = &source.path;
        config.dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config.path = Some(path.clone());
        config.read_event_sources(source, &index)?;
        Ok(config)
    }

    /// Render the templated `events.schemas` / `events.asyncapi` paths and read the
    /// AsyncAPI document, so that its problems are reported before anything runs.
    fn read_event_sources(
        &mut self,
        source: &Arc<SourceFile>,
        index: &yaml::SpanIndex,
    ) -> Result<(), Diagnostic> {
        let templated = |path: &Option<PathBuf>| {
            path.as_ref()
                .and_then(|p| p.to_str())
                .is_some_and(crate::template::is_template)
        };
        // The environment (the process's, each default rendered) only for a path that
        // reads it.
        let env = if templated(&self.events.schemas) || templated(&self.events.asyncapi) {
            minijinja::Value::from_serialize(serde_json::json!({ "env": self.env_values() }))
        } else {
            minijinja::Value::UNDEFINED
        };
        for (key, path) in [
            ("schemas", &mut self.events.schemas),
            ("asyncapi", &mut self.events.asyncapi),
        ] {
            render_path(path, &env).map_err(|message| {
                Diagnostic::new(format!("events.{key}: {message}"))
                    .at(source, index.lookup(&format!("/events/{key}")))
            })?;
        }
        let Some(document) = &self.events.asyncapi else {
            return Ok(());
        };
        if self.events.schemas.is_some() {
            return Err(Diagnostic::new(
                "events: `schemas` and `asyncapi` are two sources of the same event schemas; give one",
            )
            .at(source, index.key("/events/asyncapi")));
        }
        let file = self.resolve(document);
        let catalog = asyncapi::load(&file, &self.events.type_field).map_err(|diagnostic| {
            if diagnostic.source.is_some() {
                diagnostic.note(format!(
                    "read for `events.asyncapi` in {}",
                    source.path.display()
                ))
            } else {
                diagnostic
                    .at(source, index.lookup("/events/asyncapi"))
                    .hint(format!(
                        "paths in {} are relative to its folder",
                        source.path.display()
                    ))
            }
        })?;
        self.event_catalog = Some(Arc::new(catalog));
        Ok(())
    }

    /// The config as messages name it: its file, or "the default config" for a suite
    /// without one.
    pub fn shown_name(&self) -> String {
        self.path
            .as_ref()
            .map_or("the default config".into(), |p| p.display().to_string())
    }

    /// Whether `ignore` lists this file (canonical) or a folder holding it.
    pub fn ignores(&self, canonical: &Path) -> bool {
        self.ignore.iter().any(|listed| {
            std::fs::canonicalize(self.resolve(listed))
                .is_ok_and(|listed| canonical.starts_with(listed))
        })
    }

    /// Resolve a path written in the config against the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// Event types that have a schema (`<type>.json` in `events.schemas`, or a message
    /// of `events.asyncapi`), if configured.
    pub fn schema_event_types(&self) -> Option<std::collections::BTreeSet<String>> {
        if let Some(catalog) = &self.event_catalog {
            return Some(catalog.messages.keys().cloned().collect());
        }
        let dir = self.resolve(self.events.schemas.as_ref()?);
        let entries = std::fs::read_dir(dir).ok()?;
        Some(
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect(),
        )
    }

    /// `{{ env.X }}` values: config defaults overlaid by the process environment.
    ///
    /// Defaults may refer to other variables (`DATABASE_URL:
    /// "postgres://…:{{ env.PG_PORT }}/test"`), so that overriding one variable moves
    /// everything built on it. A default that cannot be rendered stays as written.
    pub fn env_values(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.extend(std::env::vars());
        let overridden: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        // Two passes settle defaults that refer to other templated defaults.
        for _ in 0..2 {
            let ctx = minijinja::Value::from_serialize(serde_json::json!({ "env": &env }));
            for (key, raw) in &self.env {
                if overridden.contains(key) || !crate::template::is_template(raw) {
                    continue;
                }
                if let Ok(serde_json::Value::String(value)) = crate::template::render_str(raw, &ctx)
                {
                    env.insert(key.clone(), value);
                }
            }
        }
        env
    }
}

/// A templated path rendered with `env`; one that renders empty is no path.
fn render_path(path: &mut Option<PathBuf>, env: &minijinja::Value) -> Result<(), String> {
    let Some(text) = path.as_ref().and_then(|p| p.to_str()) else {
        return Ok(());
    };
    if !crate::template::is_template(text) {
        return Ok(());
    }
    match crate::template::render_str(text, env).map_err(|e| e.to_string())? {
        serde_json::Value::String(rendered) if rendered.trim().is_empty() => *path = None,
        serde_json::Value::String(rendered) => *path = Some(PathBuf::from(rendered.trim())),
        other => return Err(format!("`{text}` renders to {other}, not a path")),
    }
    Ok(())
}

/// serde's messages have no position; find the key it names to point at it.
fn config_error(
    source: &Arc<SourceFile>,
    value: &serde_json::Value,
    index: &yaml::SpanIndex,
    message: &str,
) -> Diagnostic {
    let mut diagnostic =
        Diagnostic::new(format!("invalid suite config: {message}")).in_file(source);
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if let Some(pointer) = find_key(value, field, String::new()) {
            diagnostic = diagnostic.at(source, index.key(&pointer));
        }
        // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`").
        let expected: Vec<&str> = message
            .split("expected ")
            .nth(1)
            .map(|list| {
                list.split(['`', ',', ' '])
                    .filter(|s| !s.is_empty() && *s != "or" && *s != "one" && *s != "of")
                    .collect()
            })
            .unwrap_or_default();
        if let Some(hint) = did_you_mean(field, expected.iter().copied()) {
            diagnostic = diagnostic.hint(hint);
        }
    } else if let Some(text) = message
        .strip_prefix('`')
        .and_then(|rest| rest.split('`').next())
    {
        // A value's own error ("`99999h` is too long"): point at that value.
        if let Some(pointer) = find_string(value, text, String::new()) {
            diagnostic = diagnostic.at(source, index.lookup(&pointer));
        }
    }
    diagnostic
}

fn find_string(value: &serde_json::Value, text: &str, pointer: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s == text => Some(pointer),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            find_string(v, text, format!("{pointer}/{}", yaml::pointer_escape(k)))
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_string(v, text, format!("{pointer}/{i}"))),
        _ => None,
    }
}

fn find_key(value: &serde_json::Value, key: &str, pointer: String) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = format!("{pointer}/{}", yaml::pointer_escape(k));
            if k == key {
                Some(child)
            } else {
                find_key(v, key, child)
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_key(v, key, format!("{pointer}/{i}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let source = SourceFile::new(
            "/x/engine.yaml",
            "env: {WS_URL: 'ws://a'}\nevents: {type_field: kind, schemas: ev}\nids:\n  user: {prefix: usr_, format: ulid}\ntimeouts: {step: 2s}\n",
        );
        let config = SuiteConfig::parse(&source).unwrap();
        assert_eq!(config.events.type_field, "kind");
        assert_eq!(config.ids["user"].format, IdFormat::Ulid);
        assert_eq!(config.timeouts.step, Duration::from_secs(2));
        assert_eq!(config.resolve(Path::new("ev")), PathBuf::from("/x/ev"));
    }

    #[test]
    fn env_defaults_can_build_on_each_other() {
        let source = SourceFile::new(
            "engine.yaml",
            "env:\n  ENGINE_TEST_URL: 'http://{{ env.ENGINE_TEST_HOST }}:{{ env.ENGINE_TEST_PORT }}'\n  ENGINE_TEST_HOST: '{{ env.ENGINE_TEST_IP }}'\n  ENGINE_TEST_IP: 127.0.0.1\n  ENGINE_TEST_PORT: '80'\n",
        );
        let env = SuiteConfig::parse(&source).unwrap().env_values();
        assert_eq!(env["ENGINE_TEST_URL"], "http://127.0.0.1:80");
    }

    #[test]
    fn durations_out_of_range_are_located() {
        let source = SourceFile::new(
            "engine.yaml",
            "env: {}\ntimeouts:\n  step: 99999999999999999999h\n",
        );
        let err = SuiteConfig::parse(&source).unwrap_err();
        assert!(err.message.contains("is too long"), "{err}");
        assert_eq!(err.span.map(|s| (s.line, s.col)), Some((3, 9)), "{err}");
    }

    #[test]
    fn unknown_keys_point_at_the_key_with_a_suggestion() {
        let source = SourceFile::new("engine.yaml", "env: {}\nevents:\n  type_feld: kind\n");
        let err = SuiteConfig::parse(&source).unwrap_err();
        assert_eq!(err.span.map(|s| s.line), Some(3));
        assert_eq!(
            err.hint.as_deref(),
            Some("did you mean `type_field`?"),
            "{err}"
        );
    }
}
