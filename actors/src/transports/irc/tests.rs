//! The IRC transport against a scripted server on 127.0.0.1, with the shared testkit host:
//! what a real server (tests/irc.rs) cannot be made to do on cue — nick collisions, PINGs,
//! silence, join refusals.
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;

use super::*;
use crate::message::{new_message_id, timestamp_now};
use crate::ports::Direction;
use crate::transports::testkit::{run_local, RecordingHost, DEFAULT_WAIT};

const CHANNEL: &str = "irc-test";

/// One client connection, seen from the server's side.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn accept(listener: &TcpListener) -> Client {
        let (stream, _) = tokio::time::timeout(DEFAULT_WAIT, listener.accept())
            .await
            .expect("the transport connects in time")
            .unwrap();
        let (reader, writer) = stream.into_split();
        Client {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// The next line from the transport, or `None` when it closed the connection.
    async fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(DEFAULT_WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line from the transport in time")
            .unwrap();
        (read > 0).then(|| line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Asserts that the next line is `expected`.
    async fn expect(&mut self, expected: &str) {
        assert_eq!(self.next().await.as_deref(), Some(expected));
    }

    async fn send(&mut self, line: &str) {
        let bytes = format!("{line}\r\n");
        self.writer.write_all(bytes.as_bytes()).await.unwrap();
    }
}

/// A transport on a scripted server at `listener`, with `extra` config on top.
async fn start(listener: &TcpListener, extra: serde_json::Value) -> (IrcTransport, RecordingHost) {
    let mut config = json!({
        "host": "127.0.0.1", "port": listener.local_addr().unwrap().port(),
        "nickname": "bot", "reconnect_initial": 0.05, "reconnect_max": 0.1,
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let settings = parse_config::<IrcConfig>(&config)
        .and_then(IrcConfig::validate)
        .expect("valid config");
    let transport = IrcTransport {
        settings: Rc::new(settings),
        connection: Connection::default(),
    };
    let host = RecordingHost::new();
    let (ctx, _failures) = host.context(CHANNEL);
    transport.start(ctx).await.unwrap();
    (transport, host)
}

fn outbound(to: &str, content: &str) -> Message {
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: Some(to.to_owned()),
        from_addr: None,
        group: None,
        in_reply_to: None,
        session_event: None,
        content: Some(content.to_owned()),
        transport_name: CHANNEL.into(),
        transport_type: "irc".into(),
        transport_metadata: Map::new(),
        helper_metadata: Map::new(),
        expires_at: None,
    }
}

/// Registration with a password (masked in the log) and a taken nick, JOINs, PONGs, taking
/// the nick back from its ghost, a refused join, a message each way (both logged with their
/// ids), a rejected send, and QUIT on stop.
#[test]
fn a_session_from_registration_to_quit() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = json!({"password": "hunter2", "channels": ["#a", "#b"]});
        let (transport, host) = start(&listener, config).await;
        let mut server = Client::accept(&listener).await;
        server.expect("PASS hunter2").await;
        server.expect("NICK bot").await;
        server.expect("USER bot 0 * :Junebug").await;
        server
            .send(":irc.test 433 * bot :Nickname already in use")
            .await;
        server.expect("NICK bot^").await;
        server
            .send(":irc.test 001 bot^ :Welcome bot^!bot@127.0.0.1")
            .await;
        server.expect("JOIN #a").await;
        server.expect("JOIN #b").await;
        let (_, connected) = host.statuses().next().await;
        assert_eq!(
            (connected.status, connected.kind.as_str()),
            (StatusLevel::Ok, "connected")
        );
        assert_eq!(connected.details["nick"], "bot^");

        server.send("PING :irc.test").await;
        server.expect("PONG irc.test").await;
        server.send(":bot^!bot@127.0.0.1 JOIN :#a").await;
        server
            .send(":irc.test 474 bot^ #b :Cannot join channel (+b)")
            .await;
        let (_, refused) = host.statuses().next().await;
        assert_eq!(
            (refused.status, refused.kind.as_str()),
            (StatusLevel::Degraded, "join_failed")
        );
        assert_eq!(refused.details["channel"], "#b");
        server.send(":bot!old@127.0.0.1 QUIT :Ping timeout").await;
        server.expect("NICK bot").await;
        server.send(":bot^!bot@127.0.0.1 NICK :bot").await;

        server.send(":Al!al@host PRIVMSG #a :bot, hi").await;
        let (_, inbound) = host.inbound().next().await;
        assert_eq!(
            inbound.to_addr.as_deref(),
            Some("bot"),
            "the nick taken back"
        );
        assert_eq!(inbound.content.as_deref(), Some("hi"));

        let reply = outbound("al", "hello");
        let reply_id = reply.message_id.clone();
        assert_eq!(transport.send(reply).await, Ok(Sent::default()));
        server.expect("PRIVMSG al :hello").await;
        let empty = transport.send(outbound("al", "")).await;
        assert!(matches!(empty, Err(SendError::Rejected(_))), "{empty:?}");

        transport.stop().await;
        server.expect("QUIT :Junebug channel stopped").await;

        let logs: Vec<_> = host.logs().all().into_iter().map(|(_, r)| r).collect();
        assert!(
            logs.iter().all(|r| !r.message.contains("hunter2")),
            "{logs:#?}"
        );
        assert!(logs.iter().any(|r| r.message == "IRC sent: PASS ********"));
        let about = |id: &str, direction| {
            logs.iter()
                .filter(|r| r.message_ids == [id] && r.direction == Some(direction))
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            about(&inbound.message_id, Direction::Inbound),
            ["IRC received: :Al!al@host PRIVMSG #a :bot, hi"]
        );
        assert_eq!(
            about(&reply_id, Direction::Outbound),
            ["IRC sent: PRIVMSG al :hello"]
        );
    });
}

/// With `nickserv_password`, the bot IDENTIFYs after the welcome and joins only once
/// NickServ has answered (its greeting is not an answer); a refusal is reported as
/// `degraded`/`identify_failed` and the JOINs go ahead. The password never reaches the log.
#[test]
fn nickserv_identification_comes_before_the_joins() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = json!({"nickserv_password": "ns-s3cret", "channels": ["#a"]});
        let (_transport, host) = start(&listener, config).await;
        for (answer, refused) in [
            ("You are now identified for \u{2}bot\u{2}.", false),
            ("Invalid password for \u{2}bot\u{2}.", true),
        ] {
            let mut server = Client::accept(&listener).await;
            server.expect("NICK bot").await;
            server.expect("USER bot 0 * :Junebug").await;
            server.send(":irc.test 001 bot :Welcome").await;
            server
                .expect("PRIVMSG NickServ :IDENTIFY bot ns-s3cret")
                .await;
            server
                .send(":NickServ!s@services NOTICE bot :This nickname is registered.")
                .await;
            server.send("PING :between").await;
            server.expect("PONG between").await;
            server
                .send(&format!(":NickServ!s@services NOTICE bot :{answer}"))
                .await;
            server.expect("JOIN #a").await;
            if refused {
                let failed = host
                    .statuses()
                    .wait_for(|(_, s)| s.kind == "identify_failed")
                    .await
                    .1;
                assert_eq!(failed.status, StatusLevel::Degraded);
                assert!(
                    failed.message.contains("Invalid password"),
                    "{}",
                    failed.message
                );
            } else {
                host.logs()
                    .wait_for(|(_, r)| r.message.starts_with("Identified to NickServ"))
                    .await;
            }
            drop(server); // the second round on a new connection
        }
        let logs: Vec<_> = host.logs().all().into_iter().map(|(_, r)| r).collect();
        assert!(
            logs.iter().all(|r| !r.message.contains("ns-s3cret")),
            "{logs:#?}"
        );
        assert!(logs
            .iter()
            .any(|r| r.message == "IRC sent: PRIVMSG NickServ :IDENTIFY bot ********"));
    });
}

/// A network without a NickServ answering: the JOINs go after `response_timeout`.
#[test]
fn joins_go_ahead_when_nickserv_is_silent() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = json!({"nickserv_password": "pw", "channels": ["#a"],
                            "response_timeout": 0.2});
        let (_transport, host) = start(&listener, config).await;
        let mut server = Client::accept(&listener).await;
        server.expect("NICK bot").await;
        server.expect("USER bot 0 * :Junebug").await;
        server.send(":irc.test 001 bot :Welcome").await;
        server.expect("PRIVMSG NickServ :IDENTIFY bot pw").await;
        server.expect("JOIN #a").await;
        host.logs()
            .wait_for(|(_, r)| r.message.starts_with("No answer to IDENTIFY"))
            .await;
    });
}

/// A server that falls silent is PINGed after `ping_interval`; without an answer within
/// `response_timeout` the connection is dropped (`connection_lost`) and opened again.
#[test]
fn a_silent_server_is_pinged_then_dropped() {
    run_local(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = json!({"ping_interval": 0.2, "response_timeout": 0.3});
        let (_transport, host) = start(&listener, config).await;
        let mut server = Client::accept(&listener).await;
        server.expect("NICK bot").await;
        server.expect("USER bot 0 * :Junebug").await;
        server.send(":irc.test 001 bot :Welcome").await;
        server.expect("PING bot").await;
        assert_eq!(server.next().await, None, "the transport hangs up");
        let lost = host
            .statuses()
            .wait_for(|(_, s)| s.kind == "connection_lost")
            .await
            .1;
        assert_eq!(lost.status, StatusLevel::Down);
        assert!(lost.message.contains("PING"), "{}", lost.message);
        let mut again = Client::accept(&listener).await;
        again.expect("NICK bot").await;
    });
}

/// A transport that is not running asks for the message to be retried; a long text costs
/// one rate-limit token per IRC line.
#[test]
fn sends_before_start_are_retried_and_lines_cost_tokens() {
    run_local(|| async {
        let settings = parse_config::<IrcConfig>(&json!({"host": "h", "nickname": "bot"}))
            .and_then(IrcConfig::validate)
            .unwrap();
        let transport = IrcTransport {
            settings: Rc::new(settings),
            connection: Connection::default(),
        };
        let sent = transport.send(outbound("al", "hello")).await;
        assert!(matches!(sent, Err(SendError::Retry { .. })), "{sent:?}");
        assert_eq!(transport.cost(&outbound("al", &"word ".repeat(300))), 4);
        assert_eq!(transport.cost(&outbound("al", "short")), 1);
    });
}
