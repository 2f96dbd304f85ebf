//! `junebug`: the daemon's command line. It only wires: flags → [`config::load`] →
//! [`logging::init`] → [`server::run`] on the actix System.
//!
//! Exit codes: 0 after a clean stop, 1 if the daemon could not start or failed, 2 for a bad
//! command line or configuration.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use junebug::{config, logging, server};

/// A daemon with a RESTful HTTP API that manages text-messaging channels.
///
/// Settings come from defaults, then the configuration file, then JUNEBUG_* environment
/// variables (JUNEBUG_PORT, JUNEBUG_SUPERVISOR__ARBITERS, ...), then these flags.
#[derive(Debug, Parser)]
#[command(name = "junebug", version)]
struct Cli {
    /// Configuration file (TOML) [default: ./junebug.toml if it exists]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address the HTTP API binds to [config: interface]
    #[arg(short = 'i', long, value_name = "INTERFACE")]
    interface: Option<String>,
    /// Port of the HTTP API [config: port]
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,
    /// Process log file instead of stderr [config: logfile]
    #[arg(short = 'l', long, value_name = "LOGFILE")]
    logfile: Option<PathBuf>,
    /// Directory of the per-channel log files [config: logging_path]
    #[arg(long, value_name = "DIR")]
    logging_path: Option<PathBuf>,
    /// Directory of the embedded backend's data [config: data_dir]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Exits with code 2 and clap's usage message on a bad command line.
    let cli = Cli::parse();
    let overrides = config::CliOverrides {
        config_file: cli.config,
        interface: cli.interface,
        port: cli.port,
        logfile: cli.logfile,
        logging_path: cli.logging_path,
        data_dir: cli.data_dir,
    };
    let config = match config::load(&overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("junebug: {error}");
            return ExitCode::from(2);
        }
    };
    let guard = match logging::init(&config) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("junebug: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = actix_rt::System::new().block_on(server::run(config, guard.logger()));
    // Flush the process log before the last word on stderr.
    drop(guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("junebug: {error}");
            ExitCode::FAILURE
        }
    }
}
