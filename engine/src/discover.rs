//! Finding spec files under the paths given on the command line, and loading them with
//! the suite config nearest to each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::Diagnostic;
use crate::spec::config::{SuiteConfig, CONFIG_FILE};
use crate::spec::library::Library;
use crate::spec::load::load_file;
use crate::spec::model::Scenario;

/// Spec files (`*.yaml`, `*.yml`, not `engine.yaml`) under each path, sorted.
pub fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
        } else if path.is_dir() {
            walk(path, &mut files)
                .map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", path.display())))?;
        } else {
            return Err(Diagnostic::new(format!(
                "no such file or folder: {}",
                path.display()
            )));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != CONFIG_FILE {
            out.push(path);
        }
    }
    Ok(())
}

/// Loaded scenarios, each with its config; or every problem found.
pub struct Loaded {
    pub scenarios: Vec<(Arc<Scenario>, Arc<SuiteConfig>)>,
    pub problems: Vec<Diagnostic>,
    pub configs: Vec<Arc<SuiteConfig>>,
}

pub fn load_all(paths: &[PathBuf]) -> Result<Loaded, Diagnostic> {
    let files = spec_files(paths)?;
    let mut configs: HashMap<PathBuf, Arc<SuiteConfig>> = HashMap::new();
    // Each suite's library, loaded once, by config path.
    let mut libraries: HashMap<Option<PathBuf>, (Arc<Library>, Vec<PathBuf>)> = HashMap::new();
    let mut order = Vec::new();
    let mut loaded = Loaded {
        scenarios: Vec::new(),
        problems: Vec::new(),
        configs: Vec::new(),
    };
    let mut jobs = Vec::new();
    for file in files {
        let dir = spec_folder(&file);
        let config = match configs.get(&dir) {
            Some(c) => c.clone(),
            None => {
                let c = SuiteConfig::discover(&dir)?;
                configs.insert(dir, c.clone());
                if !order.iter().any(|o: &Arc<SuiteConfig>| o.path == c.path) {
                    order.push(c.clone());
                }
                c
            }
        };
        for problem in config_problems(&config) {
            if !loaded.problems.iter().any(|p| p.message == problem.message) {
                loaded.problems.push(problem);
            }
        }
        let (library, library_files) = libraries.entry(config.path.clone()).or_insert_with(|| {
            let (library, problems) = Library::load(&config);
            loaded.problems.extend(problems);
            let files = Library::files(&config)
                .iter()
                .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
                .collect();
            (Arc::new(library), files)
        });
        let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if config.ignores(&canonical) {
            if paths.contains(&file) {
                loaded.problems.push(ignored_but_named(&file, &config));
            }
            continue;
        }
        if library_files.contains(&canonical) || is_event_document(&config, &canonical) {
            continue;
        }
        jobs.push((file, config, library.clone()));
    }
    for (result, (_, config, _)) in load_files(&jobs).into_iter().zip(&jobs) {
        match result {
            Ok(scenarios) => loaded
                .scenarios
                .extend(scenarios.into_iter().map(|s| (Arc::new(s), config.clone()))),
            Err(problems) => loaded.problems.extend(problems),
        }
    }
    loaded.configs = order;
    Ok(loaded)
}

type LoadResult = Result<Vec<Scenario>, Vec<Diagnostic>>;

/// Load every file, on as many threads as there are cores: files are independent, and
/// a large suite's check is bound by parsing and checking them. Results keep the
/// files' order, so output is the same whatever the threads did.
fn load_files(jobs: &[(PathBuf, Arc<SuiteConfig>, Arc<Library>)]) -> Vec<LoadResult> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().div_ceil(8))
        .max(1);
    let load = |(file, config, library): &(PathBuf, Arc<SuiteConfig>, Arc<Library>)| {
        load_file(file, config, library)
    };
    if threads == 1 {
        return jobs.iter().map(load).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(load).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A file named on the command line that the config's `ignore:` lists.
fn ignored_but_named(file: &Path, config: &SuiteConfig) -> Diagnostic {
    let config = config.shown_name();
    Diagnostic::new(format!(
        "{} is not a spec: `ignore:` in {config} lists it",
        file.display()
    ))
    .hint(format!("remove it from `ignore:` in {config} to run it"))
}

/// The config's AsyncAPI document, which may sit among the specs: it is not a spec.
fn is_event_document(config: &SuiteConfig, canonical: &Path) -> bool {
    config.event_catalog.as_ref().is_some_and(|catalog| {
        std::fs::canonicalize(&catalog.path).is_ok_and(|document| document == canonical)
    })
}

/// The folder a spec's config search starts from, the same however the file was named:
/// `y.yaml` has the empty path as its parent, which would find no `engine.yaml`.
fn spec_folder(file: &Path) -> PathBuf {
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    match absolute.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Problems with the suite config that `engine check` must report before anything runs.
fn config_problems(config: &SuiteConfig) -> Vec<Diagnostic> {
    let relative = || {
        format!(
            "paths in {} are relative to its folder",
            config.shown_name()
        )
    };
    let mut problems = Vec::new();
    if let Some(schemas) = &config.events.schemas {
        let dir = config.resolve(schemas);
        if !dir.is_dir() {
            problems.push(
                Diagnostic::new(format!(
                    "events.schemas: folder {} does not exist",
                    dir.display()
                ))
                .hint(relative()),
            );
        }
    }
    // A misspelt entry would let the file it meant be read as a spec.
    for listed in &config.ignore {
        let path = config.resolve(listed);
        if path.exists() {
            continue;
        }
        let problem = Diagnostic::new(format!("ignore: {} does not exist", path.display()));
        problems.push(match closest_sibling(&path) {
            Some(suggestion) => problem.hint(suggestion),
            None => problem.hint(relative()),
        });
    }
    problems
}

/// "did you mean" among the names in the folder of a path that does not exist.
fn closest_sibling(path: &Path) -> Option<String> {
    let wrong = path.file_name()?.to_str()?;
    let names: Vec<String> = std::fs::read_dir(path.parent()?)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    crate::diagnostic::did_you_mean(wrong, names.iter().map(String::as_str))
}
