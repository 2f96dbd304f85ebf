//! Callback retries: failures that may pass are retried with backoff from a durable outbox
//! (a restart loses none), final ones and exhausted ones become dead letters that the API
//! lists, re-sends and purges.
#[macro_use]
mod common;

use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::json;

/// Fast retries for tests: 50 ms doubling to 200 ms, four attempts.
const FAST_RETRIES: [(&str, &str); 3] = [
    ("JUNEBUG_CALLBACKS__RETRY_INITIAL", "0.05"),
    ("JUNEBUG_CALLBACKS__RETRY_MAX", "0.2"),
    ("JUNEBUG_CALLBACKS__MAX_ATTEMPTS", "4"),
];

both_backends! {
/// A callback answered 503 is tried again, the same message each time, until it is taken.
async fn failed_callbacks_are_retried_until_delivered(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&FAST_RETRIES);
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    app.answer(503);
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let _client = TelnetClient::connect_when_ready(port).await;
    let first = app.next().await.body;
    let second = app.next().await.body;
    app.answer(200);
    let third = app.next().await.body;
    assert_eq!(first, second);
    assert_eq!(first, third, "the same callback, retried");
    let (_, env) = api.get(&format!("/channels/{id}/dead-letters")).await;
    assert_eq!(env["result"], json!([]));
    app.assert_quiet(std::time::Duration::from_millis(300)).await;
}

/// A 404 is final: no retry, a dead letter at once, listed, re-sent on request, purged.
async fn final_failures_become_dead_letters(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&FAST_RETRIES);
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    app.answer(404);
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo?token=s3cret", app.url),
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let _client = TelnetClient::connect_when_ready(port).await;
    let refused = app.next().await.body;
    // The dead letter is recorded after the answer; the API is what a client would poll.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let letters = loop {
        let (status, env) = api.get(&format!("/channels/{id}/dead-letters")).await;
        assert_eq!((status, &env["description"]), (200, &json!("dead letters listed")));
        let letters = env["result"].as_array().unwrap().clone();
        if !letters.is_empty() {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["attempts"], 1, "a 404 is not retried");
    assert_eq!(letters[0]["last_error"], "HTTP 404");
    assert_eq!(letters[0]["kind"], "inbound");
    assert_eq!(letters[0]["body"], refused);
    assert!(letters[0]["url"].as_str().unwrap().contains("token=***"), "{}", letters[0]);

    app.answer(200);
    let (status, env) = api.post(&format!("/channels/{id}/dead-letters/retry"), json!({})).await;
    assert_eq!((status, &env["result"]), (200, &json!({"retried": 1})));
    assert_eq!(app.next().await.body, refused, "sent again");
    let (_, env) = api.get(&format!("/channels/{id}/dead-letters")).await;
    assert_eq!(env["result"], json!([]));

    // Exhausted retries also end as a dead letter; purging deletes it.
    app.answer(500);
    let _other = TelnetClient::connect_when_ready(port).await;
    for _ in 0..4 {
        app.next().await;
    }
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (_, env) = api.get(&format!("/channels/{id}/dead-letters")).await;
        if let Some(letter) = env["result"].as_array().unwrap().first() {
            assert_eq!((&letter["attempts"], &letter["last_error"]), (&json!(4), &json!("HTTP 500")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter after four attempts");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, env) = api.call("DELETE", &format!("/channels/{id}/dead-letters"), None).await;
    assert_eq!(env["result"], json!({"purged": 1}));
    let (status, _) = api.get("/channels/00000000-0000-4000-8000-000000000000/dead-letters").await;
    assert_eq!(status, 404);
}

/// A callback still being retried when the daemon is killed is delivered after the restart.
async fn pending_callbacks_survive_a_restart(backend) {
    let deployment = Deployment::new(backend);
    // The retry is due 2 s after the failure: by then the process that scheduled it is dead,
    // so only the outbox can bring it back (pending callbacks keep their schedule).
    let slow = [("JUNEBUG_CALLBACKS__RETRY_INITIAL", "2"), ("JUNEBUG_CALLBACKS__RETRY_MAX", "2")];
    let daemon = deployment.start_with(&slow);
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    app.answer(503);
    let port = common::free_port();
    api.create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                              "config": {"twisted_endpoint": format!("tcp:port={port}:interface=127.0.0.1")}}))
        .await;
    let client = TelnetClient::connect_when_ready(port).await;
    let failed = app.next().await.body;
    drop(client);
    let _close = app.next().await; // the session close, failing too
    daemon.kill9();

    app.answer(200);
    let _daemon = deployment.start_with(&slow);
    let mut delivered = vec![app.next().await.body, app.next().await.body];
    delivered.retain(|b| b["message_id"] == failed["message_id"]);
    assert_eq!(delivered, [failed], "the pending callback came back after the restart");
}
}
