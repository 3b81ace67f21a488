//! `serve` entries: make the system under test available for the run. A service whose
//! readiness check already passes is reused; otherwise its command starts (in its own
//! process group, output to a log file), the engine waits for readiness, and stops it
//! after the run. `{{ tmpdir }}` in a command is a fresh folder removed afterwards.
//! While it waits it tells a [`ServeProgress`] (the console) which service, for how
//! long, and the last line of its output: a service that compiles for minutes is not
//! silent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::process_group::ProcessGroup;
use super::stop::RunStop;
use crate::spec::config::{ServeSpec, SuiteConfig};
use crate::template;
use crate::text::hide_password;

/// A process this run started (reused services are not tracked: we never stop them).
/// Dropped, it kills its whole process group and removes its folder.
pub struct Started {
    pub name: String,
    pub child: Child,
    group: ProcessGroup,
    _tmpdir: tempfile::TempDir,
    pub log: PathBuf,
    /// Named groups of `ready_log`'s match.
    pub captured: BTreeMap<String, String>,
}

/// Why a service or process could not be brought up (the variant says whose fault it
/// is: the suite's text, the environment, or a stop request).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("`{name}`: {field}: {message}")]
    Template {
        name: String,
        field: &'static str,
        message: crate::template::RenderError,
    },
    #[error("`{name}`: cannot create a temporary folder or log: {source}")]
    Folder {
        name: String,
        source: std::io::Error,
    },
    #[error("`{name}`: cannot start `{command}`: {source}")]
    Spawn {
        name: String,
        command: String,
        source: std::io::Error,
    },
    #[error("`{name}`: `{command}` exited ({status}) before {what}\n{output}")]
    Exited {
        name: String,
        command: String,
        status: std::process::ExitStatus,
        what: String,
        output: String,
    },
    #[error("`{name}`: not ready within {timeout:?} ({last_error})\n{output}")]
    NotReady {
        name: String,
        timeout: Duration,
        last_error: String,
        output: String,
    },
    #[error("`{name}`: startup interrupted by {}", super::stop::signal_name(*signal))]
    Interrupted { name: String, signal: i32 },
}

/// What bringing services up looks like as it happens, for the console to show
/// ([`ServeProgress`]): nothing here prints.
#[derive(Debug, Clone, PartialEq)]
pub enum ServeEvent<'a> {
    /// Its readiness check already passes: reused, not started.
    Reused { name: &'a str },
    /// Its command was started; waiting for readiness.
    Starting { name: &'a str, command: &'a str },
    /// Still waiting, about once a second: time since the command started, and the last
    /// line of its output so far (cut short).
    Waiting {
        name: &'a str,
        elapsed: Duration,
        last_line: Option<String>,
    },
    /// Ready after `took`.
    Ready { name: &'a str, took: Duration },
    /// Given up after `took` (the error says why, with the output).
    Failed { name: &'a str, took: Duration },
}

/// Told of every [`ServeEvent`].
pub trait ServeProgress: Sync {
    fn on_serve(&self, event: &ServeEvent<'_>);
}

/// Tells nobody (`start_process` steps, tests).
pub struct Silent;

impl ServeProgress for Silent {
    fn on_serve(&self, _: &ServeEvent<'_>) {}
}

/// How often [`ServeEvent::Waiting`] is sent.
pub const WAITING_EVERY: Duration = Duration::from_secs(1);

/// Bring up every entry of the config, in order; give up (stopping what it started) on
/// the first failure or when `stop` is requested. `progress` hears how it goes.
pub async fn start_all(
    config: &SuiteConfig,
    stop: &RunStop,
    progress: &dyn ServeProgress,
) -> Result<Vec<Started>, ServeError> {
    let mut started = Vec::new();
    let env = config.env_values();
    for spec in &config.serve {
        let outcome = if stop.is_requested() {
            Err(ServeError::Interrupted {
                name: spec.name.clone(),
                signal: stop.signal().unwrap_or(libc::SIGINT),
            })
        } else {
            start_one(config, spec, &env, stop, progress).await
        };
        match outcome {
            Ok(Some(s)) => started.push(s),
            Ok(None) => progress.on_serve(&ServeEvent::Reused { name: &spec.name }),
            Err(e) => {
                stop_all(started).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

fn render(
    name: &str,
    field: &'static str,
    text: &str,
    env: &BTreeMap<String, String>,
    tmpdir: &str,
) -> Result<String, ServeError> {
    let ctx = minijinja::Value::from_serialize(serde_json::json!({ "env": env, "tmpdir": tmpdir }));
    match template::render_str(text, &ctx) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(message) => Err(ServeError::Template {
            name: name.to_string(),
            field,
            message,
        }),
    }
}

async fn start_one(
    config: &SuiteConfig,
    spec: &ServeSpec,
    env: &BTreeMap<String, String>,
    stop: &RunStop,
    progress: &dyn ServeProgress,
) -> Result<Option<Started>, ServeError> {
    let name = spec.name.as_str();
    let tmpdir = tempfile::Builder::new()
        .prefix(&format!("engine-serve-{name}-"))
        .tempdir()
        .map_err(|source| ServeError::Folder {
            name: name.to_string(),
            source,
        })?;
    let tmp = tmpdir.path().to_string_lossy().into_owned();
    let ready = render(name, "ready", &spec.ready, env, &tmp)?;
    if check_ready(&ready, Duration::from_secs(2)).await.is_ok() {
        return Ok(None);
    }
    let command = render(name, "command", &spec.command, env, &tmp)?;
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
        vars.insert(key.clone(), render(name, "env", value, env, &tmp)?);
    }
    let cwd = spec
        .cwd
        .as_ref()
        .map(|c| config.resolve(c))
        .unwrap_or_else(|| config.dir.clone());
    let launch = Launch {
        name,
        command: &command,
        env: &vars,
        cwd: &cwd,
        ready: Some(&ready),
        ready_log: None,
        timeout: spec.timeout,
        stop: Some(stop),
        progress,
    };
    launch.start(tmpdir).await.map(Some)
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
    /// Give up waiting (and stop the process) when the run is asked to stop.
    pub stop: Option<&'a RunStop>,
    /// Hears that it starts, waits, is ready or failed.
    pub progress: &'a dyn ServeProgress,
}

impl Launch<'_> {
    /// Start `sh -c command` in its own process group, output to a log in `tmpdir`,
    /// and wait until `ready` answers, the process exits, or the timeout passes.
    pub async fn start(&self, tmpdir: tempfile::TempDir) -> Result<Started, ServeError> {
        let name = self.name;
        let command = self.command;
        let folder_error = |source| ServeError::Folder {
            name: name.to_string(),
            source,
        };
        let log = tmpdir.path().join("output.log");
        let log_file = std::fs::File::create(&log).map_err(folder_error)?;
        let err_file = log_file.try_clone().map_err(folder_error)?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .current_dir(self.cwd)
            .envs(self.env)
            .kill_on_drop(true);
        let (child, group) =
            ProcessGroup::spawn(&mut cmd, tmpdir.path()).map_err(|source| ServeError::Spawn {
                name: name.to_string(),
                command: command.to_string(),
                source,
            })?;
        let mut started = Started {
            name: name.to_string(),
            child,
            group,
            _tmpdir: tmpdir,
            log,
            captured: BTreeMap::new(),
        };
        if self.ready.is_none() && self.ready_log.is_none() {
            return Ok(started);
        }
        self.progress
            .on_serve(&ServeEvent::Starting { name, command });
        let began = Instant::now();
        match self.wait_ready(&mut started).await {
            Ok(()) => {
                let took = began.elapsed();
                self.progress.on_serve(&ServeEvent::Ready { name, took });
                Ok(started)
            }
            Err(e) => {
                let took = began.elapsed();
                self.progress.on_serve(&ServeEvent::Failed { name, took });
                started
                    .terminate(libc::SIGTERM, Duration::from_secs(10))
                    .await;
                Err(e)
            }
        }
    }

    async fn wait_ready(&self, started: &mut Started) -> Result<(), ServeError> {
        let (name, command, log) = (self.name, self.command, started.log.clone());
        let what = match (self.ready, self.ready_log) {
            (Some(url), _) => hide_password(url),
            (None, Some(re)) => format!("its output matched /{re}/"),
            (None, None) => String::new(),
        };
        let began = Instant::now();
        let deadline = began + self.timeout;
        let mut last_error = String::from("no matching output yet");
        let mut log_seen = self.ready_log.is_none();
        let mut next_report = began + WAITING_EVERY;
        loop {
            if Instant::now() >= next_report {
                next_report += WAITING_EVERY;
                self.progress.on_serve(&ServeEvent::Waiting {
                    name,
                    elapsed: began.elapsed(),
                    last_line: last_line(&log),
                });
            }
            if let (false, Some(re)) = (log_seen, self.ready_log) {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(found) = output.lines().find_map(|line| re.captures(line)) {
                    for group in re.capture_names().flatten() {
                        if let Some(m) = found.name(group) {
                            started
                                .captured
                                .insert(group.to_string(), m.as_str().to_string());
                        }
                    }
                    log_seen = true;
                }
            }
            if log_seen {
                match self.ready {
                    None => return Ok(()),
                    Some(url) => match check_ready(url, Duration::from_secs(2)).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last_error = e.to_string(),
                    },
                }
            }
            if let Ok(Some(status)) = started.child.try_wait() {
                return Err(ServeError::Exited {
                    name: name.to_string(),
                    command: command.to_string(),
                    status,
                    what,
                    output: excerpt(&std::fs::read_to_string(&log).unwrap_or_default()),
                });
            }
            if let Some(stop) = self.stop.filter(|s| s.is_requested()) {
                return Err(ServeError::Interrupted {
                    name: name.to_string(),
                    signal: stop.signal().unwrap_or(libc::SIGINT),
                });
            }
            if Instant::now() >= deadline {
                return Err(ServeError::NotReady {
                    name: name.to_string(),
                    timeout: self.timeout,
                    last_error,
                    output: excerpt(&std::fs::read_to_string(&log).unwrap_or_default()),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Started {
    /// Signal the whole process group (`sh -c` and what it started); when the group
    /// has not emptied within `grace`, SIGKILL what is left. Whether it ended by itself.
    pub async fn terminate(&mut self, signal: i32, grace: Duration) -> bool {
        self.group.signal(signal);
        let deadline = Instant::now() + grace;
        let leader = tokio::time::timeout(grace, self.child.wait()).await;
        let left = deadline.saturating_duration_since(Instant::now());
        if leader.is_ok() && self.group.wait_empty(left).await {
            return true;
        }
        self.group.signal(libc::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.group.wait_empty(Duration::from_secs(5)).await;
        false
    }
}

/// The last non-empty line of a log so far (of its last 4 KiB), cut short; `None`
/// while it is empty.
fn last_line(log: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 4096;
    let mut file = std::fs::File::open(log).ok()?;
    let size = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // Progress bars redraw with carriage returns: the last redraw is the line.
    let line = text
        .lines()
        .filter_map(|l| l.rsplit('\r').find(|part| !part.trim().is_empty()))
        .next_back()?;
    Some(crate::text::truncate(line.trim(), 200))
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

/// Why a readiness probe failed, by what it probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Tcp(#[from] std::io::Error),
    #[error("{0}")]
    Postgres(#[from] sqlx::Error),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("unsupported readiness check `{0}` (use http://, tcp://, postgres://, redis://)")]
    Unsupported(String),
    #[error("no answer")]
    NoAnswer,
}

/// One readiness probe, by URL scheme.
pub async fn check_ready(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let probe = async {
        if url.starts_with("http://") || url.starts_with("https://") {
            let response = super::resources::http_client()
                .get(url)
                .timeout(timeout)
                .send()
                .await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(ProbeError::Status(response.status()))
            }
        } else if let Some(addr) = url.strip_prefix("tcp://") {
            tokio::net::TcpStream::connect(addr).await?;
            Ok(())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            let _ = conn.close().await;
            Ok(())
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = redis::Client::open(url)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        } else {
            Err(ProbeError::Unsupported(url.to_string()))
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::NoAnswer),
    }
}

/// Stop what this run started, in reverse order.
pub async fn stop_all(started: Vec<Started>) {
    for mut service in started.into_iter().rev() {
        service
            .terminate(libc::SIGTERM, Duration::from_secs(10))
            .await;
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn the_last_line_is_the_last_non_empty_one_of_the_tail_after_redraws() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        assert_eq!(last_line(&log), None);
        std::fs::write(&log, "").unwrap();
        assert_eq!(last_line(&log), None);
        let long = "x".repeat(10_000);
        std::fs::write(
            &log,
            format!("{long}\n   Compiling a v1\n  Building [=>  ] 1/9\r  Building [==> ] 2/9\n\n"),
        )
        .unwrap();
        assert_eq!(last_line(&log).as_deref(), Some("Building [==> ] 2/9"));
    }
}
