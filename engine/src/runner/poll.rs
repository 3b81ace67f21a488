//! `eventually`: re-check an assertion until it holds or its deadline passes.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::context::Failure;

const INTERVAL: Duration = Duration::from_millis(25);
const MAX_INTERVAL: Duration = Duration::from_millis(200);

/// Run `check` once, or until it passes within `window`; the last failure explains a
/// miss, with the time waited.
pub async fn poll<T, F, Fut>(window: Duration, mut check: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let deadline = Instant::now() + window;
    let mut interval = INTERVAL;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(failure) if Instant::now() + interval > deadline => {
                return Err(if window.is_zero() {
                    failure
                } else {
                    let mut f = failure;
                    f.message = format!("{} (still failing after {window:?})", f.message);
                    f
                });
            }
            Err(_) => {
                tokio::time::sleep(interval).await;
                interval = (interval * 2).min(MAX_INTERVAL);
            }
        }
    }
}
