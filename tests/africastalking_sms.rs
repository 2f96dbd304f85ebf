//! SMS on the `africastalking` channel type against a local server that speaks Africa's
//! Talking's documented SMS API (`POST /version1/messaging` with an `apiKey` header, 201
//! with `SMSMessageData.Recipients`); the test plays Africa's Talking's delivery-report and
//! inbound-SMS callbacks, and a USSD step on the same channel.
#[macro_use]
mod common;

use std::time::Duration;

use common::aggregator::{answer, Aggregator, Answer, ProviderChannel};
use common::Backend;
use serde_json::{json, Value};

const API_KEY: &str = "at-api-KEY-1234";
const FORM: &str = "application/x-www-form-urlencoded";

/// What the tests send.
fn hello() -> Value {
    json!({"to": "+254711000111", "content": "Habari & karibu"})
}

/// Africa's Talking's answer for one recipient with `status_code`.
fn recipient(status_code: u32, status: &str, message_id: &str) -> Answer {
    answer(
        201,
        vec![],
        json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [{"statusCode": status_code, "number": "+254711000111",
                            "status": status, "cost": "KES 0.8000",
                            "messageId": message_id}]}}),
    )
}

/// An `africastalking` channel with SMS on a local API; `extra` config keys on top.
async fn setup(backend: Backend, extra: Value) -> ProviderChannel {
    let aggregator =
        Aggregator::answering(|n| recipient(101, "Success", &format!("ATXid_{n}"))).await;
    ProviderChannel::start(backend, "africastalking", aggregator, |url| {
        let mut config = json!({
            "username": "sandbox",
            "api_key": API_KEY,
            "sender_id": "JUNEBUG",
            "base_url": url,
            "retry_delay": 0.1,
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    })
    .await
}

both_backends! {
/// A message goes to the messaging API (the `apiKey` header, the documented form fields)
/// and is `submitted`; delivery reports for its `messageId` become `delivery_pending`
/// (`Buffered`) and `delivery_succeeded` (`Success`). The API key is not in the log.
async fn send_then_delivery_reports(backend) {
    let mut s = setup(backend, json!({})).await;
    let id = s.send(hello()).await;

    let request = s.aggregator.next().await;
    assert_eq!((request.method.as_str(), request.uri.as_str()), ("POST", "/version1/messaging"));
    assert_eq!(request.header("apikey"), Some(API_KEY));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.content_type(), Some(FORM));
    let fields = request.form();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        fields,
        [("username", "sandbox"), ("to", "+254711000111"), ("message", "Habari & karibu"),
         ("from", "JUNEBUG")]
    );
    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted", "{submitted}");
    assert_eq!(submitted["message_id"], json!(id));

    for (status, event) in [("Buffered", "delivery_pending"), ("Success", "delivery_succeeded")] {
        let (code, answer) = s
            .form_webhook("dlr", &[("id", "ATXid_1"), ("status", status),
                                   ("phoneNumber", "+254711000111"), ("networkCode", "63902"),
                                   ("retryCount", "0")])
            .await;
        assert_eq!(code, 200, "{answer}");
        let reported = s.event().await;
        assert_eq!(reported["event_type"], event, "{reported}");
        assert_eq!(reported["message_id"], json!(id));
        assert_eq!(reported["event_details"]["network_code"], "63902");
    }

    s.assert_exchange_logged_without(&id, 201, API_KEY)
        .await;
}
}

/// A failed delivery carries Africa's Talking's `failureReason`.
#[actix_rt::test]
async fn failed_deliveries_carry_the_reason() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    assert_eq!(s.event().await["event_type"], "submitted");
    let (code, answer) = s
        .form_webhook(
            "dlr",
            &[
                ("id", "ATXid_1"),
                ("status", "Failed"),
                ("failureReason", "UserInBlackList"),
            ],
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let failed = s.event().await;
    assert_eq!(failed["event_type"], "delivery_failed", "{failed}");
    assert_eq!(failed["message_id"], json!(id));
    assert_eq!(failed["event_details"]["failure_reason"], "UserInBlackList");
}

/// An inbound SMS reaches mo_url with its `linkId`; the application's reply goes out as an
/// SMS carrying that `linkId` (premium replies need it).
#[actix_rt::test]
async fn inbound_messages_reach_the_app_and_replies_keep_the_link_id() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let (status, answer) = s
        .form_webhook(
            "mo",
            &[
                ("date", "2026-11-26T08:00:00Z"),
                ("from", "+254711000111"),
                ("id", "in-7"),
                ("linkId", "link-42"),
                ("text", "hello there"),
                ("to", "22384"),
                ("networkCode", "63902"),
            ],
        )
        .await;
    assert_eq!((status, answer.as_str()), (200, "OK"));
    let mo = s.mo().await;
    assert_eq!(
        (&mo["from"], &mo["to"], &mo["content"]),
        (
            &json!("+254711000111"),
            &json!("22384"),
            &json!("hello there")
        )
    );
    assert_eq!(mo["channel_data"]["africastalking"]["link_id"], "link-42");
    assert_eq!(mo["channel_data"]["africastalking"]["message_id"], "in-7");

    s.send(json!({"reply_to": mo["message_id"], "content": "Asante"}))
        .await;
    let request = s.aggregator.next().await;
    let fields = request.form();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        (field("to"), field("message"), field("linkId")),
        (Some("+254711000111"), Some("Asante"), Some("link-42"))
    );
    assert_eq!(s.event().await["event_type"], "submitted");
}

/// A 401 (the API key refused) rejects the message and puts the `africastalking` status
/// `down` (`auth_failed`); the next accepted message brings it back `ok`.
#[actix_rt::test]
async fn a_refused_api_key_rejects_and_reports_down() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    assert_eq!(s.status_of("africastalking", "ready").await["status"], "ok");
    s.aggregator.script(vec![Answer {
        status: 401,
        headers: vec![],
        body: "The supplied authentication is invalid".into(),
    }]);
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    let rejected = s.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    assert_eq!(rejected["message_id"], json!(id));
    let down = s.status_of("africastalking", "auth_failed").await;
    assert_eq!(down["status"], "down", "{down}");

    s.send(hello()).await;
    s.aggregator.next().await;
    assert_eq!(s.event().await["event_type"], "submitted");
    assert_eq!(
        s.status_of("africastalking", "provider_ok").await["status"],
        "ok"
    );
}

/// A 5xx is retried and the message submitted once; so is a recipient's `500`
/// (InternalServerError) inside a 201. A recipient's `403` (InvalidPhoneNumber) rejects it.
#[actix_rt::test]
async fn provider_errors_are_retried_and_refused_recipients_rejected() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    s.aggregator.script(vec![
        answer(503, vec![], json!({"error": "maintenance"})),
        recipient(500, "InternalServerError", "None"),
    ]);
    let id = s.send(hello()).await;
    for _ in 0..3 {
        s.aggregator.next().await;
    }
    s.event_of("submitted", &id).await;

    s.aggregator
        .script(vec![recipient(403, "InvalidPhoneNumber", "None")]);
    s.send(hello()).await;
    s.aggregator.next().await;
    let rejected = s.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(reason.contains("InvalidPhoneNumber"), "{reason}");
    s.app.assert_quiet(Duration::from_millis(300)).await;
}

/// A 429 with `Retry-After: 1` pauses the channel about a second, then the message goes out.
#[actix_rt::test]
async fn too_many_requests_pause_the_channel() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let retry_after = vec![("Retry-After", "1".into())];
    let throttled = answer(429, retry_after, json!({"error": "Too many requests"}));
    s.assert_throttling_pauses_the_channel(throttled, hello())
        .await;
}

/// Callback payloads that cannot be used get 400 and a warning in the channel log.
#[actix_rt::test]
async fn bad_webhook_payloads_are_refused_and_logged() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    for (path, fields) in [
        ("dlr", vec![("id", "ATXid_1")]),
        ("dlr", vec![("id", "ATXid_1"), ("status", "Teleported")]),
        ("mo", vec![("text", "no sender"), ("to", "22384")]),
    ] {
        let (status, answer) = s.form_webhook(path, &fields).await;
        assert_eq!(status, 400, "{path} {fields:?}: {answer}");
    }
    s.warnings_logged("Refused a webhook request", 3).await;
    s.app.assert_quiet(Duration::from_millis(300)).await;
}

/// USSD and SMS on one channel: a reply to a USSD step answers the step (not an SMS); a
/// message that is no reply is an SMS. Without SMS settings, it is rejected, saying why.
#[actix_rt::test]
async fn ussd_replies_and_sms_share_the_channel() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let step = reqwest::Client::new()
        .post(s.webhook_url("ussd"))
        .header("content-type", FORM)
        .body("sessionId=ATUid_1&serviceCode=%2A384%23&phoneNumber=%2B254711000111&text=");
    let step = actix_rt::spawn(async move { step.send().await.unwrap().text().await.unwrap() });
    let dial = s.mo().await;
    assert_eq!(dial["channel_data"]["session_event"], "new");
    s.send(json!({"reply_to": dial["message_id"], "content": "Welcome"}))
        .await;
    assert_eq!(step.await.unwrap(), "CON Welcome");
    assert_eq!(s.event().await["event_type"], "submitted");

    s.send(hello()).await;
    let request = s.aggregator.next().await;
    assert!(
        request
            .form()
            .contains(&("message".into(), "Habari & karibu".into())),
        "the first request to the SMS API is the SMS, not the USSD reply: {request:?}"
    );
    assert_eq!(s.event().await["event_type"], "submitted");

    let aggregator = Aggregator::start().await;
    let mut ussd_only =
        ProviderChannel::start(Backend::Embedded, "africastalking", aggregator, |_| {
            json!({})
        })
        .await;
    ussd_only.send(hello()).await;
    let rejected = ussd_only.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(reason.contains("username and api_key"), "{reason}");
}
