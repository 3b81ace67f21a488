//! `serve` entries through the binary: a service that isn't running is started (its
//! temporary folder removed and the process stopped after the run), one that already
//! answers is reused, one that dies before it is ready fails the run with its output,
//! and one that takes a while says so while it starts.

mod common;

use common::{free_port, Suite};

fn run(dir: &std::path::Path, envs: &[(&str, String)]) -> (i32, String, String) {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::run_engine(&["run", dir.to_str().unwrap()], &envs)
}

#[test]
fn a_missing_service_is_started_for_the_run_and_stopped_after() {
    let port = free_port();
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        "redis:\n  default: \"redis://127.0.0.1:{{ env.TEST_REDIS_PORT }}\"\nserve:\n  - name: scratch-redis\n    command: \"echo {{ tmpdir }} > serve-tmpdir.txt && exec redis-server --bind 127.0.0.1 --port {{ env.TEST_REDIS_PORT }} --save '' --appendonly no --dir {{ tmpdir }}\"\n    ready: \"redis://127.0.0.1:{{ env.TEST_REDIS_PORT }}\"\n    timeout: 20s\n",
    );
    suite.spec(
        "uses.yaml",
        "name: uses the started redis\nids: { k: item }\nsteps:\n  - redis: { command: [SET, \"{{ ids.k }}\", started] }\n  - assert_redis: { key: \"{{ ids.k }}\", string: started }\n",
    );
    let (code, stdout, stderr) = run(&suite.path(), &[("TEST_REDIS_PORT", port.to_string())]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("serve: scratch-redis started"), "{stderr}");
    // Stopped: nothing listens on the port any more; its folder is gone.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "redis still running"
    );
    let tmpdir = std::fs::read_to_string(suite.path().join("serve-tmpdir.txt")).unwrap();
    assert!(
        !std::path::Path::new(tmpdir.trim()).exists(),
        "{tmpdir} was not removed"
    );
}

#[test]
fn a_slow_service_says_what_it_does_while_it_starts() {
    let port = free_port();
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        "redis:\n  default: \"redis://127.0.0.1:{{ env.TEST_REDIS_PORT }}\"\nserve:\n  - name: slow-redis\n    command: \"echo compiling the service; sleep 6; exec redis-server --bind 127.0.0.1 --port {{ env.TEST_REDIS_PORT }} --save '' --appendonly no --dir {{ tmpdir }}\"\n    ready: \"redis://127.0.0.1:{{ env.TEST_REDIS_PORT }}\"\n    timeout: 30s\n",
    );
    suite.spec(
        "noop.yaml",
        "name: noop\nsteps:\n  - redis: { command: [PING] }\n",
    );
    let (code, stdout, stderr) = run(&suite.path(), &[("TEST_REDIS_PORT", port.to_string())]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Not a terminal: a line at once, one after five seconds with the service's last
    // output line, one when it is ready.
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("serve:")).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("serve: slow-redis starting: echo compiling the service; sleep 6;"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("serve: slow-redis still starting (")
            && lines[1].ends_with(" s): compiling the service"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("serve: slow-redis started ("),
        "{stderr}"
    );
}

#[test]
fn a_running_service_is_reused_and_a_dying_one_fails_clearly() {
    let suite = Suite::new(
        "ws://127.0.0.1:9",
        "serve:\n  - name: shared-redis\n    command: exit 3\n    ready: \"{{ env.REDIS_URL }}\"\n",
    );
    suite.spec(
        "noop.yaml",
        "name: noop\nsteps:\n  - redis: { command: [PING] }\n",
    );
    let (code, stdout, stderr) = run(&suite.path(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("serve: shared-redis already running, reused"),
        "{stderr}"
    );

    let port = free_port();
    let dying = Suite::new(
        "ws://127.0.0.1:9",
        &format!("serve:\n  - name: broken\n    command: \"echo about to fail; exit 3\"\n    ready: \"tcp://127.0.0.1:{port}\"\n    timeout: 20s\n"),
    );
    dying.spec("noop.yaml", "name: noop\nsteps:\n  - sleep: 1ms\n");
    let (code, _, stderr) = run(&dying.path(), &[]);
    assert_eq!(code, 3, "the environment's fault: {stderr}");
    assert!(
        stderr.contains("exited (exit status: 3) before tcp://127.0.0.1"),
        "{stderr}"
    );
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert!(stderr.contains("serve: broken gave up after "), "{stderr}");
}

#[tokio::test]
async fn start_process_waits_for_its_log_line_and_captures_named_groups() {
    let url = common::start_server().await;
    let suite = Suite::new(&url, "");
    suite.spec(
        "process.yaml",
        r##"
name: process announces its port
steps:
  - start_process:
      name: announcer
      command: "echo starting; echo 'listening on port 4242'; exec sleep 30"
      ready_log: 'listening on port (?P<port>\d+)'
      within: 10s
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - send: { json: { type: say, port: "{{ vars.port }}" } }
  - expect: { event: echo, match: { body: { port: "4242" } } }
  - stop_process: { name: announcer, signal: TERM }
"##,
    );
    suite.spec(
        "never.yaml",
        r##"
name: process never announces
steps:
  - start_process: { name: mute, command: "echo nothing to see; exit 4", ready_log: 'listening on (?P<addr>\S+)' }
"##,
    );
    let outcomes = suite.run().await;
    let ok = outcomes
        .iter()
        .find(|o| o.name == "process announces its port")
        .unwrap();
    ok.assert_passed();
    let mute = &outcomes
        .iter()
        .find(|o| o.name == "process never announces")
        .unwrap()
        .failure;
    assert!(
        mute.contains("exited (exit status: 4) before its output matched"),
        "{mute}"
    );
    assert!(mute.contains("nothing to see"), "{mute}");
}
