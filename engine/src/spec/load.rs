//! Spec file → [`Scenario`]: YAML with positions, validation against
//! `schemas/spec.schema.json` (the same schema editors use), then the checks a schema
//! cannot express: declared IDs and kinds, variables defined before use, connections
//! opened before use, template syntax, referenced files. Every problem found is
//! reported, each at its line and column.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::SuiteConfig;
use super::model::*;
use super::yaml::{self, SpanIndex};
use crate::diagnostic::{did_you_mean, Diagnostic, SourceFile};
use crate::template;

/// The spec format's JSON Schema, shipped inside the binary.
pub const SPEC_SCHEMA: &str = include_str!("../../../schemas/spec.schema.json");

fn schema_json() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(SPEC_SCHEMA).expect("spec schema is valid JSON"))
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(schema_json()).expect("spec schema compiles"))
}

/// Read and load one spec file.
pub fn load_file(path: &Path, config: &SuiteConfig) -> Result<Scenario, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))]
    })?;
    load_str(SourceFile::new(path, text), config)
}

/// Load a spec from its text.
pub fn load_str(
    source: Arc<SourceFile>,
    config: &SuiteConfig,
) -> Result<Scenario, Vec<Diagnostic>> {
    let node = yaml::parse(&source.text).map_err(|e| {
        vec![Diagnostic::new(format!("invalid YAML: {}", e.message))
            .at(&source, e.span)
            .hint("check indentation and quoting near this position")]
    })?;
    let (value, index) = yaml::to_json(&node);
    let mut problems = schema_problems(&source, &value, &index);
    if !problems.is_empty() {
        return Err(problems);
    }
    let scenario = build(&source, &value, &index);
    problems.extend(Checker::new(&source, &index, config).check(&scenario, &value));
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(problems)
    }
}

fn build(source: &Arc<SourceFile>, value: &Value, index: &SpanIndex) -> Scenario {
    let get_str = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let actions = |key: &str| -> Vec<Action> {
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
    };
    let steps = build_steps(value.get("steps"), "/steps", index);
    Scenario {
        source: source.clone(),
        name: get_str("name").unwrap_or_default(),
        description: get_str("description"),
        tags: value
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        skip: get_str("skip"),
        timeout: get_str("timeout").and_then(|t| super::duration::parse_duration(&t).ok()),
        ids: value
            .get("ids")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        vars: value
            .get("vars")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        setup: actions("setup"),
        steps,
        teardown: actions("teardown"),
        load: value.get("load").cloned(),
    }
}

/// Steps at `pointer`, recursively (an `each` holds steps of its own).
fn build_steps(value: Option<&Value>, pointer: &str, index: &SpanIndex) -> Vec<Step> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            let (kind, body) = step.as_object()?.iter().next()?;
            let at = format!("{pointer}/{i}/{}", yaml::pointer_escape(kind));
            let kind = StepKind::from_name(kind)?;
            let children = if kind == StepKind::Each {
                build_steps(body.get("steps"), &format!("{at}/steps"), index)
            } else {
                Vec::new()
            };
            Some(Step {
                span: index.key(&at),
                kind,
                body: body.clone(),
                children,
            })
        })
        .collect()
}

/// JSON Schema errors, turned into positioned diagnostics with hints.
fn schema_problems(source: &Arc<SourceFile>, value: &Value, index: &SpanIndex) -> Vec<Diagnostic> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for error in validator().iter_errors(value) {
        let pointer = error.instance_path.to_string();
        let schema_node = schema_at(&pointer);
        let diagnostic = match &error.kind {
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
            jsonschema::error::ValidationErrorKind::OneOfNotValid
            | jsonschema::error::ValidationErrorKind::OneOfMultipleValid => {
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
                    describe_place(&pointer),
                    match error.instance.as_ref() {
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
                    describe_place(&pointer),
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
fn schema_at(pointer: &str) -> Option<&'static Value> {
    let root = schema_json();
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
        }
    }

    fn problem(&mut self, pointer: &str, diagnostic: Diagnostic) {
        let span = self.index.lookup(pointer);
        self.problems.push(diagnostic.at(self.source, span));
    }

    fn check(mut self, scenario: &Scenario, value: &Value) -> Vec<Diagnostic> {
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
            self.action(&action.body, format!("/setup/{i}"), scenario);
        }
        self.steps(&scenario.steps, "/steps", scenario, &[]);
        for (i, action) in scenario.teardown.iter().enumerate() {
            self.action(&action.body, format!("/teardown/{i}"), scenario);
        }
        self.problems
    }

    fn action(&mut self, body: &Value, pointer: String, scenario: &Scenario) {
        self.templates(body, pointer.clone(), &[]);
        if let Some(file) = body.get("sql_file").and_then(Value::as_str) {
            self.file_exists(file, &format!("{pointer}/sql_file"), scenario);
        }
    }

    fn file_exists(&mut self, file: &str, pointer: &str, scenario: &Scenario) {
        if template::is_template(file) {
            return;
        }
        let base = scenario.path().parent().unwrap_or(Path::new("."));
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

    fn steps(&mut self, steps: &[Step], pointer: &str, scenario: &Scenario, outer: &[String]) {
        for (i, step) in steps.iter().enumerate() {
            let at = format!("{pointer}/{i}/{}", step.kind.name());
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
                self.steps(&step.children, &format!("{at}/steps"), scenario, &inner);
            } else {
                self.step(step, at, scenario, outer);
            }
        }
    }

    fn step(&mut self, step: &Step, pointer: String, scenario: &Scenario, outer: &[String]) {
        // Names only this step kind provides to its own templates, plus loop variables.
        let mut locals: Vec<&str> = match step.kind {
            StepKind::Send => vec!["index"],
            StepKind::Connect | StepKind::Authenticate => vec!["token"],
            _ => vec![],
        };
        locals.extend(outer.iter().map(String::as_str));
        let locals = locals.as_slice();
        self.templates(&step.body, pointer.clone(), locals);
        if step.kind.uses_connection() {
            self.connection_ref(step.body.get("on").and_then(Value::as_str), &pointer);
        }
        match step.kind {
            StepKind::Connect => {
                let name = step
                    .body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
                if let Some(file) = step.body.get("ca_file").and_then(Value::as_str) {
                    self.file_exists(file, &format!("{pointer}/ca_file"), scenario);
                }
                if template::is_template(&name) {
                    self.dynamic_connections = true;
                } else if !self.connections.contains(&name) {
                    self.connections.push(name);
                }
                self.typed::<ConnectStep>(&step.body, &pointer);
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
            StepKind::Http => self.typed::<HttpStep>(&step.body, &pointer),
            StepKind::Close => self.typed::<CloseStep>(&step.body, &pointer),
            StepKind::Disconnect => self.typed::<DisconnectStep>(&step.body, &pointer),
            StepKind::Sql => self.typed::<SqlStep>(&step.body, &pointer),
            StepKind::Redis => self.typed::<RedisStep>(&step.body, &pointer),
            StepKind::StartProcess => self.typed::<StartProcessStep>(&step.body, &pointer),
            StepKind::StopProcess => self.typed::<StopProcessStep>(&step.body, &pointer),
            StepKind::Sleep | StepKind::Each => {}
        }
        // Captures become variables for later steps.
        collect_captures(&step.body, &mut self.vars);
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
            if template::is_template(event) || known.contains(event) {
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

    fn templates(&mut self, value: &Value, pointer: String, locals: &[&str]) {
        // Templated regexes are checked when rendered, at run time.
        if let Some(text) = value.as_str().filter(|t| !template::is_template(t)) {
            if let Some(problem) = crate::matcher::placeholder_problem(text) {
                self.problem(
                    &pointer,
                    Diagnostic::new(format!("bad regex in `{text}`: {problem}"))
                        .hint("the regex crate's syntax: no look-around or backreferences"),
                );
            }
        }
        match value {
            Value::String(s) if template::is_template(s) => match template::referenced_names(s) {
                Err(message) => self.problem(
                    &pointer,
                    Diagnostic::new(format!("bad template: {message}")).hint(
                        "templates are minijinja: `{{ ids.alice }}`, `{{ vars.x }}`, `{{ env.X }}`",
                    ),
                ),
                Ok(names) => {
                    for name in names {
                        self.name_in_scope(&name, &pointer, locals);
                    }
                }
            },
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.templates(item, format!("{pointer}/{i}"), locals);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    self.templates(
                        item,
                        format!("{pointer}/{}", yaml::pointer_escape(key)),
                        locals,
                    );
                }
            }
            _ => {}
        }
    }

    fn name_in_scope(&mut self, name: &str, pointer: &str, locals: &[&str]) {
        let mut parts = name.splitn(3, '.');
        let root = parts.next().unwrap_or_default();
        // `vars.answer.type` reads field `type` of variable `answer`.
        let field = parts.next();
        match (root, field) {
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
            ("ids" | "vars" | "env", _) => {}
            (other, _) if locals.contains(&other) => {}
            (other, _) if template::environment().globals().any(|(g, _)| g == other) => {}
            (other, _) => self.problem(
                pointer,
                Diagnostic::new(format!("unknown name `{other}` in template"))
                    .hint("use `ids.<name>`, `vars.<name>` or `env.<NAME>`"),
            ),
        }
    }
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
        load_str(SourceFile::new("specs/t.yaml", text), &config())
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
    fn malformed_yaml_is_located() {
        let errs = load("name: x\nsteps:\n  - send: {json: [1, 2}\n").unwrap_err();
        assert!(errs[0].message.starts_with("invalid YAML"));
        assert_eq!(errs[0].span.map(|s| s.line), Some(3));
    }
}
