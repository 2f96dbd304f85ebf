//! Africa's Talking USSD callbacks, answered synchronously through the shared machinery of
//! [`crate::transports::ussd_http`] (sessions, waiting for the reply, timeout and fallback).
//! This module only maps the wire format.
//!
//! # Wire format (Africa's Talking USSD API)
//!
//! Africa's Talking POSTs one form (`application/x-www-form-urlencoded`) per user step to the
//! callback URL, `/channels/{id}/inbound/ussd` (the path is `web_path`), and shows the body of
//! our answer to the user:
//!
//! | request field | meaning | our inbound message |
//! |---|---|---|
//! | `sessionId` | unique per session, the same on every step | session key; `transport_metadata.africastalking.session_id` |
//! | `serviceCode` | the code dialled, e.g. `*384*1234#` | `to` |
//! | `phoneNumber` | the user's number, e.g. `+254711000111` | `from` |
//! | `networkCode` | the user's network (e.g. `63902`), optional | `transport_metadata.africastalking.network_code` |
//! | `text` | every input of the session so far joined with `*`; empty on the first step | `content`: the part after the last `*` (none when `text` is empty); the whole text in `transport_metadata.africastalking.text` |
//!
//! | answer (`text/plain`, 200) | when |
//! |---|---|
//! | `CON <reply>` | the reply continues the session (the default) |
//! | `END <reply>` | the reply closes it (`channel_data.continue_session: false`), or the fallback text after `reply_timeout` |
//! | 400, a line of text | a request without `sessionId`, `phoneNumber` or `serviceCode` (Africa's Talking ends the session on a 4xx) |
//!
//! Session events: the first step of a `sessionId` is `new`, later ones `resume`.
//!
//! **End-of-session notifications.** Africa's Talking can also POST a notification when a
//! session ends (its "events callback URL"), with `sessionId`, `phoneNumber`, `serviceCode`,
//! `networkCode`, `status` (`Success`, `Incomplete`, `Failed`), `input`, `lastAppResponse`,
//! `durationInMillis`, `errorMessage`, …. Pointed at `/channels/{id}/inbound/ussd/end`, a
//! notification about a session we still hold open (the user hung up, the network timed out)
//! reaches the application as an inbound message with no content and session event `close`
//! (API.md decision 15), the notification's fields in `transport_metadata.africastalking`.
//! It is answered `200 OK`.
//!
//! **Limitation.** A user's input that itself contains `*` cannot be told apart from two
//! inputs: the content is what follows the last `*`.
use serde_json::{Map, Value};

use crate::transports::ussd_http::{BadRequest, Ended, Incoming, Reply, Step, Wire};
use crate::webhook::{WebhookRequest, WebhookResponse};

/// Africa's Talking's wire format; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AfricasTalking;

/// The fields a step must have.
const REQUIRED: [&str; 3] = ["sessionId", "phoneNumber", "serviceCode"];

/// The end-of-session notification fields kept on the `close` message.
const ENDED_FIELDS: [(&str, &str); 8] = [
    ("networkCode", "network_code"),
    ("status", "status"),
    ("input", "input"),
    ("lastAppResponse", "last_app_response"),
    ("durationInMillis", "duration_in_millis"),
    ("errorMessage", "error_message"),
    ("hopsCount", "hops_count"),
    ("date", "date"),
];

impl Wire for AfricasTalking {
    fn name(&self) -> &'static str {
        "africastalking"
    }

    fn parse(&self, request: &WebhookRequest, path: &str) -> Option<Result<Incoming, BadRequest>> {
        let end_path = format!("{path}/end");
        let ended = if request.path == path {
            false
        } else if request.path == end_path {
            true
        } else {
            return None;
        };
        Some(read(request, ended))
    }

    fn answer(&self, reply: &Reply) -> WebhookResponse {
        let verb = if reply.continues { "CON" } else { "END" };
        WebhookResponse::text(200, format!("{verb} {}", reply.content))
    }
}

/// A step or an end notice from the request's form fields.
fn read(request: &WebhookRequest, ended: bool) -> Result<Incoming, BadRequest> {
    let form = request.form();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|name| field(name).is_none_or(|value| value.is_empty()))
        .collect();
    if !missing.is_empty() {
        let reason = format!(
            "missing field(s) {} (a {} {} request)",
            missing.join(", "),
            request.method,
            request
                .header("content-type")
                .unwrap_or("without a content type"),
        );
        return Err(BadRequest {
            answer: WebhookResponse::text(400, format!("END Bad request: {reason}")),
            reason,
        });
    }
    let session_id = field("sessionId").unwrap_or_default();
    let from = field("phoneNumber").unwrap_or_default();
    let to = field("serviceCode").unwrap_or_default();
    let mut meta = Map::new();
    meta.insert("session_id".into(), Value::from(session_id.clone()));
    if ended {
        for (name, key) in ENDED_FIELDS {
            if let Some(value) = field(name) {
                meta.insert(key.into(), Value::from(value));
            }
        }
        return Ok(Incoming::Ended(Ended {
            session_id,
            from,
            to,
            transport_metadata: Map::from_iter([("africastalking".into(), Value::Object(meta))]),
        }));
    }
    let text = field("text").unwrap_or_default();
    if let Some(network) = field("networkCode") {
        meta.insert("network_code".into(), Value::from(network));
    }
    meta.insert("text".into(), Value::from(text.clone()));
    let content = (!text.is_empty()).then(|| latest_input(&text).to_owned());
    Ok(Incoming::Step(Step {
        session_id,
        from,
        to,
        content,
        transport_metadata: Map::from_iter([("africastalking".into(), Value::Object(meta))]),
    }))
}

/// The latest input in Africa's Talking's `*`-joined history.
pub fn latest_input(text: &str) -> &str {
    text.rsplit('*').next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(path: &str, body: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: path.into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn step(body: &str) -> Step {
        match AfricasTalking.parse(&form("ussd", body), "ussd") {
            Some(Ok(Incoming::Step(step))) => step,
            other => panic!("not a step: {other:?}"),
        }
    }

    /// The first request (empty text) has no content; later ones the latest input.
    #[test]
    fn steps_map_to_messages() {
        let first = step("sessionId=ATUid_1&serviceCode=%2A384%2A1234%23&phoneNumber=%2B254711000111&networkCode=63902&text=");
        assert_eq!(first.session_id, "ATUid_1");
        assert_eq!(first.to, "*384*1234#");
        assert_eq!(first.from, "+254711000111");
        assert_eq!(first.content, None);
        assert_eq!(
            Value::Object(first.transport_metadata),
            json!({"africastalking": {"session_id": "ATUid_1", "network_code": "63902", "text": ""}})
        );
        let third =
            step("sessionId=ATUid_1&serviceCode=*384*1234%23&phoneNumber=%2B254711000111&text=1*2");
        assert_eq!(third.content.as_deref(), Some("2"));
        assert_eq!(
            third.transport_metadata["africastalking"]["text"],
            json!("1*2")
        );
        let no_text = step("sessionId=s&serviceCode=*1%23&phoneNumber=1");
        assert_eq!(no_text.content, None);
        assert_eq!(latest_input("1*"), "");
        assert_eq!(latest_input("42"), "42");
    }

    /// Replies become CON or END lines.
    #[test]
    fn answers_are_con_or_end() {
        let answer = |content: &str, continues| {
            let r = AfricasTalking.answer(&Reply {
                content: content.into(),
                continues,
            });
            (
                r.status,
                r.content_type.starts_with("text/plain"),
                String::from_utf8(r.body).unwrap(),
            )
        };
        assert_eq!(
            answer("1. Balance\n2. Quit", true),
            (200, true, "CON 1. Balance\n2. Quit".into())
        );
        assert_eq!(answer("Bye", false), (200, true, "END Bye".into()));
    }

    /// A step without its required fields is a 400 naming them; other paths are not ours.
    #[test]
    fn bad_requests_and_other_paths() {
        let bad = AfricasTalking
            .parse(&form("ussd", "text=1&sessionId="), "ussd")
            .unwrap()
            .unwrap_err();
        assert_eq!(bad.answer.status, 400);
        assert!(
            bad.reason.contains("sessionId, phoneNumber, serviceCode"),
            "{}",
            bad.reason
        );
        assert!(AfricasTalking.parse(&form("sms", ""), "ussd").is_none());
        assert!(AfricasTalking
            .parse(&form("ussd/other", ""), "ussd")
            .is_none());
    }

    /// An end-of-session notification becomes an [`Ended`] with its fields.
    #[test]
    fn end_notifications() {
        let parsed = AfricasTalking.parse(
            &form("ussd/end", "sessionId=s1&serviceCode=*1%23&phoneNumber=%2B2547&status=Incomplete&input=1&durationInMillis=5000&cost=KES+0.05"),
            "ussd",
        );
        let Some(Ok(Incoming::Ended(ended))) = parsed else {
            panic!("not an end notice: {parsed:?}");
        };
        assert_eq!(
            (
                ended.session_id.as_str(),
                ended.from.as_str(),
                ended.to.as_str()
            ),
            ("s1", "+2547", "*1#")
        );
        assert_eq!(
            Value::Object(ended.transport_metadata),
            json!({"africastalking": {"session_id": "s1", "status": "Incomplete", "input": "1", "duration_in_millis": "5000"}})
        );
    }
}
