//! What a load run shows: the live one-line status, the final summary table, and the
//! threshold verdicts. Everything here returns text; the command decides where it goes.

use super::metrics::{Distribution, LoadResult, SecondPoint, ThresholdOutcome};

fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2}s", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.1}ms")
    } else {
        format!("{value:.2}ms")
    }
}

/// The live status line, refreshed every second on a terminal.
pub fn status_line(
    point: &SecondPoint,
    elapsed_s: f64,
    total_iterations: u64,
    failed: u64,
) -> String {
    format!(
        "{elapsed_s:>6.0}s  vus {:>6}  conns {:>6}  iters {:>8} ({:>6}/s)  failed {:>5}  frames {:>7}/s out {:>7}/s in  latency p50 {} p99 {}",
        point.vus,
        point.open_connections,
        total_iterations,
        point.iterations,
        failed,
        point.frames_sent,
        point.frames_received,
        ms(point.event_latency.p50_ms),
        ms(point.event_latency.p99_ms),
    )
}

fn distribution_row(name: &str, d: &Distribution) -> String {
    format!(
        "  {name:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        d.count,
        ms(d.p50_ms),
        ms(d.p90_ms),
        ms(d.p95_ms),
        ms(d.p99_ms),
        ms(d.max_ms)
    )
}

/// The final summary table.
pub fn summary(result: &LoadResult) -> String {
    let mut out = String::new();
    let executor = result
        .executor
        .get("executor")
        .and_then(|e| e.as_str())
        .unwrap_or("?");
    out.push_str(&format!(
        "\n{} ({})\n  executor {executor}, segment(s) {}, {:.1}s{}\n\n",
        result.scenario,
        result.file,
        result.segments.join(" "),
        result.duration_s,
        if result.interrupted {
            ", interrupted"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  iterations   {} ({:.1}/s), failed {} ({:.2}%), dropped {}{}\n",
        result.iterations.count,
        result.iterations.rate,
        result.failures.count,
        result.failures.rate * 100.0,
        result.iterations.dropped,
        match result.iterations.interrupted {
            0 => String::new(),
            n => format!(", interrupted {n}"),
        }
    ));
    out.push_str(&format!(
        "  frames       sent {} ({:.1}/s), received {} ({:.1}/s)\n",
        result.frames.sent,
        result.frames.sent_rate,
        result.frames.received,
        result.frames.received_rate
    ));
    out.push_str(&format!(
        "  connections  opened {}, peak open {}\n",
        result.connections.opened, result.connections.peak_open
    ));
    if let Some(memory) = &result.memory {
        out.push_str(&format!(
            "  memory       RSS {} KiB at start, {} KiB peak{}\n",
            memory.rss_start_kib,
            memory.rss_peak_kib,
            memory
                .kib_per_open_connection
                .map(|k| format!(", {k:.1} KiB per open connection"))
                .unwrap_or_default()
        ));
    }
    if !result.failures.by_kind.is_empty() {
        let kinds: Vec<String> = result
            .failures
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        out.push_str(&format!("  failures     {}\n", kinds.join(", ")));
    }
    out.push_str(&format!(
        "\n  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "metric", "count", "p50", "p90", "p95", "p99", "max"
    ));
    out.push_str(&distribution_row("connect_time", &result.connect_time));
    out.push_str(&distribution_row("event_latency", &result.event_latency));
    out.push_str(&distribution_row(
        "iteration_duration",
        &result.iteration_duration,
    ));
    for step in &result.steps {
        out.push_str(&distribution_row(
            &format!("step {}", step.label),
            &step.duration,
        ));
    }
    for note in &result.notes {
        out.push_str(&format!("\n  note: {note}\n"));
    }
    out
}

/// One line per threshold: ✓ or ✗, the expression and the value found.
pub fn thresholds(
    outcomes: &[ThresholdOutcome],
    format_value: impl Fn(usize, f64) -> String,
) -> String {
    if outcomes.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n  thresholds\n");
    for (i, outcome) in outcomes.iter().enumerate() {
        let value = if outcome.value.is_nan() {
            "no value".to_string()
        } else {
            format_value(i, outcome.value)
        };
        out.push_str(&format!(
            "    {} {} (got {value})\n",
            if outcome.passed { "✓" } else { "✗ broken:" },
            outcome.expression
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_metric_and_step() {
        let result = LoadResult {
            scenario: "pings".into(),
            steps: vec![crate::load::metrics::StepDurations {
                index: 0,
                label: "#1 connect (line 4)".into(),
                duration: Distribution::default(),
            }],
            ..LoadResult::default()
        };
        let text = summary(&result);
        for needle in [
            "pings",
            "connect_time",
            "event_latency",
            "iteration_duration",
            "#1 connect (line 4)",
            "p99",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn broken_thresholds_are_marked() {
        let outcomes = vec![
            ThresholdOutcome {
                expression: "a < 1".into(),
                value: 0.5,
                passed: true,
            },
            ThresholdOutcome {
                expression: "b < 1".into(),
                value: 2.0,
                passed: false,
            },
        ];
        let text = thresholds(&outcomes, |_, v| format!("{v}"));
        assert!(text.contains("✓ a < 1 (got 0.5)"));
        assert!(text.contains("✗ broken: b < 1 (got 2)"));
    }
}
