//! Send benchmark: how fast the API accepts messages, and what one accepted send costs the
//! daemon in CPU.
//!
//! Starts the release binary, creates a telnet channel limited to one message an hour (so
//! accepted messages stay queued and only the accept path is measured), then POSTs N sends
//! from C concurrent clients and prints throughput, latency and the daemon's CPU per send.
//!
//! ```text
//! cargo build --release && cargo run --release --example send_bench -- [N] [C]
//! ```
//! (defaults: N = 5000, C = 16.)
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{cpu_seconds, rss_kib, start};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(5000, |a| a.parse().expect("N"));
    let concurrency: usize = args.next().map_or(16, |a| a.parse().expect("C"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut daemon = start(dir.path());
    let pid = daemon.child.id();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let channel = json!({"type": "telnet", "rate_limit_count": 1, "rate_limit_window": 3600,
                         "mo_url": "http://127.0.0.1:9/", "config": {"twisted_endpoint": "tcp:0"}});
    let created: serde_json::Value = runtime.block_on(async {
        let resp = client
            .post(format!("{}/channels/", daemon.url))
            .json(&channel)
            .send()
            .await
            .expect("create");
        resp.json().await.expect("json")
    });
    let url = format!(
        "{}/channels/{}/messages/",
        daemon.url,
        created["result"]["id"].as_str().expect("id")
    );

    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let per_client = n / concurrency;
        let tasks = (0..concurrency).map(|c| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let mut own = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let body = json!({"to": "+27831234567", "content": format!("message {c}-{i}")});
                    let t = Instant::now();
                    let resp = client.post(&url).json(&body).send().await.expect("send");
                    assert_eq!(resp.status().as_u16(), 201);
                    own.push(t.elapsed());
                }
                own
            }
        });
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    let wall = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    latencies.sort();
    let sent = latencies.len();
    let pct = |p: f64| latencies[((sent as f64 * p) as usize).min(sent - 1)];
    println!("{sent} sends, {concurrency} concurrent clients, in {wall:.2?}");
    println!(
        "throughput: {:.0} sends/s",
        sent as f64 / wall.as_secs_f64()
    );
    println!("latency: p50 {:.2?}, p99 {:.2?}", pct(0.50), pct(0.99));
    println!(
        "daemon CPU per accepted send: {:.0} µs",
        cpu / sent as f64 * 1e6
    );
    println!(
        "daemon RSS with {sent} messages queued: {} KiB",
        rss_kib(pid)
    );
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}
