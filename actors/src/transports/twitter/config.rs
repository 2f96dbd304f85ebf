//! The `config` of a `twitter` channel: [`TwitterConfig`] as the API receives it (vumi's
//! `TwitterTransport` keys where they exist) and [`TwitterSettings`], what
//! [`TwitterConfig::validate`] makes of it.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::oauth::Credentials;
use crate::transport::ConfigError;
use crate::transports::web::Redactor;
use crate::transports::{seconds, Password};

/// Where the X API lives unless `base_url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.x.com";

/// A `twitter` channel's `config` object. No `Debug`: it holds credentials.
#[derive(Deserialize, Clone, Default)]
pub struct TwitterConfig {
    /// OAuth 1.0a user context: the app's API key (vumi `consumer_key`).
    #[serde(default)]
    pub consumer_key: Option<Password>,
    /// OAuth 1.0a: the app's API key secret.
    #[serde(default)]
    pub consumer_secret: Option<Password>,
    /// OAuth 1.0a: the account's access token.
    #[serde(default)]
    pub access_token: Option<Password>,
    /// OAuth 1.0a: the account's access token secret.
    #[serde(default)]
    pub access_token_secret: Option<Password>,
    /// OAuth 2.0 user context instead: the account's user access token.
    #[serde(default)]
    pub bearer_token: Option<Password>,
    /// The API's root (default `https://api.x.com`); a local server in tests.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The account's user id; learned from `GET /2/users/me` when absent.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The account's screen name (without `@`); learned from `GET /2/users/me` when absent.
    #[serde(default)]
    pub screen_name: Option<String>,
    /// vumi's `endpoints`: its keys (`tweets`, `dms`) say which kinds of message the channel
    /// handles; the values (vumi endpoint names) are ignored. Default: both.
    #[serde(default)]
    pub endpoints: Option<BTreeMap<String, Value>>,
    /// Seconds between two polls for mentions and direct messages (default 60, at least 1).
    #[serde(default)]
    pub poll_interval: Option<f64>,
    /// Seconds a request may take (default 30).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Seconds before a send that failed for a passing reason (5xx, timeout) is tried again
    /// (default 5).
    #[serde(default)]
    pub retry_delay: Option<f64>,
}

/// What a `twitter` channel runs with.
#[derive(Debug, Clone)]
pub struct TwitterSettings {
    /// How requests are signed.
    pub credentials: Credentials,
    /// The API's root, without a trailing `/`.
    pub base_url: String,
    /// The account's user id, when configured.
    pub user_id: Option<String>,
    /// The account's screen name (without `@`), when configured.
    pub screen_name: Option<String>,
    /// Whether mentions are read and tweets sent.
    pub tweets: bool,
    /// Whether direct messages are read and sent.
    pub dms: bool,
    /// Between two polls.
    pub poll_interval: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Before a failed send is tried again.
    pub retry_delay: Duration,
    /// Masks the credentials in the channel log.
    pub redactor: Redactor,
}

impl TwitterConfig {
    /// Checks the config and fills in defaults.
    pub fn validate(self) -> Result<TwitterSettings, ConfigError> {
        let credentials = self.credentials()?;
        let base_url = self
            .base_url
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        match url::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(ConfigError::new(
                    "base_url",
                    format!("must be an http(s) URL, not {base_url:?}"),
                ))
            }
        }
        let (tweets, dms) = match &self.endpoints {
            None => (true, true),
            Some(endpoints) => {
                if let Some(unknown) = endpoints
                    .keys()
                    .find(|k| !matches!(k.as_str(), "tweets" | "dms"))
                {
                    return Err(ConfigError::new(
                        "endpoints",
                        format!("knows tweets and dms, not {unknown:?}"),
                    ));
                }
                (
                    endpoints.contains_key("tweets"),
                    endpoints.contains_key("dms"),
                )
            }
        };
        if !tweets && !dms {
            return Err(ConfigError::new("endpoints", "needs tweets, dms or both"));
        }
        let poll_interval = seconds("poll_interval", self.poll_interval, 60.0)?;
        if poll_interval < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "poll_interval",
                "must be at least 1 second",
            ));
        }
        let screen_name = self
            .screen_name
            .map(|name| name.trim_start_matches('@').to_owned())
            .filter(|name| !name.is_empty());
        Ok(TwitterSettings {
            redactor: credentials.redactor(),
            credentials,
            base_url,
            user_id: self.user_id.filter(|id| !id.is_empty()),
            screen_name,
            tweets,
            dms,
            poll_interval,
            timeout: seconds("timeout", self.timeout, 30.0)?,
            retry_delay: seconds("retry_delay", self.retry_delay, 5.0)?,
        })
    }

    /// OAuth 1.0a (all four keys) or a bearer token, not both, not neither.
    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let oauth1 = [
            ("consumer_key", &self.consumer_key),
            ("consumer_secret", &self.consumer_secret),
            ("access_token", &self.access_token),
            ("access_token_secret", &self.access_token_secret),
        ];
        let given = oauth1.iter().filter(|(_, value)| value.is_some()).count();
        match (&self.bearer_token, given) {
            (Some(_), 1..) => Err(ConfigError::new(
                "bearer_token",
                "give OAuth 1.0a keys or a bearer_token, not both",
            )),
            (Some(token), 0) => Ok(Credentials::Bearer(token.clone())),
            (None, 0) => Err(ConfigError::new(
                "consumer_key",
                "is required (with consumer_secret, access_token and access_token_secret), \
                 unless bearer_token is given",
            )),
            (None, _) => match (
                &self.consumer_key,
                &self.consumer_secret,
                &self.access_token,
                &self.access_token_secret,
            ) {
                (Some(key), Some(secret), Some(token), Some(token_secret)) => {
                    Ok(Credentials::OAuth1 {
                        consumer_key: key.clone(),
                        consumer_secret: secret.clone(),
                        access_token: token.clone(),
                        access_token_secret: token_secret.clone(),
                    })
                }
                _ => {
                    let missing = oauth1
                        .iter()
                        .find(|(_, value)| value.is_none())
                        .map_or("consumer_key", |(key, _)| *key);
                    Err(ConfigError::new(
                        missing,
                        "is required with the other OAuth 1.0a keys",
                    ))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::transports::parse_config;

    fn validate(config: Value) -> Result<TwitterSettings, ConfigError> {
        parse_config::<TwitterConfig>(&config)?.validate()
    }

    fn oauth1() -> Value {
        json!({"consumer_key": "ck", "consumer_secret": "cs",
               "access_token": "at", "access_token_secret": "ats"})
    }

    /// Defaults: api.x.com, both kinds, a poll a minute.
    #[test]
    fn defaults() {
        let settings = validate(oauth1()).unwrap();
        assert_eq!(settings.base_url, DEFAULT_BASE_URL);
        assert!(settings.tweets && settings.dms);
        assert_eq!(settings.poll_interval, Duration::from_secs(60));
        assert!(matches!(settings.credentials, Credentials::OAuth1 { .. }));
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("ats") && !debug.contains("\"cs\""),
            "{debug}"
        );
    }

    /// Errors name the key at fault.
    #[test]
    fn errors_name_their_key() {
        let key = |config: Value| validate(config).err().map(|e| e.key);
        assert_eq!(key(json!({})), Some("consumer_key".into()));
        assert_eq!(
            key(json!({"consumer_key": "k", "consumer_secret": "s", "access_token": "t"})),
            Some("access_token_secret".into())
        );
        let mut both = oauth1();
        both["bearer_token"] = json!("b");
        assert_eq!(key(both), Some("bearer_token".into()));
        let with = |k: &str, v: Value| {
            let mut config = json!({"bearer_token": "b"});
            config[k] = v;
            key(config)
        };
        assert_eq!(with("base_url", json!("ftp://x")), Some("base_url".into()));
        assert_eq!(
            with("poll_interval", json!(0.5)),
            Some("poll_interval".into())
        );
        assert_eq!(
            with("endpoints", json!({"sms": "x"})),
            Some("endpoints".into())
        );
        assert_eq!(with("endpoints", json!({})), Some("endpoints".into()));
        assert_eq!(with("timeout", json!("soon")), Some("timeout".into()));
    }

    /// vumi's endpoints pick the kinds; a bearer token alone is OAuth 2.0 user context.
    #[test]
    fn vumi_endpoints_and_bearer() {
        let settings = validate(json!({"bearer_token": "b", "endpoints": {"dms": "default"},
                                        "screen_name": "@junebug", "base_url": "http://127.0.0.1:9/"}))
        .unwrap();
        assert!(!settings.tweets && settings.dms);
        assert_eq!(settings.screen_name.as_deref(), Some("junebug"));
        assert_eq!(settings.base_url, "http://127.0.0.1:9");
        assert!(matches!(settings.credentials, Credentials::Bearer(_)));
    }
}
