//! Channel logs on disk: they survive restarts, rotate within bounds, never hold a secret,
//! and a message's entries are found by its id. Black-box, through the daemon's HTTP API and
//! the files under its `logging_path`. CI runs these against the debug and the release
//! binary: the release build must write DEBUG entries too.
mod common;

use common::logs::{eventually, files_under, message_logs, text};
use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::{json, Value};

/// `GET /channels/{id}/logs?n=`: the newest entries first.
async fn channel_logs(api: &Api, id: &str, n: usize) -> Vec<Value> {
    let (status, env) = api.get(&format!("/channels/{id}/logs?n={n}")).await;
    assert_eq!(status, 200, "{env}");
    env["result"].as_array().unwrap().clone()
}

/// Sends a message through the API and returns its id.
async fn send(api: &Api, id: &str, body: Value) -> String {
    let (status, env) = api.post(&format!("/channels/{id}/messages/"), body).await;
    assert_eq!(status, 201, "{env}");
    env["result"]["message_id"].as_str().unwrap().to_owned()
}

/// A channel's entries are on disk: after the daemon is killed and started again, the logs
/// endpoint still serves them, newest first, with what the new daemon wrote on top.
#[actix_rt::test]
async fn entries_survive_a_restart() {
    let deployment = Deployment::new(common::Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let port = common::free_port();
    let id = api
        .create_channel(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let client = TelnetClient::connect_when_ready(port).await;
    let registering = format!("Registering client connected from '{}'", client.local_addr);
    eventually("the connection is logged", || async {
        let entries = channel_logs(&api, &id, 100).await;
        entries.iter().any(|e| text(e) == registering).then_some(())
    })
    .await;
    drop(client);
    daemon.kill9();

    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    // The channel starts again and logs so; the entries from before are still there, older.
    let entries = eventually("the restarted channel logs its start", || async {
        let entries = channel_logs(&api, &id, 100).await;
        let starts = entries
            .iter()
            .filter(|e| text(e).starts_with("Starting a telnet transport with config"))
            .count();
        (starts >= 2).then_some(entries)
    })
    .await;
    let position = |wanted: &dyn Fn(&str) -> bool| entries.iter().position(|e| wanted(text(e)));
    let registered = position(&|t| t == registering).expect("the entry from before the restart");
    let restarted =
        position(&|t| t.starts_with("Starting a telnet transport with config")).unwrap();
    assert!(restarted < registered, "newest first: {entries:#?}");
    assert_eq!(entries[registered]["logger"], json!(id));
    assert_eq!(entries[registered]["level"], 20);
    let files = files_under(&deployment.dir.path().join("logs").join(&id));
    assert_eq!(
        files.len(),
        1,
        "the restarted daemon writes on in the newest file: {files:?}"
    );
}

/// With a tiny `log_rotate_size` and `max_log_files = 3`, many entries leave at most three
/// files, and the newest entries are still served (by channel and by message); entries of
/// deleted files are gone from the message logs too.
#[actix_rt::test]
async fn rotation_keeps_at_most_max_log_files() {
    let deployment = Deployment::new(common::Backend::Embedded);
    let daemon = deployment.start_with(&[
        ("JUNEBUG_LOG_ROTATE_SIZE", "2000"),
        ("JUNEBUG_MAX_LOG_FILES", "3"),
    ]);
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let id = api
        .create_channel(
            json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let mut inbound_ids = vec![app.next().await.body["message_id"]
        .as_str()
        .unwrap()
        .to_owned()];
    // Each inbound message's callback attempt is one entry of ~250 bytes: ~10 files' worth.
    for n in 0..80 {
        client.send_line(&format!("line {n}")).await;
        let received = app.next().await;
        inbound_ids.push(received.body["message_id"].as_str().unwrap().to_owned());
    }
    let last = inbound_ids.last().unwrap().clone();
    let entries = eventually("the last callback is logged", || async {
        let entries = channel_logs(&api, &id, 5).await;
        entries
            .first()
            .is_some_and(|e| text(e).contains(&last))
            .then_some(entries)
    })
    .await;
    let newest: Vec<&str> = inbound_ids
        .iter()
        .rev()
        .take(5)
        .map(String::as_str)
        .collect();
    for (entry, message_id) in entries.iter().zip(&newest) {
        assert!(
            text(entry).contains(message_id),
            "{entry} should be about {message_id}"
        );
    }
    assert_eq!(entries.len(), 5);

    let files = files_under(&deployment.dir.path().join("logs").join(&id));
    assert!((1..=3).contains(&files.len()), "{files:?}");
    for file in &files {
        assert!(std::fs::metadata(file).unwrap().len() <= 2000, "{file:?}");
    }
    let logs = message_logs(&api, &id, &last).await;
    let callback = logs
        .iter()
        .find(|e| text(e).contains("attempt 1"))
        .expect("{logs:#?}");
    assert_eq!(callback["message_ids"], json!([last]));
    assert_eq!(callback["trace"]["status"], 200);
    assert!(
        message_logs(&api, &id, &inbound_ids[0]).await.is_empty(),
        "rotated away"
    );
}

/// Secrets in a channel's config and in callback URLs (`user:pass@`, `?token=`) reach the log
/// writer, which writes none of them: no file under `logging_path`, the index included,
/// holds one, while the entries that mention them are there, masked.
#[actix_rt::test]
async fn no_secret_reaches_the_disk() {
    const CONFIG_SECRET: &str = "c0nf1g-s3cr3t";
    const URL_PASSWORD: &str = "ur1-pa55w0rd";
    const QUERY_TOKEN: &str = "qu3ry-t0k3n";
    let deployment = Deployment::new(common::Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet",
                               "config": {"twisted_endpoint": format!("tcp:{port}"),
                                          "password": CONFIG_SECRET}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let event_url = format!(
        "{}/events?token={QUERY_TOKEN}&x=1",
        app.url
            .replace("http://", &format!("http://user:{URL_PASSWORD}@"))
    );
    let message_id = send(
        &api,
        &id,
        json!({"to": client.local_addr, "content": "hello", "event_url": event_url}),
    )
    .await;
    assert_eq!(client.read_line().await, "hello");
    let event = app.next_on("/events").await;
    assert_eq!(event.body["message_id"], json!(message_id));
    assert!(event.authorization.is_some_and(|a| a.starts_with("Basic ")));

    let entries = eventually("the callback attempt is logged", || async {
        let entries = message_logs(&api, &id, &message_id).await;
        entries
            .iter()
            .any(|e| e["trace"]["status"] == 200)
            .then_some(entries)
    })
    .await;
    let attempt = entries
        .iter()
        .find(|e| e["trace"]["status"] == 200)
        .unwrap();
    let url = attempt["trace"]["url"].as_str().unwrap();
    assert!(url.contains("://user:***@127.0.0.1"), "{url}");
    assert!(url.contains("token=***&x=1"), "{url}");
    let accepted = entries
        .iter()
        .find(|e| text(e).contains("accepted"))
        .unwrap();
    assert!(accepted["trace"]["event_url"]
        .as_str()
        .unwrap()
        .contains("user:***@"));
    let start = channel_logs(&api, &id, 100).await;
    let start = start
        .iter()
        .find(|e| text(e).starts_with("Starting a telnet transport with config"))
        .unwrap();
    assert!(text(start).contains(r#""password":"***""#), "{start}");

    let logs_dir = deployment.dir.path().join("logs");
    let files = files_under(&logs_dir);
    assert!(
        files.iter().any(|f| f.ends_with("index.sqlite")),
        "{files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let content = String::from_utf8_lossy(&bytes);
        for secret in [CONFIG_SECRET, URL_PASSWORD, QUERY_TOKEN] {
            assert!(!content.contains(secret), "{secret} is in {file:?}");
        }
    }
}

/// `GET /channels/{id}/messages/{msg}/logs` lists, in time order, every entry about that
/// message: its acceptance, its send, its event's callback; nothing about a message sent at
/// the same time. DEBUG entries (acceptance, send) show there, not in the channel's logs:
/// this fails when a build drops DEBUG entries, which is why CI runs this file against the
/// release binary too (`cargo test --release --test channel_logs`).
/// An unknown channel is a 404 in the envelope; an unknown message has no entries.
#[actix_rt::test]
async fn logs_by_message() {
    let deployment = Deployment::new(common::Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let id = api
        .create_channel(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let events = format!("{}/events", app.url);
    let body =
        |content: &str| json!({"to": client.local_addr, "content": content, "event_url": events});
    let (one, two) = tokio::join!(send(&api, &id, body("one")), send(&api, &id, body("two")));
    let mut lines = vec![client.read_line().await, client.read_line().await];
    lines.sort();
    assert_eq!(lines, ["one", "two"]);
    for _ in 0..2 {
        assert_eq!(app.next_on("/events").await.body["event_type"], "submitted");
    }

    for (mine, other) in [(&one, &two), (&two, &one)] {
        let entries = eventually("the event callback is logged", || async {
            let entries = message_logs(&api, &id, mine).await;
            entries
                .iter()
                .any(|e| text(e).contains("attempt 1"))
                .then_some(entries)
        })
        .await;
        let timestamps: Vec<f64> = entries
            .iter()
            .map(|e| e["timestamp"].as_f64().unwrap())
            .collect();
        assert!(
            timestamps.windows(2).all(|w| w[0] <= w[1]),
            "time order: {entries:#?}"
        );
        for entry in &entries {
            let ids = entry["message_ids"].as_array().unwrap();
            assert!(ids.contains(&json!(mine)), "{entry}");
            assert!(!ids.contains(&json!(other)), "{entry}");
            assert_eq!(entry["logger"], json!(id));
        }
        let position = |wanted: &str| {
            entries
                .iter()
                .position(|e| text(e).contains(wanted))
                .unwrap_or_else(|| panic!("no entry with {wanted:?}: {entries:#?}"))
        };
        let (accepted, sent, callback) = (
            position("accepted"),
            position("sent"),
            position("attempt 1"),
        );
        assert!(accepted < sent && sent < callback, "{entries:#?}");
        assert_eq!(entries[accepted]["level"], 10);
        assert_eq!(entries[accepted]["direction"], "outbound");
        assert_eq!(entries[accepted]["trace"]["lane"], "bulk");
        assert_eq!(entries[sent]["level"], 10);
        assert_eq!(entries[callback]["level"], 20);
        assert_eq!(entries[callback]["trace"]["method"], "POST");
        assert_eq!(entries[callback]["trace"]["attempt"], 1);
        assert!(entries[callback]["trace"]["latency_ms"].is_u64());
    }

    // The channel's own logs keep to INFO and above, in the original's shape.
    let entries = channel_logs(&api, &id, 100).await;
    assert!(entries
        .iter()
        .any(|e| text(e).contains(&one) && text(e).contains("attempt 1")));
    assert!(
        entries.iter().all(|e| !text(e).contains("accepted")),
        "{entries:#?}"
    );
    assert!(
        entries.iter().all(|e| e.as_object().unwrap().len() == 4),
        "{entries:#?}"
    );

    assert!(message_logs(&api, &id, "0123456789abcdef0123456789abcdef")
        .await
        .is_empty());
    let missing = "00000000-0000-0000-0000-000000000000";
    let (status, env) = api
        .get(&format!("/channels/{missing}/messages/{one}/logs"))
        .await;
    assert_eq!(status, 404, "{env}");
    assert_eq!(env["code"], "Not Found");
    assert_eq!(env["description"], "channel not found");
    assert_eq!(env["result"]["errors"][0]["type"], "ChannelNotFound");
}

/// Deleting a channel deletes its log files.
#[actix_rt::test]
async fn deleting_a_channel_deletes_its_log() {
    let deployment = Deployment::new(common::Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let id = api
        .create_channel(json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}))
        .await;
    let dir = deployment.dir.path().join("logs").join(&id);
    eventually("the channel's start is logged", || async {
        (!channel_logs(&api, &id, 1).await.is_empty()).then_some(())
    })
    .await;
    assert!(dir.exists());
    let (status, _) = api.delete(&format!("/channels/{id}")).await;
    assert_eq!(status, 200);
    eventually("the files are deleted", || async {
        (!dir.exists()).then_some(())
    })
    .await;
}
