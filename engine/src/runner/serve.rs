//! `serve` entries: make the system under test available for the run. A service whose
//! readiness check already passes is reused; otherwise its command starts (in its own
//! process group, output to a log file), the engine waits for readiness, and stops it
//! after the run. `{{ tmpdir }}` in a command is a fresh folder removed afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::spec::config::{ServeSpec, SuiteConfig};
use crate::template;
use crate::text::hide_password;

/// A service this run started (reused ones are not tracked: we never stop them).
pub struct Started {
    pub name: String,
    pub child: Child,
    _tmpdir: tempfile::TempDir,
    pub log: PathBuf,
    /// Named groups of `ready_log`'s match.
    pub captured: BTreeMap<String, String>,
}

/// What happened to each entry, for the console.
#[derive(Debug, Clone)]
pub enum ServeStatus {
    Reused,
    Started(Duration),
}

/// Bring up every entry of the config, in order. Stops what it started on failure.
pub async fn start_all(
    config: &SuiteConfig,
) -> Result<(Vec<Started>, Vec<(String, ServeStatus)>), String> {
    let mut started = Vec::new();
    let mut statuses = Vec::new();
    let env = config.env_values();
    for spec in &config.serve {
        let began = std::time::Instant::now();
        match start_one(config, spec, &env).await {
            Ok(Some(s)) => {
                statuses.push((spec.name.clone(), ServeStatus::Started(began.elapsed())));
                started.push(s);
            }
            Ok(None) => statuses.push((spec.name.clone(), ServeStatus::Reused)),
            Err(e) => {
                stop_all(started).await;
                return Err(e);
            }
        }
    }
    Ok((started, statuses))
}

fn render(text: &str, env: &BTreeMap<String, String>, tmpdir: &str) -> Result<String, String> {
    let ctx = minijinja::Value::from_serialize(serde_json::json!({ "env": env, "tmpdir": tmpdir }));
    match template::render_str(text, &ctx)? {
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

async fn start_one(
    config: &SuiteConfig,
    spec: &ServeSpec,
    env: &BTreeMap<String, String>,
) -> Result<Option<Started>, String> {
    let tmpdir = tempfile::Builder::new()
        .prefix(&format!("engine-serve-{}-", spec.name))
        .tempdir()
        .map_err(|e| {
            format!(
                "serve `{}`: cannot create a temporary folder: {e}",
                spec.name
            )
        })?;
    let tmp = tmpdir.path().to_string_lossy().into_owned();
    let ready =
        render(&spec.ready, env, &tmp).map_err(|e| format!("serve `{}`: ready: {e}", spec.name))?;
    if check_ready(&ready, Duration::from_secs(2)).await.is_ok() {
        return Ok(None);
    }
    let command = render(&spec.command, env, &tmp)
        .map_err(|e| format!("serve `{}`: command: {e}", spec.name))?;
    let mut vars = BTreeMap::new();
    // Config env defaults reach the service too (the process env already does).
    for key in config.env.keys() {
        if std::env::var_os(key).is_none() {
            if let Some(value) = env.get(key) {
                vars.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, value) in &spec.env {
        vars.insert(key.clone(), render(value, env, &tmp)?);
    }
    let cwd = spec
        .cwd
        .as_ref()
        .map(|c| config.resolve(c))
        .unwrap_or_else(|| config.dir.clone());
    let launch = Launch {
        name: &spec.name,
        command: &command,
        env: &vars,
        cwd: &cwd,
        ready: Some(&ready),
        ready_log: None,
        timeout: spec.timeout,
    };
    launch
        .start(tmpdir)
        .await
        .map(Some)
        .map_err(|e| format!("serve {e}"))
}

/// A process to start and wait for.
pub struct Launch<'a> {
    pub name: &'a str,
    pub command: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a std::path::Path,
    /// Readiness URL; `None` (and no `ready_log`) means started is enough.
    pub ready: Option<&'a str>,
    /// Ready once a line of the output matches; its named groups are captured. This
    /// lets a process bind port 0 and say which port it got: no free-port race.
    pub ready_log: Option<&'a regex::Regex>,
    pub timeout: Duration,
}

impl Launch<'_> {
    /// Start `sh -c command` in its own process group, output to a log in `tmpdir`,
    /// and wait until `ready` answers, the process exits, or the timeout passes.
    pub async fn start(&self, tmpdir: tempfile::TempDir) -> Result<Started, String> {
        let name = self.name;
        let command = self.command;
        let log = tmpdir.path().join("output.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("`{name}`: {e}"))?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .current_dir(self.cwd)
            .envs(self.env)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("`{name}`: cannot start `{command}`: {e}"))?;
        let mut captured = BTreeMap::new();
        if self.ready.is_none() && self.ready_log.is_none() {
            return Ok(Started {
                name: name.to_string(),
                child,
                _tmpdir: tmpdir,
                log,
                captured,
            });
        }
        let what = match (self.ready, self.ready_log) {
            (Some(url), _) => hide_password(url),
            (None, Some(re)) => format!("its output matched /{re}/"),
            (None, None) => String::new(),
        };
        let deadline = Instant::now() + self.timeout;
        let mut last_error = String::from("no matching output yet");
        let mut log_seen = self.ready_log.is_none();
        loop {
            if let (false, Some(re)) = (log_seen, self.ready_log) {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(found) = output.lines().find_map(|line| re.captures(line)) {
                    for group in re.capture_names().flatten() {
                        if let Some(m) = found.name(group) {
                            captured.insert(group.to_string(), m.as_str().to_string());
                        }
                    }
                    log_seen = true;
                }
            }
            if log_seen {
                match self.ready {
                    None => break,
                    Some(url) => match check_ready(url, Duration::from_secs(2)).await {
                        Ok(()) => break,
                        Err(e) => last_error = e,
                    },
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "`{name}`: `{command}` exited ({status}) before {what}\n{}",
                    excerpt(&output)
                ));
            }
            if Instant::now() >= deadline {
                terminate(&mut child, libc::SIGTERM).await;
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "`{name}`: not ready within {:?} ({last_error})\n{}",
                    self.timeout,
                    excerpt(&output)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Started {
            name: name.to_string(),
            child,
            _tmpdir: tmpdir,
            log,
            captured,
        })
    }
}

/// A process's output for an error message: all of it when short; else the first lines
/// (where the cause usually is) and the last ones (where it ended).
fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 40 {
        return lines.join("\n");
    }
    format!(
        "{}\n… {} lines …\n{}",
        lines[..12].join("\n"),
        lines.len() - 32,
        lines[lines.len() - 20..].join("\n")
    )
}

/// One readiness probe, by URL scheme.
pub async fn check_ready(url: &str, timeout: Duration) -> Result<(), String> {
    let probe = async {
        if url.starts_with("http://") || url.starts_with("https://") {
            let response = reqwest::Client::new()
                .get(url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", response.status()))
            }
        } else if let Some(addr) = url.strip_prefix("tcp://") {
            tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close().await;
            Ok(())
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = redis::Client::open(url).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Err(format!(
                "unsupported readiness check `{url}` (use http://, tcp://, postgres://, redis://)"
            ))
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err("no answer".into()),
    }
}

/// Signal the whole process group (`sh -c` and what it started); after SIGTERM wait,
/// then SIGKILL what is left.
pub async fn terminate(child: &mut Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a process group we created; no memory is touched.
        unsafe {
            libc::kill(-(pid as i32), signal);
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            // SAFETY: as above.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            let _ = child.wait().await;
        }
    }
}

/// Stop what this run started, in reverse order.
pub async fn stop_all(started: Vec<Started>) {
    for mut service in started.into_iter().rev() {
        terminate(&mut service.child, libc::SIGTERM).await;
    }
}
