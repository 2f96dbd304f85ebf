//! Scale check: N telnet channels at once, and all of them back after a daemon restart.
//!
//! Starts the `junebug` binary on a temp data dir, creates N telnet channels on ports
//! BASE..BASE+N, waits until every one listens, restarts the daemon and waits again, and
//! prints the daemon's resident memory (VmRSS from /proc) idle with 1 and with N channels.
//!
//! ```text
//! cargo build --release && cargo run --release --example scale -- [N] [BASE]
//! ```
//! (defaults: N = 1000, BASE = 30000; the binary is target/release/junebug, or
//! `$SCALE_JUNEBUG_BIN`).
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{cpu_seconds, rss_kib, start};

/// How many TCP sockets listen on ports in `base..base + n` (from /proc/net/tcp).
fn listening(base: u16, n: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            fields.get(3) == Some(&"0A") && port.is_some_and(|p| p >= base && p < base + n)
        })
        .count()
}

fn wait_listening(base: u16, n: u16) -> Duration {
    let started = Instant::now();
    while listening(base, n) < usize::from(n) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "channels did not all start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u16 = args.next().map_or(1000, |a| a.parse().expect("N"));
    let base: u16 = args.next().map_or(30000, |a| a.parse().expect("BASE"));
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();

    let mut daemon = start(dir.path());
    let pid = daemon.child.id();
    std::thread::sleep(Duration::from_millis(500));
    println!("idle, 0 channels:      RSS {:>7} KiB", rss_kib(pid));
    let created = Instant::now();
    for i in 0..n {
        let body = json!({"type": "telnet", "config":
            {"twisted_endpoint": format!("tcp:port={}:interface=127.0.0.1", base + i)}});
        let url = format!("{}/channels/", daemon.url);
        let status = runtime
            .block_on(client.post(&url).json(&body).send())
            .expect("create")
            .status();
        assert_eq!(status.as_u16(), 201);
        if i == 0 {
            wait_listening(base, 1);
            std::thread::sleep(Duration::from_millis(500));
            println!("idle, 1 channel:       RSS {:>7} KiB", rss_kib(pid));
        }
    }
    wait_listening(base, n);
    println!(
        "created {n} channels in {:?} ({:.2} s of daemon CPU)",
        created.elapsed(),
        cpu_seconds(pid)
    );
    std::thread::sleep(Duration::from_millis(500));
    println!("idle, {n} channels:  RSS {:>7} KiB", rss_kib(pid));

    // SIGTERM: a clean stop, then every channel must come back by itself.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = daemon.child.wait();
    let restarted = Instant::now();
    daemon = start(dir.path());
    let pid = daemon.child.id();
    let up = wait_listening(base, n);
    println!(
        "restart: all {n} channels listening again {:?} after exec ({:?} after the API was up)",
        restarted.elapsed(),
        up
    );
    std::thread::sleep(Duration::from_millis(500));
    println!("after restart, {n} channels: RSS {:>7} KiB", rss_kib(pid));
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}
