//! The `config` of an `xmpp` channel: [`XmppConfig`] as the API receives it, and
//! [`XmppSettings`], what [`XmppConfig::validate`] makes of it.
//!
//! vumi's `XMPPTransport` configs keep working: `username` (the account's JID), `password`,
//! `host`, `port`, `status`, `status_message` and `ping_interval`. vumi always accepted
//! subscription requests, so `auto_accept_subscriptions` is on by default. Other keys
//! (`debug`, `presence_interval`, …) are ignored.
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use xmpp_parsers::jid::{BareJid, Jid};

use crate::supervisor::Backoff;
use crate::transport::ConfigError;
use crate::transports::tls::{rustls_pki_name, TlsSettings};
pub use crate::transports::Password;
use crate::transports::{reconnect, seconds};

/// The presence `show` values (RFC 6121 §4.7.2.1).
pub const SHOW_VALUES: [&str; 4] = ["away", "chat", "dnd", "xa"];

/// An `xmpp` channel's `config` object.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct XmppConfig {
    /// The account's JID, `user@domain` (a `/resource` may follow). Required, or give vumi's
    /// `username`.
    #[serde(default)]
    pub jid: Option<String>,
    /// vumi's name for `jid`.
    #[serde(default)]
    pub username: Option<String>,
    /// The account's password. Required. Never logged: the SASL exchange is masked.
    pub password: Password,
    /// The resource to bind (default: the JID's, else one the server picks).
    #[serde(default)]
    pub resource: Option<String>,
    /// The server's host name or address (default: the JID's domain).
    #[serde(default)]
    pub host: Option<String>,
    /// The server's client port (default 5222).
    #[serde(default)]
    pub port: Option<u16>,
    /// Log in without TLS when the server does not offer STARTTLS (default false). Only for a
    /// server on this machine (`host` a loopback address or `localhost`), as in tests: a
    /// password never crosses a network in the clear. STARTTLS is used whenever offered.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// A PEM file of CA certificates to trust besides the system's, for STARTTLS.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// The name the server's certificate must carry (default: the JID's domain).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// MUC rooms to join, as bare JIDs (`room@conference.example.org`); default none.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Our nickname in the rooms (default: the JID's local part).
    #[serde(default)]
    pub nickname: Option<String>,
    /// Accept every subscription request (and subscribe back), as vumi did (default true).
    #[serde(default)]
    pub auto_accept_subscriptions: Option<bool>,
    /// vumi's presence status: `away`, `chat`, `dnd` or `xa` sets the presence's `show`; any
    /// other text becomes its status text (when `status_message` is not given).
    #[serde(default)]
    pub status: Option<String>,
    /// The presence's status text, e.g. `Ask me anything` (default none).
    #[serde(default)]
    pub status_message: Option<String>,
    /// Ask for a delivery receipt (XEP-0184) on every one-to-one message (default true).
    #[serde(default)]
    pub request_receipts: Option<bool>,
    /// Seconds of silence from the server after which we ping it (XEP-0199; default 60).
    #[serde(default)]
    pub ping_interval: Option<f64>,
    /// Seconds the server may take to answer: a ping, each login step, a write (default 30).
    #[serde(default)]
    pub response_timeout: Option<f64>,
    /// First and largest delay between reconnection attempts, seconds (default 1 and 60).
    #[serde(default)]
    pub reconnect_initial: Option<f64>,
    /// See `reconnect_initial`.
    #[serde(default)]
    pub reconnect_max: Option<f64>,
    /// The vumi `transport_type` of inbound messages (default `xmpp`).
    #[serde(default)]
    pub transport_type: Option<String>,
}

/// A validated XMPP config.
#[derive(Clone, Debug, PartialEq)]
pub struct XmppSettings {
    /// The account (bare JID): the `to` of inbound chats.
    pub jid: BareJid,
    /// The resource asked for at bind, if any.
    pub resource: Option<String>,
    /// The password.
    pub password: Password,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How to verify the server when it offers STARTTLS.
    pub tls: TlsSettings,
    /// Whether a login without TLS is allowed (loopback only).
    pub allow_plaintext: bool,
    /// Rooms to join after every login.
    pub rooms: Vec<BareJid>,
    /// Our nick in the rooms.
    pub nickname: String,
    /// Whether subscription requests are accepted.
    pub auto_accept_subscriptions: bool,
    /// The presence's `show`, if any (one of [`SHOW_VALUES`]).
    pub show: Option<String>,
    /// The presence's status text, if any.
    pub status_message: Option<String>,
    /// Whether outbound chats ask for a receipt.
    pub request_receipts: bool,
    /// Silence before we ping.
    pub ping_interval: Duration,
    /// How long the server may take to answer.
    pub response_timeout: Duration,
    /// Reconnection backoff bounds.
    pub reconnect: Backoff,
    /// `transport_type` of inbound messages.
    pub transport_type: String,
}

impl XmppSettings {
    /// `host:port`, for status messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Whether `host` names this machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A room's JID: bare, with a local part.
fn room_jid(room: &str) -> Result<BareJid, ConfigError> {
    let bad = || {
        ConfigError::new(
            "rooms",
            format!("{room:?} is not a room JID (room@conference.example.org)"),
        )
    };
    let jid = BareJid::new(room).map_err(|_| bad())?;
    if jid.node().is_none() {
        return Err(bad());
    }
    Ok(jid)
}

impl XmppConfig {
    /// Checks the config and fills in defaults.
    pub fn validate(self) -> Result<XmppSettings, ConfigError> {
        let (key, jid) = match (&self.jid, &self.username) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "username",
                    "give jid or username, not both",
                ))
            }
            (Some(jid), None) => ("jid", jid),
            (None, Some(jid)) => ("username", jid),
            (None, None) => return Err(ConfigError::new("jid", "is required")),
        };
        let parsed = Jid::new(jid).map_err(|e| {
            ConfigError::new(key, format!("{jid:?} is not a JID (user@domain): {e}"))
        })?;
        let Some(node) = parsed.node() else {
            return Err(ConfigError::new(
                key,
                format!("{jid:?} has no user part (user@domain)"),
            ));
        };
        let node = node.to_string();
        let resource = match (&self.resource, parsed.resource()) {
            (Some(resource), _) => {
                parsed
                    .to_bare()
                    .with_resource_str(resource)
                    .map_err(|e| ConfigError::new("resource", e.to_string()))?;
                Some(resource.clone())
            }
            (None, Some(resource)) => Some(resource.to_string()),
            (None, None) => None,
        };
        let bare = parsed.to_bare();
        let domain = bare.domain().to_string();
        if self.password.reveal().is_empty() {
            return Err(ConfigError::new("password", "must not be empty"));
        }
        let host = self.host.clone().unwrap_or_else(|| domain.clone());
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(ConfigError::new("host", "must be a host name or address"));
        }
        let port = self.port.unwrap_or(5222);
        if port == 0 {
            return Err(ConfigError::new("port", "must be 1 to 65535"));
        }
        if self.allow_plaintext && !is_loopback(&host) {
            return Err(ConfigError::new(
                "allow_plaintext",
                "is only for a server on this machine (host localhost or a loopback address)",
            ));
        }
        let tls = TlsSettings {
            ca_file: self.tls_ca_file.clone(),
            server_name: self.tls_server_name.clone().unwrap_or(domain),
        };
        if rustls_pki_name(&tls.server_name).is_none() {
            return Err(ConfigError::new(
                "tls_server_name",
                "is not a valid DNS name or IP address",
            ));
        }
        let rooms = self
            .rooms
            .iter()
            .map(|room| room_jid(room))
            .collect::<Result<Vec<_>, _>>()?;
        let nickname = self.nickname.clone().unwrap_or(node);
        let nick_ok = rooms
            .first()
            .map_or(BareJid::new("room@muc.test").ok(), |room| {
                Some(room.clone())
            })
            .is_some_and(|room| room.with_resource_str(&nickname).is_ok());
        if nickname.trim().is_empty() || !nick_ok {
            return Err(ConfigError::new(
                "nickname",
                format!("{nickname:?} cannot be a room nickname"),
            ));
        }
        let (show, status_text) = match self.status.as_deref().map(str::trim) {
            None | Some("") | Some("available") | Some("online") => (None, None),
            Some(show) if SHOW_VALUES.contains(&show) => (Some(show.to_owned()), None),
            Some(text) => (None, Some(text.to_owned())),
        };
        let status_message = self
            .status_message
            .clone()
            .filter(|text| !text.is_empty())
            .or(status_text);
        let reconnect = reconnect::backoff(self.reconnect_initial, self.reconnect_max)?;
        Ok(XmppSettings {
            jid: bare,
            resource,
            password: self.password,
            host,
            port,
            tls,
            allow_plaintext: self.allow_plaintext,
            rooms,
            nickname,
            auto_accept_subscriptions: self.auto_accept_subscriptions.unwrap_or(true),
            show,
            status_message,
            request_receipts: self.request_receipts.unwrap_or(true),
            ping_interval: seconds("ping_interval", self.ping_interval, 60.0)?,
            response_timeout: seconds("response_timeout", self.response_timeout, 30.0)?,
            reconnect,
            transport_type: self.transport_type.unwrap_or_else(|| "xmpp".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<XmppSettings, ConfigError> {
        parse_config::<XmppConfig>(&config)?.validate()
    }

    /// The smallest config gets the documented defaults: the server is the JID's domain.
    #[test]
    fn defaults() {
        let s = settings(json!({"jid": "bot@example.org", "password": "pw"})).unwrap();
        assert_eq!(s.jid.as_str(), "bot@example.org");
        assert_eq!(s.server(), "example.org:5222");
        assert_eq!(s.tls.server_name, "example.org");
        assert!(!s.allow_plaintext && s.rooms.is_empty() && s.resource.is_none());
        assert_eq!(s.nickname, "bot");
        assert!(s.auto_accept_subscriptions && s.request_receipts);
        assert_eq!(
            (s.show.as_deref(), s.status_message.as_deref()),
            (None, None)
        );
        assert_eq!(s.ping_interval, Duration::from_secs(60));
        assert_eq!(s.response_timeout, Duration::from_secs(30));
        assert_eq!(
            (s.reconnect.initial, s.reconnect.max),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(s.transport_type, "xmpp");
    }

    /// vumi XMPPTransport configs keep working: `username` is the JID, `status` the show.
    #[test]
    fn vumi_keys() {
        let s = settings(json!({
            "username": "test@case.com/bot", "password": "pw", "host": "xmpp.case.com",
            "port": 5223, "status": "chat", "status_message": "Hello", "ping_interval": 30,
            "debug": true, "presence_interval": 60,
        }))
        .unwrap();
        assert_eq!(s.jid.as_str(), "test@case.com");
        assert_eq!(s.resource.as_deref(), Some("bot"));
        assert_eq!(s.server(), "xmpp.case.com:5223");
        assert_eq!(s.show.as_deref(), Some("chat"));
        assert_eq!(s.status_message.as_deref(), Some("Hello"));
        assert_eq!(s.ping_interval, Duration::from_secs(30));
        let text = settings(json!({"username": "a@b", "password": "pw", "status": "Busy"}));
        let text = text.unwrap();
        assert_eq!(
            (text.show, text.status_message.as_deref()),
            (None, Some("Busy"))
        );
    }

    /// Rooms, nickname, plaintext on loopback.
    #[test]
    fn rooms_and_plaintext() {
        let s = settings(json!({
            "jid": "bot@localhost", "password": "pw", "host": "127.0.0.1", "port": 5299,
            "allow_plaintext": true, "rooms": ["lobby@conference.localhost"],
            "nickname": "Junebug", "auto_accept_subscriptions": false,
        }))
        .unwrap();
        assert!(s.allow_plaintext && !s.auto_accept_subscriptions);
        assert_eq!(s.rooms[0].as_str(), "lobby@conference.localhost");
        assert_eq!(s.nickname, "Junebug");
    }

    /// Each bad value is named by its key.
    #[test]
    fn bad_values_name_their_key() {
        let base = json!({"jid": "bot@example.org", "password": "pw"});
        let with = |key: &str, value: Value| {
            let mut config = base.clone();
            config[key] = value;
            settings(config).unwrap_err().key
        };
        assert_eq!(with("jid", json!("example.org")), "jid");
        assert_eq!(with("jid", json!("a@b@c")), "jid");
        assert_eq!(with("jid", json!(7)), "jid");
        assert_eq!(with("password", json!("")), "password");
        assert_eq!(with("password", json!(12)), "password");
        assert_eq!(with("port", json!(0)), "port");
        assert_eq!(with("port", json!(70000)), "port");
        assert_eq!(with("host", json!("two words")), "host");
        assert_eq!(
            with("rooms", json!("lobby@conference.example.org")),
            "rooms"
        );
        assert_eq!(with("rooms", json!(["conference.example.org"])), "rooms");
        assert_eq!(with("allow_plaintext", json!(true)), "allow_plaintext");
        assert_eq!(
            with("auto_accept_subscriptions", json!("yes")),
            "auto_accept_subscriptions"
        );
        assert_eq!(with("ping_interval", json!(0)), "ping_interval");
        assert_eq!(with("reconnect_max", json!(0.5)), "reconnect_max");
        assert_eq!(
            with("tls_server_name", json!("not a name!")),
            "tls_server_name"
        );
        assert_eq!(with("username", json!("other@example.org")), "username");
        let missing = settings(json!({"jid": "bot@example.org"})).unwrap_err();
        assert_eq!(
            (missing.key.as_str(), missing.message.as_str()),
            ("password", "is required")
        );
        assert_eq!(settings(json!({"password": "pw"})).unwrap_err().key, "jid");
    }

    /// The password never shows in the settings' `Debug` form.
    #[test]
    fn the_password_is_masked() {
        let s = settings(json!({"jid": "a@b", "password": "hunter2"})).unwrap();
        assert_eq!(s.password.reveal(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
