//! What the storage backends have in common: their error, and the choice between them.

/// A backend (SQLite, Redis, RabbitMQ) could not do what was asked. The API answers 503.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{backend}: {detail}")]
pub struct BackendError {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl BackendError {
    /// A failure of `backend`.
    pub fn new(backend: &'static str, detail: impl Into<String>) -> Self {
        BackendError {
            backend,
            detail: detail.into(),
        }
    }
}

impl From<BackendError> for junebug_actors::ports::PortError {
    fn from(e: BackendError) -> Self {
        junebug_actors::ports::PortError(e.to_string())
    }
}
