//! Callback delivery: signatures receivers can verify, and every attempt in the channel log
//! with secrets redacted.
#[macro_use]
mod common;

use std::time::Duration;

use common::{Api, CallbackServer, Deployment, Received, TelnetClient};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// Verifies `X-Junebug-Signature: t=<t>,v1=<hex>` as the README tells receivers to.
fn verify(received: &Received, secret: &str) -> bool {
    let Some(header) = &received.signature else {
        return false;
    };
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.raw);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

both_backends! {
/// With a secret, callbacks carry a signature of body and timestamp; a message's own secret
/// signs its events; without a secret there is no signature.
async fn callbacks_are_signed_when_a_secret_is_set(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                               "callback_secret": "channel-secret",
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let client = TelnetClient::connect_when_ready(port).await;
    let inbound = app.next().await;
    assert!(verify(&inbound, "channel-secret"), "{:?}", inbound.signature);
    assert!(!verify(&inbound, "wrong-secret"));

    let events = format!("{}/events", app.url);
    let messages = format!("/channels/{id}/messages/");
    let (status, env) = api.post(&messages, json!({"to": client.local_addr, "content": "a", "event_url": events,
                               "callback_secret": "message-secret"})).await;
    assert_eq!(status, 201, "{env}");
    let event = app.next().await;
    assert!(verify(&event, "message-secret"), "the message's own secret signs its events");
    let (status, env) = api.post(&messages, json!({"to": client.local_addr, "content": "b", "event_url": events})).await;
    assert_eq!(status, 201, "{env}");
    let event = app.next().await;
    assert!(verify(&event, "channel-secret"), "else the channel's");

    let (status, _) = api.post(&format!("/channels/{id}"), json!({"callback_secret": ""})).await;
    assert_eq!(status, 400, "an empty secret is refused");
    let plain = api
        .create_channel(json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}))
        .await;
    let (status, env) = api.post(&format!("/channels/{plain}/messages/"), json!({"to": "x", "content": "c", "event_url": events})).await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(app.next().await.signature, None);
}

/// Every callback attempt is in the channel log with its outcome; credentials and
/// secret-looking query values never are.
async fn callback_attempts_are_logged_without_secrets(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let mo_url = app.url.replace("http://", "http://user:hunter2@") + "/mo?api_token=hunter3&x=1";
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": mo_url,
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let _client = TelnetClient::connect_when_ready(port).await;
    let inbound = app.next().await;
    let message_id = inbound.body["message_id"].as_str().unwrap().to_owned();
    // The attempt is logged once its answer is in; the callback arriving does not say that.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let logs = loop {
        let (_, env) = api.get(&format!("/channels/{id}/logs")).await;
        let text = env["result"].to_string();
        if text.contains(&message_id) && text.contains("200") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(logs.contains("attempt 1"), "{logs}");
    assert!(logs.contains("api_token=***"), "{logs}");
    assert!(!logs.contains("hunter2") && !logs.contains("hunter3"), "{logs}");
}

/// Callback URLs are templates: `{name}` placeholders and Kannel's `%` escapes are filled in
/// (URL-encoded) per callback, and a channel may ask for GET with the values in the query.
async fn callback_urls_are_templates(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let mo_url = format!("{}/mo/{{channel_id}}?from={{from}}&session={{session_event}}&p=%p", app.url);
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": mo_url, "mo_url_method": "GET",
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let new = app.next().await;
    let from = client.local_addr.replace(':', "%3A");
    assert_eq!(new.method, "GET");
    assert!(new.path.starts_with(&format!("/mo/{id}?from={from}&session=new&p={from}&")), "{}", new.path);
    assert!(new.path.contains("&content=&"), "the body's fields are in the query: {}", new.path);

    let event_url = format!("{}/ev/{{event_type}}/{{message_id}}?dlr=%d&to={{to}}", app.url);
    let (status, env) = api
        .post(&format!("/channels/{id}/messages/"),
              json!({"to": client.local_addr, "content": "hi there", "event_url": event_url}))
        .await;
    assert_eq!(status, 201, "{env}");
    client.read_line().await;
    let event = app.next().await;
    let message_id = env["result"]["message_id"].as_str().unwrap();
    assert_eq!(event.method, "POST");
    assert_eq!(event.path, format!("/ev/submitted/{message_id}?dlr=8&to={from}"));
    assert_eq!(event.body["event_type"], "submitted");
}

/// A template with an unknown placeholder or escape, or an unknown method, is refused when
/// it is set, with a 400 naming the field; nothing is stored.
async fn bad_templates_are_refused_when_set(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let base = json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("mo_url", json!("http://127.0.0.1/mo?x={frm}")), "mo_url"),
        (with("status_url", json!("http://127.0.0.1/s?x=%x")), "status_url"),
        (with("mo_url_method", json!("PUT")), "mo_url_method"),
    ] {
        let (status, env) = api.post("/channels/", body).await;
        assert_eq!(status, 400, "{env}");
        let message = env["result"]["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
    }
    let (_, env) = api.get("/channels/").await;
    assert_eq!(env["result"], json!([]));
    let id = api.create_channel(base.clone()).await;
    let (status, env) = api
        .post(&format!("/channels/{id}/messages/"),
              json!({"to": "x", "content": "c", "event_url": "http://127.0.0.1/e/{nope}"}))
        .await;
    assert_eq!(status, 400);
    assert!(env["result"]["errors"][0]["message"].as_str().unwrap().starts_with("event_url"));
    let (status, _) = api.post(&format!("/channels/{id}"), json!({"mo_url": "http://127.0.0.1/{to"})).await;
    assert_eq!(status, 400, "unclosed placeholder");
}

/// However many channels post to one destination, at most `max_per_destination` requests are
/// in flight to it at once.
async fn requests_to_one_destination_are_bounded(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&[("JUNEBUG_CALLBACKS__MAX_PER_DESTINATION", "3")]);
    let api = Api::new(&daemon.url);
    // A destination that accepts connections, counts them, and never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}/mo", hang.local_addr().unwrap());
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
    let holder = actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hang.accept().await {
            held.push(socket);
            let _ = opened_tx.send(held.len());
        }
    });
    let mut clients = Vec::new();
    for _ in 0..6 {
        let port = common::free_port();
        api.create_channel(json!({"type": "telnet", "mo_url": hang_url,
                                  "config": {"twisted_endpoint": format!("tcp:{port}")}}))
            .await;
        clients.push(TelnetClient::connect_when_ready(port).await);
    }
    for expected in 1..=3 {
        let n = tokio::time::timeout(common::WAIT, opened.recv()).await.unwrap().unwrap();
        assert_eq!(n, expected);
    }
    // Six channels have a callback for it; a fourth request never starts.
    let extra = tokio::time::timeout(Duration::from_millis(500), opened.recv()).await;
    assert!(extra.is_err(), "more than 3 requests in flight: {extra:?}");
    holder.abort();
}

/// However many endpoints one channel's callbacks go to, at most `max_per_channel` requests
/// of that channel are in flight at once.
async fn requests_of_one_channel_are_bounded(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&[("JUNEBUG_CALLBACKS__MAX_PER_CHANNEL", "2")]);
    let api = Api::new(&daemon.url);
    // Four endpoints that accept connections, report them, and never answer.
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
    let mut urls = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..4 {
        let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}/events", hang.local_addr().unwrap()));
        let opened_tx = opened_tx.clone();
        holders.push(actix_rt::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = hang.accept().await {
                held.push(socket);
                let _ = opened_tx.send(());
            }
        }));
    }
    let id = api
        .create_channel(json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}))
        .await;
    // Nobody is connected: each send is rejected, and its event goes to its own endpoint.
    for url in &urls {
        let (status, env) = api
            .post(&format!("/channels/{id}/messages/"), json!({"to": "x", "content": "c", "event_url": url}))
            .await;
        assert_eq!(status, 201, "{env}");
    }
    for _ in 0..2 {
        tokio::time::timeout(common::WAIT, opened.recv()).await.unwrap().unwrap();
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), opened.recv()).await;
    assert!(extra.is_err(), "more than 2 requests of the channel in flight");
    holders.iter().for_each(|h| h.abort());
}
}
