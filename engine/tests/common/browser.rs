//! A headless Chromium driven over the DevTools protocol (a WebSocket, JSON commands):
//! open a page, evaluate script in it, wait for a condition, take a screenshot. Used by
//! the HTML report's browser test and by `scripts/html-report.sh`'s measurement.
//!
//! Chromium is Debian's `chromium`; `scripts/browser.sh` installs it where missing.
//! Every wait has a deadline; the browser (its whole process group) is killed on drop.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one protocol command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events received while waiting for something else.
    events: Vec<Value>,
}

/// The Chromium binary on PATH, if any.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
        .next()
}

/// Chromium, installed with `scripts/browser.sh` (Debian's package) when missing.
pub fn chromium_or_install() -> Result<PathBuf, String> {
    if let Some(found) = chromium() {
        return Ok(found);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/browser.sh");
    let status = Command::new("bash")
        .arg(script)
        .status()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !status.success() {
        return Err(format!("{script} failed ({status})"));
    }
    chromium().ok_or_else(|| format!("{script} ran but no chromium is on PATH"))
}

impl Browser {
    /// Start headless Chromium with a `width`×`height` viewport and attach to its page.
    pub async fn launch(width: u32, height: u32) -> Result<Browser, String> {
        let binary = chromium_or_install()?;
        let profile = tempfile::Builder::new()
            .prefix("engine-chromium-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-breakpad",
                "--disable-crash-reporter",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut guard = ChildGuard(Some(child));
        let port = devtools_port(profile.path(), Duration::from_secs(30)).await?;
        let page = page_socket_url(port).await?;
        let (socket, _) = tokio::time::timeout(
            COMMAND_DEADLINE,
            tokio_tungstenite::connect_async(page.as_str()),
        )
        .await
        .map_err(|_| "no DevTools handshake within 30s".to_string())?
        .map_err(|e| format!("cannot connect to DevTools at {page}: {e}"))?;
        let mut browser = Browser {
            child: guard.0.take().expect("child"),
            _profile: profile,
            socket,
            next_id: 0,
            events: Vec::new(),
        };
        browser.call("Page.enable", json!({})).await?;
        browser.call("Runtime.enable", json!({})).await?;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await?;
        Ok(browser)
    }

    /// Send a command; its result, or the error it answered.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.call_within(method, params, COMMAND_DEADLINE).await
    }

    async fn call_within(
        &mut self,
        method: &str,
        params: Value,
        within: Duration,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = self.next_message(deadline, method).await?;
            if message["id"] == json!(id) {
                if let Some(error) = message.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(message["result"].clone());
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    async fn next_message(
        &mut self,
        deadline: tokio::time::Instant,
        waiting_for: &str,
    ) -> Result<Value, String> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| format!("no answer to {waiting_for} within the deadline"))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).map_err(|e| e.to_string())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("DevTools connection: {e}")),
                None => return Err("DevTools connection closed".into()),
            }
        }
    }

    /// Wait for event `method` (one already received counts).
    pub async fn event(&mut self, method: &str, within: Duration) -> Result<Value, String> {
        if let Some(pos) = self.events.iter().position(|e| e["method"] == method) {
            return Ok(self.events.remove(pos)["params"].clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = self.next_message(deadline, method).await?;
            if message["method"] == method {
                return Ok(message["params"].clone());
            }
        }
    }

    /// Events of kind `method` received so far (while waiting for answers).
    pub fn events(&self, method: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["method"] == method)
            .collect()
    }

    /// Open `url` and wait for its load event; the time that took.
    pub async fn open(&mut self, url: &str) -> Result<Duration, String> {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        let started = Instant::now();
        let answer = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = answer.get("errorText") {
            return Err(format!("cannot open {url}: {error}"));
        }
        self.event("Page.loadEventFired", COMMAND_DEADLINE).await?;
        Ok(started.elapsed())
    }

    /// Evaluate `expression` in the page (promises awaited); its value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        self.eval_within(expression, COMMAND_DEADLINE).await
    }

    async fn eval_within(&mut self, expression: &str, within: Duration) -> Result<Value, String> {
        let answer = self
            .call_within(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                within,
            )
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(format!("script failed: {details}"));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Wait until `condition` (an expression) is truthy in the page, checking on every
    /// animation frame; its value, or an error after `within`.
    pub async fn wait_for(&mut self, condition: &str, within: Duration) -> Result<Value, String> {
        let script = format!(
            "new Promise(resolve => {{ const until = performance.now() + {ms}; \
             (function check() {{ let v; try {{ v = ({condition}); }} catch (e) {{ v = null; }} \
             if (v) resolve(v); else if (performance.now() > until) resolve(null); \
             else requestAnimationFrame(check); }})(); }})",
            ms = within.as_millis()
        );
        // The page gives up at `within`; this side a little later.
        match self.eval_within(&script, within + COMMAND_DEADLINE).await? {
            Value::Null => Err(format!("`{condition}` not true within {within:?}")),
            value => Ok(value),
        }
    }

    /// A PNG at `path` of the viewport, or of the whole page.
    pub async fn screenshot(&mut self, path: &Path, whole_page: bool) -> Result<(), String> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": whole_page}),
            )
            .await?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the browser if launching fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group this test created for the browser.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// The port Chromium chose, from the `DevToolsActivePort` file it writes.
async fn devtools_port(profile: &Path, within: Duration) -> Result<u16, String> {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                return Ok(port);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("Chromium wrote no DevTools port within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The DevTools WebSocket of the browser's first page.
async fn page_socket_url(port: u16) -> Result<String, String> {
    let list: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/json/list"))
        .timeout(COMMAND_DEADLINE)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no page target in {list}"))
}
