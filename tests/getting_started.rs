//! The README's getting-started walk-through, end to end: a telnet channel, inbound messages
//! to `mo_url`, sends and replies, events to `event_url`, message status.
#[macro_use]
mod common;

use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::json;

both_backends! {
/// API.md 14: create a telnet channel, connect, send, type, reply; every step as documented.
async fn getting_started_flow_works_verbatim(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();

    let (status, env) = api
        .post(
            "/channels/",
            json!({"type": "telnet", "label": "My First Channel",
                   "mo_url": format!("{}/mo", app.url),
                   "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["code"], "Created");
    assert_eq!(env["description"], "channel created");
    let channel = &env["result"];
    let id = channel["id"].as_str().unwrap();
    assert_eq!(channel["status"]["status"], json!(null));
    assert_eq!(channel["status"]["components"], json!({}));
    assert_eq!(channel["status"]["inbound_message_rate"], json!(0));
    assert_eq!(channel["label"], "My First Channel");

    // Connecting opens a session: the application hears about it.
    let mut telnet = TelnetClient::connect_when_ready(port).await;
    let new = app.next_on("/mo").await;
    assert_eq!(new.method, "POST");
    assert_eq!(new.body["content"], json!(null));
    assert_eq!(new.body["from"], json!(telnet.local_addr));
    assert_eq!(new.body["to"], json!(format!("0.0.0.0:{port}")));
    assert_eq!(new.body["channel_id"], json!(id));
    assert_eq!(new.body["channel_data"], json!({"session_event": "new"}));

    // A send reaches the telnet session and gets a `submitted` event.
    let (status, env) = api
        .post(
            &format!("/channels/{id}/messages/"),
            json!({"to": telnet.local_addr, "content": "hello",
                   "event_url": format!("{}/events", app.url)}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["description"], "message submitted");
    let sent = env["result"].clone();
    assert_eq!(sent["to"], json!(telnet.local_addr));
    assert_eq!(sent["reply_to"], json!(null));
    assert_eq!(sent["message_id"].as_str().unwrap().len(), 32);
    assert!(sent.get("event_url").is_none());
    assert_eq!(telnet.read_line().await, "hello");
    let event = app.next_on("/events").await;
    assert_eq!(event.body["event_type"], "submitted");
    assert_eq!(event.body["message_id"], sent["message_id"]);
    assert_eq!(event.body["event_details"], json!({}));
    let msg_id = sent["message_id"].as_str().unwrap();
    let (status, env) = api.get(&format!("/channels/{id}/messages/{msg_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(env["description"], "message status");
    assert_eq!(env["result"]["last_event_type"], "submitted");
    assert_eq!(env["result"]["events"].as_array().unwrap().len(), 1);

    // Typing is an inbound message in the session; replying answers it.
    telnet.send_line("Hi there").await;
    let hi = app.next_on("/mo").await;
    assert_eq!(hi.body["content"], "Hi there");
    assert_eq!(hi.body["channel_data"], json!({"session_event": "resume"}));
    let (status, env) = api
        .post(
            &format!("/channels/{id}/messages/"),
            json!({"reply_to": hi.body["message_id"], "content": "hello again"}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["result"]["reply_to"], hi.body["message_id"]);
    assert_eq!(env["result"]["to"], json!(telnet.local_addr));
    assert_eq!(telnet.read_line().await, "hello again");
}
}
