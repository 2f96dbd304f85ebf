//! Request body schemas (JSON Schema Draft 4, as the original's `validate.py`) and their
//! checking with the `jsonschema` crate. Every violation is reported, one entry each, with
//! the schema path of the failing keyword; messages name the field and the value.
use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::{json, Value};

use super::errors::{ApiError, Violation};

fn compile(schema: Value) -> Validator {
    // Start-up only: the schemas are constants, checked by the tests below.
    jsonschema::draft4::new(&schema).expect("a valid Draft 4 schema")
}

fn channel_properties(nullable_urls: bool) -> Value {
    let url = if nullable_urls {
        json!({"type": ["string", "null"]})
    } else {
        json!({"type": "string"})
    };
    let mut props = json!({
        "type": {"type": "string"},
        "label": {"type": "string"},
        "config": {"type": "object"},
        "metadata": {"type": "object"},
        "status_url": url,
        "mo_url": url,
        "rate_limit_count": {"type": "integer", "minimum": 0},
        "rate_limit_window": {"type": "integer", "minimum": 0},
        "character_limit": {"type": "integer", "minimum": 0},
        "message_ttl": {"type": "integer", "minimum": 0},
        "max_in_flight": {"type": "integer", "minimum": 1, "maximum": 10000},
        "callback_secret": {"type": "string", "minLength": 1},
    });
    if !nullable_urls {
        props["mo_url_auth_token"] = json!({"type": "string"});
        props["amqp_queue"] = json!({"type": "string"});
    }
    props
}

/// `POST /channels/`.
pub static CHANNEL_CREATE: LazyLock<Validator> = LazyLock::new(|| {
    compile(json!({
        "type": "object",
        "properties": channel_properties(false),
        "required": ["type", "config"],
    }))
});

/// `POST /channels/{id}`.
pub static CHANNEL_UPDATE: LazyLock<Validator> =
    LazyLock::new(|| compile(json!({"type": "object", "properties": channel_properties(true)})));

/// The accepted forms of `priority` (API.md 15.5).
const PRIORITY_HELP: &str =
    "must be an integer from 1 to 5, the same as a string, \"bulk\" or \"realtime\"";

/// `POST /channels/{id}/messages/`.
pub static MESSAGE_SEND: LazyLock<Validator> = LazyLock::new(|| {
    compile(json!({
        "type": "object",
        "properties": {
            "content": {"type": ["string", "null"]},
            "to": {"type": "string"},
            "from": {"type": ["string", "null"]},
            "group": {"type": ["string", "null"]},
            "reply_to": {"type": "string"},
            "event_url": {"type": "string"},
            "event_auth_token": {"type": "string"},
            "callback_secret": {"type": "string", "minLength": 1},
            "event_url_method": {"type": ["string", "null"]},
            "priority": {"anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 5},
                {"type": "string", "enum": ["1", "2", "3", "4", "5", "bulk", "realtime"]},
            ]},
            "channel_data": {"type": "object"},
            "expires_at": {"type": "string"},
            "ttl": {"type": "integer", "minimum": 1},
        },
        "required": ["content"],
        "additionalProperties": false,
    }))
});

/// Checks `body` against `schema`: every violation, or nothing.
pub fn validate(schema: &Validator, body: &Value) -> Result<(), ApiError> {
    let violations: Vec<Violation> = schema
        .iter_errors(body)
        .map(|error| {
            let field = error
                .instance_path()
                .as_str()
                .trim_start_matches('/')
                .to_owned();
            let message = if field == "priority" {
                format!("priority {PRIORITY_HELP}, not {}", error.instance())
            } else if field.is_empty() {
                error.to_string()
            } else {
                format!("{field}: {error}")
            };
            Violation {
                message,
                schema_path: schema_path(error.schema_path().as_str()),
            }
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InvalidBody(violations))
    }
}

/// A JSON pointer as a list of segments, array indexes as numbers (`["anyOf", 0]`).
fn schema_path(pointer: &str) -> Vec<Value> {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            match segment.parse::<u64>() {
                Ok(index) => json!(index),
                Err(_) => json!(segment),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(schema: &Validator, body: Value) -> Vec<Violation> {
        match validate(schema, &body) {
            Err(ApiError::InvalidBody(v)) => v,
            other => panic!("expected violations, got {other:?}"),
        }
    }

    /// Each missing required property is its own entry.
    #[test]
    fn missing_required_properties_are_reported_one_each() {
        let v = violations(&CHANNEL_CREATE, json!({}));
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.schema_path == [json!("required")]));
        assert!(v.iter().any(|v| v.message.contains("\"type\"")));
    }

    /// A minimum violation has the original's path and names field and value.
    #[test]
    fn minimum_violation_has_the_keyword_path() {
        let v = violations(
            &CHANNEL_CREATE,
            json!({"type": "telnet", "config": {}, "rate_limit_count": -3}),
        );
        assert_eq!(
            v[0].schema_path,
            ["properties", "rate_limit_count", "minimum"]
        );
        assert!(v[0].message.contains("rate_limit_count") && v[0].message.contains("-3"));
    }

    /// Extra keys on a send are refused; a body that is not an object is a type error.
    #[test]
    fn additional_properties_and_non_objects_are_refused() {
        let v = violations(&MESSAGE_SEND, json!({"content": "x", "foo": 1}));
        assert_eq!(v[0].schema_path, ["additionalProperties"]);
        assert!(v[0].message.contains("foo"));
        let v = violations(&MESSAGE_SEND, json!([1]));
        assert!(v.iter().any(|v| v.schema_path == [json!("type")]));
    }

    /// Priority takes numbers 1-5, numeric strings and the two names, nothing else.
    #[test]
    fn priority_forms() {
        for ok in [
            json!(1),
            json!(5),
            json!("3"),
            json!("bulk"),
            json!("realtime"),
        ] {
            assert!(validate(&MESSAGE_SEND, &json!({"content": null, "priority": ok})).is_ok());
        }
        for bad in [json!(0), json!(6), json!("urgent"), json!(2.5), json!(null)] {
            let v = violations(&MESSAGE_SEND, json!({"content": null, "priority": bad}));
            assert!(v[0].message.starts_with("priority must be"), "{:?}", v[0]);
        }
    }

    /// Updates accept null URLs; creation does not.
    #[test]
    fn null_urls_only_on_update() {
        assert!(validate(&CHANNEL_UPDATE, &json!({"mo_url": null})).is_ok());
        let v = violations(
            &CHANNEL_CREATE,
            json!({"type": "t", "config": {}, "mo_url": null}),
        );
        assert_eq!(v[0].schema_path, ["properties", "mo_url", "type"]);
    }
}
