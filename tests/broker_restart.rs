//! Nothing accepted is lost when RabbitMQ restarts in the middle of a send: channels pause,
//! reconnect with backoff and resume. (Its own test binary: it restarts the shared broker,
//! and `cargo test` runs test binaries one at a time.)
#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Api, Backend, Deployment, TelnetClient};
use serde_json::json;

const MESSAGES: usize = 5000;
const SENDERS: usize = 8;

/// Runs `rabbitmqctl` with `args`, panicking if it fails.
fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// A 5,000-message send through a telnet channel survives a RabbitMQ restart half-way: every
/// accepted message reaches the client at least once (duplicates are told apart by content).
#[actix_rt::test]
async fn rabbitmq_restart_mid_send_loses_nothing() {
    let deployment = Deployment::new(Backend::Production);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let port = common::free_port();
    let id = api
        .create_channel(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let to = client.local_addr.clone();

    // Senders retry a send until it is accepted, as a client facing a 503 would.
    let accepted = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (api, id, to, next, accepted) = (
                api.clone(),
                id.clone(),
                to.clone(),
                next.clone(),
                accepted.clone(),
            );
            actix_rt::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= MESSAGES {
                        return;
                    }
                    let body = json!({"to": to, "content": format!("m{n}")});
                    loop {
                        let (status, _) = api
                            .post(&format!("/channels/{id}/messages/"), body.clone())
                            .await;
                        if status == 201 {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        assert_eq!(status, 503, "only an unavailable backend may refuse a send");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    // Read what arrives; restart the broker once half the messages are accepted.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while seen.len() < MESSAGES {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {MESSAGES} arrived",
            seen.len()
        );
        if !restarted && accepted.load(Ordering::SeqCst) >= MESSAGES / 2 {
            restarted = true;
            tokio::task::spawn_blocking(|| {
                rabbitmqctl(&["stop_app"]);
                rabbitmqctl(&["start_app"]);
            });
        }
        let line = client.read_line_within(Duration::from_secs(60)).await;
        *seen.entry(line).or_default() += 1;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(restarted);
    assert_eq!(accepted.load(Ordering::SeqCst), MESSAGES);
    for n in 0..MESSAGES {
        assert!(seen.contains_key(&format!("m{n}")), "m{n} was lost");
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    println!("{MESSAGES} messages, {duplicates} delivered twice (at-least-once)");
}
