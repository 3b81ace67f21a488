//! Listeners on the runner's events: the console, JUnit XML, the JSON report, the HTML
//! report and GitHub Actions annotations. File reports are rewritten whole (to a
//! temporary file, then renamed) as scenarios finish, so an interrupted run still leaves
//! a valid report of what finished. [`page`] is the look every HTML page shares;
//! [`serve_console`] shows `serve` entries coming up; [`timings`] keeps scenario
//! durations between runs, to start the longest first.

pub mod console;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod page;
pub mod serve_console;
pub mod timings;

use std::path::Path;

/// Write `contents` to `path` atomically: readers never see half a report.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report")
    ));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
