//! The `config` of an `smpp` channel: [`SmppConfig`] as the API receives it, and
//! [`SmppSettings`], what [`SmppConfig::validate`] makes of it.
//!
//! Old vumi/Junebug SMPP channel configs keep working: `twisted_endpoint`
//! (`tcp:host=H:port=P`), `smpp_enquire_link_interval`, `initial_reconnect_delay`,
//! `smpp_bind_timeout`, `throttle_delay`, and the multipart switches of
//! `submit_short_message_processor_config` (`send_long_messages` → message_payload,
//! `send_multipart_sar` → SAR TLVs, `send_multipart_udh` → UDH) are read when our own keys
//! are absent. Other keys are ignored.
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::parts::Concatenation;
use super::receipt::IdFormat;
use crate::supervisor::Backoff;
use crate::transport::ConfigError;
use crate::transports::reconnect;
pub use crate::transports::tls::TlsSettings;
use crate::transports::{parse_client_endpoint, seconds, tls::rustls_pki_name};

/// How the ESME binds.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// One transceiver session carries everything (the default).
    #[default]
    Transceiver,
    /// Two sessions: a transmitter for submit_sm, a receiver for MO and receipts.
    TransmitterReceiver,
}

/// The USSD mapping: which `ussd_service_op` values mean what. Operators differ, so every
/// value is configurable; the defaults follow SMPP 3.4 §5.3.2.44.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UssdConfig {
    /// Inbound ops that open a session (PSSR indication: the user dialled the code).
    pub new: Vec<u8>,
    /// Inbound ops that continue one (USSR confirm: the user answered a menu).
    pub resume: Vec<u8>,
    /// Inbound ops that end one (besides the end-of-session bit of `its_session_info`).
    pub close: Vec<u8>,
    /// The op of a reply that keeps the session open (USSR request).
    pub reply_continue: u8,
    /// The op of a reply that ends the session (PSSR response).
    pub reply_end: u8,
}

impl Default for UssdConfig {
    fn default() -> Self {
        UssdConfig {
            new: vec![1],
            resume: vec![18],
            close: vec![],
            reply_continue: 2,
            reply_end: 17,
        }
    }
}

/// An `smpp` channel's `config` object.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SmppConfig {
    /// The SMSC's host (with `port`), or give `twisted_endpoint`.
    #[serde(default)]
    pub host: Option<String>,
    /// The SMSC's port.
    #[serde(default)]
    pub port: Option<u16>,
    /// vumi's form of host and port: `tcp:host=H:port=P`.
    #[serde(default)]
    pub twisted_endpoint: Option<String>,
    /// TLS to the SMSC (default false).
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: a PEM file of CA certificates to trust besides the system's (for an SMSC
    /// with a private CA or a self-signed certificate).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// With `tls`: the name the SMSC's certificate must carry (default: `host`).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// The ESME's system_id (at most 15 characters). Required.
    pub system_id: String,
    /// The password (at most 8 characters, the SMPP limit). Required.
    pub password: String,
    /// system_type (at most 12 characters). Default empty.
    #[serde(default)]
    pub system_type: String,
    /// interface_version: 0x34 (SMPP 3.4, the default) as a number, or `"34"` as vumi wrote it.
    #[serde(default)]
    pub interface_version: Option<Value>,
    /// `transceiver` (default) or `transmitter_receiver`.
    #[serde(default)]
    pub bind_mode: BindMode,
    /// address_range of the bind. Default empty.
    #[serde(default)]
    pub address_range: String,
    /// TON and NPI of source addresses (default 0 and 0: unknown, let the SMSC decide).
    #[serde(default)]
    pub source_addr_ton: u8,
    /// See `source_addr_ton`.
    #[serde(default)]
    pub source_addr_npi: u8,
    /// TON and NPI of destination addresses (default 1 and 1: international, E.164).
    #[serde(default = "one")]
    pub dest_addr_ton: u8,
    /// See `dest_addr_ton`.
    #[serde(default = "one")]
    pub dest_addr_npi: u8,
    /// The source address of messages that have no `from`.
    #[serde(default)]
    pub default_source_addr: Option<String>,
    /// Seconds between enquire_links (default 30).
    #[serde(default, alias = "smpp_enquire_link_interval")]
    pub enquire_link_interval: Option<f64>,
    /// Seconds to wait for any response (bind, submit, enquire_link) before giving up on it;
    /// an unanswered enquire_link means the link is dead (default 10).
    #[serde(default, alias = "smpp_bind_timeout")]
    pub response_timeout: Option<f64>,
    /// Most submit_sm awaiting their response at once (default 10).
    #[serde(default)]
    pub window_size: Option<usize>,
    /// First and largest delay between reconnection attempts, seconds (default 1 and 60).
    #[serde(default, alias = "initial_reconnect_delay")]
    pub reconnect_initial: Option<f64>,
    /// See `reconnect_initial`.
    #[serde(default)]
    pub reconnect_max: Option<f64>,
    /// Seconds to pause the channel when the SMSC throttles (default 1; doubled while it
    /// keeps throttling).
    #[serde(default)]
    pub throttle_delay: Option<f64>,
    /// Seconds a graceful stop waits for outstanding responses before unbinding (default 5).
    #[serde(default)]
    pub drain_timeout: Option<f64>,
    /// Ask for delivery receipts (default true).
    #[serde(default = "yes")]
    pub registered_delivery: bool,
    /// How long messages are split: `udh` (default), `udh16`, `sar` or `message_payload`.
    #[serde(default)]
    pub concatenation: Option<Concatenation>,
    /// Use Latin-1 (data_coding 3) for texts that GSM 03.38 cannot carry but Latin-1 can,
    /// instead of UCS2 (default false).
    #[serde(default)]
    pub latin1: bool,
    /// How the SMSC writes ids in receipts compared with its submit_sm_resp: `as_is`
    /// (default), `hex_to_decimal`, `decimal_to_hex`.
    #[serde(default)]
    pub receipt_id_format: IdFormat,
    /// Seconds the parts of an inbound long message wait for each other (default 60).
    #[serde(default)]
    pub multipart_timeout: Option<f64>,
    /// The SMSC sends inbound GSM 7-bit text packed (eight septets in seven octets) rather
    /// than one septet per octet (default false).
    #[serde(default)]
    pub inbound_gsm7_packed: bool,
    /// The vumi `transport_type` of inbound SMS (default `sms`; USSD is `ussd`).
    #[serde(default)]
    pub transport_type: Option<String>,
    /// USSD mapping.
    #[serde(default)]
    pub ussd: UssdConfig,
    /// vumi's multipart switches, read when `concatenation` is absent.
    #[serde(default)]
    pub submit_short_message_processor_config: Option<VumiSubmitConfig>,
}

/// The part of vumi's submit processor config that chose how long messages go out.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct VumiSubmitConfig {
    /// Long messages in the message_payload TLV.
    #[serde(default)]
    pub send_long_messages: bool,
    /// Long messages split with SAR TLVs.
    #[serde(default)]
    pub send_multipart_sar: bool,
    /// Long messages split with UDH.
    #[serde(default)]
    pub send_multipart_udh: bool,
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// A validated SMPP config.
#[derive(Clone, Debug, PartialEq)]
pub struct SmppSettings {
    /// SMSC host.
    pub host: String,
    /// SMSC port.
    pub port: u16,
    /// TLS, when on.
    pub tls: Option<TlsSettings>,
    /// system_id.
    pub system_id: String,
    /// password.
    pub password: String,
    /// system_type.
    pub system_type: String,
    /// interface_version byte.
    pub interface_version: u8,
    /// How to bind.
    pub bind_mode: BindMode,
    /// address_range.
    pub address_range: String,
    /// (TON, NPI) of source addresses.
    pub source: (u8, u8),
    /// (TON, NPI) of destination addresses.
    pub destination: (u8, u8),
    /// Source address of messages without `from`.
    pub default_source_addr: Option<String>,
    /// Between enquire_links.
    pub enquire_link_interval: Duration,
    /// Wait for a response at most this long.
    pub response_timeout: Duration,
    /// Outstanding submit_sm at most.
    pub window_size: usize,
    /// Reconnection backoff bounds.
    pub reconnect: Backoff,
    /// Pause after ESME_RTHROTTLED.
    pub throttle_delay: Duration,
    /// Graceful stop bound.
    pub drain_timeout: Duration,
    /// Ask for receipts.
    pub registered_delivery: bool,
    /// Long-message method.
    pub concatenation: Concatenation,
    /// Latin-1 allowed.
    pub latin1: bool,
    /// Receipt id conversion.
    pub receipt_id_format: IdFormat,
    /// Inbound parts wait this long for each other.
    pub multipart_timeout: Duration,
    /// Inbound GSM 7-bit text comes packed.
    pub inbound_gsm7_packed: bool,
    /// `transport_type` of inbound SMS.
    pub transport_type: String,
    /// USSD mapping.
    pub ussd: UssdConfig,
}

/// `text` fits an SMPP C-octet string of `max` characters.
fn at_most(key: &str, text: &str, max: usize) -> Result<(), ConfigError> {
    if text.len() > max || !text.is_ascii() {
        return Err(ConfigError::new(
            key,
            format!("must be at most {max} ASCII characters (an SMPP limit)"),
        ));
    }
    Ok(())
}

impl SmppConfig {
    /// Checks the config and fills in defaults.
    pub fn validate(self) -> Result<SmppSettings, ConfigError> {
        let (host, port) = match (&self.host, self.port, &self.twisted_endpoint) {
            (Some(host), Some(port), _) if !host.is_empty() => (host.clone(), port),
            (None, None, Some(endpoint)) => parse_client_endpoint(endpoint)?,
            (_, None, None) => return Err(ConfigError::new("port", "is required (with host)")),
            _ => return Err(ConfigError::new("host", "is required (with port)")),
        };
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
        if self.system_id.is_empty() {
            return Err(ConfigError::new("system_id", "must not be empty"));
        }
        at_most("system_id", &self.system_id, 15)?;
        at_most("password", &self.password, 8)?;
        at_most("system_type", &self.system_type, 12)?;
        at_most("address_range", &self.address_range, 40)?;
        let interface_version = match &self.interface_version {
            None => 0x34,
            Some(Value::Number(n)) => {
                n.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| {
                        ConfigError::new("interface_version", "must be a byte, e.g. 52 (0x34)")
                    })?
            }
            Some(Value::String(s)) => u8::from_str_radix(s, 16).map_err(|_| {
                ConfigError::new("interface_version", "must be hex digits, e.g. \"34\"")
            })?,
            Some(_) => {
                return Err(ConfigError::new(
                    "interface_version",
                    "must be 0x34 or \"34\"",
                ))
            }
        };
        let window_size = self.window_size.unwrap_or(10);
        if window_size == 0 {
            return Err(ConfigError::new("window_size", "must be at least 1"));
        }
        let concatenation =
            self.concatenation
                .unwrap_or(match &self.submit_short_message_processor_config {
                    Some(v) if v.send_long_messages => Concatenation::MessagePayload,
                    Some(v) if v.send_multipart_sar => Concatenation::Sar,
                    _ => Concatenation::Udh,
                });
        let reconnect = reconnect::backoff(self.reconnect_initial, self.reconnect_max)?;
        Ok(SmppSettings {
            host,
            port,
            tls,
            system_id: self.system_id,
            password: self.password,
            system_type: self.system_type,
            interface_version,
            bind_mode: self.bind_mode,
            address_range: self.address_range,
            source: (self.source_addr_ton, self.source_addr_npi),
            destination: (self.dest_addr_ton, self.dest_addr_npi),
            default_source_addr: self.default_source_addr,
            enquire_link_interval: seconds(
                "enquire_link_interval",
                self.enquire_link_interval,
                30.0,
            )?,
            response_timeout: seconds("response_timeout", self.response_timeout, 10.0)?,
            window_size,
            reconnect,
            throttle_delay: seconds("throttle_delay", self.throttle_delay, 1.0)?,
            drain_timeout: seconds("drain_timeout", self.drain_timeout, 5.0)?,
            registered_delivery: self.registered_delivery,
            concatenation,
            latin1: self.latin1,
            receipt_id_format: self.receipt_id_format,
            multipart_timeout: seconds("multipart_timeout", self.multipart_timeout, 60.0)?,
            inbound_gsm7_packed: self.inbound_gsm7_packed,
            transport_type: self.transport_type.unwrap_or_else(|| "sms".to_owned()),
            ussd: self.ussd,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<SmppSettings, ConfigError> {
        parse_config::<SmppConfig>(&config)?.validate()
    }

    /// The smallest config gets the documented defaults.
    #[test]
    fn defaults() {
        let s =
            settings(json!({"host": "smsc", "port": 2775, "system_id": "me", "password": "pw"}))
                .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("smsc", 2775));
        assert_eq!(s.interface_version, 0x34);
        assert_eq!(s.bind_mode, BindMode::Transceiver);
        assert_eq!(s.window_size, 10);
        assert_eq!(s.concatenation, Concatenation::Udh);
        assert_eq!(s.enquire_link_interval, Duration::from_secs(30));
        assert_eq!(s.response_timeout, Duration::from_secs(10));
        assert_eq!(s.transport_type, "sms");
        assert!(s.registered_delivery);
    }

    /// A vumi SMPP channel config keeps working.
    #[test]
    fn vumi_keys() {
        let s = settings(json!({
            "twisted_endpoint": "tcp:host=127.0.0.1:port=2775",
            "system_id": "smppclient1", "password": "password", "interface_version": "34",
            "smpp_enquire_link_interval": 55, "initial_reconnect_delay": 5,
            "submit_short_message_processor_config": {"send_multipart_sar": true},
            "some_vumi_key": {"ignored": true}
        }))
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2775));
        assert_eq!(s.interface_version, 0x34);
        assert_eq!(s.enquire_link_interval, Duration::from_secs(55));
        assert_eq!(s.reconnect.initial, Duration::from_secs(5));
        assert_eq!(s.concatenation, Concatenation::Sar);
    }

    /// Each bad value is named by its key.
    #[test]
    fn bad_values_name_their_key() {
        let base = json!({"host": "smsc", "port": 2775, "system_id": "me", "password": "pw"});
        let with = |key: &str, value: Value| {
            let mut config = base.clone();
            config[key] = value;
            settings(config).unwrap_err().key
        };
        assert_eq!(with("password", json!("much too long")), "password");
        assert_eq!(with("port", json!(70000)), "port");
        assert_eq!(with("window_size", json!(0)), "window_size");
        assert_eq!(with("response_timeout", json!(-1)), "response_timeout");
        assert_eq!(
            with("concatenation", json!("carrier_pigeon")),
            "concatenation"
        );
        assert_eq!(with("bind_mode", json!("sideways")), "bind_mode");
        let bad_name = json!({"host": "smsc", "port": 1, "system_id": "a", "password": "b",
                              "tls": true, "tls_server_name": "not a name!"});
        assert_eq!(settings(bad_name).unwrap_err().key, "tls_server_name");
        let missing = settings(json!({"host": "smsc", "port": 1, "password": "x"})).unwrap_err();
        assert_eq!(missing.key, "system_id");
        let endpoint =
            settings(json!({"twisted_endpoint": "udp:x", "system_id": "a", "password": "b"}));
        assert_eq!(endpoint.unwrap_err().key, "twisted_endpoint");
    }
}
