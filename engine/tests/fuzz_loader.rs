//! Fuzz harness for the spec loader and checker: random YAML structures in every style,
//! spec-shaped documents, nesting thousands deep in every YAML form (block, flow,
//! compact, anchors and aliases), huge numbers and durations, odd unicode, template and
//! placeholder oddities, mutations of the real specs in `specs/` and of its suite config.
//!
//! Whatever the input, loading must return a value or located problems: no panic, no
//! stack overflow (which aborts the whole test binary, so it cannot pass unnoticed). A
//! spec the checker accepts then goes through what `engine run` does with spec text
//! before touching a service (variables and step bodies rendered, typed step forms,
//! durations, placeholders matched, JSONPaths of captures) without panicking either.
//!
//! Each generator runs `ENGINE_FUZZ_CASES` inputs (default 300: the size CI runs in
//! `cargo test`); `scripts/fuzz.sh` runs a million. With `ENGINE_FUZZ_LOG=DIR` every
//! input is written to `DIR/<generator>.yaml` before it is tried, so an input that
//! aborts the process is left there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use engine::diagnostic::SourceFile;
use engine::spec::config::SuiteConfig;
use engine::spec::library::Library;
use engine::spec::load::load_str;
use engine::spec::model::{self, Scenario, Step, StepKind};
use engine::{matcher, template};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------
// Driving

fn cases() -> u32 {
    std::env::var("ENGINE_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

/// Run `cases()` inputs from `strategy` through `exercise`; print the count.
fn fuzz<S>(name: &str, strategy: S, exercise: fn(&str))
where
    S: Strategy<Value = String>,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let log = std::env::var_os("ENGINE_FUZZ_LOG")
        .map(|dir| PathBuf::from(dir).join(format!("{name}.yaml")));
    let tried = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let result = TestRunner::new(config).run(&strategy, |text| {
        if let Some(log) = &log {
            let _ = std::fs::write(log, &text);
        }
        tried.fetch_add(1, Ordering::Relaxed);
        exercise(&text);
        Ok(())
    });
    let tried = tried.into_inner();
    let accepted = ACCEPTED.with(|a| a.replace(0));
    match result {
        Ok(()) => eprintln!(
            "fuzz {name}: {tried} inputs, {accepted} accepted by the checker, 0 panics, {:.1}s",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => panic!("fuzz {name}: a panic after {tried} inputs: {e}"),
    }
}

thread_local! {
    /// Inputs of this test thread that passed the checker (and went on to the run part).
    static ACCEPTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The suite's own config: ID kinds, event schemas (with `require_schemas`), JWT.
fn suite_config() -> &'static Arc<SuiteConfig> {
    static CONFIG: OnceLock<Arc<SuiteConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Arc::new(
            SuiteConfig::load(&repo().join("specs/engine.yaml")).expect("specs/engine.yaml loads"),
        )
    })
}

/// The suite's library steps, which the real specs call.
fn suite_library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let (library, problems) = Library::load(suite_config());
        assert!(
            problems.is_empty(),
            "the suite's library loads: {problems:?}"
        );
        library
    })
}

/// Every spec in `specs/`: its path (files it names resolve from there) and text.
fn real_specs() -> &'static Vec<(PathBuf, String)> {
    static SPECS: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let files = engine::discover::spec_files(&[repo().join("specs")]).expect("specs/ lists");
        // Library steps are not specs; they are loaded with the suite's library.
        let library: Vec<PathBuf> = Library::files(suite_config())
            .iter()
            .filter_map(|f| std::fs::canonicalize(f).ok())
            .collect();
        let specs: Vec<(PathBuf, String)> = files
            .into_iter()
            .filter(|f| std::fs::canonicalize(f).map_or(true, |f| !library.contains(&f)))
            .filter_map(|f| std::fs::read_to_string(&f).ok().map(|t| (f, t)))
            .collect();
        assert!(specs.len() > 20, "the real specs are found");
        specs
    })
}

/// A config without `require_schemas`, so generated event names are not all refused.
fn plain_config() -> &'static Arc<SuiteConfig> {
    static CONFIG: OnceLock<Arc<SuiteConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let source = SourceFile::new(
            repo().join("specs/engine.yaml"),
            "env: {WS_URL: 'ws://127.0.0.1:1'}\nids:\n  user: {prefix: usr_}\n",
        );
        Arc::new(SuiteConfig::parse(&source).expect("the plain config parses"))
    })
}

fn random_spec_path() -> PathBuf {
    repo().join("specs/fuzz_input.yaml")
}

fn real_config_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| std::fs::read_to_string(repo().join("specs/engine.yaml")).unwrap())
}

// ---------------------------------------------------------------------------------
// What an input goes through

/// Load and check a spec; when it passes, do what `run` does with it before any I/O.
fn exercise_spec(text: &str) {
    exercise_spec_at(
        &random_spec_path(),
        text,
        plain_config(),
        &Library::default(),
    );
}

/// The same, for an edited real spec (at its own path, so the files it names exist).
fn exercise_mutated_spec(input: &str) {
    let (path, text) = input.split_once('\n').unwrap_or_default();
    exercise_spec_at(Path::new(path), text, suite_config(), suite_library());
}

fn exercise_spec_at(path: &Path, text: &str, config: &Arc<SuiteConfig>, library: &Library) {
    let source = SourceFile::new(path, text);
    match load_str(source, config, library) {
        Ok(scenarios) => {
            ACCEPTED.with(|a| a.set(a.get() + 1));
            for scenario in &scenarios {
                exercise_run(scenario, config);
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a failed load names its problems");
            for problem in &problems {
                let _ = problem.render(false);
            }
        }
    }
}

/// Parse a suite config; when it parses, use it to load a real spec.
fn exercise_config(text: &str) {
    let source = SourceFile::new(repo().join("specs/engine.yaml"), text);
    match SuiteConfig::parse(&source) {
        Ok(config) => {
            let _ = config.env_values();
            let config = Arc::new(config);
            let (library, _) = Library::load(&config);
            let (path, spec) = &real_specs()[text.len() % real_specs().len()];
            exercise_spec_at(path, spec, &config, &library);
        }
        Err(problem) => {
            let _ = problem.render(false);
        }
    }
}

/// The service-free part of a run: render vars and every body as the runner does, read
/// each as its typed step, parse durations, evaluate placeholders, parse capture paths.
fn exercise_run(scenario: &Scenario, config: &SuiteConfig) {
    let ids = engine::ids::mint_all(&scenario.ids, &config.ids);
    let env = config.env_values();
    let base = json!({"ids": ids, "vars": {}, "env": env});
    let vars = template::render_value(
        &Value::Object(scenario.vars.clone()),
        &minijinja::Value::from_serialize(&base),
    )
    .ok()
    .and_then(|v| v.as_object().cloned())
    .unwrap_or_default();
    let mut root = base.as_object().cloned().unwrap_or_default();
    root.insert("vars".into(), Value::Object(vars));
    for local in ["i", "index", "token", "item"] {
        root.insert(local.into(), json!(0));
    }
    let ctx = minijinja::Value::from_serialize(&root);
    for action in scenario.setup.iter().chain(&scenario.teardown) {
        let _ = template::render_value(&action.body, &ctx);
    }
    fn walk(steps: &[Step], ctx: &minijinja::Value) {
        for step in steps {
            if let Ok(rendered) = template::render_value(&step.body, ctx) {
                exercise_body(step.kind, &rendered);
            }
            walk(&step.children, ctx);
        }
    }
    walk(&scenario.steps, &ctx);
}

fn exercise_body(kind: StepKind, body: &Value) {
    fn typed<T: serde::de::DeserializeOwned>(body: &Value) {
        let _ = serde_json::from_value::<T>(body.clone());
    }
    match kind {
        StepKind::Connect => typed::<model::ConnectStep>(body),
        StepKind::Authenticate => typed::<model::AuthenticateStep>(body),
        StepKind::Send => typed::<model::SendStep>(body),
        StepKind::Expect => typed::<model::ExpectStep>(body),
        StepKind::ExpectNone => typed::<model::ExpectNoneStep>(body),
        StepKind::ExpectClose => typed::<model::ExpectCloseStep>(body),
        StepKind::AssertDb => typed::<model::AssertDbStep>(body),
        StepKind::AssertRedis => typed::<model::AssertRedisStep>(body),
        StepKind::Http => typed::<model::HttpStep>(body),
        StepKind::Close => typed::<model::CloseStep>(body),
        StepKind::Disconnect => typed::<model::DisconnectStep>(body),
        StepKind::Sql => typed::<model::SqlStep>(body),
        StepKind::Redis => typed::<model::RedisStep>(body),
        StepKind::StartProcess => typed::<model::StartProcessStep>(body),
        StepKind::StopProcess => typed::<model::StopProcessStep>(body),
        StepKind::Each => typed::<model::EachStep>(body),
        StepKind::Assert => typed::<model::AssertStep>(body),
        StepKind::Subscribe => typed::<model::SubscribeStep>(body),
        StepKind::Complete => typed::<model::CompleteStep>(body),
        StepKind::Emit => typed::<model::EmitStep>(body),
        StepKind::Namespace => typed::<model::NamespaceStep>(body),
        // A library step's own steps are loaded (and fuzzed) with the library.
        StepKind::Sleep | StepKind::Call => {}
    }
    // Every string as a duration, every value as an expectation against itself and
    // against nothing, every capture path parsed and queried.
    visit(body, &mut |value| match value {
        Value::String(s) => {
            let _ = engine::spec::duration::parse_duration(s);
        }
        Value::Object(map) => {
            if let Some(Value::Object(captures)) = map.get("capture") {
                for path in captures.values().filter_map(Value::as_str) {
                    let _ = engine::runner::context::json_path(path, body);
                }
            }
        }
        _ => {}
    });
    let _ = matcher::compare(body, Some(body), false);
    let _ = matcher::compare(body, Some(body), true);
    let _ = matcher::compare(body, None, false);
    let _ = matcher::count_holds(body, 3);
}

fn visit(value: &Value, f: &mut impl FnMut(&Value)) {
    f(value);
    match value {
        Value::Array(items) => items.iter().for_each(|i| visit(i, f)),
        Value::Object(map) => map.values().for_each(|v| visit(v, f)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------
// Generators

const SPEC_KEYS: &[&str] = &[
    "name",
    "description",
    "tags",
    "skip",
    "timeout",
    "ids",
    "vars",
    "setup",
    "steps",
    "teardown",
    "load",
    "connect",
    "authenticate",
    "send",
    "expect",
    "expect_none",
    "expect_close",
    "assert_db",
    "assert_redis",
    "http",
    "close",
    "disconnect",
    "sql",
    "redis",
    "sleep",
    "each",
    "start_process",
    "stop_process",
    "url",
    "on",
    "json",
    "text",
    "event",
    "match",
    "capture",
    "count",
    "within",
    "during",
    "sequence",
    "unordered",
    "query",
    "params",
    "rows",
    "row",
    "row_count",
    "eventually",
    "key",
    "hash",
    "set",
    "length",
    "items",
    "as",
    "jwt",
    "claims",
    "expires_in",
    "exact",
    "repeat",
    "code",
    "reason",
    "vus",
    "max_vus",
    "rate",
    "stages",
    "target",
    "duration",
    "time_unit",
];

const CONFIG_KEYS: &[&str] = &[
    "env",
    "secrets",
    "jobs",
    "timeouts",
    "scenario",
    "step",
    "teardown",
    "events",
    "type_field",
    "schemas",
    "require_schemas",
    "ids",
    "prefix",
    "format",
    "auth",
    "jwt",
    "secret",
    "alg",
    "expires_in",
    "claims",
    "databases",
    "redis",
    "serve",
    "command",
    "ready",
    "cwd",
    "timeout",
    "default",
    "user",
    "thread",
];

/// Scalars that have broken parsers before, or might.
fn odd_scalar() -> impl Strategy<Value = String> + Clone {
    let deep_parens =
        (1usize..400).prop_map(|n| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n)));
    let deep_list =
        (1usize..400).prop_map(|n| format!("{{{{ {}1{} }}}}", "[".repeat(n), "]".repeat(n)));
    let deep_path = (1usize..3000).prop_map(|n| format!("${}{}", "[?@".repeat(n), "]".repeat(n)));
    let deep_regex =
        (1usize..3000).prop_map(|n| format!("#regex {}a{}", "(".repeat(n), ")".repeat(n)));
    let nested_if = (1usize..200)
        .prop_map(|n| format!("{}x{}", "{% if true %}".repeat(n), "{% endif %}".repeat(n)));
    let digits = (1usize..500).prop_map(|n| "9".repeat(n));
    let duration = (1usize..40, prop::sample::select(vec!["ms", "s", "m", "h"]))
        .prop_map(|(n, unit)| format!("{}{unit}", "9".repeat(n)));
    prop_oneof![
        prop::sample::select(vec![
            "99999999999999999999999",
            "-99999999999999999999999",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "1e999",
            "-1e999",
            "1e308",
            "0x7fffffffffffffff",
            "0xFFFFFFFFFFFFFFFFFFFF",
            "-0",
            ".inf",
            ".nan",
            "0o777",
            "99999999999999999999999h",
            "1.5s",
            "0ms",
            "8760h",
            "8761h",
            "1m30s",
            "5",
            "{{ ids.alice }}",
            "{{ vars.x | upper }}",
            "{{ vars.x | upperr }}",
            "{{ nope() }}",
            "{{ uuid() }}",
            "{{ range(3) | list }}",
            "{{ x is definedd }}",
            "{{ env.WS_URL }}",
            "{% for i in range(3) %}{{ i }}{% endfor %}",
            "{% macro f(n) %}[{{ f(n + 1) }}]{% endmacro %}{{ f(0) }}",
            "{{ 1/0 }}",
            "{{ 'a' ~ }}",
            "{{",
            "{%",
            "}}",
            "#interger",
            "#integer",
            "#regex (",
            "#regex ^a$",
            "#gte abc",
            "#gte 1",
            "#lt",
            "##literal",
            "#",
            "#uuid x",
            "$.a",
            "$..*",
            "$[",
            "$[?@.a]",
            "select 1",
            "DELETE FROM t",
            "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a",
            "\u{202e}rtl",
            "\u{200b}",
            "\u{feff}bom",
            "🦀🦀",
            "ǅ",
            "\u{10ffff}",
            "\t",
            " ",
            "a: b",
            "- x",
            "&a",
            "*a",
            "!!str",
            "!!binary x",
            "? x",
            "|",
            ">",
            "'",
            "\"",
        ])
        .prop_map(str::to_string),
        deep_parens,
        deep_list,
        deep_path,
        deep_regex,
        nested_if,
        digits,
        duration,
        "\\PC{0,12}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ]
}

fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
        1 => odd_scalar(),
    ]
}

/// A YAML value, before it is written out.
#[derive(Debug, Clone)]
enum Tree {
    Scalar(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

fn tree(keys: &'static [&'static str]) -> impl Strategy<Value = Tree> + Clone {
    let leaf = odd_scalar().prop_map(Tree::Scalar);
    leaf.prop_recursive(6, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Tree::Seq),
            prop::collection::vec((key(keys), inner), 0..6).prop_map(Tree::Map),
        ]
    })
}

/// How to write a tree out: styles chosen per node from a seed.
#[derive(Debug, Clone, Copy)]
struct Style(u64);

impl Style {
    fn pick(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn scalar(&mut self, text: &str) -> String {
        match self.pick(4) {
            0 => format!("'{}'", text.replace('\'', "''")),
            1 => serde_json::to_string(text).unwrap_or_default(),
            _ => text.to_string(),
        }
    }
}

fn write_flow(tree: &Tree, style: &mut Style, out: &mut String) {
    match tree {
        Tree::Scalar(s) => out.push_str(&style.scalar(s)),
        Tree::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(item, style, out);
            }
            out.push(']');
        }
        Tree::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&style.scalar(k));
                out.push_str(": ");
                write_flow(v, style, out);
            }
            out.push('}');
        }
    }
}

fn write_block(tree: &Tree, indent: usize, style: &mut Style, out: &mut String) {
    let pad = " ".repeat(indent);
    match tree {
        Tree::Seq(items) if !items.is_empty() && style.pick(5) > 0 => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Tree::Scalar(_) => {
                        write_flow(item, style, out);
                        out.push('\n');
                    }
                    _ if style.pick(3) == 0 => {
                        write_flow(item, style, out);
                        out.push('\n');
                    }
                    _ => {
                        out.push('\n');
                        write_block(item, indent + 2, style, out);
                    }
                }
            }
        }
        Tree::Map(entries) if !entries.is_empty() && style.pick(5) > 0 => {
            for (k, v) in entries {
                out.push_str(&pad);
                if style.pick(20) == 0 {
                    out.push_str(&format!("&a{} ", style.pick(3)));
                }
                out.push_str(&style.scalar(k));
                out.push(':');
                match v {
                    Tree::Scalar(_) => {
                        out.push(' ');
                        if style.pick(25) == 0 {
                            out.push_str(&format!("*a{}", style.pick(3)));
                        } else {
                            write_flow(v, style, out);
                        }
                        out.push('\n');
                    }
                    _ if style.pick(3) == 0 => {
                        out.push(' ');
                        write_flow(v, style, out);
                        out.push('\n');
                    }
                    _ => {
                        out.push('\n');
                        write_block(v, indent + 2, style, out);
                    }
                }
            }
        }
        _ => {
            out.push_str(&pad);
            write_flow(tree, style, out);
            out.push('\n');
        }
    }
}

fn document(tree: &Tree, seed: u64) -> String {
    let mut out = String::new();
    write_block(tree, 0, &mut Style(seed), &mut out);
    out
}

fn random_yaml(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    (tree(keys), any::<u64>()).prop_map(|(t, seed)| document(&t, seed))
}

fn scalar() -> impl Strategy<Value = Tree> {
    odd_scalar().prop_map(Tree::Scalar)
}

fn map(entries: Vec<(&str, Tree)>) -> Tree {
    Tree::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A step whose keys are right for its kind and whose values are odd: the shape the
/// schema accepts, so that the checker and the run-time part see the odd values.
fn step() -> impl Strategy<Value = Tree> {
    let any_tree = tree(SPEC_KEYS);
    prop_oneof![
        (scalar(), scalar()).prop_map(|(url, name)| map(vec![(
            "connect",
            map(vec![("url", url), ("name", name)])
        )])),
        any_tree
            .clone()
            .prop_map(|json| map(vec![("send", map(vec![("json", json)]))])),
        (scalar(), any_tree.clone(), scalar(), scalar()).prop_map(
            |(event, pattern, path, within)| map(vec![(
                "expect",
                map(vec![
                    ("event", event),
                    ("match", pattern),
                    ("capture", map(vec![("x", path)])),
                    ("within", within),
                ]),
            )])
        ),
        (any_tree.clone(), scalar()).prop_map(|(pattern, during)| map(vec![(
            "expect_none",
            map(vec![("match", pattern), ("during", during)]),
        )])),
        (scalar(), any_tree.clone(), scalar()).prop_map(|(query, row, count)| map(vec![(
            "assert_db",
            map(vec![("query", query), ("row", row), ("row_count", count)]),
        )])),
        (scalar(), scalar()).prop_map(|(key, value)| map(vec![(
            "assert_redis",
            map(vec![("key", key), ("string", value)]),
        )])),
        (scalar(), any_tree.clone()).prop_map(|(url, response)| map(vec![(
            "http",
            map(vec![("url", url), ("response", response)]),
        )])),
        scalar().prop_map(|query| map(vec![("sql", map(vec![("query", query)]))])),
        scalar().prop_map(|d| map(vec![("sleep", d)])),
        (scalar(), any_tree).prop_map(|(n, json)| map(vec![(
            "each",
            map(vec![
                ("count", n),
                (
                    "steps",
                    Tree::Seq(vec![map(vec![("send", map(vec![("json", json)]))])])
                ),
            ]),
        )])),
    ]
}

/// Documents shaped like specs, so that many reach the checker and the run-time part.
fn spec_shaped() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(step(), 0..6),
        tree(SPEC_KEYS),
        odd_scalar(),
        any::<u64>(),
    )
        .prop_map(|(mut steps, vars, timeout, seed)| {
            steps.insert(
                0,
                map(vec![(
                    "connect",
                    map(vec![("url", Tree::Scalar("ws://127.0.0.1:1".into()))]),
                )]),
            );
            let mut entries = vec![
                ("name", Tree::Scalar("fuzz".into())),
                ("ids", map(vec![("alice", Tree::Scalar("user".into()))])),
                ("vars", vars),
                ("steps", Tree::Seq(steps)),
            ];
            if seed % 3 == 0 {
                entries.push(("timeout", Tree::Scalar(timeout)));
            }
            // Plain-scalar style keeps templates and placeholders intact more often.
            document(&map(entries), seed & !3)
        })
}

/// Nesting far past any limit, in every YAML form, at the top or inside a real spec.
fn deep_nesting() -> impl Strategy<Value = String> {
    // Mostly around the limit, sometimes far past it (the reported crashes were 5,000
    // block levels and 12,000 compact ones).
    let depth = prop_oneof![8 => 1usize..200, 1 => 200usize..20_000];
    (0usize..10, depth, 0usize..3, any::<prop::sample::Index>()).prop_map(
        |(form, depth, place, spec)| {
            // Indentation-based forms grow quadratically: 3,000 levels is 4.5 MB.
            let indented = depth.min(3000);
            let nested = match form {
                0 => format!("{}x", "- ".repeat(depth)),
                1 => (0..indented)
                    .map(|i| format!("{}k:\n", " ".repeat(i)))
                    .collect(),
                2 => (0..indented)
                    .map(|i| format!("{}-\n", " ".repeat(i)))
                    .collect(),
                3 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                4 => format!("{}1{}", "{k: ".repeat(depth), "}".repeat(depth)),
                5 => format!("{}1{}", "[{k: ".repeat(depth), "}]".repeat(depth)),
                6 => {
                    // Each alias doubles the depth of the one before.
                    let mut text = String::from("a0: &a0 [x]\n");
                    for i in 1..depth.min(200) {
                        text.push_str(&format!("a{i}: &a{i} [*a{}, [*a{}]]\n", i - 1, i - 1));
                    }
                    text
                }
                7 => format!("{}x", "- [".repeat(depth)),
                8 => format!(
                    "{}x{}",
                    "? [".repeat(depth.min(500)),
                    "]".repeat(depth.min(500))
                ),
                _ => (0..indented / 2)
                    .map(|i| format!("{}- k:\n", " ".repeat(i * 2)))
                    .collect(),
            };
            match place {
                0 => nested,
                1 => format!(
                    "name: deep\nsteps:\n  - sleep: 1ms\nvars:\n  a:\n{}\n",
                    indent_all(&nested, 4)
                ),
                _ => {
                    let specs = real_specs();
                    let (_, text) = &specs[spec.index(specs.len())];
                    format!("{text}\nvars:\n  deep:\n{}\n", indent_all(&nested, 4))
                }
            }
        },
    )
}

fn indent_all(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Small edits of a real text: the likeliest inputs are almost-right specs.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Duplicate(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    ReplaceScalar(prop::sample::Index, String),
    Truncate(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{", "}", "[", "]", "- ", ": ", ", ", "\n", "\n  ", "\t", "&a ", "*a", "!!str ", "'",
            "\"", "#", "{{ ", " }}", "{% ", "|", ">", "? ", "---\n", "...\n", "\u{feff}", "\u{0}",
            "\r", "\u{2028}", "🦀",
        ])
        .prop_map(str::to_string),
        odd_scalar(),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<prop::sample::Index>(), 1usize..200).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<prop::sample::Index>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<prop::sample::Index>(), odd_scalar()).prop_map(|(i, s)| Edit::ReplaceScalar(i, s)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

/// Byte offset of a char boundary chosen by `index`.
fn boundary(text: &str, index: &prop::sample::Index) -> usize {
    let count = text.chars().count();
    if count == 0 {
        return 0;
    }
    let n = index.index(count + 1);
    text.char_indices().nth(n).map_or(text.len(), |(i, _)| i)
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut text = text.to_string();
    match edit {
        Edit::Delete(i, n) => {
            let start = boundary(&text, i);
            let end = text[start..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(j, _)| start + j);
            text.replace_range(start..end, "");
        }
        Edit::Duplicate(i, n) => {
            let start = boundary(&text, i);
            let end = text[start..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(j, _)| start + j);
            let copy = text[start..end].to_string();
            text.insert_str(end, &copy);
        }
        Edit::Insert(i, token) => {
            let at = boundary(&text, i);
            text.insert_str(at, token);
        }
        Edit::ReplaceScalar(i, scalar) => {
            // The value after a `: ` on some line.
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = i.index(lines.len());
                let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                if let Some(colon) = out[n].find(": ") {
                    out[n].truncate(colon + 2);
                    out[n].push_str(scalar);
                }
                text = out.join("\n");
            }
        }
        Edit::Truncate(i) => {
            let at = boundary(&text, i);
            text.truncate(at);
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
                text = lines.join("\n");
            }
        }
    }
    text
}

/// An edited real spec, as its path, a newline, then its text.
fn mutated_spec() -> impl Strategy<Value = String> {
    (
        any::<prop::sample::Index>(),
        prop::collection::vec(edit(), 1..5),
    )
        .prop_map(|(i, edits)| {
            let specs = real_specs();
            let (path, text) = &specs[i.index(specs.len())];
            let mut text = text.clone();
            for e in &edits {
                text = apply(&text, e);
            }
            format!("{}\n{text}", path.display())
        })
}

/// A real spec with values replaced by odd ones: mostly still the right shape.
fn respelled_spec() -> impl Strategy<Value = String> {
    let replace =
        (any::<prop::sample::Index>(), odd_scalar()).prop_map(|(i, s)| Edit::ReplaceScalar(i, s));
    (
        any::<prop::sample::Index>(),
        prop::collection::vec(replace, 1..3),
    )
        .prop_map(|(i, edits)| {
            let specs = real_specs();
            let (path, text) = &specs[i.index(specs.len())];
            let mut text = text.clone();
            for e in &edits {
                text = apply(&text, e);
            }
            format!("{}\n{text}", path.display())
        })
}

fn mutated_config() -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..5).prop_map(|edits| {
        let mut text = real_config_text().to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        text
    })
}

// ---------------------------------------------------------------------------------
// The generators, one test each (they run in parallel, each on a 2 MiB test thread:
// the stack size of the runtime's workers too).

#[test]
fn fuzz_random_yaml_as_specs() {
    fuzz("random_yaml_spec", random_yaml(SPEC_KEYS), exercise_spec);
}

#[test]
fn fuzz_spec_shaped_documents() {
    fuzz("spec_shaped", spec_shaped(), exercise_spec);
}

#[test]
fn fuzz_deep_nesting() {
    fuzz("deep_nesting", deep_nesting(), exercise_spec);
}

#[test]
fn fuzz_mutations_of_the_real_specs() {
    fuzz("mutated_spec", mutated_spec(), exercise_mutated_spec);
}

#[test]
fn fuzz_odd_values_in_the_real_specs() {
    fuzz("respelled_spec", respelled_spec(), exercise_mutated_spec);
}

#[test]
fn fuzz_random_yaml_as_suite_configs() {
    fuzz(
        "random_yaml_config",
        random_yaml(CONFIG_KEYS),
        exercise_config,
    );
}

#[test]
fn fuzz_mutations_of_the_suite_config() {
    fuzz("mutated_config", mutated_config(), exercise_config);
}

/// The harness reaches the run-time part: every unmodified real spec passes the checker.
#[test]
fn the_real_specs_reach_the_run_time_part() {
    let config = suite_config();
    for (path, text) in real_specs() {
        let source = SourceFile::new(path, text.as_str());
        match load_str(source, config, suite_library()) {
            Ok(scenarios) => scenarios.iter().for_each(|s| exercise_run(s, config)),
            Err(problems) => panic!("{}: {}", path.display(), problems[0]),
        }
    }
}
