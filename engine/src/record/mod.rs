//! `engine record --listen ADDR --upstream URL [--out FILE]`: a WebSocket proxy between
//! a real client and the application that turns the session into a spec draft (see
//! [`draft`]). Clients connect to ADDR as they would to the application; Ctrl-C (or
//! SIGTERM) ends the recording and writes the draft to FILE (or stdout).
//!
//! - [`proxy`]: accepts clients, connects upstream, relays and records;
//! - [`session`]: what was recorded;
//! - [`draft`]: the spec written from it.

pub mod draft;
pub mod proxy;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::lifecycle::{Exit, RunError};
use crate::redact::Redactor;
use crate::runner::ws::TlsError;
use crate::spec::config::SuiteConfig;
use session::Recorder;

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Where clients connect, e.g. 127.0.0.1:9000 (port 0 picks a free one; the address
    /// is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// The application's WebSocket origin, `ws://host:port` or `wss://host:port`; each
    /// client's path and query string are appended.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Write the draft here (default: stdout). Its folder's `engine.yaml` (or the
    /// nearest above) gives the ID kinds, the event type field and the `env` URL.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The suite config to draft for, instead of the one found from `--out`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An extra CA certificate (PEM) for a `wss://` upstream (also written into the
    /// draft's `connect` steps, so that it replays).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why a recording could not start or be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("--upstream {0}: give a ws:// or wss:// URL")]
    Upstream(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RecordError {
    /// A wrong flag is a usage error; an address or a file the system refuses, the
    /// environment.
    pub fn exit(&self) -> Exit {
        match self {
            RecordError::Upstream(_) | RecordError::Tls(_) => Exit::Usage,
            RecordError::Listen { .. } | RecordError::Write { .. } => Exit::Environment,
        }
    }
}

/// Run the proxy until a stop signal; write the draft; the exit code.
pub async fn main(args: RecordArgs) -> Exit {
    match record(args).await {
        Ok(()) => Exit::Passed,
        Err(error) => crate::cli::fail(&error),
    }
}

async fn record(args: RecordArgs) -> Result<(), RunError> {
    let tls = match args.upstream.split_once("://").map(|(scheme, _)| scheme) {
        Some("ws") => None,
        Some("wss") => Some(
            crate::runner::ws::tls_config(args.ca_file.as_deref()).map_err(RecordError::from)?,
        ),
        _ => return Err(RecordError::Upstream(args.upstream.clone()).into()),
    };
    let config = suite_config(&args)?;
    let listen = |source| RecordError::Listen {
        address: args.listen.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(listen)?;
    let address = listener.local_addr().map_err(listen)?;
    let upstream = crate::text::hide_password(&args.upstream);
    eprintln!("record: listening on ws://{address}, forwarding to {upstream}");
    eprintln!("record: point your client at ws://{address}; Ctrl-C ends the recording and writes the draft");
    let recorder = Recorder::default();
    let forward = proxy::Forward {
        upstream: args.upstream.clone(),
        tls,
    };
    let proxy = tokio::spawn(proxy::serve(listener, forward, recorder.clone()));
    stop_signal().await?;
    proxy.abort();
    // Absolute: the draft may be anywhere.
    let ca_file = args
        .ca_file
        .as_deref()
        .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf()))
        .map(|f| f.display().to_string());
    let text = recorder.with(|session| {
        draft::draft(
            session,
            &draft::DraftOptions {
                upstream: &args.upstream,
                config: config.as_deref(),
                ca_file: ca_file.as_deref(),
            },
        )
    });
    let text = redactor(config.as_deref()).redact(&text).into_owned();
    let (connections, events) = recorder.with(|s| (s.handshakes.len(), s.events.len()));
    match &args.out {
        Some(path) => {
            crate::report::write_atomically(path, text.as_bytes()).map_err(|source| {
                RecordError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
            eprintln!(
                "record: {connections} connection(s), {events} event(s) → {}; check it with `engine check {}`",
                path.display(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The config named by `--config`, else the nearest `engine.yaml` above `--out` (or the
/// current folder); `None` when there is none.
fn suite_config(args: &RecordArgs) -> Result<Option<Arc<SuiteConfig>>, RunError> {
    if let Some(path) = &args.config {
        return SuiteConfig::load(path)
            .map(|c| Some(Arc::new(c)))
            .map_err(|d| RunError::Unreadable(Box::new(d)));
    }
    let start = args
        .out
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty() && p.is_dir())
        .unwrap_or(Path::new("."));
    let config = SuiteConfig::discover(start).map_err(|d| RunError::Unreadable(Box::new(d)))?;
    Ok(config.path.is_some().then_some(config))
}

/// The config's secrets and every JWT-shaped value, out of the draft.
fn redactor(config: Option<&SuiteConfig>) -> Redactor {
    config.map_or_else(Redactor::default, |c| {
        Redactor::new(crate::runner::secrets(c))
    })
}

async fn stop_signal() -> Result<(), RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let watch = |source| RunError::System {
        what: "cannot watch for SIGINT and SIGTERM",
        source,
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(watch)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(watch)?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
