//! The command line: `engine run`, `engine check`, `engine list`, `engine schema`,
//! `engine load`, `engine record`. Exit codes come from [`crate::lifecycle::Exit`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::diagnostic::Diagnostic;
use crate::discover::{load_all, Loaded};
use crate::lifecycle::{self, Exit, Lifecycle, RunError};
use crate::redact::Redactor;
use crate::report::console::Console;
use crate::runner::{self, Listener, Planned, Resources, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "engine",
    version,
    about = "Declarative scenarios for WebSocket applications, checked against their real Postgres and Redis"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every scenario found under the paths.
    Run(RunArgs),
    /// Validate specs without touching any service.
    Check {
        #[arg(default_value = "specs")]
        paths: Vec<PathBuf>,
    },
    /// List scenarios.
    List {
        #[arg(default_value = "specs")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        select: Selection,
        /// Print spec folders instead (one CI matrix job each).
        #[arg(long)]
        folders: bool,
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        format: String,
    },
    /// Print the JSON Schema of the spec format (or, with `--config`, of `engine.yaml`).
    Schema {
        /// The suite config's schema instead of the spec format's.
        #[arg(long)]
        config: bool,
    },
    /// Run one scenario as many virtual users and measure it (or merge results).
    Load(crate::load::command::LoadArgs),
    /// Proxy a real WebSocket session to the application and write it as a spec draft.
    Record(crate::record::RecordArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct Selection {
    /// Only scenarios with this tag (repeatable; any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Leave out scenarios with this tag (repeatable).
    #[arg(long = "skip-tag")]
    pub skip_tags: Vec<String>,
    /// Only scenarios whose name or file contains this text, or matches it as a regex.
    #[arg(long)]
    pub filter: Option<String>,
    /// Run shard K of N (1-based), split by a stable hash of file and name.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(default_value = "specs")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub select: Selection,
    /// Most scenarios run at once (default: the suite config's `jobs`, else 64). Past 4 per
    /// CPU, one more starts only while the runtime keeps up.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Run every selected scenario N times, with fresh IDs each time.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Which scenarios start first: `longest-first` by the durations earlier runs kept
    /// in `.engine/timings.json` beside the suite config (never-timed ones before all),
    /// so that a long scenario does not start last; or `plan`: file order.
    #[arg(long, value_name = "ORDER", value_parser = ["longest-first", "plan"], default_value = "longest-first")]
    pub order: String,
    /// Re-run a failed scenario up to N times; one that then passes is reported flaky.
    #[arg(long, default_value_t = 0)]
    pub retries: usize,
    /// Count flaky scenarios as failures (exit code 1).
    #[arg(long)]
    pub flaky_fails: bool,
    /// Stop starting scenarios after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Don't start or check `serve` entries.
    #[arg(long)]
    pub no_serve: bool,
    /// Write a JUnit XML report (updated as scenarios finish).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the JSON report (schemas/report.schema.json), updated as scenarios finish.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Frames in reports: `failed` keeps those of failed and flaky scenarios, the first
    /// and last 100 of each connection with a count of the rest; `all` keeps every frame.
    #[arg(long, value_name = "WHICH", value_parser = ["failed", "all"], default_value = "failed")]
    pub report_frames: String,
    /// Write a self-contained HTML report: filters, and per scenario a timeline of its
    /// steps and of the frames on each connection.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// How many tasks a runtime worker runs from its own queue before it looks at the
/// shared one. Tokio tunes this itself to one look per 200 µs of polling, which for
/// tasks as short as ours is its maximum, 127. A worker's own queue holds 256 tasks;
/// beyond that, ready connections wait in the shared queue. With 1,000 connections in `engine load`, those waited long while the
/// ones in the workers' queues went round and round: the round-trip p99 was 1.3-1.5x
/// that of a hand-written client at the same throughput (`bench/peers.sh`), 0.9x with
/// this.
const GLOBAL_QUEUE_INTERVAL: u32 = 4;

/// Run the command; the process's exit code.
pub fn main_with_args(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            let error = RunError::System {
                what: "cannot start the async runtime",
                source,
            };
            print_problems(&error.diagnostics());
            return error.exit().code();
        }
    };
    let exit = runtime.block_on(async move {
        match cli.command {
            Command::Schema { config } => {
                let schema = if config {
                    crate::spec::schema::engine_schema()
                } else {
                    crate::spec::schema::spec_schema()
                };
                print!("{}", crate::spec::schema::to_file_text(&schema));
                Exit::Passed
            }
            Command::Check { paths } => check(&paths),
            Command::List {
                paths,
                select,
                folders,
                format,
            } => list(&paths, &select, folders, &format),
            Command::Run(args) => run(args).await,
            Command::Load(args) => crate::load::command::main(args).await,
            Command::Record(args) => crate::record::main(args).await,
        }
    });
    exit.code()
}

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn print_problems(problems: &[Diagnostic]) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for p in problems {
        eprint!("{}", p.render(color));
        eprintln!();
    }
}

/// Load specs and configs; every problem found is a spec error.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, RunError> {
    match load_all(paths) {
        Ok(loaded) if loaded.problems.is_empty() => Ok(loaded),
        Ok(loaded) => Err(RunError::Spec(loaded.problems)),
        Err(d) => Err(RunError::Unreadable(Box::new(d))),
    }
}

/// Print a run error through the one renderer; its exit code.
pub fn fail(error: &RunError) -> Exit {
    fail_redacted(error, &Redactor::default())
}

/// [`fail`], with the suite's secrets hidden from what is printed.
pub fn fail_redacted(error: &RunError, redactor: &Redactor) -> Exit {
    let mut diagnostics = error.diagnostics();
    diagnostics.iter_mut().for_each(|d| redactor.diagnostic(d));
    print_problems(&diagnostics);
    if let Some(summary) = error.summary() {
        eprintln!("{summary}");
    }
    error.exit()
}

fn check(paths: &[PathBuf]) -> Exit {
    match load(paths) {
        Ok(loaded) => {
            println!("{} scenario(s) OK", loaded.scenarios.len());
            // The process exits next: freeing every scenario one by one first would be
            // a twentieth of the command's work for nothing.
            std::mem::forget(loaded);
            Exit::Passed
        }
        Err(e) => fail(&e),
    }
}

/// Stable across runs and machines (FNV-1a), so a scenario keeps its shard.
fn stable_hash(text: &str) -> u64 {
    let fnv = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    // FNV's low bits depend only on the inputs' low bits; mix (splitmix64's finalizer)
    // so that `% N` spreads similar names evenly.
    let mut z = fnv;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// Why a `--shard` value is wrong.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard takes K/N, e.g. 1/4")]
    NotAFraction,
    #[error("--shard: K must be a number")]
    BadK,
    #[error("--shard: N must be a number")]
    BadN,
    #[error("--shard {0}: need 1 <= K <= N")]
    OutOfRange(String),
}

pub fn parse_shard(text: &str) -> Result<(u64, u64), ShardError> {
    let (k, n) = text.split_once('/').ok_or(ShardError::NotAFraction)?;
    let k: u64 = k.trim().parse().map_err(|_| ShardError::BadK)?;
    let n: u64 = n.trim().parse().map_err(|_| ShardError::BadN)?;
    if n == 0 || k == 0 || k > n {
        return Err(ShardError::OutOfRange(text.to_string()));
    }
    Ok((k, n))
}

/// A loaded scenario with the config that governs it.
pub type Selected = (
    Arc<crate::spec::model::Scenario>,
    Arc<crate::spec::config::SuiteConfig>,
);

/// Apply tag, filter and shard selection.
pub fn select(
    scenarios: Vec<Selected>,
    selection: &Selection,
) -> Result<Vec<Selected>, ShardError> {
    let regex = selection.filter.as_ref().map(|f| {
        regex::Regex::new(f)
            .unwrap_or_else(|_| regex::Regex::new(&regex::escape(f)).expect("escaped"))
    });
    let shard = selection.shard.as_deref().map(parse_shard).transpose()?;
    Ok(scenarios
        .into_iter()
        .filter(|(s, _)| {
            selection.tags.is_empty() || s.tags.iter().any(|t| selection.tags.contains(t))
        })
        .filter(|(s, _)| !s.tags.iter().any(|t| selection.skip_tags.contains(t)))
        .filter(|(s, _)| {
            regex.as_ref().is_none_or(|r| {
                let file = s.path().display().to_string();
                r.is_match(&s.name)
                    || r.is_match(&file)
                    || s.name.contains(r.as_str())
                    || file.contains(r.as_str())
            })
        })
        .filter(|(s, _)| {
            shard.is_none_or(|(k, n)| {
                stable_hash(&format!("{}\0{}", s.path().display(), s.name)) % n == k - 1
            })
        })
        .collect())
}

fn list(paths: &[PathBuf], selection: &Selection, folders: bool, format: &str) -> Exit {
    if folders {
        let files = match crate::discover::spec_files(paths) {
            Ok(f) => f,
            Err(d) => return fail(&RunError::Unreadable(Box::new(d))),
        };
        let mut dirs: Vec<String> = files
            .iter()
            .filter_map(|f| f.parent().map(|p| p.display().to_string()))
            .collect();
        dirs.sort();
        dirs.dedup();
        if format == "json" {
            println!("{}", serde_json::to_string(&dirs).unwrap_or_default());
        } else {
            dirs.iter().for_each(|d| println!("{d}"));
        }
        return Exit::Passed;
    }
    let selected = match load(paths).and_then(|loaded| Ok(select(loaded.scenarios, selection)?)) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if format == "json" {
        let items: Vec<serde_json::Value> = selected
            .iter()
            .map(|(s, _)| serde_json::json!({"file": s.path(), "name": s.name, "tags": s.tags, "steps": s.steps.len()}))
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else {
        for (s, _) in &selected {
            println!("{}: {}", s.path().display(), s.name);
        }
    }
    Exit::Passed
}

async fn run(args: RunArgs) -> Exit {
    match run_suite(args).await {
        Ok(exit) => exit,
        Err(e) => fail(&e),
    }
}

async fn run_suite(args: RunArgs) -> Result<Exit, RunError> {
    let loaded = load(&args.paths)?;
    let selected = select(loaded.scenarios, &args.select)?;
    if selected.is_empty() {
        return Err(RunError::Usage("no scenario selected".into()));
    }
    let jobs = args
        .jobs
        .or_else(|| loaded.configs.first().and_then(|c| c.jobs))
        .unwrap_or(runner::admission::DEFAULT_JOBS);
    // Dozens of scenarios at once may hold thousands of connections: take the hard limit
    // where the soft one is lower (often 1024). Where even that is short, the scenario
    // that runs out says so in its connect error.
    let _ = crate::load::raise_open_files_limit(jobs as u64 * 256);
    let options = lifecycle::Options {
        serve: !args.no_serve,
        work: "scenarios",
    };
    let lifecycle = match Lifecycle::begin(&loaded.configs, options).await {
        Ok(lifecycle) => lifecycle,
        // A service's output may echo its secrets (a URL, a key flag).
        Err(e) => return Ok(fail_redacted(&e, &lifecycle::redactor(&loaded.configs))),
    };
    let plan: Vec<Planned> = (0..args.repeat.max(1))
        .flat_map(|iteration| {
            selected.iter().map(move |(scenario, config)| Planned {
                scenario: scenario.clone(),
                config: config.clone(),
                iteration,
            })
        })
        .collect();
    let mut listeners = listeners(&args);
    listeners.push(Box::new(crate::report::timings::TimingsRecorder::default()));
    // One at a time, the order cannot shorten the run: keep the plan's, as users read it.
    let start_order = if jobs > 1 && args.order == "longest-first" {
        crate::report::timings::Timings::read(&plan).start_order(&plan)
    } else {
        Vec::new()
    };
    let options = RunOptions {
        jobs,
        retries: args.retries,
        fail_fast: args.fail_fast,
        flaky_fails: args.flaky_fails,
        report_frames: match args.report_frames.as_str() {
            "all" => runner::ReportFrames::All,
            _ => runner::ReportFrames::Failed,
        },
        start_order,
    };
    let summary = runner::run_until(
        plan,
        options.clone(),
        Resources::new(jobs),
        &mut listeners,
        lifecycle.stop(),
    )
    .await;
    // Reports are complete once their listeners are gone.
    drop(listeners);
    let outcome = if summary.success(options.flaky_fails) {
        Exit::Passed
    } else {
        Exit::Failed
    };
    Ok(lifecycle.end(outcome).await)
}

/// The console, and the reports asked for.
fn listeners(args: &RunArgs) -> Vec<Box<dyn Listener>> {
    let mut console = Console::new(color());
    console.progress = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let mut listeners: Vec<Box<dyn Listener>> = vec![Box::new(console)];
    if let Some(path) = &args.junit {
        listeners.push(Box::new(crate::report::junit::JunitReport::new(
            path.clone(),
        )));
    }
    if let Some(path) = &args.json {
        listeners.push(Box::new(crate::report::json::JsonReport::new(path.clone())));
    }
    if let Some(path) = &args.html {
        listeners.push(Box::new(crate::report::html::HtmlReport::new(path.clone())));
    }
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        listeners.push(Box::new(crate::report::github::GithubAnnotations {
            out: Box::new(std::io::stdout()),
        }));
    }
    listeners
}
