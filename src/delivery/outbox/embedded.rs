//! Embedded outbox: being written.
