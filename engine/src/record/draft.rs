//! A recorded session as a spec draft: each client connection a `connect` step (its
//! path, query, headers and subprotocols; a JWT it presented becomes `authenticate` with
//! the same claims, minted fresh by the suite's `auth.jwt`), each client frame a `send`,
//! each server frame an `expect`, closes as `close` / `expect_close`, in the order they
//! passed.
//!
//! Replayable: values of the suite config's ID kinds the client chose become minted
//! `ids`; values the server generated (UUIDs, prefixed IDs) become placeholders and
//! captures, and later occurrences reference them; timestamps and counters become
//! placeholders. Nothing presented as a credential is written.

use regex::Regex;
use serde_json::{json, Map, Value};

use super::session::{Event, Handshake, Session};
use crate::spec::config::{IdFormat, SuiteConfig};

/// What the draft is written against.
pub struct DraftOptions<'a> {
    /// The upstream URL the proxy forwarded to (`ws://127.0.0.1:8787`).
    pub upstream: &'a str,
    /// The suite config the draft will run under: its ID kinds, its event type field,
    /// and the `env` variable that names the upstream.
    pub config: Option<&'a SuiteConfig>,
    /// The CA file a `wss://` upstream needs, for every `connect` (`ca_file`).
    pub ca_file: Option<&'a str>,
}

/// Keys whose integer values count: matched as `#integer`.
const COUNTER_KEY: &str = r"(?i)(seq|count|counter|version|total|offset|index|sequence)$";
const UUID: &str = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/// The spec text.
pub fn draft(session: &Session, options: &DraftOptions<'_>) -> String {
    let mut names = Names::new(options.config);
    let base = url_base(options);
    let mut steps: Vec<(String, Value)> = Vec::new();
    let mut authenticated_by_message = vec![false; session.handshakes.len()];
    let mut pending_auth_message = vec![false; session.handshakes.len()];
    // A close answers the other side's: only the first is a step.
    let mut closed = vec![false; session.handshakes.len()];
    for event in &session.events {
        if let Event::ClientClosed { connection } | Event::ServerClosed { connection, .. } = event {
            if std::mem::replace(&mut closed[*connection], true) {
                continue;
            }
        }
        match event {
            Event::Opened { connection } => {
                let handshake = &session.handshakes[*connection];
                let (mut body, by_message) = names.connect(*connection, handshake, &base);
                if let (Some(ca), Value::Object(map)) = (options.ca_file, &mut body) {
                    map.insert("ca_file".into(), json!(ca));
                }
                pending_auth_message[*connection] = by_message;
                steps.push(("connect".into(), body));
            }
            Event::Sent {
                connection,
                text,
                binary,
            } => {
                if pending_auth_message[*connection] {
                    pending_auth_message[*connection] = false;
                    if let Some(step) = names.auth_message(*connection, text, &mut steps) {
                        authenticated_by_message[*connection] = step;
                        continue;
                    }
                }
                steps.push(("send".into(), names.send(*connection, text, *binary)));
            }
            Event::Received {
                connection, text, ..
            } => steps.push(("expect".into(), names.expect(*connection, text))),
            Event::ClientClosed { connection } => {
                steps.push(("close".into(), json!({ "on": conn_name(*connection) })))
            }
            Event::ServerClosed {
                connection, code, ..
            } => {
                let mut body = Map::new();
                body.insert("on".into(), json!(conn_name(*connection)));
                if let Some(code) = code {
                    body.insert("code".into(), json!(code));
                }
                steps.push(("expect_close".into(), Value::Object(body)));
            }
        }
    }
    render(session, options, &names, &steps)
}

fn render(
    session: &Session,
    options: &DraftOptions<'_>,
    names: &Names,
    steps: &[(String, Value)],
) -> String {
    let frames = session
        .events
        .iter()
        .filter(|e| matches!(e, Event::Sent { .. } | Event::Received { .. }))
        .count();
    let mut out = format!(
        "# Drafted by `engine record` from a session with {}: {} connection(s), {frames} frame(s).\n\
         # Server-generated values are placeholders or captures; IDs of the suite's kinds are\n\
         # minted fresh; credentials are minted by the suite's `auth`. Name what the scenario\n\
         # proves, keep the steps that prove it, add assert_db/assert_redis and a teardown.\n",
        crate::text::hide_password(options.upstream),
        session.handshakes.len(),
    );
    out.push_str(&format!(
        "name: {}\n",
        json!(format!(
            "recorded session with {}",
            crate::text::hide_password(options.upstream)
        ))
    ));
    if !names.ids.is_empty() {
        let ids: Map<String, Value> = names
            .ids
            .iter()
            .map(|(name, kind)| (name.clone(), json!(kind)))
            .collect();
        out.push_str(&format!("ids: {}\n", Value::Object(ids)));
    }
    out.push_str("steps:\n");
    if steps.is_empty() {
        out.push_str("  - sleep: 1ms # nothing was recorded\n");
    }
    for (kind, body) in steps {
        out.push_str(&format!("  - {kind}: {body}\n"));
    }
    out
}

fn conn_name(connection: usize) -> String {
    format!("client{}", connection + 1)
}

/// The upstream's origin as a template of the config's env when one names it.
fn url_base(options: &DraftOptions<'_>) -> String {
    let upstream = options.upstream.trim_end_matches('/');
    let Some(config) = options.config else {
        return upstream.to_string();
    };
    let values = config.env_values();
    let mut candidates: Vec<(&String, &String)> = values
        .iter()
        .filter(|(_, v)| v.trim_end_matches('/') == upstream)
        .collect();
    // `WS_URL` over, say, a variable that happens to hold the same text.
    candidates.sort_by_key(|(name, _)| !name.ends_with("URL"));
    match candidates.first() {
        Some((name, _)) => format!("{{{{ env.{name} }}}}"),
        None => upstream.to_string(),
    }
}

/// The names the draft gives to values: minted IDs, captured variables, and what text
/// each stands for.
struct Names {
    /// ID kinds: (kind, prefix, pattern of a whole value).
    kinds: Vec<(String, Regex)>,
    /// Declared IDs, in order: name → kind.
    ids: Vec<(String, String)>,
    /// Values already named, longest first when substituting: (value, template).
    known: Vec<(String, String)>,
    vars: Vec<String>,
    type_field: String,
    counter_key: Regex,
    jwt: Regex,
}

impl Names {
    fn new(config: Option<&SuiteConfig>) -> Self {
        let mut kinds: Vec<(String, Regex)> = config
            .map(|c| {
                c.ids
                    .iter()
                    .filter(|(_, spec)| !(spec.prefix.is_empty() && spec.format == IdFormat::Int))
                    .map(|(kind, spec)| {
                        let body = match spec.format {
                            IdFormat::Uuid => UUID,
                            IdFormat::Hex => "[0-9a-f]{32}",
                            IdFormat::Ulid => "[0-9A-HJKMNP-TV-Z]{26}",
                            IdFormat::Int => "[0-9]+",
                        };
                        let pattern = format!("^{}{body}$", regex::escape(&spec.prefix));
                        (kind.clone(), Regex::new(&pattern).expect("escaped prefix"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The most specific (longest pattern, so longest prefix) first.
        kinds.sort_by_key(|(_, re)| std::cmp::Reverse(re.as_str().len()));
        Self {
            kinds,
            ids: Vec::new(),
            known: Vec::new(),
            vars: Vec::new(),
            type_field: config.map_or_else(|| "type".into(), |c| c.events.type_field.clone()),
            counter_key: Regex::new(COUNTER_KEY).expect("valid"),
            jwt: Regex::new(r"^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$").expect("valid"),
        }
    }

    fn kind_of(&self, text: &str) -> Option<String> {
        self.kinds
            .iter()
            .find(|(_, re)| re.is_match(text))
            .map(|(kind, _)| kind.clone())
    }

    fn remember(&mut self, value: &str, template: String) {
        self.known.push((value.to_string(), template));
        self.known.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    }

    fn template_of(&self, text: &str) -> Option<String> {
        self.known
            .iter()
            .find(|(v, _)| v == text)
            .map(|(_, t)| t.clone())
    }

    /// `text` with every known value inside it replaced by its template (values of at
    /// least 8 characters, so that short ones do not match by chance).
    fn substituted(&self, text: &str) -> Option<String> {
        let mut out = literal(text);
        let mut changed = false;
        for (value, template) in &self.known {
            if value.len() >= 8 && out.contains(value.as_str()) {
                out = out.replace(value.as_str(), template);
                changed = true;
            }
        }
        changed.then_some(out)
    }

    fn new_id(&mut self, kind: &str, value: &str) -> String {
        let n = self.ids.iter().filter(|(_, k)| k == kind).count() + 1;
        let name = format!("{}{n}", identifier(kind));
        self.ids.push((name.clone(), kind.to_string()));
        let template = format!("{{{{ ids.{name} }}}}");
        self.remember(value, template.clone());
        template
    }

    fn new_var(&mut self, hint: &str, value: &str) -> String {
        let base = identifier(hint);
        let mut name = base.clone();
        let mut n = 1;
        while self.vars.contains(&name) {
            n += 1;
            name = format!("{base}{n}");
        }
        self.vars.push(name.clone());
        self.remember(value, format!("{{{{ vars.{name} }}}}"));
        name
    }

    /// A string the client chose: a known value's template, a freshly minted ID of a
    /// known kind, or itself with known values inside it replaced.
    fn client_string(&mut self, text: &str) -> String {
        if let Some(template) = self.template_of(text) {
            return template;
        }
        if let Some(kind) = self.kind_of(text) {
            return self.new_id(&kind, text);
        }
        self.substituted(text).unwrap_or_else(|| literal(text))
    }

    fn client_value(&mut self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.client_string(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.client_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.client_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A value the server sent, as a pattern: known values referenced, generated ones
    /// matched by shape and captured (into `captures`), timestamps and counters by shape.
    fn server_value(
        &mut self,
        value: &Value,
        path: &str,
        key: &str,
        captures: &mut Map<String, Value>,
    ) -> Value {
        match value {
            Value::String(text) => self.server_string(text, path, key, captures),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                let big = n.as_u64().is_some_and(|v| v >= 1_000_000_000);
                if self.counter_key.is_match(key) || big {
                    json!("#integer")
                } else {
                    value.clone()
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.server_value(v, &format!("{path}[{i}]"), key, captures))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let pattern = self.server_value(v, &child_path(path, k), k, captures);
                        (k.clone(), pattern)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn server_string(
        &mut self,
        text: &str,
        path: &str,
        key: &str,
        captures: &mut Map<String, Value>,
    ) -> Value {
        if let Some(template) = self.template_of(text) {
            return Value::String(template);
        }
        if let Some(shape) = generated_shape(text, self.kind_of(text).is_some()) {
            let var = self.new_var(key, text);
            captures.insert(var, Value::String(path.to_string()));
            return Value::String(shape);
        }
        if is_timestamp(text) {
            return json!(r"#regex ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}");
        }
        match self.substituted(text) {
            Some(template) => Value::String(template),
            // A literal `#…` would read as a placeholder: `##` is a literal `#`.
            None if text.starts_with('#') => Value::String(format!("#{}", literal(text))),
            None => Value::String(literal(text)),
        }
    }

    fn connect(&mut self, connection: usize, handshake: &Handshake, base: &str) -> (Value, bool) {
        let mut body = Map::new();
        body.insert("name".into(), json!(conn_name(connection)));
        let (path, query) = handshake
            .path_and_query
            .split_once('?')
            .unwrap_or((handshake.path_and_query.as_str(), ""));
        body.insert("url".into(), json!(format!("{base}{path}")));
        let mut credentials: Option<(Map<String, Value>, &str, Option<String>)> = None;
        let mut params = Map::new();
        for (name, value) in query_pairs(query) {
            if credentials.is_none() && self.jwt.is_match(&value) {
                credentials = claims(&value).map(|c| (c, "query", Some(name)));
            } else {
                params.insert(name, Value::String(self.client_string(&value)));
            }
        }
        let mut headers = Map::new();
        for (name, value) in &handshake.headers {
            let bearer = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "));
            match (name.as_str(), bearer) {
                ("authorization", Some(token)) if self.jwt.is_match(token) => {
                    credentials = claims(token).map(|c| (c, "bearer", None));
                }
                // Credentials of other kinds cannot be minted: left out of the draft.
                ("authorization" | "cookie", _) => {}
                _ => {
                    headers.insert(name.clone(), Value::String(self.client_string(value)));
                }
            }
        }
        let mut subprotocols = Vec::new();
        for protocol in &handshake.subprotocols {
            if credentials.is_none() && self.jwt.is_match(protocol) {
                credentials = claims(protocol).map(|c| (c, "subprotocol", None));
            } else {
                subprotocols.push(json!(protocol));
            }
        }
        if !params.is_empty() {
            body.insert("query".into(), Value::Object(params));
        }
        if !headers.is_empty() {
            body.insert("headers".into(), Value::Object(headers));
        }
        if !subprotocols.is_empty() {
            body.insert("subprotocols".into(), Value::Array(subprotocols));
        }
        if let Some((claims, present_as, param)) = credentials {
            let claims = self.client_value(&Value::Object(claims));
            let mut auth = Map::new();
            auth.insert("jwt".into(), json!({ "claims": claims }));
            auth.insert("as".into(), json!(present_as));
            if let Some(param) = param.filter(|p| p != "token") {
                auth.insert("param".into(), json!(param));
            }
            body.insert("authenticate".into(), Value::Object(auth));
        }
        if let Some(status) = handshake.refused {
            body.insert("expect_status".into(), json!(status));
        }
        let by_message = handshake.refused.is_none() && !body.contains_key("authenticate");
        (Value::Object(body), by_message)
    }

    /// The first frame of a connection that presented no credentials: when it carries a
    /// JWT, the connect step authenticates by message with the same claims instead.
    fn auth_message(
        &mut self,
        connection: usize,
        text: &str,
        steps: &mut [(String, Value)],
    ) -> Option<bool> {
        let frame: Value = serde_json::from_str(text).ok()?;
        let Value::Object(map) = &frame else {
            return None;
        };
        let (field, token) = map.iter().find_map(|(k, v)| {
            v.as_str()
                .filter(|t| self.jwt.is_match(t))
                .map(|t| (k.clone(), t))
        })?;
        let claims = claims(token)?;
        let claims = self.client_value(&Value::Object(claims));
        let mut message = map.clone();
        message.remove(&field);
        let mut message = match self.client_value(&Value::Object(message)) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        message.insert(field, json!("{{ token }}"));
        let name = conn_name(connection);
        let connect = steps
            .iter_mut()
            .rev()
            .find(|(kind, body)| kind == "connect" && body["name"] == json!(name))?;
        if let Value::Object(body) = &mut connect.1 {
            body.insert(
                "authenticate".into(),
                json!({ "jwt": { "claims": claims }, "as": "message", "message": message }),
            );
        }
        Some(true)
    }

    fn send(&mut self, connection: usize, text: &str, binary: bool) -> Value {
        let on = conn_name(connection);
        if binary {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            return json!({ "on": on, "binary": data });
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value @ (Value::Object(_) | Value::Array(_))) => {
                json!({ "on": on, "json": self.client_value(&value) })
            }
            _ => json!({ "on": on, "text": self.client_string(text) }),
        }
    }

    fn expect(&mut self, connection: usize, text: &str) -> Value {
        let mut body = Map::new();
        body.insert("on".into(), json!(conn_name(connection)));
        let mut captures = Map::new();
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut map)) => {
                if let Some(Value::String(event)) = map.remove(&self.type_field) {
                    body.insert("event".into(), json!(literal(&event)));
                }
                if !map.is_empty() {
                    let pattern = self.server_value(&Value::Object(map), "$", "", &mut captures);
                    body.insert("match".into(), pattern);
                }
                if body.len() == 1 {
                    body.insert("event".into(), json!("*"));
                }
            }
            Ok(other @ Value::Array(_)) => {
                let pattern = self.server_value(&other, "$", "", &mut captures);
                body.insert("match".into(), pattern);
            }
            _ => {
                body.insert("event".into(), json!("*"));
                body.insert("match".into(), json!(literal(text)));
            }
        }
        if !captures.is_empty() {
            body.insert("capture".into(), Value::Object(captures));
        }
        Value::Object(body)
    }
}

/// The placeholder for a value the server generated: a UUID, or a prefixed one
/// (`conn_<uuid>`, `inst_<32 hex>`), or a value of a known ID kind.
fn generated_shape(text: &str, known_kind: bool) -> Option<String> {
    static PREFIXED: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(&format!(
            r"^([A-Za-z][A-Za-z0-9]*[_:-])({UUID}|[0-9a-f]{{32}})$"
        ))
        .expect("valid")
    });
    static BARE: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(&format!("^{UUID}$")).expect("valid"));
    if BARE.is_match(text) {
        return Some("#uuid".into());
    }
    if let Some(found) = PREFIXED.captures(text) {
        let body = if found[2].contains('-') {
            UUID
        } else {
            "[0-9a-f]{32}"
        };
        return Some(format!("#regex ^{}{body}$", regex::escape(&found[1])));
    }
    known_kind.then(|| "#present".into())
}

fn is_timestamp(text: &str) -> bool {
    static RFC3339: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
            .expect("valid")
    });
    RFC3339.is_match(text)
}

/// Text that templates must leave as it is.
fn literal(text: &str) -> String {
    if text.contains("{{") || text.contains("{%") || text.contains("{#") {
        format!("{{% raw %}}{text}{{% endraw %}}")
    } else {
        text.to_string()
    }
}

/// A name for a variable or an ID: lower-case letters, digits and `_`.
fn identifier(hint: &str) -> String {
    let mut name: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches('_').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("value_{name}");
    }
    name
}

fn child_path(path: &str, key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty() {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", json!(key).to_string().replace('"', "'"))
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    String::from_utf8_lossy(&crate::text::percent_decode(text, true)).into_owned()
}

/// A JWT's claims (read, not verified), without the times the suite's `auth` sets.
fn claims(token: &str) -> Option<Map<String, Value>> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let Value::Object(mut claims) = serde_json::from_slice(&bytes).ok()? else {
        return None;
    };
    for time in ["exp", "iat", "nbf"] {
        claims.remove(time);
    }
    Some(claims)
}

/// Used by tests: steps as (kind, body) from a draft's text.
#[cfg(test)]
fn steps_of(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .filter_map(|l| {
            let (kind, body) = l.split_once(": ")?;
            Some((kind.to_string(), serde_json::from_str(body).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::session::Recorder;

    fn config() -> SuiteConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.yaml");
        std::fs::write(
            &path,
            "env:\n  WS_URL: ws://127.0.0.1:8787\nids:\n  user: { prefix: \"usr_\" }\n  thread: { prefix: \"thr_\" }\n",
        )
        .unwrap();
        SuiteConfig::load(&path).unwrap()
    }

    fn jwt(claims: Value) -> String {
        use base64::Engine as _;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        format!("{}.{}.c2ln", b64(&json!({"alg": "HS256"})), b64(&claims))
    }

    #[test]
    fn a_session_becomes_steps_with_ids_captures_references_and_placeholders() {
        let user = "usr_0b5c0a38-6d4e-4e52-9a57-2f1f1f1f1f1f";
        let thread = "thr_1b5c0a38-6d4e-4e52-9a57-2f1f1f1f1f1f";
        let conn = "conn_2b5c0a38-6d4e-4e52-9a57-2f1f1f1f1f1f";
        let token = jwt(json!({"sub": user, "exp": 1, "role": "admin"}));
        let recorder = Recorder::default();
        let a = recorder.open(Handshake {
            path_and_query: "/ws?last_seq=0".into(),
            headers: vec![
                ("authorization".into(), format!("Bearer {token}")),
                ("x-client".into(), "cli".into()),
            ],
            ..Handshake::default()
        });
        let b = recorder.open(Handshake {
            path_and_query: format!("/ws?token={token}"),
            ..Handshake::default()
        });
        let received = |connection, value: Value| Event::Received {
            connection,
            text: value.to_string(),
            binary: false,
        };
        recorder.push(received(
            a,
            json!({"type": "connection_established", "connection_id": conn, "user_id": user, "last_seq": 7}),
        ));
        recorder.push(Event::Sent {
            connection: a,
            text: json!({"type": "user_message", "thread_id": thread, "content": "#1 {{x}}"})
                .to_string(),
            binary: false,
        });
        recorder.push(received(
            b,
            json!({"type": "message_created", "thread_id": thread, "seq": 1, "from": conn,
                   "created_at": "2026-11-25T16:09:53.123456Z", "content": "#1 {{x}}", "tags": ["a"]}),
        ));
        recorder.push(Event::ServerClosed {
            connection: b,
            code: Some(4000),
            reason: "idle".into(),
        });
        recorder.push(Event::ClientClosed { connection: a });
        let text = recorder.with(|s| {
            draft(
                s,
                &DraftOptions {
                    upstream: "ws://127.0.0.1:8787",
                    config: Some(&config()),
                    ca_file: None,
                },
            )
        });
        assert!(!text.contains(&token) && !text.contains(user) && !text.contains(conn));
        assert!(
            text.contains("ids: {\"user1\":\"user\",\"thread1\":\"thread\"}"),
            "{text}"
        );
        let steps = steps_of(&text);
        let kinds: Vec<&str> = steps.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "connect",
                "connect",
                "expect",
                "send",
                "expect",
                "expect_close",
                "close"
            ]
        );
        assert_eq!(
            steps[0].1,
            json!({"name": "client1", "url": "{{ env.WS_URL }}/ws", "query": {"last_seq": "0"},
                   "headers": {"x-client": "cli"},
                   "authenticate": {"jwt": {"claims": {"sub": "{{ ids.user1 }}", "role": "admin"}}, "as": "bearer"}})
        );
        assert_eq!(steps[1].1["authenticate"]["as"], "query");
        assert_eq!(
            steps[2].1,
            json!({"on": "client1", "event": "connection_established",
                   "match": {"connection_id": format!("#regex ^conn_{UUID}$"), "user_id": "{{ ids.user1 }}", "last_seq": "#integer"},
                   "capture": {"connection_id": "$.connection_id"}})
        );
        assert_eq!(
            steps[3].1,
            json!({"on": "client1", "json": {"type": "user_message", "thread_id": "{{ ids.thread1 }}", "content": "{% raw %}#1 {{x}}{% endraw %}"}})
        );
        assert_eq!(
            steps[4].1["match"],
            json!({"thread_id": "{{ ids.thread1 }}", "seq": "#integer", "from": "{{ vars.connection_id }}",
                   "created_at": r"#regex ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}",
                   "content": "#{% raw %}#1 {{x}}{% endraw %}", "tags": ["a"]})
        );
        assert_eq!(steps[5].1, json!({"on": "client2", "code": 4000}));
    }

    #[test]
    fn a_first_message_with_a_jwt_becomes_message_authentication() {
        let token = jwt(json!({"sub": "usr_0b5c0a38-6d4e-4e52-9a57-2f1f1f1f1f1f", "exp": 1}));
        let recorder = Recorder::default();
        let a = recorder.open(Handshake {
            path_and_query: "/ws".into(),
            ..Handshake::default()
        });
        recorder.push(Event::Sent {
            connection: a,
            text: json!({"type": "auth", "token": token, "last_seq": 0}).to_string(),
            binary: false,
        });
        let text = recorder.with(|s| {
            draft(
                s,
                &DraftOptions {
                    upstream: "ws://elsewhere:1",
                    config: Some(&config()),
                    ca_file: None,
                },
            )
        });
        let steps = steps_of(&text);
        assert_eq!(steps.len(), 1, "{text}");
        assert_eq!(
            steps[0].1,
            json!({"name": "client1", "url": "ws://elsewhere:1/ws", "authenticate": {
                "jwt": {"claims": {"sub": "{{ ids.user1 }}"}}, "as": "message",
                "message": {"type": "auth", "last_seq": 0, "token": "{{ token }}"}}})
        );
    }
}
