//! Steps that only one protocol speaks, checked against the protocol of the connection
//! they act on before anything runs: `emit` and `namespace` need socket.io, `subscribe`
//! and `complete` need GraphQL over WebSocket (graphql-transport-ws or graphql-ws), and
//! so do `expect`/`expect_none` waiting for an operation's `next`, `error` or
//! `complete`; `expect` with `ack:` and a pattern with `namespace:` need socket.io. The
//! runner refuses most of them too, but only once the scenario gets there; a
//! `namespace:` pattern on another protocol would just never match.
//!
//! Connections are followed in step order: `connect` steps (merged over their
//! profile), the connects of called library steps and of `each` bodies. Whatever is
//! only known at run time — a templated name, protocol or profile, a loop that may not
//! run — makes the connections it could touch unknown, and a step on an unknown
//! connection is not reported: no false errors.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::checks::Located;
use super::config::SuiteConfig;
use super::library::{literal, Bindings};
use super::model::{opens_connection, ProtocolKind, Step, StepKind, DEFAULT_CONNECTION};
use super::profile::profile_of;
use super::yaml::pointer_escape;
use crate::diagnostic::Diagnostic;

/// Problems in a scenario's steps; each pointer names the step's key or the field
/// the problem is about (locate it with `SpanIndex::key`).
pub fn scenario(steps: &[Step], config: &SuiteConfig) -> Vec<Located> {
    check(steps, config, Connections::default())
}

/// Problems in a library step's body: only on connections it opens itself, as its
/// callers' are not known here.
pub fn library(steps: &[Step], config: &SuiteConfig) -> Vec<Located> {
    let callers = Connections {
        unseen: true,
        ..Connections::default()
    };
    check(steps, config, callers)
}

fn check(steps: &[Step], config: &SuiteConfig, mut connections: Connections) -> Vec<Located> {
    let mut walker = Walker {
        config,
        problems: Vec::new(),
        visits: STEP_VISITS,
    };
    let scope = Scope {
        bindings: Bindings::new(),
        report: true,
        call: None,
    };
    walker.steps(steps, &scope, &mut connections);
    walker.problems
}

/// A connection as far as the checker can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opened {
    /// `None`: decided at run time.
    protocol: Option<ProtocolKind>,
    /// The line of the `connect`, or of the library call that opened it.
    line: usize,
    /// The library step whose `connect` opened it.
    library: Option<String>,
    /// The suite config's profile its protocol comes from.
    profile: Option<String>,
}

/// What a `connect` opens; `None`s are what only the run will tell.
#[derive(Debug, Default)]
struct Opens {
    name: Option<String>,
    protocol: Option<ProtocolKind>,
    /// The profile the protocol comes from.
    profile: Option<String>,
}

/// The connections open at a point of the scenario, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Connections {
    by_name: BTreeMap<String, Opened>,
    /// Connections may exist that are not in `by_name` (a templated name, a library
    /// step's callers): a step without `on:` may mean any of them.
    unseen: bool,
}

impl Connections {
    /// The connection a step acts on: the one `on:` names, else the only one.
    fn target(&self, on: Option<&Value>) -> Option<(&str, &Opened)> {
        let found = match on {
            Some(Value::String(name)) => self.by_name.get_key_value(name),
            Some(_) => None,
            None if !self.unseen && self.by_name.len() == 1 => self.by_name.iter().next(),
            None => None,
        };
        found.map(|(name, opened)| (name.as_str(), opened))
    }

    /// A connect opened `name` (`None`: a name known at run time, which may be any).
    fn open(&mut self, name: Option<String>, opened: Opened) {
        match name {
            Some(name) => {
                self.by_name.insert(name, opened);
            }
            None => {
                self.unseen = true;
                for known in self.by_name.values_mut() {
                    if known.protocol != opened.protocol {
                        known.protocol = None;
                    }
                }
            }
        }
    }

    /// What holds whichever of two ways the scenario went: what both agree on.
    fn join(&self, other: &Self) -> Self {
        let mut joined = Connections {
            by_name: BTreeMap::new(),
            unseen: self.unseen || other.unseen,
        };
        for name in self.by_name.keys().chain(other.by_name.keys()) {
            let (ours, theirs) = (self.by_name.get(name), other.by_name.get(name));
            let Some(mut opened) = ours.or(theirs).cloned() else {
                continue;
            };
            if ours.map(|o| o.protocol) != theirs.map(|t| t.protocol) {
                opened.protocol = None;
            }
            // Opened one way only: it may not exist, so may not be the only one.
            joined.unseen |= ours.is_none() || theirs.is_none();
            joined.by_name.insert(name.clone(), opened);
        }
        joined
    }

    /// Nothing known but the names.
    fn forget(mut self) -> Self {
        self.unseen = true;
        self.by_name.values_mut().for_each(|c| c.protocol = None);
        self
    }
}

/// Where the steps being followed run.
#[derive(Debug, Clone)]
struct Scope {
    /// What templates read: a called library step's parameters.
    bindings: Bindings,
    /// Report problems (the steps of the file being checked), or only follow the
    /// connections the steps open (a called library step, a trial run of an `each`).
    report: bool,
    /// The library call being followed: its step's name and line.
    call: Option<(String, usize)>,
}

impl Scope {
    fn silent(&self) -> Scope {
        Scope {
            report: false,
            ..self.clone()
        }
    }
}

/// Step visits a check may take: nested loops and library calls are followed more
/// than once, and a spec written to make that explode is left unchecked beyond this.
const STEP_VISITS: usize = 20_000;

/// Runs of a loop body followed before what holds after them is given up as unknown.
const RUNS_FOLLOWED: usize = 8;

struct Walker<'a> {
    config: &'a SuiteConfig,
    problems: Vec<Located>,
    /// Step visits left; at 0, nothing more is followed nor reported (what was
    /// reported before came from states followed in full).
    visits: usize,
}

impl Walker<'_> {
    fn steps(&mut self, steps: &[Step], scope: &Scope, connections: &mut Connections) {
        for step in steps {
            if self.visits == 0 {
                return;
            }
            self.visits -= 1;
            match step.kind {
                StepKind::Connect => self.connect(step, scope, connections),
                StepKind::Each => self.each(step, scope, connections),
                StepKind::Call => self.call(step, scope, connections),
                _ if scope.report => self.needs(step, connections),
                _ => {}
            }
        }
    }

    fn connect(&mut self, step: &Step, scope: &Scope, connections: &mut Connections) {
        let Some(opens) = self.opens(&step.body, &scope.bindings) else {
            return;
        };
        let (line, library) = match &scope.call {
            Some((name, line)) => (*line, Some(name.clone())),
            None => (step.span.line, None),
        };
        let opened = Opened {
            protocol: opens.protocol,
            line,
            library,
            profile: opens.profile,
        };
        connections.open(opens.name, opened);
    }

    /// The connection a `connect` opens, merged over its profile, as far as the
    /// checker can tell; `None` when it opens none (it expects a refused handshake).
    fn opens(&self, body: &Value, bindings: &Bindings) -> Option<Opens> {
        let own = body.as_object().cloned().unwrap_or_default();
        let Some(profile) = self.profile(&own, bindings) else {
            // A profile only known at run time may set any field.
            return Some(Opens::default());
        };
        let profile_map = profile.as_ref().map(|(_, map)| *map);
        let field = |key: &str| match own.get(key) {
            Some(value) => Some(value.as_str().and_then(|v| literal(v, bindings))),
            None => profile_map
                .and_then(|p| p.get(key))
                .map(|value| value.as_str().and_then(|v| literal(v, &Bindings::new()))),
        };
        if !opens_connection(&own) || profile_map.is_some_and(|p| !opens_connection(p)) {
            return None;
        }
        let protocol = match field("protocol") {
            None => Some(ProtocolKind::Raw),
            Some(text) => text.and_then(|t| serde_json::from_value(Value::String(t)).ok()),
        };
        let from_profile = !own.contains_key("protocol")
            && profile_map.is_some_and(|p| p.contains_key("protocol"));
        Some(Opens {
            name: field("name").unwrap_or_else(|| Some(DEFAULT_CONNECTION.to_string())),
            protocol,
            profile: profile.filter(|_| from_profile).map(|(name, _)| name),
        })
    }

    /// The profile a connect step is merged over, by name (`Some(None)`: none);
    /// `None` when it is only known at run time (or unknown: reported elsewhere).
    fn profile<'c>(
        &'c self,
        own: &Map<String, Value>,
        bindings: &Bindings,
    ) -> Option<Option<(String, &'c Map<String, Value>)>> {
        let named = match own.get("profile") {
            Some(name) => Some(literal(name.as_str()?, bindings)?),
            None => None,
        };
        let profile = profile_of(self.config, own, named.as_deref()).ok()?;
        let name = named.unwrap_or_else(|| "default".to_string());
        Some(profile.map(|map| (name, map)))
    }

    /// An `each` runs its body once per item, each run starting where the previous
    /// ended. Its steps are checked in the first run, when the loop surely runs (the
    /// later runs are not followed one by one); after it, what holds is what every run
    /// that may be the last agrees on.
    fn each(&mut self, step: &Step, scope: &Scope, connections: &mut Connections) {
        let mut inner = scope.clone();
        let variable = step.body.get("as").and_then(Value::as_str).unwrap_or("i");
        inner.bindings.insert(variable.to_string(), None);
        let runs = surely_runs(&step.body);
        inner.report &= runs;
        let mut first_run = connections.clone();
        self.steps(&step.children, &inner, &mut first_run);
        let mut start = match runs {
            true => first_run,
            false => connections.join(&first_run),
        };
        for _ in 0..RUNS_FOLLOWED {
            let mut after = start.clone();
            self.steps(&step.children, &inner.silent(), &mut after);
            let next = start.join(&after);
            if next == start {
                *connections = start;
                return;
            }
            start = next;
        }
        *connections = start.forget();
    }

    /// A library call opens what its body opens, with its arguments bound; its body's
    /// own problems are reported at its file.
    fn call(&mut self, step: &Step, scope: &Scope, connections: &mut Connections) {
        let Some(library) = &step.call else {
            let unknown = Opened {
                protocol: None,
                line: step.span.line,
                library: None,
                profile: None,
            };
            return connections.open(None, unknown);
        };
        let inner = Scope {
            bindings: library.bindings(&step.body, &scope.bindings),
            report: false,
            call: scope
                .call
                .clone()
                .or_else(|| Some((library.name.clone(), step.span.line))),
        };
        self.steps(&library.steps, &inner, connections);
    }

    /// The protocol-specific parts of a step against the protocol of its connection.
    fn needs(&mut self, step: &Step, connections: &Connections) {
        let needs = needs(step);
        if needs.is_empty() {
            return;
        }
        let Some((name, opened)) = connections.target(step.body.get("on")) else {
            return;
        };
        let Some(protocol) = opened.protocol.filter(|_| self.visits > 0) else {
            return;
        };
        for need in needs
            .into_iter()
            .filter(|n| !n.protocols.contains(&protocol))
        {
            let diagnostic = mismatch(&need, name, protocol, opened);
            self.problems.push((need.pointer, diagnostic));
        }
    }
}

/// Does an `each` run its body at least once, whatever the run-time values?
fn surely_runs(body: &Value) -> bool {
    match (body.get("count"), body.get("items")) {
        (Some(count), _) => count.as_u64().is_some_and(|n| n > 0),
        (None, Some(items)) => items.as_array().is_some_and(|i| !i.is_empty()),
        (None, None) => false,
    }
}

/// A part of a step that only one protocol speaks.
#[derive(Debug)]
struct Need {
    /// Where it is written: the step's key, or the field's.
    pointer: String,
    /// What it is, for the message: "`emit`", "`expect` with `next:`".
    what: String,
    /// The protocols that speak it, the first suggested.
    protocols: &'static [ProtocolKind],
}

const SOCKET_IO: &[ProtocolKind] = &[ProtocolKind::SocketIo];
const GRAPHQL: &[ProtocolKind] = &[ProtocolKind::GraphqlTransportWs, ProtocolKind::GraphqlWs];

/// What a step needs of its connection's protocol.
fn needs(step: &Step) -> Vec<Need> {
    let whole = |protocols| {
        vec![Need {
            pointer: step.pointer.clone(),
            what: format!("`{}`", step.kind.name()),
            protocols,
        }]
    };
    match step.kind {
        StepKind::Emit | StepKind::Namespace => whole(SOCKET_IO),
        StepKind::Subscribe | StepKind::Complete => whole(GRAPHQL),
        StepKind::Expect => expect_needs(step),
        StepKind::ExpectNone => pattern_needs(step, &step.body, &step.pointer, &["namespace"]),
        _ => Vec::new(),
    }
}

/// A pattern's fields that name a GraphQL operation's message; the first given is the
/// one the runner reads.
const OPERATION_FIELDS: [&str; 3] = ["next", "error", "complete"];

/// The patterns an `expect` waits for — its `sequence` items, else its `unordered`
/// items, else the step itself (as the runner reads it) — and what each needs.
/// Generated items are left out: whether any exists is a run-time matter.
fn expect_needs(step: &Step) -> Vec<Need> {
    const FIELDS: [&str; 2] = ["namespace", "ack"];
    let list = ["sequence", "unordered"]
        .into_iter()
        .find_map(|key| step.body.get(key).map(|items| (key, items)));
    match list {
        Some((key, Value::Array(items))) => items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| {
                let at = format!("{}/{key}/{i}", step.pointer);
                pattern_needs(step, item, &at, &FIELDS)
            })
            .collect(),
        Some(_) => Vec::new(),
        None => pattern_needs(step, &step.body, &step.pointer, &FIELDS),
    }
}

/// The protocol-specific fields of one pattern: the first of an operation's message
/// kinds (the one the runner reads), and the first given of `socket_io_fields`.
fn pattern_needs(
    step: &Step,
    pattern: &Value,
    pointer: &str,
    socket_io_fields: &[&str],
) -> Vec<Need> {
    let given = |field: &&&str| pattern.get(**field).is_some_and(|v| !v.is_null());
    let need = |field: &str, protocols| Need {
        pointer: format!("{pointer}/{}", pointer_escape(field)),
        what: format!("`{}` with `{field}:`", step.kind.name()),
        protocols,
    };
    let operation = OPERATION_FIELDS
        .iter()
        .find(given)
        .map(|f| need(f, GRAPHQL));
    let socket_io = socket_io_fields
        .iter()
        .find(given)
        .map(|f| need(f, SOCKET_IO));
    operation.into_iter().chain(socket_io).collect()
}

/// "`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection
/// (opened at line 4)", with how to fix it.
fn mismatch(need: &Need, name: &str, protocol: ProtocolKind, opened: &Opened) -> Diagnostic {
    let wanted = need.protocols[0].name();
    let accepted = need
        .protocols
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" or ");
    let line = opened.line;
    let (origin, fix) = match (&opened.library, &opened.profile) {
        (None, None) => (
            format!("opened at line {line}"),
            format!("set `protocol: {wanted}` on its `connect` (line {line})"),
        ),
        (None, Some(profile)) => (
            format!("opened at line {line} with profile `{profile}`"),
            format!(
                "set `protocol: {wanted}` on its `connect` (line {line}) or in profile `{profile}` of the suite config"
            ),
        ),
        (Some(library), _) => (
            format!("opened by `{library}` at line {line}"),
            format!("set `protocol: {wanted}` on the `connect` of library step `{library}`"),
        ),
    };
    Diagnostic::new(format!(
        "{} needs a {accepted} connection, and `{name}` is a {} connection ({origin})",
        need.what,
        described(protocol)
    ))
    .hint(format!(
        "{fix}, or run this step on a {accepted} connection with `on:`"
    ))
}

/// A protocol as the kind of a connection.
fn described(protocol: ProtocolKind) -> &'static str {
    match protocol {
        ProtocolKind::Raw => "plain WebSocket",
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::diagnostic::SourceFile;
    use crate::spec::library::{Library, LibraryStep, Param, ParamType};
    use crate::spec::load::{self, Resolved, StepResolver};

    const CONFIG: &str = "ids: { user: { prefix: usr_ } }\nprofiles:\n  sio: { url: 'ws://x', protocol: socket.io }\n  plain: { url: 'ws://x' }\n";

    fn config() -> SuiteConfig {
        SuiteConfig::parse(&SourceFile::new("engine.yaml", CONFIG)).unwrap()
    }

    /// Every problem the loader finds in `spec`, with the library given.
    fn problems_with(library: &Library, spec: &str) -> Vec<Diagnostic> {
        match load::load_str(SourceFile::new("specs/t.yaml", spec), &config(), library) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    fn problems(spec: &str) -> Vec<Diagnostic> {
        problems_with(&Library::default(), spec)
    }

    fn messages(problems: &[Diagnostic]) -> Vec<&str> {
        problems.iter().map(|d| d.message.as_str()).collect()
    }

    struct NoLibrary;

    impl StepResolver for NoLibrary {
        fn resolve(&mut self, _: &str) -> Resolved {
            Resolved::Unknown
        }
        fn names(&self) -> Vec<String> {
            Vec::new()
        }
    }

    /// A library step with string parameters, built from its YAML.
    fn library_step(name: &str, params: &[&str], text: &str) -> Arc<LibraryStep> {
        let source = SourceFile::new(format!("_lib/{name}.yaml"), text);
        let (value, index) = load::parse_yaml(&source).unwrap();
        let (steps, problems) = load::build_steps(
            value.get("steps"),
            "/steps",
            &index,
            &source,
            &mut NoLibrary,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let params = params
            .iter()
            .map(|p| Param {
                name: p.to_string(),
                kind: ParamType::String,
                default: None,
                description: None,
            })
            .collect();
        Arc::new(LibraryStep {
            name: name.to_string(),
            source,
            description: None,
            params,
            steps,
            returns: Map::new(),
            cleanup: Vec::new(),
            index: Arc::new(index),
        })
    }

    fn library_of(step: Arc<LibraryStep>) -> Library {
        let mut library = Library::default();
        library.steps.insert(step.name.clone(), step);
        library
    }

    #[test]
    fn emit_on_a_plain_connection_is_located_at_the_step() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n  - sleep: 1ms\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 3)"]
        );
        assert_eq!(found[0].span.map(|s| (s.line, s.col)), Some((5, 5)));
        assert_eq!(
            found[0].hint.as_deref(),
            Some("set `protocol: socket.io` on its `connect` (line 3), or run this step on a socket.io connection with `on:`")
        );
    }

    #[test]
    fn subscribe_and_complete_on_a_socket_io_connection_are_errors() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { url: 'ws://x', protocol: socket.io }\n  - subscribe: { name: s, query: 'subscription { a }' }\n  - complete: s\n",
        );
        assert_eq!(
            messages(&found),
            [
                "`subscribe` needs a graphql-transport-ws or graphql-ws connection, and `default` is a socket.io connection (opened at line 3)",
                "`complete` needs a graphql-transport-ws or graphql-ws connection, and `default` is a socket.io connection (opened at line 3)",
            ]
        );
        assert_eq!(found[0].span.map(|s| s.line), Some(4));
        assert!(found[0]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("set `protocol: graphql-transport-ws`"));
    }

    #[test]
    fn each_protocol_s_own_steps_check_clean() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: io, url: 'ws://x', protocol: socket.io }\n  - emit: { on: io, event: hi, ack: true }\n  - namespace: { on: io, connect: /admin }\n  - expect: { on: io, event: confirm, ack: [ok] }\n  - connect: { name: gql, url: 'ws://x', protocol: graphql-transport-ws }\n  - subscribe: { on: gql, name: s, query: 'subscription { a }' }\n  - expect: { on: gql, sequence: [{ next: s }, { complete: s }] }\n  - expect_none: { on: gql, error: s, during: 1ms }\n  - complete: { name: s, on: gql }\n",
        );
        assert_eq!(messages(&found), Vec::<&str>::new());
    }

    #[test]
    fn graphql_ws_speaks_the_graphql_steps_and_not_socket_io_s() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: gql, url: 'ws://x', protocol: graphql-ws }\n  - subscribe: { on: gql, name: s, query: 'subscription { a }' }\n  - expect: { on: gql, sequence: [{ next: s }, { error: s }, { complete: s }] }\n  - expect_none: { on: gql, error: s, during: 1ms }\n  - complete: { name: s, on: gql }\n  - emit: { on: gql, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `gql` is a graphql-ws connection (opened at line 3)"]
        );
    }

    #[test]
    fn expect_fields_of_another_protocol_are_located_at_the_field() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: gql, url: 'ws://x', protocol: graphql-transport-ws }\n  - connect: { name: raw, url: 'ws://x' }\n  - expect: { on: gql, event: confirm, ack: [ok] }\n  - expect:\n      on: raw\n      sequence:\n        - hello\n        - { next: s }\n",
        );
        assert_eq!(
            messages(&found),
            [
                "`expect` with `ack:` needs a socket.io connection, and `gql` is a graphql-transport-ws connection (opened at line 3)",
                "`expect` with `next:` needs a graphql-transport-ws or graphql-ws connection, and `raw` is a plain WebSocket connection (opened at line 4)",
            ]
        );
        assert_eq!(found[0].span.map(|s| (s.line, s.col)), Some((5, 40)));
        assert_eq!(found[1].span.map(|s| (s.line, s.col)), Some((10, 13)));
    }

    #[test]
    fn a_namespace_pattern_needs_socket_io() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: io, url: 'ws://x', protocol: socket.io }\n  - expect: { on: io, event: hi, namespace: /admin }\n  - expect_none: { on: io, event: bye, namespace: /admin, during: 1ms }\n  - connect: { name: raw, url: 'ws://x' }\n  - expect: { on: raw, sequence: [hi, { event: bye, namespace: /admin }] }\n  - expect_none: { on: raw, event: bye, namespace: /admin, during: 1ms }\n",
        );
        assert_eq!(
            messages(&found),
            [
                "`expect` with `namespace:` needs a socket.io connection, and `raw` is a plain WebSocket connection (opened at line 6)",
                "`expect_none` with `namespace:` needs a socket.io connection, and `raw` is a plain WebSocket connection (opened at line 6)",
            ]
        );
        assert_eq!(found[0].span.map(|s| s.line), Some(7));
        assert_eq!(found[1].span.map(|s| s.line), Some(8));
    }

    #[test]
    fn a_templated_protocol_name_or_profile_is_not_judged() {
        for connect in [
            "{ name: chat, url: 'ws://x', protocol: '{{ vars.p }}' }",
            "{ name: '{{ vars.n }}', url: 'ws://x' }",
            "{ name: chat, profile: '{{ vars.n }}' }",
        ] {
            let spec = format!(
                "name: x\nvars: {{ p: raw, n: plain }}\nsteps:\n  - connect: {{ name: chat, url: 'ws://x', protocol: graphql-transport-ws }}\n  - close: {{ on: chat }}\n  - connect: {connect}\n  - emit: {{ on: chat, event: hi }}\n"
            );
            assert_eq!(messages(&problems(&spec)), Vec::<&str>::new(), "{connect}");
        }
    }

    #[test]
    fn a_profile_s_protocol_counts_and_is_named() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: a, profile: sio }\n  - emit: { on: a, event: hi }\n  - connect: { name: b, profile: plain }\n  - namespace: { on: b, connect: /admin }\n  - subscribe: { on: a, name: s, query: q }\n",
        );
        assert_eq!(
            messages(&found),
            [
                "`namespace` needs a socket.io connection, and `b` is a plain WebSocket connection (opened at line 5)",
                "`subscribe` needs a graphql-transport-ws or graphql-ws connection, and `a` is a socket.io connection (opened at line 3 with profile `sio`)",
            ]
        );
        assert!(found[1]
            .hint
            .as_deref()
            .unwrap()
            .contains("or in profile `sio` of the suite config"));
    }

    #[test]
    fn a_connection_reopened_with_another_protocol_follows_step_order() {
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x', protocol: socket.io }\n  - emit: { on: chat, event: hi }\n  - close: { on: chat }\n  - connect: { name: chat, url: 'ws://x' }\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 6)"]
        );
        assert_eq!(found[0].span.map(|s| s.line), Some(7));
    }

    #[test]
    fn a_connection_a_library_step_opens_is_judged_when_its_arguments_tell() {
        let open = library_step(
            "open_io",
            &["tab"],
            "step: open_io\nparams: { tab: string }\nsteps:\n  - connect: { name: '{{ tab }}', url: 'ws://x', protocol: socket.io }\n",
        );
        let library = library_of(open);
        let found = problems_with(
            &library,
            "name: x\nsteps:\n  - open_io: { tab: chat }\n  - emit: { on: chat, event: hi }\n  - subscribe: { on: chat, name: s, query: q }\n",
        );
        assert_eq!(
            messages(&found),
            ["`subscribe` needs a graphql-transport-ws or graphql-ws connection, and `chat` is a socket.io connection (opened by `open_io` at line 3)"]
        );
        assert!(found[0].hint.as_deref().unwrap().starts_with(
            "set `protocol: graphql-transport-ws` on the `connect` of library step `open_io`"
        ));
        // Named at run time, the library's connection may be `chat` again.
        let found = problems_with(
            &library,
            "name: x\nids: { alice: user }\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n  - close: { on: chat }\n  - open_io: { tab: '{{ ids.alice }}' }\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(messages(&found), Vec::<&str>::new());
    }

    #[test]
    fn a_library_step_s_own_connections_are_judged_and_its_callers_are_not() {
        let step = library_step(
            "chat",
            &["tab"],
            "step: chat\nparams: { tab: string }\nsteps:\n  - emit: { on: '{{ tab }}', event: hi }\n  - emit: { on: other, event: hi }\n  - connect: { name: own, url: 'ws://x' }\n  - emit: { on: own, event: hi }\n",
        );
        let found = library(&step.steps, &config());
        let pointers: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/steps/3/emit"]);
        assert_eq!(
            found[0].1.message,
            "`emit` needs a socket.io connection, and `own` is a plain WebSocket connection (opened at line 6)"
        );
    }

    #[test]
    fn loops_are_judged_at_the_start_of_every_run() {
        // The second run's `emit` meets the plain connection the first run opened last.
        let found = problems(
            "name: x\nsteps:\n  - each:\n      count: 2\n      steps:\n        - connect: { name: chat, url: 'ws://x', protocol: socket.io }\n        - emit: { on: chat, event: hi }\n        - close: { on: chat }\n  - connect: { name: chat, url: 'ws://x' }\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 9)"]
        );
        // The first run's `emit` meets the plain connection; later ones may not.
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n  - each:\n      count: 2\n      steps:\n        - emit: { on: chat, event: hi }\n        - close: { on: chat }\n        - connect: { name: chat, url: 'ws://x', protocol: socket.io }\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 3)"]
        );
        assert_eq!(found[0].span.map(|s| s.line), Some(7));
        // After the loop, every run agrees: `chat` is plain.
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x', protocol: socket.io }\n  - each:\n      count: 2\n      steps:\n        - emit: { on: chat, event: hi }\n        - close: { on: chat }\n        - connect: { name: chat, url: 'ws://x' }\n  - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 9)"]
        );
        assert_eq!(found[0].span.map(|s| s.line), Some(10));
        let found = problems(
            "name: x\nvars: { n: 0 }\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n  - each:\n      count: '{{ vars.n }}'\n      steps:\n        - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(
            messages(&found),
            Vec::<&str>::new(),
            "a loop that may not run"
        );
        let found = problems(
            "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n  - each:\n      items: [a]\n      steps:\n        - emit: { on: chat, event: hi }\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].span.map(|s| s.line), Some(7));
    }

    #[test]
    fn deeply_nested_loops_are_followed_within_a_bound() {
        // Each level is followed at least twice: over 2^19 visits, seconds, unbounded.
        let depth = 19;
        let mut spec = "name: x\nsteps:\n  - connect: { name: chat, url: 'ws://x' }\n".to_string();
        for level in 0..depth {
            let indent = " ".repeat(2 + 6 * level);
            spec += &format!("{indent}- each:\n{indent}    count: 2\n{indent}    steps:\n");
            spec += &format!("{indent}      - connect: {{ name: 'u{level}', url: 'ws://x' }}\n");
        }
        let indent = " ".repeat(2 + 6 * depth);
        spec += &format!("{indent}- emit: {{ on: chat, event: hi }}\n");
        let started = std::time::Instant::now();
        let found = problems(&spec);
        assert_eq!(
            messages(&found),
            ["`emit` needs a socket.io connection, and `chat` is a plain WebSocket connection (opened at line 3)"]
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_step_without_on_is_judged_only_when_one_connection_is_open() {
        let found =
            problems("name: x\nsteps:\n  - connect: { url: 'ws://x' }\n  - emit: { event: hi }\n");
        assert_eq!(found.len(), 1, "{found:?}");
        let found = problems(
            "name: x\nsteps:\n  - connect: { url: 'ws://x', expect_status: 401 }\n  - connect: { name: io, url: 'ws://x', protocol: socket.io }\n  - emit: { event: hi }\n",
        );
        assert!(
            !messages(&found).iter().any(|m| m.contains("needs a")),
            "{found:?}"
        );
    }
}
