//! Redis store: being written.
