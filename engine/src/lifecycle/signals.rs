//! SIGINT and SIGTERM, watched on a thread of their own so that a busy runtime cannot
//! delay them. The first asks the run to stop gracefully; the second stops it at once:
//! the run writes its report (briefly waited for), then every process group it started
//! is killed, their folders removed, and the process exits with 128 + the signal —
//! through the exit the binary registered ([`on_hard_stop`]): the library never ends a
//! process itself.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::runner::process_group;
use crate::runner::stop::{signal_name, RunStop};

/// How long an immediate stop waits for the report before killing and exiting.
const REPORT_GRACE: Duration = Duration::from_secs(3);

/// How the process ends on a second signal; set once by the binary.
static HARD_EXIT: OnceLock<fn(i32) -> !> = OnceLock::new();

/// Register how the process ends on a second signal (`main.rs`: `std::process::exit`).
/// Without one, a second signal kills what the run started and leaves the rest to the
/// run's own stop.
pub fn on_hard_stop(exit: fn(i32) -> !) {
    let _ = HARD_EXIT.set(exit);
}

/// Watch for SIGINT and SIGTERM for the rest of the process; `work` names what stops
/// starting ("scenarios", "iterations") in the notice. Returns once the handlers are in
/// place, so that no signal is lost to the default action afterwards.
pub fn watch(stop: RunStop, work: &'static str) -> std::io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("engine-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let handlers = signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
                let (mut int, mut term) = match handlers {
                    Ok(handlers) => handlers,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let first = next(&mut int, &mut term).await;
                notice(&format!(
                    "{}: stopping: no new {work}; running ones are cancelled and tear down (signal again to stop at once)",
                    signal_name(first)
                ));
                stop.request(first);
                let second = next(&mut int, &mut term).await;
                notice(&format!(
                    "{}: stopping now: killing the processes this run started",
                    signal_name(second)
                ));
                stop.request_now(second);
                stop.wait_reported(REPORT_GRACE);
                // A hard stop cannot wait for the runtime to unwind (it may be stuck
                // in the very step being abandoned), so the process ends from here;
                // `kill_all` has already done what the destructors would: every
                // process group the run started is killed and its folder removed.
                process_group::kill_all();
                if let Some(exit) = HARD_EXIT.get() {
                    exit(128 + second);
                }
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the signal thread ended")))
}

/// The next SIGINT or SIGTERM.
async fn next(int: &mut Signal, term: &mut Signal) -> i32 {
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    }
}

/// Tell the user on stderr; a closed stderr must not end signal handling.
fn notice(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n{text}");
}
