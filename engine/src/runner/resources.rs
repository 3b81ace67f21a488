//! What scenarios share during a run: Postgres pools and Redis connections by URL, one
//! HTTP client, TLS settings and compiled event schemas. Created lazily, so a suite
//! that never touches Redis never needs it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::diagnostic::FailureKind;
use crate::spec::asyncapi::EventCatalog;
use crate::spec::config::SuiteConfig;
use crate::text::hide_password;

/// How long a pooled database connection may sit idle and still be handed out without
/// a ping first.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

type Lazy<T> = Arc<OnceCell<Result<T, ResourceError>>>;

/// Why a shared client could not be made. Kept for the rest of the run (every scenario
/// that needs it gets the same answer), so the cause is kept as its text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResourceError {
    #[error("cannot connect to Postgres at {url}: {reason}")]
    Postgres { url: String, reason: String },
    #[error("cannot connect to Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
}

impl From<ResourceError> for crate::diagnostic::Diagnostic {
    fn from(e: ResourceError) -> Self {
        let kind = match &e {
            ResourceError::Postgres { .. } => FailureKind::Database,
            ResourceError::Redis { .. } => FailureKind::Redis,
        };
        Self::of(kind, e.to_string())
    }
}

/// The HTTP client of `http` steps and `serve` readiness probes, built at its first
/// use and shared by the whole process: building one reads and parses every root
/// certificate of the system (a few milliseconds and a few hundred KiB), which a run
/// without HTTP never needs, and which a probe retried every few milliseconds would
/// otherwise do each time.
pub fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

/// Shared clients for one run.
pub struct Resources {
    pg: Mutex<HashMap<String, Lazy<sqlx::PgPool>>>,
    redis: Mutex<HashMap<String, Lazy<redis::aio::ConnectionManager>>>,
    schemas: Mutex<HashMap<PathBuf, Arc<EventSchemas>>>,
    pub max_db_connections: u32,
    /// Source addresses connections take in turn (load mode's `--local-ips`).
    local_ips: Vec<IpAddr>,
    next_local_ip: AtomicUsize,
}

impl Resources {
    pub fn new(jobs: usize) -> Arc<Self> {
        Self::with_local_ips(jobs, Vec::new())
    }

    /// Shared clients whose WebSocket connections come from `local_ips` in turn.
    pub fn with_local_ips(jobs: usize, local_ips: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            pg: Mutex::default(),
            redis: Mutex::default(),
            schemas: Mutex::default(),
            // Two round trips per `assert_db`: a few connections serve thousands of
            // checks a second, and Postgres's own limit (100 by default) is shared with
            // the application under test.
            max_db_connections: (jobs as u32 * 2).clamp(4, 16),
            local_ips,
            next_local_ip: AtomicUsize::new(0),
        })
    }

    /// The source address for the next connection, if any are set.
    pub fn local_ip(&self) -> Option<IpAddr> {
        let turn = self.next_local_ip.fetch_add(1, Ordering::Relaxed);
        self.local_ips
            .get(turn.checked_rem(self.local_ips.len())?)
            .copied()
    }

    pub async fn postgres(&self, url: &str) -> Result<sqlx::PgPool, ResourceError> {
        self.pool(url, None).await
    }

    /// A pool whose connections are read-only and bound by `statement_timeout`, from
    /// their start-up options: each read is one round trip, with no transaction to open
    /// around it (`assert_db`). A statement that writes, also inside a function, fails
    /// with Postgres's `read_only_sql_transaction` as it would in `BEGIN READ ONLY`.
    pub async fn postgres_reader(
        &self,
        url: &str,
        statement_timeout: Duration,
    ) -> Result<sqlx::PgPool, ResourceError> {
        self.pool(url, Some(statement_timeout)).await
    }

    /// One pool per URL and kind (`None`: read-write; `Some(t)`: read-only, bound by t).
    async fn pool(
        &self,
        url: &str,
        reader: Option<Duration>,
    ) -> Result<sqlx::PgPool, ResourceError> {
        let key = match reader {
            None => url.to_string(),
            Some(limit) => format!("{url}\0read {}", limit.as_millis()),
        };
        let cell = crate::sync::lock(&self.pg).entry(key).or_default().clone();
        let max = self.max_db_connections;
        let fail = |e: sqlx::Error| ResourceError::Postgres {
            url: hide_password(url),
            reason: e.to_string(),
        };
        cell.get_or_init(|| async move {
            let mut options: sqlx::postgres::PgConnectOptions = url.parse().map_err(fail)?;
            if let Some(limit) = reader {
                let millis = limit.as_millis().max(1).to_string();
                options = options.options([
                    ("default_transaction_read_only", "on"),
                    ("statement_timeout", millis.as_str()),
                ]);
            }
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(5))
                // sqlx pings every connection it hands out: a round trip more per
                // statement. One back from a step a moment ago is alive; only one idle
                // for longer (the server may have closed it) is pinged, and replaced
                // when the ping fails.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_AFTER_IDLE {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await
                .map_err(fail)
        })
        .await
        .clone()
    }

    pub async fn redis(&self, url: &str) -> Result<redis::aio::ConnectionManager, ResourceError> {
        let cell = crate::sync::lock(&self.redis)
            .entry(url.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async move {
            let fail = |e: &dyn std::fmt::Display| ResourceError::Redis {
                url: hide_password(url),
                reason: e.to_string(),
            };
            let client = redis::Client::open(url).map_err(|e| fail(&e))?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(5))
                .set_response_timeout(Duration::from_secs(5))
                .set_number_of_retries(1);
            match tokio::time::timeout(
                Duration::from_secs(6),
                client.get_connection_manager_with_config(config),
            )
            .await
            {
                Ok(Ok(manager)) => Ok(manager),
                Ok(Err(e)) => Err(fail(&e)),
                Err(_) => Err(fail(&"timed out")),
            }
        })
        .await
        .clone()
    }

    /// Event schemas of the config (`events.schemas` or `events.asyncapi`), compiled
    /// once per run.
    pub fn schemas(&self, config: &SuiteConfig) -> Option<Arc<EventSchemas>> {
        let source = match (&config.event_catalog, &config.events.schemas) {
            (Some(catalog), _) => SchemaSource::AsyncApi(catalog.clone()),
            (None, Some(dir)) => SchemaSource::Folder(config.resolve(dir)),
            (None, None) => return None,
        };
        let mut map = self.schemas.lock().ok()?;
        Some(
            map.entry(source.path().to_path_buf())
                .or_insert_with(|| Arc::new(EventSchemas::new(source)))
                .clone(),
        )
    }
}

/// Where an event type's schema comes from.
pub enum SchemaSource {
    /// A folder of `<type>.json` files, read on first use.
    Folder(PathBuf),
    /// The messages of an AsyncAPI document, read with the config.
    AsyncApi(Arc<EventCatalog>),
}

impl SchemaSource {
    fn path(&self) -> &Path {
        match self {
            Self::Folder(dir) => dir,
            Self::AsyncApi(catalog) => &catalog.path,
        }
    }

    /// The schema of one event type and how failures name it; `None` when it has none.
    fn read(&self, event_type: &str) -> Option<(String, Result<Value, String>)> {
        match self {
            Self::Folder(dir) => {
                // Only plain names: an event type must not walk out of the schema folder.
                if event_type.is_empty()
                    || !event_type
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    || event_type.starts_with('.')
                {
                    return None;
                }
                let path = dir.join(format!("{event_type}.json"));
                let text = std::fs::read_to_string(&path).ok()?;
                let schema = serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("schema {} is not JSON: {e}", path.display()));
                Some((path.display().to_string(), schema))
            }
            Self::AsyncApi(catalog) => {
                let message = catalog.messages.get(event_type)?;
                Some((message.describe(&catalog.path), Ok(message.schema.clone())))
            }
        }
    }

    /// Where a schema for `event_type` would be, for the "has no schema" failure.
    fn missing(&self, event_type: &str) -> String {
        match self {
            Self::Folder(dir) => format!("{}/{event_type}.json", dir.display()),
            Self::AsyncApi(catalog) => format!("no message in {}", catalog.path.display()),
        }
    }
}

/// Event schema validators from one source, compiled on first use.
pub struct EventSchemas {
    source: SchemaSource,
    compiled: Mutex<HashMap<String, Option<Arc<CompiledSchema>>>>,
}

pub struct CompiledSchema {
    /// How failures name the schema: its file, or its AsyncAPI message.
    pub origin: String,
    validator: Result<jsonschema::Validator, String>,
}

impl EventSchemas {
    pub fn new(source: SchemaSource) -> Self {
        Self {
            source,
            compiled: Mutex::default(),
        }
    }

    fn get(&self, event_type: &str) -> Option<Arc<CompiledSchema>> {
        let mut map = self.compiled.lock().ok()?;
        map.entry(event_type.to_string())
            .or_insert_with(|| {
                let (origin, schema) = self.source.read(event_type)?;
                let validator = schema.and_then(|schema| {
                    // `format` (date-time, uuid, email…) is asserted, not just annotated:
                    // a schema that says date-time means it.
                    jsonschema::options()
                        .should_validate_formats(true)
                        .build(&schema)
                        .map_err(|e| format!("schema {origin} does not compile: {e}"))
                });
                Some(Arc::new(CompiledSchema { origin, validator }))
            })
            .clone()
    }

    /// A violation of the event's schema, described with its JSON pointer and rule.
    /// With `require`, an event type without a schema is a violation too.
    pub fn violation(&self, event_type: &str, event: &Value, require: bool) -> Option<String> {
        let Some(schema) = self.get(event_type) else {
            return require.then(|| {
                format!(
                    "event type `{event_type}` has no schema ({}), and the suite requires one for every event",
                    self.source.missing(event_type)
                )
            });
        };
        match &schema.validator {
            Err(e) => Some(e.clone()),
            Ok(validator) => {
                let errors: Vec<String> = validator
                    .iter_errors(event)
                    .take(3)
                    .map(|e| {
                        let pointer = e.instance_path().to_string();
                        format!(
                            "at `{}`: {} (rule `{}`)",
                            if pointer.is_empty() { "/" } else { &pointer },
                            e.masked(),
                            e.schema_path()
                        )
                    })
                    .collect();
                (!errors.is_empty()).then(|| {
                    format!(
                        "event `{event_type}` violates {}: {}",
                        schema.origin,
                        errors.join("; ")
                    )
                })
            }
        }
    }
}

/// Read a field from an event by its keys, outermost first (`meta.kind`: `meta`, then
/// `kind`).
pub fn field<'v, K: AsRef<str>>(value: &'v Value, path: &[K]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(key.as_ref()))
}
