//! The `http` channel type against a scripted aggregator: a real HTTP server on 127.0.0.1
//! that records every request and answers as the test says (by default 200 with a provider
//! id). Sending, retries, throttling, rejection, inbound and delivery-report webhooks, and a
//! bad webhook payload.
#[macro_use]
mod common;

use std::time::Duration;

use common::aggregator::{answer, Aggregator, ProviderChannel};
use common::Backend;
use serde_json::{json, Value};

/// The bearer token of these tests' aggregator.
const TOKEN: &str = "sekrit-T0KEN";

/// What the tests send: "hello" to +27820001234.
fn hello() -> Value {
    json!({"to": "+27820001234", "from": "JB", "content": "hello"})
}

/// A daemon with one `http` channel (a JSON API with bearer auth) on a scripted aggregator,
/// `extra` config keys on top.
async fn setup(backend: Backend, extra: Value) -> ProviderChannel {
    let aggregator = Aggregator::start().await;
    ProviderChannel::start(backend, "http", aggregator, |url| {
        let mut config = json!({
            "url": format!("{url}/v1/sms?to={{to}}"),
            "json_body": {"to": "{to}", "from": "{from}", "text": "{content}",
                          "reference": "{message_id}"},
            "auth": {"type": "bearer", "token": TOKEN},
            "message_id_field": "data.id",
            "retry_delay": 0.1,
            "dlr_fields": {"message_id": "msg_id", "status": "state"},
            "dlr_statuses": {"DELIVRD": "delivered", "UNDELIV": "failed", "ENROUTE": "pending"},
            "mo_fields": {"from": "msisdn", "to": "shortcode", "content": "text",
                          "message_id": "msg_id"},
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    })
    .await
}

both_backends! {
/// A message goes to the aggregator as configured (method, URL with the encoded number,
/// bearer token, JSON body), becomes `submitted`, and the aggregator's delivery report for
/// the id it gave becomes `delivery_succeeded` on the message's event_url. The channel log
/// has the exchange without the token.
async fn send_then_delivery_report(backend) {
    let mut s = setup(backend, json!({})).await;
    let id = s.send(hello()).await;

    let request = s.aggregator.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/v1/sms?to=%2B27820001234");
    assert_eq!(request.authorization(), Some(&*format!("Bearer {TOKEN}")));
    assert_eq!(request.content_type(), Some("application/json"));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"to": "+27820001234", "from": "JB", "text": "hello", "reference": id})
    );

    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted", "{submitted}");
    assert_eq!(submitted["message_id"], json!(id));

    let (status, answer) = s
        .webhook("dlr", "application/json", r#"{"msg_id": "prov-1", "state": "DELIVRD"}"#)
        .await;
    assert_eq!(status, 200, "{answer}");
    let delivered = s.event().await;
    assert_eq!(delivered["event_type"], "delivery_succeeded", "{delivered}");
    assert_eq!(delivered["message_id"], json!(id));
    assert_eq!(delivered["event_details"]["provider_status"], "DELIVRD");

    s.assert_exchange_logged_without(&id, 200, TOKEN)
        .await;
}
}

/// A 5xx answer is retried; the message is submitted once, after the retry. The channel's
/// `http` status goes `degraded` after the failure and `ok` again after the success.
#[actix_rt::test]
async fn provider_errors_are_retried_and_submitted_once() {
    let mut s = setup(Backend::Embedded, json!({"degraded_after": 1})).await;
    s.aggregator
        .script(vec![answer(503, vec![], json!({"error": "maintenance"}))]);
    let id = s.send(hello()).await;
    let first = s.aggregator.next().await;
    let second = s.aggregator.next().await;
    assert_eq!(first.body, second.body, "the same message is sent again");

    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted");
    assert_eq!(submitted["message_id"], json!(id));

    let mut seen = Vec::new();
    while !seen.iter().any(|s: &Value| s["type"] == "provider_ok") {
        let status = s.statuses.next().await.body;
        assert_eq!(status["component"], "http", "{status}");
        seen.push(status);
    }
    let degraded = seen
        .iter()
        .find(|s| s["type"] == "provider_failing")
        .expect("degraded before ok again");
    assert_eq!(degraded["status"], "degraded");
    assert!(
        degraded["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{degraded}"
    );
    s.app.assert_quiet(Duration::from_millis(300)).await;
}

/// A 429 with `Retry-After: 1` pauses the channel for about a second; then the message goes
/// out and is submitted.
#[actix_rt::test]
async fn throttling_pauses_the_channel() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let retry_after = vec![("Retry-After", "1".into())];
    let throttled = answer(429, retry_after, json!({"error": "slow down"}));
    s.assert_throttling_pauses_the_channel(throttled, hello())
        .await;
}

/// A 4xx answer rejects the message, naming the status and what the aggregator said.
#[actix_rt::test]
async fn client_errors_reject_the_message() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    s.aggregator.script(vec![answer(
        400,
        vec![],
        json!({"error": "invalid number"}),
    )]);
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    let rejected = s.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    assert_eq!(rejected["message_id"], json!(id));
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 400") && reason.contains("invalid number"),
        "{reason}"
    );
}

/// A 401 (the token is wrong) rejects the message and puts the `http` status `down`
/// (`auth_failed`); the next accepted message brings it back `ok`.
#[actix_rt::test]
async fn refused_credentials_reject_and_report_down() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    assert_eq!(s.status_of("http", "ready").await["status"], "ok");
    s.aggregator
        .script(vec![answer(401, vec![], json!({"error": "bad token"}))]);
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    s.event_of("rejected", &id).await;
    let down = s.status_of("http", "auth_failed").await;
    assert_eq!(down["status"], "down", "{down}");
    assert!(
        down["message"].as_str().unwrap().contains("bad token"),
        "{down}"
    );

    s.send(hello()).await;
    s.aggregator.next().await;
    assert_eq!(s.event().await["event_type"], "submitted");
    assert_eq!(s.status_of("http", "provider_ok").await["status"], "ok");
}

/// An inbound form post on the `mo` webhook reaches mo_url with the configured fields
/// mapped; the aggregator gets our message id back.
#[actix_rt::test]
async fn inbound_messages_reach_the_app() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let (status, answer) = s
        .webhook(
            "mo",
            "application/x-www-form-urlencoded",
            "msisdn=%2B27820001234&shortcode=12345&text=hi+there&msg_id=in-9",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let ours: Value = serde_json::from_str(&answer).unwrap();
    let mo = s.app.next_on("/mo").await.body;
    assert_eq!(mo["message_id"], ours["message_id"]);
    assert_eq!(mo["from"], "+27820001234");
    assert_eq!(mo["to"], "12345");
    assert_eq!(mo["content"], "hi there");
    assert_eq!(mo["channel_id"], json!(s.channel));
    assert_eq!(mo["channel_data"]["http"]["provider_message_id"], "in-9");
}

/// A webhook payload that cannot be used gets 400 and a warning in the channel log; nothing
/// reaches the application.
#[actix_rt::test]
async fn bad_webhook_payloads_are_refused_and_logged() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let (status, answer) = s.webhook("dlr", "application/json", "{not json").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = s
        .webhook(
            "dlr",
            "application/json",
            r#"{"msg_id": "prov-1", "state": "WHAT"}"#,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("unknown delivery status"), "{answer}");
    let (status, answer) = s
        .webhook("mo", "application/x-www-form-urlencoded", "text=no+sender")
        .await;
    assert_eq!(status, 400, "{answer}");

    s.warnings_logged("Refused a webhook request", 3).await;
    s.app.assert_quiet(Duration::from_millis(300)).await;
}
