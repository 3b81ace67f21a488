//! `engine check` on inputs that used to crash the engine or pass unnoticed: nesting in
//! every YAML form, overflowing numbers and durations, unknown template filters and
//! functions, misspelt placeholders, writes in `assert_db`, an unclosed `{`. Each is a
//! spec error (exit 2) located at `file:line:col`, and `run` refuses the spec too.

mod common;

use common::Suite;

/// `engine check` on one spec: exit code and stderr.
fn check(spec: &str) -> (i32, String) {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    suite.spec("s.yaml", spec);
    let (code, _, stderr) = common::run_engine(&["check", suite.path().to_str().unwrap()], &[]);
    (code, stderr)
}

fn assert_located(spec: &str, message: &str, at: &str) -> String {
    let (code, stderr) = check(spec);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(message),
        "expected `{message}` in:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("s.yaml:{at}")),
        "expected s.yaml:{at} in:\n{stderr}"
    );
    stderr
}

#[test]
fn deep_nesting_in_any_form_is_a_located_error_in_check_and_run() {
    let compact = format!(
        "name: x\nsteps:\n  - sleep: 1ms\nvars:\n  a:\n    {}x\n",
        "- ".repeat(12_000)
    );
    let block: String = (0..5000)
        .map(|i| format!("{}k:\n", " ".repeat(4 + i)))
        .collect();
    let block = format!("name: x\nsteps:\n  - sleep: 1ms\nvars:\n{block}");
    let flow = format!(
        "name: x\nsteps:\n  - sleep: 1ms\nvars:\n  a: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    for (form, spec) in [("compact", &compact), ("block", &block), ("flow", &flow)] {
        let stderr = assert_located(spec, "nested too deeply: more than 64 levels", "");
        assert!(
            stderr.len() < 4000,
            "{form}: the excerpt is cut: {} bytes",
            stderr.len()
        );
        let suite = Suite::new("ws://127.0.0.1:9", "");
        suite.spec("s.yaml", spec);
        let (code, _, stderr) = common::run_engine(&["run", suite.path().to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{form}: run refuses it too: {stderr}");
    }
}

#[test]
fn overflowing_durations_and_numbers_are_located_errors() {
    assert_located(
        "name: x\ntimeout: 99999999999999999999999h\nsteps:\n  - sleep: 1ms\n",
        "`99999999999999999999999h` is too long",
        "2:10",
    );
    assert_located(
        "name: x\nsteps:\n  - sleep: 9999999999h\n",
        "is too long",
        "3:12",
    );
    assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - expect: {event: a, within: 99999999999999999999h}\n",
        "too long",
        "4:",
    );
    assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - send: {json: {n: 99999999999999999999999}}\n",
        "integer `99999999999999999999999` does not fit in 64 bits",
        "4:22",
    );
}

#[test]
fn unknown_template_filters_and_functions_suggest_the_real_one() {
    let stderr = assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - send: {json: {a: '{{ env.WS_URL | upperr }}'}}\n",
        "unknown template filter `upperr`",
        "4:22",
    );
    assert!(stderr.contains("did you mean `upper`?"), "{stderr}");
    let stderr = assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - send: {json: {a: '{{ uuidd() }}'}}\n",
        "unknown template function `uuidd`",
        "4:22",
    );
    assert!(stderr.contains("did you mean `uuid`?"), "{stderr}");
    assert!(!stderr.contains("unknown name"), "reported once: {stderr}");
}

#[test]
fn misspelt_placeholders_suggest_the_real_one() {
    let stderr = assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - expect:\n      event: a\n      match: {n: '#interger'}\n",
        "unknown placeholder `#interger`",
        "6:18",
    );
    assert!(stderr.contains("did you mean `#integer`?"), "{stderr}");
    assert_located(
        "name: x\nsteps:\n  - assert_db: {query: 'select 1 as n', row: {n: '#gte many'}}\n",
        "`#gte many`: the bound must be a number",
        "3:50",
    );
    // `#` in what is sent is data, not a placeholder.
    let (code, stderr) = check("name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - send: {json: {channel: '#general'}}\n  - expect: {event: a, match: {channel: '##general'}}\n");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn assert_db_only_reads() {
    let stderr = assert_located(
        "name: x\nsteps:\n  - assert_db:\n      query: DELETE FROM messages WHERE id = $1\n      params: [1]\n",
        "`assert_db` only reads, and this query does not: `DELETE` is not a read",
        "4:14",
    );
    assert!(stderr.contains("`sql` step"), "{stderr}");
    assert_located(
        "name: x\nsteps:\n  - assert_db: {query: 'WITH gone AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM gone'}\n",
        "it runs `DELETE`",
        "3:",
    );
    let (code, stderr) = check("name: x\nsteps:\n  - assert_db: {query: 'WITH a AS (SELECT 1) SELECT * FROM a FOR UPDATE', row_count: 1}\n");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn an_unclosed_brace_is_reported_where_it_opens() {
    let stderr = assert_located(
        "name: x\nsteps:\n  - connect: {url: 'ws://x'}\n  - send: {json: {a: 1}\n  - sleep: 1ms\n",
        "unclosed `{`: this flow mapping has no matching `}`",
        "4:11",
    );
    assert!(stderr.contains("hint: add the missing `}`"), "{stderr}");
    assert!(!stderr.contains("invalid indentation"), "{stderr}");
}
