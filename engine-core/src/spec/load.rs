//! Spec file → [`Scenario`]: YAML with positions, validation against
//! `schemas/spec.schema.json` (the same schema editors use), then the checks a schema
//! cannot express: declared IDs and kinds, variables defined before use, connections
//! opened before use, steps of one protocol on a connection of another
//! ([`super::protocols`]), template syntax, referenced files. Every problem found is
//! reported, each at its line and column.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::config::SuiteConfig;
use super::document::SpecDocument;
use super::library::{literal, Bindings, Library, LibraryStep};
use super::model::*;
use super::template_calls;
use super::yaml::{self, SpanIndex};
use crate::diagnostic::{did_you_mean, Diagnostic, SourceFile};
use crate::template;

/// The spec format's JSON Schema, shipped inside the binary.
pub const SPEC_SCHEMA: &str = include_str!("../../../schemas/spec.schema.json");

fn schema_json() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(SPEC_SCHEMA).expect("spec schema is valid JSON"))
}

/// What a YAML file holds: a scenario, or a library step (`$defs/LibraryDocument` of the
/// same schema, so both share every step definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Spec,
    Library,
}

impl Root {
    /// The schema of this root: the spec schema itself, or its library definition with
    /// the spec schema's `$defs`.
    fn schema(self) -> &'static Value {
        static LIBRARY: OnceLock<Value> = OnceLock::new();
        match self {
            Root::Spec => schema_json(),
            Root::Library => LIBRARY.get_or_init(|| {
                let mut root = schema_json()["$defs"]["LibraryDocument"].clone();
                root["$defs"] = schema_json()["$defs"].clone();
                root
            }),
        }
    }

    /// Compiled once per process, on first use (about 15M instructions each: a tenth of
    /// `engine check specs/`). Not compiled ahead on a thread of its own: that measured
    /// no faster, and its allocator arena cost every process 1.4 MB.
    fn validator(self) -> &'static jsonschema::Validator {
        static SPEC: OnceLock<jsonschema::Validator> = OnceLock::new();
        static LIBRARY: OnceLock<jsonschema::Validator> = OnceLock::new();
        let cell = match self {
            Root::Spec => &SPEC,
            Root::Library => &LIBRARY,
        };
        cell.get_or_init(|| jsonschema::validator_for(self.schema()).expect("spec schema compiles"))
    }
}

/// What a step key names, besides a built-in kind.
pub enum Resolved {
    Step(Arc<LibraryStep>),
    Unknown,
    /// A library step with problems of its own (reported at its file).
    Broken,
    /// Calling it would close a cycle of calls; the message shows the cycle.
    Cycle(String),
}

/// Finds the library step a step key names, if any.
pub trait StepResolver {
    fn resolve(&mut self, name: &str) -> Resolved;
    /// Every name it knows, for "did you mean".
    fn names(&self) -> Vec<String>;
}

/// Read and load one spec file: one scenario, or one per row of its `cases:` table.
pub fn load_file(
    path: &Path,
    config: &SuiteConfig,
    library: &Library,
) -> Result<Vec<Scenario>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))]
    })?;
    load_str(SourceFile::new(path, text), config, library)
}

/// YAML text → JSON value and the position of every value.
pub fn parse_yaml(source: &Arc<SourceFile>) -> Result<(Value, SpanIndex), Vec<Diagnostic>> {
    let node = yaml::parse(&source.text).map_err(|e| vec![e.diagnostic(source)])?;
    Ok(yaml::to_json(node))
}

/// Load a spec from its text: one scenario, or one per case.
pub fn load_str(
    source: Arc<SourceFile>,
    config: &SuiteConfig,
    library: &Library,
) -> Result<Vec<Scenario>, Vec<Diagnostic>> {
    let (value, index) = parse_yaml(&source)?;
    let index = Arc::new(index);
    let schema = schema_problems(&source, &value, &index, Root::Spec);
    let mut resolver = LibraryRef(library);
    let (scenario, mut problems) = build(&source, &value, &index, &mut resolver, schema.is_empty());
    if !schema.is_empty() {
        // Unknown step kinds with the schema's errors; the checks below assume a
        // well-formed spec.
        problems.extend(schema);
        problems.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
        return Err(problems);
    }
    let cases = super::cases::read(&source, &value, &index);
    let cases = match cases {
        Ok(cases) => cases,
        Err(mut found) => {
            problems.append(&mut found);
            Vec::new()
        }
    };
    problems.extend(Checker::new(&source, &index, config).check(&scenario, &value, &cases));
    if !problems.is_empty() {
        problems.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
        return Err(problems);
    }
    super::cases::expand(scenario, cases).map_err(|d| vec![d])
}

/// A library seen read-only, as specs see it.
struct LibraryRef<'a>(&'a Library);

impl StepResolver for LibraryRef<'_> {
    fn resolve(&mut self, name: &str) -> Resolved {
        match self.0.get(name) {
            Some(step) => Resolved::Step(step),
            None if self.0.broken.contains(name) => Resolved::Broken,
            None => Resolved::Unknown,
        }
    }
    fn names(&self) -> Vec<String> {
        self.0.steps.keys().cloned().collect()
    }
}

/// The fixture actions under `key` (`setup`, `teardown`, a library step's `cleanup`).
pub fn actions(value: &Value, key: &str, index: &SpanIndex) -> Vec<Action> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(i, body)| Action {
                    span: index.lookup(&format!("/{key}/{i}")),
                    body: body.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn build(
    source: &Arc<SourceFile>,
    value: &Value,
    index: &Arc<SpanIndex>,
    resolver: &mut dyn StepResolver,
    schema_ok: bool,
) -> (Scenario, Vec<Diagnostic>) {
    let (steps, mut problems) = build_steps(value.get("steps"), "/steps", index, source, resolver);
    // A file the schema rejects is reported with the schema's errors; what can be read
    // of it is still built, so unknown step kinds are reported alongside. A file the
    // schema accepts always reads, as both come from the same types.
    let document = match SpecDocument::deserialize(value) {
        Ok(document) => document,
        Err(error) => {
            if schema_ok {
                problems.push(
                    Diagnostic::new(format!("cannot read the spec: {error}"))
                        .at(source, index.lookup("")),
                );
            }
            SpecDocument::default()
        }
    };
    let scenario = Scenario {
        source: source.clone(),
        name: document.name,
        description: document.description,
        tags: document.tags,
        skip: document.skip,
        timeout: document
            .timeout
            .and_then(|t| super::duration::parse_duration(&t).ok()),
        ids: document
            .ids
            .into_iter()
            .map(|(name, kind)| (name, kind.as_str().unwrap_or_default().to_string()))
            .collect(),
        vars: document.vars,
        setup: actions(value, "setup", index),
        steps,
        teardown: actions(value, "teardown", index),
        load: document.load,
        index: index.clone(),
        case: None,
    };
    (scenario, problems)
}

/// Steps at `pointer`, recursively (an `each` holds steps of its own). A key that is
/// neither a built-in kind nor a library step is reported with the nearest name.
pub fn build_steps(
    value: Option<&Value>,
    pointer: &str,
    index: &SpanIndex,
    source: &Arc<SourceFile>,
    resolver: &mut dyn StepResolver,
) -> (Vec<Step>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let Some(items) = value.and_then(Value::as_array) else {
        return (Vec::new(), problems);
    };
    let mut steps = Vec::new();
    for (i, step) in items.iter().enumerate() {
        let Some((key, body)) = step.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let at = format!("{pointer}/{i}/{}", yaml::pointer_escape(key));
        let span = index.key(&at);
        let (kind, call) = match StepKind::from_name(key) {
            Some(kind) => (kind, None),
            None => match resolver.resolve(key) {
                Resolved::Step(step) => (StepKind::Call, Some(step)),
                Resolved::Unknown => {
                    problems.push(unknown_step(key, resolver).at(source, span));
                    continue;
                }
                Resolved::Broken => continue,
                Resolved::Cycle(cycle) => {
                    problems.push(Diagnostic::new(cycle).at(source, span));
                    continue;
                }
            },
        };
        let children = if kind == StepKind::Each {
            let (children, mut found) = build_steps(
                body.get("steps"),
                &format!("{at}/steps"),
                index,
                source,
                resolver,
            );
            problems.append(&mut found);
            children
        } else {
            Vec::new()
        };
        steps.push(Step {
            span,
            kind,
            body: body.clone(),
            children,
            call,
            pointer: at,
        });
    }
    (steps, problems)
}

fn unknown_step(key: &str, resolver: &dyn StepResolver) -> Diagnostic {
    let library = resolver.names();
    let known: Vec<&str> = StepKind::ALL
        .iter()
        .map(|k| k.name())
        .chain(library.iter().map(String::as_str))
        .collect();
    let diagnostic = Diagnostic::new(format!("unknown step kind `{key}`"));
    match did_you_mean(key, known.iter().copied()) {
        Some(hint) => diagnostic.hint(hint),
        None if library.is_empty() => diagnostic.hint(format!(
            "built-in steps: {}; reusable steps come from the suite config's `library:` folders",
            StepKind::ALL.map(|k| k.name()).join(", ")
        )),
        None => diagnostic.hint(format!("library steps: {}", library.join(", "))),
    }
}

/// JSON Schema errors, turned into positioned diagnostics with hints.
pub fn schema_problems(
    source: &Arc<SourceFile>,
    value: &Value,
    index: &SpanIndex,
    root: Root,
) -> Vec<Diagnostic> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for error in root.validator().iter_errors(value) {
        // A whole-value template (`headers: "{{ vars.headers }}"`) stands for a value of
        // any type: what it yields is checked when it is rendered.
        if error
            .instance()
            .as_str()
            .is_some_and(template::is_sole_expression)
        {
            continue;
        }
        let pointer = error.instance_path().to_string();
        let schema_node = schema_at(root, &pointer);
        let diagnostic = match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<String> = schema_node
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let child = format!("{pointer}/{}", yaml::pointer_escape(key));
                    if !seen.insert(child.clone()) {
                        continue;
                    }
                    let what = describe_place(&pointer);
                    let is_step = is_step_pointer(&pointer);
                    let mut d = Diagnostic::new(if is_step {
                        format!("unknown step kind `{key}`")
                    } else {
                        format!("unknown key `{key}` in {what}")
                    })
                    .at(source, index.key(&child));
                    d = match did_you_mean(key, allowed.iter().map(String::as_str)) {
                        Some(hint) => d.hint(hint),
                        None => d.hint(format!("expected one of: {}", allowed.join(", "))),
                    };
                    problems.push(d);
                }
                continue;
            }
            jsonschema::error::ValidationErrorKind::MaxProperties { .. }
                if is_step_pointer(&pointer) =>
            {
                Diagnostic::new("a step has exactly one kind; this one has several keys")
                    .hint("start each step with its own `- ` item")
            }
            jsonschema::error::ValidationErrorKind::OneOfNotValid { .. }
            | jsonschema::error::ValidationErrorKind::OneOfMultipleValid { .. } => {
                let expected = schema_node
                    .and_then(|s| s.get("description"))
                    .and_then(Value::as_str)
                    .unwrap_or("one of the allowed forms");
                Diagnostic::new(format!(
                    "{} does not have the expected form",
                    describe_place(&pointer)
                ))
                .note(format!("expected: {expected}"))
            }
            jsonschema::error::ValidationErrorKind::Pattern { .. } => {
                let mut d = Diagnostic::new(format!(
                    "invalid {}: {} does not have the expected form",
                    invalid_place(&pointer),
                    match error.instance().as_ref() {
                        Value::String(s) => format!("`{s}`"),
                        other => other.to_string(),
                    }
                ));
                if let Some(desc) = schema_node
                    .and_then(|s| s.get("description"))
                    .and_then(Value::as_str)
                {
                    d = d.hint(desc.to_string());
                }
                d
            }
            _ => {
                let mut d = Diagnostic::new(format!(
                    "invalid {}: {}",
                    invalid_place(&pointer),
                    error.masked()
                ));
                if let Some(desc) = schema_node
                    .and_then(|s| s.get("description"))
                    .and_then(Value::as_str)
                {
                    d = d.hint(desc.to_string());
                }
                d
            }
        };
        if seen.insert(format!("{pointer}#{}", diagnostic.message)) {
            problems.push(diagnostic.at(source, index.lookup(&pointer)));
        }
    }
    problems.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
    problems
}

fn is_step_pointer(pointer: &str) -> bool {
    pointer
        .strip_prefix("/steps/")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// The place after "invalid": "invalid scenario", not "invalid the scenario".
fn invalid_place(pointer: &str) -> String {
    if pointer.is_empty() {
        return "scenario".into();
    }
    describe_place(pointer)
}

fn describe_place(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the scenario".into();
    }
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["steps", n] => format!("step {}", n.parse::<usize>().unwrap_or(0) + 1),
        ["steps", n, kind] => {
            format!("`{kind}` (step {})", n.parse::<usize>().unwrap_or(0) + 1)
        }
        ["steps", n, kind, rest @ ..] => format!(
            "`{}` of `{kind}` (step {})",
            rest.join("."),
            n.parse::<usize>().unwrap_or(0) + 1
        ),
        _ => format!("`{}`", parts.join(".")),
    }
}

/// The schema node that describes the instance at `pointer`, following `$ref`s.
fn schema_at(root: Root, pointer: &str) -> Option<&'static Value> {
    let root = root.schema();
    let resolve = |mut node: &'static Value| -> &'static Value {
        for _ in 0..8 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                    Some(target) => node = target,
                    None => break,
                },
                None => break,
            }
        }
        node
    };
    let mut node = resolve(root);
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let next = node
            .get("properties")
            .and_then(|p| p.get(&segment))
            .or_else(|| {
                segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|_| node.get("items"))
            })
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        node = resolve(next);
    }
    Some(node)
}

/// Checks beyond the schema, in step order.
struct Checker<'a> {
    source: &'a Arc<SourceFile>,
    index: &'a SpanIndex,
    config: &'a SuiteConfig,
    problems: Vec<Diagnostic>,
    ids: BTreeSet<String>,
    vars: BTreeSet<String>,
    connections: Vec<String>,
    /// A `connect` with a templated name was seen: `on:` can't be checked statically.
    dynamic_connections: bool,
    /// With `events.require_schemas`, the only event types that can ever arrive.
    known_events: Option<BTreeSet<String>>,
    /// The keys of the spec's `cases:` rows, readable as `case.<key>`.
    case_keys: Option<BTreeSet<String>>,
    /// Checking a library step: its parameters are the names its templates may read
    /// besides its own variables and `env`; connections come from its callers.
    library_params: Option<Vec<String>>,
}

impl<'a> Checker<'a> {
    fn new(source: &'a Arc<SourceFile>, index: &'a SpanIndex, config: &'a SuiteConfig) -> Self {
        Self {
            source,
            index,
            config,
            problems: Vec::new(),
            ids: BTreeSet::new(),
            vars: BTreeSet::new(),
            connections: Vec::new(),
            dynamic_connections: false,
            known_events: config
                .events
                .require_schemas
                .then(|| config.schema_event_types())
                .flatten(),
            case_keys: None,
            library_params: None,
        }
    }

    fn problem(&mut self, pointer: &str, diagnostic: Diagnostic) {
        let span = self.index.lookup(pointer);
        self.problems.push(diagnostic.at(self.source, span));
    }

    fn check(mut self, scenario: &Scenario, value: &Value, cases: &[Case]) -> Vec<Diagnostic> {
        if let Some(first) = cases.first() {
            self.case_keys = Some(first.values.keys().cloned().collect());
        }
        for (pointer, problem) in super::checks::scenario(value) {
            self.problem(&pointer, problem);
        }
        for (name, kind) in &scenario.ids {
            self.ids.insert(name.clone());
            if !self.config.ids.contains_key(kind) {
                let kinds: Vec<&str> = self.config.ids.keys().map(String::as_str).collect();
                let hint = did_you_mean(kind, kinds.iter().copied()).unwrap_or_else(|| {
                    if kinds.is_empty() {
                        "declare ID kinds under `ids:` in engine.yaml".to_string()
                    } else {
                        format!("kinds declared in engine.yaml: {}", kinds.join(", "))
                    }
                });
                self.problem(
                    &format!("/ids/{name}"),
                    Diagnostic::new(format!("unknown ID kind `{kind}` for `{name}`")).hint(hint),
                );
            }
        }
        if let Some(vars) = value.get("vars") {
            self.templates(vars, "/vars".into(), &[]);
        }
        for name in scenario.vars.keys() {
            self.vars.insert(name.clone());
        }
        for (i, action) in scenario.setup.iter().enumerate() {
            self.action(&action.body, format!("/setup/{i}"), &[]);
        }
        self.steps(&scenario.steps, &[]);
        for (pointer, problem) in super::protocols::scenario(&scenario.steps, self.config) {
            self.index_problem_key(&pointer, problem);
        }
        for (i, action) in scenario.teardown.iter().enumerate() {
            self.action(&action.body, format!("/teardown/{i}"), &[]);
        }
        self.problems
    }

    fn action(&mut self, body: &Value, pointer: String, locals: &[&str]) {
        self.templates(body, pointer.clone(), locals);
        if let Some(file) = body.get("sql_file").and_then(Value::as_str) {
            self.file_exists(file, &format!("{pointer}/sql_file"));
        }
    }

    fn file_exists(&mut self, file: &str, pointer: &str) {
        if template::is_template(file) {
            return;
        }
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        if !base.join(file).is_file() {
            self.problem(
                pointer,
                Diagnostic::new(format!("file `{file}` not found")).hint(format!(
                    "paths are relative to the spec's folder ({})",
                    base.display()
                )),
            );
        }
    }

    fn steps(&mut self, steps: &[Step], outer: &[String]) {
        for step in steps {
            let at = step.pointer.clone();
            if step.kind == StepKind::Each {
                let name = step
                    .body
                    .get("as")
                    .and_then(Value::as_str)
                    .unwrap_or("i")
                    .to_string();
                let mut inner = outer.to_vec();
                inner.push(name);
                let mut head = step.body.clone();
                if let Some(map) = head.as_object_mut() {
                    map.remove("steps");
                }
                self.templates(
                    &head,
                    at.clone(),
                    &outer.iter().map(String::as_str).collect::<Vec<_>>(),
                );
                if step.body.get("count").is_none() == step.body.get("items").is_none() {
                    self.problem(
                        &at,
                        Diagnostic::new("`each` needs exactly one of `count` or `items`"),
                    );
                }
                self.steps(&step.children, &inner);
            } else {
                self.step(step, at, outer);
            }
        }
    }

    fn step(&mut self, step: &Step, pointer: String, outer: &[String]) {
        // Names only this step kind provides to its own templates, plus loop variables.
        let mut locals: Vec<&str> = match step.kind {
            StepKind::Send => vec!["index"],
            StepKind::Connect => vec!["token", "identity"],
            StepKind::Authenticate => vec!["token"],
            StepKind::Expect => ["/sequence/for", "/unordered/for"]
                .iter()
                .filter_map(|p| step.body.pointer(p).and_then(Value::as_str))
                .collect(),
            _ => vec![],
        };
        locals.extend(outer.iter().map(String::as_str));
        let locals = locals.as_slice();
        self.templates(&step.body, pointer.clone(), locals);
        for (at, problem) in super::checks::step(step.kind, &step.body, &pointer) {
            self.problem(&at, problem);
        }
        if step.kind.uses_connection() && self.library_params.is_none() {
            self.connection_ref(step.body.get("on").and_then(Value::as_str), &pointer);
        }
        match step.kind {
            StepKind::Connect => {
                if let Some(file) = step.body.get("ca_file").and_then(Value::as_str) {
                    self.file_exists(file, &format!("{pointer}/ca_file"));
                }
                // As the runner opens it: the step over its profile.
                let merged = self.profile(&step.body, &pointer);
                let opened = merged.as_ref().unwrap_or(&step.body);
                let name = connection_name(opened).to_string();
                if opened.as_object().is_some_and(|c| !opens_connection(c)) {
                    // A handshake expected to be refused opens no connection.
                } else if template::is_template(&name) {
                    self.dynamic_connections = true;
                } else if !self.connections.contains(&name) {
                    self.connections.push(name);
                }
                let mut own = step.body.clone();
                if let Some(map) = own.as_object_mut() {
                    CONNECT_PROFILE_KEYS.iter().for_each(|k| {
                        map.remove(*k);
                    });
                }
                // Without a URL, the profile completes the step at run time.
                if own.get("url").is_some() {
                    self.typed::<ConnectStep>(&own, &pointer);
                }
            }
            StepKind::Authenticate => self.typed::<AuthenticateStep>(&step.body, &pointer),
            StepKind::Send => self.typed::<SendStep>(&step.body, &pointer),
            StepKind::Expect => {
                self.typed::<ExpectStep>(&step.body, &pointer);
                self.event_names(&step.body, &pointer);
            }
            StepKind::ExpectNone => {
                self.typed::<ExpectNoneStep>(&step.body, &pointer);
                self.event_names(&step.body, &pointer);
            }
            StepKind::ExpectClose => self.typed::<ExpectCloseStep>(&step.body, &pointer),
            StepKind::AssertDb => self.typed::<AssertDbStep>(&step.body, &pointer),
            StepKind::AssertRedis => self.typed::<AssertRedisStep>(&step.body, &pointer),
            StepKind::Http => {
                if let Some(bearer) = step.body.get("bearer") {
                    self.credentials(bearer, &format!("{pointer}/bearer"));
                }
                self.typed::<HttpStep>(&step.body, &pointer)
            }
            StepKind::Close => self.typed::<CloseStep>(&step.body, &pointer),
            StepKind::Disconnect => self.typed::<DisconnectStep>(&step.body, &pointer),
            StepKind::Sql => self.typed::<SqlStep>(&step.body, &pointer),
            StepKind::Redis => self.typed::<RedisStep>(&step.body, &pointer),
            StepKind::StartProcess => self.typed::<StartProcessStep>(&step.body, &pointer),
            StepKind::StopProcess => self.typed::<StopProcessStep>(&step.body, &pointer),
            StepKind::Assert => self.typed::<AssertStep>(&step.body, &pointer),
            StepKind::Subscribe => self.typed::<SubscribeStep>(&step.body, &pointer),
            StepKind::Complete => self.typed::<CompleteStep>(&step.body, &pointer),
            StepKind::Emit => self.typed::<EmitStep>(&step.body, &pointer),
            StepKind::Namespace => self.typed::<NamespaceStep>(&step.body, &pointer),
            StepKind::Call => self.call(step, &pointer),
            StepKind::Sleep | StepKind::Each => {}
        }
        // Captures become variables for later steps.
        if step.kind != StepKind::Call {
            collect_captures(&step.body, &mut self.vars);
        }
        if step.kind == StepKind::StartProcess {
            if let Some(pattern) = step.body.get("ready_log").and_then(Value::as_str) {
                match regex::Regex::new(pattern) {
                    Ok(re) => self
                        .vars
                        .extend(re.capture_names().flatten().map(str::to_string)),
                    Err(e) => self.problem(
                        &format!("{pointer}/ready_log"),
                        Diagnostic::new(format!("bad `ready_log` regex: {e}")),
                    ),
                }
            }
        }
    }

    /// Event types an expectation names must be ones the server can send: with
    /// `events.require_schemas`, those with a schema. Catches typos before anything runs.
    fn event_names(&mut self, body: &Value, pointer: &str) {
        let Some(known) = self.known_events.clone() else {
            return;
        };
        let mut named: Vec<(String, &str)> = Vec::new();
        if let Some(event) = body.get("event").and_then(Value::as_str) {
            named.push((format!("{pointer}/event"), event));
        }
        for list in ["sequence", "unordered"] {
            match body.pointer(&format!("/{list}/item")) {
                Some(Value::String(event)) => named.push((format!("{pointer}/{list}/item"), event)),
                Some(item) => {
                    if let Some(event) = item.get("event").and_then(Value::as_str) {
                        named.push((format!("{pointer}/{list}/item/event"), event));
                    }
                }
                None => {}
            }
            for (i, item) in body
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                match item {
                    Value::String(event) => named.push((format!("{pointer}/{list}/{i}"), event)),
                    other => {
                        if let Some(event) = other.get("event").and_then(Value::as_str) {
                            named.push((format!("{pointer}/{list}/{i}/event"), event));
                        }
                    }
                }
            }
        }
        for (at, event) in named {
            if template::is_template(event) || known.contains(event) || event == "*" {
                continue;
            }
            let hint = did_you_mean(event, known.iter().map(String::as_str)).unwrap_or_else(|| {
                format!(
                    "event types with a schema: {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            });
            self.problem(
                &at,
                Diagnostic::new(format!(
                    "no event type `{event}`: the suite requires a schema for every event, and none exists for it"
                ))
                .hint(hint),
            );
        }
    }

    fn connection_ref(&mut self, on: Option<&str>, pointer: &str) {
        match on {
            Some(name) if template::is_template(name) => {}
            Some(_) if self.dynamic_connections => {}
            Some(name) => {
                if !self.connections.iter().any(|c| c == name) {
                    let known = self.connections.clone();
                    let hint =
                        did_you_mean(name, known.iter().map(String::as_str)).unwrap_or_else(|| {
                            match known.is_empty() {
                                true => "open it first with a `connect` step".into(),
                                false => format!("connections opened so far: {}", known.join(", ")),
                            }
                        });
                    self.problem(
                        &format!("{pointer}/on"),
                        Diagnostic::new(format!(
                            "connection `{name}` is not opened by an earlier step"
                        ))
                        .hint(hint),
                    );
                }
            }
            None => match self.connections.len() {
                1 => {}
                0 if self.dynamic_connections => self.problem(
                    pointer,
                    Diagnostic::new("`on:` is required: connections here have templated names"),
                ),
                0 => self.problem(
                    pointer,
                    Diagnostic::new("this step needs a connection, and none is open yet")
                        .hint("add a `connect` step before it"),
                ),
                _ => {
                    let known = self.connections.join(", ");
                    self.problem(
                        pointer,
                        Diagnostic::new(
                            "`on:` is required when a scenario has several connections",
                        )
                        .hint(format!("one of: {known}")),
                    )
                }
            },
        }
    }

    /// Deserialize a step body to its typed form, unless templates make that a run-time matter.
    fn typed<T: DeserializeOwned>(&mut self, body: &Value, pointer: &str) {
        if template::contains_template(body) {
            return;
        }
        if let Err(e) = serde_json::from_value::<T>(body.clone()) {
            self.problem(pointer, Diagnostic::new(format!("invalid step: {e}")));
        }
    }

    fn templates(&mut self, value: &Value, mut pointer: String, locals: &[&str]) {
        self.templates_at(value, &mut pointer, locals);
    }

    /// [`Self::templates`] of `value` at `pointer`, which is extended for each child
    /// and cut back after it.
    fn templates_at(&mut self, value: &Value, pointer: &mut String, locals: &[&str]) {
        // Templated regexes are checked when rendered, at run time.
        if let Some(text) = value.as_str().filter(|t| !template::is_template(t)) {
            if let Some(problem) = crate::matcher::placeholder_problem(text) {
                self.problem(
                    pointer,
                    Diagnostic::new(format!("bad regex in `{text}`: {problem}"))
                        .hint("the regex crate's syntax: no look-around or backreferences"),
                );
            }
        }
        match value {
            Value::String(s) if template::is_template(s) => match template_calls::names_and_calls(s)
            {
                Err(message) => self.problem(
                    pointer,
                    Diagnostic::new(format!("bad template: {message}")).hint(
                        "templates are minijinja: `{{ ids.alice }}`, `{{ vars.x }}`, `{{ env.X }}`",
                    ),
                ),
                Ok((names, calls)) => {
                    // Unknown filters and functions; a called name is reported there.
                    let defined = |n: &str| !names.iter().any(|x| x == n) || locals.contains(&n);
                    for problem in template_calls::problems(&calls, &defined) {
                        self.problem(pointer, problem);
                    }
                    for name in names.iter().filter(|n| !calls.functions.contains(*n)) {
                        self.name_in_scope(name, pointer, locals);
                    }
                }
            },
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let own = yaml::push_index(pointer, i);
                    self.templates_at(item, pointer, locals);
                    pointer.truncate(own);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let own = yaml::push_key(pointer, key);
                    self.templates_at(item, pointer, locals);
                    pointer.truncate(own);
                }
            }
            _ => {}
        }
    }

    /// A connect step's profile: known, and giving a URL one way or the other. The
    /// merged step, when its profile is known.
    fn profile(&mut self, body: &Value, pointer: &str) -> Option<Value> {
        let own = body.as_object().cloned().unwrap_or_default();
        let named = own.get("profile").and_then(Value::as_str);
        if named.is_some_and(template::is_template) {
            return None;
        }
        let merged = match super::profile::over_profile(self.config, &own) {
            Ok(merged) => merged,
            Err(super::profile::UnknownProfile(name)) => {
                let known: Vec<&str> = self.config.profiles.keys().map(String::as_str).collect();
                let hint =
                    did_you_mean(&name, known.iter().copied()).unwrap_or_else(|| {
                        match known.is_empty() {
                            true => "declare profiles under `profiles:` in engine.yaml".into(),
                            false => format!("profiles in engine.yaml: {}", known.join(", ")),
                        }
                    });
                self.problem(
                    &format!("{pointer}/profile"),
                    Diagnostic::new(format!("no connection profile `{name}`")).hint(hint),
                );
                return None;
            }
        };
        if merged.get("url").is_none() {
            self.problem(
                pointer,
                Diagnostic::new("`connect` needs a `url`, or a profile that has one")
                    .hint("add `url:`, or `profile:` naming a profile of engine.yaml (`profiles.default` applies when neither is given)"),
            );
        }
        if let Some(credentials) = merged.get("authenticate") {
            self.credentials(credentials, &format!("{pointer}/authenticate"));
        }
        if super::profile::captures_per_connection(&merged) {
            self.vars.insert(connection_name(&merged).to_string());
        }
        Some(merged)
    }

    /// Credentials (after a profile is merged in) present exactly one of `jwt`, `token`.
    fn credentials(&mut self, credentials: &Value, pointer: &str) {
        if template::contains_template(credentials) && credentials.is_string() {
            return;
        }
        let jwt = credentials.get("jwt").is_some();
        let token = credentials.get("token").is_some();
        if jwt == token {
            self.problem(
                pointer,
                Diagnostic::new(if jwt {
                    "credentials have both `jwt` and `token`"
                } else {
                    "credentials need `jwt` (minted) or `token` (given)"
                })
                .hint("with a profile, the step's `authenticate` is merged over the profile's"),
            );
        }
    }

    /// A library call: its arguments against the step's parameters; afterwards, its
    /// returned values are variables and the connections it opens are open.
    fn call(&mut self, step: &Step, pointer: &str) {
        let Some(library) = &step.call else { return };
        let empty = serde_json::Map::new();
        let args = match &step.body {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => {
                self.problem(
                    pointer,
                    Diagnostic::new(format!("`{}` takes its parameters as a map", library.name))
                        .hint("e.g. `- open_tab: { name: tab1 }`"),
                );
                return;
            }
        };
        let declared: Vec<&str> = library.params.iter().map(|p| p.name.as_str()).collect();
        for (key, arg) in args {
            let at = format!("{pointer}/{}", yaml::pointer_escape(key));
            if key == "as" {
                continue;
            }
            let Some(param) = library.param(key) else {
                let hint = did_you_mean(key, declared.iter().copied()).unwrap_or_else(|| {
                    match declared.is_empty() {
                        true => format!("`{}` takes no parameters", library.name),
                        false => format!("parameters: {}", declared.join(", ")),
                    }
                });
                self.index_problem_key(
                    &at,
                    Diagnostic::new(format!("`{}` has no parameter `{key}`", library.name))
                        .hint(hint),
                );
                continue;
            };
            if !template::contains_template(arg) && !param.kind.admits(arg) {
                self.problem(
                    &at,
                    Diagnostic::new(format!(
                        "parameter `{key}` of `{}` is a {}, got {arg}",
                        library.name,
                        param.kind.name()
                    )),
                );
            }
        }
        let missing: Vec<&str> = library
            .params
            .iter()
            .filter(|p| p.default.is_none() && !args.contains_key(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            self.problem(
                pointer,
                Diagnostic::new(format!(
                    "`{}` needs {}",
                    library.name,
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .hint(format!("declared in {}", library.source.path.display())),
            );
        }
        match args.get("as").and_then(Value::as_str) {
            Some(name) => {
                self.vars.insert(name.to_string());
            }
            None => self.vars.extend(library.returns.keys().cloned()),
        }
        let literal_args = library.bindings(&step.body, &Bindings::new());
        let mut visits = CONNECT_VISITS;
        match opened_connections(&library.steps, &literal_args, self.config, &mut visits) {
            Some(names) => {
                for name in names {
                    if !self.connections.contains(&name) {
                        self.connections.push(name);
                    }
                }
            }
            None => self.dynamic_connections = true,
        }
    }

    fn index_problem_key(&mut self, pointer: &str, diagnostic: Diagnostic) {
        let span = self.index.key(pointer);
        self.problems.push(diagnostic.at(self.source, span));
    }

    fn name_in_scope(&mut self, name: &str, pointer: &str, locals: &[&str]) {
        let mut parts = name.splitn(3, '.');
        let root = parts.next().unwrap_or_default();
        // `vars.answer.type` reads field `type` of variable `answer`.
        let field = parts.next();
        match (root, field) {
            ("ids", _) if self.library_params.is_some() => self.problem(
                pointer,
                Diagnostic::new("a library step cannot read the caller's IDs")
                    .hint("declare a parameter and pass the ID in the call"),
            ),
            ("ids", Some(id)) if !self.ids.contains(id) => {
                let known: Vec<String> = self.ids.iter().cloned().collect();
                let hint =
                    did_you_mean(id, known.iter().map(String::as_str)).unwrap_or_else(|| {
                        format!("declare it under `ids:` (declared: {})", known.join(", "))
                    });
                self.problem(
                    pointer,
                    Diagnostic::new(format!("undeclared ID `{id}`")).hint(hint),
                );
            }
            ("vars", Some(var)) if !self.vars.contains(var) => {
                let known: Vec<String> = self.vars.iter().cloned().collect();
                let hint =
                    did_you_mean(var, known.iter().map(String::as_str)).unwrap_or_else(|| {
                        "variables come from `vars:` or a `capture` in an earlier step".to_string()
                    });
                self.problem(
                    pointer,
                    Diagnostic::new(format!("variable `{var}` is not defined before this step"))
                        .hint(hint),
                );
            }
            ("case", field) => match (&self.case_keys, field) {
                (None, _) => self.problem(
                    pointer,
                    Diagnostic::new("`case` is only defined in a spec with `cases:`"),
                ),
                (Some(keys), Some(key)) if !keys.contains(key) => {
                    let hint = did_you_mean(key, keys.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("case keys: {}", join_names(keys)));
                    self.problem(
                        pointer,
                        Diagnostic::new(format!("no case key `{key}`")).hint(hint),
                    );
                }
                _ => {}
            },
            ("ids" | "vars" | "env", _) => {}
            (other, _) if locals.contains(&other) => {}
            (other, _)
                if self
                    .library_params
                    .as_ref()
                    .is_some_and(|p| p.iter().any(|p| p == other)) => {}
            (other, _) if template::environment().globals().any(|(g, _)| g == other) => {}
            (other, _) => self.problem(
                pointer,
                Diagnostic::new(format!("unknown name `{other}` in template"))
                    .hint("use `ids.<name>`, `vars.<name>` or `env.<NAME>`"),
            ),
        }
    }
}

/// The connections a library body opens, by name, given the literal values of its
/// parameters; `None` when a name or a profile is only known at run time, or when
/// finding out takes more than `visits` steps.
fn opened_connections(
    steps: &[Step],
    args: &Bindings,
    config: &SuiteConfig,
    visits: &mut usize,
) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for step in steps {
        // Calls nested in calls multiply: past the budget, the names are unknown.
        *visits = visits.checked_sub(1)?;
        match step.kind {
            StepKind::Connect => {
                let connect = opened_connect(&step.body, args, config)?;
                // A handshake expected to be refused opens no connection.
                if connect.as_object().is_some_and(opens_connection) {
                    names.push(literal(connection_name(&connect), args)?);
                }
            }
            StepKind::Each => {
                names.extend(opened_connections(&step.children, args, config, visits)?)
            }
            StepKind::Call => {
                let library = step.call.as_ref()?;
                let inner = library.bindings(&step.body, args);
                names.extend(opened_connections(&library.steps, &inner, config, visits)?);
            }
            _ => {}
        }
    }
    Some(names)
}

/// A library's `connect` as the runner opens it: its fields over its profile's, the
/// profile's name read from the call's literal arguments where it is a parameter;
/// `None` when the profile is not known before run time (an unknown profile is
/// reported where the library step is checked).
fn opened_connect(body: &Value, args: &Bindings, config: &SuiteConfig) -> Option<Value> {
    let mut own = body.as_object()?.clone();
    if let Some(profile) = own.get("profile").and_then(Value::as_str) {
        let profile = literal(profile, args)?;
        own.insert("profile".into(), Value::String(profile));
    }
    super::profile::over_profile(config, &own).ok()
}

/// Steps [`opened_connections`] looks at for one call before it gives up.
const CONNECT_VISITS: usize = 20_000;

fn join_names(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Check a library step's body in its own scope: its parameters and `env`, its own
/// captures; never the caller's IDs or variables.
pub fn check_library_step(
    step: &LibraryStep,
    value: &Value,
    index: &SpanIndex,
    config: &SuiteConfig,
) -> Vec<Diagnostic> {
    let mut checker = Checker::new(&step.source, index, config);
    checker.library_params = Some(step.params.iter().map(|p| p.name.clone()).collect());
    checker.dynamic_connections = true;
    for param in &step.params {
        if let Some(default) = &param.default {
            let at = format!("/params/{}/default", yaml::pointer_escape(&param.name));
            checker.templates(default, at, &[]);
        }
    }
    checker.steps(&step.steps, &[]);
    for (pointer, problem) in super::protocols::library(&step.steps, config) {
        checker.index_problem_key(&pointer, problem);
    }
    if let Some(returns) = value.get("returns") {
        checker.templates(returns, "/returns".into(), &[]);
    }
    for (i, action) in step.cleanup.iter().enumerate() {
        checker.action(&action.body, format!("/cleanup/{i}"), &[]);
    }
    checker.problems
}

/// Every `capture:` name in a step body (including inside `sequence`/`unordered` items).
fn collect_captures(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "capture" {
                    if let Some(captures) = item.as_object() {
                        into.extend(captures.keys().cloned());
                    }
                } else {
                    collect_captures(item, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_captures(i, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SuiteConfig {
        let source = SourceFile::new(
            "engine.yaml",
            "ids:\n  user: {prefix: usr_}\n  thread: {prefix: thr_}\n",
        );
        SuiteConfig::parse(&source).unwrap()
    }

    fn load(text: &str) -> Result<Scenario, Vec<Diagnostic>> {
        load_str(
            SourceFile::new("specs/t.yaml", text),
            &config(),
            &Library::default(),
        )
        .map(|mut s| s.remove(0))
    }

    #[test]
    fn loads_a_scenario_with_step_positions() {
        let s = load(
            "name: ok\nids: {alice: user}\nsteps:\n  - connect: {url: 'ws://x/{{ ids.alice }}'}\n  - expect:\n      event: hello\n      capture: {c: $.id}\n  - send: {json: {id: '{{ vars.c }}'}}\n",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[1].kind, StepKind::Expect);
        assert_eq!((s.steps[1].span.line, s.steps[1].span.col), (5, 5));
    }

    #[test]
    fn unknown_step_kind_suggests_the_right_one() {
        let errs = load("name: x\nsteps:\n  - sned: {json: 1}\n").unwrap_err();
        assert_eq!(errs[0].message, "unknown step kind `sned`");
        assert_eq!(errs[0].span.map(|s| (s.line, s.col)), Some((3, 5)));
        assert_eq!(errs[0].hint.as_deref(), Some("did you mean `send`?"));
    }

    #[test]
    fn unknown_keys_inside_steps_are_located() {
        let errs = load("name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - expect: {evnt: a}\n")
            .unwrap_err();
        let unknown = errs.iter().find(|d| d.message.contains("evnt")).unwrap();
        assert_eq!(unknown.span.map(|s| s.line), Some(4));
        assert_eq!(unknown.hint.as_deref(), Some("did you mean `event`?"));
    }

    #[test]
    fn undeclared_ids_vars_kinds_and_connections_are_errors() {
        let errs = load(
            "name: x\nids: {alice: usr}\nsteps:\n  - send: {json: '{{ ids.bob }}'}\n  - connect: {url: 'ws://{{ vars.nope }}'}\n  - expect: {on: bobby, event: a}\n",
        )
        .unwrap_err();
        let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert!(
            messages.contains(&"unknown ID kind `usr` for `alice`"),
            "{messages:?}"
        );
        assert!(messages.contains(&"undeclared ID `bob`"), "{messages:?}");
        assert!(
            messages.contains(&"variable `nope` is not defined before this step"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"this step needs a connection, and none is open yet"),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("connection `bobby`")),
            "{messages:?}"
        );
    }

    #[test]
    fn connections_are_named_as_the_runner_opens_them() {
        let config = SuiteConfig::parse(&SourceFile::new(
            "engine.yaml",
            "profiles:\n  admin: { url: 'ws://x/admin', name: admin }\n",
        ))
        .unwrap();
        let load = |text: &str| {
            load_str(
                SourceFile::new("specs/t.yaml", text),
                &config,
                &Library::default(),
            )
        };
        // A refused handshake opens nothing: one connection, so no `on:` is needed.
        load("name: x\nsteps:\n  - connect: { url: 'ws://x', expect_status: 401 }\n  - connect: { url: 'ws://x', name: tab }\n  - send: { json: 1 }\n")
            .unwrap();
        // A profile's `name:` names the connection.
        load(
            "name: x\nsteps:\n  - connect: { profile: admin }\n  - send: { on: admin, json: 1 }\n",
        )
        .unwrap();
        let errs = load("name: x\nsteps:\n  - connect: { profile: admin }\n  - send: { on: default, json: 1 }\n")
            .unwrap_err();
        assert!(errs[0].message.contains("connection `default`"), "{errs:?}");
    }

    #[test]
    fn finding_the_connections_steps_open_gives_up_past_its_budget() {
        let s = load("name: x\nsteps:\n  - connect: {url: 'ws://x', name: a}\n  - connect: {url: 'ws://x', name: refused, expect_status: 401}\n  - each:\n      count: 1\n      steps:\n        - connect: {url: 'ws://x', name: b}\n        - send: {on: b, json: 1}\n")
            .unwrap();
        let opened = |budget: usize| {
            opened_connections(&s.steps, &Bindings::new(), &SuiteConfig::default(), &mut {
                budget
            })
        };
        assert_eq!(opened(10).unwrap(), ["a", "b"]);
        assert_eq!(opened(5).unwrap(), ["a", "b"]);
        assert_eq!(opened(4), None);
    }

    #[test]
    fn bad_durations_and_templates_are_reported() {
        let errs = load("name: x\nsteps:\n  - sleep: 5\n  - sleep: 2x\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].span.map(|s| s.line), Some(3));
        assert!(errs[1].message.contains("`2x`"), "{errs:?}");
        assert!(
            errs[1]
                .hint
                .as_deref()
                .unwrap_or_default()
                .contains("500ms"),
            "{errs:?}"
        );
        let errs = load("name: x\nsteps:\n  - sql: {query: 'select {{ oops'}\n").unwrap_err();
        assert!(errs[0].message.starts_with("bad template"), "{errs:?}");
        assert_eq!(errs[0].span.map(|s| s.line), Some(3));
    }

    #[test]
    fn nested_fields_of_captured_vars_and_bad_regexes() {
        let ok = load("name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - expect: {event: a, capture: {answer: $}}\n  - send: {json: '{{ vars.answer.type }}'}\n");
        assert!(ok.is_ok(), "{:?}", ok.err());
        let errs = load("name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - expect_none: {match: {id: '#regex ('}, during: 1s}\n").unwrap_err();
        assert!(
            errs[0].message.starts_with("bad regex in `#regex (`"),
            "{errs:?}"
        );
        assert_eq!(errs[0].span.map(|s| s.line), Some(4));
    }

    #[test]
    fn a_missing_top_level_field_reads_as_an_invalid_scenario() {
        let errs = load("steps:\n  - sleep: 1ms\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.message == r#"invalid scenario: "name" is a required property"#),
            "{errs:?}"
        );
    }

    #[test]
    fn malformed_yaml_is_located() {
        let errs = load("name: x\nsteps:\n  - send: {json: [1, 2}\n").unwrap_err();
        assert!(errs[0].message.starts_with("invalid YAML"));
        assert_eq!(errs[0].span.map(|s| s.line), Some(3));
    }
}
