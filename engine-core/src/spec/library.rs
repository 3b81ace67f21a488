//! Reusable steps: named, parametrized groups of steps in their own files, found
//! through the suite config's `library:` folders and called from any spec (or from
//! each other) under their own name. A library step declares its parameters, what it
//! returns, and the cleanup that undoes what it created; cleanup is registered when a
//! call runs and executed in reverse order at teardown.
//!
//! ```yaml
//! step: open_tab
//! params: { name: string, user: string, client: { type: string, default: spec } }
//! steps:
//!   - connect: { name: "{{ name }}", identity: "{{ user }}" }
//! returns: { connection_id: "{{ vars.conn }}" }
//! cleanup:
//!   - sql: "DELETE FROM connections WHERE id = $1"
//!     params: ["{{ vars.conn }}"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::SuiteConfig;
use super::load::{self, Resolved, StepResolver};
use super::model::{Action, Step};
use super::yaml::{self, SpanIndex};
use crate::diagnostic::{Diagnostic, SourceFile};

/// One library step, parsed and checked.
#[derive(Debug)]
pub struct LibraryStep {
    pub name: String,
    pub source: Arc<SourceFile>,
    pub description: Option<String>,
    /// In declaration order.
    pub params: Vec<Param>,
    pub steps: Vec<Step>,
    /// Name → template, rendered in the step's own scope when its steps have run.
    pub returns: Map<String, Value>,
    pub cleanup: Vec<Action>,
    /// Where every value of the file is, for failures in a step's fields at run time.
    pub index: Arc<SpanIndex>,
}

impl LibraryStep {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// What the checker knows of the parameters in one call with these arguments
    /// (else the defaults); templates in them read the caller's `outer` bindings.
    pub fn bindings(&self, args: &Value, outer: &Bindings) -> Bindings {
        self.params
            .iter()
            .map(|p| {
                let value = args.get(&p.name).or(p.default.as_ref());
                let literal = value
                    .and_then(Value::as_str)
                    .and_then(|v| literal(v, outer));
                (p.name.clone(), literal)
            })
            .collect()
    }
}

/// Parameter → its text in a call, when the checker can tell it before anything runs
/// (`None`: only known at run time).
pub type Bindings = BTreeMap<String, Option<String>>;

/// A text as it will be at run time, if the checker can tell: a literal, or
/// `{{ param }}` bound to one.
pub fn literal(text: &str, bindings: &Bindings) -> Option<String> {
    if !crate::template::is_template(text) {
        return Some(text.to_string());
    }
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    bindings.get(inner).cloned().flatten()
}

/// A declared parameter: `name: string`, or `name: {type, default, description}`.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    /// A parameter without a default is required.
    pub default: Option<Value>,
    pub description: Option<String>,
}

/// What a parameter's value must be once rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    #[default]
    Any,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Object => "object",
            ParamType::Array => "array",
            ParamType::Any => "any",
        }
    }

    /// Does `value` have this type? Integers are numbers too.
    pub fn admits(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Object => value.is_object(),
            ParamType::Array => value.is_array(),
            ParamType::Any => true,
        }
    }
}

/// A library file as written: the schema of library files is generated from it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "A reusable step: parameters, steps, returned values, and the cleanup that \
        undoes what it created (registered when a call runs; run in reverse order at teardown).",
    extend("anyOf" = [{"required": ["steps"]}, {"required": ["cleanup"]}])
)]
pub struct LibraryDocument {
    /// The name specs call it by, as a step kind.
    #[schemars(regex(pattern = "^[a-z][a-z0-9_]*$"), example = &"open_tab")]
    pub step: String,
    /// What the step does, shown in `engine check` hints and reports.
    #[schemars(example = &"Open a tab for a user and wait until the server says it is ready")]
    pub description: Option<String>,
    /// Parameters: `name: type` or `name: {type, default, description}`; types: string,
    /// integer, number, boolean, object, array, any. Without a default, a parameter is
    /// required. Read in templates by name: `{{ user }}`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, ParamDeclaration>>", extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
    #[schemars(example = serde_json::json!({"name": "string", "user": {"type": "string", "description": "the user's ID"}, "client": {"type": "string", "default": "spec-suite"}}))]
    pub params: Map<String, Value>,
    /// The steps it runs, in order, in its own scope.
    #[serde(default)]
    #[schemars(with = "Option<Vec<super::document::StepEntry>>")]
    #[schemars(example = serde_json::json!([{"connect": {"name": "{{ name }}", "identity": "{{ user }}"}}]))]
    pub steps: Vec<Value>,
    /// Values handed back to the caller, rendered after the steps: `vars.<name>` (or
    /// `vars.<as>.<name>` when the call says `as:`).
    #[serde(default)]
    #[schemars(example = serde_json::json!({"connection_id": "{{ vars.conn }}"}))]
    pub returns: Map<String, Value>,
    /// Actions that undo what the step created, run at teardown in reverse order of
    /// calls, also after failure, timeout or interruption. An action reading a value
    /// the call never produced is skipped.
    #[serde(default)]
    #[schemars(with = "Option<Vec<super::model::ActionBody>>")]
    #[schemars(example = serde_json::json!([{"redis": ["DEL", "session:{{ user }}"]}]))]
    pub cleanup: Vec<Value>,
}

/// A parameter as declared: its type alone, or `{type, default, description}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamDeclaration {
    Type(ParamType),
    Full {
        /// What the value must be once rendered (default `any`).
        #[serde(default, rename = "type")]
        #[schemars(example = &"string")]
        kind: ParamType,
        /// The value when the call leaves the parameter out (then it is optional).
        #[schemars(example = &"spec-suite")]
        default: Option<Value>,
        /// What the parameter is, for readers and hints.
        #[schemars(example = &"the user's ID")]
        description: Option<String>,
    },
}

/// Names a library step's parameters may not take: they are the template roots.
pub const RESERVED_NAMES: [&str; 5] = ["ids", "vars", "env", "case", "as"];

/// Every library step of a suite, by name.
#[derive(Debug, Default)]
pub struct Library {
    pub steps: BTreeMap<String, Arc<LibraryStep>>,
    /// Steps with problems of their own: their callers are not reported again.
    pub broken: std::collections::BTreeSet<String>,
}

impl Library {
    pub fn get(&self, name: &str) -> Option<Arc<LibraryStep>> {
        self.steps.get(name).cloned()
    }

    /// Library files (`*.yaml`) in the config's `library:` folders.
    pub fn files(config: &SuiteConfig) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in &config.library {
            let dir = config.resolve(dir);
            collect_yaml(&dir, &mut files);
        }
        // Shown in messages: relative to where the engine runs, as specs are.
        let here = std::env::current_dir().ok();
        let mut files: Vec<PathBuf> = files
            .into_iter()
            .map(
                |f| match here.as_ref().and_then(|h| f.strip_prefix(h).ok()) {
                    Some(relative) => relative.to_path_buf(),
                    None => f,
                },
            )
            .collect();
        files.sort();
        files
    }

    /// Load and check every library step of the config; problems are located.
    pub fn load(config: &SuiteConfig) -> (Library, Vec<Diagnostic>) {
        let mut problems = Vec::new();
        for dir in &config.library {
            let resolved = config.resolve(dir);
            if !resolved.is_dir() {
                problems.push(
                    Diagnostic::new(format!(
                        "library: folder {} does not exist",
                        resolved.display()
                    ))
                    .hint("paths in engine.yaml are relative to its folder"),
                );
            }
        }
        let mut raw: BTreeMap<String, RawStep> = BTreeMap::new();
        for file in Library::files(config) {
            match RawStep::read(&file) {
                Ok(step) => {
                    if let Some(first) = raw.get(&step.name) {
                        problems.push(
                            Diagnostic::new(format!(
                                "library step `{}` is defined twice",
                                step.name
                            ))
                            .at(&step.source, step.index.lookup("/step"))
                            .note(format!("first defined in {}", first.source.path.display())),
                        );
                        continue;
                    }
                    raw.insert(step.name.clone(), step);
                }
                Err(mut found) => problems.append(&mut found),
            }
        }
        let mut builder = Builder {
            config,
            raw,
            built: BTreeMap::new(),
            visiting: Vec::new(),
            problems,
        };
        let names: Vec<String> = builder.raw.keys().cloned().collect();
        for name in names {
            builder.build(&name);
        }
        let mut library = Library::default();
        for (name, step) in builder.built {
            match step {
                Some(step) => {
                    library.steps.insert(name, step);
                }
                None => {
                    library.broken.insert(name);
                }
            }
        }
        (library, builder.problems)
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// A library file read and schema-checked, its steps not yet built.
struct RawStep {
    name: String,
    source: Arc<SourceFile>,
    value: Value,
    /// Shared with the step built from it.
    index: Arc<SpanIndex>,
}

impl RawStep {
    fn read(path: &Path) -> Result<RawStep, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic::new(format!(
                "cannot read {}: {e}",
                path.display()
            ))]
        })?;
        let source = SourceFile::new(path, text);
        let (value, index) = load::parse_yaml(&source)?;
        let problems = load::schema_problems(&source, &value, &index, load::Root::Library);
        if !problems.is_empty() {
            return Err(problems);
        }
        let name = value
            .get("step")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(RawStep {
            name,
            source,
            value,
            index: Arc::new(index),
        })
    }
}

/// Builds library steps in dependency order, so a step's calls point at built steps;
/// a call cycle is a problem, not a hang.
struct Builder<'a> {
    config: &'a SuiteConfig,
    raw: BTreeMap<String, RawStep>,
    /// `None`: failed to build (its problems are reported once).
    built: BTreeMap<String, Option<Arc<LibraryStep>>>,
    visiting: Vec<String>,
    problems: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn build(&mut self, name: &str) -> Option<Arc<LibraryStep>> {
        if let Some(done) = self.built.get(name) {
            return done.clone();
        }
        let raw = self.raw.remove(name)?;
        self.visiting.push(name.to_string());
        let params = params(&raw, &mut self.problems);
        let (steps, mut found) = load::build_steps(
            raw.value.get("steps"),
            "/steps",
            &raw.index,
            &raw.source,
            self,
        );
        self.problems.append(&mut found);
        let cleanup = load::actions(&raw.value, "cleanup", &raw.index);
        let step = LibraryStep {
            name: name.to_string(),
            source: raw.source.clone(),
            description: raw
                .value
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            params,
            steps,
            returns: raw
                .value
                .get("returns")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            cleanup,
            index: raw.index.clone(),
        };
        let mut found = load::check_library_step(&step, &raw.value, &raw.index, self.config);
        let ok = found.is_empty();
        self.problems.append(&mut found);
        self.visiting.pop();
        let built = ok.then(|| Arc::new(step));
        self.built.insert(name.to_string(), built.clone());
        built
    }
}

impl StepResolver for Builder<'_> {
    fn resolve(&mut self, name: &str) -> Resolved {
        if let Some(at) = self.visiting.iter().position(|v| v == name) {
            let mut chain: Vec<&str> = self.visiting[at..].iter().map(String::as_str).collect();
            chain.push(name);
            return Resolved::Cycle(format!(
                "library step `{name}` calls itself: {}",
                chain.join(" → ")
            ));
        }
        if !self.raw.contains_key(name) && !self.built.contains_key(name) {
            return Resolved::Unknown;
        }
        match self.build(name) {
            Some(step) => Resolved::Step(step),
            None => Resolved::Broken,
        }
    }

    fn names(&self) -> Vec<String> {
        self.raw.keys().chain(self.built.keys()).cloned().collect()
    }
}

fn params(raw: &RawStep, problems: &mut Vec<Diagnostic>) -> Vec<Param> {
    let Some(declared) = raw.value.get("params").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut params = Vec::new();
    for (name, spec) in declared {
        let at = format!("/params/{}", yaml::pointer_escape(name));
        if RESERVED_NAMES.contains(&name.as_str()) {
            problems.push(
                Diagnostic::new(format!("parameter name `{name}` is reserved"))
                    .at(&raw.source, raw.index.key(&at))
                    .hint(format!(
                        "these names are taken by templates: {}",
                        RESERVED_NAMES.join(", ")
                    )),
            );
            continue;
        }
        let (kind, default, description) = match spec {
            Value::String(kind) => (
                serde_json::from_value(Value::String(kind.clone())),
                None,
                None,
            ),
            Value::Object(map) => (
                map.get("type")
                    .cloned()
                    .map_or(Ok(ParamType::Any), serde_json::from_value),
                map.get("default").cloned(),
                map.get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            _ => (Ok(ParamType::Any), None, None),
        };
        let kind = kind.unwrap_or(ParamType::Any);
        if let Some(d) = &default {
            if !kind.admits(d) && !crate::template::contains_template(d) {
                problems.push(
                    Diagnostic::new(format!("default of `{name}` is not a {}: {d}", kind.name()))
                        .at(&raw.source, raw.index.lookup(&format!("{at}/default"))),
                );
            }
        }
        params.push(Param {
            name: name.clone(),
            kind,
            default,
            description,
        });
    }
    params
}
