//! Exit codes by class, through the binary: 0 all passed, 1 a scenario failed, 2 a spec
//! or usage error, 3 the environment (a `serve` entry that never gets ready, a configured
//! database or Redis server that refuses) — and in that case no scenario starts.

mod common;

use common::{free_port, fresh, redis, start_server, Suite};

async fn engine(args: &[&str]) -> (i32, String, String) {
    common::run_engine_async(args.iter().map(|a| a.to_string()).collect(), Vec::new()).await
}

/// A spec that would leave a mark in Redis if it ran.
fn marking_spec(suite: &Suite, key: &str) {
    suite.spec(
        "marks.yaml",
        &format!("name: marks\nsteps:\n  - redis: {{ command: [SET, \"{key}\", ran, EX, 60] }}\n"),
    );
}

async fn ran(key: &str) -> bool {
    let value: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    value.is_some()
}

#[tokio::test]
async fn zero_when_all_pass_one_when_a_scenario_fails() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "a.yaml",
        "name: passes\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: hello }\n",
    );
    let dir = suite.path().display().to_string();
    assert_eq!(engine(&["run", &dir]).await.0, 0);
    suite.spec(
        "b.yaml",
        "name: fails\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: nope, within: 50ms }\n",
    );
    let (code, stdout, _) = engine(&["run", &dir]).await;
    assert_eq!(code, 1, "{stdout}");
}

#[tokio::test]
async fn two_for_spec_and_usage_errors() {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    suite.spec("ok.yaml", "name: ok\nsteps:\n  - sleep: 1ms\n");
    let dir = suite.path().display().to_string();
    for args in [
        vec!["run", dir.as_str(), "--shard", "3/2"],
        vec!["run", dir.as_str(), "--tag", "nothing-has-this-tag"],
        vec!["run", "/no/such/folder"],
        vec!["run", dir.as_str(), "--no-such-flag"],
        vec!["load", dir.as_str(), "--vus", "1", "--segment", "2/2"],
    ] {
        let (code, _, stderr) = engine(&args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    suite.spec("bad.yaml", "name: bad\nsteps:\n  - conect: {}\n");
    let (code, _, stderr) = engine(&["run", &dir]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown step kind `conect`"), "{stderr}");
}

#[tokio::test]
async fn three_when_a_serve_entry_never_gets_ready_and_nothing_runs() {
    let key = format!("engine-exit-test:{}", fresh());
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        &format!(
            "serve:\n  - name: sluggish\n    command: \"echo warming up; exec sleep 30\"\n    ready: \"tcp://127.0.0.1:{}\"\n    timeout: 1s\n",
            free_port()
        ),
    );
    marking_spec(&suite, &key);
    let (code, stdout, stderr) = engine(&["run", &suite.path().display().to_string()]).await;
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("serve `sluggish`: not ready within 1s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warming up"),
        "its output is shown: {stderr}"
    );
    assert!(!ran(&key).await, "a scenario ran");
}

#[tokio::test]
async fn three_when_a_configured_database_or_redis_refuses_before_any_scenario() {
    for (table, url) in [
        (
            "databases",
            format!("postgres://postgres:hunter2@127.0.0.1:{}/test", free_port()),
        ),
        ("redis", format!("redis://127.0.0.1:{}", free_port())),
    ] {
        let key = format!("engine-exit-test:{}", fresh());
        let suite = Suite::new(
            "ws://127.0.0.1:9",
            &format!("{table}:\n  other: \"{url}\"\n"),
        );
        marking_spec(&suite, &key);
        let dir = suite.path().display().to_string();
        let (code, stdout, stderr) = engine(&["run", &dir]).await;
        assert_eq!(code, 3, "{table}: {stdout}{stderr}");
        assert!(stderr.contains("`other` at"), "{stderr}");
        assert!(stderr.contains("refuses"), "{stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "a password was shown: {stderr}"
        );
        assert!(!stdout.contains("running"), "scenarios started: {stdout}");
        assert!(!ran(&key).await, "a scenario ran");
        // Load mode goes through the same checks.
        let spec = suite.path().join("marks.yaml").display().to_string();
        let (code, _, stderr) = engine(&[
            "load",
            &spec,
            "--no-serve",
            "--vus",
            "1",
            "--iterations",
            "1",
        ])
        .await;
        assert_eq!(code, 3, "load, {table}: {stderr}");
        assert!(!ran(&key).await, "an iteration ran");
    }
}

#[tokio::test]
async fn three_when_a_profiles_websocket_server_refuses_before_any_scenario() {
    let key = format!("engine-exit-test:{}", fresh());
    let port = free_port();
    let suite = Suite::new(
        &format!("ws://127.0.0.1:{port}"),
        "profiles:\n  default:\n    url: \"{{ env.WS_URL }}/ws\"\n  private:\n    url: \"ws://127.0.0.1:{{ vars.port }}/ws\"\n",
    );
    marking_spec(&suite, &key);
    let (code, stdout, stderr) = engine(&["run", &suite.path().display().to_string()]).await;
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "WebSocket server of profile `default` at ws://127.0.0.1:{port}/ws refuses"
        )),
        "{stderr}"
    );
    // A profile built from a scenario's values is the scenario's to check.
    assert!(!stderr.contains("`private`"), "{stderr}");
    assert!(!ran(&key).await, "a scenario ran");
    // Once the server listens, the same suite runs.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (code, stdout, stderr) = engine(&["run", &suite.path().display().to_string()]).await;
    drop(listener);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(ran(&key).await);
}

#[tokio::test]
async fn record_exits_two_for_a_bad_flag_and_three_for_an_address_in_use() {
    let (code, _, stderr) = engine(&[
        "record",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9",
    ])
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error: --upstream http://127.0.0.1:9: give a ws:// or wss:// URL"),
        "{stderr}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, _, stderr) = engine(&[
        "record",
        "--listen",
        &address,
        "--upstream",
        "ws://127.0.0.1:9",
    ])
    .await;
    drop(taken);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {address}")),
        "{stderr}"
    );
}
