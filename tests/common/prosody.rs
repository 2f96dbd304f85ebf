//! A real XMPP server for the XMPP tests: Prosody (Debian's `prosody`, which `.ci/run`
//! installs), on a free port of 127.0.0.1 with a config of its own in a temp dir, a MUC
//! service at `conference.localhost`, and accounts made with `prosodyctl register`; and
//! [`XmppUser`], a person on it: a client built on tokio-xmpp's own `Client` (the same
//! crates as the channel type, but their high-level client rather than our session).
//!
//! Plaintext logins on loopback need `c2s_require_encryption = false` (and, for PLAIN,
//! `allow_unencrypted_plain_auth`); the server has no certificate, so it offers no STARTTLS,
//! unless started with [`Prosody::start_with_tls`]: then it has a certificate for
//! `localhost` from a private CA ([`Prosody::ca_file`]) and offers STARTTLS (still allowing
//! plaintext, for the test clients that cannot trust that CA).
//! As root, Prosody wants `run_as_root`. Its process is `lua5.4`: it is stopped by its PID.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use futures_util::StreamExt;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::receipts::{Received, Request};
use tokio_xmpp::parsers::roster::Roster;
use tokio_xmpp::parsers::stanza::Stanza;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event};

use super::process::ServerProcess;
use super::{free_port, WAIT};

/// Where Debian installs Prosody.
pub const PROSODY: &str = "/usr/bin/prosody";

/// Its control tool.
pub const PROSODYCTL: &str = "/usr/bin/prosodyctl";

/// The virtual host.
pub const DOMAIN: &str = "localhost";

/// The MUC service.
pub const MUC: &str = "conference.localhost";

/// A running Prosody; stopped (by its PID) when dropped.
pub struct Prosody {
    /// First, so that it is killed before its directory goes.
    process: ServerProcess,
    dir: tempfile::TempDir,
    /// Its client port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    /// With TLS: the CA file that signed the server's certificate.
    ca_file: Option<PathBuf>,
}

impl Prosody {
    /// Starts a server with no accounts yet.
    pub async fn start() -> Prosody {
        Prosody::launch_new(false).await
    }

    /// Starts a server with no accounts yet that offers STARTTLS.
    pub async fn start_with_tls() -> Prosody {
        Prosody::launch_new(true).await
    }

    /// The CA file that signed the server's certificate (started with TLS).
    pub fn ca_file(&self) -> &Path {
        self.ca_file.as_deref().expect("started with TLS")
    }

    async fn launch_new(tls: bool) -> Prosody {
        assert!(
            Path::new(PROSODY).exists(),
            "{PROSODY} is missing: apt-get install prosody (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        for sub in ["data", "certs"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let (ca_file, ssl) = if tls {
            let (ca, key, cert) = super::certificates(&dir.path().join("certs"), DOMAIN);
            let ssl = format!(
                "ssl = {{ key = \"{}\"; certificate = \"{}\" }}\n",
                key.display(),
                cert.display()
            );
            (Some(ca), ssl)
        } else {
            (None, String::new())
        };
        let config = format!(
            "run_as_root = true\n\
             daemonize = false\n\
             pidfile = \"{pid}\"\n\
             data_path = \"{data}\"\n\
             certificates = \"{certs}\"\n\
             interfaces = {{ \"127.0.0.1\" }}\n\
             c2s_ports = {{ {port} }}\n\
             s2s_ports = {{ }}\n\
             component_ports = {{ }}\n\
             http_ports = {{ }}\n\
             https_ports = {{ }}\n\
             modules_disabled = {{ \"s2s\" }}\n\
             modules_enabled = {{ \"roster\"; \"saslauth\"; \"disco\"; \"ping\"; \"posix\"{tls_module} }}\n\
             c2s_require_encryption = false\n\
             allow_unencrypted_plain_auth = true\n\
             authentication = \"internal_hashed\"\n\
             log = {{ info = \"{log}\" }}\n\
             {ssl}\
             VirtualHost \"{DOMAIN}\"\n\
             Component \"{MUC}\" \"muc\"\n\
             \tmuc_room_locking = false\n\
             \trestrict_room_creation = false\n",
            pid = path("prosody.pid"),
            data = path("data"),
            certs = path("certs"),
            log = path("prosody.log"),
            tls_module = if tls { "; \"tls\"" } else { "" },
        );
        let mut file = std::fs::File::create(dir.path().join("prosody.cfg.lua")).unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let args = vec![
            "--config".into(),
            dir.path().join("prosody.cfg.lua").into_os_string(),
            "-F".into(),
        ];
        let log = Some(dir.path().join("prosody.log"));
        let process = ServerProcess::start("prosody", PROSODY, args, Some(port), log).await;
        Prosody {
            process,
            dir,
            port,
            ca_file,
        }
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    /// Creates the account `user@localhost` with `password`.
    pub fn register(&self, user: &str, password: &str) {
        let output = Command::new(PROSODYCTL)
            .arg("--config")
            .arg(self.config_file())
            .args(["register", user, DOMAIN, password])
            .stdin(Stdio::null())
            .output()
            .expect("prosodyctl runs");
        assert!(
            output.status.success(),
            "prosodyctl register {user}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the server and starts it again on the same port (accounts are kept).
    pub async fn restart(&mut self) {
        self.process.restart().await;
    }
}

/// A person on the server: a tokio-xmpp client that reads stanzas (and can answer
/// receipt requests).
pub struct XmppUser {
    client: Client,
    /// `user@localhost`.
    pub jid: BareJid,
    /// Answer every receipt request with a receipt.
    pub answer_receipts: bool,
}

impl XmppUser {
    /// Logs in as `user@localhost` (an account already registered) and says it is available.
    pub async fn connect(port: u16, user: &str, password: &str) -> XmppUser {
        let jid = BareJid::from_str(&format!("{user}@{DOMAIN}")).unwrap();
        let client = Client::new_plaintext(
            jid.clone(),
            password,
            DnsConfig::addr(&format!("127.0.0.1:{port}")),
            Timeouts::tight(),
        );
        let mut person = XmppUser {
            client,
            jid,
            answer_receipts: true,
        };
        person.online().await;
        person.send(Presence::available().into()).await;
        person
    }

    /// Waits until the client is (again) logged in.
    pub async fn online(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.client.next())
                .await
                .unwrap_or_else(|_| panic!("{} did not log in in time", self.jid))
                .expect("the client ended");
            match event {
                Event::Online { .. } => return,
                Event::Disconnected(e) => eprintln!("{} disconnected: {e}", self.jid),
                Event::Stanza(_) => {}
            }
        }
    }

    /// Sends a stanza.
    pub async fn send(&mut self, stanza: Stanza) {
        self.client
            .send_stanza(stanza)
            .await
            .expect("the test client sends");
    }

    /// Asks for the roster (which makes this client one that subscription requests and
    /// answers are delivered to) and waits for it.
    pub async fn fetch_roster(&mut self) {
        let request = Iq::from_get(
            "roster-1",
            Roster {
                ver: None,
                items: vec![],
            },
        );
        self.send(request.into()).await;
        self.expect(
            |stanza| matches!(stanza, Stanza::Iq(Iq::Result { id, .. }) if id == "roster-1"),
        )
        .await;
    }

    /// Says `text` to `to` in a chat.
    pub async fn say(&mut self, to: &str, text: &str) {
        let mut message = Message::chat(Some(Jid::from_str(to).unwrap()));
        message.bodies.insert(Lang::default(), text.to_owned());
        self.send(message.into()).await;
    }

    /// Joins the room `room@conference.localhost` as `nick`, waits until it is in, and
    /// returns the nicks that were there before.
    pub async fn join(&mut self, room: &str, nick: &str) -> Vec<String> {
        let room_jid = BareJid::from_str(&format!("{room}@{MUC}")).unwrap();
        let occupant = Jid::from(room_jid.with_resource_str(nick).unwrap());
        let join = Presence::available()
            .with_to(occupant.clone())
            .with_payload(Muc::new().with_history(History::new().with_maxstanzas(0)));
        self.send(join.into()).await;
        let mut others = Vec::new();
        loop {
            let stanza = self
                .expect(|stanza| {
                    matches!(stanza, Stanza::Presence(p) if p.type_ == PresenceType::None
                        && p.from.as_ref().is_some_and(|f| f.to_bare() == room_jid))
                })
                .await;
            let Stanza::Presence(presence) = stanza else {
                unreachable!()
            };
            let from = presence.from.unwrap();
            if from == occupant {
                return others;
            }
            others.extend(from.resource().map(|r| r.to_string()));
        }
    }

    /// Says `text` in the room `room@conference.localhost`.
    pub async fn say_in_room(&mut self, room: &str, text: &str) {
        let jid = Jid::from_str(&format!("{room}@{MUC}")).unwrap();
        let mut message = Message::groupchat(Some(jid));
        message.bodies.insert(Lang::default(), text.to_owned());
        self.send(message.into()).await;
    }

    /// Waits until someone with `nick` is in the room `room@conference.localhost`.
    pub async fn wait_for_occupant(&mut self, room: &str, nick: &str) {
        let occupant = Jid::from_str(&format!("{room}@{MUC}/{nick}")).unwrap();
        self.expect(|stanza| {
            matches!(stanza, Stanza::Presence(p) if p.from.as_ref() == Some(&occupant)
                && p.type_ == PresenceType::None)
        })
        .await;
    }

    /// The next stanza for which `wanted` holds (others are skipped; receipt requests on
    /// the way are answered when [`XmppUser::answer_receipts`] says so).
    pub async fn expect(&mut self, wanted: impl Fn(&Stanza) -> bool) -> Stanza {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.client.next())
                .await
                .unwrap_or_else(|_| panic!("{} got no matching stanza in time", self.jid))
                .expect("the client ended");
            let Event::Stanza(stanza) = event else {
                continue;
            };
            if let Stanza::Message(message) = &stanza {
                if let Some(receipt) = self.receipt_for(message) {
                    self.send(receipt.into()).await;
                }
            }
            if wanted(&stanza) {
                return stanza;
            }
        }
    }

    /// The receipt to answer `message` with, if it asks for one and we answer.
    fn receipt_for(&self, message: &Message) -> Option<Message> {
        let asks = message
            .payloads
            .iter()
            .any(|p| Request::try_from(p.clone()).is_ok());
        if !asks || !self.answer_receipts {
            return None;
        }
        let Id(id) = message.id.clone()?;
        Some(Message::new(message.from.clone()).with_payload(Received { id }))
    }

    /// The next message with a body of `kind` from `from` (a bare JID, or an occupant
    /// JID for a room): its body.
    pub async fn message_from(&mut self, kind: MessageType, from: &str) -> String {
        let from = Jid::from_str(from).unwrap();
        let stanza = self
            .expect(|stanza| {
                matches!(stanza, Stanza::Message(m) if m.type_ == kind
                    && !m.bodies.is_empty()
                    && m.from.as_ref().is_some_and(|f| *f == from || f.to_bare() == from))
            })
            .await;
        let Stanza::Message(message) = stanza else {
            unreachable!()
        };
        message.bodies.values().next().cloned().unwrap_or_default()
    }

    /// Logs out.
    pub async fn quit(self) {
        let _ = tokio::time::timeout(WAIT, self.client.send_end()).await;
    }
}
