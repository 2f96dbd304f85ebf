//! The `config` of an `irc` channel: [`IrcConfig`] as the API receives it, and
//! [`IrcSettings`], what [`IrcConfig::validate`] makes of it.
//!
//! vumi's `IrcTransport` configs keep working: `network` (the server's host), `port`
//! (default 6667), `nickname`, `channels`, the newer `twisted_endpoint`
//! (`tcp:host=H:port=P`) and `transport_type`. Other keys are ignored.
use std::time::Duration;

use serde::Deserialize;

use super::codec::is_safe;
use crate::supervisor::Backoff;
use crate::transport::ConfigError;
use crate::transports::reconnect;
use crate::transports::tls::{rustls_pki_name, TlsSettings};
pub use crate::transports::Password;
use crate::transports::{parse_client_endpoint, seconds};

/// An `irc` channel's `config` object.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IrcConfig {
    /// The IRC server's host name or address (or give vumi's `network`, or
    /// `twisted_endpoint`).
    #[serde(default)]
    pub host: Option<String>,
    /// vumi's name for `host`.
    #[serde(default)]
    pub network: Option<String>,
    /// The server's port (default 6667, or 6697 with `tls`).
    #[serde(default)]
    pub port: Option<u16>,
    /// vumi's form of host and port: `tcp:host=H:port=P`.
    #[serde(default)]
    pub twisted_endpoint: Option<String>,
    /// TLS to the server (default false).
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: a PEM file of CA certificates to trust besides the system's.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// With `tls`: the name the server's certificate must carry (default: the host).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// The bot's nickname. Required.
    pub nickname: String,
    /// The user name of the USER line (default: the nickname).
    #[serde(default)]
    pub username: Option<String>,
    /// The "real name" of the USER line (default `Junebug`).
    #[serde(default)]
    pub realname: Option<String>,
    /// The server password (the PASS line), if the server wants one. Never logged.
    #[serde(default)]
    pub password: Option<Password>,
    /// Channels to join, e.g. `["#support"]` (default none: private messages only).
    #[serde(default)]
    pub channels: Vec<String>,
    /// First and largest delay between reconnection attempts, seconds (default 1 and 60).
    #[serde(default)]
    pub reconnect_initial: Option<f64>,
    /// See `reconnect_initial`.
    #[serde(default)]
    pub reconnect_max: Option<f64>,
    /// Seconds of silence from the server after which we PING it (default 60).
    #[serde(default)]
    pub ping_interval: Option<f64>,
    /// Seconds to wait for the server to answer: to register us, or to answer our PING
    /// (default 30). Also bounds connecting and each write.
    #[serde(default)]
    pub response_timeout: Option<f64>,
    /// The vumi `transport_type` of inbound messages (default `irc`).
    #[serde(default)]
    pub transport_type: Option<String>,
    /// The password of the bot's account with the network's NickServ: sent as
    /// `IDENTIFY <nickname> <password>` after registering, before joining. Never logged.
    #[serde(default)]
    pub nickserv_password: Option<Password>,
    /// The nick of the network's nickname service (default `NickServ`).
    #[serde(default)]
    pub nickserv_nick: Option<String>,
    /// Whether to join a channel again after being kicked from it (default true).
    #[serde(default)]
    pub rejoin_after_kick: Option<bool>,
    /// Seconds to wait before that rejoin (default 5).
    #[serde(default)]
    pub rejoin_delay: Option<f64>,
}

/// A validated IRC config.
#[derive(Clone, Debug, PartialEq)]
pub struct IrcSettings {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS, when on.
    pub tls: Option<TlsSettings>,
    /// The nickname we ask for (the server may have us under another after a collision).
    pub nickname: String,
    /// USER's user name.
    pub username: String,
    /// USER's real name.
    pub realname: String,
    /// PASS, when set.
    pub password: Option<Password>,
    /// Whom to IDENTIFY to, and with what, when set.
    pub nickserv: Option<NickServ>,
    /// Channels to join after registering (and after every reconnection).
    pub channels: Vec<String>,
    /// Reconnection backoff bounds.
    pub reconnect: Backoff,
    /// Silence before we PING.
    pub ping_interval: Duration,
    /// How long the server may take to answer.
    pub response_timeout: Duration,
    /// `transport_type` of inbound messages.
    pub transport_type: String,
    /// How long after a kick we join that channel again; `None`: we stay out.
    pub rejoin_after_kick: Option<Duration>,
}

/// The network's nickname service and our password with it.
#[derive(Clone, Debug, PartialEq)]
pub struct NickServ {
    /// Its nick.
    pub nick: String,
    /// Our account's password.
    pub password: Password,
}

impl IrcSettings {
    /// `host:port`, as vumi reported the server in `helper_metadata.irc.irc_server`.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// RFC 2812's nickname: a letter or one of `[]\`_^{|}` first, then also digits and `-`.
fn check_nickname(nickname: &str) -> Result<(), ConfigError> {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = nickname.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || special(c));
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-');
    if first_ok && rest_ok && nickname.len() <= 64 {
        Ok(())
    } else {
        Err(ConfigError::new(
            "nickname",
            format!(
                "{nickname:?} is not an IRC nickname (a letter or one of []\\`_^{{|}} first, \
                 then letters, digits, those or -; at most 64)"
            ),
        ))
    }
}

/// A channel name: `#`, `&`, `+` or `!` first; no space, comma, BEL, CR, LF or NUL.
fn check_channel(channel: &str) -> Result<(), ConfigError> {
    let ok = channel.starts_with(['#', '&', '+', '!'])
        && channel.len() > 1
        && channel.len() <= 200
        && !channel.contains([' ', ',', '\x07'])
        && is_safe(channel);
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "channels",
            format!(
                "{channel:?} is not an IRC channel name (#, &, + or ! first; no spaces or commas)"
            ),
        ))
    }
}

impl IrcConfig {
    /// Checks the config and fills in defaults.
    pub fn validate(self) -> Result<IrcSettings, ConfigError> {
        let default_port = if self.tls { 6697 } else { 6667 };
        let (host, port) = match (&self.host, &self.network, &self.twisted_endpoint) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::new(
                    "network",
                    "give host or network, not both",
                ))
            }
            (Some(host), None, _) | (None, Some(host), _) => {
                let key = if self.host.is_some() {
                    "host"
                } else {
                    "network"
                };
                if host.is_empty() || host.contains(char::is_whitespace) {
                    return Err(ConfigError::new(key, "must be a host name or address"));
                }
                (host.clone(), self.port.unwrap_or(default_port))
            }
            (None, None, Some(endpoint)) => parse_client_endpoint(endpoint)?,
            (None, None, None) => return Err(ConfigError::new("host", "is required")),
        };
        if port == 0 {
            return Err(ConfigError::new("port", "must be 1 to 65535"));
        }
        let tls = self.tls.then(|| TlsSettings {
            ca_file: self.tls_ca_file.clone(),
            server_name: self.tls_server_name.clone().unwrap_or_else(|| host.clone()),
        });
        if let Some(tls) = &tls {
            if rustls_pki_name(&tls.server_name).is_none() {
                return Err(ConfigError::new(
                    "tls_server_name",
                    "is not a valid DNS name or IP address",
                ));
            }
        }
        check_nickname(&self.nickname)?;
        let username = self.username.unwrap_or_else(|| self.nickname.clone());
        if username.is_empty() || username.contains([' ', '@']) || !is_safe(&username) {
            return Err(ConfigError::new(
                "username",
                "must be one word without @ or line breaks",
            ));
        }
        let realname = self.realname.unwrap_or_else(|| "Junebug".to_owned());
        if realname.is_empty() || !is_safe(&realname) {
            return Err(ConfigError::new(
                "realname",
                "must be non-empty, without line breaks",
            ));
        }
        if let Some(password) = &self.password {
            if password.reveal().is_empty() || !is_safe(password.reveal()) {
                return Err(ConfigError::new(
                    "password",
                    "must be non-empty, without line breaks",
                ));
            }
        }
        for channel in &self.channels {
            check_channel(channel)?;
        }
        let nickserv = match self.nickserv_password {
            None => None,
            Some(password) => {
                if password.reveal().is_empty()
                    || password.reveal().contains(' ')
                    || !is_safe(password.reveal())
                {
                    return Err(ConfigError::new(
                        "nickserv_password",
                        "must be one word without line breaks",
                    ));
                }
                let nick = self.nickserv_nick.unwrap_or_else(|| "NickServ".to_owned());
                check_nickname(&nick).map_err(|e| ConfigError::new("nickserv_nick", e.message))?;
                Some(NickServ { nick, password })
            }
        };
        let reconnect = reconnect::backoff(self.reconnect_initial, self.reconnect_max)?;
        Ok(IrcSettings {
            host,
            port,
            tls,
            nickname: self.nickname,
            username,
            realname,
            password: self.password,
            nickserv,
            channels: self.channels,
            reconnect,
            ping_interval: seconds("ping_interval", self.ping_interval, 60.0)?,
            response_timeout: seconds("response_timeout", self.response_timeout, 30.0)?,
            transport_type: self.transport_type.unwrap_or_else(|| "irc".to_owned()),
            rejoin_after_kick: match self.rejoin_after_kick {
                Some(false) => None,
                _ => Some(seconds("rejoin_delay", self.rejoin_delay, 5.0)?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<IrcSettings, ConfigError> {
        parse_config::<IrcConfig>(&config)?.validate()
    }

    /// The smallest config gets the documented defaults.
    #[test]
    fn defaults() {
        let s = settings(json!({"host": "irc.example", "nickname": "junebug"})).unwrap();
        assert_eq!(s.server(), "irc.example:6667");
        assert_eq!(
            (s.username.as_str(), s.realname.as_str()),
            ("junebug", "Junebug")
        );
        assert!(s.channels.is_empty() && s.password.is_none() && s.tls.is_none());
        assert_eq!(
            (s.reconnect.initial, s.reconnect.max),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(s.ping_interval, Duration::from_secs(60));
        assert_eq!(s.response_timeout, Duration::from_secs(30));
        assert_eq!(s.transport_type, "irc");
        assert_eq!(s.rejoin_after_kick, Some(Duration::from_secs(5)));
        let tls = settings(json!({"host": "irc.example", "nickname": "j", "tls": true})).unwrap();
        assert_eq!(tls.port, 6697);
        assert_eq!(tls.tls.unwrap().server_name, "irc.example");
    }

    /// vumi IrcTransport configs keep working: `network`, `twisted_endpoint`.
    #[test]
    fn vumi_keys() {
        let s = settings(json!({
            "network": "irc.freenode.net", "port": 6668, "nickname": "vumibot",
            "channels": ["#vumi", "&local"], "transport_type": "chat",
            "worker_name": "ignored", "publish_status": true
        }))
        .unwrap();
        assert_eq!(s.server(), "irc.freenode.net:6668");
        assert_eq!(s.channels, ["#vumi", "&local"]);
        assert_eq!(s.transport_type, "chat");
        let s = settings(json!({"twisted_endpoint": "tcp:host=127.0.0.1:port=7000",
                                "nickname": "vumibot"}))
        .unwrap();
        assert_eq!(s.server(), "127.0.0.1:7000");
    }

    /// Each bad value is named by its key.
    #[test]
    fn bad_values_name_their_key() {
        let base = json!({"host": "irc.example", "nickname": "junebug"});
        let with = |key: &str, value: Value| {
            let mut config = base.clone();
            config[key] = value;
            settings(config).unwrap_err().key
        };
        assert_eq!(with("nickname", json!("9lives")), "nickname");
        assert_eq!(with("nickname", json!("two words")), "nickname");
        assert_eq!(with("nickname", json!(7)), "nickname");
        assert_eq!(with("channels", json!("#notalist")), "channels");
        assert_eq!(with("channels", json!(["#ok", "nohash"])), "channels");
        assert_eq!(with("channels", json!(["#a,#b"])), "channels");
        assert_eq!(with("port", json!(70000)), "port");
        assert_eq!(with("port", json!(0)), "port");
        assert_eq!(with("password", json!("pw\r\nQUIT")), "password");
        assert_eq!(with("username", json!("a@b")), "username");
        assert_eq!(with("realname", json!("")), "realname");
        assert_eq!(with("reconnect_max", json!(0.5)), "reconnect_max");
        assert_eq!(with("ping_interval", json!(-1)), "ping_interval");
        assert_eq!(with("rejoin_delay", json!(0)), "rejoin_delay");
        assert_eq!(
            with("nickserv_password", json!("two words")),
            "nickserv_password"
        );
        let mut bad_service = base.clone();
        bad_service["nickserv_password"] = json!("pw");
        bad_service["nickserv_nick"] = json!("Nick Serv");
        assert_eq!(settings(bad_service).unwrap_err().key, "nickserv_nick");
        assert_eq!(with("rejoin_after_kick", json!("yes")), "rejoin_after_kick");
        assert_eq!(with("network", json!("other")), "network");
        let bad_name = json!({"host": "h", "nickname": "n", "tls": true,
                              "tls_server_name": "not a name!"});
        assert_eq!(settings(bad_name).unwrap_err().key, "tls_server_name");
        let missing = settings(json!({"host": "irc.example"})).unwrap_err();
        assert_eq!(
            (missing.key.as_str(), missing.message.as_str()),
            ("nickname", "is required")
        );
        let missing = settings(json!({"nickname": "junebug"})).unwrap_err();
        assert_eq!(missing.key, "host");
        let endpoint = settings(json!({"twisted_endpoint": "udp:x", "nickname": "j"}));
        assert_eq!(endpoint.unwrap_err().key, "twisted_endpoint");
    }

    /// The password never shows in the settings' `Debug` form.
    #[test]
    fn the_password_is_masked() {
        let s = settings(json!({"host": "h", "nickname": "n", "password": "hunter2"})).unwrap();
        assert_eq!(s.password.as_ref().map(Password::reveal), Some("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
