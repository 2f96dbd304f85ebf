//! Outbound control: queue length per lane, cancelling what waits, expiry, per-channel rate
//! limits that never block other channels, and realtime before bulk.
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{metrics, Api, CallbackServer, Deployment, TelnetClient};
use serde_json::{json, Value};

async fn send(api: &Api, id: &str, body: Value) -> String {
    let (status, env) = api.post(&format!("/channels/{id}/messages/"), body).await;
    assert_eq!(status, 201, "{env}");
    env["result"]["message_id"].as_str().unwrap().to_owned()
}

fn error_message(env: &Value) -> &str {
    env["result"]["errors"][0]["message"].as_str().unwrap()
}

both_backends! {
/// Queue length per lane, cancelling one lane then all, each cancel reported as an event.
async fn queue_length_and_cancel(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    // The channel cannot listen (the port is taken), so nothing leaves its queue.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let id = api
        .create_channel(json!({"type": "telnet",
                               "config": {"twisted_endpoint": format!("tcp:port={port}:interface=127.0.0.1")}}))
        .await;
    let events = format!("{}/events", app.url);
    let mut bulk = Vec::new();
    for n in 0..3 {
        bulk.push(send(&api, &id, json!({"to": "a", "content": format!("b{n}"), "event_url": events})).await);
    }
    for (n, priority) in [json!("realtime"), json!(5)].iter().enumerate() {
        send(&api, &id, json!({"to": "a", "content": format!("r{n}"), "priority": priority,
                               "event_url": events})).await;
    }
    let (status, env) = api.get(&format!("/channels/{id}/queue")).await;
    assert_eq!((status, &env["description"]), (200, &json!("queue length")));
    assert_eq!(env["result"], json!({"waiting": {"realtime": 2, "bulk": 3, "total": 5}, "in_flight": 0}));

    let (status, env) = api.call("DELETE", &format!("/channels/{id}/queue?priority=bulk"), None).await;
    assert_eq!((status, &env["result"]), (200, &json!({"cancelled": 3})));
    let mut cancelled = Vec::new();
    for _ in 0..3 {
        let event = app.next().await.body;
        assert_eq!(event["event_type"], "rejected");
        assert_eq!(event["event_details"], json!({"reason": "cancelled"}));
        cancelled.push(event["message_id"].as_str().unwrap().to_owned());
    }
    cancelled.sort();
    bulk.sort();
    assert_eq!(cancelled, bulk);
    let (_, env) = api.get(&format!("/channels/{id}/messages/{}", bulk[0])).await;
    assert_eq!(env["result"]["last_event_type"], "rejected");
    let (_, env) = api.get(&format!("/channels/{id}/queue")).await;
    assert_eq!(env["result"]["waiting"], json!({"realtime": 2, "bulk": 0, "total": 2}));

    let (_, env) = api.call("DELETE", &format!("/channels/{id}/queue"), None).await;
    assert_eq!(env["result"], json!({"cancelled": 2}));
    let (_, env) = api.get(&format!("/channels/{id}/queue")).await;
    assert_eq!(env["result"]["waiting"]["total"], 0);

    let (status, env) = api.call("DELETE", &format!("/channels/{id}/queue?priority=urgent"), None).await;
    assert_eq!(status, 400);
    assert!(error_message(&env).contains("priority"));
    let (status, _) = api.get("/channels/00000000-0000-4000-8000-000000000000/queue").await;
    assert_eq!(status, 404);
    drop(taken);
}

/// A message still queued when it expires is rejected with reason `expired`, never sent.
async fn expired_messages_are_rejected_not_sent(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    // One message an hour: after the first, everything waits in the queue.
    let id = api
        .create_channel(json!({"type": "telnet", "rate_limit_count": 1, "rate_limit_window": 3600,
                               "message_ttl": 1,
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let events = format!("{}/events", app.url);
    let to = client.local_addr.clone();
    send(&api, &id, json!({"to": to, "content": "first", "event_url": events})).await;
    assert_eq!(client.read_line().await, "first");
    assert_eq!(app.next_on("/events").await.body["event_type"], "submitted");

    let started = Instant::now();
    let by_ttl = send(&api, &id, json!({"to": to, "content": "late", "ttl": 1, "event_url": events})).await;
    let event = app.next_on("/events").await.body;
    assert_eq!((&event["message_id"], &event["event_type"]), (&json!(by_ttl), &json!("rejected")));
    assert_eq!(event["event_details"], json!({"reason": "expired"}));
    assert!(started.elapsed() >= Duration::from_millis(900), "rejected before it expired");

    let past = send(&api, &id, json!({"to": to, "content": "stale", "event_url": events,
                                      "expires_at": "2020-01-01T00:00:00Z"})).await;
    let event = app.next_on("/events").await.body;
    assert_eq!((&event["message_id"], &event["event_details"]), (&json!(past), &json!({"reason": "expired"})));
    // The channel's message_ttl applies when the send gives none.
    let by_channel = send(&api, &id, json!({"to": to, "content": "default", "event_url": events})).await;
    let event = app.next_on("/events").await.body;
    assert_eq!((&event["message_id"], &event["event_details"]), (&json!(by_channel), &json!({"reason": "expired"})));

    for (body, words) in [
        (json!({"to": to, "content": "x", "expires_at": "tomorrow"}), "expires_at"),
        (json!({"to": to, "content": "x", "expires_at": "2030-01-01T00:00:00Z", "ttl": 5}), "not both"),
    ] {
        let (status, env) = api.post(&format!("/channels/{id}/messages/"), body).await;
        assert_eq!(status, 400);
        assert!(error_message(&env).contains(words), "{env}");
    }
    let (status, env) = api.post(&format!("/channels/{id}/messages/"), json!({"to": to, "content": "x", "ttl": 0})).await;
    assert_eq!((status, &env["result"]["errors"][0]["schema_path"]), (400, &json!(["properties", "ttl", "minimum"])));
}

/// A new rate limit applies at once, without restarting the channel (its client stays
/// connected and what waited goes out).
async fn rate_limit_changes_apply_without_restart(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "rate_limit_count": 1, "rate_limit_window": 3600,
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    for n in 0..3 {
        send(&api, &id, json!({"to": client.local_addr, "content": format!("m{n}")})).await;
    }
    assert_eq!(client.read_line().await, "m0");
    let (status, env) = api
        .post(&format!("/channels/{id}"), json!({"rate_limit_count": 100, "rate_limit_window": 1}))
        .await;
    assert_eq!(status, 200, "{env}");
    assert_eq!(client.read_line().await, "m1", "the same session: no restart");
    assert_eq!(client.read_line().await, "m2");
    let scrape = metrics::scrape(&daemon.url).await;
    let waits = metrics::sample(&scrape, "junebug_send_delays_total", &[("channel_id", &id), ("reason", "rate_limit")]);
    // m0 went at once; m1 (and m2, if the new bucket was still empty) waited, once each,
    // however many times the limiter was asked.
    assert!(matches!(waits, Some(w) if (1.0..=2.0).contains(&w)), "{waits:?}");
}

/// A channel limited to 10 messages a second keeps to it over 10 s, while an unlimited
/// channel beside it sends everything at once: channels never hold each other back.
async fn rate_limits_hold_one_channel_not_the_others(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (slow_port, fast_port) = (common::free_port(), common::free_port());
    let slow = api
        .create_channel(json!({"type": "telnet", "rate_limit_count": 10, "rate_limit_window": 1,
                               "config": {"twisted_endpoint": format!("tcp:{slow_port}")}}))
        .await;
    let fast = api
        .create_channel(json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{fast_port}")}}))
        .await;
    let slow_client = TelnetClient::connect_when_ready(slow_port).await;
    let fast_client = TelnetClient::connect_when_ready(fast_port).await;
    let (slow_to, fast_to) = (slow_client.local_addr.clone(), fast_client.local_addr.clone());
    // Readers run from the start, so a line is counted when it is sent, not when read later.
    let window = Duration::from_secs(10);
    let slow_reader = actix_rt::spawn(async move {
        let mut client = slow_client;
        assert_eq!(client.read_line().await, "s0");
        let first = Instant::now();
        let mut sent = 1;
        while let Some(left) = window.checked_sub(first.elapsed()) {
            match tokio::time::timeout(left, client.read_line_within(left + Duration::from_secs(1))).await {
                Ok(line) => {
                    assert_eq!(line, format!("s{sent}"));
                    sent += 1;
                }
                Err(_) => break,
            }
        }
        sent
    });
    // When the fast channel has written its 200th line.
    let fast_reader = actix_rt::spawn(async move {
        let mut client = fast_client;
        for _ in 0..200 {
            assert!(client.read_line().await.starts_with('f'));
        }
        Instant::now()
    });
    // The slow channel's backlog first (in order), then the fast channel's messages from
    // four concurrent senders, so the test measures the channels, not how fast it sends.
    for n in 0..200 {
        send(&api, &slow, json!({"to": slow_to, "content": format!("s{n}")})).await;
    }
    let fast_senders: Vec<_> = (0..4)
        .map(|k| {
            let (api, fast, fast_to) = (api.clone(), fast.clone(), fast_to.clone());
            actix_rt::spawn(async move {
                for n in (k..200).step_by(4) {
                    send(&api, &fast, json!({"to": fast_to, "content": format!("f{n}")})).await;
                }
            })
        })
        .collect();
    for sender in fast_senders {
        sender.await.unwrap();
    }
    let all_fast_accepted = Instant::now();
    let fast_lag = fast_reader
        .await
        .unwrap()
        .saturating_duration_since(all_fast_accepted);
    let slow_sent = slow_reader.await.unwrap();
    // A full bucket (10) at once, then 10 a second: at most 110 in 10 s.
    assert!(slow_sent <= 111, "{slow_sent} sent in 10 s with a limit of 10/s");
    assert!(slow_sent >= 90, "only {slow_sent} sent in 10 s with a limit of 10/s");
    // Held to 10/s like its neighbour, the fast channel would still owe most of its 200.
    assert!(
        fast_lag < Duration::from_secs(2),
        "the unlimited channel finished {fast_lag:?} after its last send was accepted"
    );
}
}

/// The actor's lane order with a deep backlog: with 20,000 bulk messages queued on a channel
/// limited to 100 msg/s, a realtime message sent afterwards goes out within two slots.
mod realtime_overtakes_a_deep_bulk_backlog {
    use super::*;

    async fn run(backend: common::Backend) {
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let api = Api::new(&daemon.url);
        let port = common::free_port();
        let id = api
            .create_channel(
                // Held to one message an hour while the backlog is built, so it is 20,000 deep
                // however fast this machine accepts sends; then opened to 100/s.
                json!({"type": "telnet", "rate_limit_count": 1, "rate_limit_window": 3600,
                                   "config": {"twisted_endpoint": format!("tcp:{port}")}}),
            )
            .await;
        let client = TelnetClient::connect_when_ready(port).await;
        let to = client.local_addr.clone();
        // Read every line as it comes, counting them, so the reader never holds the channel up.
        let (count_tx, count_rx) = tokio::sync::watch::channel(0usize);
        let (rt_tx, rt_rx) = tokio::sync::oneshot::channel();
        let reader = actix_rt::spawn(async move {
            let mut client = client;
            let mut count = 0;
            loop {
                let line = client.read_line_within(Duration::from_secs(120)).await;
                count += 1;
                let _ = count_tx.send(count);
                if line == "RT" {
                    let _ = rt_tx.send(count);
                    return;
                }
            }
        });
        let senders: Vec<_> = (0..8)
            .map(|s| {
                let (api, id, to) = (api.clone(), id.clone(), to.clone());
                actix_rt::spawn(async move {
                    for n in 0..2500 {
                        send(&api, &id, json!({"to": to, "content": format!("b{s}-{n}")})).await;
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        let limit = json!({"rate_limit_count": 100, "rate_limit_window": 1});
        let (status, env) = api.post(&format!("/channels/{id}"), limit).await;
        assert_eq!(status, 200, "{env}");
        // Bulk flows at 100/s before the realtime message is sent.
        let mut flowing = count_rx.clone();
        flowing.wait_for(|read| *read > 20).await.unwrap();
        send(
            &api,
            &id,
            json!({"to": to, "content": "RT", "priority": "realtime"}),
        )
        .await;
        let read_when_accepted = *count_rx.borrow();
        let rt_position = match tokio::time::timeout(Duration::from_secs(30), rt_rx).await {
            Ok(p) => p.unwrap(),
            Err(_) => {
                // Say where things stood, so a failure can be diagnosed from the CI log.
                let (_, queue) = api.get(&format!("/channels/{id}/queue")).await;
                let lines = daemon.log_lines();
                let last_logs: Vec<_> = lines.iter().rev().take(30).collect();
                panic!(
                    "the realtime message never went out; {} lines read; queue: {queue}; \
                     last daemon logs: {last_logs:#?}",
                    *count_rx.borrow()
                );
            }
        };
        // Two slots, plus one line that may have been on the wire when the send was accepted.
        // (The realtime line may even have been read before the send's answer arrived.)
        let bulk_before = (rt_position - 1).saturating_sub(read_when_accepted);
        assert!(
            bulk_before <= 3,
            "{bulk_before} bulk messages went out before the realtime one"
        );
        let (_, env) = api.get(&format!("/channels/{id}/queue")).await;
        assert!(
            env["result"]["waiting"]["bulk"].as_u64().unwrap() > 15_000,
            "{env}"
        );
        reader.abort();
    }

    #[actix_rt::test]
    async fn embedded() {
        run(common::Backend::Embedded).await;
    }

    #[actix_rt::test]
    async fn production() {
        run(common::Backend::Production).await;
    }
}
