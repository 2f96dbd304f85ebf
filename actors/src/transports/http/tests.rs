//! Unit tests of the `http` channel type: templates, config errors, the requests built.
use serde_json::{json, Map, Value};

use super::config::{Body, HttpConfig};
use super::template::Template;
use crate::message::{DeliveryStatus, Message};
use crate::transport::{ChannelType, ConfigError};
use crate::transports::parse_config;
use crate::transports::web::{request_trace, Auth, Method};

fn message(content: Option<&str>) -> Message {
    Message {
        message_id: "a".repeat(32),
        timestamp: String::new(),
        to_addr: Some("+27 82 555/1234".into()),
        from_addr: Some("JB".into()),
        group: None,
        in_reply_to: None,
        session_event: None,
        content: content.map(str::to_owned),
        transport_name: "ch".into(),
        transport_type: "sms".into(),
        transport_metadata: Map::new(),
        helper_metadata: Map::new(),
        expires_at: None,
    }
}

fn settings(config: Value) -> Result<super::HttpSettings, ConfigError> {
    parse_config::<HttpConfig>(&config)?.validate()
}

fn error(config: Value) -> ConfigError {
    match settings(config) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

/// Placeholders are replaced; `{{`/`}}` are braces; URL values are percent-encoded.
#[test]
fn templates_expand_and_encode() {
    let t = Template::parse("to={to}&t={content} {{x}}").unwrap();
    let m = message(Some("héllo & bye"));
    assert_eq!(t.render(&m, "ch"), "to=+27 82 555/1234&t=héllo & bye {x}");
    assert_eq!(
        t.render_url(&m, "ch"),
        "to=%2B27%2082%20555%2F1234&t=h%C3%A9llo%20%26%20bye {x}"
    );
    let missing = Template::parse("[{reply_to}]").unwrap();
    assert_eq!(missing.render(&m, "ch"), "[]");
    assert_eq!(
        Template::parse("{channel_id}/{message_id}")
            .unwrap()
            .render(&m, "c1"),
        format!("c1/{}", "a".repeat(32))
    );
}

/// Unknown, unclosed and stray placeholders are refused.
#[test]
fn bad_templates_are_refused() {
    assert!(Template::parse("{nope}")
        .unwrap_err()
        .contains("unknown placeholder {nope}"));
    assert!(Template::parse("{to").unwrap_err().contains("unclosed"));
    assert!(Template::parse("a}b").unwrap_err().contains("lone }"));
}

/// A POST with a JSON template: sole placeholders keep their JSON type (null when
/// missing); other strings are expanded; literals stay.
#[test]
fn json_body_and_bearer_auth() {
    let s = settings(json!({
        "url": "https://api.example/v1/messages?ref={message_id}",
        "json_body": {"messages": [{"to": "{to}", "text": "{content}", "tag": "jb-{from}",
                      "flash": false}]},
        "auth": {"type": "bearer", "token": "T0K"},
        "headers": {"X-Api-Key": "K3Y", "Accept": "application/json"},
    }))
    .unwrap();
    let request = s.request(&message(None), "ch");
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        format!("https://api.example/v1/messages?ref={}", "a".repeat(32))
    );
    assert!(matches!(&request.auth, Some(Auth::Bearer(token)) if token.reveal() == "T0K"));
    assert!(
        !format!("{s:?}").contains("T0K"),
        "settings' Debug masks secrets"
    );
    let (kind, body) = request.body.clone().unwrap();
    assert_eq!(kind, "application/json");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"messages": [{"to": "+27 82 555/1234", "text": null, "tag": "jb-JB", "flash": false}]})
    );
    let trace = request_trace(&s.redactor, &request).to_string();
    assert!(!trace.contains("T0K") && !trace.contains("K3Y"), "{trace}");
}

/// A GET with form fields: they go in the query, form-encoded; basic auth.
#[test]
fn get_with_form_fields_in_the_query() {
    let s = settings(json!({
        "url": "http://sms.example/send?user=jb",
        "method": "get",
        "form_body": {"to": "{to}", "text": "{content}"},
        "auth": {"type": "basic", "username": "u", "password": "p@ss"},
    }))
    .unwrap();
    let request = s.request(&message(Some("a b&c")), "ch");
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.body, None);
    assert_eq!(
        request.url,
        "http://sms.example/send?user=jb&text=a+b%26c&to=%2B27+82+555%2F1234"
    );
}

/// Without a body template a POST sends the default JSON body.
#[test]
fn default_body() {
    let s = settings(json!({"url": "http://127.0.0.1:9/send"})).unwrap();
    assert!(matches!(s.body, Body::Json(_)));
    let (_, body) = s.request(&message(Some("hi")), "ch").body.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["content"], "hi");
    assert_eq!(body["to"], "+27 82 555/1234");
    assert_eq!(
        s.dlr_statuses.get("delivered"),
        Some(&DeliveryStatus::Delivered)
    );
    assert_eq!(s.mo_fields[1], "from");
}

/// Each bad config is refused at creation, naming its key.
#[test]
fn config_errors_name_the_key() {
    let cases = [
        (json!({}), "url"),
        (json!({"url": "ftp://x/"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://x/{bad}"}), "url"),
        (json!({"url": "http://x/", "method": "PUT"}), "method"),
        (
            json!({"url": "http://x/", "method": "GET", "json_body": {}}),
            "json_body",
        ),
        (
            json!({"url": "http://x/", "json_body": {}, "form_body": {}}),
            "form_body",
        ),
        (
            json!({"url": "http://x/", "json_body": {"a": "{nope}"}}),
            "json_body",
        ),
        (
            json!({"url": "http://x/", "form_body": {"a": "{x"}}),
            "form_body.a",
        ),
        (
            json!({"url": "http://x/", "headers": {"bad name": "v"}}),
            "headers.bad name",
        ),
        (
            json!({"url": "http://x/", "auth": {"type": "digest"}}),
            "auth",
        ),
        (
            json!({"url": "http://x/", "auth": {"type": "bearer"}}),
            "auth",
        ),
        (
            json!({"url": "http://x/", "auth": {"type": "bearer", "token": ""}}),
            "auth.token",
        ),
        (
            json!({"url": "http://x/", "retry_statuses": [700]}),
            "retry_statuses",
        ),
        (json!({"url": "http://x/", "timeout": 0}), "timeout"),
        (
            json!({"url": "http://x/", "message_id_field": "a..b"}),
            "message_id_field",
        ),
        (
            json!({"url": "http://x/", "dlr_statuses": {"DELIVRD": "ok"}}),
            "dlr_statuses",
        ),
        (
            json!({"url": "http://x/", "dlr_statuses": {}}),
            "dlr_statuses",
        ),
        (
            json!({"url": "http://x/", "mo_fields": {"sender": "x"}}),
            "mo_fields",
        ),
        (
            json!({"url": "http://x/", "degraded_after": 0}),
            "degraded_after",
        ),
    ];
    for (config, key) in cases {
        let e = error(config.clone());
        assert_eq!(e.key, key, "{config} gave {e}");
    }
}

/// The registry knows the type, and building validates the config.
#[test]
fn registered() {
    let registry = crate::TransportRegistry::builtin();
    let http = registry.get("http").expect("http is registered");
    assert!(super::HttpType
        .build("c", &json!({"url": "http://127.0.0.1/"}))
        .is_ok());
    assert!(http.build("c", &json!({"url": 3})).is_err());
}

/// Webhook requests as a table: path, content type, body → answer status, and what reached
/// the host (inbound messages, delivery reports) or the log (a warning for each refusal).
#[test]
fn webhooks() {
    use crate::ports::LogLevel;
    use crate::transports::testkit::{run_local, RecordingHost};
    use crate::webhook::WebhookRequest;

    run_local(|| async {
        let host = RecordingHost::new();
        let (ctx, _failures) = host.context("ch");
        let transport = super::HttpType
            .build(
                "ch",
                &json!({"url": "http://127.0.0.1:9/", "secrets": ["hush"],
                        "dlr_statuses": {"DELIVRD": "delivered", "UNDELIV": "failed"},
                        "mo_fields": {"content": "msg.text"}}),
            )
            .unwrap();
        transport.start(ctx).await.unwrap();
        let json_type = "application/json";
        let form_type = "application/x-www-form-urlencoded";
        let cases: [(&str, &str, &str, &str, u16); 9] = [
            (
                "POST",
                "mo",
                json_type,
                r#"{"from": "+27", "to": "123", "msg": {"text": "hi"}}"#,
                200,
            ),
            ("POST", "mo", form_type, "from=%2B27&msg.text=form", 200),
            ("POST", "mo", json_type, r#"{"to": "123"}"#, 400),
            ("POST", "mo", json_type, "[1]", 400),
            ("POST", "dlr", form_type, "id=p1&status=delivrd", 200),
            (
                "POST",
                "dlr",
                json_type,
                r#"{"id": 7, "status": "UNDELIV"}"#,
                200,
            ),
            (
                "POST",
                "dlr",
                json_type,
                r#"{"id": "p1", "status": "hush"}"#,
                400,
            ),
            ("POST", "dlr", json_type, "{oops", 400),
            ("PUT", "dlr", json_type, "{}", 405),
        ];
        for (method, path, kind, body, status) in cases {
            let request = WebhookRequest {
                method: method.into(),
                path: path.into(),
                headers: vec![("content-type".into(), kind.into())],
                body: body.as_bytes().to_vec(),
                ..Default::default()
            };
            let answer = transport.webhook(request).await;
            assert_eq!(answer.status, status, "{method} {path} {body}");
        }
        let unknown = WebhookRequest {
            method: "POST".into(),
            path: "other".into(),
            ..Default::default()
        };
        assert_eq!(transport.webhook(unknown).await.status, 404);

        let inbound: Vec<_> = host.inbound().all().into_iter().map(|(_, m)| m).collect();
        assert_eq!(inbound.len(), 2);
        assert_eq!(inbound[0].from_addr.as_deref(), Some("+27"));
        assert_eq!(inbound[0].to_addr.as_deref(), Some("123"));
        assert_eq!(inbound[0].content.as_deref(), Some("hi"));
        assert_eq!(inbound[0].transport_name, "ch");
        assert_eq!(inbound[1].content.as_deref(), Some("form"));
        let reports: Vec<_> = host.reports().all().into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.provider_message_id.as_str(), r.status))
                .collect::<Vec<_>>(),
            [
                ("p1", DeliveryStatus::Delivered),
                ("7", DeliveryStatus::Failed)
            ]
        );
        let warnings: Vec<_> = host
            .logs()
            .all()
            .into_iter()
            .map(|(_, record)| record)
            .filter(|record| record.level == LogLevel::Warning)
            .collect();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        let logged = format!("{warnings:?}");
        assert!(
            !logged.contains("hush"),
            "a secret reached the log: {logged}"
        );
        transport.stop().await;
    });
}

/// With `webhook_token`, only requests carrying it are taken; the others get 401 and a
/// warning, and the token never reaches the log.
#[test]
fn webhook_token() {
    use crate::transports::testkit::{run_local, RecordingHost};
    use crate::webhook::WebhookRequest;

    run_local(|| async {
        let host = RecordingHost::new();
        let (ctx, _failures) = host.context("ch");
        let transport = super::HttpType
            .build(
                "ch",
                &json!({"url": "http://127.0.0.1:9/", "webhook_token": "w-t0k"}),
            )
            .unwrap();
        transport.start(ctx).await.unwrap();
        let request = |query: &str, headers: Vec<(&str, &str)>| WebhookRequest {
            method: "POST".into(),
            path: "mo".into(),
            query: format!("from=%2B27&{query}"),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        };
        let cases = [
            (request("", vec![]), 401),
            (request("token=wrong", vec![]), 401),
            (request("token=w-t0k", vec![]), 200),
            (request("", vec![("authorization", "Bearer w-t0k")]), 200),
            (request("", vec![("x-webhook-token", "w-t0k")]), 200),
            (request("", vec![("x-webhook-token", "w-t0")]), 401),
        ];
        for (i, (request, status)) in cases.into_iter().enumerate() {
            assert_eq!(transport.webhook(request).await.status, status, "case {i}");
        }
        assert_eq!(host.inbound().len(), 3);
        let logged = format!("{:?}", host.logs().all());
        assert!(!logged.contains("w-t0k"), "{logged}");
        assert_eq!(
            error(json!({"url": "http://x/", "webhook_token": ""})).key,
            "webhook_token"
        );
    });
}
