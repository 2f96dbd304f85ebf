//! Sending messages (API.md 5): validation order, replies and their expiry, the character
//! limit, null content, priorities, the response shape, status history and callback auth.
#[macro_use]
mod common;

use common::{Api, Backend, CallbackServer, Daemon, Deployment, TelnetClient};
use serde_json::{json, Value};

struct Setup {
    _daemon: Daemon,
    _deployment: Deployment,
    api: Api,
    app: CallbackServer,
    id: String,
    port: u16,
}

async fn setup(backend: Backend, extra: Value, env: &[(&str, &str)]) -> Setup {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(env);
    let api = Api::new(&daemon.url);
    let app = CallbackServer::start().await;
    let port = common::free_port();
    let mut body = json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                          "config": {"twisted_endpoint": format!("tcp:{port}")}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let id = api.create_channel(body).await;
    Setup {
        _daemon: daemon,
        _deployment: deployment,
        api,
        app,
        id,
        port,
    }
}

fn error(env: &Value) -> (&str, &str) {
    let e = &env["result"]["errors"][0];
    (e["type"].as_str().unwrap(), e["message"].as_str().unwrap())
}

both_backends! {
/// `to` or `reply_to` is required; an unknown `reply_to` is MessageNotFound (400).
async fn send_requires_an_address_and_a_known_reply(backend) {
    let s = setup(backend, json!({}), &[]).await;
    let path = format!("/channels/{}/messages/", s.id);
    let (status, env) = s.api.post(&path, json!({"content": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(env["description"], "api usage error");
    assert_eq!(
        error(&env),
        (
            "ApiUsageError",
            "Either \"to\" or \"reply_to\" must be specified"
        )
    );

    let (status, env) = s
        .api
        .post(&path, json!({"content": "x", "reply_to": "abc"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(env["description"], "message not found");
    assert_eq!(
        error(&env),
        ("MessageNotFound", "Inbound message with id abc not found")
    );
    let (status, _) = s
        .api
        .post(&path, json!({"content": "x", "reply_to": "abc", "to": "a"}))
        .await;
    assert_eq!(status, 400, "expired replies are refused by default");
}
}

both_backends! {
/// With allow_expired_replies, an unknown reply_to plus `to` is sent as a plain message.
async fn expired_replies_fall_back_to_plain_messages_when_allowed(backend) {
    let s = setup(backend, json!({}), &[("JUNEBUG_ALLOW_EXPIRED_REPLIES", "true")]).await;
    let (status, env) = s
        .api
        .post(
            &format!("/channels/{}/messages/", s.id),
            json!({"content": "x", "reply_to": "gone", "to": "someone"}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["result"]["reply_to"], json!(null));
    assert_eq!(env["result"]["to"], "someone");
}
}

both_backends! {
/// Inbound messages expire after inbound_message_ttl: replying then is MessageNotFound.
async fn replies_expire_with_the_inbound_ttl(backend) {
    let mut s = setup(backend, json!({}), &[("JUNEBUG_INBOUND_MESSAGE_TTL", "1")]).await;
    let _client = TelnetClient::connect_when_ready(s.port).await;
    let inbound = s.app.next().await.body;
    let path = format!("/channels/{}/messages/", s.id);
    let reply = json!({"content": "x", "reply_to": inbound["message_id"]});
    let (status, _) = s.api.post(&path, reply.clone()).await;
    assert_eq!(status, 201);
    // The TTL is wall-clock time in the store; there is no event to await for expiry.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, env) = s.api.post(&path, reply).await;
    assert_eq!((status, error(&env).0), (400, "MessageNotFound"));
}
}

both_backends! {
/// character_limit counts characters, not bytes; equal is allowed; null content is fine.
async fn character_limit_and_null_content(backend) {
    let s = setup(backend, json!({"character_limit": 3}), &[]).await;
    let path = format!("/channels/{}/messages/", s.id);
    let (status, _) = s
        .api
        .post(&path, json!({"to": "a", "content": "héé"}))
        .await;
    assert_eq!(status, 201);
    let (status, env) = s
        .api
        .post(&path, json!({"to": "a", "content": "abcd"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(env["description"], "message too long");
    assert_eq!(
        error(&env),
        (
            "MessageTooLong",
            "Message content 'abcd' is of length 4, which is greater than the character limit of 3"
        )
    );
    let (status, env) = s.api.post(&path, json!({"to": "a", "content": null})).await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["result"]["content"], json!(null));
}
}

both_backends! {
/// The response is exactly the documented message object; request-only keys are not echoed.
async fn send_response_shape(backend) {
    let s = setup(backend, json!({}), &[]).await;
    let (status, env) = s
        .api
        .post(&format!("/channels/{}/messages/", s.id),
              json!({"to": "+27", "from": "me", "content": "x", "priority": "realtime",
                     "event_url": "http://127.0.0.1:1/e", "event_auth_token": "t",
                     "channel_data": {"foo": "bar", "continue_session": true, "session_event": "new"}}))
        .await;
    assert_eq!(status, 201, "{env}");
    let result = env["result"].as_object().unwrap();
    let mut keys: Vec<&str> = result.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "channel_data",
            "channel_id",
            "content",
            "from",
            "group",
            "message_id",
            "reply_to",
            "timestamp",
            "to"
        ]
    );
    assert_eq!(result["channel_id"], json!(s.id));
    assert_eq!(result["group"], json!(null));
    assert_eq!(
        result["channel_data"],
        json!({"foo": "bar", "continue_session": true, "session_event": "new"})
    );
    let ts = result["timestamp"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f").is_ok(),
        "{ts}"
    );
}
}

both_backends! {
/// Events are listed in order; a rejection carries its reason; callbacks carry auth.
async fn status_history_and_callback_auth(backend) {
    let mut s = setup(backend, json!({"mo_url_auth_token": "sekrit"}), &[]).await;
    let mut client = TelnetClient::connect_when_ready(s.port).await;
    let new = s.app.next().await;
    assert_eq!(new.authorization.as_deref(), Some("Token sekrit"));

    let (host_port, path) = s.app.url.split_at(s.app.url.find("127.0.0.1").unwrap());
    let basic_url = format!("{host_port}user:pa%20ss@{path}/events");
    let messages = format!("/channels/{}/messages/", s.id);
    let (_, env) = s
        .api
        .post(
            &messages,
            json!({"to": "nobody:1", "content": "lost", "event_url": basic_url}),
        )
        .await;
    let lost = env["result"]["message_id"].clone();
    assert_eq!(client.read_line().await, "UNKNOWN ADDR [nobody:1]: lost");
    let event = s.app.next().await;
    assert_eq!(event.path, "/events");
    assert_eq!(
        event.authorization.as_deref(),
        Some("Basic dXNlcjpwYSBzcw==")
    );
    assert_eq!(event.body["event_type"], "rejected");
    assert_eq!(
        event.body["event_details"],
        json!({"reason": "Unknown address."})
    );
    assert_eq!(event.body["message_id"], lost);

    let (_, env) = s
        .api
        .post(
            &messages,
            json!({"to": client.local_addr, "content": "hi",
                                "event_url": format!("{}/events", s.app.url),
                                "event_auth_token": "evtok"}),
        )
        .await;
    let event = s.app.next().await;
    assert_eq!(event.authorization.as_deref(), Some("Token evtok"));
    let (status, env) = s
        .api
        .get(&format!(
            "{messages}{}",
            env["result"]["message_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    let events = env["result"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(env["result"]["last_event_type"], "submitted");
    assert_eq!(
        env["result"]["last_event_timestamp"],
        events[0]["timestamp"]
    );

    let (_, env) = s.api.get(&format!("{messages}unknown")).await;
    assert_eq!(
        env["result"],
        json!({"id": "unknown", "last_event_type": null,
                                     "last_event_timestamp": null, "events": []})
    );
}
}

both_backends! {
/// A session that ends on the user's side is forwarded as a close (API.md 15.15).
async fn telnet_quit_and_disconnect_are_forwarded_as_close(backend) {
    let mut s = setup(backend, json!({}), &[]).await;
    let mut client = TelnetClient::connect_when_ready(s.port).await;
    assert_eq!(
        s.app.next().await.body["channel_data"]["session_event"],
        "new"
    );
    client.send_line("/QUIT").await;
    assert!(client.closed().await);
    let close = s.app.next().await.body;
    assert_eq!(close["content"], json!(null));
    assert_eq!(close["channel_data"], json!({"session_event": "close"}));
    assert_eq!(close["from"], json!(client.local_addr));
}
}

both_backends! {
/// Deleting a channel cancels what it still had queued, with a `rejected` event each.
async fn deleting_a_channel_cancels_its_queue(backend) {
    let mut s = setup(
        backend,
        json!({"rate_limit_count": 1, "rate_limit_window": 3600}),
        &[],
    )
    .await;
    let events = format!("{}/events", s.app.url);
    let messages = format!("/channels/{}/messages/", s.id);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (_, env) = s
            .api
            .post(
                &messages,
                json!({"to": "x", "content": format!("{n}"), "event_url": events}),
            )
            .await;
        ids.push(env["result"]["message_id"].clone());
    }
    let first = s.app.next().await.body;
    assert_eq!(
        (first["event_type"].clone(), first["message_id"].clone()),
        (json!("rejected"), ids[0].clone())
    );
    let (status, _) = s.api.delete(&format!("/channels/{}", s.id)).await;
    assert_eq!(status, 200);
    for id in &ids[1..] {
        let event = s.app.next().await.body;
        assert_eq!(&event["message_id"], id);
        assert_eq!(event["event_details"], json!({"reason": "cancelled"}));
    }
}
}
