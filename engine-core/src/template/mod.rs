//! Templating of spec values with minijinja: `{{ ids.alice }}`, `{{ vars.run_id }}`,
//! `{{ env.WS_URL }}`. A string that is exactly one `{{ expression }}` keeps the
//! expression's type (a captured number stays a number); anything else renders to a
//! string. Undefined names are errors, never empty strings.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use lookups::Lookups;

mod lookups;
mod plan;

pub use plan::RenderPlan;

/// Instructions one rendering may run. Rendering is synchronous on a runtime worker,
/// so a runaway loop (`{% for %}` over 10^10) must stop on its own, quickly; real spec
/// templates use a few thousand at most.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// The process-wide template environment (compiling is per call; the environment
/// itself holds only settings and filters).
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
        env.add_function("now_ms", || chrono::Utc::now().timestamp_millis());
        // A TCP port free right now on 127.0.0.1, for processes a scenario starts.
        env.add_function("free_port", || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })
        });
        env
    })
}

/// Does this string need rendering?
pub fn is_template(text: &str) -> bool {
    // One pass over the bytes: `engine check` asks this of every string of every spec,
    // and two `contains` would set up a substring searcher each.
    text.as_bytes()
        .windows(2)
        .any(|pair| matches!(pair, [b'{', b'{' | b'%']))
}

/// Does any string in this JSON tree (keys included) need rendering?
pub fn contains_template(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(contains_template),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| is_template(k) || contains_template(v)),
        _ => false,
    }
}

/// Is this string exactly one `{{ expression }}` (which keeps the expression's type)?
pub fn is_sole_expression(text: &str) -> bool {
    sole_expression(text).is_some()
}

/// The expression inside a string that is exactly `{{ expr }}`.
fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let another_tag = inner
        .as_bytes()
        .windows(2)
        .any(|pair| matches!(pair, [b'{', b'{' | b'%'] | [b'}', b'}']));
    (!another_tag).then_some(inner)
}

/// A template problem, with the JSON pointer (relative to the rendered value) where it is.
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub pointer: String,
    pub message: RenderError,
}

impl TemplateError {
    /// A problem with the value itself (the empty pointer).
    fn here(message: RenderError) -> TemplateError {
        TemplateError {
            pointer: String::new(),
            message,
        }
    }

    /// The same problem seen from the parent, under its key or index `segment`.
    fn under(mut self, segment: &str) -> TemplateError {
        let escaped = crate::spec::yaml::pointer_escape(segment);
        self.pointer.insert_str(0, &format!("/{escaped}"));
        self
    }
}

/// Why a template string cannot be rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// It does not parse.
    #[error("{0}")]
    Syntax(String),
    /// It parses, but evaluating it failed (an undefined name, a bad argument…).
    #[error("{0}")]
    Evaluation(String),
    /// The sole expression yields nothing.
    #[error("`{0}` is undefined")]
    Undefined(String),
    /// It ran past [`TEMPLATE_FUEL`].
    #[error(
        "the template did too much work and was stopped (over {TEMPLATE_FUEL} steps); \
         look for a loop over a huge range"
    )]
    OutOfFuel,
    /// Its value has no JSON form.
    #[error("{0}")]
    NotJson(String),
}

impl From<minijinja::Error> for RenderError {
    fn from(error: minijinja::Error) -> Self {
        let kind = error.kind();
        if kind == minijinja::ErrorKind::OutOfFuel {
            return RenderError::OutOfFuel;
        }
        let mut text = kind.to_string();
        if let Some(detail) = error.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        match kind {
            minijinja::ErrorKind::SyntaxError => RenderError::Syntax(text),
            _ => RenderError::Evaluation(text),
        }
    }
}

/// A compiled template string. Spec strings live for the whole run, so compiling each
/// distinct one once (and keeping it) is both bounded and much cheaper than compiling
/// at every step of every scenario.
struct Compiled {
    /// The template's text (for errors).
    source: &'static str,
    minijinja: Minijinja,
    /// The same template read as lookups only, when it is that.
    lookups: Option<Lookups>,
}

enum Minijinja {
    Expression(minijinja::Expression<'static, 'static>),
    Template(minijinja::Template<'static, 'static>),
}

fn compiled(text: &str) -> Result<std::sync::Arc<Compiled>, RenderError> {
    static TEMPLATES: crate::memo::Memo<Compiled> = crate::memo::Memo::new();
    TEMPLATES.get_or_try_insert(text, || {
        // Leaked on purpose: one copy per distinct template string of the run's specs.
        let source: &'static str = Box::leak(text.to_string().into_boxed_str());
        let env = environment();
        let minijinja = match sole_expression(source) {
            Some(expr) => Minijinja::Expression(env.compile_expression(expr)?),
            None => Minijinja::Template(env.template_from_str(source)?),
        };
        Ok(Compiled {
            source,
            minijinja,
            lookups: Lookups::parse(source),
        })
    })
}

/// What templates read: each root name (`ids`, `vars`, `env`, a loop variable) found on
/// demand, and the whole context for minijinja, built only when a template is more
/// than lookups. Building it for every templated step cost more than the step.
pub trait Scope {
    /// The value of a root name, if there.
    fn root(&self, name: &str) -> Option<Found<'_>>;
    /// Every name, as minijinja reads them.
    fn context(&self) -> minijinja::Value;
}

/// A value a lookup found: still in its JSON form, or a minijinja value.
pub enum Found<'a> {
    Json(&'a Value),
    /// A JSON object kept as its map (`ids`, `vars`).
    Map(&'a serde_json::Map<String, Value>),
    Minijinja(minijinja::Value),
}

/// A minijinja map (a context made by hand) is a scope.
impl Scope for minijinja::Value {
    fn root(&self, name: &str) -> Option<Found<'_>> {
        let value = self.get_attr(name).ok()?;
        (!value.is_undefined()).then_some(Found::Minijinja(value))
    }

    fn context(&self) -> minijinja::Value {
        self.clone()
    }
}

/// A scope's minijinja context, built the first time a template of one rendering needs
/// it.
struct Lazy<'s, S: Scope + ?Sized> {
    scope: &'s S,
    built: std::cell::OnceCell<minijinja::Value>,
}

impl<'s, S: Scope + ?Sized> Lazy<'s, S> {
    fn new(scope: &'s S) -> Self {
        Lazy {
            scope,
            built: std::cell::OnceCell::new(),
        }
    }

    fn context(&self) -> &minijinja::Value {
        self.built.get_or_init(|| self.scope.context())
    }
}

/// Render one string.
pub fn render_str(text: &str, scope: &(impl Scope + ?Sized)) -> Result<Value, RenderError> {
    if !is_template(text) {
        return Ok(Value::String(text.to_string()));
    }
    render_compiled(&*compiled(text)?, &Lazy::new(scope))
}

fn render_compiled<S: Scope + ?Sized>(
    compiled: &Compiled,
    scope: &Lazy<'_, S>,
) -> Result<Value, RenderError> {
    if let Some(value) = compiled
        .lookups
        .as_ref()
        .and_then(|l| l.render(scope.scope))
    {
        return Ok(value);
    }
    let ctx = scope.context();
    match &compiled.minijinja {
        Minijinja::Expression(expr) => {
            let value = expr.eval(ctx)?;
            if value.is_undefined() {
                let text = compiled.source;
                return Err(RenderError::Undefined(
                    sole_expression(text).unwrap_or(text).trim().to_string(),
                ));
            }
            serde_json::to_value(&value).map_err(|e| RenderError::NotJson(e.to_string()))
        }
        Minijinja::Template(template) => Ok(Value::String(template.render(ctx)?)),
    }
}

/// Render every string in a JSON tree (keys included).
pub fn render_value(value: &Value, scope: &(impl Scope + ?Sized)) -> Result<Value, TemplateError> {
    RenderPlan::new(value)?.render(scope)
}

/// The dotted names a template reads, as [`referenced_names`] gives them, when it only
/// looks names up (no filter, test, function, operator or tag): read off its text.
/// `None` for any other template.
pub fn lookup_names(text: &str) -> Option<Vec<String>> {
    let mut names = lookups::Lookups::parse(text)?.names();
    names.sort();
    names.dedup();
    Some(names)
}

/// Parse a template without rendering it: its syntax errors, and the dotted names it
/// reads (`ids.alice`, `vars.run_id`, `env.WS_URL`).
pub fn referenced_names(text: &str) -> Result<Vec<String>, RenderError> {
    // Nearly every template in a spec only looks names up: those are read off the
    // text (`engine check` meets thousands of them), the rest parsed by minijinja.
    match lookup_names(text) {
        Some(names) => Ok(names),
        None => names_by_minijinja(text),
    }
}

fn names_by_minijinja(text: &str) -> Result<Vec<String>, RenderError> {
    let env = environment();
    let names = if let Some(expr) = sole_expression(text) {
        env.compile_expression(expr)?.undeclared_variables(true)
    } else {
        env.template_from_str(text)?.undeclared_variables(true)
    };
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> minijinja::Value {
        minijinja::Value::from_serialize(json!({
            "ids": {"alice": "usr_1"},
            "vars": {"n": 5, "obj": {"a": [1, 2]}},
            "env": {"WS_URL": "ws://x"}
        }))
    }

    /// Names read off a lookup template are the ones minijinja finds in it, and
    /// templates that do more than look up go to minijinja.
    #[test]
    fn names_of_lookup_templates_are_minijinjas() {
        let lookups = [
            "{{ ids.alice }}",
            "{{i}}",
            "{{  vars.obj.a  }}",
            "conn:{{ vars.conn }}",
            "{{ env.WS_URL }}/ws?u={{ ids.a }}&v={{ ids.a }}",
            "{{ b.x }}{{ a.y }}",
            "{{ _under.score_1 }}",
        ];
        for text in lookups {
            assert!(lookup_names(text).is_some(), "{text}");
            assert_eq!(
                referenced_names(text).unwrap(),
                names_by_minijinja(text).unwrap(),
                "{text}"
            );
        }
        for text in [
            "{{ a | upper }}",
            "{{ a + 1 }}",
            "{% if a %}x{% endif %}",
            "{{ true }}",
            "{{ a['b'] }}",
        ] {
            assert!(lookup_names(text).is_none(), "{text}");
        }
        assert!(referenced_names("{{ a. }}").is_err());
    }

    #[test]
    fn templates_and_sole_expressions_are_told_apart() {
        for text in ["{{ a }}", "x{{a}}", "{% if a %}{% endif %}", "{{", "é{%"] {
            assert!(is_template(text), "{text}");
        }
        for text in ["", "{", "{ {", "}}", "{#x#}", "#regex:^a{2}$", "é{"] {
            assert!(!is_template(text), "{text}");
        }
        assert_eq!(sole_expression(" {{ a.b }} "), Some(" a.b "));
        for text in [
            "{{ a }}{{ b }}",
            "{{ a }} }}",
            "{{ {% x %} }}",
            "x{{ a }}",
            "{{ a",
        ] {
            assert_eq!(sole_expression(text), None, "{text}");
        }
    }

    #[test]
    fn sole_expressions_keep_their_type() {
        assert_eq!(render_str("{{ vars.n }}", &ctx()).unwrap(), json!(5));
        assert_eq!(
            render_str("{{ vars.obj }}", &ctx()).unwrap(),
            json!({"a": [1, 2]})
        );
        assert_eq!(render_str("n={{ vars.n }}", &ctx()).unwrap(), json!("n=5"));
        assert_eq!(render_str("#string", &ctx()).unwrap(), json!("#string"));
    }

    #[test]
    fn undefined_names_are_errors() {
        let err = render_str("{{ vars.missing }}", &ctx()).unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
        let err = render_value(&json!({"a": ["{{ ids.bob }}x"]}), &ctx()).unwrap_err();
        assert_eq!(err.pointer, "/a/0");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel_quickly() {
        let started = std::time::Instant::now();
        let err = render_str(
            "{% for i in range(100000) * 100000 %}{{ i }}{% endfor %}",
            &ctx(),
        )
        .unwrap_err();
        assert!(matches!(err, RenderError::OutOfFuel), "{err:?}");
        assert!(
            err.to_string().contains("the template did too much work"),
            "{err}"
        );
        // Generous: a debug build on a busy machine; the point is seconds, not hours.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Ordinary loops are far below the limit.
        let fine = render_str("{% for i in range(2000) %}{{ i }},{% endfor %}", &ctx()).unwrap();
        assert!(fine.as_str().unwrap().ends_with("1999,"));
    }

    #[test]
    fn lists_referenced_names() {
        let names = referenced_names("{{ env.WS_URL }}/ws?u={{ ids.alice }}").unwrap();
        assert_eq!(names, vec!["env.WS_URL", "ids.alice"]);
        assert!(matches!(
            referenced_names("{{ ids.alice "),
            Err(RenderError::Syntax(_))
        ));
    }
}
