//! Signals sent to a real `engine run` over the reference backend (in-process, port 0,
//! real Postgres and Redis) while its scenarios hold connections, have written rows and
//! keys, and run a private process (`start_process`) beside a `serve` entry. Then count
//! what is left, by the IDs the run minted (read from its JSON report): after a graceful
//! stop (SIGTERM or SIGINT) nothing; after a second signal no process and no folder.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fresh, redis, DATABASE_URL, REDIS_URL};

const JWT_SECRET: &str = "lifecycle-test-secret";
/// Scenarios in the run; each holds a connection, rows, keys and a process group.
const SCENARIOS: usize = 3;

/// A suite over an in-process backend, marked so its processes and keys can be found.
struct Fixture {
    dir: tempfile::TempDir,
    /// In the environment of every process the run starts, and in its own keys.
    mark: String,
    _backend: backend::RunningServer,
}

impl Fixture {
    /// `resist_term`: the private processes ignore SIGTERM, so that teardown is still
    /// waiting for them when a second signal comes.
    async fn new(resist_term: bool) -> Fixture {
        let backend = backend::run(backend::Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url: DATABASE_URL.into(),
            jwt_secret: JWT_SECRET.into(),
            ..Default::default()
        })
        .await
        .expect("the reference backend starts (Postgres and Redis must be reachable)");
        let dir = tempfile::tempdir().unwrap();
        let mark = fresh();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = dir.path().display();
        let config = format!(
            r#"
env:
  WS_URL: "ws://{addr}"
  DATABASE_URL: "{DATABASE_URL}"
  REDIS_URL: "{REDIS_URL}"
  SECRET: "{JWT_SECRET}"
secrets: [SECRET]
ids:
  user: {{ prefix: "usr_" }}
  thread: {{ prefix: "thr_" }}
  message: {{ prefix: "msg_" }}
auth:
  jwt: {{ secret: "{{{{ env.SECRET }}}}" }}
timeouts: {{ step: 5s, scenario: 120s, teardown: 30s }}
databases: {{ default: "{{{{ env.DATABASE_URL }}}}" }}
redis: {{ default: "{{{{ env.REDIS_URL }}}}" }}
serve:
  - name: scratch-redis
    command: "echo {{{{ tmpdir }}}} > '{root}/folders.txt' && exec redis-server --bind 127.0.0.1 --port {port} --save '' --appendonly no --dir {{{{ tmpdir }}}}"
    ready: "redis://127.0.0.1:{port}"
    env: {{ ENGINE_TEST_MARK: "{mark}" }}
    timeout: 20s
"#,
            addr = backend.addr,
        );
        std::fs::write(dir.path().join("engine.yaml"), config).unwrap();
        let trap = if resist_term { "trap '' TERM; " } else { "" };
        let blockers = [
            "  - sleep: 100s\n",
            "  - expect: { on: tab, event: never_sent, within: 100s }\n",
            "  - sleep: 100s\n",
        ];
        for (i, blocker) in blockers.iter().enumerate().take(SCENARIOS) {
            let spec = format!(
                r#"
name: holds state {i}
ids: {{ alice: user, t: thread, m: message }}
steps:
  - start_process:
      name: private
      command: "{trap}dirname \"$(readlink /proc/$$/fd/1)\" >> '{root}/folders.txt'; sleep 600 & sleep 600 & echo ready; wait"
      env: {{ ENGINE_TEST_MARK: "{mark}" }}
      ready_log: ready
      within: 10s
  - connect:
      name: tab
      url: "{{{{ env.WS_URL }}}}/ws"
      authenticate: {{ jwt: {{ claims: {{ sub: "{{{{ ids.alice }}}}" }} }} }}
  - expect: {{ on: tab, event: connection_established }}
  - send: {{ on: tab, json: {{ type: user_message, thread_id: "{{{{ ids.t }}}}", message_id: "{{{{ ids.m }}}}", content: hi }} }}
  - expect: {{ on: tab, event: message_created, match: {{ message_id: "{{{{ ids.m }}}}" }} }}
  - redis: {{ command: [SET, "engine-lifecycle:{mark}:{{{{ ids.alice }}}}", holding] }}
{blocker}teardown:
  - sql: "DELETE FROM agentchat.messages WHERE user_id = $1"
    params: ["{{{{ ids.alice }}}}"]
  - sql: "DELETE FROM agentchat.threads WHERE user_id = $1"
    params: ["{{{{ ids.alice }}}}"]
  - sql: "DELETE FROM agentchat.connections WHERE user_id = $1"
    params: ["{{{{ ids.alice }}}}"]
  - redis: [DEL, "user:{{{{ ids.alice }}}}:seq", "user:{{{{ ids.alice }}}}:events", "user:{{{{ ids.alice }}}}:conns", "engine-lifecycle:{mark}:{{{{ ids.alice }}}}"]
"#
            );
            std::fs::write(dir.path().join(format!("holds_{i}.yaml")), spec).unwrap();
        }
        Fixture {
            dir,
            mark,
            _backend: backend,
        }
    }

    fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }

    /// `engine run` on the suite, stderr collected as it comes.
    fn start(&self) -> (Child, Arc<Mutex<String>>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(["run", self.dir.path().to_str().unwrap(), "--jobs", "3"])
            .arg("--json")
            .arg(self.report_path())
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .env_remove("GITHUB_ACTIONS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn engine");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        (child, stderr)
    }

    /// Users of the scenarios that reached their blocking step.
    async fn holding(&self) -> Vec<String> {
        let prefix = format!("engine-lifecycle:{}:", self.mark);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut redis().await)
            .await
            .unwrap();
        keys.iter()
            .map(|k| k.trim_start_matches(&prefix).to_string())
            .collect()
    }

    /// Live (not zombie) processes carrying the mark in their environment.
    fn processes(&self) -> Vec<u32> {
        let needle = format!("ENGINE_TEST_MARK={}", self.mark);
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let marked = environ
                    .split(|b| *b == 0)
                    .any(|var| var == needle.as_bytes());
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
                marked && !matches!(state, Some('Z') | Some('X') | None)
            })
            .collect()
    }

    /// Temporary folders of the run's processes (the `serve` entry's and each private
    /// process's), as they wrote them down.
    fn folders(&self) -> Vec<PathBuf> {
        std::fs::read_to_string(self.dir.path().join("folders.txt"))
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect()
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

async fn exit_code(mut child: Child, limit: Duration) -> i32 {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("engine did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
}

/// The minted `alice` of every attempt in the report.
fn reported_users(report: &serde_json::Value) -> Vec<String> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["attempts"].as_array().unwrap())
        .map(|a| {
            a["ids"]["alice"]
                .as_str()
                .expect("alice in ids")
                .to_string()
        })
        .collect()
}

/// Rows and keys the users still have in the shared stores.
async fn leftovers(users: &[String], mark: &str) -> (i64, usize) {
    let pool = sqlx::PgPool::connect(DATABASE_URL).await.unwrap();
    let mut rows = 0;
    for table in ["messages", "threads", "connections"] {
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM agentchat.{table} WHERE user_id = ANY($1)"
        ))
        .bind(users)
        .fetch_one(&pool)
        .await
        .unwrap();
        rows += n;
    }
    let mut conn = redis().await;
    let mut keys = 0;
    for user in users {
        for pattern in [format!("*{user}*"), format!("engine-lifecycle:{mark}:*")] {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys += found.len();
        }
    }
    (rows, keys)
}

/// Delete what a test left on purpose (after an immediate stop).
async fn clean_up(users: &[String], mark: &str) {
    let pool = sqlx::PgPool::connect(DATABASE_URL).await.unwrap();
    for table in ["messages", "threads", "connections"] {
        sqlx::query(&format!(
            "DELETE FROM agentchat.{table} WHERE user_id = ANY($1)"
        ))
        .bind(users)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut conn = redis().await;
    for user in users {
        for pattern in [format!("*{user}*"), format!("engine-lifecycle:{mark}:*")] {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in found {
                let _: () = redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Start the run and wait until every scenario holds its state and process.
async fn holding_run(fixture: &Fixture) -> (Child, Arc<Mutex<String>>, Vec<String>) {
    let (child, stderr) = fixture.start();
    wait_until(
        "every scenario holds its state",
        Duration::from_secs(60),
        || async { fixture.holding().await.len() == SCENARIOS },
    )
    .await;
    let users = fixture.holding().await;
    // One private group (sh and two sleeps) per scenario, and the serve entry.
    assert!(
        fixture.processes().len() > SCENARIOS,
        "{:?}",
        fixture.processes()
    );
    assert_eq!(fixture.folders().len(), SCENARIOS + 1);
    (child, stderr, users)
}

async fn graceful_stop_leaves_nothing(sig: i32, name: &str) {
    let fixture = Fixture::new(false).await;
    let (child, stderr, users) = holding_run(&fixture).await;
    assert!(
        leftovers(&users, &fixture.mark).await.0 > 0,
        "the scenarios wrote rows"
    );
    signal(&child, sig);
    let code = exit_code(child, Duration::from_secs(60)).await;
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(code, 128 + sig, "{stderr}");
    assert!(stderr.contains(&format!("{name}: stopping")), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.report_path()).unwrap()).unwrap();
    assert_eq!(report["finished"], true);
    assert_eq!(report["summary"]["interrupted"], SCENARIOS, "{report:#}");
    assert_eq!(report["summary"]["teardown_unfinished"], 0);
    let mut reported = reported_users(&report);
    let mut holding = users.clone();
    reported.sort();
    holding.sort();
    assert_eq!(reported, holding, "the report names the minted IDs");
    assert_eq!(
        leftovers(&reported, &fixture.mark).await,
        (0, 0),
        "rows and keys left"
    );
    assert_eq!(fixture.processes(), Vec::<u32>::new(), "processes left");
    for folder in fixture.folders() {
        assert!(!folder.exists(), "{} left", folder.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gracefully_and_leaves_nothing() {
    graceful_stop_leaves_nothing(libc::SIGTERM, "SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_gracefully_and_leaves_nothing() {
    graceful_stop_leaves_nothing(libc::SIGINT, "SIGINT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_and_still_kills_every_process() {
    let fixture = Fixture::new(true).await;
    let (child, stderr, users) = holding_run(&fixture).await;
    signal(&child, libc::SIGINT);
    // Teardown closes the connections, then waits for private processes that ignore
    // SIGTERM (up to the 30 s teardown deadline): stop it at once in between.
    let pool = sqlx::PgPool::connect(DATABASE_URL).await.unwrap();
    wait_until("teardown closes the connections", Duration::from_secs(20), || async {
        let (closed,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM agentchat.connections WHERE user_id = ANY($1) AND closed_at IS NOT NULL",
        )
        .bind(&users)
        .fetch_one(&pool)
        .await
        .unwrap();
        closed == SCENARIOS as i64
    })
    .await;
    assert!(!fixture.processes().is_empty(), "still waiting for them");
    signal(&child, libc::SIGTERM);
    let code = exit_code(child, Duration::from_secs(15)).await;
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(code, 128 + libc::SIGTERM, "{stderr}");
    assert!(stderr.contains("SIGTERM: stopping now"), "{stderr}");
    wait_until("every process is gone", Duration::from_secs(5), || async {
        fixture.processes().is_empty()
    })
    .await;
    for folder in fixture.folders() {
        assert!(!folder.exists(), "{} left", folder.display());
    }
    // The report says which scenarios did not tear down, with their IDs.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.report_path()).unwrap()).unwrap();
    assert_eq!(report["finished"], true);
    assert_eq!(
        report["summary"]["teardown_unfinished"], SCENARIOS,
        "{report:#}"
    );
    for scenario in report["scenarios"].as_array().unwrap() {
        assert_eq!(scenario["verdict"], "interrupted");
        assert_eq!(scenario["attempts"][0]["teardown_finished"], false);
    }
    let mut reported = reported_users(&report);
    let mut holding = users.clone();
    reported.sort();
    holding.sort();
    assert_eq!(reported, holding);
    clean_up(&users, &fixture.mark).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_stops_the_same_way_a_second_signal_kills_every_process() {
    let fixture = Fixture::new(true).await;
    let spec = fixture.dir.path().join("holds_0.yaml");
    let out = fixture.dir.path().join("load.json");
    let child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("load")
        .arg(&spec)
        .args(["--vus", "2", "--duration", "5m", "--json"])
        .arg(&out)
        .env("CI", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn engine");
    wait_until(
        "both VUs hold their state",
        Duration::from_secs(60),
        || async { fixture.holding().await.len() == 2 },
    )
    .await;
    let users = fixture.holding().await;
    signal(&child, libc::SIGINT);
    let pool = sqlx::PgPool::connect(DATABASE_URL).await.unwrap();
    wait_until("teardown closes the connections", Duration::from_secs(20), || async {
        let (closed,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM agentchat.connections WHERE user_id = ANY($1) AND closed_at IS NOT NULL",
        )
        .bind(&users)
        .fetch_one(&pool)
        .await
        .unwrap();
        closed == 2
    })
    .await;
    assert!(!fixture.processes().is_empty(), "still waiting for them");
    signal(&child, libc::SIGINT);
    let code = exit_code(child, Duration::from_secs(15)).await;
    assert_eq!(code, 128 + libc::SIGINT);
    wait_until("every process is gone", Duration::from_secs(5), || async {
        fixture.processes().is_empty()
    })
    .await;
    for folder in fixture.folders() {
        assert!(!folder.exists(), "{} left", folder.display());
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(result["interrupted"], true);
    clean_up(&users, &fixture.mark).await;
}

/// Without any signal: a teardown that outlives `timeouts.teardown` is cut short, and
/// every report names the scenario as not torn down.
#[tokio::test]
async fn a_teardown_past_its_deadline_is_reported_unfinished() {
    let suite = common::Suite::new("ws://127.0.0.1:9", "");
    let config = suite.path().join("engine.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("scenario: 20s }", "scenario: 20s, teardown: 1s }"),
    )
    .unwrap();
    suite.spec(
        "slow_teardown.yaml",
        "name: slow teardown\nsteps:\n  - sleep: 1ms\nteardown:\n  - sql: \"SELECT pg_sleep(10)\"\n  - redis: [PING]\n",
    );
    let out = tempfile::tempdir().unwrap();
    let (json, junit) = (out.path().join("r.json"), out.path().join("r.xml"));
    let started = Instant::now();
    let (code, stdout, stderr) = common::run_engine_async(
        vec![
            "run".into(),
            suite.path().display().to_string(),
            "--json".into(),
            json.display().to_string(),
            "--junit".into(),
            junit.display().to_string(),
        ],
        Vec::new(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the 1 s teardown deadline was not kept"
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("teardown did not finish within 1s"),
        "{stdout}"
    );
    assert!(stdout.contains("1 later action(s) did not run"), "{stdout}");
    assert!(
        stdout.contains("teardown did not finish (data may be left behind):")
            && stdout.contains("slow teardown"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["teardown_unfinished"], 1);
    assert_eq!(
        report["scenarios"][0]["attempts"][0]["teardown_finished"],
        false
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"name="teardown_finished" value="false""#),
        "{xml}"
    );
}
