//! What a user sees, pinned: each folder under `tests/snapshots/` holds specs (and their
//! suite config), a `command` file with the engine's arguments, and `expected`: the exit
//! code, stdout and stderr of running it there, with what varies between runs and
//! machines (durations, IDs, ports, the case's own folder) redacted. One harness runs them all; set
//! `SNAPSHOT_BLESS=1` to rewrite `expected` after an intended change, then read the diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/snapshots exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("command").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Run the case's command in its folder, so paths print as a user would see them.
fn run(dir: &Path, ws_url: &str) -> String {
    let command = std::fs::read_to_string(dir.join("command")).expect("command file");
    let args: Vec<&str> = command.split_whitespace().collect();
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("WS_URL", ws_url)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run engine");
    let text = format!(
        "$ engine {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        command.trim(),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // Paths some messages print whole (a config's location): machine-dependent.
    let text = text.replace(&dir.display().to_string(), "<case>");
    redact(&text)
}

/// Replace what differs between runs: IDs and UUIDs, ports, durations and their padding.
fn redact(text: &str) -> String {
    let rules = [
        (
            r"\b[a-z]+_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            "<id>",
        ),
        (
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            "<uuid>",
        ),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"\d+(\.\d+)?(ns|µs|us|ms|s)\b", "<time>"),
        (r"\[\s*<time>\]", "[<time>]"),
        (r"\+\s*<time>", "+<time>"),
    ];
    let mut out = text.to_string();
    for (pattern, replacement) in rules {
        out = Regex::new(pattern)
            .expect("redaction regex")
            .replace_all(&out, replacement)
            .into_owned();
    }
    out
}

#[tokio::test]
async fn what_users_see_is_pinned() {
    let ws_url = common::start_server().await;
    let bless = std::env::var_os("SNAPSHOT_BLESS").is_some();
    let mut mismatches = Vec::new();
    for dir in cases() {
        let url = ws_url.clone();
        let at = dir.clone();
        let actual = tokio::task::spawn_blocking(move || run(&at, &url))
            .await
            .expect("join");
        let expected_path = dir.join("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                dir.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "snapshots differ (SNAPSHOT_BLESS=1 rewrites them):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn redaction_keeps_what_matters() {
    let text = "ids: alice=usr_4c12a3b4-1111-2222-3333-444455556666 at 127.0.0.1:40123\n PASS [   82ms] x\n  +   16.5ms  {}\n";
    assert_eq!(
        redact(text),
        "ids: alice=<id> at 127.0.0.1:<port>\n PASS [<time>] x\n  +<time>  {}\n"
    );
}
