//! Redaction: the one place that decides what is secret and takes it out of text.
//!
//! Secrets are: the values the suite declares (`secrets:`, the JWT signing secret, the
//! passwords in database and Redis URLs), of any length; the tokens a scenario minted or
//! presented (added per attempt, see [`Redactor::with`]); and, wherever they come from,
//! anything shaped like a JWT, a URL's password or a bearer token.
//!
//! Reports never redact for themselves: an [`Attempt`] is redacted when it ends
//! ([`Redactor::attempt`]), so console, JUnit, JSON, annotations and any future listener
//! only ever receive text that went through [`Redactor::redact`]. Redaction works on
//! each string value, never on serialized output, so a short secret (`"1"`) cannot
//! corrupt a number or a key of a report. What a spec file itself says (scenario names,
//! tags, paths) is not redacted, except the spec line a failure shows.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;

use crate::diagnostic::{Diagnostic, SourceFile};
use crate::runner::Attempt;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets by their shape, whoever made them: (pattern, replacement).
static SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // A JWT (JWS compact form): header and payload are base64url JSON objects.
        (r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", MASK),
        // The password of a URL: `scheme://user:password@host`.
        (
            r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#@]+@",
            "${1}***@",
        ),
        // An HTTP bearer token (RFC 6750's b64token) as written in a header; one with a
        // digit or a symbol, so that prose ("bearer authentication") stays.
        (
            r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/-]*[0-9._~+/][A-Za-z0-9._~+/-]*=*",
            "${1}***",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid pattern"), replacement))
    .collect()
});

/// Replaces secrets in text. Cheap to clone; [`Redactor::with`] makes one that also
/// knows an attempt's tokens.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form a secret may take in text, unique.
    values: Arc<Vec<String>>,
    matcher: Option<Arc<AhoCorasick>>,
    /// An attempt's own secrets in every form, longest first: a few, each searched for
    /// by itself, because an automaton built for them every attempt would cost more than
    /// the attempt's whole redaction.
    own: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets themselves.
        write!(f, "Redactor({} forms)", self.values.len() + self.own.len())
    }
}

/// At most this many forms of an attempt's own secrets are searched for one by one;
/// more go into an automaton with the suite's.
const OWN_FORMS_SEARCHED_ALONE: usize = 16;

impl Redactor {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        Self::default().merged(secrets)
    }

    /// This redactor plus more secrets for good (those of other suites run alongside).
    pub fn merged<S: AsRef<str>>(&self, secrets: impl IntoIterator<Item = S>) -> Self {
        let mut values: Vec<String> = self.values.as_ref().clone();
        values.extend(self.own.iter().cloned());
        for secret in secrets {
            values.extend(forms(secret.as_ref()));
        }
        values.sort();
        values.dedup();
        // Ours were unique already: as many after the merge means nothing new (an
        // attempt presenting the suite's own JWT secret).
        if values.len() == self.values.len() {
            return self.clone();
        }
        // Longest first wins where secrets overlap, so no piece of a longer one is left.
        // A contiguous NFA: the DFA the automatic choice picks for few patterns costs
        // more to build than redaction saves with it.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&values)
            .ok()
            .map(Arc::new);
        Self {
            values: Arc::new(values),
            matcher,
            own: Arc::default(),
        }
    }

    /// This redactor plus an attempt's tokens. They are masked before the suite's
    /// secrets, longest first, so that no piece of a longer one is left; should a suite
    /// secret contain one of them (or they be many), everything goes into one automaton
    /// instead, as [`Redactor::merged`].
    pub fn with<S: AsRef<str>>(&self, secrets: impl IntoIterator<Item = S>) -> Self {
        let mut own: Vec<String> = self.own.as_ref().clone();
        for secret in secrets {
            own.extend(forms(secret.as_ref()));
        }
        own.retain(|form| self.values.binary_search(form).is_err());
        own.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        own.dedup();
        if own.len() == self.own.len() {
            return self.clone();
        }
        let inside_a_suite_secret = |form: &String| {
            self.values
                .iter()
                .any(|value| value.len() > form.len() && value.contains(form.as_str()))
        };
        if own.len() > OWN_FORMS_SEARCHED_ALONE || own.iter().any(inside_a_suite_secret) {
            return self.merged(own);
        }
        Self {
            values: self.values.clone(),
            matcher: self.matcher.clone(),
            own: Arc::new(own),
        }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        // Shapes first: a literal secret inside a JWT must not split it into pieces the
        // JWT pattern no longer recognises.
        for (pattern, replacement) in SHAPES.iter() {
            if pattern.is_match(&out) {
                out = Cow::Owned(pattern.replace_all(&out, *replacement).into_owned());
            }
        }
        for form in self.own.iter() {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), MASK));
            }
        }
        if let Some(matcher) = &self.matcher {
            if matcher.is_match(out.as_ref()) {
                let masks = vec![MASK; self.values.len()];
                out = Cow::Owned(matcher.replace_all(&out, &masks));
            }
        }
        out
    }

    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }

    /// A diagnostic's message, notes and hint, and the spec line it shows.
    pub fn diagnostic(&self, diagnostic: &mut Diagnostic) {
        self.redact_in_place(&mut diagnostic.message);
        diagnostic
            .notes
            .iter_mut()
            .for_each(|note| self.redact_in_place(note));
        if let Some(hint) = &mut diagnostic.hint {
            self.redact_in_place(hint);
        }
        if let Some(source) = &diagnostic.source {
            if let Cow::Owned(text) = self.redact(&source.text) {
                diagnostic.source = Some(SourceFile::new(source.path.clone(), text));
            }
        }
    }

    /// Every string in a JSON value, keys included.
    pub fn value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => self.redact_in_place(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.value(&mut item);
                    map.insert(self.redact(&key).into_owned(), item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Everything an attempt holds as text: failures, frames, step labels and what
    /// state assertions saw, minted IDs.
    pub fn attempt(&self, attempt: &mut Attempt) {
        if let Some(failure) = &mut attempt.failure {
            self.diagnostic(failure);
        }
        attempt
            .teardown_failures
            .iter_mut()
            .for_each(|d| self.diagnostic(d));
        for frame in &mut attempt.frames {
            self.redact_in_place(&mut frame.data);
            if let Some(raw) = &mut frame.raw {
                self.redact_in_place(raw);
            }
            self.redact_in_place(&mut frame.connection);
            if let Some(violation) = &mut frame.schema_violation {
                self.redact_in_place(violation);
            }
        }
        for step in &mut attempt.steps {
            self.redact_in_place(&mut step.label);
            for seen in &mut step.observations {
                self.redact_in_place(&mut seen.target);
                self.value(&mut seen.expected);
                self.value(&mut seen.actual);
            }
        }
        for (connection, count) in std::mem::take(&mut attempt.frames_omitted) {
            *attempt
                .frames_omitted
                .entry(self.redact(&connection).into_owned())
                .or_default() += count;
        }
        for value in attempt.ids.values_mut() {
            if let serde_json::Value::String(id) = value {
                self.redact_in_place(id);
            }
        }
    }
}

/// The forms a secret takes in text: as is, escaped inside a JSON string, and
/// percent-encoded or decoded as in a URL.
fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut out = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    out.push(json[1..json.len() - 1].to_string());
    out.push(crate::text::percent_encode(secret));
    if let Some(decoded) = percent_decode(secret) {
        out.push(decoded);
    }
    out.retain(|form| !form.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The decoded form of a secret written percent-encoded, when it is.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    String::from_utf8(crate::text::percent_decode(text, false)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_any_length_are_masked_longest_first() {
        let r = Redactor::new(["ab", "abcdef", "x"]);
        assert_eq!(r.redact("ab abcdef x"), "*** *** ***");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_escaped_and_percent_encoded_forms_are_masked() {
        let r = Redactor::new(["a\"b c/d"]);
        let json = serde_json::json!({ "token": "a\"b c/d" }).to_string();
        assert_eq!(r.redact(&json), r#"{"token":"***"}"#);
        assert_eq!(r.redact("?token=a%22b%20c%2Fd&x=1"), "?token=***&x=1");
        let encoded = Redactor::new(["p%40ss"]);
        assert_eq!(encoded.redact("user p@ss and p%40ss"), "user *** and ***");
    }

    #[test]
    fn shapes_are_masked_without_being_declared() {
        let r = Redactor::default();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        assert_eq!(
            r.redact(&format!(r#"{{"type":"auth","token":"{jwt}"}}"#)),
            r#"{"type":"auth","token":"***"}"#
        );
        assert_eq!(
            r.redact("cannot connect to postgres://app:hunter2@db:5432/x"),
            "cannot connect to postgres://app:***@db:5432/x"
        );
        assert_eq!(
            r.redact("http://127.0.0.1:8080/path@x"),
            "http://127.0.0.1:8080/path@x"
        );
        assert_eq!(
            r.redact("Authorization: Bearer abcdefgh123"),
            "Authorization: Bearer ***"
        );
        assert_eq!(
            r.redact("needs bearer authentication"),
            "needs bearer authentication"
        );
    }

    #[test]
    fn with_adds_secrets_and_keeps_the_originals() {
        let base = Redactor::new(["one1"]);
        let more = base.with(["two2"]);
        assert_eq!(more.redact("one1 two2"), "*** ***");
        assert_eq!(base.redact("one1 two2"), "*** two2");
        assert_eq!(format!("{more:?}"), "Redactor(2 forms)");
        assert_eq!(
            more.merged(["thr3e"]).redact("one1 two2 thr3e"),
            "*** *** ***"
        );
    }

    #[test]
    fn overlapping_suite_and_attempt_secrets_leave_no_piece_either_way() {
        // The attempt's token inside a suite secret: the suite secret goes whole.
        let r = Redactor::new(["prefix-tok3n-suffix"]).with(["tok3n"]);
        assert_eq!(r.redact("prefix-tok3n-suffix, tok3n"), "***, ***");
        // A suite secret inside the attempt's token: the token goes whole.
        let r = Redactor::new(["k3y"]).with(["abc-k3y-def"]);
        assert_eq!(r.redact("abc-k3y-def, k3y"), "***, ***");
        // Two tokens, one inside the other; and many, which share one automaton.
        let r = Redactor::new(["s3cret"]).with(["tok", "tok-and-more"]);
        assert_eq!(r.redact("tok-and-more tok s3cret"), "*** *** ***");
        let many: Vec<String> = (0..40).map(|i| format!("token-{i:02}")).collect();
        let r = Redactor::new(["s3cret"]).with(&many);
        assert_eq!(r.redact("token-07 token-39 s3cret"), "*** *** ***");
    }

    #[test]
    fn an_attempt_is_redacted_value_by_value_so_a_one_character_secret_breaks_nothing() {
        use crate::runner::transcript::{Direction, FrameRecord};
        use crate::runner::Status;
        let mut attempt = Attempt {
            status: Status::Failed,
            duration: std::time::Duration::from_millis(1),
            ids: [("u".to_string(), serde_json::json!("usr_1a"))]
                .into_iter()
                .collect(),
            steps: Vec::new(),
            failure: Some(Diagnostic::new("got 1")),
            teardown_failures: vec![Diagnostic::new("teardown 1")],
            teardown_finished: true,
            frames: vec![FrameRecord {
                connection: "c".into(),
                direction: Direction::Received,
                at_ms: 1.5,
                data: r#"{"n":1}"#.into(),
                raw: Some(r#"{"p":{"n":1}}"#.into()),
                step: None,
                schema_violation: None,
                failed: false,
                number: Some(0),
            }],
            frames_omitted: [("c".to_string(), 11)].into_iter().collect(),
        };
        Redactor::new(["1"]).attempt(&mut attempt);
        assert_eq!(attempt.frames[0].data, r#"{"n":***}"#);
        assert_eq!(attempt.frames[0].raw.as_deref(), Some(r#"{"p":{"n":***}}"#));
        assert_eq!(attempt.frames[0].at_ms, 1.5);
        assert_eq!(attempt.ids["u"], "usr_***a");
        assert_eq!(attempt.failure.unwrap().message, "got ***");
        assert_eq!(attempt.teardown_failures[0].message, "teardown ***");
        assert_eq!(attempt.frames_omitted["c"], 11);
    }

    #[test]
    fn json_values_lose_secrets_in_strings_and_keys_only() {
        let mut value = serde_json::json!({"k3y": ["a k3y", 1, true, null, {"n": "k3y"}]});
        Redactor::new(["k3y"]).value(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"***": ["a ***", 1, true, null, {"n": "***"}]})
        );
    }

    #[test]
    fn diagnostics_lose_secrets_in_message_notes_hint_and_source_line() {
        let source = SourceFile::new("a.yaml", "steps:\n  - sql: select 'k3y'\n");
        let mut d = Diagnostic::new("failed k3y")
            .at(&source, crate::diagnostic::Span { line: 2, col: 5 })
            .note("got k3y")
            .hint("k3y?");
        Redactor::new(["k3y"]).diagnostic(&mut d);
        let text = d.render(false);
        assert!(!text.contains("k3y"), "{text}");
        assert!(text.contains("select '***'"), "{text}");
    }
}
