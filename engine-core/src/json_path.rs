//! JSONPath expressions (`capture: {id: $.run_id}`), parsed with a bound on nesting:
//! serde_json_path's parser takes time exponential in the depth of `(`/`[` nesting
//! (14 levels: most of a second; 20: minutes), so a deeper path is refused up front,
//! by `engine check` and at run time alike.

use serde_json_path::JsonPath;

/// Deepest nesting of brackets and parentheses a path may have. Real paths use 1–3.
pub const MAX_NESTING: usize = 8;

/// Why a JSONPath is refused.
#[derive(Debug, thiserror::Error)]
pub enum JsonPathError {
    #[error(
        "JSONPath `{shown}` nests {nesting} levels of brackets; at most {MAX_NESTING} are allowed"
    )]
    TooDeep { shown: String, nesting: usize },
    #[error("bad JSONPath `{path}`: {source}")]
    Invalid {
        path: String,
        source: serde_json_path::ParseError,
    },
}

/// A path in a spec is the spec's problem.
impl From<JsonPathError> for crate::diagnostic::Diagnostic {
    fn from(e: JsonPathError) -> Self {
        Self::new(e.to_string())
    }
}

/// Parse a JSONPath, or say what is wrong with it.
pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
    let nesting = nesting(path);
    if nesting > MAX_NESTING {
        return Err(JsonPathError::TooDeep {
            shown: crate::text::truncate(path, 60).to_string(),
            nesting,
        });
    }
    JsonPath::parse(path).map_err(|source| JsonPathError::Invalid {
        path: path.to_string(),
        source,
    })
}

/// Deepest nesting of `(` and `[` outside quoted names.
fn nesting(path: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_parse_and_deep_ones_are_refused_quickly() {
        assert!(parse("$.run_id").is_ok());
        assert!(parse("$.items[?@.kind == 'a'].id").is_ok());
        assert!(parse("$['a(b[c']").is_ok());
        assert!(matches!(parse("$["), Err(JsonPathError::Invalid { .. })));
        assert!(parse("$[")
            .unwrap_err()
            .to_string()
            .starts_with("bad JSONPath"));
        let started = std::time::Instant::now();
        let deep = format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nests 41 levels"));
        let deep = format!("${}{}", "[?@".repeat(5000), "]".repeat(5000));
        assert!(parse(&deep).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
