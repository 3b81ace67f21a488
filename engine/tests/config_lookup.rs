//! Which suite config governs a spec: `engine.yaml` searched upward from the spec's
//! folder, the same whether the spec is named bare (`y.yaml`), as `./y.yaml` or by its
//! folder; and a run over several suites renders each spec with its own config's `env`.

mod common;

use std::path::Path;

use common::{start_server, Suite};

/// `engine run ARGS` started in `cwd`; (exit code, stdout + stderr).
fn run_in(cwd: &Path, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("run")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run engine");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn a_bare_file_name_a_dotted_path_and_a_folder_find_the_same_config() {
    // The spec only passes with the config's env: `NAP` is defined nowhere else, and an
    // empty duration is a failure.
    let suite = Suite::new("ws://127.0.0.1:9", "");
    let config = suite.path().join("engine.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("env:\n", "env:\n  NAP: 1ms\n", 1)).unwrap();
    suite.spec(
        "deep/er/y.yaml",
        "name: naps as configured\nsteps:\n  - sleep: \"{{ env.NAP }}\"\n",
    );
    let folder = suite.path().join("deep/er");
    for (cwd, arg) in [
        (folder.clone(), "y.yaml"),
        (folder.clone(), "./y.yaml"),
        (folder.clone(), "."),
        (folder.join(".."), "er"),
        (folder.join(".."), "er/y.yaml"),
        (suite.path(), "deep"),
    ] {
        let (code, output) = run_in(&cwd, &[arg]);
        assert_eq!(code, 0, "`engine run {arg}` in {}: {output}", cwd.display());
        assert!(output.contains("1 passed, 0 failed"), "{arg}: {output}");
    }
    // And without the config the same spec fails: the test above can tell.
    std::fs::remove_file(&config).unwrap();
    let (code, output) = run_in(&folder, &["y.yaml"]);
    assert_eq!(code, 1, "{output}");
}

#[tokio::test]
async fn each_spec_renders_with_its_own_configs_env() {
    let url = start_server().await;
    let spec = |who: &str| {
        format!(
            "name: {who} sees its own env\nsteps:\n  - connect: {{ url: \"{{{{ env.WS_URL }}}}/echo\" }}\n  - send: {{ json: {{ type: say, who: \"{{{{ env.WHO }}}}\" }} }}\n  - expect: {{ event: echo, match: {{ body: {{ who: {who} }} }}, within: 2s }}\n"
        )
    };
    let first = Suite::new(&url, "");
    let second = Suite::new(&url, "");
    for (suite, who) in [(&first, "first"), (&second, "second")] {
        let config = suite.path().join("engine.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replacen("env:\n", &format!("env:\n  WHO: {who}\n"), 1),
        )
        .unwrap();
        suite.spec("who.yaml", &spec(who));
    }
    let (code, stdout, stderr) = common::run_engine_async(
        vec![
            "run".into(),
            first.path().display().to_string(),
            second.path().display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
}

/// YAML that is not specs (a CI workflow, another tool's script) sits beside them:
/// `ignore:` lists it, by file or by folder, and runs pass over it.
#[test]
fn what_ignore_lists_is_not_read_as_specs() {
    let suite = Suite::new("ws://127.0.0.1:9", "");
    suite.spec("y.yaml", "name: naps\nsteps:\n  - sleep: 1ms\n");
    suite.spec(
        "ci/workflow.yml",
        "on: push\njobs: { test: { runs-on: ubuntu } }\n",
    );
    suite.spec(
        "artillery.yml",
        "config: { target: ws://x }\nscenarios: []\n",
    );
    // Without `ignore:`, both are read as specs, and fail.
    let (code, output) = run_in(&suite.path(), &["."]);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("workflow.yml") && output.contains("artillery.yml"),
        "{output}"
    );
    let config = suite.path().join("engine.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\nignore: [ci, artillery.yml]\n")).unwrap();
    let (code, output) = run_in(&suite.path(), &["."]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("1 passed, 0 failed"), "{output}");
    // Named on the command line, an ignored file is refused, saying why.
    let (code, output) = run_in(&suite.path(), &["ci/workflow.yml"]);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("ci/workflow.yml is not a spec: `ignore:` in"),
        "{output}"
    );
    // A misspelt entry is a problem of the config, with the name it likely meant.
    std::fs::write(&config, format!("{text}\nignore: [ci, artilery.yml]\n")).unwrap();
    let (code, output) = run_in(&suite.path(), &["."]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("artilery.yml does not exist"), "{output}");
    assert!(output.contains("did you mean `artillery.yml`?"), "{output}");
}
