//! The XMPP transport against a scripted server on 127.0.0.1, with the shared testkit host:
//! what a real server (tests/xmpp.rs) cannot be made to do on cue — fall silent, offer only
//! PLAIN — and what must hold whatever the server does: the credentials never reach the log.
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::transports::testkit::{run_local, RecordingHost, DEFAULT_WAIT};

const CHANNEL: &str = "xmpp-test";
const PASSWORD: &str = "hunter2-xmpp";

/// One client connection, seen from the server's side.
struct Client {
    stream: TcpStream,
    buffer: String,
}

const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";

impl Client {
    async fn accept(listener: &TcpListener) -> Client {
        let (stream, _) = tokio::time::timeout(DEFAULT_WAIT, listener.accept())
            .await
            .expect("the transport connects in time")
            .unwrap();
        Client {
            stream,
            buffer: String::new(),
        }
    }

    /// Everything up to and including `needle` (the rest stays buffered).
    async fn read_until(&mut self, needle: &str) -> String {
        loop {
            if let Some(at) = self.buffer.find(needle) {
                let rest = self.buffer.split_off(at + needle.len());
                return std::mem::replace(&mut self.buffer, rest);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(DEFAULT_WAIT, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in time; got {:?}", self.buffer))
                .unwrap();
            assert!(read > 0, "the transport closed before {needle:?}");
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
    }

    async fn send(&mut self, xml: &str) {
        self.stream.write_all(xml.as_bytes()).await.unwrap();
    }

    /// Reads the client's stream header and answers with ours and `features`.
    async fn open_stream(&mut self, features: &str) {
        self.read_until("<stream:stream").await;
        self.read_until(">").await;
        let reply = format!("{STREAM_HEADER}<stream:features>{features}</stream:features>");
        self.send(&reply).await;
    }

    /// Logs the transport in with PLAIN and binds it; the credentials it sent (decoded).
    async fn log_in(&mut self) -> String {
        let mechanisms = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                          <mechanism>PLAIN</mechanism></mechanisms>";
        self.open_stream(mechanisms).await;
        let auth = self.read_until("</auth>").await;
        let payload = auth
            .trim_end_matches("</auth>")
            .rsplit_once('>')
            .map(|(_, data)| data.to_owned())
            .unwrap_or_default();
        self.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        self.open_stream("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
            .await;
        self.read_until("</iq>").await;
        self.send(
            "<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>bot@localhost/jb</jid></bind></iq>",
        )
        .await;
        payload
    }
}

/// A transport on a scripted server at `listener`, with `extra` config on top.
async fn start(listener: &TcpListener, extra: serde_json::Value) -> (XmppTransport, RecordingHost) {
    let mut config = json!({
        "jid": "bot@localhost", "password": PASSWORD, "host": "127.0.0.1",
        "port": listener.local_addr().unwrap().port(), "allow_plaintext": true,
        "reconnect_initial": 0.05, "reconnect_max": 0.1,
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let settings = parse_config::<XmppConfig>(&config)
        .and_then(XmppConfig::validate)
        .expect("valid config");
    let transport = XmppTransport::new(settings);
    let host = RecordingHost::new();
    let (ctx, _failures) = host.context(CHANNEL);
    transport.start(ctx).await.unwrap();
    (transport, host)
}

/// A PLAIN login (the password is on the wire, base64, and in no log record); then a
/// server that falls silent is pinged after `ping_interval`, declared lost after
/// `response_timeout`, and the transport logs in again.
#[test]
fn plain_login_is_masked_and_a_silent_server_is_detected() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = json!({"ping_interval": 0.3, "response_timeout": 0.4});
        let (transport, host) = start(&listener, config).await;
        let mut server = Client::accept(&listener).await;
        let credentials = server.log_in().await;
        assert!(!credentials.is_empty(), "a PLAIN payload was sent");
        let (_, connected) = host.statuses().next().await;
        assert_eq!(
            (connected.status, connected.kind.as_str()),
            (StatusLevel::Ok, "connected")
        );
        assert_eq!(connected.details["jid"], "bot@localhost/jb");
        server.read_until("<presence").await;

        // Silence: a ping comes, goes unanswered, and the link is declared lost.
        let ping = server.read_until("</iq>").await;
        assert!(ping.contains("urn:xmpp:ping"), "{ping}");
        let (_, lost) = host.statuses().next().await;
        assert_eq!(
            (lost.status, lost.kind.as_str()),
            (StatusLevel::Down, "connection_lost"),
            "{lost:?}"
        );
        let mut again = Client::accept(&listener).await;
        again.log_in().await;
        let (_, back) = host.statuses().next().await;
        assert_eq!(back.kind, "connected");

        for (_, record) in host.logs().all() {
            assert!(!record.message.contains(PASSWORD), "{record:?}");
            assert!(!record.message.contains(&credentials), "{record:?}");
        }
        let logged = host.logs().all();
        assert!(
            logged
                .iter()
                .any(|(_, r)| r.message.starts_with("XMPP sent: <auth")
                    && r.message.contains("********")),
            "the auth element is logged, masked"
        );
        transport.stop().await;
    });
}

/// A server refusing the credentials gives `down`/`auth_failed` with its condition; a server
/// that offers no STARTTLS gets no login unless `allow_plaintext` says so.
#[test]
fn refused_logins_are_reported() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (transport, host) = start(
            &listener,
            json!({"reconnect_initial": 5.0,
                                                        "reconnect_max": 5.0}),
        )
        .await;
        let mut server = Client::accept(&listener).await;
        let mechanisms = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                          <mechanism>PLAIN</mechanism></mechanisms>";
        server.open_stream(mechanisms).await;
        server.read_until("</auth>").await;
        server
            .send(
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>\
                 <text>Wrong password</text></failure>",
            )
            .await;
        let (_, failed) = host.statuses().next().await;
        assert_eq!(
            (failed.status, failed.kind.as_str()),
            (StatusLevel::Down, "auth_failed")
        );
        assert_eq!(failed.details["condition"], "not-authorized");
        assert!(failed.message.contains("Wrong password"), "{failed:?}");
        transport.stop().await;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (transport, host) = start(
            &listener,
            json!({"allow_plaintext": false,
                                                        "host": "localhost"}),
        )
        .await;
        let mut server = Client::accept(&listener).await;
        server.open_stream(mechanisms).await;
        let (_, refused) = host.statuses().next().await;
        assert_eq!(
            (refused.status, refused.kind.as_str()),
            (StatusLevel::Down, "tls_unavailable")
        );
        transport.stop().await;
    });
}
