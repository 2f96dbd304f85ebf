//! Daemon configuration: defaults < `junebug.toml` < `JUNEBUG_*` environment < CLI flags.
//!
//! Pieces:
//! - [`Config`] (with [`SupervisorConfig`], [`LogFormat`], [`LogLevel`]): the typed settings. Every
//!   field has a named `default_…` fn; the shipped `junebug.toml` repeats them, and a test keeps
//!   the two equal.
//! - [`CliOverrides`]: the few settings the command line can set (the original `jb` flags).
//! - [`load`] / [`load_from`]: layer the sources with the `config` crate, reject unknown keys
//!   and mistyped values, deserialize, apply the CLI, then [`Config::validate`].
//! - [`ConfigError`]: always one line naming the offending key and where its value came from.
//!
//! Environment variables are `JUNEBUG_<KEY>`, nested tables joined with `__`
//! (`JUNEBUG_SUPERVISOR__ARBITERS=4`). Values are kept as strings until deserialization: the
//! `config` crate's `try_parsing` would rewrite `JUNEBUG_LOGFILE=007` as `"7"` and
//! `JUNEBUG_INTERFACE=1e5` as `"100000"`, while its deserializer already parses strings into
//! numbers and booleans where the field wants one. The kind check in [`load_from`] makes that
//! parsing strict (no `"yes"` for an integer, no `8080.5` rounded to a port).
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::{Deserialize, Serialize};

/// The file read when no `-c FILE` is given, relative to the current directory (optional).
pub const DEFAULT_CONFIG_FILE: &str = "junebug.toml";

/// Prefix of the environment variables that override the configuration (`JUNEBUG_PORT`).
pub const ENV_PREFIX: &str = "JUNEBUG";

/// Separator between nested keys in environment variable names (`JUNEBUG_SUPERVISOR__ARBITERS`).
pub const ENV_NESTED_SEPARATOR: &str = "__";

/// The origin the `config` crate records for values that came from the environment.
const CRATE_ENV_ORIGIN: &str = "the environment";

/// The daemon's settings (API.md §13, minus the options that only made sense in Python).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API binds to (`-i`, `JUNEBUG_INTERFACE`). Default `localhost`.
    pub interface: String,
    /// TCP port of the HTTP API (`-p`, `JUNEBUG_PORT`); 0 picks a free port. Default 8080.
    pub port: u16,
    /// File the process log is appended to (`-l`, `JUNEBUG_LOGFILE`); unset logs to stderr.
    /// Default unset.
    pub logfile: Option<PathBuf>,
    /// Format of the process log (`JUNEBUG_LOG_FORMAT`). Default `auto`: human-readable text when
    /// logging to a terminal, JSON lines otherwise.
    pub log_format: LogFormat,
    /// Least severe level written to the process log (`JUNEBUG_LOG_LEVEL`). Default `info`.
    /// Library logs below `warning` are only shown at `debug` and `trace`.
    pub log_level: LogLevel,
    /// Directory of the embedded backend's SQLite file (`--data-dir`, `JUNEBUG_DATA_DIR`).
    /// Default `data`.
    pub data_dir: PathBuf,
    /// Directory of the channel logs: one directory of JSON-lines files per channel, and the
    /// index of entries by message (`--logging-path`, `JUNEBUG_LOGGING_PATH`). Default `logs/`.
    /// See [`crate::logs`].
    pub logging_path: PathBuf,
    /// Size in bytes a channel log file may reach before the next one is started
    /// (`JUNEBUG_LOG_ROTATE_SIZE`), at least 1. Default 1000000.
    pub log_rotate_size: u64,
    /// Channel log files kept per channel, the current one included; 0 = unlimited
    /// (`JUNEBUG_MAX_LOG_FILES`). Default 5.
    pub max_log_files: u32,
    /// Most log entries the logs endpoint returns, and its default `n` (`JUNEBUG_MAX_LOGS`),
    /// at least 1. Default 100.
    pub max_logs: usize,
    /// Seconds an inbound message can be replied to with `reply_to`
    /// (`JUNEBUG_INBOUND_MESSAGE_TTL`), at least 1. Default 600 (10 minutes).
    pub inbound_message_ttl: u64,
    /// Seconds events of an outbound message are recorded and forwarded to its `event_url`,
    /// and its channel log entries can be looked up by its id
    /// (`JUNEBUG_OUTBOUND_MESSAGE_TTL`), at least 1. Default 172800 (2 days).
    pub outbound_message_ttl: u64,
    /// Whether a reply to an expired or unknown inbound message that also has a `to` is sent as a
    /// plain message instead of failing (`JUNEBUG_ALLOW_EXPIRED_REPLIES`). Default false.
    pub allow_expired_replies: bool,
    /// Seconds per bucket of the message rates shown in channel status (`JUNEBUG_METRIC_WINDOW`),
    /// greater than 0. Default 10.0.
    pub metric_window: f64,
    /// Seconds a delivery report whose provider id is not (yet) known is held, waiting for the
    /// submit response that may have raced behind it, before it is logged and dropped
    /// (`JUNEBUG_DELIVERY_REPORT_HOLD`), greater than 0. Default 30.0.
    pub delivery_report_hold: f64,
    /// Largest HTTP API request body in bytes; larger requests get a 413
    /// (`JUNEBUG_MAX_BODY_SIZE`), at least 1. Default 1048576 (1 MiB).
    pub max_body_size: usize,
    /// Seconds before a request to `mo_url`, `event_url` or `status_url` times out and is retried
    /// (`JUNEBUG_CALLBACK_TIMEOUT`), greater than 0. Default 10.0.
    pub callback_timeout: f64,
    /// How channel actors are run and restarted (table `[supervisor]`).
    pub supervisor: SupervisorConfig,
    /// The production state backend (table `[redis]`). Set together with `amqp.url`.
    pub redis: RedisConfig,
    /// The production queue backend and the AMQP integration (table `[amqp]`).
    pub amqp: AmqpConfig,
    /// What `GET /health` checks (table `[health]`).
    pub health: HealthConfig,
    /// A separate listener for providers' webhooks (table `[webhooks]`).
    pub webhooks: WebhooksConfig,
    /// How callbacks are retried (table `[callbacks]`).
    pub callbacks: CallbacksConfig,
    /// This process's name among the Junebug processes sharing Redis: it owns the callbacks
    /// it accepted (`JUNEBUG_NODE_ID`). Empty (the default): `<hostname>:<port>`.
    pub node_id: String,
}

/// Callback retries (table `[callbacks]`, variables `JUNEBUG_CALLBACKS__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Attempts per callback, the first included (`JUNEBUG_CALLBACKS__MAX_ATTEMPTS`), at
    /// least 1. Default 8.
    pub max_attempts: u32,
    /// Seconds after which a failing callback is given up (`JUNEBUG_CALLBACKS__MAX_AGE`),
    /// greater than 0. Default 3600.
    pub max_age: f64,
    /// Seconds before the first retry; doubles per failure (`JUNEBUG_CALLBACKS__RETRY_INITIAL`),
    /// greater than 0. Default 30.
    pub retry_initial: f64,
    /// Longest wait in seconds between two attempts (`JUNEBUG_CALLBACKS__RETRY_MAX`), at least
    /// `retry_initial`. Default 1800.
    pub retry_max: f64,
    /// Requests in flight at once to one destination `host:port`, all channels together
    /// (`JUNEBUG_CALLBACKS__MAX_PER_DESTINATION`), at least 1. Default 32.
    pub max_per_destination: usize,
    /// Requests in flight at once for one channel, all destinations together
    /// (`JUNEBUG_CALLBACKS__MAX_PER_CHANNEL`), at least 1. Default 8.
    pub max_per_channel: usize,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_max_age() -> f64 {
    3600.0
}
fn default_retry_initial() -> f64 {
    30.0
}
fn default_retry_max() -> f64 {
    1800.0
}
fn default_max_per_destination() -> usize {
    32
}
fn default_max_per_channel() -> usize {
    8
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            max_age: default_max_age(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            max_per_destination: default_max_per_destination(),
            max_per_channel: default_max_per_channel(),
        }
    }
}

/// A listener of its own for providers' webhooks (table `[webhooks]`, variables
/// `JUNEBUG_WEBHOOKS__*`), so the management API can stay on a private interface while
/// webhooks face the internet. It serves `/channels/{id}/inbound/…` only. The API's own
/// listener serves webhooks too, whether or not this one is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Address of the webhook listener (`JUNEBUG_WEBHOOKS__INTERFACE`). Default: the API's
    /// `interface`.
    pub interface: Option<String>,
    /// Its TCP port (`JUNEBUG_WEBHOOKS__PORT`); 0 picks a free port. Unset (the default): no
    /// separate listener.
    pub port: Option<u16>,
}

/// Health checks (table `[health]`, variables `JUNEBUG_HEALTH__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds a channel may have messages waiting without settling any before `GET /health`
    /// calls its queue stuck (`JUNEBUG_HEALTH__STUCK_AFTER`), greater than 0. Default 60.0.
    pub stuck_after: f64,
}

fn default_stuck_after() -> f64 {
    60.0
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            stuck_after: default_stuck_after(),
        }
    }
}

/// Redis, the production Store (table `[redis]`, variables `JUNEBUG_REDIS__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db` (`JUNEBUG_REDIS__URL`). Unset (the default) with
    /// `amqp.url` unset too: the embedded backend. Both set: Redis + RabbitMQ.
    pub url: Option<String>,
    /// Prefix of every key Junebug writes (`JUNEBUG_REDIS__KEY_PREFIX`), so several
    /// deployments can share one Redis. Default "junebug:".
    pub key_prefix: String,
}

/// RabbitMQ, the production Queue (table `[amqp]`, variables `JUNEBUG_AMQP__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (`JUNEBUG_AMQP__URL`, the vhost URL-encoded:
    /// `%2f` for `/`). Unset by default; see `redis.url`.
    pub url: Option<String>,
    /// Prefix of the channels' outbound queue names, one per lane:
    /// `<prefix><channel id>.outbound.realtime` and `….outbound.bulk`
    /// (`JUNEBUG_AMQP__QUEUE_PREFIX`). Default "junebug.".
    pub queue_prefix: String,
}

/// Settings of the channel supervisor (table `[supervisor]`, variables `JUNEBUG_SUPERVISOR__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Arbiter threads the channels are spread over; 0 = one per CPU core, at least 2
    /// (`JUNEBUG_SUPERVISOR__ARBITERS`). Default 0. See [`Config::arbiter_count`].
    pub arbiters: usize,
    /// Seconds before the first restart of a dead channel; doubles per failure up to
    /// `restart_backoff_max` (`JUNEBUG_SUPERVISOR__RESTART_BACKOFF_INITIAL`), greater than 0.
    /// Default 0.1.
    pub restart_backoff_initial: f64,
    /// Longest wait in seconds between restarts of a failing channel, at least
    /// `restart_backoff_initial` (`JUNEBUG_SUPERVISOR__RESTART_BACKOFF_MAX`). Default 30.0.
    pub restart_backoff_max: f64,
}

/// Format of the process log. Parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Text when the log goes to a terminal (stderr, no `logfile`), JSON otherwise.
    Auto,
    /// Human-readable lines (slog-term).
    Text,
    /// One JSON object per line with `ts`, `level`, `msg` and the record's key-values.
    Json,
}

/// Severity threshold of the process log, the slog levels. Parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogLevel {
    /// Everything, including protocol chatter.
    Trace,
    /// Diagnostics, and library logs below `warning`.
    Debug,
    /// Normal operation: channels started, stopped, restarted.
    Info,
    /// Something is wrong but the daemon copes (`warn` is accepted too).
    Warning,
    /// A request or channel failed.
    Error,
    /// The daemon cannot go on.
    Critical,
}

// Hand-written rather than derived: the `config` crate's enum errors do not list the choices.
impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown log format {s:?}, expected auto, text or json"
            )),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warning" | "warn" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            "critical" => Ok(Self::Critical),
            _ => Err(format!(
                "unknown log level {s:?}, expected trace, debug, info, warning, error or critical"
            )),
        }
    }
}

impl TryFrom<String> for LogLevel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

fn default_interface() -> String {
    "localhost".to_owned()
}
fn default_port() -> u16 {
    8080
}
fn default_logfile() -> Option<PathBuf> {
    None
}
fn default_log_format() -> LogFormat {
    LogFormat::Auto
}
fn default_log_level() -> LogLevel {
    LogLevel::Info
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_logging_path() -> PathBuf {
    PathBuf::from("logs/")
}
fn default_log_rotate_size() -> u64 {
    1_000_000
}
fn default_max_log_files() -> u32 {
    5
}
fn default_max_logs() -> usize {
    100
}
fn default_inbound_message_ttl() -> u64 {
    600
}
fn default_outbound_message_ttl() -> u64 {
    172_800
}
fn default_allow_expired_replies() -> bool {
    false
}
fn default_metric_window() -> f64 {
    10.0
}
fn default_delivery_report_hold() -> f64 {
    30.0
}
fn default_max_body_size() -> usize {
    1_048_576
}
fn default_callback_timeout() -> f64 {
    10.0
}
fn default_arbiters() -> usize {
    0
}
fn default_restart_backoff_initial() -> f64 {
    0.1
}
fn default_restart_backoff_max() -> f64 {
    30.0
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interface: default_interface(),
            port: default_port(),
            logfile: default_logfile(),
            log_format: default_log_format(),
            log_level: default_log_level(),
            data_dir: default_data_dir(),
            logging_path: default_logging_path(),
            log_rotate_size: default_log_rotate_size(),
            max_log_files: default_max_log_files(),
            max_logs: default_max_logs(),
            inbound_message_ttl: default_inbound_message_ttl(),
            outbound_message_ttl: default_outbound_message_ttl(),
            allow_expired_replies: default_allow_expired_replies(),
            metric_window: default_metric_window(),
            delivery_report_hold: default_delivery_report_hold(),
            max_body_size: default_max_body_size(),
            callback_timeout: default_callback_timeout(),
            supervisor: SupervisorConfig::default(),
            redis: RedisConfig::default(),
            amqp: AmqpConfig::default(),
            health: HealthConfig::default(),
            webhooks: WebhooksConfig::default(),
            callbacks: CallbacksConfig::default(),
            node_id: String::new(),
        }
    }
}

fn default_redis_key_prefix() -> String {
    "junebug:".to_owned()
}

fn default_amqp_queue_prefix() -> String {
    "junebug.".to_owned()
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: default_redis_key_prefix(),
        }
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: None,
            queue_prefix: default_amqp_queue_prefix(),
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            arbiters: default_arbiters(),
            restart_backoff_initial: default_restart_backoff_initial(),
            restart_backoff_max: default_restart_backoff_max(),
        }
    }
}

impl Config {
    /// Checks the rules the types cannot express. [`load`] calls it; call it again after changing
    /// a `Config` by hand. Once it passes, every seconds field converts with
    /// `Duration::from_secs_f64` without panicking.
    pub fn validate(&self) -> Result<(), ConfigError> {
        not_empty("interface", self.interface.is_empty())?;
        if let Some(logfile) = &self.logfile {
            not_empty("logfile", logfile.as_os_str().is_empty())?;
        }
        not_empty("data_dir", self.data_dir.as_os_str().is_empty())?;
        not_empty("logging_path", self.logging_path.as_os_str().is_empty())?;
        at_least_one("log_rotate_size", self.log_rotate_size)?;
        at_least_one("max_logs", self.max_logs as u64)?;
        at_least_one("inbound_message_ttl", self.inbound_message_ttl)?;
        at_least_one("outbound_message_ttl", self.outbound_message_ttl)?;
        at_least_one("max_body_size", self.max_body_size as u64)?;
        positive_seconds("metric_window", self.metric_window)?;
        positive_seconds("delivery_report_hold", self.delivery_report_hold)?;
        positive_seconds("callback_timeout", self.callback_timeout)?;
        let sup = &self.supervisor;
        positive_seconds(
            "supervisor.restart_backoff_initial",
            sup.restart_backoff_initial,
        )?;
        positive_seconds("supervisor.restart_backoff_max", sup.restart_backoff_max)?;
        positive_seconds("health.stuck_after", self.health.stuck_after)?;
        let callbacks = &self.callbacks;
        at_least_one("callbacks.max_attempts", u64::from(callbacks.max_attempts))?;
        at_least_one(
            "callbacks.max_per_destination",
            callbacks.max_per_destination as u64,
        )?;
        at_least_one(
            "callbacks.max_per_channel",
            callbacks.max_per_channel as u64,
        )?;
        positive_seconds("callbacks.max_age", callbacks.max_age)?;
        positive_seconds("callbacks.retry_initial", callbacks.retry_initial)?;
        positive_seconds("callbacks.retry_max", callbacks.retry_max)?;
        if callbacks.retry_max < callbacks.retry_initial {
            return Err(invalid(
                "callbacks.retry_max",
                format!(
                    "must be at least callbacks.retry_initial ({}), got {}",
                    callbacks.retry_initial, callbacks.retry_max
                ),
            ));
        }
        if sup.restart_backoff_max < sup.restart_backoff_initial {
            return Err(invalid(
                "supervisor.restart_backoff_max",
                format!(
                    "must be at least supervisor.restart_backoff_initial ({}), got {}",
                    sup.restart_backoff_initial, sup.restart_backoff_max
                ),
            ));
        }
        self.production_urls().map(drop)
    }

    /// The Redis and RabbitMQ URLs when both are set (production backends), `None` when
    /// neither is (embedded backend); one without the other is refused.
    pub fn production_urls(&self) -> Result<Option<(&str, &str)>, ConfigError> {
        fn set(url: &Option<String>) -> Option<&str> {
            url.as_deref().filter(|u| !u.trim().is_empty())
        }
        match (set(&self.redis.url), set(&self.amqp.url)) {
            (Some(redis), Some(amqp)) => Ok(Some((redis, amqp))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(
                "amqp.url",
                "is not set but redis.url is: production needs both Redis and RabbitMQ \
                 (set amqp.url too), the embedded backend neither"
                    .to_owned(),
            )),
            (None, Some(_)) => Err(invalid(
                "redis.url",
                "is not set but amqp.url is: production needs both Redis and RabbitMQ \
                 (set redis.url too), the embedded backend neither"
                    .to_owned(),
            )),
        }
    }

    /// How many arbiter threads to start: `supervisor.arbiters`, or when that is 0 one per
    /// available CPU core but at least 2 (so one busy channel cannot starve all the others).
    pub fn arbiter_count(&self) -> usize {
        match self.supervisor.arbiters {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
            n => n,
        }
    }
}

fn invalid(key: &str, detail: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        origin: Origin::Unknown,
        detail,
    }
}

fn not_empty(key: &str, empty: bool) -> Result<(), ConfigError> {
    match empty {
        true => Err(invalid(key, "must not be empty".to_owned())),
        false => Ok(()),
    }
}

fn at_least_one(key: &str, value: u64) -> Result<(), ConfigError> {
    match value {
        0 => Err(invalid(key, "must be at least 1, got 0".to_owned())),
        _ => Ok(()),
    }
}

fn positive_seconds(key: &str, value: f64) -> Result<(), ConfigError> {
    // `try_from_secs_f64` rejects NaN, negatives and values too large for a `Duration`.
    match value > 0.0 && Duration::try_from_secs_f64(value).is_ok() {
        true => Ok(()),
        false => Err(invalid(
            key,
            format!("must be a positive number of seconds, got {value}"),
        )),
    }
}

/// The settings the command line can override; `None` leaves the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `-c FILE`: the configuration file; it must exist. `None` reads [`DEFAULT_CONFIG_FILE`]
    /// if it exists.
    pub config_file: Option<PathBuf>,
    /// `-i`: overrides [`Config::interface`].
    pub interface: Option<String>,
    /// `-p`: overrides [`Config::port`].
    pub port: Option<u16>,
    /// `-l`: overrides [`Config::logfile`].
    pub logfile: Option<PathBuf>,
    /// `--logging-path`: overrides [`Config::logging_path`].
    pub logging_path: Option<PathBuf>,
    /// `--data-dir`: overrides [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
}

impl CliOverrides {
    fn apply(&self, config: &mut Config) {
        if let Some(v) = &self.interface {
            config.interface.clone_from(v);
        }
        if let Some(v) = self.port {
            config.port = v;
        }
        if let Some(v) = &self.logfile {
            config.logfile = Some(v.clone());
        }
        if let Some(v) = &self.logging_path {
            config.logging_path.clone_from(v);
        }
        if let Some(v) = &self.data_dir {
            config.data_dir.clone_from(v);
        }
    }

    /// The flag that set `key`, if any.
    fn flag_for(&self, key: &str) -> Option<&'static str> {
        let (set, flag) = match key {
            "interface" => (self.interface.is_some(), "--interface"),
            "port" => (self.port.is_some(), "--port"),
            "logfile" => (self.logfile.is_some(), "--logfile"),
            "logging_path" => (self.logging_path.is_some(), "--logging-path"),
            "data_dir" => (self.data_dir.is_some(), "--data-dir"),
            _ => (false, ""),
        };
        set.then_some(flag)
    }
}

/// Where a configuration value came from, shown in [`ConfigError`] messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Not known (e.g. [`Config::validate`] called directly).
    Unknown,
    /// Nobody set it: the built-in default.
    Default,
    /// The configuration file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag.
    Cli(&'static str),
}

impl fmt::Display for Origin {
    /// Renders as a suffix: ` (in junebug.toml)`, ` (from JUNEBUG_PORT)`, or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Unknown => Ok(()),
            Origin::Default => write!(f, " (default)"),
            Origin::File(path) => write!(f, " (in {})", one_line(&path.display().to_string())),
            Origin::Env(var) => write!(f, " (from {})", one_line(var)),
            Origin::Cli(flag) => write!(f, " (from {flag})"),
        }
    }
}

/// Why the configuration could not be loaded. `Display` is always one line, meant for
/// `junebug: <error>` on stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read (missing, a directory, unreadable, not UTF-8).
    #[error("cannot read configuration file {}: {source}", one_line(&path.display().to_string()))]
    ReadFile {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("invalid configuration: syntax error in {}: {detail}", one_line(&path.display().to_string()))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, on one line.
        detail: String,
    },
    /// A key that no option has (a typo, or an option of the Python Junebug we dropped).
    #[error("invalid configuration: unknown key '{key}'{origin}")]
    UnknownKey {
        /// Dotted path of the key (`supervisor.arbitres`).
        key: String,
        /// Where it was set.
        origin: Origin,
    },
    /// A known key with a value of the wrong type, out of range, or breaking a rule.
    #[error("invalid configuration: key '{key}'{origin}: {detail}")]
    InvalidValue {
        /// Dotted path of the key (`supervisor.arbiters`).
        key: String,
        /// Where the value was set.
        origin: Origin,
        /// What is wrong, on one line.
        detail: String,
    },
    /// A `JUNEBUG_*` environment variable whose value is not UTF-8.
    #[error("invalid configuration: environment variable {var} is not valid UTF-8")]
    NonUnicodeEnv {
        /// The variable's name.
        var: String,
    },
    /// Anything else the `config` crate reports, on one line.
    #[error("invalid configuration: {detail}")]
    Other {
        /// The message.
        detail: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }
}

/// Loads the configuration from `cli`, the configuration file and the process environment.
///
/// Precedence: defaults < file < `JUNEBUG_*` variables < `cli`. The file is `cli.config_file`
/// (which must exist), else `./junebug.toml` if it exists. A `JUNEBUG_*` variable whose value
/// is not UTF-8 is an error.
pub fn load(cli: &CliOverrides) -> Result<Config, ConfigError> {
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        // A name that is not UTF-8 cannot be one of ours.
        let Some(name) = name.to_str() else { continue };
        if env_key(name).is_none() {
            continue;
        }
        match value.into_string() {
            Ok(value) => env.push((name.to_owned(), value)),
            Err(_) => {
                return Err(ConfigError::NonUnicodeEnv {
                    var: name.to_owned(),
                })
            }
        }
    }
    load_from(cli, env)
}

/// [`load`] with an explicit environment instead of the process's (for tests). Variables
/// without the `JUNEBUG_` prefix and empty values are ignored.
pub fn load_from<I>(cli: &CliOverrides, env: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: Map<String, String> = env
        .into_iter()
        .filter(|(name, value)| env_key(name).is_some() && !value.is_empty())
        .collect();
    let file = match &cli.config_file {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let sources = Sources {
        file: file.as_deref(),
        env: &env,
        cli,
    };

    let mut builder = ::config::Config::builder();
    if let Some(path) = &file {
        // Read it ourselves: the error names the path as given, and `config::File::from(path)`
        // would quietly try other extensions (`-c junebug` reading `junebug.toml`). The file's
        // values then have no origin, which is how `Sources::origin_of` recognises them.
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.clone(),
            source,
        })?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            // Set explicitly: it would default to the nested separator (`JUNEBUG__PORT`).
            .prefix_separator("_")
            .separator(ENV_NESTED_SEPARATOR)
            .source(Some(env.clone())),
    );
    let merged = builder.build().map_err(|e| sources.convert(e, None))?;

    let tree = merged.collect().map_err(|e| sources.convert(e, None))?;
    let schema = serde_json::to_value(Config::default()).map_err(|e| ConfigError::Other {
        detail: one_line(&e.to_string()),
    })?;
    if let serde_json::Value::Object(schema) = &schema {
        sources.check_table(&tree, schema, "")?;
    }

    let mut config: Config = merged
        .try_deserialize()
        .map_err(|e| sources.convert(e, Some(&tree)))?;
    cli.apply(&mut config);
    config.validate().map_err(|e| sources.locate(e, &tree))?;
    Ok(config)
}

/// The configuration key a `JUNEBUG_*` variable sets, as the `config` crate maps it
/// (`JUNEBUG_SUPERVISOR__ARBITERS` → `supervisor.arbiters`); `None` if it is not ours.
fn env_key(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let prefix = format!("{}_", ENV_PREFIX.to_lowercase());
    let rest = lower.strip_prefix(&prefix)?;
    (!rest.is_empty()).then(|| rest.replace(ENV_NESTED_SEPARATOR, "."))
}

/// What fed one [`load_from`] call, to say where a bad value came from.
struct Sources<'a> {
    file: Option<&'a Path>,
    env: &'a Map<String, String>,
    cli: &'a CliOverrides,
}

impl Sources<'_> {
    /// Where the value at dotted `key` came from, given the merged `tree`.
    fn origin(&self, key: &str, tree: &Map<String, Value>) -> Origin {
        if let Some(flag) = self.cli.flag_for(key) {
            return Origin::Cli(flag);
        }
        match lookup(tree, key) {
            Some(value) => self.origin_of(key, value),
            None => Origin::Default,
        }
    }

    fn origin_of(&self, key: &str, value: &Value) -> Origin {
        if value.origin() == Some(CRATE_ENV_ORIGIN) {
            let mut names: Vec<&String> = self
                .env
                .keys()
                .filter(|name| env_key(name).as_deref() == Some(key))
                .collect();
            names.sort();
            return match names.first() {
                Some(name) => Origin::Env((*name).clone()),
                None => Origin::Env(env_var_name(key)),
            };
        }
        match self.file {
            Some(path) if value.origin().is_none() => Origin::File(path.to_owned()),
            _ => Origin::Unknown,
        }
    }

    /// Rejects keys no option has, and values whose kind cannot be the option's type.
    ///
    /// `schema` is `Config::default()` as JSON, so the known keys come from the type itself.
    /// This catches what the `config` crate would otherwise accept silently (an unknown key
    /// coming from the environment, `port = 8080.5` rounded, `"yes"` as an integer).
    fn check_table(
        &self,
        table: &Map<String, Value>,
        schema: &serde_json::Map<String, serde_json::Value>,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        for name in names {
            let value = &table[name];
            let key = match prefix {
                "" => name.clone(),
                _ => format!("{prefix}.{name}"),
            };
            let Some(expected) = schema.get(name) else {
                let (key, leaf) = first_leaf(key, value);
                return Err(ConfigError::UnknownKey {
                    origin: self.origin_of(&key, leaf),
                    key,
                });
            };
            if let (serde_json::Value::Object(schema), ValueKind::Table(table)) =
                (expected, &value.kind)
            {
                self.check_table(table, schema, &key)?;
            } else if let Some(wanted) = kind_mismatch(expected, &value.kind) {
                return Err(ConfigError::InvalidValue {
                    origin: self.origin_of(&key, value),
                    detail: format!("invalid type: {}, expected {wanted}", describe(&value.kind)),
                    key,
                });
            }
        }
        Ok(())
    }

    /// Turns a `config` crate error into ours, with the key's origin found in `tree` if given.
    fn convert(
        &self,
        error: ::config::ConfigError,
        tree: Option<&Map<String, Value>>,
    ) -> ConfigError {
        use ::config::ConfigError as E;
        match error {
            E::FileParse { cause, .. } => ConfigError::Syntax {
                path: self.file.map(Path::to_owned).unwrap_or_default(),
                detail: one_line(&cause.to_string()),
            },
            E::Type {
                key: Some(key),
                unexpected,
                expected,
                origin,
            } => {
                let detail = format!("invalid value: {unexpected}, expected {expected}");
                self.invalid_value(key, origin, detail, tree)
            }
            E::At {
                key: Some(key),
                error,
                origin,
            } => self.invalid_value(key, origin, error.to_string(), tree),
            other => ConfigError::Other {
                detail: one_line(&other.to_string()),
            },
        }
    }

    fn invalid_value(
        &self,
        key: String,
        origin: Option<String>,
        detail: String,
        tree: Option<&Map<String, Value>>,
    ) -> ConfigError {
        // The merged tree knows the origin better than the error (which often has none).
        let origin = match (tree.and_then(|tree| lookup(tree, &key)), origin.as_deref()) {
            (Some(value), _) => self.origin_of(&key, value),
            (None, Some(CRATE_ENV_ORIGIN)) => Origin::Env(env_var_name(&key)),
            (None, Some(other)) => Origin::File(PathBuf::from(other)),
            (None, None) => Origin::Unknown,
        };
        ConfigError::InvalidValue {
            key,
            origin,
            detail: one_line(&detail),
        }
    }

    /// Adds the origin to an error from [`Config::validate`].
    fn locate(&self, error: ConfigError, tree: &Map<String, Value>) -> ConfigError {
        match error {
            ConfigError::InvalidValue {
                key,
                origin: Origin::Unknown,
                detail,
            } => ConfigError::InvalidValue {
                origin: self.origin(&key, tree),
                key,
                detail,
            },
            other => other,
        }
    }
}

/// The conventional variable name for a dotted key (`supervisor.arbiters` →
/// `JUNEBUG_SUPERVISOR__ARBITERS`).
fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}_{}",
        key.replace('.', ENV_NESTED_SEPARATOR).to_uppercase()
    )
}

fn lookup<'t>(tree: &'t Map<String, Value>, key: &str) -> Option<&'t Value> {
    let mut parts = key.split('.');
    let mut value = tree.get(parts.next()?)?;
    for part in parts {
        match &value.kind {
            ValueKind::Table(table) => value = table.get(part)?,
            _ => return None,
        }
    }
    Some(value)
}

/// For an unknown table, its first leaf: `[redis] host = …` is reported as `redis.host`, whose
/// origin is known (tables made from environment variables have none of their own).
fn first_leaf(key: String, value: &Value) -> (String, &Value) {
    if let ValueKind::Table(table) = &value.kind {
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        if let Some(name) = names.first() {
            return first_leaf(format!("{key}.{name}"), &table[*name]);
        }
    }
    (key, value)
}

/// What the option wants when `kind` cannot be it; `None` when it may be (the deserializer
/// then checks ranges and enum names). `expected` is the option's default as JSON.
fn kind_mismatch(expected: &serde_json::Value, kind: &ValueKind) -> Option<&'static str> {
    use serde_json::Value as J;
    use ValueKind as K;
    let integer = |kind: &ValueKind| match kind {
        K::I64(_) | K::I128(_) | K::U64(_) | K::U128(_) => true,
        K::String(s) => s.parse::<i128>().is_ok(),
        _ => false,
    };
    let ok = match expected {
        J::Null => true, // an unset Option: its type is not visible here, serde checks it
        J::Bool(_) => match kind {
            K::Boolean(_) => true,
            K::String(s) => s.to_lowercase().parse::<bool>().is_ok(),
            _ => false,
        },
        J::Number(n) if n.is_f64() => match kind {
            K::Float(_) => true,
            K::String(s) => s.parse::<f64>().is_ok(),
            other => integer(other),
        },
        J::Number(_) => integer(kind),
        J::String(_) => matches!(kind, K::String(_)),
        J::Object(_) => matches!(kind, K::Table(_)),
        J::Array(_) => matches!(kind, K::Array(_)),
    };
    if ok {
        return None;
    }
    Some(match expected {
        J::Bool(_) => "a boolean (true or false)",
        J::Number(n) if n.is_f64() => "a number",
        J::Number(_) => "an integer",
        J::String(_) => "a string",
        J::Object(_) => "a table",
        _ => "an array",
    })
}

fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing".to_owned(),
        ValueKind::Boolean(b) => format!("boolean `{b}`"),
        ValueKind::I64(n) => format!("integer `{n}`"),
        ValueKind::I128(n) => format!("integer `{n}`"),
        ValueKind::U64(n) => format!("integer `{n}`"),
        ValueKind::U128(n) => format!("integer `{n}`"),
        ValueKind::Float(n) => format!("floating point `{n}`"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".to_owned(),
        ValueKind::Array(_) => "an array".to_owned(),
    }
}

/// Joins a multi-line message (TOML parser errors draw the offending line) into one line,
/// dropping the source excerpt (`  |`, `1 | port = abc`, `  |        ^^^`).
fn one_line(text: &str) -> String {
    let excerpt = |line: &str| {
        let t = line.trim_start();
        let t = t
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        t.starts_with('|')
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !excerpt(line))
        .collect::<Vec<_>>()
        .join(": ")
}
