//! The console's view of `serve` entries coming up: on a terminal one status line,
//! redrawn every second — which service, for how long, the last line of its output — so
//! a backend that compiles for minutes is visibly busy; elsewhere (CI, a pipe) a line
//! after [`FIRST_QUIET_LINE`] and then every [`QUIET_LINES_EVERY`]. Then one line per
//! service: reused, started (and how long it took) or failed. Everything shown goes
//! through the run's redactor: service output may echo a secret.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::redact::Redactor;
use crate::runner::serve::{ServeEvent, ServeProgress};
use crate::spec::duration::format_duration;

/// When a service still starting is first reported off a terminal.
pub const FIRST_QUIET_LINE: Duration = Duration::from_secs(5);
/// Then how often.
pub const QUIET_LINES_EVERY: Duration = Duration::from_secs(15);

/// Widest status line drawn on a terminal.
const STATUS_WIDTH: usize = 110;

pub struct ServeConsole {
    /// Redraw one status line (a terminal) rather than print periodic lines.
    terminal: bool,
    redactor: Redactor,
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    /// A status line is on screen and must be cleared before the next line.
    drawn: bool,
    /// Off a terminal: the elapsed time at which to print the next "still starting".
    next_quiet_line: Duration,
}

impl ServeConsole {
    pub fn new(out: Box<dyn Write + Send>, terminal: bool, redactor: Redactor) -> Self {
        Self {
            terminal,
            redactor,
            state: Mutex::new(State {
                out,
                drawn: false,
                next_quiet_line: FIRST_QUIET_LINE,
            }),
        }
    }

    /// To stderr, redrawing in place when it is a terminal (and not in CI).
    pub fn stderr(redactor: Redactor) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self::new(Box::new(std::io::stderr()), terminal, redactor)
    }

    fn line(&self, state: &mut State, text: &str) {
        if state.drawn {
            let _ = write!(state.out, "\r\x1b[2K");
            state.drawn = false;
        }
        let _ = writeln!(state.out, "{}", self.redactor.redact(text));
        let _ = state.out.flush();
    }

    fn status(&self, state: &mut State, text: &str) {
        let text = crate::text::truncate(&self.redactor.redact(text), STATUS_WIDTH);
        let _ = write!(state.out, "\r\x1b[2K{text}");
        let _ = state.out.flush();
        state.drawn = true;
    }

    fn waiting(&self, state: &mut State, name: &str, elapsed: Duration, last: Option<&str>) {
        let seconds = elapsed.as_secs();
        let output = last.map(|l| format!(": {l}")).unwrap_or_default();
        if self.terminal {
            self.status(
                state,
                &format!("serve: {name} starting… ({seconds} s){output}"),
            );
        } else if elapsed >= state.next_quiet_line {
            while state.next_quiet_line <= elapsed {
                state.next_quiet_line += QUIET_LINES_EVERY;
            }
            self.line(
                state,
                &format!("serve: {name} still starting ({seconds} s){output}"),
            );
        }
    }
}

impl ServeProgress for ServeConsole {
    fn on_serve(&self, event: &ServeEvent<'_>) {
        let mut state = crate::sync::lock(&self.state);
        match event {
            ServeEvent::Reused { name } => self.line(
                &mut state,
                &format!("serve: {name} already running, reused"),
            ),
            ServeEvent::Starting { name, command } => {
                state.next_quiet_line = FIRST_QUIET_LINE;
                self.line(&mut state, &format!("serve: {name} starting: {command}"));
            }
            ServeEvent::Waiting {
                name,
                elapsed,
                last_line,
            } => self.waiting(&mut state, name, *elapsed, last_line.as_deref()),
            ServeEvent::Ready { name, took } => self.line(
                &mut state,
                &format!("serve: {name} started ({})", format_duration(*took)),
            ),
            ServeEvent::Failed { name, took } => self.line(
                &mut state,
                &format!("serve: {name} gave up after {}", format_duration(*took)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn replay(terminal: bool) -> String {
        let out = Captured::default();
        let console = ServeConsole::new(Box::new(out.clone()), terminal, Redactor::new(["s3cret"]));
        let name = "backend";
        console.on_serve(&ServeEvent::Reused { name: "redis" });
        console.on_serve(&ServeEvent::Starting {
            name,
            command: "cargo run -p backend --key s3cret",
        });
        for second in 1..=31 {
            console.on_serve(&ServeEvent::Waiting {
                name,
                elapsed: Duration::from_millis(second * 1000 + 20),
                last_line: (second > 2).then(|| format!("Compiling crate{second} v1.0")),
            });
        }
        console.on_serve(&ServeEvent::Ready {
            name,
            took: Duration::from_secs(32),
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_terminal_sees_one_status_line_redrawn_every_second() {
        let text = replay(true);
        assert!(text.starts_with("serve: redis already running, reused\n"));
        assert!(text.contains("serve: backend starting: cargo run -p backend --key ***\n"));
        assert_eq!(
            text.matches("\r\x1b[2Kserve: backend starting… (").count(),
            31
        );
        assert!(text.contains("starting… (1 s)\r"));
        assert!(text.contains("starting… (31 s): Compiling crate31 v1.0\r\x1b[2K"));
        assert!(text.ends_with("\r\x1b[2Kserve: backend started (32.00s)\n"));
    }

    #[test]
    fn elsewhere_a_line_after_five_seconds_then_every_fifteen() {
        let text = replay(false);
        assert!(!text.contains('\r'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "serve: redis already running, reused",
                "serve: backend starting: cargo run -p backend --key ***",
                "serve: backend still starting (5 s): Compiling crate5 v1.0",
                "serve: backend still starting (20 s): Compiling crate20 v1.0",
                "serve: backend started (32.00s)",
            ]
        );
    }
}
