//! The engine against the reference backend started in-process (on port 0, real
//! Postgres and Redis): real suite specs pass, and the `http` step works end to end.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use engine::runner::{self, Listener, Planned, Resources, RunEvent, RunOptions, Verdict};
use engine::spec::model::StepKind;

struct Verdicts(Arc<Mutex<Vec<(String, Verdict, String)>>>);

impl Listener for Verdicts {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        if let RunEvent::ScenarioFinished(report) = event {
            let failure = report
                .last()
                .failure
                .as_ref()
                .map(|d| d.render(false))
                .unwrap_or_default();
            self.0.lock().unwrap().push((
                report.planned.scenario.name.clone(),
                report.verdict,
                failure,
            ));
        }
    }
}

async fn start_backend(jwt_secret: &str) -> backend::RunningServer {
    backend::run(backend::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: "postgres://postgres@127.0.0.1:5432/test".into(),
        jwt_secret: jwt_secret.into(),
        ..Default::default()
    })
    .await
    .expect("the reference backend starts (Postgres and Redis must be reachable)")
}

/// Run specs from `paths` with the suite config pointed at `addr` and no `serve`.
async fn run_specs(
    paths: &[PathBuf],
    addr: std::net::SocketAddr,
    keep: impl Fn(&engine::spec::model::Scenario) -> bool,
) -> Vec<(String, Verdict, String)> {
    let loaded = engine::discover::load_all(paths).unwrap();
    assert!(loaded.problems.is_empty());
    let plan: Vec<Planned> = loaded
        .scenarios
        .into_iter()
        .filter(|(s, _)| keep(s))
        .map(|(scenario, config)| {
            let mut config = (*config).clone();
            config.env.insert("BACKEND_ADDR".into(), addr.to_string());
            config.serve.clear();
            Planned {
                scenario,
                config: Arc::new(config),
                iteration: 0,
            }
        })
        .collect();
    assert!(!plan.is_empty());
    let verdicts = Arc::new(Mutex::new(Vec::new()));
    let mut listeners: Vec<Box<dyn Listener>> = vec![Box::new(Verdicts(verdicts.clone()))];
    let options = RunOptions {
        jobs: 4,
        retries: 0,
        fail_fast: false,
        flaky_fails: false,
        report_frames: Default::default(),
        start_order: Vec::new(),
    };
    runner::run(plan, options, Resources::new(4), &mut listeners).await;
    let out = verdicts.lock().unwrap().clone();
    out
}

fn uses_private_processes(scenario: &engine::spec::model::Scenario) -> bool {
    fn any(steps: &[engine::spec::model::Step]) -> bool {
        steps
            .iter()
            .any(|s| s.kind == StepKind::StartProcess || any(&s.children))
    }
    any(&scenario.steps)
}

#[tokio::test]
async fn suite_specs_pass_against_the_in_process_backend() {
    // The suite's own secret (specs/engine.yaml).
    let server = start_backend("dev-secret").await;
    let specs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs"));
    let verdicts = run_specs(
        &[specs.join("state_sync"), specs.join("isolation")],
        server.addr,
        |s| !uses_private_processes(s) && s.skip.is_none(),
    )
    .await;
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|(_, v, _)| *v != Verdict::Passed)
        .map(|(n, _, f)| format!("{n}\n{f}"))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(verdicts.len() >= 10, "ran {} scenarios", verdicts.len());
    server.shutdown().await;
}

#[tokio::test]
async fn http_steps_check_status_body_and_capture() {
    // The test harness's suite signs tokens with this secret.
    let server = start_backend("test-secret-value").await;
    let suite = common::Suite::new("ws://unused", "");
    let base = format!("http://{}", server.addr);
    suite.spec(
        "http_ok.yaml",
        &format!(
            r##"
name: http ok
ids: {{ alice: user, t: item }}
steps:
  - http: {{ url: "{base}/healthz", status: 200, response: {{ status: ok, postgres: true }}, capture: {{ inst: $.instance_id }} }}
  - http:
      method: POST
      url: "{base}/api/threads"
      bearer: {{ jwt: {{ claims: {{ sub: "{{{{ ids.alice }}}}" }} }} }}
      json: {{ id: "{{{{ ids.t }}}}", title: first }}
      status: 201
      response: {{ id: "{{{{ ids.t }}}}", user_id: "{{{{ ids.alice }}}}", title: first, created_at: "#string" }}
      capture: {{ created: $.created_at }}
  - assert_db:
      query: "SELECT title FROM agentchat.threads WHERE id = $1"
      params: ["{{{{ ids.t }}}}"]
      row: {{ title: first }}
teardown:
  - sql: "DELETE FROM agentchat.threads WHERE id = $1"
    params: ["{{{{ ids.t }}}}"]
"##
        ),
    );
    suite.spec(
        "http_fail.yaml",
        &format!("name: http wrong status\nsteps:\n  - http: {{ method: POST, url: \"{base}/api/threads\", json: {{}}, status: 201 }}\n"),
    );
    let outcomes = suite.run().await;
    let ok = outcomes.iter().find(|o| o.name == "http ok").unwrap();
    ok.assert_passed();
    let bad = &outcomes
        .iter()
        .find(|o| o.name == "http wrong status")
        .unwrap()
        .failure;
    assert!(bad.contains("expected HTTP 201, got 401"), "{bad}");
    assert!(bad.contains("unauthorized"), "{bad}");
    server.shutdown().await;
}
