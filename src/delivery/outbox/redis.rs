//! Redis outbox: being written.
