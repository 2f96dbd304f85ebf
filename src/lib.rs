//! Junebug: a daemon with a RESTful HTTP API that manages text-messaging channels.
//!
//! The daemon is wiring and adapters around the actor system in `junebug-actors`:
//! - [`config`]: `junebug.toml` + `JUNEBUG_*` environment + CLI flags;
//! - [`logging`]: the process log (slog), with library logs bridged in;
//! - [`api`]: the HTTP API (actix-web), compatible with the original Junebug;
//! - [`store`] and [`queue`]: the backends (embedded SQLite, over [`sqlite`]);
//! - [`host`]: what channels report goes to the store, the rates and the callbacks;
//! - [`delivery`]: callbacks to applications (`mo_url`, `event_url`, `status_url`);
//! - [`logs`], [`metrics`]: channel logs and rates;
//! - [`wire`]: the JSON shapes of messages, events and statuses;
//! - [`server`]: builds all of it and runs it.
pub mod amqp;
pub mod api;
pub mod backend;
pub mod config;
pub mod delivery;
pub mod host;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod queue;
pub mod receipts;
pub mod redis_link;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod vumi;
pub mod wire;
