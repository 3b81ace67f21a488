//! Figures for "the runtime never stalls and connections behave" (issue 10), measured
//! through the library against real in-process WebSocket servers (the test harness's,
//! run on their own runtime thread so they don't share the engine's workers):
//!
//! 1. a 100,000-frame backlog (the server floods, the spec sleeps 3 s) taken by one
//!    `count: 100000` — target < 2 s;
//! 2. five such floods in parallel, beside a scenario whose 1 s deadline waits on a
//!    silent server — target: it fails at 1 s ± 100 ms;
//! 3. the server's close frame: time until the engine's answer reaches the server, and
//!    until the engine closes TCP — target < 50 ms;
//! 4. a runaway template (`{% for %}` over 10^10): time until it is stopped.
//!
//! Run: `cargo bench -p engine --bench runtime_fairness` (ROUNDS, CLOSES env), or
//! `bash bench/runtime.sh`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Observed, Outcome, Suite};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (min, median, max) in milliseconds.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn flood_spec(n: usize) -> String {
    format!(
        r##"
name: flood {n}
timeout: 120s
steps:
  - connect: {{ url: "{{{{ env.WS_URL }}}}/flood/100000", within: 30s }}
  - sleep: 3s
  - expect: {{ event: tick, count: 100000, within: 100s }}
"##
    )
}

const SILENT: &str = r##"
name: silent
steps:
  - connect: { url: "{{ env.WS_URL }}/silent", within: 30s }
  - expect: { event: hello, within: 1s }
"##;

#[track_caller]
fn passed(outcome: &Outcome) -> &Outcome {
    outcome.assert_passed();
    outcome
}

/// 1: one 100k backlog per round; the `count` step's time.
async fn backlog(url: &str, rounds: usize) {
    let mut taken = Vec::new();
    for _ in 0..rounds {
        let suite = Suite::new(url, "");
        suite.spec("flood.yaml", &flood_spec(0));
        let outcomes = suite.run().await;
        taken.push(ms(passed(&outcomes[0]).step_duration(2)));
    }
    let (min, median, max) = spread(&mut taken);
    println!(
        "100k backlog taken by one count: median {median:.0} ms (min {min:.0}, max {max:.0}) over {rounds} rounds — target < 2000 ms: {}",
        verdict(max < 2000.0)
    );
}

/// 2: five parallel floods and a 1 s deadline beside them.
async fn floods_and_deadline(url: &str, rounds: usize) {
    let (mut deadline, mut takes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let suite = Suite::new(url, "");
        for n in 0..5 {
            suite.spec(&format!("flood{n}.yaml"), &flood_spec(n));
        }
        suite.spec("silent.yaml", SILENT);
        let outcomes = suite.run_jobs(6).await;
        for outcome in &outcomes {
            if outcome.name == "silent" {
                assert!(outcome
                    .failure
                    .contains("no `hello` on `default` within 1s"));
                deadline.push(ms(outcome.step_duration(1)));
            } else {
                takes.push(ms(passed(outcome).step_duration(2)));
            }
        }
    }
    let (dmin, dmed, dmax) = spread(&mut deadline);
    let (tmin, tmed, tmax) = spread(&mut takes);
    println!(
        "five parallel 100k floods: each backlog taken in median {tmed:.0} ms (min {tmin:.0}, max {tmax:.0})"
    );
    println!(
        "1 s deadline beside them fired after median {dmed:.0} ms (min {dmin:.0}, max {dmax:.0}) over {rounds} rounds — target 1000 ± 100 ms: {}",
        verdict(dmin >= 1000.0 && dmax <= 1100.0)
    );
}

/// 3: the close handshake as the server sees it.
async fn close_handshake(
    url: &str,
    mut observed: tokio::sync::mpsc::UnboundedReceiver<Observed>,
    closes: usize,
) {
    let suite = Suite::new(url, "");
    for n in 0..closes {
        suite.spec(
            &format!("close{n}.yaml"),
            &format!(
                "name: close {n}\nsteps:\n  - connect: {{ url: \"{{{{ env.WS_URL }}}}/close/1011\" }}\n  - expect_close: {{ code: 1011 }}\n"
            ),
        );
    }
    for outcome in suite.run().await {
        passed(&outcome);
    }
    let mut seen: Vec<Observed> = Vec::new();
    while seen.len() < closes {
        match tokio::time::timeout(Duration::from_secs(10), observed.recv()).await {
            Ok(Some(o)) => seen.push(o),
            _ => break,
        }
    }
    assert_eq!(seen.len(), closes, "every close observed");
    let mut answered: Vec<f64> = seen
        .iter()
        .map(|o| ms(o.client_close.expect("answered").1))
        .collect();
    let mut tcp: Vec<f64> = seen
        .iter()
        .map(|o| ms(o.tcp_closed.expect("TCP closed")))
        .collect();
    let (amin, amed, amax) = spread(&mut answered);
    let (cmin, cmed, cmax) = spread(&mut tcp);
    println!(
        "server's close frame answered after median {amed:.2} ms (min {amin:.2}, max {amax:.2}); TCP closed by the engine after median {cmed:.2} ms (min {cmin:.2}, max {cmax:.2}) over {closes} connections — target < 50 ms: {}",
        verdict(amax < 50.0 && cmax < 50.0)
    );
}

/// 4: how long a runaway template runs before the fuel limit stops it.
fn runaway_template() {
    let ctx = minijinja::Value::from_serialize(serde_json::json!({}));
    let started = Instant::now();
    let result = engine::template::render_str(
        "{% for i in range(100000) * 100000 %}{{ i }}{% endfor %}",
        &ctx,
    );
    let elapsed = started.elapsed();
    let message = result.expect_err("the fuel limit stops it");
    println!(
        "runaway template ({{% for %}} over 10^10) stopped after {:.0} ms: {message}",
        ms(elapsed)
    );
}

fn main() {
    let rounds = env_usize("ROUNDS", 3);
    let closes = env_usize("CLOSES", 20);
    // The servers get their own thread, as an application under test would.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = servers.block_on(common::start_server());
    let (closing_url, observed) = servers.block_on(common::start_observing_server());
    // The engine's runtime as `engine run` builds it (one worker per core).
    let engine = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    engine.block_on(async {
        backlog(&url, rounds).await;
        floods_and_deadline(&url, rounds).await;
        close_handshake(&closing_url, observed, closes).await;
    });
    runaway_template();
}
