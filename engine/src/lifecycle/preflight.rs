//! Before any scenario starts: every database and Redis URL the suite configs declare
//! must answer, and the WebSocket server of every connection profile must accept TCP
//! connections, so that a service that is down is one environment error (exit code 3),
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
    /// What [`check_ready`] probes.
    url: String,
    /// What the config says, when it differs (a WebSocket URL probed as `tcp://`).
    shown: Option<String>,
    config: String,
    within: Duration,
}

/// Probe every declared database and Redis URL and every profile's WebSocket server
/// (each once, concurrently, within the config's step timeout); those that refuse.
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
                url: hide_password(probe.shown.as_ref().unwrap_or(&probe.url)),
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
                shown: None,
                config: config.shown_name(),
                within: config.timeouts.step,
            });
        }
        for (name, tcp, url) in profile_servers(config, &ctx) {
            if probes.iter().any(|p| p.url == tcp) {
                continue;
            }
            probes.push(Probe {
                kind: "WebSocket server of profile",
                name,
                url: tcp,
                shown: Some(url),
                config: config.shown_name(),
                within: config.timeouts.step,
            });
        }
    }
    probes
}

/// Each profile's server as (profile, `tcp://host:port`, its WebSocket URL), for the
/// profiles whose `url` is built from the env alone (others need a scenario's values).
fn profile_servers(config: &SuiteConfig, ctx: &minijinja::Value) -> Vec<(String, String, String)> {
    let mut servers = Vec::new();
    for (name, profile) in &config.profiles {
        let Some(Value::String(raw)) = profile.get("url") else {
            continue;
        };
        let names = crate::template::referenced_names(raw).unwrap_or_default();
        if names.iter().any(|n| n != "env" && !n.starts_with("env.")) {
            continue;
        }
        let Ok(Value::String(url)) = crate::template::render_str(raw, ctx) else {
            continue;
        };
        let Ok(uri) = url.parse::<tokio_tungstenite::tungstenite::http::Uri>() else {
            continue;
        };
        let port = match (uri.port_u16(), uri.scheme_str()) {
            (Some(port), _) => port,
            (None, Some("wss")) => 443,
            (None, Some("ws")) => 80,
            _ => continue,
        };
        if let Some(host) = uri.host() {
            servers.push((name.clone(), format!("tcp://{host}:{port}"), url.clone()));
        }
    }
    servers
}
