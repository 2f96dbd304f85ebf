//! What ops see: `/metrics` in the Prometheus text format, and a structured process log line
//! for every API request and every channel start and stop.
#[macro_use]
mod common;

use common::metrics::sample;
use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::{json, Value};

both_backends! {
/// /metrics parses as Prometheus text and counts messages, events, callbacks, queue depth,
/// in-flight messages, transport state and API latency per route.
async fn metrics_parse_and_count_what_happened(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    app.next().await;
    let events = format!("{}/events", app.url);
    for n in 0..3 {
        let (status, _) = api
            .post(&format!("/channels/{id}/messages/"),
                  json!({"to": client.local_addr, "content": format!("m{n}"), "event_url": events}))
            .await;
        assert_eq!(status, 201);
        client.read_line().await;
        app.next().await;
    }

    let response = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let ch = id.as_str();
    assert_eq!(sample(&scrape, "junebug_messages_total", &[("channel_id", ch), ("direction", "outbound")]), Some(3.0));
    assert_eq!(sample(&scrape, "junebug_messages_total", &[("channel_id", ch), ("direction", "inbound")]), Some(1.0));
    assert_eq!(sample(&scrape, "junebug_events_total", &[("channel_id", ch), ("event_type", "submitted")]), Some(3.0));
    // The last event callback may still be on its way back; the ones before it are counted.
    let delivered = sample(&scrape, "junebug_callbacks_total", &[("channel_id", ch), ("kind", "event"), ("outcome", "delivered")]);
    assert!(delivered.is_some_and(|n| (2.0..=3.0).contains(&n)), "{delivered:?}");
    assert_eq!(sample(&scrape, "junebug_queue_depth", &[("channel_id", ch), ("lane", "bulk")]), Some(0.0));
    assert_eq!(sample(&scrape, "junebug_transport_up", &[("channel_id", ch)]), Some(1.0));
    assert_eq!(sample(&scrape, "junebug_in_flight", &[("channel_id", ch)]), Some(0.0));
    let sends = sample(&scrape, "junebug_api_request_duration_seconds_count",
                       &[("route", "/channels/:channel_id/messages"), ("method", "POST"), ("status", "201")]);
    assert_eq!(sends, Some(3.0), "{text}");

    // A deleted channel's series go away (its session closed first, so no callback is
    // still on its way).
    drop(client);
    assert_eq!(app.next().await.body["channel_data"]["session_event"], "close");
    api.delete(&format!("/channels/{id}")).await;
    let text = reqwest::get(format!("{}/metrics", daemon.url)).await.unwrap().text().await.unwrap();
    assert!(!text.contains(ch), "{text}");
}

/// Every API request is one log line (method, path, status, latency); channel starts and
/// stops are logged with their reason.
async fn requests_and_channel_lifecycle_are_logged(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let id = api
        .create_channel(json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}))
        .await;
    api.call("POST", &format!("/channels/{id}/restart"), None).await;
    api.delete(&format!("/channels/{id}")).await;
    api.get("/nope").await;
    // Logging is asynchronous (slog-async): wait for the last line we expect.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let lines: Vec<Value> = loop {
        let lines: Vec<Value> = daemon
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.iter().any(|l| l["msg"] == "API request" && l["path"] == "/nope") {
            break lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let request = lines
        .iter()
        .find(|l| l["msg"] == "API request" && l["path"] == "/channels/" && l["method"] == "POST")
        .expect("the create is logged");
    assert_eq!(request["status"], 201);
    assert!(request["latency_ms"].as_f64().is_some());
    let not_found = lines.iter().find(|l| l["path"] == "/nope").unwrap();
    assert_eq!(not_found["status"], 404);
    let lifecycle: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["channel_id"] == json!(id) && (l["msg"] == "Channel started" || l["msg"] == "Channel stopped"))
        .map(|l| (l["msg"].as_str().unwrap().to_owned(), l["reason"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("Channel started", "start"),
        ("Channel stopped", "restart requested"),
        ("Channel started", "restart requested"),
        ("Channel stopped", "deleted"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(lifecycle, expected);
}
}

/// With the production backends, health reports both backends and each queue; a queue with
/// messages its channel does not move is stuck, and health answers 500.
#[actix_rt::test]
async fn health_reports_backends_and_stuck_queues() {
    let deployment = Deployment::new(common::Backend::Production);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (status, env) = api.get("/health").await;
    assert_eq!(
        (status, &env["description"]),
        (200, &json!("queues ok")),
        "{env}"
    );
    assert_eq!(
        env["result"]["backends"],
        json!([{"name": "redis", "ok": true}, {"name": "rabbitmq", "ok": true}])
    );

    // A channel that cannot listen (its port is taken) never moves its queue.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let id = api
        .create_channel(json!({"type": "telnet",
                               "config": {"twisted_endpoint": format!("tcp:port={port}:interface=127.0.0.1")}}))
        .await;
    let (_, env) = api.get("/health").await;
    let entries = env["result"]["queues"].as_array().unwrap().clone();
    assert!(
        entries.iter().all(|q| q["stuck"] == false),
        "empty queues are not stuck: {env}"
    );
    api.post(
        &format!("/channels/{id}/messages/"),
        json!({"to": "x", "content": "waits"}),
    )
    .await;
    let (status, env) = api.get("/health").await;
    assert_eq!(
        (status, &env["description"]),
        (500, &json!("queues stuck")),
        "{env}"
    );
    assert_eq!(env["code"], "Internal Server Error");
    let bulk = env["result"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == format!("{id}.bulk"))
        .cloned()
        .unwrap();
    assert_eq!(
        (&bulk["messages"], &bulk["stuck"]),
        (&json!(1), &json!(true))
    );
    drop(taken);
}

both_backends! {
/// The channel's rates follow a steady stream: 10 messages a second (a rate-limited channel
/// with a queue that never runs dry) shows an outbound `submitted_event_rate` within 20 % of 10.
async fn rates_converge_to_a_steady_stream(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start_with(&[("JUNEBUG_METRIC_WINDOW", "2")]);
    let api = Api::new(&daemon.url);
    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "rate_limit_count": 10, "rate_limit_window": 1,
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    for n in 0..100 {
        let (status, _) = api
            .post(&format!("/channels/{id}/messages/"), json!({"to": client.local_addr, "content": format!("m{n}")}))
            .await;
        assert_eq!(status, 201);
    }
    // 10 go at once (a full bucket), then 10 a second: after 60 lines the stream has been
    // steady for 5 s, so the last complete 2-second bucket holds steady traffic only.
    for _ in 0..60 {
        client.read_line().await;
    }
    let (_, env) = api.get(&format!("/channels/{id}")).await;
    let rate = env["result"]["status"]["submitted_event_rate"].as_f64().unwrap_or(0.0);
    assert!((8.0..=12.0).contains(&rate), "submitted_event_rate {rate} is not within 20% of 10/s");
}
}
