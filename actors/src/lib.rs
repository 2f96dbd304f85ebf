//! Junebug's actor system.
//!
//! - [`supervisor`]: the [`ChannelSupervisor`] owns the registry of running channels, spreads
//!   them over a small pool of arbiters and restarts a failed channel, alone, with backoff.
//! - [`channel`]: the [`ChannelActor`] of one channel: its transport, its priority mailbox and
//!   its rate limiter, and the send loop that ties them together.
//! - [`mailbox`]: the priority mailbox (realtime before bulk, bulk never starved).
//! - [`limiter`]: the per-channel rate limiter (a token bucket).
//! - [`transport`]: the [`Transport`] trait, the message/event model and the registry of
//!   channel types; [`transports`] holds one module per channel type.
//! - [`ports`]: the traits through which the daemon feeds and observes the actors.
//!
//! This crate knows nothing of the HTTP API, Redis or RabbitMQ: the daemon plugs those in
//! through [`ports`].
#![warn(missing_docs)]

pub mod channel;
pub mod limiter;
pub mod mailbox;
pub mod message;
pub mod ports;
pub mod supervisor;
pub mod transport;
pub mod transports;
pub mod webhook;

pub use channel::ChannelActor;
pub use supervisor::ChannelSupervisor;
pub use transport::{Transport, TransportRegistry};
