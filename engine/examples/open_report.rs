//! Measure how fast an HTML report opens in headless Chromium:
//! `cargo run -p engine --example open_report -- REPORT.html [RUNS] [SCREENSHOT.png]`.
//!
//! Each run loads the page in a fresh tab state and reads the page's own marks: its
//! script marks `rendered` when the list is drawn (failures open) and `painted` one
//! frame later. Prints, per run, milliseconds from navigation start to the load event,
//! to `rendered` and to `painted`, plus the wall time from the navigate command to
//! `painted` as seen from here; then the median and the maximum of each; and saves what
//! the window shows at the end when asked. Used by `scripts/html-report.sh`.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: open_report REPORT.html [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let screenshot = args.next().map(std::path::PathBuf::from);
    let path = std::fs::canonicalize(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let url = format!("file://{}", path.display());
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut browser = match browser::Browser::launch(1400, 1000).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot start Chromium: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "{}: {:.2} MB ({size} bytes)",
        path.display(),
        size as f64 / 1e6
    );
    println!("run   load_ms  rendered_ms  painted_ms  wall_ms");
    let mut table: Vec<[f64; 4]> = Vec::new();
    for run in 1..=runs {
        match measure(&mut browser, &url).await {
            Ok(row) => {
                println!(
                    "{run:>3} {:>9.0} {:>12.0} {:>11.0} {:>8.0}",
                    row[0], row[1], row[2], row[3]
                );
                table.push(row);
            }
            Err(e) => {
                eprintln!("run {run}: {e}");
                // Dropped first: `exit` runs no destructor, and the browser must go.
                drop(browser);
                std::process::exit(1);
            }
        }
    }
    for (name, pick) in [("median", median as fn(Vec<f64>) -> f64), ("max", max)] {
        let columns: Vec<f64> = (0..4)
            .map(|c| pick(table.iter().map(|r| r[c]).collect()))
            .collect();
        println!(
            "{name:>6} {:>6.0} {:>12.0} {:>11.0} {:>8.0}",
            columns[0], columns[1], columns[2], columns[3]
        );
    }
    if let Some(path) = screenshot {
        if let Err(e) = browser.screenshot(&path, false).await {
            eprintln!("screenshot: {e}");
            drop(browser);
            std::process::exit(1);
        }
        println!("screenshot: {}", path.display());
    }
}

/// [load event, rendered, painted] since navigation start, and wall time to painted.
async fn measure(browser: &mut browser::Browser, url: &str) -> Result<[f64; 4], String> {
    browser.open("about:blank").await?;
    let started = Instant::now();
    browser.open(url).await?;
    browser
        .wait_for(
            "document.readyState === 'complete' && \
             (!document.getElementById('report-data') || document.body.dataset.rendered === 'true')",
            Duration::from_secs(60),
        )
        .await?;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let marks = browser
        .eval(
            "[performance.getEntriesByType('navigation')[0].loadEventEnd, \
              (performance.getEntriesByName('rendered')[0] || {}).startTime, \
              (performance.getEntriesByName('painted')[0] || {}).startTime]",
        )
        .await?;
    // A page without the marks (the load plot) reads as NaN.
    let at = |i: usize| marks[i].as_f64().unwrap_or(f64::NAN);
    Ok([at(0), at(1), at(2), wall])
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn max(values: Vec<f64>) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}
