//! The `twilio` channel type against a local server that speaks Twilio's documented Messages
//! API (`POST /2010-04-01/Accounts/{sid}/Messages.json`, 201 with the Message's `sid`, JSON
//! errors `{code, message, more_info, status}`); the test plays Twilio's webhooks (status
//! callbacks and inbound messages, signed with `X-Twilio-Signature` where it says so).
#[macro_use]
mod common;

use std::time::Duration;

use base64::Engine as _;
use common::aggregator::{answer, Aggregator, ProviderChannel};
use common::Backend;
use junebug_actors::transports::twilio::signature::signature;
use serde_json::{json, Value};

const ACCOUNT: &str = "AC0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-T0KEN";
/// Where the channel tells Twilio to send status callbacks.
const CALLBACK: &str = "https://sms.example.org/channels/c1/inbound/status";

/// What the tests send.
fn hello() -> Value {
    json!({"to": "+27820001234", "content": "hello & welcome"})
}

/// Twilio's answer to a created Message.
fn created(n: u32) -> common::aggregator::Answer {
    answer(
        201,
        vec![],
        json!({"sid": format!("SM{n:032}"), "status": "queued", "account_sid": ACCOUNT,
               "to": "+27820001234", "from": "+15005550006", "body": "hello & welcome",
               "error_code": null, "error_message": null}),
    )
}

/// Twilio's error answer.
fn error(status: u16, code: u32, message: &str) -> common::aggregator::Answer {
    answer(
        status,
        vec![],
        json!({"code": code, "message": message,
               "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
               "status": status}),
    )
}

/// A `twilio` channel on a local Messages API; `extra` config keys on top.
async fn setup(backend: Backend, extra: Value) -> ProviderChannel {
    let aggregator = Aggregator::answering(created).await;
    ProviderChannel::start(backend, "twilio", aggregator, |url| {
        let mut config = json!({
            "account_sid": ACCOUNT,
            "auth_token": AUTH_TOKEN,
            "from": "+15005550006",
            "base_url": url,
            "status_callback_url": CALLBACK,
            "retry_delay": 0.1,
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    })
    .await
}

/// A form body of `fields`.
fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Twilio's fields of an inbound SMS.
fn inbound_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ToCountry", "US"),
        ("SmsMessageSid", "SM99"),
        ("NumMedia", "0"),
        ("MessageSid", "SM99"),
        ("AccountSid", ACCOUNT),
        ("From", "+27820001234"),
        ("To", "+15005550006"),
        ("Body", "hi there"),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]
}

both_backends! {
/// A message goes to the Messages API (Basic auth with the account SID and auth token, the
/// documented form fields) and is `submitted`; Twilio's status callbacks for its `sid`
/// become `delivery_pending` (`sent`) and `delivery_succeeded` (`delivered`). The channel
/// log has the exchange without the auth token.
async fn send_then_status_callbacks(backend) {
    let mut s = setup(backend, json!({})).await;
    let id = s.send(hello()).await;

    let request = s.aggregator.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{AUTH_TOKEN}"));
    assert_eq!(request.authorization(), Some(&*format!("Basic {basic}")));
    assert_eq!(request.content_type(), Some(FORM));
    let fields = request.form();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        fields,
        [("To", "+27820001234"), ("From", "+15005550006"), ("Body", "hello & welcome"),
         ("StatusCallback", CALLBACK)]
    );

    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted", "{submitted}");
    assert_eq!(submitted["message_id"], json!(id));

    let sid = format!("SM{:032}", 1);
    for (status, event) in [("sent", "delivery_pending"), ("delivered", "delivery_succeeded")] {
        let body = form(&[("MessageSid", &sid), ("MessageStatus", status),
                          ("AccountSid", ACCOUNT), ("To", "+27820001234")]);
        let (code, answer) = s.webhook("status", FORM, &body).await;
        assert_eq!(code, 200, "{answer}");
        let reported = s.event().await;
        assert_eq!(reported["event_type"], event, "{reported}");
        assert_eq!(reported["message_id"], json!(id));
        assert_eq!(reported["event_details"]["provider_status"], status);
    }

    s.assert_exchange_logged_without(&id, 201, AUTH_TOKEN)
        .await;
}
}

/// `undelivered` with an `ErrorCode` becomes `delivery_failed` carrying the code.
#[actix_rt::test]
async fn undelivered_messages_fail_with_the_error_code() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    assert_eq!(s.event().await["event_type"], "submitted");
    let sid = format!("SM{:032}", 1);
    let body = form(&[
        ("MessageSid", &sid),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ]);
    let (code, answer) = s.webhook("status", FORM, &body).await;
    assert_eq!(code, 200, "{answer}");
    let failed = s.event().await;
    assert_eq!(failed["event_type"], "delivery_failed", "{failed}");
    assert_eq!(failed["message_id"], json!(id));
    assert_eq!(failed["event_details"]["error_code"], "30003");
}

/// An inbound SMS reaches mo_url; Twilio gets empty TwiML, so it sends no reply itself.
#[actix_rt::test]
async fn inbound_messages_reach_the_app() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let (status, answer) = s.webhook("mo", FORM, &form(&inbound_fields())).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("<Response/>"), "{answer}");
    let mo = s.mo().await;
    assert_eq!(mo["from"], "+27820001234");
    assert_eq!(mo["to"], "+15005550006");
    assert_eq!(mo["content"], "hi there");
    assert_eq!(mo["channel_data"]["twilio"]["message_sid"], "SM99");
    assert_eq!(mo["channel_data"]["twilio"]["num_media"], "0");
}

/// A 401 (wrong credentials) rejects the message and puts the `twilio` status `down`
/// (`auth_failed`); the next accepted message brings it back `ok`.
#[actix_rt::test]
async fn refused_credentials_reject_and_report_down() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    assert_eq!(s.status_of("twilio", "ready").await["status"], "ok");
    s.aggregator.script(vec![error(401, 20003, "Authenticate")]);
    let id = s.send(hello()).await;
    s.aggregator.next().await;
    let rejected = s.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    assert_eq!(rejected["message_id"], json!(id));
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("401") && reason.contains("20003"),
        "{reason}"
    );
    let down = s.status_of("twilio", "auth_failed").await;
    assert_eq!(down["status"], "down", "{down}");

    s.send(hello()).await;
    s.aggregator.next().await;
    assert_eq!(s.event().await["event_type"], "submitted");
    assert_eq!(s.status_of("twilio", "provider_ok").await["status"], "ok");
}

/// A 5xx is retried; the message is submitted once. A 4xx error (an invalid number) is
/// rejected quoting Twilio's code and message.
#[actix_rt::test]
async fn server_errors_are_retried_and_client_errors_rejected() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    s.aggregator
        .script(vec![error(503, 20500, "Service unavailable")]);
    let id = s.send(hello()).await;
    let first = s.aggregator.next().await;
    let second = s.aggregator.next().await;
    assert_eq!(first.body, second.body, "the same message is sent again");
    s.event_of("submitted", &id).await;

    s.aggregator.script(vec![error(
        400,
        21211,
        "The 'To' number +1 is not a valid phone number.",
    )]);
    s.send(hello()).await;
    s.aggregator.next().await;
    let rejected = s.event().await;
    assert_eq!(rejected["event_type"], "rejected", "{rejected}");
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(reason.contains("21211"), "{reason}");
    s.app.assert_quiet(Duration::from_millis(300)).await;
}

/// A 429 (error 20429) with `Retry-After: 1` pauses the channel about a second, then the
/// message goes out and is submitted.
#[actix_rt::test]
async fn too_many_requests_pause_the_channel() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    let mut throttled = error(429, 20429, "Too Many Requests");
    throttled.headers.push(("Retry-After", "1".into()));
    s.assert_throttling_pauses_the_channel(throttled, hello())
        .await;
}

/// Webhook payloads that cannot be used get 400 and a warning in the channel log; nothing
/// reaches the application.
#[actix_rt::test]
async fn bad_webhook_payloads_are_refused_and_logged() {
    let mut s = setup(Backend::Embedded, json!({})).await;
    for (path, body) in [
        ("status", form(&[("MessageSid", "SM1")])),
        (
            "status",
            form(&[("MessageSid", "SM1"), ("MessageStatus", "teleported")]),
        ),
        ("mo", form(&[("MessageSid", "SM2"), ("Body", "no sender")])),
    ] {
        let (status, answer) = s.webhook(path, FORM, &body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
    }
    let (status, _) = s.webhook("elsewhere", FORM, "").await;
    assert_eq!(status, 404);
    s.warnings_logged("Refused a webhook request", 3).await;
    s.app.assert_quiet(Duration::from_millis(300)).await;
}

/// With `validate_signatures`, webhooks without a valid `X-Twilio-Signature` are refused
/// with 403 (and logged); a request signed over the public URL Twilio called (`public_url`,
/// as behind a proxy) and its parameters is taken.
#[actix_rt::test]
async fn signatures_are_checked() {
    let public = "https://sms.example.org/channels/c1/inbound";
    let mut s = setup(
        Backend::Embedded,
        json!({"validate_signatures": true, "public_url": public}),
    )
    .await;
    let fields = inbound_fields();
    let body = form(&fields);
    let params: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let good = signature(AUTH_TOKEN, &format!("{public}/mo"), &params);
    let local = signature(AUTH_TOKEN, &s.webhook_url("mo"), &params);
    let wrong_key = signature("not-the-token", &format!("{public}/mo"), &params);
    for headers in [
        vec![],
        vec![("X-Twilio-Signature", local.as_str())],
        vec![("X-Twilio-Signature", wrong_key.as_str())],
    ] {
        let (status, answer) = s.webhook_with("mo", &headers, FORM, &body).await;
        assert_eq!(status, 403, "{headers:?}: {answer}");
    }
    s.warnings_logged("X-Twilio-Signature", 3).await;
    s.app.assert_quiet(Duration::from_millis(300)).await;

    let signed = [("X-Twilio-Signature", good.as_str())];
    let (status, answer) = s.webhook_with("mo", &signed, FORM, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.mo().await["content"], "hi there");
}
