//! The HTTP contract of API.md: every endpoint, the envelope, status codes, error shapes,
//! validation before lookup, trailing slashes, 404/405/413, and no 500 for any input.
#[macro_use]
mod common;

use common::{Api, Deployment};
use serde_json::{json, Value};

const MISSING: &str = "/channels/00000000-0000-4000-8000-000000000000";

fn assert_envelope(env: &Value, status: u16) {
    let keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{env}");
    for key in ["status", "code", "description", "result"] {
        assert!(env.get(key).is_some(), "{key} missing in {env}");
    }
    assert_eq!(env["status"], status);
}

fn first_error(env: &Value) -> &Value {
    &env["result"]["errors"][0]
}

fn telnet_channel(extra: Value) -> Value {
    let mut body = json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

both_backends! {
/// Create, get, list, update, restart and delete a channel, with exact envelopes.
async fn channel_lifecycle(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);

    let (status, env) = api.get("/channels/").await;
    assert_eq!((status, &env["result"]), (200, &json!([])));
    assert_eq!(env["description"], "channels listed");

    let body = telnet_channel(json!({"label": "x", "metadata": {"a": 1}, "extra_key": [1],
                                     "rate_limit_count": 5, "character_limit": 10}));
    let (status, env) = api.post("/channels/", body).await;
    assert_envelope(&env, 201);
    assert_eq!((status, env["code"].as_str()), (201, Some("Created")));
    let channel = env["result"].clone();
    let id = channel["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(channel["extra_key"], json!([1]), "unknown keys are kept");
    assert!(channel.get("mo_url").is_none(), "absent keys stay absent");
    for rate in [
        "inbound_message_rate",
        "outbound_message_rate",
        "submitted_event_rate",
        "rejected_event_rate",
        "delivery_succeeded_rate",
        "delivery_failed_rate",
        "delivery_pending_rate",
    ] {
        assert_eq!(channel["status"][rate], json!(0), "{rate}");
    }

    let second = api.create_channel(telnet_channel(json!({}))).await;
    let (_, env) = api.get("/channels").await;
    let mut expected = vec![id.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        env["result"],
        json!(expected),
        "sorted ids, no redirect without slash"
    );

    let (status, env) = api.get(&format!("/channels/{id}")).await;
    assert_eq!(
        (status, &env["description"]),
        (200, &json!("channel found"))
    );
    assert_eq!(env["result"], channel);

    let (status, env) = api
        .post(
            &format!("/channels/{id}"),
            json!({"mo_url": null, "metadata": {"b": 2}}),
        )
        .await;
    assert_eq!(
        (status, &env["description"]),
        (200, &json!("channel updated"))
    );
    assert_eq!(
        env["result"]["mo_url"],
        json!(null),
        "null is stored as null"
    );
    assert_eq!(
        env["result"]["metadata"],
        json!({"b": 2}),
        "replaced wholesale"
    );
    assert_eq!(env["result"]["label"], "x");

    let (status, env) = api
        .call(
            "POST",
            &format!("/channels/{id}/restart"),
            Some(json!("anything")),
        )
        .await;
    assert_eq!(
        (status, &env["description"], &env["result"]),
        (200, &json!("channel restarted"), &json!({}))
    );

    let (status, env) = api.delete(&format!("/channels/{id}")).await;
    assert_eq!(
        (status, &env["description"], &env["result"]),
        (200, &json!("channel deleted"), &json!({}))
    );
    for (method, path) in [
        ("GET", format!("/channels/{id}")),
        ("DELETE", format!("/channels/{id}")),
        ("POST", format!("/channels/{id}/restart")),
        ("GET", format!("/channels/{id}/logs")),
    ] {
        let (status, env) = api.call(method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(env["description"], "channel not found");
        assert_eq!(first_error(&env)["type"], "ChannelNotFound");
        assert_eq!(
            first_error(&env)["message"],
            format!("Channel with ID {id} not found")
        );
    }
    let (_, env) = api.get("/channels/").await;
    assert_eq!(env["result"], json!([second]));
}
}

both_backends! {
/// Schema violations: one `invalid_body` entry per violation, with its schema path.
async fn validation_errors_have_the_original_shape(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);

    let (status, env) = api.post("/channels/", json!({})).await;
    assert_eq!(status, 400);
    assert_envelope(&env, 400);
    assert_eq!(env["description"], "api usage error");
    let errors = env["result"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for e in errors {
        assert_eq!(e["type"], "invalid_body");
        assert_eq!(e["schema_path"], json!(["required"]));
    }

    let (_, env) = api
        .post(
            "/channels/",
            json!({"type": "telnet", "config": {}, "rate_limit_count": -3,
                                   "character_limit": "a"}),
        )
        .await;
    let mut paths: Vec<Value> = env["result"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["schema_path"].clone())
        .collect();
    paths.sort_by_key(|p| p.to_string());
    assert_eq!(
        paths,
        [
            json!(["properties", "character_limit", "type"]),
            json!(["properties", "rate_limit_count", "minimum"])
        ]
    );

    let (_, env) = api.post("/channels/", json!([1, 2])).await;
    assert_eq!(first_error(&env)["schema_path"], json!(["type"]));

    // Validation comes before lookup: a bad body to a missing channel is a 400.
    let (status, env) = api
        .post(
            &format!("{MISSING}/messages/"),
            json!({"content": "x", "foo": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        first_error(&env)["schema_path"],
        json!(["additionalProperties"])
    );
    assert!(first_error(&env)["message"]
        .as_str()
        .unwrap()
        .contains("foo"));
    let (status, _) = api.post(MISSING, json!({"character_limit": -1})).await;
    assert_eq!(status, 400);
}
}

both_backends! {
/// Domain errors: unknown type, bad config, JSON decode errors.
async fn domain_errors(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);

    let (status, env) = api
        .post(
            "/channels/",
            json!({"type": "carrier-pigeon", "config": {}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(env["description"], "invalid channel type");
    assert_eq!(first_error(&env)["type"], "InvalidChannelType");
    assert_eq!(
        first_error(&env)["message"],
        "Invalid channel type 'carrier-pigeon', must be one of: africastalking, dmark, http, irc, smpp, telnet, twilio, twitter, xmpp"
    );

    let (status, env) = api
        .post("/channels/", json!({"type": "telnet", "config": {}}))
        .await;
    assert_eq!(status, 400, "{env}");
    assert_eq!(first_error(&env)["type"], "InvalidChannelConfig");
    assert!(
        first_error(&env)["message"]
            .as_str()
            .unwrap()
            .contains("twisted_endpoint"),
        "{env}"
    );
    let (_, env) = api.get("/channels/").await;
    assert_eq!(env["result"], json!([]), "nothing stored");

    for body in [&b""[..], b"   ", b"{", b"nope", b"{\"type\": }"] {
        let (status, env) = api.raw("POST", "/channels/", Some(body.to_vec())).await;
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(env["description"], "json decode error");
        assert_eq!(first_error(&env)["type"], "JsonDecodeError");
    }
    let (_, env) = api.raw("POST", "/channels/", Some(Vec::new())).await;
    assert_eq!(
        first_error(&env)["message"],
        "No JSON object could be decoded"
    );
}
}

both_backends! {
/// Unknown paths are 404 and wrong methods 405, in the envelope; both slash forms route.
async fn routing_errors_and_trailing_slashes(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);

    let (status, env) = api.get("/nope").await;
    assert_eq!(status, 404);
    assert_envelope(&env, 404);
    assert_eq!(env["code"], "Not Found");
    assert_eq!(first_error(&env)["code"], 404);
    assert_eq!(first_error(&env)["type"], "Not Found");
    assert!(first_error(&env)["message"]
        .as_str()
        .unwrap()
        .starts_with("404 Not Found: The requested URL"));

    let (status, env) = api.call("PUT", "/channels/", Some(json!({}))).await;
    assert_eq!(status, 405);
    assert_eq!(env["code"], "Method Not Allowed");
    assert_eq!(first_error(&env)["type"], "Method Not Allowed");

    for path in ["/health", "/health/"] {
        let (status, env) = api.get(path).await;
        assert_eq!(status, 200, "{env}");
        match backend {
            // As the original without a RabbitMQ management interface.
            common::Backend::Embedded => {
                assert_eq!((&env["description"], &env["result"]), (&json!("health ok"), &json!({})))
            }
            common::Backend::Production => assert_eq!(env["description"], "queues ok"),
        }
    }
    let id = api.create_channel(telnet_channel(json!({}))).await;
    for path in [
        format!("/channels/{id}"),
        format!("/channels/{id}/"),
        format!("/channels/{id}/logs"),
        format!("/channels/{id}/logs/"),
    ] {
        let (status, _) = api.get(&path).await;
        assert_eq!(status, 200, "{path}");
    }

    // Webhooks: an unknown channel is a 404 in the envelope; a channel whose type takes no
    // webhooks answers 404 itself, whatever the method and path.
    let (status, env) = api.post("/channels/nope/inbound/sms", json!({})).await;
    assert_eq!((status, &env["description"]), (404, &json!("channel not found")));
    assert_eq!(first_error(&env)["type"], "ChannelNotFound");
    let client = reqwest::Client::new();
    for (method, path) in [("POST", "inbound/sms"), ("GET", "inbound"), ("PUT", "inbound/a/b?c=d")] {
        let url = format!("{}/channels/{id}/{path}", daemon.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = client.request(method, &url).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{url}");
        assert!(answer.text().await.unwrap().contains("serves no webhook"), "{url}");
    }
}
}

/// With `[webhooks] port` set, a second listener serves webhooks, and only webhooks.
#[actix_rt::test]
async fn a_separate_listener_serves_webhooks_only() {
    let deployment = Deployment::new(common::Backend::Embedded);
    let port = common::free_port().to_string();
    let daemon = deployment.start_with(&[("JUNEBUG_WEBHOOKS__PORT", &port)]);
    let api = Api::new(&daemon.url);
    let id = api.create_channel(telnet_channel(json!({}))).await;
    let webhooks = Api::new(&format!("http://127.0.0.1:{port}"));

    let (status, env) = webhooks.post("/channels/nope/inbound/sms", json!({})).await;
    assert_eq!(
        (status, &env["description"]),
        (404, &json!("channel not found"))
    );
    let url = format!("{}/channels/{id}/inbound/sms", webhooks.base);
    let answer = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("serves no webhook"));
    for path in [
        "/channels".to_owned(),
        format!("/channels/{id}"),
        "/health".into(),
        "/metrics".into(),
    ] {
        let answer = reqwest::get(format!("{}{path}", webhooks.base))
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path} is not served to the internet");
    }
}

both_backends! {
/// Oversized bodies get 413 in the envelope; malformed input of every kind never a 500.
async fn hostile_input_never_causes_a_server_error(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&[("JUNEBUG_MAX_BODY_SIZE", "4096")]);
    let api = Api::new(&daemon.url);
    let id = api.create_channel(telnet_channel(json!({}))).await;

    let huge = format!("{{\"content\": \"{}\"}}", "x".repeat(10_000));
    let (status, env) = api
        .raw(
            "POST",
            &format!("/channels/{id}/messages/"),
            Some(huge.into_bytes()),
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(env["code"], "Payload Too Large");

    let bodies: Vec<Value> = vec![
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({"content": 1}),
        json!({"content": null}),
        json!({"content": "x", "to": null}),
        json!({"content": "x", "to": 5}),
        json!({"content": "x", "reply_to": 7}),
        json!({"content": "x", "channel_data": []}),
        json!({"content": "x", "priority": {}}),
        json!({"content": "x", "to": "a", "channel_data": {"session_event": "bogus"}}),
        json!({"content": "\u{0000}\u{ffff}", "to": "\u{1F600}"}),
        json!({"content": "x", "reply_to": "'; DROP TABLE channels; --"}),
    ];
    let paths = [
        format!("/channels/{id}/messages/"),
        format!("/channels/{id}"),
        "/channels/".to_owned(),
        format!("{MISSING}/messages/"),
    ];
    for body in &bodies {
        for path in &paths {
            let (status, env) = api.post(path, body.clone()).await;
            assert!(status < 500, "{path} {body} -> {status} {env}");
            assert_envelope(&env, status);
        }
    }
    for query in [
        "?n=abc",
        "?n=-1",
        "?n=0",
        "?n=99999999999999999999999",
        "?n=%ff",
        "?n=5&n=6",
    ] {
        let (status, env) = api.get(&format!("/channels/{id}/logs{query}")).await;
        assert!(status < 500, "{query} -> {status} {env}");
    }
    let (status, env) = api.get(&format!("/channels/{id}/logs?n=abc")).await;
    assert_eq!(status, 400);
    assert!(first_error(&env)["message"].as_str().unwrap().contains('n'));
    let (status, _) = api.get(&format!("/channels/{id}/messages/%00%ff")).await;
    assert_eq!(status, 200, "unknown message ids are not validated");
}
}

both_backends! {
/// The logs endpoint returns the channel's newest entries first, bounded by `n`.
async fn logs_newest_first_bounded_by_n(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let port = common::free_port();
    let id = api
        .create_channel(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let client = common::TelnetClient::connect_when_ready(port).await;
    let registering = format!("Registering client connected from '{}'", client.local_addr);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let entries = loop {
        let (status, env) = api.get(&format!("/channels/{id}/logs")).await;
        assert_eq!(status, 200);
        let entries = env["result"].as_array().unwrap().clone();
        if entries.iter().any(|e| e["message"] == json!(registering)) {
            break entries;
        }
        assert!(tokio::time::Instant::now() < deadline, "{entries:?}");
        // Polling the endpoint is how ops read logs; nothing to await on the server side.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(entries[0]["message"], json!(registering), "newest first");
    assert_eq!(entries[0]["level"], 20);
    assert_eq!(entries[0]["logger"], json!(id));
    assert!(entries[0]["timestamp"].is_f64());
    let (_, env) = api.get(&format!("/channels/{id}/logs?n=1")).await;
    assert_eq!(env["result"].as_array().unwrap().len(), 1);
}
}

both_backends! {
/// A new `config` restarts the transport with it: the old port closes, the new one listens.
async fn updating_config_restarts_the_transport(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (old, new) = (common::free_port(), common::free_port());
    let id = api
        .create_channel(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{old}")}}),
        )
        .await;
    let mut client = common::TelnetClient::connect_when_ready(old).await;

    let (status, env) = api
        .post(
            &format!("/channels/{id}"),
            json!({"config": {"twisted_endpoint": format!("tcp:{new}")}}),
        )
        .await;
    assert_eq!(status, 200, "{env}");
    assert!(client.closed().await, "restart closes connected clients");
    common::TelnetClient::connect_when_ready(new).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old)).is_err(),
        "old port released"
    );

    let (status, env) = api
        .post(
            &format!("/channels/{id}"),
            json!({"config": {"twisted_endpoint": "udp:1"}}),
        )
        .await;
    assert_eq!(
        (status, first_error(&env)["type"].as_str()),
        (400, Some("InvalidChannelConfig"))
    );
    let (_, env) = api.get(&format!("/channels/{id}")).await;
    assert_eq!(
        env["result"]["config"]["twisted_endpoint"],
        format!("tcp:{new}"),
        "unchanged"
    );
}
}

both_backends! {
/// Random mutations of valid bodies (seeded, so reproducible) never get a 5xx.
async fn fuzzed_bodies_never_get_a_server_error(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let id = api.create_channel(telnet_channel(json!({}))).await;
    let seeds: [&[u8]; 3] = [
        br#"{"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}, "label": "x"}"#,
        br#"{"to": "a", "content": "hi", "priority": 3, "channel_data": {"session_event": "new"}}"#,
        br#"{"reply_to": "abc", "content": null, "event_url": "http://x/"}"#,
    ];
    let paths = [
        "/channels/".to_owned(),
        format!("/channels/{id}"),
        format!("/channels/{id}/messages/"),
    ];
    let mut rng = fastrand::Rng::with_seed(2);
    for round in 0..300 {
        let mut body = seeds[round % seeds.len()].to_vec();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(..body.len());
            match rng.u8(..3) {
                0 => body[at] = rng.u8(..),
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, b"{}[]\",:0\\"[rng.usize(..9)]),
            }
            if body.is_empty() {
                break;
            }
        }
        let path = &paths[round % paths.len()];
        let (status, env) = api.raw("POST", path, Some(body.clone())).await;
        assert!(
            status < 500,
            "{path} {:?} -> {status} {env}",
            String::from_utf8_lossy(&body)
        );
        assert_envelope(&env, status);
    }
}
}
