//! The `config` of a `twilio` channel: [`TwilioConfig`] as the API receives it, and
//! [`TwilioSettings`], what [`TwilioConfig::validate`] makes of it.
use serde::Deserialize;

use crate::transport::ConfigError;
use crate::transports::web::{self, Auth, Redactor, RequestConfig, RequestSettings};
use crate::transports::Password;

/// Twilio's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// A `twilio` channel's `config`. No `Debug`: it holds credentials; [`TwilioSettings`]
/// masks them.
#[derive(Deserialize, Clone, Default, PartialEq)]
pub struct TwilioConfig {
    /// The account SID (`AC…`). Required.
    pub account_sid: String,
    /// The account's auth token: the API password (unless an API key is given) and the key
    /// of the webhook signatures. Never logged.
    #[serde(default)]
    pub auth_token: Option<Password>,
    /// An API key SID (`SK…`), with `api_key_secret`: the API credentials instead of the
    /// auth token.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// The API key's secret. Never logged.
    #[serde(default)]
    pub api_key_secret: Option<Password>,
    /// The sender: a Twilio number (E.164) or an alphanumeric sender id.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG…`) that picks the sender. `from` or this is required.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The API root (default [`DEFAULT_BASE_URL`]).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The public URL of this channel's webhooks up to and including `/inbound` (e.g.
    /// `https://sms.example.org/channels/ID/inbound`), as Twilio calls them: the base of
    /// the signed URL behind a proxy that rewrites it, and of the default status callback.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The `StatusCallback` sent with each message (default: `{public_url}/status` when
    /// `public_url` is set; else none, and Twilio sends no delivery reports).
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// Whether webhooks must carry a valid `X-Twilio-Signature` (needs `auth_token`).
    #[serde(default)]
    pub validate_signatures: bool,
    /// `timeout`, `retry_delay`, `throttle_delay`, `degraded_after`.
    #[serde(flatten)]
    pub requests: RequestConfig,
}

/// Who sends: a number or sender id, a Messaging Service, or both (the number must then
/// belong to the service).
#[derive(Clone, Debug, PartialEq)]
pub struct Sender {
    /// `From`.
    pub from: Option<String>,
    /// `MessagingServiceSid`.
    pub messaging_service_sid: Option<String>,
}

/// A validated [`TwilioConfig`].
#[derive(Clone, Debug)]
pub struct TwilioSettings {
    /// `{base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`.
    pub messages_url: String,
    /// Basic credentials for the API.
    pub auth: Auth,
    /// Who sends.
    pub sender: Sender,
    /// `StatusCallback`, if any.
    pub status_callback: Option<String>,
    /// The public webhook base, if configured.
    pub public_url: Option<String>,
    /// The key of webhook signatures, when they are checked.
    pub signing_key: Option<Password>,
    /// Timeout, outcome rules, health threshold.
    pub requests: RequestSettings,
    /// Masks the auth token and API key secret in the channel log.
    pub redactor: Redactor,
}

impl TwilioConfig {
    /// Checks the config; errors name the key.
    pub fn validate(self) -> Result<TwilioSettings, ConfigError> {
        let sid = &self.account_sid;
        if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                "account_sid",
                "must be the account SID: letters and digits (AC…)",
            ));
        }
        let auth = match (&self.api_key_sid, &self.api_key_secret, &self.auth_token) {
            (Some(key), Some(secret), _) if !key.is_empty() && !key.contains(':') => Auth::Basic {
                username: key.clone(),
                password: secret.clone(),
            },
            (Some(_), Some(_), _) => {
                return Err(ConfigError::new("api_key_sid", "must be an API key SID"))
            }
            (Some(_), None, _) => {
                return Err(ConfigError::new(
                    "api_key_secret",
                    "is required with api_key_sid",
                ))
            }
            (None, Some(_), _) => {
                return Err(ConfigError::new(
                    "api_key_sid",
                    "is required with api_key_secret",
                ))
            }
            (None, None, Some(token)) => Auth::Basic {
                username: sid.clone(),
                password: token.clone(),
            },
            (None, None, None) => {
                return Err(ConfigError::new(
                    "auth_token",
                    "is required (or api_key_sid and api_key_secret)",
                ))
            }
        };
        let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
        let sender = Sender {
            from: non_empty(self.from),
            messaging_service_sid: non_empty(self.messaging_service_sid),
        };
        if sender.from.is_none() && sender.messaging_service_sid.is_none() {
            return Err(ConfigError::new(
                "from",
                "is required (or messaging_service_sid)",
            ));
        }
        let base = web::base_url(
            "base_url",
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let public_url = self
            .public_url
            .as_deref()
            .map(|url| web::base_url("public_url", url))
            .transpose()?;
        let status_callback = match (self.status_callback_url, &public_url) {
            (Some(url), _) => Some(web::base_url("status_callback_url", &url)?),
            (None, Some(public)) => Some(format!("{public}/status")),
            (None, None) => None,
        };
        let signing_key = match (self.validate_signatures, &self.auth_token) {
            (false, _) => None,
            (true, Some(token)) if !token.reveal().is_empty() => Some(token.clone()),
            (true, _) => {
                return Err(ConfigError::new(
                    "auth_token",
                    "is required to validate signatures (Twilio signs with it)",
                ))
            }
        };
        let secrets = [&self.auth_token, &self.api_key_secret];
        let redactor = Redactor::new(secrets.into_iter().flatten().map(Password::reveal));
        Ok(TwilioSettings {
            messages_url: format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"),
            auth,
            sender,
            status_callback,
            public_url,
            signing_key,
            requests: self.requests.validate()?,
            redactor,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<TwilioSettings, ConfigError> {
        parse_config::<TwilioConfig>(&config)?.validate()
    }

    /// The smallest config: account, token, sender; Twilio's API root; no callback.
    #[test]
    fn defaults() {
        let s =
            settings(json!({"account_sid": "AC1", "auth_token": "t", "from": "+1555"})).unwrap();
        assert_eq!(
            s.messages_url,
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert_eq!(
            s.auth,
            Auth::Basic {
                username: "AC1".into(),
                password: Password("t".into())
            }
        );
        assert_eq!((s.status_callback, s.signing_key), (None, None));
        assert_eq!(s.requests.degraded_after, 3);
    }

    /// An API key replaces the token as credentials; the public URL gives the callback.
    #[test]
    fn api_key_and_public_url() {
        let s = settings(json!({
            "account_sid": "AC1", "api_key_sid": "SK9", "api_key_secret": "sec",
            "messaging_service_sid": "MG1", "base_url": "http://127.0.0.1:9/",
            "public_url": "https://jb.example/channels/c/inbound/",
        }))
        .unwrap();
        assert_eq!(
            s.messages_url,
            "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert!(matches!(&s.auth, Auth::Basic { username, .. } if username == "SK9"));
        assert_eq!(
            s.status_callback.as_deref(),
            Some("https://jb.example/channels/c/inbound/status")
        );
        assert_eq!(s.redactor.text("x sec y"), "x ******** y");
    }

    /// Errors name the key.
    #[test]
    fn errors_name_the_key() {
        let base = json!({"account_sid": "AC1", "auth_token": "t", "from": "+1"});
        for (change, key) in [
            (json!({"account_sid": "AC/../x"}), "account_sid"),
            (json!({"auth_token": null}), "auth_token"),
            (json!({"api_key_sid": "SK1"}), "api_key_secret"),
            (json!({"api_key_secret": "s"}), "api_key_sid"),
            (json!({"from": ""}), "from"),
            (json!({"base_url": "ftp://x"}), "base_url"),
            (json!({"public_url": "nope"}), "public_url"),
            (json!({"validate_signatures": "yes"}), "validate_signatures"),
            (json!({"degraded_after": 0}), "degraded_after"),
            (json!({"timeout": -1}), "timeout"),
        ] {
            let mut config = base.clone();
            for (k, v) in change.as_object().unwrap() {
                config[k] = v.clone();
            }
            let config = Value::Object(
                config
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            let error = settings(config.clone()).err();
            assert_eq!(error.map(|e| e.key), Some(key.to_owned()), "{config}");
        }
        let no_token = json!({"account_sid": "AC1", "api_key_sid": "SK1",
            "api_key_secret": "s", "from": "+1", "validate_signatures": true});
        assert_eq!(settings(no_token).unwrap_err().key, "auth_token");
    }
}
