//! Scenario durations kept between runs (`.engine/timings.json` beside the suite
//! config) and the longest-first start order read from them, through the binary.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use engine::report::timings::Timings;
use engine::runner::Planned;

/// A suite of three scenarios that need no service: two short ones before a long one.
fn suite() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("engine.yaml"),
        "events:\n  type_field: type\n",
    )
    .unwrap();
    for (file, sleep) in [
        ("a_short.yaml", "10ms"),
        ("b_short.yaml", "10ms"),
        ("c_long.yaml", "600ms"),
    ] {
        let name = file.trim_end_matches(".yaml");
        std::fs::write(
            dir.path().join(file),
            format!("name: {name}\nsteps:\n  - sleep: {sleep}\n"),
        )
        .unwrap();
    }
    dir
}

fn plan(dir: &std::path::Path) -> Vec<Planned> {
    let loaded = engine::discover::load_all(&[PathBuf::from(dir)]).expect("specs load");
    loaded
        .scenarios
        .into_iter()
        .map(|(scenario, config)| Planned {
            scenario: Arc::clone(&scenario),
            config,
            iteration: 0,
        })
        .collect()
}

#[test]
fn a_run_keeps_durations_and_the_next_starts_the_longest_first() {
    let dir = suite();
    let names = |order: &[usize], plan: &[Planned]| -> Vec<String> {
        order
            .iter()
            .map(|&i| plan[i].scenario.name.clone())
            .collect()
    };
    let before = plan(dir.path());
    assert_eq!(
        names(&Timings::read(&before).start_order(&before), &before),
        ["a_short", "b_short", "c_long"],
        "never timed: plan order"
    );

    let path = dir.path().to_str().unwrap();
    let (code, _, stderr) = common::run_engine(&["run", path, "--no-serve", "--jobs", "2"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let cache = dir.path().join(".engine");
    let kept: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(cache.join("timings.json")).expect("timings kept"))
            .expect("timings are JSON");
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        [
            "a_short.yaml#a_short",
            "b_short.yaml#b_short",
            "c_long.yaml#c_long"
        ]
    );
    assert!(kept["c_long.yaml#c_long"] >= 600, "{kept:?}");
    assert!(
        kept["a_short.yaml#a_short"] < kept["c_long.yaml#c_long"],
        "{kept:?}"
    );
    // The folder keeps itself out of git.
    assert_eq!(
        std::fs::read_to_string(cache.join(".gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );

    let after = plan(dir.path());
    let order = names(&Timings::read(&after).start_order(&after), &after);
    assert_eq!(order[0], "c_long", "{order:?}");

    // A scenario never timed starts before all the timed ones.
    std::fs::write(
        dir.path().join("d_new.yaml"),
        "name: d_new\nsteps:\n  - sleep: 1ms\n",
    )
    .unwrap();
    let with_new = plan(dir.path());
    let order = names(&Timings::read(&with_new).start_order(&with_new), &with_new);
    assert_eq!(order[..2], ["d_new", "c_long"], "{order:?}");
}

#[test]
fn an_unreadable_timings_file_changes_nothing_but_the_order() {
    let dir = suite();
    std::fs::create_dir_all(dir.path().join(".engine")).unwrap();
    std::fs::write(dir.path().join(".engine/timings.json"), "{ not json").unwrap();
    let plan = plan(dir.path());
    assert_eq!(Timings::read(&plan).start_order(&plan), [0, 1, 2]);
    let path = dir.path().to_str().unwrap();
    let (code, _, stderr) = common::run_engine(&["run", path, "--no-serve", "--jobs", "2"], &[]);
    assert_eq!(code, 0, "{stderr}");
    // The next run rewrote it whole.
    let text = std::fs::read_to_string(dir.path().join(".engine/timings.json")).unwrap();
    assert!(text.contains("c_long.yaml#c_long"), "{text}");
}
