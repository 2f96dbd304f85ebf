//! What the measuring examples share: starting the release binary and reading /proc; the test
//! SMSC ([`smsc`]); a production deployment of the benchmark's own ([`production`]); latency
//! percentiles.
#![allow(dead_code)] // each example uses a different part
#[path = "../../tests/common/redis_keys.rs"]
mod redis_keys;

pub mod production;
pub mod smsc;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running `junebug` process.
pub struct Daemon {
    pub child: Child,
    pub url: String,
}

/// The binary to measure: `$SCALE_JUNEBUG_BIN` or target/release/junebug.
pub fn binary() -> String {
    std::env::var("SCALE_JUNEBUG_BIN").unwrap_or_else(|_| "target/release/junebug".into())
}

/// Starts the binary on `data_dir`, API on a free port of 127.0.0.1.
pub fn start(data_dir: &std::path::Path) -> Daemon {
    start_with(data_dir, |_| {})
}

/// [`start`], with `configure` adding arguments or environment to the command first.
pub fn start_with(data_dir: &std::path::Path, configure: impl FnOnce(&mut Command)) -> Daemon {
    let mut command = Command::new(binary());
    command
        .args(["-i", "127.0.0.1", "-p", "0", "--data-dir"])
        .arg(data_dir)
        .env("JUNEBUG_LOG_FORMAT", "json")
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command
        .spawn()
        .expect("cannot start junebug (build it with `cargo build --release` first)");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("junebug exited").expect("read");
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["msg"] == "Listening" {
            break entry["url"].as_str().unwrap_or_default().to_owned();
        }
    };
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Daemon { child, url }
}

/// Resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory `pid` has had since it started (`VmHWM`), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) `pid` has used, seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `p`-quantile (0.5, 0.99 …) of sorted `latencies`.
pub fn quantile(latencies: &[Duration], p: f64) -> Option<Duration> {
    let last = latencies.len().checked_sub(1)?;
    Some(latencies[((latencies.len() as f64 * p) as usize).min(last)])
}

/// "p50 …, p99 …, max …" of sorted `latencies`, in ms.
pub fn percentiles(latencies: &[Duration]) -> Option<String> {
    let max = *latencies.last()?;
    let pct = |p: f64| quantile(latencies, p).unwrap_or_default();
    Some(format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(max)
    ))
}
