//! The `dmark` channel type: DMARK Mobile's USSD over HTTP, as the original Junebug ships it
//! (vumi's `DmarkUssdTransport`, API.md 4.5), answered synchronously through the shared
//! machinery of [`super::ussd_http`]. This module only maps the wire format.
//!
//! # Wire format (vumi's `DmarkUssdTransport`)
//!
//! DMARK calls the webhook once per user step, with a GET (or a POST with a form body) to
//! `/channels/{id}/inbound/ussd`. In the original the transport listened on a port of its own
//! at `web_path`; here `web_path` (default `ussd`) is the path after
//! `/channels/{id}/inbound/`. Every field below is required, as in vumi:
//!
//! | request field | meaning | our inbound message |
//! |---|---|---|
//! | `transactionId` | unique per session | session key; `transport_metadata.dmark_ussd.transaction_id` |
//! | `msisdn` | the user's number | `from` |
//! | `ussdServiceCode` | the service code | `to` |
//! | `ussdRequestString` | what the user sent (the dialled string on the first step) | `content` |
//! | `transactionTime` | when DMARK got the step (Unix time) | `transport_metadata.dmark_ussd.transaction_time` |
//! | `creationTime` | when the network sent it (Unix time, may be unreliable) | `transport_metadata.dmark_ussd.creation_time` |
//! | `response` | `false` on a new session, `true` after | not used: the session id decides, as in vumi |
//!
//! With `validation_mode: strict` (vumi's default) any other field is refused too.
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"responseString": "<reply>", "action": "request"}` | the reply continues the session |
//! | 200 `{"responseString": "<reply>", "action": "end"}` | the reply closes it (`channel_data.continue_session: false`), or the fallback text after `reply_timeout` |
//! | 400 `{"missing_parameter": [...], "unexpected_parameter": [...]}` | a bad request (vumi's error shape; field names sorted) |
//!
//! Session events: the first step of a `transactionId` is `new`, later ones `resume`
//! (vumi kept the same table in Redis for `ussd_session_timeout`). DMARK sends no notice when
//! the user ends a session.
use std::collections::BTreeSet;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ussd_http::{
    BadRequest, Incoming, Reply, Step, UssdHttpConfig, UssdHttpTransport, Wire,
};
use crate::transport::{ChannelType, ConfigError, Transport};
use crate::transports::parse_config;
use crate::webhook::{WebhookRequest, WebhookResponse};

/// The `dmark` entry of the [`crate::TransportRegistry`].
pub struct DmarkType;

impl ChannelType for DmarkType {
    fn name(&self) -> &'static str {
        "dmark"
    }

    fn description(&self) -> &'static str {
        "DMARK Mobile USSD over HTTP (vumi's DmarkUssdTransport)"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let common = parse_config::<UssdHttpConfig>(config)?.validate()?;
        let own = parse_config::<DmarkConfig>(config)?;
        let strict = match own.validation_mode.as_deref() {
            None | Some("strict") => true,
            Some("permissive") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "validation_mode",
                    format!("must be \"strict\" or \"permissive\", not {other:?}"),
                ))
            }
        };
        Ok(Rc::new(UssdHttpTransport::new(Dmark { strict }, common)))
    }
}

/// The `dmark` config keys besides those of [`UssdHttpConfig`].
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DmarkConfig {
    /// vumi's `validation_mode`: `strict` (the default) refuses requests with fields beyond
    /// the expected ones, `permissive` ignores them.
    #[serde(default)]
    pub validation_mode: Option<String>,
}

/// DMARK's wire format; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Dmark {
    /// Refuse unexpected fields.
    pub strict: bool,
}

/// The fields every step has (vumi's `EXPECTED_FIELDS`).
const EXPECTED: [&str; 7] = [
    "transactionId",
    "msisdn",
    "ussdServiceCode",
    "transactionTime",
    "ussdRequestString",
    "creationTime",
    "response",
];

impl Wire for Dmark {
    fn name(&self) -> &'static str {
        "dmark"
    }

    fn parse(&self, request: &WebhookRequest, path: &str) -> Option<Result<Incoming, BadRequest>> {
        (request.path == path).then(|| self.read(request))
    }

    fn answer(&self, reply: &Reply) -> WebhookResponse {
        let action = if reply.continues { "request" } else { "end" };
        WebhookResponse::json(
            200,
            &json!({"responseString": reply.content, "action": action}),
        )
    }
}

impl Dmark {
    /// A step from the request's query (or form body).
    fn read(&self, request: &WebhookRequest) -> Result<Incoming, BadRequest> {
        let form = request.form();
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let missing: BTreeSet<&str> = EXPECTED
            .into_iter()
            .filter(|name| field(name).is_none())
            .collect();
        let unexpected: BTreeSet<&str> = if self.strict {
            form.iter()
                .map(|(key, _)| key.as_str())
                .filter(|key| !EXPECTED.contains(key))
                .collect()
        } else {
            BTreeSet::new()
        };
        if !missing.is_empty() || !unexpected.is_empty() {
            let mut errors = Map::new();
            if !missing.is_empty() {
                errors.insert("missing_parameter".into(), json!(missing));
            }
            if !unexpected.is_empty() {
                errors.insert("unexpected_parameter".into(), json!(unexpected));
            }
            let errors = Value::Object(errors);
            return Err(BadRequest {
                reason: errors.to_string(),
                answer: WebhookResponse::json(400, &errors),
            });
        }
        let value = |name: &str| field(name).unwrap_or_default();
        let session_id = value("transactionId");
        Ok(Incoming::Step(Step {
            session_id: session_id.clone(),
            from: value("msisdn"),
            to: value("ussdServiceCode"),
            content: Some(value("ussdRequestString")),
            transport_metadata: Map::from_iter([(
                "dmark_ussd".into(),
                json!({
                    "transaction_id": session_id,
                    "transaction_time": value("transactionTime"),
                    "creation_time": value("creationTime"),
                }),
            )]),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(query: &str) -> WebhookRequest {
        WebhookRequest {
            method: "GET".into(),
            path: "ussd".into(),
            query: query.into(),
            ..Default::default()
        }
    }

    const STEP: &str = "transactionId=tx1&msisdn=256700000001&ussdServiceCode=%2A185%2A4%23\
        &transactionTime=1389971940&ussdRequestString=%2A185%2A4%23&creationTime=1389971939&response=false";

    /// A GET step maps to a message as vumi's transport did.
    #[test]
    fn a_step_maps_to_a_message() {
        let Some(Ok(Incoming::Step(step))) = (Dmark { strict: true }).parse(&get(STEP), "ussd")
        else {
            panic!("not a step");
        };
        assert_eq!(step.session_id, "tx1");
        assert_eq!(step.from, "256700000001");
        assert_eq!(step.to, "*185*4#");
        assert_eq!(step.content.as_deref(), Some("*185*4#"));
        assert_eq!(
            Value::Object(step.transport_metadata),
            json!({"dmark_ussd": {"transaction_id": "tx1", "transaction_time": "1389971940", "creation_time": "1389971939"}})
        );
    }

    /// A POST with the same fields as a form body works too.
    #[test]
    fn a_form_post_works_too() {
        let request = WebhookRequest {
            method: "POST".into(),
            path: "ussd".into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: STEP.as_bytes().to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            (Dmark { strict: true }).parse(&request, "ussd"),
            Some(Ok(Incoming::Step(_)))
        ));
    }

    /// Replies become vumi's JSON answers.
    #[test]
    fn answers_are_request_or_end() {
        let answer = |continues| {
            let r = (Dmark { strict: true }).answer(&Reply {
                content: "Hi".into(),
                continues,
            });
            assert_eq!(
                (r.status, r.content_type.as_str()),
                (200, "application/json")
            );
            serde_json::from_slice::<Value>(&r.body).unwrap()
        };
        assert_eq!(
            answer(true),
            json!({"responseString": "Hi", "action": "request"})
        );
        assert_eq!(
            answer(false),
            json!({"responseString": "Hi", "action": "end"})
        );
    }

    /// Missing and (in strict mode) unexpected fields are a 400 in vumi's shape.
    #[test]
    fn bad_requests_name_the_fields() {
        let bad = (Dmark { strict: true })
            .parse(&get("transactionId=1&msisdn=2&foo=bar"), "ussd")
            .unwrap()
            .unwrap_err();
        assert_eq!(bad.answer.status, 400);
        assert_eq!(
            serde_json::from_slice::<Value>(&bad.answer.body).unwrap(),
            json!({
                "missing_parameter": ["creationTime", "response", "transactionTime", "ussdRequestString", "ussdServiceCode"],
                "unexpected_parameter": ["foo"],
            })
        );
        let lenient = Dmark { strict: false };
        let extra = format!("{STEP}&foo=bar");
        assert!(matches!(lenient.parse(&get(&extra), "ussd"), Some(Ok(_))));
        assert!((Dmark { strict: true })
            .parse(&get(&extra), "ussd")
            .unwrap()
            .is_err());
        assert!(lenient
            .parse(
                &WebhookRequest {
                    path: "x".into(),
                    ..get(STEP)
                },
                "ussd"
            )
            .is_none());
    }
}
