//! Scale: a thousand channels run at once, and all come back together after a restart.
mod common;

use std::collections::HashSet;

use common::{Api, Daemon};
use serde_json::json;

const CHANNELS: usize = 1000;

/// Socket inodes listed in a /proc/net/tcp* table in the LISTEN state.
fn listening_inodes() -> HashSet<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    (fields.get(3) == Some(&"0A")).then(|| fields.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How many listening TCP sockets process `pid` holds.
fn listeners_of(pid: u32) -> usize {
    let listening = listening_inodes();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| {
                    let t = target.to_string_lossy().into_owned();
                    Some(t.strip_prefix("socket:[")?.trim_end_matches(']').to_owned())
                })
                .filter(|inode| listening.contains(inode))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until `pid` listens on `n` sockets (the API plus one per channel).
async fn wait_for_listeners(pid: u32, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while listeners_of(pid) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} listening",
            listeners_of(pid)
        );
        // Sockets opening is not an event we can subscribe to; /proc is polled.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// 1,000 telnet channels listen at once, and again after the daemon is killed and restarted.
#[actix_rt::test]
async fn a_thousand_channels_run_and_restart_together() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let api = Api::new(&daemon.url);
    let body =
        json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:port=0:interface=127.0.0.1"}});
    for _ in 0..CHANNELS {
        api.create_channel(body.clone()).await;
    }
    wait_for_listeners(daemon.pid(), CHANNELS + 1).await;

    daemon.kill9();
    let daemon = Daemon::start(dir.path());
    wait_for_listeners(daemon.pid(), CHANNELS + 1).await;
    let (_, list) = Api::new(&daemon.url).get("/channels/").await;
    assert_eq!(list["result"].as_array().unwrap().len(), CHANNELS);
}
