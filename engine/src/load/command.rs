//! `engine load SPEC` and `engine load merge A.json B.json …`.
//!
//! Exit codes: 0 done and every threshold held; 1 a threshold broke (or every
//! iteration failed); 2 a spec or usage error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tokio::sync::watch;

use super::config::{parse_stage, LoadBlock};
use super::metrics::LoadResult;
use super::segment::Segment;
use super::threshold::{self, Threshold};
use super::{plot, report, LoadPlan};
use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::spec::duration::parse_duration;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub command: Option<LoadCommand>,
    /// The spec file of the scenario to run as virtual users.
    #[arg(required = true)]
    pub spec: Option<PathBuf>,
    /// constant-vus, ramping-vus or constant-arrival-rate (default: the `load:` block's,
    /// else inferred: --stage → ramping, --rate → arrival rate, else constant).
    #[arg(long)]
    pub executor: Option<String>,
    /// Virtual users (constant-vus).
    #[arg(long)]
    pub vus: Option<u64>,
    /// How long to start iterations, e.g. 30s, 2m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Total iterations shared by the VUs (constant-vus).
    #[arg(long)]
    pub iterations: Option<u64>,
    /// VUs at the start of a ramp (ramping-vus).
    #[arg(long)]
    pub start_vus: Option<u64>,
    /// A ramping stage DURATION:TARGET, e.g. 30s:100 (repeatable, in order).
    #[arg(long = "stage", value_name = "DURATION:TARGET")]
    pub stages: Vec<String>,
    /// Iterations started per time unit (constant-arrival-rate).
    #[arg(long)]
    pub rate: Option<f64>,
    /// The rate's time unit (default 1s).
    #[arg(long, value_parser = parse_duration)]
    pub time_unit: Option<std::time::Duration>,
    /// Most iterations running at once (constant-arrival-rate; default 1000).
    #[arg(long)]
    pub max_vus: Option<u64>,
    /// A threshold, e.g. "event_latency.p95 < 200ms" (repeatable; adds to the block's).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Run share K of N of the VUs or arrival rate (1-based), for N engine processes.
    #[arg(long, value_name = "K/N", env = "ENGINE_LOAD_SEGMENT")]
    pub segment: Option<String>,
    /// Write the whole result (with histograms and a per-second series) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw latency and throughput over time (.svg, or .html).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Don't start or check `serve` entries.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Subcommand, Debug)]
pub enum LoadCommand {
    /// Merge the --json results of several segments into one exact summary.
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Thresholds to check besides those recorded in the results.
        #[arg(long = "threshold", value_name = "EXPR")]
        thresholds: Vec<String>,
        /// Write the merged result as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Draw the merged result (.svg or .html).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
}

pub async fn main(args: LoadArgs) -> i32 {
    match args.command {
        Some(LoadCommand::Merge {
            ref files,
            ref thresholds,
            ref json,
            ref plot,
        }) => merge(files, thresholds, json.as_deref(), plot.as_deref()),
        None => run(args).await,
    }
}

fn live_status() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// `metric < value` → (metric, condition), checked.
fn split_threshold(expression: &str) -> Result<(String, String), String> {
    // Parsing checks the metric and the condition; the block keeps them as text.
    Threshold::parse(expression)?;
    let at = expression.find(['<', '>', '=']).unwrap_or(expression.len());
    Ok((
        expression[..at].trim().to_string(),
        expression[at..].trim().to_string(),
    ))
}

fn flags_block(args: &LoadArgs) -> Result<LoadBlock, String> {
    let stages = args
        .stages
        .iter()
        .map(|s| parse_stage(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoadBlock {
        executor: args.executor.clone(),
        vus: args.vus,
        duration: args.duration,
        iterations: args.iterations,
        start_vus: args.start_vus,
        stages: (!stages.is_empty()).then_some(stages),
        rate: args.rate,
        time_unit: args.time_unit,
        max_vus: args.max_vus,
        thresholds: args
            .thresholds
            .iter()
            .map(|t| split_threshold(t))
            .collect::<Result<_, _>>()?,
    })
}

async fn run(args: LoadArgs) -> i32 {
    let Some(spec) = args.spec.clone() else {
        eprintln!("error: name the spec file to run: engine load SPEC");
        return EXIT_USAGE;
    };
    let loaded = match crate::discover::load_all(std::slice::from_ref(&spec)) {
        Ok(loaded) if loaded.problems.is_empty() => loaded,
        Ok(loaded) => {
            for problem in &loaded.problems {
                eprint!("{}", problem.render(false));
            }
            eprintln!("{} problem(s) in specs", loaded.problems.len());
            return EXIT_USAGE;
        }
        Err(problem) => {
            eprint!("{}", problem.render(false));
            return EXIT_USAGE;
        }
    };
    let (scenario, config) = match loaded.scenarios.as_slice() {
        [one] => one.clone(),
        [] => {
            eprintln!("error: no scenario in {}", spec.display());
            return EXIT_USAGE;
        }
        many => {
            eprintln!(
                "error: {} holds {} scenarios; name one spec file",
                spec.display(),
                many.len()
            );
            return EXIT_USAGE;
        }
    };
    if let Some(reason) = &scenario.skip {
        eprintln!("error: the scenario is marked skip: {reason}");
        return EXIT_USAGE;
    }
    let settings = match LoadBlock::from_spec(scenario.load.as_ref())
        .and_then(|block| Ok(block.overridden_by(flags_block(&args)?)))
    {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let (executor, thresholds, segment) = match (
        settings.executor(),
        settings.thresholds(),
        args.segment
            .as_deref()
            .map_or(Ok(Segment::WHOLE), Segment::parse),
    ) {
        (Ok(e), Ok(t), Ok(s)) => (e, t, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let super::executor::Executor::ConstantVus { vus, .. } = &executor {
        if *vus < segment.count {
            eprintln!(
                "error: {vus} VU(s) cannot be split into {} segments; use at least {} VUs",
                segment.count, segment.count
            );
            return EXIT_USAGE;
        }
    }
    let connections = super::connections_per_iteration(&scenario.steps).max(1);
    let needed = segment.share_of(executor.max_vus()) * connections + 256;
    if let Err(e) = super::raise_open_files_limit(needed) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let mut services = Vec::new();
    if !args.no_serve {
        match crate::runner::serve::start_all(&config).await {
            Ok((started, statuses)) => {
                for (name, status) in statuses {
                    if let crate::runner::serve::ServeStatus::Started(_) = status {
                        eprintln!("serve: {name} started");
                    }
                }
                services = started;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAILED;
            }
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: no new iterations; running ones finish and tear down (Ctrl-C again to stop now)");
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let plan = LoadPlan {
        scenario: scenario.clone(),
        config,
        executor,
        segment,
    };
    eprintln!(
        "load: {} — {} (segment {segment})",
        scenario.name,
        plan.executor.describe()
    );
    let live = live_status();
    let mut result = super::run(&plan, stop_rx, |point, metrics| {
        if live {
            let line = report::status_line(
                point,
                metrics.elapsed().as_secs_f64(),
                metrics.iterations(),
                metrics.failed_iterations(),
            );
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    })
    .await;
    if live {
        eprintln!();
    }
    interrupt.abort();
    crate::runner::serve::stop_all(services).await;
    result.threshold_expressions = thresholds.iter().map(|t| t.expression.clone()).collect();
    finish(
        result,
        &thresholds,
        args.json.as_deref(),
        args.plot.as_deref(),
    )
}

/// Check thresholds, print the summary, write the files; the exit code.
fn finish(
    mut result: LoadResult,
    thresholds: &[Threshold],
    json: Option<&Path>,
    plot_path: Option<&Path>,
) -> i32 {
    result.thresholds = threshold::evaluate(thresholds, &result);
    let summary = report::summary(&result);
    let verdicts = report::thresholds(&result.thresholds, |i, v| thresholds[i].format_value(v));
    println!("{summary}{verdicts}");
    let mut code = EXIT_OK;
    if let Some(path) = json {
        match serde_json::to_string_pretty(&result) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    code = EXIT_FAILED;
                }
            }
            Err(e) => {
                eprintln!("error: cannot serialize the result: {e}");
                code = EXIT_FAILED;
            }
        }
    }
    if let Some(path) = plot_path {
        if let Err(e) = std::fs::write(path, plot::render_for(path, &result, &summary)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            code = EXIT_FAILED;
        }
    }
    let broken: Vec<&str> = result
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.expression.as_str())
        .collect();
    if !broken.is_empty() {
        eprintln!("error: threshold(s) broken: {}", broken.join("; "));
        return EXIT_FAILED;
    }
    if result.iterations.count > 0 && result.iterations.failed == result.iterations.count {
        eprintln!("error: every iteration failed");
        return EXIT_FAILED;
    }
    code
}

fn merge(
    files: &[PathBuf],
    extra: &[String],
    json: Option<&Path>,
    plot_path: Option<&Path>,
) -> i32 {
    let mut parts = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<LoadResult>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(result) => parts.push(result),
            Err(e) => {
                eprintln!("error: cannot read the load result {}: {e}", file.display());
                return EXIT_USAGE;
            }
        }
    }
    let mut merged = match LoadResult::merge(&parts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut expressions = merged.threshold_expressions.clone();
    for e in extra {
        if !expressions.contains(e) {
            expressions.push(e.clone());
        }
    }
    let thresholds: Result<Vec<Threshold>, String> =
        expressions.iter().map(|e| Threshold::parse(e)).collect();
    let thresholds = match thresholds {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    merged.threshold_expressions = thresholds.iter().map(|t| t.expression.clone()).collect();
    finish(merged, &thresholds, json, plot_path)
}
