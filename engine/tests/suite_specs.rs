//! Every spec in `specs/` is valid against `schemas/spec.schema.json` (the same schema
//! editors use) and the engine's semantic checks; and `engine schema` prints that schema.

use std::path::PathBuf;

#[test]
fn every_spec_in_the_suite_is_valid() {
    let specs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs"));
    let loaded = engine::discover::load_all(&[specs]).expect("specs folder");
    let problems: Vec<String> = loaded.problems.iter().map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!loaded.scenarios.is_empty());
    // Independently of the loader: each file against the JSON Schema as an editor would.
    let schema: serde_json::Value = serde_json::from_str(engine::spec::load::SPEC_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (scenario, _) in &loaded.scenarios {
        let node = engine::spec::yaml::parse(&scenario.source.text).unwrap();
        let (value, _) = engine::spec::yaml::to_json(node);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {errors:?}",
            scenario.path().display()
        );
    }
}

#[test]
fn engine_schema_prints_the_spec_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["title"], "Scenario spec");
    assert!(printed["$defs"]["step"]["properties"]["assert_redis"].is_object());
}

#[test]
fn suite_configs_are_valid_against_the_config_schema() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schemas/engine.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for config in ["specs/engine.yaml", "bench/engine.yaml"] {
        let text = std::fs::read_to_string(root.join(config)).unwrap();
        let (value, _) = engine::spec::yaml::to_json(engine::spec::yaml::parse(&text).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{config}: {errors:?}");
        // And the engine reads it.
        engine::spec::config::SuiteConfig::load(&root.join(config)).unwrap();
    }
    // The schema knows every key the engine reads: a typo is caught by both.
    let (bad, _) = engine::spec::yaml::to_json(
        engine::spec::yaml::parse("events: { type_feld: kind }\n").unwrap(),
    );
    assert!(!validator.is_valid(&bad));
}

/// Bad input never panics: every suite spec, cut short at many points and with bytes
/// flipped (deterministically), loads to either a scenario or located diagnostics.
#[test]
fn mangled_specs_give_errors_not_panics() {
    let specs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs"));
    let config = engine::spec::config::SuiteConfig::load(&specs.join("engine.yaml")).unwrap();
    let files = engine::discover::spec_files(&[specs]).unwrap();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let noise = [
        b'{', b'}', b'[', b':', b'-', b'"', b'\'', b'\t', b'\n', b'#', b'&', b'*', b'!', b'|', 0xC3,
    ];
    let mut loads = 0;
    for file in &files {
        let text = std::fs::read(file).unwrap();
        for round in 0..24 {
            let mut bytes = text.clone();
            if round % 2 == 0 {
                bytes.truncate((next() as usize) % bytes.len().max(1));
            } else {
                for _ in 0..3 {
                    let at = (next() as usize) % bytes.len().max(1);
                    bytes[at] = noise[(next() as usize) % noise.len()];
                }
            }
            let mangled = String::from_utf8_lossy(&bytes).into_owned();
            let source = engine::diagnostic::SourceFile::new(file.clone(), mangled);
            if let Err(problems) =
                engine::spec::load::load_str(source, &config, &Default::default())
            {
                assert!(!problems.is_empty());
                for p in &problems {
                    // Every problem renders, and those from the file point into it.
                    let rendered = p.render(false);
                    assert!(rendered.starts_with("error: "), "{rendered}");
                }
            }
            loads += 1;
        }
    }
    assert!(loads > 3000, "{loads}");
}
