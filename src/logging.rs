//! The process log: one slog root logger, asynchronous, to stderr or `logfile`.
//!
//! Pieces:
//! - [`init`]: builds the drain (slog-term text or slog-json lines, behind slog-async), filters
//!   it at `log_level`, and makes it the slog-scope global logger that slog-stdlog forwards the
//!   `log` facade to, so actix-web, reqwest and friends land in the same place.
//! - [`LoggingGuard`]: keep it alive for the life of the process; dropping it flushes.
//!
//! Library records (module not under `junebug`) below `warning` are dropped unless `log_level`
//! is `debug` or `trace`: at `info` they are mostly connection chatter.
use std::fs::OpenOptions;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use slog::{o, Drain, FnValue, Level, Logger, PushFnValue, Record};

use crate::config::{Config, LogFormat, LogLevel};

/// Records queued between the loggers and the writer thread; beyond that they are dropped and
/// counted (slog-async's default strategy), so logging never blocks a channel.
const QUEUE_SIZE: usize = 4096;

/// Why the process log could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// `logfile` could not be opened for appending.
    #[error("cannot open log file {}: {source}", path.display())]
    OpenLogFile {
        /// The configured `logfile`.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Keeps the process log running; dropping it flushes queued records and stops the writer.
///
/// Loggers cloned from [`LoggingGuard::logger`] stay usable afterwards: their records are
/// discarded, never a panic.
pub struct LoggingGuard {
    logger: Logger,
    /// `Option` so that `drop` can cancel it: slog-scope's own reset installs a logger that
    /// panics on the next record, and a late library thread may still log.
    scope: Option<slog_scope::GlobalLoggerGuard>,
    /// Declared last: dropped after the global logger is swapped out, it flushes and joins.
    _flush: slog_async::AsyncGuard,
}

impl LoggingGuard {
    /// The root logger; clone it into components and add context with `new(o!(…))`.
    pub fn logger(&self) -> Logger {
        self.logger.clone()
    }
}

impl Drop for LoggingGuard {
    fn drop(&mut self) {
        slog_scope::set_global_logger(Logger::root(slog::Discard, o!())).cancel_reset();
        if let Some(scope) = self.scope.take() {
            scope.cancel_reset();
        }
    }
}

/// Sets up the process log described by `config` (`logfile`, `log_format`, `log_level`).
///
/// Call once, early in `main`. A second call (tests) replaces the first's global logger.
pub fn init(config: &Config) -> Result<LoggingGuard, LoggingError> {
    let writer: Box<dyn Write + Send> = match &config.logfile {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError::OpenLogFile {
                    path: path.clone(),
                    source,
                })?,
        ),
        None => Box::new(io::stderr()),
    };
    let text = match config.log_format {
        LogFormat::Text => true,
        LogFormat::Json => false,
        LogFormat::Auto => config.logfile.is_none() && io::stderr().is_terminal(),
    };
    // Write errors (disk full) are ignored rather than panicking the writer thread.
    let format: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = match (text, &config.logfile) {
        (true, None) => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            Box::new(slog_term::FullFormat::new(decorator).build().ignore_res())
        }
        (true, Some(_)) => {
            let decorator = slog_term::PlainDecorator::new(BufWriter::new(writer));
            Box::new(slog_term::FullFormat::new(decorator).build().ignore_res())
        }
        (false, _) => Box::new(json_drain(BufWriter::new(writer)).ignore_res()),
    };
    let (drain, flush) = slog_async::Async::new(format)
        .chan_size(QUEUE_SIZE)
        .build_with_guard();

    let threshold = slog_level(config.log_level);
    let verbose = matches!(config.log_level, LogLevel::Debug | LogLevel::Trace);
    let drain = drain
        .filter(move |record: &Record| {
            record.level().is_at_least(threshold)
                && (verbose
                    || record.module().starts_with("junebug")
                    || record.level().is_at_least(Level::Warning))
        })
        .ignore_res();
    let logger = Logger::root(drain, o!());

    let scope = slog_scope::set_global_logger(logger.clone());
    // Fails only if a `log` logger is already installed: by an earlier `init` (tests), in which
    // case it already forwards to slog-scope's global logger, just replaced above.
    let _ = slog_stdlog::init_with_level(log::Level::Trace);
    log::set_max_level(log_level_filter(config.log_level));

    Ok(LoggingGuard {
        logger,
        scope: Some(scope),
        _flush: flush,
    })
}

/// One JSON object per line: `ts` (RFC 3339, UTC, microseconds), `level` (the `log_level`
/// names), `msg`, `module`, then the record's and the loggers' key-values.
fn json_drain<W: Write + Send + 'static>(writer: W) -> slog_json::Json<W> {
    slog_json::Json::new(writer)
        .set_newlines(true)
        // One write per record through the BufWriter, and nothing left behind on a crash.
        .set_flush(true)
        .add_key_value(o!(
            "ts" => FnValue(|_: &Record| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            }),
            "level" => FnValue(|record: &Record| level_name(record.level())),
            "msg" => PushFnValue(|record: &Record, ser| ser.emit(record.msg())),
            "module" => FnValue(|record: &Record| record.module()),
        ))
        .build()
}

fn slog_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Trace => Level::Trace,
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warning => Level::Warning,
        LogLevel::Error => Level::Error,
        LogLevel::Critical => Level::Critical,
    }
}

fn log_level_filter(level: LogLevel) -> log::LevelFilter {
    match level {
        LogLevel::Trace => log::LevelFilter::Trace,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warning => log::LevelFilter::Warn,
        LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
    }
}

/// The same names as `log_level` in the configuration.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warning => "warning",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library_log(module: &'static str, level: log::Level, text: &str) {
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target(module)
                .module_path_static(Some(module))
                .build(),
        );
    }

    /// JSON lines carry ts, level, msg and key-values; library logs arrive through the `log`
    /// bridge, chatter below warning only at debug; dropping the guard flushes.
    #[test]
    fn json_log_file_gets_own_and_library_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("junebug.log");
        let config = Config {
            logfile: Some(path.clone()),
            log_format: LogFormat::Auto,
            ..Config::default()
        };
        let guard = init(&config).expect("logging starts");
        let logger = guard.logger();
        slog::info!(logger, "Channel started"; "channel_id" => "abc");
        slog::debug!(logger, "Not shown at info");
        library_log("hyper::proto", log::Level::Info, "library chatter");
        library_log("hyper::proto", log::Level::Warn, "library warning");
        drop(guard);
        slog::info!(logger, "After the guard: discarded, no panic");
        library_log("hyper::proto", log::Level::Error, "late library line");

        let text = std::fs::read_to_string(&path).expect("log file");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["msg"], "Channel started");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(lines[0]["channel_id"], "abc");
        assert!(lines[0]["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')));
        assert_eq!(lines[1]["msg"], "library warning");
        assert_eq!(lines[1]["level"], "warning");
        assert_eq!(lines[1]["module"], "hyper::proto");

        let config = Config {
            log_level: LogLevel::Debug,
            log_format: LogFormat::Text,
            ..config
        };
        let guard = init(&config).expect("logging starts again");
        library_log("hyper::proto", log::Level::Debug, "library debug");
        drop(guard);
        let text = std::fs::read_to_string(&path).expect("log file");
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.contains("DEBG") && last.contains("library debug"),
            "{last}"
        );
    }

    /// An unwritable logfile is reported with its path.
    #[test]
    fn unopenable_log_file_names_the_path() {
        let config = Config {
            logfile: Some(PathBuf::from("/nonexistent-dir/junebug.log")),
            ..Config::default()
        };
        let error = init(&config).err().expect("fails").to_string();
        assert!(error.contains("/nonexistent-dir/junebug.log"), "{error}");
    }
}
