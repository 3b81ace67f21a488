//! The state of one running scenario: minted IDs, variables, open connections, and
//! access to shared resources. Step executors take it and a step body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use smallvec::SmallVec;

use super::resources::Resources;
use super::transcript::Transcript;
use super::ws::{Connection, FrameRules};
use crate::diagnostic::FailureKind;
use crate::diagnostic::SourceFile;
use crate::redact::Redactor;
use crate::spec::config::SuiteConfig;
use crate::spec::library::LibraryStep;
use crate::spec::model::Scenario;
use crate::template;

/// Why a step failed: a message, supporting notes, maybe a hint. The runner adds the
/// spec position of the step, so it is the same [`Diagnostic`](crate::diagnostic::Diagnostic) every error becomes.
pub type Failure = crate::diagnostic::Diagnostic;

pub type StepResult = Result<(), Failure>;

/// Values the whole run shares: the environment as templates see it, and what to
/// redact.
pub struct RunEnv {
    /// `{{ env.X }}` values, converted for templates once per run.
    env: minijinja::Value,
    /// Knows the secrets of every suite config in the run.
    pub redactor: Redactor,
    /// Config strings that read nothing but `env` (service URLs, the JWT secret),
    /// rendered once: they are the same for every step of every scenario.
    /// `None`: the string reads more than `env`.
    env_only: std::sync::Mutex<HashMap<String, Option<Value>>>,
}

impl RunEnv {
    /// The suite's environment (config defaults under the process env) and its secrets.
    pub fn new(config: &crate::spec::config::SuiteConfig) -> Self {
        Self {
            env: minijinja::Value::from_serialize(config.env_values()),
            redactor: Redactor::new(super::secrets(config)),
            env_only: Default::default(),
        }
    }

    /// A config string rendered once per run when it reads nothing but `env`; None
    /// when it reads anything else (IDs, variables, a function such as `uuid()`), which
    /// is rendered at each use.
    pub fn render_env_only(&self, raw: &str) -> Option<Result<Value, template::RenderError>> {
        let cache = || crate::sync::lock(&self.env_only);
        if let Some(known) = cache().get(raw) {
            return known.clone().map(Ok);
        }
        let env_only = template::referenced_names(raw)
            .is_ok_and(|names| names.iter().all(|n| n.starts_with("env.")));
        if !env_only {
            cache().insert(raw.to_string(), None);
            return None;
        }
        let ctx: minijinja::Value = [("env", self.env.clone())].into_iter().collect();
        let rendered = template::render_str(raw, &ctx);
        if let Ok(value) = &rendered {
            cache().insert(raw.to_string(), Some(value.clone()));
        }
        Some(rendered)
    }

    /// Also redact the secrets of other suite configs run alongside.
    pub fn hiding<'c>(mut self, configs: impl IntoIterator<Item = &'c SuiteConfig>) -> Self {
        self.redactor = self
            .redactor
            .merged(configs.into_iter().flat_map(super::secrets));
        self
    }
}

pub struct ScenarioContext {
    pub scenario: Arc<Scenario>,
    pub config: Arc<SuiteConfig>,
    pub resources: Arc<Resources>,
    pub run_env: Arc<RunEnv>,
    pub ids: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub connections: Connections,
    pub transcript: Transcript,
    pub rules: FrameRules,
    /// Loop variables of enclosing `each` steps.
    pub locals: Map<String, Value>,
    /// Processes started by `start_process`, by name.
    pub processes: HashMap<String, super::serve::Started>,
    /// Tokens minted or presented, and signing secrets given in steps: redacted from
    /// this attempt's report along with the run's secrets.
    pub presented: Vec<String>,
    /// Library calls in progress, innermost last: each has its own scope.
    pub frames: Vec<Frame>,
    /// The JSON pointer of the step running now, in its own file: a value that fails
    /// after rendering is reported at its field.
    pub step_at: Option<String>,
    /// Cleanup registered by library calls, run in reverse order at teardown.
    pub cleanups: Vec<Cleanup>,
    /// A requested stop ends the steps at their next boundary or wait.
    pub stop: super::stop::StopWatch,
    /// Set when a stop request, not a failure, ended the steps.
    pub interrupted: bool,
    /// What the running step's state assertions saw; moved to its record when it ends.
    pub observations: Vec<super::observed::Observation>,
    /// The scenario's template-free step bodies in their typed form, shared by its
    /// attempts.
    pub plans: Arc<super::plan::StepPlans>,
}

/// A scenario's connections by name, in the order they opened. Kept in the context
/// itself, not in a table of their own: a scenario has a connection or a few, and every
/// `send` and `expect` looks one up.
#[derive(Default)]
pub struct Connections(SmallVec<[(String, Arc<Connection>); 1]>);

impl Connections {
    pub fn get(&self, name: &str) -> Option<&Arc<Connection>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Keep `connection` as `name`, in place of the one of that name (closed) if any.
    pub fn insert(&mut self, name: String, connection: Arc<Connection>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, kept)) => *kept = connection,
            None => self.0.push((name, connection)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.0.iter().map(|(_, c)| c)
    }

    /// Every connection, in the order they opened; none is left.
    pub fn drain(&mut self) -> impl Iterator<Item = Arc<Connection>> {
        std::mem::take(&mut self.0).into_iter().map(|(_, c)| c)
    }
}

/// What a step's templates read: the root names `ScenarioContext::template_roots` lists,
/// found where they are kept, so that a template made of lookups (nearly all) needs no
/// minijinja context built for it.
pub struct StepScope<'a> {
    ctx: &'a ScenarioContext,
    locals: &'a [(&'a str, Value)],
}

impl template::Scope for StepScope<'_> {
    /// The name as the context holds it: a later root hides an earlier one.
    fn root(&self, name: &str) -> Option<template::Found<'_>> {
        let (_, root) = (self.ctx.template_roots(self.locals))
            .rev()
            .find(|(root, _)| *root == name)?;
        Some(match root {
            Root::Env => template::Found::Minijinja(self.ctx.run_env.env.clone()),
            Root::Json(value) => template::Found::Json(value),
            Root::Map(map) => template::Found::Map(map),
        })
    }

    fn context(&self) -> minijinja::Value {
        self.ctx.template_context(self.locals)
    }
}

/// Where the value of a root name of templates is kept.
#[derive(Clone, Copy)]
enum Root<'a> {
    Env,
    Json(&'a Value),
    Map(&'a Map<String, Value>),
}

/// Each entry of a map as a root name of templates.
fn json_roots(map: &Map<String, Value>) -> impl DoubleEndedIterator<Item = (&str, Root<'_>)> {
    map.iter()
        .map(|(name, value)| (name.as_str(), Root::Json(value)))
}

/// The scope of a library call in progress: its parameters and its own variables.
/// Calls see nothing of their caller but what they are passed (and `env`).
pub struct Frame {
    pub library: Arc<LibraryStep>,
    pub params: Map<String, Value>,
    pub vars: Map<String, Value>,
    /// Index of this call's entry in [`ScenarioContext::cleanups`].
    pub cleanup: usize,
    /// The caller's loop variables, restored when the call returns.
    pub outer_locals: Map<String, Value>,
}

/// A library call's cleanup, with the scope its actions render in: the call's
/// parameters and whatever variables it had produced when it ended.
pub struct Cleanup {
    pub library: Arc<LibraryStep>,
    pub params: Map<String, Value>,
    pub vars: Map<String, Value>,
}

impl ScenarioContext {
    pub fn template_context(&self, locals: &[(&str, Value)]) -> minijinja::Value {
        (self.template_roots(locals))
            .map(|(name, root)| {
                let value = match root {
                    Root::Env => self.run_env.env.clone(),
                    Root::Json(value) => minijinja::Value::from_serialize(value),
                    Root::Map(map) => minijinja::Value::from_serialize(map),
                };
                (name.to_string(), value)
            })
            .collect()
    }

    /// The names templates read, in the order the context holds them (a later one hides
    /// an earlier one): `env`; in a library call its `vars` and parameters, else `ids`,
    /// `vars` and the case's values; loop variables; the step's own `locals`.
    fn template_roots<'a>(
        &'a self,
        locals: &'a [(&'a str, Value)],
    ) -> impl DoubleEndedIterator<Item = (&'a str, Root<'a>)> {
        let frame = self.frames.last();
        let own = frame.is_none();
        let case = self.scenario.case.as_ref().filter(|_| own);
        std::iter::once(("env", Root::Env))
            .chain(frame.map(|f| ("vars", Root::Map(&f.vars))))
            .chain(frame.into_iter().flat_map(|f| json_roots(&f.params)))
            .chain(own.then_some(("ids", Root::Map(&self.ids))))
            .chain(own.then_some(("vars", Root::Map(&self.vars))))
            .chain(case.map(|c| ("case", Root::Map(&c.values))))
            .chain(json_roots(&self.locals))
            .chain(
                locals
                    .iter()
                    .map(|(name, value)| (*name, Root::Json(value))),
            )
    }

    /// The scope a template of the running step reads, with the step's own `locals`.
    pub fn scope<'a>(&'a self, locals: &'a [(&'a str, Value)]) -> StepScope<'a> {
        StepScope { ctx: self, locals }
    }

    pub fn render_value(&self, body: &Value, locals: &[(&str, Value)]) -> Result<Value, Failure> {
        // Most bodies inside loops (`{type: ping}`) have nothing to render.
        if !template::contains_template(body) {
            return Ok(body.clone());
        }
        let scope = self.scope(locals);
        template::render_value(body, &scope).map_err(|e| self.template_failure(e))
    }

    /// A template problem of the running step, at its field.
    fn template_failure(&self, e: template::TemplateError) -> Failure {
        let failure = Failure::of(
            FailureKind::Template,
            format!("template error at `{}`: {}", e.pointer, e.message),
        )
        .hint("check the names used: ids.<name>, vars.<name>, env.<NAME>");
        self.at_field(failure, &e.pointer)
    }

    /// Like [`ScenarioContext::render`], for a step's own body as the spec holds it
    /// (its scenario's or its library step's, never a copy: plans are kept by
    /// address), whose templates are found and compiled once per scenario run.
    pub fn render_step<T: DeserializeOwned>(
        &self,
        body: &Value,
        locals: &[(&str, Value)],
    ) -> Result<T, Failure> {
        let plan = self.kept_plan(body).map_err(|e| self.template_failure(e))?;
        let scope = self.scope(locals);
        self.read_rendered(|| plan.render(&scope).map_err(|e| self.template_failure(e)))
    }

    /// A field of a step's own body (see [`ScenarioContext::render_step`]) rendered from
    /// its plan as JSON text, written as it renders; `None` when it does not render (the
    /// caller renders the whole body then, to report it at its field).
    pub fn field_text(&self, field: &Value, locals: &[(&str, Value)]) -> Option<String> {
        let plan = self.kept_plan(field).ok()?;
        plan.render_json_text(&self.scope(locals)).ok()
    }

    /// A field of a step's own body rendered from its plan; `None` as for
    /// [`ScenarioContext::field_text`].
    pub fn field_value(&self, field: &Value, locals: &[(&str, Value)]) -> Option<Value> {
        let plan = self.kept_plan(field).ok()?;
        plan.render(&self.scope(locals)).ok()
    }

    /// The render plan of a step's own body or field, made the first time it renders.
    fn kept_plan(
        &self,
        tree: &Value,
    ) -> Result<Arc<template::RenderPlan<'static>>, template::TemplateError> {
        let make = || template::RenderPlan::new(tree).map(|plan| plan.into_owned());
        let plan = self.plans.renders.get_any(tree, make)?;
        // A copy passed here would find the plan of whatever sat at its address before.
        debug_assert!(
            plan.is_plan_of(tree),
            "a kept plan asked for a copy of a body"
        );
        Ok(plan)
    }

    /// The plan of a body of this scenario's own steps (see [`super::plan`]), made by
    /// `make` the first time; `None` inside a library call or when the body has
    /// templates.
    pub fn planned<T>(
        &self,
        plans: &super::plan::Plans<T>,
        body: &Value,
        make: impl FnOnce() -> Result<T, Failure>,
    ) -> Result<Option<Arc<T>>, Failure> {
        if !self.frames.is_empty() {
            return Ok(None);
        }
        plans.get(body, make)
    }

    /// Render a step body and read it as its typed form; a field that does not fit is
    /// reported at its own position.
    pub fn render<T: DeserializeOwned>(
        &self,
        body: &Value,
        locals: &[(&str, Value)],
    ) -> Result<T, Failure> {
        self.read_rendered(|| self.render_value(body, locals))
    }

    /// What `render` renders, read as its typed form. The common case skips
    /// serde_path_to_error's bookkeeping (a copy of every key read); a body that does
    /// not fit is rendered again and read with it, to find the field.
    fn read_rendered<T: DeserializeOwned>(
        &self,
        render: impl Fn() -> Result<Value, Failure>,
    ) -> Result<T, Failure> {
        match serde_json::from_value(render()?) {
            Ok(typed) => Ok(typed),
            Err(_) => self.typed(render()?),
        }
    }

    /// A rendered step body read as its typed form; a field that does not fit is
    /// reported at its own position.
    pub fn typed<T: DeserializeOwned>(&self, rendered: Value) -> Result<T, Failure> {
        serde_path_to_error::deserialize(rendered).map_err(|e| {
            let field = field_pointer(e.path());
            let failure = Failure::of(
                FailureKind::Template,
                format!(
                    "invalid step after templating: {}{}",
                    if field.is_empty() {
                        String::new()
                    } else {
                        format!("`{}`: ", e.path())
                    },
                    e.inner()
                ),
            );
            self.at_field(failure, &field)
        })
    }

    /// Locate a failure at a field of the running step (a pointer relative to its body).
    pub fn at_field(&self, failure: Failure, field: &str) -> Failure {
        let Some(step) = &self.step_at else {
            return failure;
        };
        let index = match self.frames.last() {
            Some(frame) => &frame.library.index,
            None => &self.scenario.index,
        };
        let span = index.lookup(&format!("{step}{field}"));
        failure.at(self.source(), span)
    }

    /// Note the step running now (its JSON pointer), in the buffer the previous step
    /// used: this runs at every step, and a new string each time would be an allocation.
    pub fn set_step_at(&mut self, pointer: &str) {
        let at = self.step_at.get_or_insert_with(String::new);
        at.clear();
        at.push_str(pointer);
    }

    pub fn connection(&self, on: Option<&str>) -> Result<Arc<Connection>, Failure> {
        match on {
            Some(name) => self.connections.get(name).cloned().ok_or_else(|| {
                Failure::of(
                    FailureKind::Spec,
                    format!("no connection named `{name}` is open"),
                )
            }),
            None if self.connections.len() == 1 => {
                Ok(self.connections.values().next().cloned().expect("one"))
            }
            None => Err(Failure::of(
                FailureKind::Spec,
                "this step needs `on:` to name its connection",
            )),
        }
    }

    /// `{{ env.X }}` values as templates see them.
    pub fn env(&self) -> minijinja::Value {
        self.run_env.env.clone()
    }

    /// The variables steps read and captures write: the innermost call's, else the
    /// scenario's.
    pub fn vars_mut(&mut self) -> &mut Map<String, Value> {
        match self.frames.last_mut() {
            Some(frame) => &mut frame.vars,
            None => &mut self.vars,
        }
    }

    /// The file whose steps are running (a library file inside a call): failures point
    /// into it and relative paths resolve against its folder.
    pub fn source(&self) -> &Arc<SourceFile> {
        match self.frames.last() {
            Some(frame) => &frame.library.source,
            None => &self.scenario.source,
        }
    }

    /// The folder relative paths in the running steps resolve against.
    pub fn base_dir(&self) -> std::path::PathBuf {
        self.source().path.parent().map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        )
    }

    pub fn step_timeout(&self) -> Duration {
        self.config.timeouts.step
    }

    fn service_url(
        &self,
        table: &std::collections::BTreeMap<String, String>,
        name: Option<&str>,
        env_default: &str,
        what: &str,
    ) -> Result<String, Failure> {
        let name = name.unwrap_or("default");
        let raw = match table.get(name) {
            Some(url) => url.clone(),
            None if name == "default" => format!("{{{{ env.{env_default} }}}}"),
            None => {
                return Err(Failure::of(
                    FailureKind::Spec,
                    format!("no {what} named `{name}` in the suite config"),
                ))
            }
        };
        let rendered = match self.run_env.render_env_only(&raw) {
            Some(rendered) => rendered,
            None => template::render_str(&raw, &self.scope(&[])),
        };
        match rendered {
            Ok(Value::String(url)) => Ok(url),
            Ok(other) => Ok(other.to_string()),
            Err(e) => Err(Failure::of(
                FailureKind::Template,
                format!("cannot resolve the {what} URL: {e}"),
            )
            .hint(format!(
                "set {env_default} or declare `{}` in engine.yaml",
                if what == "database" {
                    "databases: { default: ... }"
                } else {
                    "redis: { default: ... }"
                }
            ))),
        }
    }

    pub fn database_url(&self, name: Option<&str>) -> Result<String, Failure> {
        self.service_url(&self.config.databases, name, "DATABASE_URL", "database")
    }

    pub fn redis_url(&self, name: Option<&str>) -> Result<String, Failure> {
        self.service_url(&self.config.redis, name, "REDIS_URL", "Redis server")
    }

    /// Keep what a state assertion saw, for the step's record (a bounded number).
    pub fn observed(&mut self, observation: super::observed::Observation) {
        if self.observations.len() < super::observed::KEPT_PER_STEP {
            self.observations.push(observation);
        }
    }

    /// Store captures from a value: name → JSONPath.
    pub fn capture(
        &mut self,
        captures: &std::collections::BTreeMap<String, String>,
        from: &Value,
    ) -> StepResult {
        for (name, path) in captures {
            let value = json_path(path, from)?;
            match value {
                Some(v) => {
                    self.vars_mut().insert(name.clone(), v);
                }
                None => {
                    return Err(Failure::of(
                        FailureKind::Mismatch,
                        format!("capture `{name}`: `{path}` found nothing"),
                    )
                    .note(format!(
                        "in: {}",
                        crate::text::truncate(&from.to_string(), 500)
                    )))
                }
            }
        }
        Ok(())
    }
}

/// First value a JSONPath finds.
pub fn json_path(path: &str, value: &Value) -> Result<Option<Value>, Failure> {
    static PATHS: crate::memo::Memo<serde_json_path::JsonPath> = crate::memo::Memo::new();
    let parsed = PATHS.get_or_try_insert(path, || crate::json_path::parse(path))?;
    Ok(parsed.query(value).first().cloned())
}

/// A serde path (`authenticate.as`, `headers[0]`) as a JSON pointer (`/authenticate/as`).
fn field_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&crate::spec::yaml::pointer_escape(key));
            }
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_strings_reading_only_env_are_rendered_once_others_at_each_use() {
        let text = "env: { DB_PORT: \"5999\" }\n";
        let config = SuiteConfig::parse(&SourceFile::new("engine.yaml", text)).unwrap();
        let run_env = RunEnv::new(&config);
        let url = "postgres://127.0.0.1:{{ env.DB_PORT }}/test";
        let once = run_env.render_env_only(url).unwrap().unwrap();
        assert_eq!(once, json!("postgres://127.0.0.1:5999/test"));
        assert_eq!(run_env.render_env_only(url).unwrap().unwrap(), once);
        assert_eq!(
            run_env.render_env_only("plain").unwrap().unwrap(),
            json!("plain")
        );
        // Anything else may differ from one use to the next.
        assert!(run_env.render_env_only("{{ vars.url }}").is_none());
        assert!(run_env
            .render_env_only("{{ env.DB_PORT }}{{ ids.a }}")
            .is_none());
        assert!(run_env.render_env_only("x{{ uuid() }}").is_none());
        // An undefined name stays an error (and is not kept).
        assert!(run_env
            .render_env_only("{{ env.MISSING }}")
            .unwrap()
            .is_err());
    }
}
