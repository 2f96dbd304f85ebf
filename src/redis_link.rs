//! The connection to Redis shared by the Redis backends (the Store and the callback outbox):
//! one multiplexed connection manager with short timeouts, so that while Redis is away every
//! call fails quickly (the API answers 503) and reconnection happens by itself.
//!
//! The manager reconnects by itself after I/O errors, but a timeout leaves it on the same
//! connection; [`RedisLink`] then swaps in a fresh manager (see `replace_after_timeout`).
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError};

use crate::backend::BackendError;

/// How long one attempt to open a connection may take (TCP connect and handshake).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command (or pipeline) may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts after the first, before the waiting calls are failed. Kept small so a
/// call waiting for a reconnection fails in at most about
/// `(1 + RECONNECT_RETRIES) × CONNECTION_TIMEOUT + delays` (≈ 2.1 s), plus
/// [`RESPONSE_TIMEOUT`] for the command itself. The next call starts a new attempt, so
/// giving up early never stops reconnection.
const RECONNECT_RETRIES: usize = 1;
/// The first delay between connection attempts (doubling, with jitter).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between connection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// How the connection manager times out and retries; see the module doc.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RECONNECT_MIN_DELAY)
        .set_max_delay(RECONNECT_MAX_DELAY)
}

/// A resilient connection to one Redis. Cheap to share behind an `Arc`; every call may run
/// concurrently (the connection is multiplexed).
pub struct RedisLink {
    /// Kept to build a fresh manager after a timeout, and dedicated connections.
    client: redis::Client,
    /// The manager calls go through, and which one it is. A std mutex: it is held only to
    /// clone or swap an `Arc`, never across an `.await`.
    current: Mutex<Current>,
}

/// The connection manager in use.
struct Current {
    /// Cloned for each call (an `Arc` inside).
    manager: ConnectionManager,
    /// Counts replacements, so that many calls timing out together replace it only once.
    generation: u64,
}

impl RedisLink {
    /// Connects to the Redis at `url` (`redis://[:password@]host:port/db`).
    ///
    /// Fails if Redis cannot be reached now, so a daemon configured for Redis refuses to
    /// start rather than answering 503 to everything; once started, outages are survived.
    pub async fn connect(url: &str) -> Result<RedisLink, BackendError> {
        let shown = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| BackendError::new("redis", format!("invalid URL {shown}: {e}")))?;
        let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(|e| BackendError::new("redis", format!("cannot connect to {shown}: {e}")))?;
        Ok(RedisLink {
            client,
            current: Mutex::new(Current {
                manager,
                generation: 0,
            }),
        })
    }

    /// A connection of one's own, with the same timeouts (for WATCH, which a shared
    /// connection cannot hold).
    pub async fn dedicated(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// The manager to use for one call, and its generation.
    fn manager(&self) -> (ConnectionManager, u64) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.manager.clone(), current.generation)
    }

    /// After a call through manager `generation` failed with `error`: if it timed out,
    /// replaces that manager by a new one that will connect on its next use.
    ///
    /// The manager reconnects by itself after I/O errors, but a timeout leaves it on the same
    /// connection: if Redis's host vanished without closing it (a network partition, a
    /// frozen VM), every later call would time out until the kernel gives up on the socket,
    /// minutes later. A fresh connection costs little and fails fast (connection timeout)
    /// until Redis answers again. Calls still running on the old manager finish on it.
    fn replace_after_timeout(&self, generation: u64, error: &RedisError) {
        if !error.is_timeout() {
            return;
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation != generation {
            return; // Another call already replaced it.
        }
        // Only fails for configurations `connect` already accepted (RESP3 push settings).
        if let Ok(manager) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), manager_config())
        {
            current.manager = manager;
            current.generation += 1;
        }
    }

    /// Runs one command; `what` describes it for the error.
    pub async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        what: impl FnOnce() -> String,
    ) -> Result<T, BackendError> {
        let (mut manager, generation) = self.manager();
        cmd.query_async(&mut manager).await.map_err(|e| {
            self.replace_after_timeout(generation, &e);
            failure(what(), &e)
        })
    }

    /// Runs a pipeline (one round trip); `what` describes it for the error.
    pub async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        what: impl FnOnce() -> String,
    ) -> Result<T, BackendError> {
        let (mut manager, generation) = self.manager();
        pipe.query_async(&mut manager).await.map_err(|e| {
            self.replace_after_timeout(generation, &e);
            failure(what(), &e)
        })
    }
}

/// A Redis failure while doing `what`.
pub fn failure(what: String, error: &RedisError) -> BackendError {
    BackendError::new("redis", format!("{what}: {error}"))
}

/// `url` without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, and this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error messages never show the Redis password.
    #[test]
    fn urls_are_shown_without_password() {
        assert_eq!(
            redact("redis://:secret@example.com:6380/2"),
            "redis://:***@example.com:6380/2"
        );
        assert_eq!(redact("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
