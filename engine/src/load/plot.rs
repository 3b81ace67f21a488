//! `--plot FILE.svg|FILE.html`: event-latency percentiles and throughput over time, as
//! a self-contained SVG (no scripts, fonts or network), or an HTML page holding it in
//! the look of the run report (`crate::report::page`).

use std::fmt::Write as _;

use super::metrics::{LoadResult, SecondPoint};
use crate::report::page::palette;

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;

/// One line of a panel.
struct Line<'a> {
    label: &'a str,
    color: &'a str,
    /// (second, value); seconds without a value are left out.
    points: Vec<(f64, f64)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    step.max(f64::MIN_POSITIVE)
}

fn panel(svg: &mut String, top: f64, title: &str, unit: &str, seconds: f64, lines: &[Line<'_>]) {
    let plot_width = WIDTH - LEFT - RIGHT;
    let max_value = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let step = tick_step(max_value);
    let y_max = (max_value / step).ceil().max(1.0) * step;
    let x_max = seconds.max(1.0);
    let x = |s: f64| LEFT + s / x_max * plot_width;
    let y = |v: f64| top + PANEL_HEIGHT - v / y_max * PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"##,
        top - 10.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" fill="none" stroke="{}"/>"##,
        palette::MUTED
    );
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{}"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{} {unit}</text>"##,
            LEFT + plot_width,
            palette::LINE,
            LEFT - 6.0,
            y(tick) + 4.0,
            format_number(tick),
            yy = y(tick)
        );
        tick += step;
    }
    let x_step = tick_step(x_max);
    let mut second = 0.0;
    while second <= x_max + x_step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}s</text>"##,
            x(second),
            top + PANEL_HEIGHT + 16.0,
            format_number(second)
        );
        second += x_step;
    }
    for (i, line) in lines.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(s, v)| format!("{:.1},{:.1}", x(*s), y(*v)))
            .collect();
        if path.len() == 1 {
            let (cx, cy) = (x(line.points[0].0), y(line.points[0].1));
            let _ = writeln!(
                svg,
                r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="3" fill="{}"/>"##,
                line.color
            );
        } else if !path.is_empty() {
            let _ = writeln!(
                svg,
                r##"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"##,
                line.color,
                path.join(" ")
            );
        }
        let legend_y = top + 14.0 + i as f64 * 18.0;
        let legend_x = LEFT + plot_width + 14.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{legend_x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{legend_y:.1}" font-size="12">{}</text>"##,
            legend_x + 18.0,
            legend_y - 4.0,
            legend_y - 4.0,
            line.color,
            legend_x + 24.0,
            escape(line.label)
        );
    }
}

fn format_number(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn series_of(
    points: &[SecondPoint],
    pick: impl Fn(&SecondPoint) -> Option<f64>,
) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter_map(|p| pick(p).map(|v| (p.second as f64, v)))
        .collect()
}

/// The SVG document.
pub fn svg(result: &LoadResult) -> String {
    let points = &result.series;
    let seconds = points.last().map_or(result.duration_s, |p| p.second as f64);
    let height = TOP + 3.0 * PANEL_HEIGHT + 2.0 * GAP + 40.0;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif" fill="{ink}">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="15">{}</text>
"##,
        escape(&format!(
            "{} — {} iterations, {:.1}/s, {} failed, event latency p99 {:.1}ms",
            result.scenario,
            result.iterations.count,
            result.iterations.rate,
            result.failures.count,
            result.event_latency.p99_ms
        )),
        ink = palette::INK,
    );
    let latency = |pick: fn(&SecondPoint) -> f64| {
        series_of(points, move |p| {
            (p.event_latency.count > 0).then(|| pick(p))
        })
    };
    panel(
        &mut svg,
        TOP + 20.0,
        "event latency per second",
        "ms",
        seconds,
        &[
            Line {
                label: "p50",
                color: palette::PASS,
                points: latency(|p| p.event_latency.p50_ms),
            },
            Line {
                label: "p90",
                color: "#7570b3",
                points: latency(|p| p.event_latency.p90_ms),
            },
            Line {
                label: "p99",
                color: "#d95f02",
                points: latency(|p| p.event_latency.p99_ms),
            },
            Line {
                label: "max",
                color: "#aaaaaa",
                points: latency(|p| p.event_latency.max_ms),
            },
        ],
    );
    panel(
        &mut svg,
        TOP + 20.0 + PANEL_HEIGHT + GAP,
        "iterations per second",
        "",
        seconds,
        &[
            Line {
                label: "iterations/s",
                color: palette::SENT,
                points: series_of(points, |p| Some(p.iterations as f64)),
            },
            Line {
                label: "failures/s",
                color: palette::FAIL,
                points: series_of(points, |p| Some(p.failures as f64)),
            },
        ],
    );
    panel(
        &mut svg,
        TOP + 20.0 + 2.0 * (PANEL_HEIGHT + GAP),
        "frames per second",
        "",
        seconds,
        &[
            Line {
                label: "sent/s",
                color: palette::SENT,
                points: series_of(points, |p| Some(p.frames_sent as f64)),
            },
            Line {
                label: "received/s",
                color: palette::RECEIVED,
                points: series_of(points, |p| Some(p.frames_received as f64)),
            },
        ],
    );
    svg.push_str("</svg>\n");
    svg
}

/// An HTML page in the run report's look ([`crate::report::page`]): the counts that
/// matter as chips, the SVG inline, the summary below it.
pub fn html(result: &LoadResult, summary: &str) -> String {
    use crate::report::page::{escape as html_escape, Chip, Page};
    let broken = result.thresholds.iter().filter(|t| !t.passed).count();
    let mut chips = vec![
        Chip::text(format!(
            "{} iterations, {:.1}/s",
            result.iterations.count, result.iterations.rate
        )),
        Chip::count("failed", result.failures.count as usize, "failed"),
        Chip::text(format!(
            "event latency p99 {:.1} ms",
            result.event_latency.p99_ms
        )),
    ];
    if !result.thresholds.is_empty() {
        let (class, count, what) = match broken {
            0 => ("passed", result.thresholds.len(), "held"),
            n => ("failed", n, "broken"),
        };
        let plural = if count == 1 { "" } else { "s" };
        chips.push(Chip {
            class,
            text: format!("{count} threshold{plural} {what}"),
            zero: false,
        });
    }
    let meta = format!(
        "engine load · {} · {:.1} s{}",
        result.file,
        result.duration_s,
        if result.interrupted {
            " · interrupted"
        } else {
            ""
        }
    );
    let body = format!(
        "<div class=\"panel\"><figure class=\"plot\">{}</figure></div>\n\
         <div class=\"panel\"><h2>Summary</h2><pre>{}</pre></div>\n",
        svg(result),
        html_escape(summary)
    );
    Page {
        title: &result.scenario,
        meta: &meta,
        chips,
        extra_style: "",
        body: &body,
        script: "",
    }
    .render()
}

/// The plot for `path`: HTML for `.html`/`.htm`, SVG otherwise.
pub fn render_for(path: &std::path::Path, result: &LoadResult, summary: &str) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") | Some("htm") => html(result, summary),
        _ => svg(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::Distribution;

    fn result() -> LoadResult {
        let series = (1..=5)
            .map(|second| SecondPoint {
                second,
                iterations: second * 10,
                frames_sent: 20,
                frames_received: 40,
                event_latency: Distribution {
                    count: 3,
                    p50_ms: 1.0,
                    p90_ms: 2.0,
                    p99_ms: second as f64,
                    max_ms: 9.0,
                    ..Distribution::default()
                },
                ..SecondPoint::default()
            })
            .collect();
        LoadResult {
            scenario: "a <b> & c".into(),
            series,
            ..LoadResult::default()
        }
    }

    #[test]
    fn svg_has_a_line_per_series_and_escapes_text() {
        let svg = svg(&result());
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 8);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(
            !svg.contains("http://") || svg.matches("http://").count() == 1,
            "only the xmlns"
        );
    }

    #[test]
    fn html_embeds_the_svg_in_the_run_reports_look() {
        let page = render_for(std::path::Path::new("x.html"), &result(), "a < b");
        assert!(page.contains("<svg") && page.contains("<pre>a &lt; b</pre>"));
        assert!(page.contains(crate::report::page::STYLE));
        assert!(page.contains("<header class=\"bar\"><h1>a &lt;b&gt; &amp; c</h1>"));
        assert!(page.contains("<span class=\"chip failed zero\">0 failed</span>"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(7.0), 2.0);
        assert_eq!(tick_step(0.0), 1.0);
    }
}
