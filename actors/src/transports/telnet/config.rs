//! The `config` of a telnet channel: [`TelnetConfig`] as the API receives it, and
//! [`TelnetSettings`], what [`TelnetConfig::validate`] makes of it.
//!
//! The listen address can be given three ways, exactly one of which must be present:
//! `twisted_endpoint` (what the original Junebug documents), `host` + `port` (our plain
//! form), or the deprecated vumi keys `telnet_host` + `telnet_port`. Unknown keys are ignored.
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::transport::ConfigError;

/// A telnet channel's `config` object.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TelnetConfig {
    /// Where to listen, as a Twisted server endpoint string: `tcp:PORT`,
    /// `tcp:PORT:interface=HOST`, `tcp:port=PORT:interface=HOST`, optionally with
    /// `backlog=N`. Port 0 picks a free port. Without an interface the transport listens on
    /// all interfaces (`0.0.0.0`). No default: give this, or `host` and `port`.
    #[serde(default)]
    pub twisted_endpoint: Option<String>,
    /// The interface to listen on, with `port` (our plain alternative to
    /// `twisted_endpoint`). An IP address or a host name. Default: [`default_host`], all
    /// interfaces.
    #[serde(default)]
    pub host: Option<String>,
    /// The TCP port to listen on, with `host`: an integer (or a string of digits) from 0 to
    /// 65535; 0 picks a free port.
    #[serde(default)]
    pub port: Option<Port>,
    /// Deprecated (vumi): the same as `host`. Default: [`default_host`].
    #[serde(default)]
    pub telnet_host: Option<String>,
    /// Deprecated (vumi): the same as `port`.
    #[serde(default)]
    pub telnet_port: Option<Port>,
    /// The `to` address of every inbound message. Default (also when empty):
    /// `"<listen host>:<bound port>"`, e.g. `"0.0.0.0:9001"`.
    #[serde(default)]
    pub to_addr: Option<String>,
    /// The vumi `transport_type` of inbound messages (only visible over AMQP). Default:
    /// [`default_transport_type`].
    #[serde(default)]
    pub transport_type: Option<String>,
}

/// The interface a telnet channel listens on when none is given: all of them.
pub fn default_host() -> String {
    "0.0.0.0".to_owned()
}

/// The `transport_type` of inbound telnet messages when none is given.
pub fn default_transport_type() -> String {
    "telnet".to_owned()
}

/// The listen backlog when the endpoint gives none (Twisted's default).
pub fn default_backlog() -> u32 {
    50
}

/// A validated telnet config, ready to start a transport with.
#[derive(Clone, Debug, PartialEq)]
pub struct TelnetSettings {
    /// Where to listen.
    pub listen: ListenAddr,
    /// The `to` of inbound messages, when the config overrides the default.
    pub to_addr: Option<String>,
    /// The `transport_type` of inbound messages.
    pub transport_type: String,
}

/// A TCP listen address, as configured (the host is not resolved yet).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenAddr {
    /// An IP address or a host name; `0.0.0.0` for all interfaces.
    pub host: String,
    /// The port; 0 picks a free one when listening starts.
    pub port: u16,
    /// The listen backlog.
    pub backlog: u32,
}

impl ListenAddr {
    fn new(host: String, port: u16) -> Self {
        ListenAddr {
            host,
            port,
            backlog: default_backlog(),
        }
    }
}

/// `host:port`, as vumi writes it (no brackets around an IPv6 host).
impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl TelnetConfig {
    /// Checks the config and resolves its defaults. Errors name the offending key.
    pub fn validate(self) -> Result<TelnetSettings, ConfigError> {
        let plain = self.host.is_some() || self.port.is_some();
        let deprecated = self.telnet_host.is_some() || self.telnet_port.is_some();
        let listen = match (&self.twisted_endpoint, plain, deprecated) {
            (Some(endpoint), false, false) => parse_endpoint(endpoint)
                .map_err(|message| ConfigError::new("twisted_endpoint", message))?,
            (None, true, false) => listen_addr(self.host, self.port, ("host", "port"))?,
            (None, false, true) => listen_addr(
                self.telnet_host,
                self.telnet_port,
                ("telnet_host", "telnet_port"),
            )?,
            (None, false, false) => {
                return Err(ConfigError::new(
                    "twisted_endpoint",
                    "is required: give twisted_endpoint (e.g. \"tcp:9001\"), or host and port",
                ))
            }
            (Some(_), _, _) => {
                return Err(ConfigError::new(
                    "twisted_endpoint",
                    "give the address once: twisted_endpoint, or host and port, not both",
                ))
            }
            (None, true, true) => {
                let key = if self.telnet_host.is_some() {
                    "telnet_host"
                } else {
                    "telnet_port"
                };
                return Err(ConfigError::new(
                    key,
                    "is deprecated and host/port is given too: remove it",
                ));
            }
        };
        Ok(TelnetSettings {
            listen,
            to_addr: self.to_addr.filter(|to| !to.is_empty()),
            transport_type: self.transport_type.unwrap_or_else(default_transport_type),
        })
    }
}

/// The listen address of a `host` + `port` pair (named by `keys`).
fn listen_addr(
    host: Option<String>,
    port: Option<Port>,
    keys: (&str, &str),
) -> Result<ListenAddr, ConfigError> {
    let Some(Port(port)) = port else {
        return Err(ConfigError::new(
            keys.1,
            format!("is required with {}", keys.0),
        ));
    };
    let host = match host {
        None => default_host(),
        Some(host) => check_host(&host).map_err(|message| ConfigError::new(keys.0, message))?,
    };
    Ok(ListenAddr::new(host, port))
}

/// A host to listen on: an IP address or a host name; empty means all interfaces.
fn check_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Ok(default_host());
    }
    let is_name = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if host.parse::<IpAddr>().is_ok() || is_name {
        Ok(host.to_owned())
    } else {
        Err(format!(
            "invalid host '{host}', expected an IP address or a host name"
        ))
    }
}

/// Parses a Twisted server endpoint string of type `tcp`.
///
/// Twisted's grammar: arguments are separated by `:`, a `\` escapes the next character (so
/// `interface=\:\:1` is `::1`), `name=value` arguments are by name, the others by position.
/// `tcp` takes `port`, `interface` and `backlog`, in that order.
pub fn parse_endpoint(endpoint: &str) -> Result<ListenAddr, String> {
    let unsupported =
        || format!("unsupported endpoint '{endpoint}', expected tcp:PORT[:interface=HOST]");
    let mut args = split_endpoint(endpoint).into_iter();
    match args.next() {
        Some((None, kind)) if kind.eq_ignore_ascii_case("tcp") => {}
        _ => return Err(unsupported()),
    }
    let names = ["port", "interface", "backlog"];
    let mut values: [Option<String>; 3] = [None, None, None];
    for (position, (name, value)) in args.enumerate() {
        let index = match &name {
            None if position < names.len() => position,
            None => return Err(format!("too many arguments in endpoint '{endpoint}'")),
            Some(name) => names
                .iter()
                .position(|known| known == name)
                .ok_or_else(|| format!("unknown argument '{name}' in endpoint '{endpoint}'"))?,
        };
        if values[index].replace(value).is_some() {
            let name = names[index];
            return Err(format!("'{name}' is given twice in endpoint '{endpoint}'"));
        }
    }
    let [port, interface, backlog] = values;
    let port = port.ok_or_else(|| format!("missing port in endpoint '{endpoint}'"))?;
    let port = port.parse::<u16>().map_err(|_| {
        format!("invalid port '{port}' in endpoint '{endpoint}', expected 0 to 65535")
    })?;
    let host = check_host(interface.as_deref().unwrap_or(""))?;
    let backlog = match backlog {
        None => default_backlog(),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid backlog '{text}' in endpoint '{endpoint}'"))?,
    };
    Ok(ListenAddr {
        host,
        port,
        backlog,
    })
}

/// Splits an endpoint string into `(name, value)` arguments: on unescaped `:`, then on the
/// first unescaped `=` of each argument; `\` escapes the next character.
fn split_endpoint(endpoint: &str) -> Vec<(Option<String>, String)> {
    let mut args = Vec::new();
    let (mut name, mut current) = (None, String::new());
    let mut chars = endpoint.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ':' => args.push((name.take(), std::mem::take(&mut current))),
            '=' if name.is_none() => name = Some(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    args.push((name, current));
    args
}

/// A TCP port number from the config: an integer or a string of digits, 0 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;

        impl Visitor<'_> for PortVisitor {
            type Value = Port;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number from 0 to 65535")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                u16::try_from(n)
                    .map(Port)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                u16::try_from(n)
                    .map(Port)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Port, E> {
                text.trim()
                    .parse::<u16>()
                    .map(Port)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }

        deserializer.deserialize_any(PortVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<TelnetSettings, ConfigError> {
        parse_config::<TelnetConfig>(&config)?.validate()
    }

    fn listen(host: &str, port: u16) -> ListenAddr {
        ListenAddr::new(host.to_owned(), port)
    }

    /// Every accepted way of giving the address, and what it listens on.
    #[test]
    fn accepted_addresses() {
        let cases = [
            (
                json!({"twisted_endpoint": "tcp:9001"}),
                listen("0.0.0.0", 9001),
            ),
            (json!({"twisted_endpoint": "tcp:0"}), listen("0.0.0.0", 0)),
            (
                json!({"twisted_endpoint": "tcp:port=9001:interface=127.0.0.1"}),
                listen("127.0.0.1", 9001),
            ),
            (
                json!({"twisted_endpoint": "tcp:interface=127.0.0.1:port=9001"}),
                listen("127.0.0.1", 9001),
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:interface=127.0.0.1"}),
                listen("127.0.0.1", 9001),
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:localhost"}),
                listen("localhost", 9001),
            ),
            (
                json!({"twisted_endpoint": "TCP:9001"}),
                listen("0.0.0.0", 9001),
            ),
            (
                json!({"twisted_endpoint": r"tcp:9001:interface=\:\:1"}),
                listen("::1", 9001),
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:interface=127.0.0.1:backlog=5"}),
                ListenAddr {
                    backlog: 5,
                    ..listen("127.0.0.1", 9001)
                },
            ),
            (
                json!({"host": "127.0.0.1", "port": 9001}),
                listen("127.0.0.1", 9001),
            ),
            (json!({"port": 9001}), listen("0.0.0.0", 9001)),
            (json!({"port": "9001"}), listen("0.0.0.0", 9001)),
            (
                json!({"telnet_host": "127.0.0.1", "telnet_port": 9001}),
                listen("127.0.0.1", 9001),
            ),
            (json!({"telnet_port": 9001}), listen("0.0.0.0", 9001)),
            (
                json!({"twisted_endpoint": "tcp:9001", "amqp_prefetch_count": 20, "x": null}),
                listen("0.0.0.0", 9001),
            ),
        ];
        for (config, expected) in cases {
            let got = settings(config.clone()).unwrap_or_else(|e| panic!("{config}: {e}"));
            assert_eq!(got.listen, expected, "{config}");
        }
    }

    /// Bad configs fail with an error naming the key, and a useful message.
    #[test]
    fn rejected_configs_name_the_key() {
        let cases = [
            (json!({}), "twisted_endpoint", "is required"),
            (json!(null), "twisted_endpoint", "is required"),
            (
                json!({"twisted_endpoint": "unix:/x"}),
                "twisted_endpoint",
                "unsupported endpoint 'unix:/x', expected tcp:PORT[:interface=HOST]",
            ),
            (
                json!({"twisted_endpoint": ""}),
                "twisted_endpoint",
                "unsupported endpoint ''",
            ),
            (
                json!({"twisted_endpoint": "tcp:abc"}),
                "twisted_endpoint",
                "invalid port 'abc'",
            ),
            (
                json!({"twisted_endpoint": "tcp:70000"}),
                "twisted_endpoint",
                "invalid port",
            ),
            (
                json!({"twisted_endpoint": "tcp:interface=127.0.0.1"}),
                "twisted_endpoint",
                "missing port",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:foo=bar"}),
                "twisted_endpoint",
                "unknown argument 'foo'",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:port=9002"}),
                "twisted_endpoint",
                "'port' is given twice",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:interface=a b"}),
                "twisted_endpoint",
                "invalid host 'a b'",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001:backlog=0"}),
                "twisted_endpoint",
                "invalid backlog '0'",
            ),
            (
                json!({"twisted_endpoint": 9001}),
                "twisted_endpoint",
                "invalid type: integer",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001", "port": 9002}),
                "twisted_endpoint",
                "give the address once",
            ),
            (
                json!({"twisted_endpoint": "tcp:9001", "telnet_port": 9002}),
                "twisted_endpoint",
                "give the address once",
            ),
            (
                json!({"port": 9001, "telnet_host": "127.0.0.1"}),
                "telnet_host",
                "is deprecated",
            ),
            (
                json!({"host": "127.0.0.1"}),
                "port",
                "is required with host",
            ),
            (
                json!({"telnet_host": "127.0.0.1"}),
                "telnet_port",
                "is required with telnet_host",
            ),
            (
                json!({"port": 70000}),
                "port",
                "expected a port number from 0 to 65535",
            ),
            (json!({"port": -1}), "port", "expected a port number"),
            (
                json!({"port": "nine"}),
                "port",
                "invalid value: string \"nine\"",
            ),
            (json!({"telnet_port": 1.5}), "telnet_port", "invalid type"),
            (
                json!({"host": "not a host", "port": 1}),
                "host",
                "invalid host",
            ),
            (
                json!({"twisted_endpoint": "tcp:0", "to_addr": 5}),
                "to_addr",
                "invalid type: integer",
            ),
            (
                json!({"twisted_endpoint": "tcp:0", "transport_type": []}),
                "transport_type",
                "invalid type",
            ),
        ];
        for (config, key, message) in cases {
            let err = settings(config.clone()).expect_err(&config.to_string());
            assert_eq!(err.key, key, "{config}: {err}");
            assert!(err.message.contains(message), "{config}: {err}");
        }
    }

    /// `to_addr` and `transport_type` default sensibly and can be overridden.
    #[test]
    fn to_addr_and_transport_type() {
        let plain = settings(json!({"twisted_endpoint": "tcp:0"})).unwrap();
        assert_eq!(
            (plain.to_addr, plain.transport_type.as_str()),
            (None, "telnet")
        );
        let empty = settings(json!({"twisted_endpoint": "tcp:0", "to_addr": ""})).unwrap();
        assert_eq!(empty.to_addr, None);
        let custom = settings(json!({
            "twisted_endpoint": "tcp:0", "to_addr": "demo", "transport_type": "sms"
        }))
        .unwrap();
        assert_eq!(custom.to_addr.as_deref(), Some("demo"));
        assert_eq!(custom.transport_type, "sms");
    }

    /// Endpoint arguments split on unescaped `:` and the first unescaped `=`.
    #[test]
    fn endpoint_tokens() {
        let args = split_endpoint(r"tcp:port=1:interface=\:\:1:a\=b");
        let expected = [
            (None, "tcp"),
            (Some("port"), "1"),
            (Some("interface"), "::1"),
            (None, "a=b"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, v)| (n.map(str::to_owned), v.to_string()))
            .collect();
        assert_eq!(args, expected);
    }
}
