//! `engine load` through the binary, on small numbers, against the in-process
//! WebSocket test server and the real Redis: counts and histograms, failures by kind,
//! thresholds and exit codes, executors, segments and merge, teardown for every
//! iteration, and Ctrl-C.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fresh, redis, start_server, Suite};
use serde_json::Value;

/// Run the engine with `args` (no progress line); (exit code, stdout, stderr).
async fn engine(args: Vec<String>) -> (i32, String, String) {
    common::run_engine_async(args, vec![("CI".into(), "1".into())]).await
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `engine load SPEC --no-serve OPTIONS… --json OUT`: exit code, stdout, stderr.
async fn load_to_json(spec: &Path, options: &[&str], out: &Path) -> (i32, String, String) {
    let mut list = vec!["load", spec.to_str().unwrap(), "--no-serve"];
    list.extend_from_slice(options);
    list.extend(["--json", out.to_str().unwrap()]);
    engine(args(&list)).await
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("result file")).expect("JSON")
}

/// connect, expect the greeting, send one frame, expect its echo.
const ECHO_SPEC: &str = r#"
name: echo once
ids: { u: user }
steps:
  - connect: { url: "{{ env.WS_URL }}/echo" }
  - expect: { event: hello }
  - send: { json: { type: ping, who: "{{ ids.u }}" } }
  - expect: { event: echo, match: { body: { who: "{{ ids.u }}" } } }
"#;

fn sum_series(result: &Value, field: &str) -> u64 {
    result["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| p[field].as_u64().expect("count"))
        .sum()
}

#[tokio::test]
async fn iterations_frames_latencies_and_steps_are_counted() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec("echo.yaml", ECHO_SPEC);
    let out = suite.path().join("result.json");
    let plot = suite.path().join("plot.html");
    let (code, stdout, stderr) = load_to_json(
        &spec,
        &[
            "--vus",
            "4",
            "--iterations",
            "20",
            "--plot",
            plot.to_str().unwrap(),
        ],
        &out,
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result = read_json(&out);
    assert_eq!(result["iterations"]["count"], 20);
    assert_eq!(result["iterations"]["failed"], 0);
    assert_eq!(result["frames"]["sent"], 20);
    // The greeting and the echo.
    assert_eq!(result["frames"]["received"], 40);
    assert_eq!(result["connections"]["opened"], 20);
    assert_eq!(result["connect_time"]["count"], 20);
    // Only the echo follows a send; the greeting has no latency.
    assert_eq!(result["event_latency"]["count"], 20);
    let p99 = result["event_latency"]["p99_ms"].as_f64().unwrap();
    let max = result["event_latency"]["max_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 <= max, "p99 {p99}, max {max}");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().all(|s| s["duration"]["count"] == 20));
    assert_eq!(steps[3]["label"], "#4 expect (line 8)");
    assert_eq!(sum_series(&result, "iterations"), 20);
    assert_eq!(sum_series(&result, "frames_received"), 40);
    assert_eq!(result["segments"], serde_json::json!(["1/1"]));
    for metric in ["event_latency", "connect_time", "p99"] {
        assert!(stdout.contains(metric), "summary lacks {metric}: {stdout}");
    }
    assert!(!stdout.contains("note:"), "{stdout}");
    assert_eq!(result["notes"], serde_json::json!([]));
    let page = std::fs::read_to_string(plot).unwrap();
    assert!(page.contains("<svg") && page.contains("event latency per second"));
    // A run shorter than a second has one point per series: drawn as dots.
    assert!(page.contains("<polyline") || page.contains("<circle"));
}

#[tokio::test]
async fn failures_are_counted_by_kind_and_a_run_where_all_fail_exits_1() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "closes.yaml",
        "name: server closes at once\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/close-early\" }\n  - expect: { event: hello, within: 1s }\n",
    );
    let out = suite.path().join("result.json");
    let (code, _, stderr) = load_to_json(&spec, &["--vus", "2", "--iterations", "6"], &out).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("every iteration failed"), "{stderr}");
    let result = read_json(&out);
    assert_eq!(result["failures"]["count"], 6);
    assert_eq!(result["failures"]["rate"], 1.0);
    assert_eq!(
        result["failures"]["by_kind"],
        serde_json::json!({"connection_closed": 6})
    );
}

#[tokio::test]
async fn a_broken_threshold_fails_the_run_and_is_named() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "echo.yaml",
        &format!("{ECHO_SPEC}load:\n  vus: 2\n  iterations: 4\n  thresholds:\n    failures.rate: \"< 1%\"\n"),
    );
    let path = spec.to_str().unwrap();
    let (code, stdout, stderr) = engine(args(&["load", path, "--no-serve"])).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("✓ failures.rate < 1%"), "{stdout}");
    let (code, stdout, stderr) = engine(args(&[
        "load",
        path,
        "--no-serve",
        "--threshold",
        "iterations.count > 4",
    ]))
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("✗ broken: iterations.count > 4 (got 4)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("threshold(s) broken: iterations.count > 4"),
        "{stderr}"
    );
    let (code, _, stderr) = engine(args(&[
        "load",
        path,
        "--no-serve",
        "--threshold",
        "event_latncy.p95 < 1s",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("did you mean `event_latency.p95`"),
        "{stderr}"
    );
}

/// A WebSocket server whose accept queue holds two connections and that, once it has
/// accepted one, accepts none for 200 ms (as a server busy with it): the other SYNs of a
/// burst are dropped, and the kernel sends them again after its 1 s retransmission
/// timeout.
async fn start_server_with_a_full_accept_queue() -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((first, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(common::serve(first));
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(common::serve(stream));
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn connects_that_waited_on_a_dropped_syn_are_explained() {
    let url = start_server_with_a_full_accept_queue().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "connect.yaml",
        "name: connect\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: hello }\n",
    );
    let out = suite.path().join("result.json");
    let (code, stdout, stderr) =
        load_to_json(&spec, &["--vus", "12", "--iterations", "12"], &out).await;
    // Connects that waited on a second retry can miss the 2 s step deadline.
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    let result = read_json(&out);
    let connect = &result["connect_time"];
    assert!(connect["min_ms"].as_f64().unwrap() < 490.0, "{connect}");
    assert!(connect["max_ms"].as_f64().unwrap() >= 990.0, "{connect}");
    assert!(
        stdout.contains("connects took 1 s or more, the others under 0.5 s: most likely their first SYN got no answer"),
        "{stdout}"
    );
    let notes = result["notes"].as_array().expect("notes in the result");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(stdout.contains(notes[0].as_str().unwrap()), "{stdout}");
}

#[tokio::test]
async fn arrival_rate_starts_iterations_on_schedule() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec("echo.yaml", ECHO_SPEC);
    let out = suite.path().join("result.json");
    let (code, stdout, stderr) =
        load_to_json(&spec, &["--rate", "20", "--duration", "1s"], &out).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result = read_json(&out);
    assert_eq!(result["executor"]["executor"], "constant-arrival-rate");
    assert_eq!(result["iterations"]["count"], 20);
    assert_eq!(result["iterations"]["dropped"], 0);
}

#[tokio::test]
async fn ramping_vus_follow_the_stages() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec("echo.yaml", ECHO_SPEC);
    let out = suite.path().join("result.json");
    let (code, stdout, stderr) =
        load_to_json(&spec, &["--stage", "1s:3", "--stage", "1s:3"], &out).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result = read_json(&out);
    assert_eq!(result["executor"]["executor"], "ramping-vus");
    assert!(result["iterations"]["count"].as_u64().unwrap() > 3);
    let most_vus = result["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["vus"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(most_vus <= 3, "at most 3 VUs ran at once, saw {most_vus}");
}

#[tokio::test]
async fn segments_split_the_iterations_and_merge_back_exactly() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec("echo.yaml", ECHO_SPEC);
    let mut parts = Vec::new();
    for segment in ["1/3", "2/3", "3/3"] {
        let out = suite.path().join(format!("part{}.json", &segment[..1]));
        let (code, stdout, stderr) = load_to_json(
            &spec,
            &["--vus", "3", "--iterations", "10", "--segment", segment],
            &out,
        )
        .await;
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        parts.push(out);
    }
    let counts: Vec<u64> = parts
        .iter()
        .map(|p| read_json(p)["iterations"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![4, 3, 3]);
    let merged = suite.path().join("merged.json");
    let mut merge = args(&["load", "merge"]);
    merge.extend(parts.iter().map(|p| p.to_str().unwrap().to_string()));
    merge.extend(args(&[
        "--json",
        merged.to_str().unwrap(),
        "--threshold",
        "iterations.count == 10",
    ]));
    let (code, stdout, stderr) = engine(merge).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result = read_json(&merged);
    assert_eq!(result["iterations"]["count"], 10);
    assert_eq!(result["event_latency"]["count"], 10);
    assert_eq!(result["segments"], serde_json::json!(["1/3", "2/3", "3/3"]));
    // The merged histogram holds exactly the parts' values: its max is theirs.
    let max_of_parts = parts
        .iter()
        .map(|p| read_json(p)["event_latency"]["max_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(
        result["event_latency"]["max_ms"].as_f64().unwrap(),
        max_of_parts
    );
    assert!(stdout.contains("✓ iterations.count == 10"), "{stdout}");
    // Fewer VUs than segments would leave a segment's iterations without a VU.
    let (code, _, stderr) = engine(args(&[
        "load",
        spec.to_str().unwrap(),
        "--no-serve",
        "--vus",
        "2",
        "--iterations",
        "10",
        "--segment",
        "3/3",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot be split into 3 segments"),
        "{stderr}"
    );
}

/// A scenario that marks each iteration in Redis at setup and removes the mark at
/// teardown, counting setups.
fn marked_spec(prefix: &str, extra_steps: &str) -> String {
    format!(
        r#"
name: marks its iteration
ids: {{ u: user }}
setup:
  - redis: [SET, "{prefix}:live:{{{{ ids.u }}}}", "1"]
  - redis: [INCR, "{prefix}:started"]
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}/echo" }}
  - expect: {{ event: hello }}
{extra_steps}
teardown:
  - redis: [DEL, "{prefix}:live:{{{{ ids.u }}}}"]
"#
    )
}

async fn live_marks(prefix: &str) -> usize {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:live:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

async fn started(prefix: &str) -> u64 {
    let mut conn = redis().await;
    let n: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}:started"))
        .query_async(&mut conn)
        .await
        .unwrap();
    n.unwrap_or(0)
}

#[tokio::test]
async fn every_iteration_tears_down_even_failed_ones() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let prefix = format!("engine-load-test:{}", fresh());
    // Every other iteration fails its last step.
    let spec = suite.spec(
        "marked.yaml",
        &marked_spec(
            &prefix,
            "  - send: { json: { type: ping, n: \"{{ ids.u }}\" } }\n  - expect: { event: echo, match: { body: { n: \"#regex [0-7]$\" } }, within: 300ms }\n",
        ),
    );
    let out = suite.path().join("result.json");
    let (code, stdout, stderr) =
        load_to_json(&spec, &["--vus", "4", "--iterations", "24"], &out).await;
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    let result = read_json(&out);
    assert_eq!(result["iterations"]["count"], 24);
    assert_eq!(started(&prefix).await, 24);
    assert_eq!(live_marks(&prefix).await, 0, "a teardown did not run");
    let failed = result["failures"]["count"].as_u64().unwrap();
    assert_eq!(
        result["failures"]["by_kind"]["timeout"]
            .as_u64()
            .unwrap_or(0),
        failed
    );
}

#[tokio::test]
async fn ctrl_c_stops_new_iterations_and_tears_down_running_ones() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let prefix = format!("engine-load-test:{}", fresh());
    // Each iteration would sleep for a minute: only cancelling it ends the run in time.
    let spec = suite.spec("marked.yaml", &marked_spec(&prefix, "  - sleep: 60s\n"));
    let out = suite.path().join("result.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "load",
            spec.to_str().unwrap(),
            "--no-serve",
            "--vus",
            "3",
            "--duration",
            "5m",
            "--json",
            out.to_str().unwrap(),
        ])
        .env("CI", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn engine");
    // Wait until all three VUs are inside an iteration.
    let deadline = Instant::now() + Duration::from_secs(20);
    while started(&prefix).await < 3 {
        assert!(Instant::now() < deadline, "the VUs never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live_marks(&prefix).await > 0);
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("engine did not stop within 20s of Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    let result = read_json(&out);
    assert_eq!(result["interrupted"], true);
    let iterations = result["iterations"]["count"].as_u64().unwrap();
    assert_eq!(
        started(&prefix).await,
        iterations,
        "every started iteration finished"
    );
    assert_eq!(iterations, 3, "no iteration started after the signal");
    assert_eq!(
        result["iterations"]["interrupted"], 3,
        "cancelled in their sleep"
    );
    assert_eq!(result["iterations"]["failed"], 0);
    assert_eq!(live_marks(&prefix).await, 0, "a teardown did not run");
}

#[tokio::test]
async fn the_spec_schema_checks_the_load_block() {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    let good = suite.spec(
        "good.yaml",
        &format!("{ECHO_SPEC}load:\n  executor: ramping-vus\n  stages: [{{ duration: 10s, target: 5 }}]\n  thresholds: {{ event_latency.p95: \"< 200ms\", failures.rate: \"< 0.1%\" }}\n"),
    );
    let (code, _, stderr) = engine(args(&["check", good.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{stderr}");
    for (bad, why) in [
        ("load: { vsu: 3 }", "vsu"),
        ("load: { executor: constant-rate }", "constant-rate"),
        ("load: { duration: soon }", "soon"),
        (
            "load: { thresholds: { latency.p95: \"< 1s\" } }",
            "latency.p95",
        ),
    ] {
        let spec = suite.spec("bad.yaml", &format!("{ECHO_SPEC}{bad}\n"));
        let (code, _, stderr) = engine(args(&["check", spec.to_str().unwrap()])).await;
        assert_eq!(code, 2, "{bad} was accepted");
        assert!(stderr.contains(why), "{bad}: {stderr}");
    }
}

/// A server that records the address each connection came from and greets it.
async fn start_address_recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            record.lock().unwrap().push(peer.ip().to_string());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let hello = r#"{"type":"hello"}"#;
                let _ = ws
                    .send(tokio_tungstenite::tungstenite::Message::text(hello))
                    .await;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            });
        }
    });
    (format!("ws://{addr}"), seen)
}

#[tokio::test]
async fn local_ips_spread_the_connections_over_source_addresses_in_turn() {
    let (url, seen) = start_address_recording_server().await;
    let suite = Suite::new(&url, "");
    let spec = suite.spec(
        "hello.yaml",
        "name: hello\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}\" }\n  - expect: { event: hello }\n",
    );
    let (code, stdout, stderr) = engine(args(&[
        "load",
        spec.to_str().unwrap(),
        "--no-serve",
        "--vus",
        "1",
        "--iterations",
        "4",
        "--local-ips",
        "127.0.0.2-127.0.0.3",
    ]))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
    );
    // A list that is not one is a usage error, before anything runs.
    let (code, _, stderr) = engine(args(&[
        "load",
        spec.to_str().unwrap(),
        "--no-serve",
        "--local-ips",
        "127.0.0.x",
    ]))
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`127.0.0.x` is not an IP address"),
        "{stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), 4);
}
