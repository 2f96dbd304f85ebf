//! The telnet transport over real TCP sockets on 127.0.0.1, with the shared testkit host.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::codec::{DO, DONT, IAC, WILL, WONT};
use super::*;
use crate::message::new_message_id;
use crate::ports::LogLevel;
use crate::transports::testkit::{Journal, RecordingHost, DEFAULT_WAIT};
use crate::TransportRegistry;

const CHANNEL: &str = "telnet-test";
const ECHO: u8 = 1;
const SGA: u8 = 3;

/// A started transport with its recording host.
struct Server {
    host: RecordingHost,
    transport: TelnetTransport,
    failures: Arc<Journal<String>>,
    port: u16,
}

/// A telnet client connected to a [`Server`].
struct Client {
    stream: TcpStream,
    /// Our address as the server sees it, `"127.0.0.1:<port>"`.
    addr: String,
}

/// Listens on 127.0.0.1 on a free port.
fn local() -> Value {
    json!({"twisted_endpoint": "tcp:0:interface=127.0.0.1"})
}

async fn start(config: Value) -> Server {
    start_with(config, WRITE_TIMEOUT).await
}

async fn start_with(config: Value, write_timeout: Duration) -> Server {
    let settings = parse_config::<TelnetConfig>(&config)
        .and_then(TelnetConfig::validate)
        .expect("valid config");
    let mut transport = TelnetTransport::new(settings);
    transport.write_timeout = write_timeout;
    let host = RecordingHost::new();
    let (ctx, failures) = host.context(CHANNEL);
    transport.start(ctx).await.expect("start");
    let port = transport.local_addr().expect("listening").port();
    Server {
        host,
        transport,
        failures,
        port,
    }
}

impl Server {
    /// Connects a client to where the transport listens now, and checks the `new` message.
    async fn connect(&self) -> Client {
        let listening = self.transport.local_addr().expect("running");
        let stream = TcpStream::connect(listening).await.unwrap();
        let addr = stream.local_addr().unwrap().to_string();
        let new = self.next_inbound().await;
        assert_eq!(new.session_event, Some(SessionEvent::New));
        assert_eq!(new.from_addr.as_deref(), Some(addr.as_str()));
        assert_eq!(new.content, None);
        Client { stream, addr }
    }

    /// The next inbound message, checked to be this channel's.
    async fn next_inbound(&self) -> Message {
        let (channel, message) = self.host.inbound().next().await;
        assert_eq!(channel, CHANNEL);
        message
    }

    /// Waits for an INFO line of the channel log.
    async fn logged(&self, line: &str) {
        let (channel, record) = self.host.logs().wait_for(|(_, r)| r.message == line).await;
        assert_eq!((channel.as_str(), record.level), (CHANNEL, LogLevel::Info));
    }

    /// Expects the next inbound message to be `client`'s session close.
    async fn expect_close(&self, client_addr: &str) {
        let close = self.next_inbound().await;
        assert_eq!(close.session_event, Some(SessionEvent::Close));
        assert_eq!(close.from_addr.as_deref(), Some(client_addr));
        assert_eq!(close.content, None);
    }
}

impl Client {
    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    async fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0; expected.len()];
        tokio::time::timeout(DEFAULT_WAIT, self.stream.read_exact(&mut got))
            .await
            .expect("bytes from the server in time")
            .expect("read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Expects the server to have closed the connection, with nothing more sent.
    async fn expect_closed(&mut self) {
        let mut byte = [0; 1];
        let read = tokio::time::timeout(DEFAULT_WAIT, self.stream.read(&mut byte))
            .await
            .expect("the server closes in time");
        assert!(matches!(read, Ok(0) | Err(_)), "more data: {:?}", byte);
    }
}

/// An outbound message to `to`.
fn outbound(to: &str, content: Option<&str>, session_event: Option<SessionEvent>) -> Message {
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: Some(to.into()),
        from_addr: None,
        group: None,
        in_reply_to: None,
        session_event,
        content: content.map(str::to_owned),
        transport_name: CHANNEL.into(),
        transport_type: "telnet".into(),
        transport_metadata: Default::default(),
        helper_metadata: Default::default(),
        expires_at: None,
    }
}

/// The builtin registry builds telnet transports and rejects bad configs by key.
#[test]
fn registry_builds_telnet_channels() {
    let telnet = TransportRegistry::builtin()
        .get("telnet")
        .expect("telnet type");
    assert_eq!(telnet.name(), "telnet");
    assert!(telnet
        .build("id", &json!({"twisted_endpoint": "tcp:9001"}))
        .is_ok());
    let err = telnet
        .build("id", &json!({"twisted_endpoint": "unix:/x"}))
        .err()
        .expect("a config error");
    assert_eq!(err.key, "twisted_endpoint");
    assert_eq!(
        err.message,
        "unsupported endpoint 'unix:/x', expected tcp:PORT[:interface=HOST]"
    );
}

/// A connecting client gives a `new` message from its address to the listen address, logged.
#[actix_rt::test]
async fn connect_gives_new_message_and_log_lines() {
    let server = start(local()).await;
    let port = server.port;
    server
        .logged(&format!(
            "Starting a telnet transport listening on 127.0.0.1:{port}"
        ))
        .await;
    let client = server.connect().await;
    let new = server.host.inbound().all()[0].1.clone();
    assert_eq!(new.to_addr, Some(format!("127.0.0.1:{port}")));
    assert_eq!(new.transport_name, CHANNEL);
    assert_eq!(new.transport_type, "telnet");
    assert_eq!(new.message_id.len(), 32);
    server
        .logged(&format!(
            "Registering client connected from '{}'",
            client.addr
        ))
        .await;
    assert_eq!(server.transport.clients(), vec![client.addr.clone()]);
    server.transport.stop().await;
    assert!(server.failures.is_empty());
}

/// Without an interface the transport listens on all of them, and `to` says `0.0.0.0:<port>`.
#[actix_rt::test]
async fn default_to_is_all_interfaces_and_bound_port() {
    let server = start(json!({"twisted_endpoint": "tcp:0"})).await;
    let _client = server.connect().await;
    let new = server.host.inbound().all()[0].1.clone();
    assert_eq!(new.to_addr, Some(format!("0.0.0.0:{}", server.port)));
    server.transport.stop().await;
}

/// `to_addr` and `transport_type` in the config override those of inbound messages.
#[actix_rt::test]
async fn config_overrides_to_and_transport_type() {
    let mut config = local();
    config["to_addr"] = json!("telnet-demo");
    config["transport_type"] = json!("sms");
    let server = start(config).await;
    let mut client = server.connect().await;
    client.write(b"hi\r\n").await;
    let resume = server.next_inbound().await;
    for message in [server.host.inbound().all()[0].1.clone(), resume] {
        assert_eq!(message.to_addr.as_deref(), Some("telnet-demo"));
        assert_eq!(message.transport_type, "sms");
    }
    server.transport.stop().await;
}

/// Each read becomes one `resume` message without trailing newlines; lines are not split.
#[actix_rt::test]
async fn data_becomes_resume_messages() {
    let server = start(local()).await;
    let mut client = server.connect().await;
    client.write(b"Hi there\r\n").await;
    let resume = server.next_inbound().await;
    assert_eq!(resume.session_event, Some(SessionEvent::Resume));
    assert_eq!(resume.content.as_deref(), Some("Hi there"));
    assert_eq!(resume.from_addr.as_deref(), Some(client.addr.as_str()));
    client.write(b"two\r\nlines\r\n").await;
    let both = server.next_inbound().await;
    assert_eq!(both.content.as_deref(), Some("two\nlines"));
    client.write(b"\r\n").await;
    assert_eq!(server.next_inbound().await.content.as_deref(), Some(""));
    server.transport.stop().await;
}

/// Option negotiation is refused, stripped from the data, and alone gives no message.
#[actix_rt::test]
async fn negotiation_is_refused_and_stripped() {
    let server = start(local()).await;
    let mut client = server.connect().await;
    client.write(&[IAC, DO, ECHO]).await;
    client.expect(&[IAC, WONT, ECHO]).await;
    client
        .write(&[IAC, WILL, SGA, b'h', b'i', IAC, IAC, b'\r', b'\n'])
        .await;
    client.expect(&[IAC, DONT, SGA]).await;
    let resume = server.next_inbound().await;
    assert_eq!(resume.content.as_deref(), Some("hi\u{fffd}"));
    server.transport.stop().await;
}

/// `/quit`, in any case, closes the connection with a `close` message and no `resume`.
#[actix_rt::test]
async fn quit_closes_the_connection() {
    let server = start(local()).await;
    for quit in ["/quit\r\n", "/QUIT\r\n"] {
        let mut client = server.connect().await;
        client.write(quit.as_bytes()).await;
        client.expect_closed().await;
        server.expect_close(&client.addr).await;
    }
    server.logged("Deregistering client.").await;
    assert!(server.transport.clients().is_empty());
    server.transport.stop().await;
}

/// A client that disconnects gives a `close` message and is deregistered.
#[actix_rt::test]
async fn disconnect_gives_close_message() {
    let server = start(local()).await;
    let client = server.connect().await;
    let addr = client.addr.clone();
    drop(client);
    server.expect_close(&addr).await;
    server.logged("Deregistering client.").await;
    assert!(server.transport.clients().is_empty());
    server.transport.stop().await;
    assert!(server.failures.is_empty());
}

/// A send writes the content and a CRLF, each LF as CRLF; no content is an empty line.
#[actix_rt::test]
async fn send_writes_lines_to_the_client() {
    let server = start(local()).await;
    let mut client = server.connect().await;
    let sent = server
        .transport
        .send(outbound(&client.addr, Some("hello\nworld"), None))
        .await;
    assert_eq!(
        sent,
        Ok(Sent {
            provider_ids: Vec::new()
        })
    );
    client.expect(b"hello\r\nworld\r\n").await;
    let sent = server
        .transport
        .send(outbound(&client.addr, None, None))
        .await;
    assert_eq!(sent, Ok(Sent::default()));
    client.expect(b"\r\n").await;
    // The connection stays open: the client can still talk.
    client.write(b"still here\r\n").await;
    let resume = server.next_inbound().await;
    assert_eq!(resume.content.as_deref(), Some("still here"));
    server.transport.stop().await;
}

/// A send with session event `close` writes its line, then closes the client.
#[actix_rt::test]
async fn send_with_close_ends_the_session() {
    let server = start(local()).await;
    let mut client = server.connect().await;
    let message = outbound(&client.addr, Some("Bye"), Some(SessionEvent::Close));
    assert_eq!(server.transport.send(message).await, Ok(Sent::default()));
    client.expect(b"Bye\r\n").await;
    client.expect_closed().await;
    server.expect_close(&client.addr).await;
    server.transport.stop().await;
}

/// A send to an unknown address tells every client and is rejected with `Unknown address.`.
#[actix_rt::test]
async fn unknown_address_is_rejected_and_announced() {
    let server = start(local()).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    let sent = server
        .transport
        .send(outbound("127.0.0.1:1", Some("hello\nthere"), None))
        .await;
    assert_eq!(sent, Err(SendError::Rejected("Unknown address.".into())));
    for client in [&mut first, &mut second] {
        client
            .expect(b"UNKNOWN ADDR [127.0.0.1:1]: hello\r\nthere\r\n")
            .await;
    }
    server.transport.stop().await;
}

/// `stop` closes every client (delivering its `close`), frees the port, and allows a restart.
#[actix_rt::test]
async fn stop_closes_clients_and_frees_the_port() {
    let server = start(local()).await;
    let port = server.port;
    let mut client = server.connect().await;
    server.transport.stop().await;
    // The close was recorded before `stop` returned.
    let (_, close) = server.host.inbound().try_next().expect("close delivered");
    assert_eq!(close.session_event, Some(SessionEvent::Close));
    assert_eq!(close.from_addr.as_deref(), Some(client.addr.as_str()));
    client.expect_closed().await;
    assert_eq!(server.transport.local_addr(), None);
    let sent = server
        .transport
        .send(outbound(&client.addr, Some("x"), None))
        .await;
    assert!(matches!(sent, Err(SendError::Retry { .. })), "{sent:?}");

    // Another transport binds the very port at once.
    let same_port = json!({"host": "127.0.0.1", "port": port});
    let rebound = start(same_port).await;
    assert_eq!(rebound.port, port);
    rebound.transport.stop().await;

    // The stopped transport starts again and serves clients.
    let (ctx, _) = server.host.context(CHANNEL);
    server.transport.start(ctx).await.expect("restart");
    let again = server.connect().await;
    assert_ne!(again.addr, client.addr);
    server.transport.stop().await;
    assert!(server.failures.is_empty());
}

/// `start` on a port that is taken fails (the supervisor retries later).
#[actix_rt::test]
async fn start_on_a_busy_port_fails() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let settings = parse_config::<TelnetConfig>(&json!({
        "twisted_endpoint": format!("tcp:port={port}:interface=127.0.0.1")
    }))
    .and_then(TelnetConfig::validate)
    .unwrap();
    let transport = TelnetTransport::new(settings);
    let host = RecordingHost::new();
    let (ctx, _) = host.context(CHANNEL);
    let err = transport.start(ctx).await.expect_err("start fails");
    assert!(
        err.0
            .starts_with(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(transport.local_addr(), None);
}

/// Starting a running transport again is an error; stopping twice is harmless.
#[actix_rt::test]
async fn start_twice_fails_and_stop_is_idempotent() {
    let server = start(local()).await;
    let (ctx, _) = server.host.context(CHANNEL);
    assert!(server.transport.start(ctx).await.is_err());
    server.transport.stop().await;
    server.transport.stop().await;
}

/// Messages of one client arrive in the order it sent them, interleaved with other clients.
#[actix_rt::test]
async fn per_client_order_is_kept() {
    let server = start(local()).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    for i in 0..5 {
        for (client, name) in [(&mut first, "a"), (&mut second, "b")] {
            client.write(format!("{name}{i}\r\n").as_bytes()).await;
            let got = server.next_inbound().await;
            assert_eq!(got.content, Some(format!("{name}{i}")));
            assert_eq!(got.from_addr.as_deref(), Some(client.addr.as_str()));
        }
    }
    server.transport.stop().await;
}

/// A client that stops reading is dropped after the write timeout: `Connection lost.`.
#[actix_rt::test]
async fn client_that_does_not_read_is_dropped() {
    let server = start_with(local(), Duration::from_millis(200)).await;
    let client = server.connect().await;
    // Loopback buffers hold a few MB: send until they are full and a write times out.
    let big = "x".repeat(1 << 20);
    let mut outcome = Ok(Sent::default());
    for _ in 0..256 {
        outcome = server
            .transport
            .send(outbound(&client.addr, Some(&big), None))
            .await;
        if outcome.is_err() {
            break;
        }
    }
    assert_eq!(outcome, Err(SendError::Rejected("Connection lost.".into())));
    server.expect_close(&client.addr).await;
    let next = server
        .transport
        .send(outbound(&client.addr, Some("x"), None))
        .await;
    assert_eq!(next, Err(SendError::Rejected("Unknown address.".into())));
    server.transport.stop().await;
}
