//! `engine load SPEC` and `engine load merge A.json B.json …`.
//!
//! Exit codes ([`Exit`]): 0 done and every threshold held; 1 a threshold broke (or
//! every iteration failed); 2 a spec or usage error; 3 the environment; 128 + N
//! stopped by signal N.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::config::{parse_stage, LoadBlock, LoadSettings, SettingsError};
use super::console::LoadConsole;
use super::metrics::LoadResult;
use super::segment::Segment;
use super::threshold::{self, Threshold, ThresholdError};
use super::{plot, report, LoadPlan};
use crate::lifecycle::{self, Exit, Lifecycle, RunError};
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
    /// Spread the connections over these source addresses, in turn: addresses and IPv4
    /// ranges, comma-separated, e.g. 127.0.0.1-127.0.0.8 (for more connections to one
    /// server than one address has ephemeral ports).
    #[arg(long, value_name = "IPS", value_parser = super::local_ips::parse)]
    pub local_ips: Option<super::local_ips::LocalIps>,
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

pub async fn main(args: LoadArgs) -> Exit {
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

/// `metric < value` → (metric, condition), checked.
fn split_threshold(expression: &str) -> Result<(String, String), ThresholdError> {
    // Parsing checks the metric and the condition; the block keeps them as text.
    Threshold::parse(expression)?;
    let at = expression.find(['<', '>', '=']).unwrap_or(expression.len());
    Ok((
        expression[..at].trim().to_string(),
        expression[at..].trim().to_string(),
    ))
}

fn flags_block(args: &LoadArgs) -> Result<LoadBlock, SettingsError> {
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

async fn run(args: LoadArgs) -> Exit {
    let outcome = async {
        let prepared = prepare(&args)?;
        raise_limit(&prepared.plan)?;
        drive(&args, prepared).await
    };
    match outcome.await {
        Ok(exit) => exit,
        Err(e) => crate::cli::fail(&e),
    }
}

/// Everything read from the spec and the flags before anything starts.
struct Prepared {
    plan: LoadPlan,
    thresholds: Vec<Threshold>,
}

fn prepare(args: &LoadArgs) -> Result<Prepared, RunError> {
    let spec = args
        .spec
        .clone()
        .ok_or_else(|| RunError::Usage("name the spec file to run: engine load SPEC".into()))?;
    let loaded = crate::cli::load(std::slice::from_ref(&spec))?;
    let (scenario, config) = match loaded.scenarios.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(RunError::Usage(format!(
                "no scenario in {}",
                spec.display()
            )))
        }
        many => {
            return Err(RunError::Usage(format!(
                "{} holds {} scenarios; name one spec file",
                spec.display(),
                many.len()
            )))
        }
    };
    if let Some(reason) = &scenario.skip {
        return Err(RunError::Usage(format!(
            "the scenario is marked skip: {reason}"
        )));
    }
    let settings = LoadBlock::from_spec(scenario.load.as_ref())
        .and_then(|block| Ok(block.overridden_by(flags_block(args)?)))?;
    let executor = settings.executor()?;
    let thresholds = settings.thresholds().map_err(SettingsError::from)?;
    let segment = args
        .segment
        .as_deref()
        .map_or(Ok(Segment::WHOLE), Segment::parse)?;
    if let super::executor::Executor::ConstantVus { vus, .. } = &executor {
        if *vus < segment.count {
            return Err(RunError::Usage(format!(
                "{vus} VU(s) cannot be split into {} segments; use at least {} VUs",
                segment.count, segment.count
            )));
        }
    }
    Ok(Prepared {
        plan: LoadPlan {
            scenario,
            config,
            executor,
            segment,
            local_ips: args.local_ips.clone().unwrap_or_default().0,
        },
        thresholds,
    })
}

/// Raise the open-files limit to what the VUs' connections need.
fn raise_limit(plan: &LoadPlan) -> Result<(), RunError> {
    let connections = super::connections_per_iteration(&plan.scenario.steps).max(1);
    let needed = plan.segment.share_of(plan.executor.max_vus()) * connections + 256;
    super::raise_open_files_limit(needed)
        .map(|_| ())
        .map_err(|e| RunError::System {
            what: "cannot open enough files",
            source: std::io::Error::other(e),
        })
}

/// Bring the services up, run the plan, settle the exit code.
async fn drive(args: &LoadArgs, prepared: Prepared) -> Result<Exit, RunError> {
    let Prepared { plan, thresholds } = prepared;
    let options = lifecycle::Options {
        serve: !args.no_serve,
        work: "iterations",
    };
    let lifecycle = Lifecycle::begin(std::slice::from_ref(&plan.config), options).await?;
    let console = LoadConsole::new();
    console.heading(&plan);
    let mut result = super::run(&plan, lifecycle.stop(), |point, metrics| {
        console.second(point, metrics)
    })
    .await;
    console.run_ended();
    result.threshold_expressions = thresholds.iter().map(|t| t.expression.clone()).collect();
    let outcome = finish(
        &console,
        result,
        &thresholds,
        args.json.as_deref(),
        args.plot.as_deref(),
    );
    Ok(lifecycle.end(outcome).await)
}

/// Check thresholds, print the summary, write the files; the exit code.
fn finish(
    console: &LoadConsole,
    mut result: LoadResult,
    thresholds: &[Threshold],
    json: Option<&Path>,
    plot_path: Option<&Path>,
) -> Exit {
    result.thresholds = threshold::evaluate(thresholds, &result);
    result.notes = super::diagnosis::notes(&result);
    let summary = report::summary(&result);
    let verdicts = report::thresholds(&result.thresholds, |i, v| thresholds[i].format_value(v));
    console.summary(&summary, &verdicts);
    let mut code = Exit::Passed;
    if let Some(path) = json {
        match serde_json::to_string_pretty(&result) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    console.error(&format!("cannot write {}: {e}", path.display()));
                    code = Exit::Failed;
                }
            }
            Err(e) => {
                console.error(&format!("cannot serialize the result: {e}"));
                code = Exit::Failed;
            }
        }
    }
    if let Some(path) = plot_path {
        if let Err(e) = std::fs::write(path, plot::render_for(path, &result, &summary)) {
            console.error(&format!("cannot write {}: {e}", path.display()));
            code = Exit::Failed;
        }
    }
    let broken: Vec<&str> = result
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.expression.as_str())
        .collect();
    if !broken.is_empty() {
        console.error(&format!("threshold(s) broken: {}", broken.join("; ")));
        return Exit::Failed;
    }
    if result.iterations.count > 0 && result.iterations.failed == result.iterations.count {
        console.error("every iteration failed");
        return Exit::Failed;
    }
    code
}

fn merge(
    files: &[PathBuf],
    extra: &[String],
    json: Option<&Path>,
    plot_path: Option<&Path>,
) -> Exit {
    match merged(files, extra) {
        Ok((merged, thresholds)) => {
            finish(&LoadConsole::new(), merged, &thresholds, json, plot_path)
        }
        Err(e) => crate::cli::fail(&e),
    }
}

/// The results read and merged, with the thresholds to check on them.
fn merged(files: &[PathBuf], extra: &[String]) -> Result<(LoadResult, Vec<Threshold>), RunError> {
    let mut parts = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<LoadResult>(&text).map_err(|e| e.to_string()))
            .map_err(|e| {
                RunError::Usage(format!(
                    "cannot read the load result {}: {e}",
                    file.display()
                ))
            })?;
        parts.push(parsed);
    }
    let mut merged = LoadResult::merge(&parts)?;
    let mut expressions = merged.threshold_expressions.clone();
    for e in extra {
        if !expressions.contains(e) {
            expressions.push(e.clone());
        }
    }
    let thresholds = expressions
        .iter()
        .map(|e| Threshold::parse(e))
        .collect::<Result<Vec<Threshold>, ThresholdError>>()
        .map_err(SettingsError::from)?;
    merged.threshold_expressions = thresholds.iter().map(|t| t.expression.clone()).collect();
    Ok((merged, thresholds))
}
