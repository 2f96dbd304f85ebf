//! Callback URL templates: being written.
