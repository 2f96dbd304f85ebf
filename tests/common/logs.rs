//! Reading channel logs in tests: through the API, and as files under `logging_path`.
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Api, WAIT};

/// Polls `check` until it gives something, or fails the test after [`WAIT`]. Log entries are
/// written asynchronously, so "eventually on disk" is polled for.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /channels/{id}/messages/{message_id}/logs`: the message's entries, in time order.
pub async fn message_logs(api: &Api, id: &str, message_id: &str) -> Vec<Value> {
    let (status, env) = api
        .get(&format!("/channels/{id}/messages/{message_id}/logs"))
        .await;
    assert_eq!(status, 200, "{env}");
    assert_eq!(env["description"], "logs retrieved");
    env["result"].as_array().unwrap().clone()
}

/// An entry's words.
pub fn text(entry: &Value) -> &str {
    entry["message"].as_str().unwrap_or_default()
}

/// Every file under `dir`, recursively (none if it does not exist yet).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}
