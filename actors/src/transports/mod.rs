//! One module per channel type, each registered in [`crate::TransportRegistry::builtin`].
//!
//! - [`irc`]: an IRC bot in channels and private messages.
//! - [`smpp`]: an SMPP 3.4 ESME for SMS and USSD.
//! - [`telnet`]: a telnet server; each connected client is an address (the getting-started
//!   channel type).
//! - [`tls`]: TLS to a provider's server, for the types that dial out.
//! - `testkit` (tests, or the `testkit` feature): the shared harness for transport and
//!   actor tests.
//!
//! Shared here: [`parse_config`], which turns a channel's JSON `config` into a channel
//! type's typed config and names the offending key when it cannot, and
//! [`parse_client_endpoint`], vumi's `tcp:host=H:port=P` form of a server's address.
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::transport::ConfigError;

pub mod irc;
pub mod smpp;
pub mod telnet;
pub mod tls;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// Deserialises a channel's `config` into `T`, with errors that name the key.
///
/// `null` counts as `{}`. Keys `T` does not know are ignored (old vumi configs carry many).
/// When a value has the wrong type, the error names its key: each key is tried alone, and
/// the first whose value fails on its own is the culprit. A missing required field is named
/// by serde itself. Cross-field rules belong to the type's own `validate`.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    let object = match config {
        Value::Null => Map::new(),
        Value::Object(object) => object.clone(),
        other => {
            return Err(ConfigError::new(
                "",
                format!("config must be a JSON object, not {other}"),
            ))
        }
    };
    let error = match serde_json::from_value::<T>(Value::Object(object.clone())) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error.to_string(),
    };
    if let Some(field) = missing_field(&error) {
        return Err(ConfigError::new(field, "is required"));
    }
    for (key, value) in &object {
        let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<T>(alone) {
            let message = e.to_string();
            if missing_field(&message).is_none() {
                return Err(ConfigError::new(key.as_str(), message));
            }
        }
    }
    Err(ConfigError::new("", error))
}

/// Host and port of a vumi client endpoint `tcp:host=H:port=P` (config key
/// `twisted_endpoint`).
pub fn parse_client_endpoint(endpoint: &str) -> Result<(String, u16), ConfigError> {
    let bad = || {
        ConfigError::new(
            "twisted_endpoint",
            format!("must look like tcp:host=HOST:port=PORT, not {endpoint:?}"),
        )
    };
    let mut fields = endpoint.split(':');
    if fields.next() != Some("tcp") {
        return Err(bad());
    }
    let (mut host, mut port) = (None, None);
    for field in fields {
        match field.split_once('=') {
            Some(("host", value)) if !value.is_empty() => host = Some(value.to_owned()),
            Some(("port", value)) => port = Some(value.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    host.zip(port).ok_or_else(bad)
}

/// The field of serde's "missing field `name`" error.
fn missing_field(error: &str) -> Option<&str> {
    error
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Example {
        name: String,
        #[serde(default)]
        count: Option<u32>,
    }

    /// A wrong type is reported under its key; unknown keys are ignored.
    #[test]
    fn parse_config_names_the_bad_key() {
        let ok: Example = parse_config(&json!({"name": "a", "count": 2, "extra": [1]})).unwrap();
        assert_eq!(
            ok,
            Example {
                name: "a".into(),
                count: Some(2)
            }
        );
        let err = parse_config::<Example>(&json!({"name": "a", "count": "x"})).unwrap_err();
        assert_eq!(err.key, "count");
        assert!(err.message.contains("invalid type"), "{err}");
        let err = parse_config::<Example>(&json!({"count": 1})).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.message.as_str()),
            ("name", "is required")
        );
        let err = parse_config::<Example>(&json!({"count": -1})).unwrap_err();
        assert_eq!(err.key, "count", "a bad value wins over a missing field");
        assert!(parse_config::<Example>(&json!(3)).is_err());
    }
}
