//! What an SQL text does, as far as `engine check` needs to know: whether it only reads.
//! `assert_db` re-runs its query while it waits (`eventually`), so a statement that
//! changes data there is a mistake; writes belong in a `sql` step.
//!
//! Not a parser: a tokenizer that skips comments, string literals, dollar quotes and
//! quoted identifiers, then looks at keywords. A pulled-in SQL grammar would refuse
//! valid Postgres it does not know, and templated queries are not SQL until rendered.

/// Why a query is not a read, if it is not.
pub fn not_a_read(sql: &str) -> Option<String> {
    let tokens = tokenize(&untemplated(sql));
    let mut statements = tokens.split(|t| t == ";").filter(|s| !s.is_empty());
    statements.find_map(statement_problem)
}

/// The statement kinds that only read.
const READS: &[&str] = &["SELECT", "WITH", "VALUES", "TABLE"];
/// Statements a `WITH` may wrap that change data.
const WRITES: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE"];

fn statement_problem(tokens: &[String]) -> Option<String> {
    let first = tokens.iter().find(|t| *t != "(")?;
    if first == TEMPLATE {
        return None; // decided by what the template renders to
    }
    if !READS.contains(&first.as_str()) {
        return Some(format!("`{first}` is not a read"));
    }
    // A data-modifying CTE: `WITH x AS (DELETE …)`, or a WITH whose main statement
    // writes: `WITH x AS (…) UPDATE …`.
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            word if WRITES.contains(&word) => {
                let after_paren = i > 0 && tokens[i - 1] == "(";
                let locking =
                    word == "UPDATE" && i > 0 && matches!(tokens[i - 1].as_str(), "FOR" | "KEY");
                if !locking && (after_paren || (depth == 0 && first == "WITH")) {
                    return Some(format!("it runs `{word}`"));
                }
            }
            "INTO" if depth == 0 && first == "SELECT" => {
                return Some("`SELECT … INTO` creates a table".into());
            }
            _ => {}
        }
    }
    None
}

/// Stands for a `{{ … }}` in the query.
const TEMPLATE: &str = "{{}}";

/// The query with each `{{ … }}` replaced by a marker and `{% … %}` removed.
fn untemplated(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(['{']) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (close, marker) = if tail.starts_with("{{") {
            ("}}", " {{}} ")
        } else if tail.starts_with("{%") {
            ("%}", " ")
        } else {
            out.push('{');
            rest = &tail[1..];
            continue;
        };
        match tail.find(close) {
            Some(end) => {
                out.push_str(marker);
                rest = &tail[end + 2..];
            }
            None => {
                out.push_str(marker);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Keywords and identifiers (uppercased), `(`, `)`, `;` and the template marker;
/// everything quoted or commented is dropped.
fn tokenize(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                // A dollar quote `$tag$ … $tag$`, or a parameter `$1`.
                let tag_end = chars[i + 1..]
                    .iter()
                    .position(|ch| !(ch.is_alphanumeric() || *ch == '_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(end) if chars[end] == '$' && !chars[i + 1].is_ascii_digit() => {
                        let tag: String = chars[i..=end].iter().collect();
                        let body_start = end + 1;
                        let rest: String = chars[body_start..].iter().collect();
                        i = match rest.find(&tag) {
                            Some(p) => body_start + rest[..p].chars().count() + tag.chars().count(),
                            None => chars.len(),
                        };
                    }
                    _ => i += 1,
                }
            }
            '(' | ')' | ';' => {
                tokens.push(c.to_string());
                i += 1;
            }
            '{' if chars.get(i + 1) == Some(&'{') => {
                tokens.push(TEMPLATE.to_string());
                i += 4;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$'))
                {
                    i += 1;
                }
                tokens.push(chars[start..i].iter().collect::<String>().to_uppercase());
            }
            _ => i += 1,
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT * FROM messages WHERE thread_id = $1",
            "select count(*) from t",
            "  (SELECT 1) UNION (SELECT 2)",
            "WITH last AS (SELECT max(seq) AS s FROM e) SELECT * FROM last",
            "VALUES (1), (2)",
            "TABLE runs",
            "SELECT * FROM runs WHERE id = $1 FOR UPDATE",
            "SELECT * FROM t FOR NO KEY UPDATE",
            "-- DELETE in a comment\nSELECT 'DELETE FROM t', \"update\" FROM t;",
            "SELECT $$ DROP TABLE x $$, $tag$ INSERT $tag$",
            "SELECT updated_at, deleted FROM t",
            "SELECT * FROM t WHERE id = '{{ ids.alice }}'",
            "{{ vars.query }}",
            "SELECT 1;",
        ] {
            assert_eq!(not_a_read(sql), None, "{sql}");
        }
    }

    #[test]
    fn writes_and_ddl_are_named() {
        for (sql, why) in [
            ("DELETE FROM messages", "`DELETE` is not a read"),
            ("  insert into t values (1)", "`INSERT` is not a read"),
            ("UPDATE runs SET status = 'x'", "`UPDATE` is not a read"),
            ("create table x (a int)", "`CREATE` is not a read"),
            ("TRUNCATE t", "`TRUNCATE` is not a read"),
            ("SELECT 1; DROP TABLE t", "`DROP` is not a read"),
            (
                "WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone",
                "it runs `DELETE`",
            ),
            (
                "WITH x AS (SELECT 1) UPDATE t SET a = 1",
                "it runs `UPDATE`",
            ),
            (
                "SELECT * INTO copy FROM t",
                "`SELECT … INTO` creates a table",
            ),
            ("/* SELECT */ DELETE FROM t", "`DELETE` is not a read"),
        ] {
            assert_eq!(not_a_read(sql).as_deref(), Some(why), "{sql}");
        }
    }
}
