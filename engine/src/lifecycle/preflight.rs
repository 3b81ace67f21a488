//! Before any scenario starts: every database and Redis URL the suite configs declare
//! must answer, so that a service that is down is one environment error (exit code 3),
//! not a failure in every scenario.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::exit::Refused;
use crate::runner::serve::check_ready;
use crate::spec::config::SuiteConfig;
use crate::text::hide_password;

/// One declared service to probe.
struct Probe {
    kind: &'static str,
    name: String,
    url: String,
    config: String,
    within: Duration,
}

/// Probe every declared database and Redis URL (each once, concurrently, within the
/// config's step timeout); those that refuse.
pub async fn check(configs: &[Arc<SuiteConfig>]) -> Vec<Refused> {
    let probes = probes(configs);
    let results = futures_util::future::join_all(
        probes
            .iter()
            .map(|probe| check_ready(&probe.url, probe.within)),
    )
    .await;
    probes
        .into_iter()
        .zip(results)
        .filter_map(|(probe, result)| {
            result.err().map(|reason| Refused {
                kind: probe.kind,
                name: probe.name,
                url: hide_password(&probe.url),
                reason,
                config: probe.config,
            })
        })
        .collect()
}

fn probes(configs: &[Arc<SuiteConfig>]) -> Vec<Probe> {
    let mut probes: Vec<Probe> = Vec::new();
    for config in configs {
        let env = config.env_values();
        let ctx = minijinja::Value::from_serialize(serde_json::json!({ "env": env }));
        let declared = config
            .databases
            .iter()
            .map(|(name, url)| ("database", name, url))
            .chain(
                config
                    .redis
                    .iter()
                    .map(|(name, url)| ("Redis server", name, url)),
            );
        for (kind, name, raw) in declared {
            // A URL built from more than the env (IDs, variables) can only be checked by
            // the scenario that uses it.
            let Ok(Value::String(url)) = crate::template::render_str(raw, &ctx) else {
                continue;
            };
            let probed = ["postgres://", "postgresql://", "redis://", "rediss://"];
            if !probed.iter().any(|scheme| url.starts_with(scheme))
                || probes.iter().any(|p| p.url == url)
            {
                continue;
            }
            probes.push(Probe {
                kind,
                name: name.clone(),
                url,
                config: config
                    .path
                    .as_ref()
                    .map_or("the default config".into(), |p| p.display().to_string()),
                within: config.timeouts.step,
            });
        }
    }
    probes
}
