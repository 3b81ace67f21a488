//! The `engine` binary: exit codes, spec errors with positions, selection, secrets.

mod common;

use common::{start_server, Suite};

fn engine(args: &[&str]) -> (i32, String, String) {
    common::run_engine(args, &[])
}

#[tokio::test]
async fn exit_codes_say_pass_fail_and_spec_error() {
    let url = start_server().await;
    let pass = Suite::new(&url, "");
    pass.spec("p.yaml", "name: passes\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: hello }\n");
    let dir = pass.path();
    let (code, stdout, _) =
        tokio::task::spawn_blocking(move || engine(&["run", dir.to_str().unwrap()]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");

    let fail = Suite::new(&url, "");
    fail.spec("f.yaml", "name: fails\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: nope, within: 50ms }\n");
    let dir = fail.path();
    let (code, stdout, _) =
        tokio::task::spawn_blocking(move || engine(&["run", dir.to_str().unwrap()]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("f.yaml:4:5"), "{stdout}");
}

#[test]
fn spec_errors_exit_2_with_position_and_suggestion() {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    suite.spec(
        "bad.yaml",
        "name: bad\nsteps:\n  - conect: { url: x }\n  - expect: { evnt: a }\n",
    );
    suite.spec("broken.yaml", "name: broken\nsteps: [\n");
    let (code, _, stderr) = engine(&["check", suite.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown step kind `conect`"), "{stderr}");
    assert!(stderr.contains("bad.yaml:3:5"), "{stderr}");
    assert!(stderr.contains("did you mean `connect`?"), "{stderr}");
    assert!(stderr.contains("unknown key `evnt`"), "{stderr}");
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(stderr.contains("broken.yaml:"), "{stderr}");
    // `run` refuses to start with spec errors, without touching any service.
    let (code, _, _) = engine(&["run", suite.path().to_str().unwrap()]);
    assert_eq!(code, 2);
}

#[test]
fn shards_are_disjoint_and_cover_everything() {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    for i in 0..30 {
        suite.spec(
            &format!("s{i:02}.yaml"),
            &format!(
                "name: scenario {i}\ntags: [{}]\nsteps:\n  - sleep: 1ms\n",
                if i % 3 == 0 { "slow" } else { "fast" }
            ),
        );
    }
    let dir = suite.path();
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["list", dir.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = engine(&args);
        assert_eq!(code, 0, "{stderr}");
        let items: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
        items
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = list(&[]);
    assert_eq!(all.len(), 30);
    let mut union = Vec::new();
    for k in 1..=4 {
        let shard = list(&["--shard", &format!("{k}/4")]);
        assert!(!shard.is_empty(), "shard {k}/4 is empty");
        for name in &shard {
            assert!(!union.contains(name), "{name} is in two shards");
        }
        union.extend(shard);
    }
    union.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(union, expected);
    // Filter and tags narrow the list.
    assert_eq!(list(&["--filter", "scenario 1[0-2]$"]).len(), 3);
    assert_eq!(list(&["--tag", "slow"]).len(), 10);
    assert_eq!(list(&["--skip-tag", "slow"]).len(), 20);
    assert_eq!(list(&["--tag", "slow", "--filter", "scenario 2"]).len(), 3);
}

#[tokio::test]
async fn secrets_never_reach_the_console() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "leak.yaml",
        "name: leaks\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - send: { json: { type: say, secret: \"{{ env.SECRET }}\" } }\n  - expect: { event: echo, match: { body: { secret: nope } }, within: 200ms }\n",
    );
    let dir = suite.path();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || engine(&["run", dir.to_str().unwrap()]))
            .await
            .unwrap();
    assert_eq!(code, 1);
    assert!(
        !stdout.contains("test-secret-value") && !stderr.contains("test-secret-value"),
        "{stdout}"
    );
    assert!(stdout.contains("***"), "{stdout}");
}
