//! The `xmpp` channel type against a real XMPP server we did not write (Prosody, see
//! `common::prosody`), with people on it played by tokio-xmpp clients: chats both ways with
//! delivery receipts, a MUC room, subscription requests, a wrong password, a server restart, STARTTLS,
//! and the channel log (every stanza, the password never).
#[macro_use]
mod common;

use common::logs::{files_under, message_logs, text};
use common::prosody::{Prosody, XmppUser, MUC};
use common::{Api, AppChannel, Backend, Daemon, Deployment};
use serde_json::{json, Value};
use tokio_xmpp::parsers::message::MessageType;
use tokio_xmpp::parsers::presence::Type as PresenceType;
use tokio_xmpp::parsers::stanza::Stanza;

/// The channel's account.
const BOT: &str = "junebug@localhost";
const BOT_PASSWORD: &str = "s3cret-xmpp-pass";

/// The room the channel joins, and its nick there.
const ROOM: &str = "lobby";
const NICK: &str = "junebug";

/// A daemon with one XMPP channel on a fresh server, and an application server.
struct Setup {
    deployment: Deployment,
    _daemon: Daemon,
    chan: AppChannel,
    prosody: Prosody,
}

app_channel_setup!(Setup);

impl Setup {
    /// A channel for `junebug@localhost` in `lobby`, with `extra` config keys on top; the
    /// accounts `junebug`, `alice` and `bob` exist.
    async fn new(backend: Backend, extra: Value) -> Setup {
        Setup::on(Prosody::start().await, backend, extra).await
    }

    /// The same on a server of the caller's.
    async fn on(prosody: Prosody, backend: Backend, extra: Value) -> Setup {
        prosody.register("junebug", BOT_PASSWORD);
        prosody.register("alice", "alicepass");
        prosody.register("bob", "bobpass");
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let config = json!({
            "jid": BOT, "password": BOT_PASSWORD, "host": "127.0.0.1", "port": prosody.port,
            "allow_plaintext": true, "rooms": [format!("{ROOM}@{MUC}")], "nickname": NICK,
            "reconnect_initial": 0.1, "reconnect_max": 0.5,
        });
        Setup {
            chan: AppChannel::create(&daemon.url, "xmpp", config, extra).await,
            deployment,
            _daemon: daemon,
            prosody,
        }
    }

    /// `user@localhost`, logged in.
    async fn person(&self, user: &str) -> XmppUser {
        XmppUser::connect(self.prosody.port, user, &format!("{user}pass")).await
    }

    /// Every channel log file's content, together.
    fn log_files(&self) -> String {
        files_under(&self.deployment.dir.path().join("logs"))
            .iter()
            .map(|file| String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned())
            .collect()
    }
}

/// (event_type, message_id) of an event.
fn kind_of(event: &Value) -> (Option<&str>, Option<&str>) {
    (event["event_type"].as_str(), event["message_id"].as_str())
}

both_backends! {
/// A chat to the channel's account reaches mo_url (`from`/`to` bare JIDs); the reply goes
/// back as a chat asking for a receipt, and the person's client answering it turns into
/// `submitted` then `delivery_succeeded` on the event_url.
async fn chats_both_ways_with_delivery_receipts(backend) {
    let mut s = Setup::new(backend, json!({})).await;
    let connected = s.status("connected").await;
    assert_eq!(connected["status"], "ok", "{connected}");
    assert_eq!(connected["component"], "xmpp");
    let mut alice = s.person("alice").await;

    alice.say(BOT, "hello junebug").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "hello junebug", "{mo}");
    assert_eq!(mo["from"], "alice@localhost");
    assert_eq!(mo["to"], BOT);
    assert_eq!(mo["group"], Value::Null);
    assert_eq!(mo["channel_id"], json!(s.channel));
    assert_eq!(mo["channel_data"]["xmpp"]["type"], "chat");

    let reply = mo["message_id"].as_str().unwrap();
    let id = s.send(json!({"reply_to": reply, "content": "hi Alice"})).await;
    // Reading the reply answers its receipt request.
    assert_eq!(alice.message_from(MessageType::Chat, BOT).await, "hi Alice");
    let submitted = s.event().await;
    assert_eq!(kind_of(&submitted), (Some("submitted"), Some(id.as_str())));
    let delivered = s.event().await;
    assert_eq!(kind_of(&delivered), (Some("delivery_succeeded"), Some(id.as_str())));

    let fresh = s.send(json!({"to": "alice@localhost", "content": "and another thing"})).await;
    assert_eq!(alice.message_from(MessageType::Chat, BOT).await, "and another thing");
    assert_eq!(kind_of(&s.event().await), (Some("submitted"), Some(fresh.as_str())));
    assert_eq!(kind_of(&s.event().await), (Some("delivery_succeeded"), Some(fresh.as_str())));
}
}

/// Where the server offers STARTTLS the channel takes it before logging in, verifying the
/// server's certificate against `tls_ca_file`; chats then flow as usual. Without that CA the
/// certificate is not trusted and the channel stays down saying why (no login in the clear).
#[actix_rt::test]
async fn starttls_where_the_server_offers_it() {
    let prosody = Prosody::start_with_tls().await;
    let ca = prosody.ca_file().display().to_string();
    let secure = json!({"allow_plaintext": false, "tls_ca_file": ca});
    let mut s = Setup::on(prosody, Backend::Embedded, secure).await;
    let connected = s.status("connected").await;
    assert_eq!(connected["status"], "ok", "{connected}");
    assert!(s
        .log_files()
        .contains("XMPP: TLS established with localhost"));
    let mut alice = s.person("alice").await;
    alice.say(BOT, "over TLS").await;
    assert_eq!(s.mo().await["content"], "over TLS");

    let untrusted = json!({"allow_plaintext": false, "tls_ca_file": null});
    let mut s = Setup::on(
        Prosody::start_with_tls().await,
        Backend::Embedded,
        untrusted,
    )
    .await;
    let lost = s.status("connection_lost").await;
    assert_eq!(lost["status"], "down", "{lost}");
    assert!(
        lost["message"].as_str().unwrap().contains("certificate"),
        "{lost}"
    );
}

/// Every stanza is in the channel log, tagged with the message it carries; the password
/// and the SASL exchange never are.
#[actix_rt::test]
async fn stanzas_are_logged_by_message_and_the_password_never() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.status("connected").await;
    let mut bob = s.person("bob").await;
    bob.say(BOT, "log me").await;
    let mo = s.mo().await;
    let inbound = mo["message_id"].as_str().unwrap().to_owned();
    let id = s
        .send(json!({"reply_to": inbound, "content": "logged"}))
        .await;
    assert_eq!(bob.message_from(MessageType::Chat, BOT).await, "logged");
    s.event().await; // submitted
    s.event().await; // delivery_succeeded: the receipt is in

    let entries = common::logs::eventually("the receipt in the message's log", || {
        let (api, channel, id) = (s.api.clone(), s.channel.clone(), id.clone());
        async move {
            let entries = message_logs(&api, &channel, &id).await;
            entries
                .iter()
                .any(|e| text(e).contains("<received"))
                .then_some(entries)
        }
    })
    .await;
    let sent = entries
        .iter()
        .find(|e| text(e).starts_with("XMPP sent: <message"));
    let sent = sent.unwrap_or_else(|| panic!("no sent stanza in {entries:?}"));
    assert!(
        text(sent).contains("logged") && text(sent).contains(&id),
        "{sent}"
    );
    assert_eq!(sent["direction"], "outbound", "{sent}");
    let inbound_logs = message_logs(&s.api, &s.channel, &inbound).await;
    assert!(
        inbound_logs.iter().any(|e| text(e).contains("log me")),
        "{inbound_logs:?}"
    );

    let logs = s.log_files();
    assert!(
        !logs.contains(BOT_PASSWORD),
        "the password is in the log files"
    );
    assert!(
        logs.contains("XMPP sent: <auth"),
        "the SASL exchange is logged, masked"
    );
    assert!(logs.contains("********"), "the SASL payloads are masked");
}

/// The channel joins its room: a groupchat message there reaches mo_url with `group` = the
/// room and `from` = the sender's occupant JID; the reply goes to the room, addressed to
/// the person by nick.
#[actix_rt::test]
async fn room_messages_both_ways() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.status("connected").await;
    let mut alice = s.person("alice").await;
    if !alice.join(ROOM, "alice").await.iter().any(|n| n == NICK) {
        alice.wait_for_occupant(ROOM, NICK).await;
    }
    let room = format!("{ROOM}@{MUC}");

    alice.say_in_room(ROOM, "hello room").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "hello room", "{mo}");
    assert_eq!(mo["group"], json!(room));
    assert_eq!(mo["from"], json!(format!("{room}/alice")));
    assert_eq!(mo["channel_data"]["xmpp"]["type"], "groupchat");
    assert_eq!(mo["channel_data"]["xmpp"]["nick"], "alice");

    let id = s
        .send(json!({"reply_to": mo["message_id"], "content": "hi"}))
        .await;
    let from_bot = format!("{room}/{NICK}");
    let said = alice.message_from(MessageType::Groupchat, &from_bot).await;
    assert_eq!(said, "alice: hi");
    assert_eq!(
        kind_of(&s.event().await),
        (Some("submitted"), Some(id.as_str()))
    );

    s.send(json!({"to": room, "group": room, "content": "hello everyone"}))
        .await;
    let said = alice.message_from(MessageType::Groupchat, &from_bot).await;
    assert_eq!(said, "hello everyone");
}

/// A subscription request is accepted, and the channel asks back, as vumi did.
#[actix_rt::test]
async fn subscription_requests_are_accepted() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.status("connected").await;
    let mut bob = s.person("bob").await;
    bob.fetch_roster().await;
    let subscribe = tokio_xmpp::parsers::presence::Presence::subscribe()
        .with_to(tokio_xmpp::parsers::jid::Jid::new(BOT).unwrap());
    bob.send(subscribe.into()).await;
    for wanted in [PresenceType::Subscribed, PresenceType::Subscribe] {
        bob.expect(|stanza| {
            matches!(stanza, Stanza::Presence(p) if p.type_ == wanted
                && p.from.as_ref().is_some_and(|f| f.to_bare().as_str() == BOT))
        })
        .await;
    }
}

/// A wrong password is reported as `down`/`auth_failed` with the server's condition, and
/// appears in no log.
#[actix_rt::test]
async fn a_wrong_password_is_reported_as_auth_failed() {
    let mut s = Setup::new(
        Backend::Embedded,
        json!({"password": "not-the-password", "reconnect_initial": 5.0, "reconnect_max": 5.0}),
    )
    .await;
    let failed = s.status("auth_failed").await;
    assert_eq!(failed["status"], "down", "{failed}");
    assert_eq!(failed["component"], "xmpp");
    assert_eq!(failed["details"]["condition"], "not-authorized", "{failed}");
    let (_, env) = s.api.get(&format!("/channels/{}", s.channel)).await;
    assert_eq!(
        env["result"]["status"]["components"]["xmpp"]["type"], "auth_failed",
        "{env}"
    );
    assert!(!s.log_files().contains("not-the-password"));
}

/// When the server goes away the channel says so (`down`/`connection_lost`), logs in again
/// when it is back, rejoins (`ok`/`connected`), and messages flow both ways again.
#[actix_rt::test]
async fn the_channel_reconnects_after_a_server_restart() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    assert_eq!(s.status("connected").await["status"], "ok");

    s.prosody.restart().await;
    let lost = s.status("connection_lost").await;
    assert_eq!(lost["status"], "down", "{lost}");
    assert_eq!(s.status("connected").await["status"], "ok");

    let mut alice = s.person("alice").await;
    alice.say(BOT, "are you back?").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "are you back?");
    let id = s
        .send(json!({"reply_to": mo["message_id"], "content": "yes"}))
        .await;
    assert_eq!(alice.message_from(MessageType::Chat, BOT).await, "yes");
    assert_eq!(
        kind_of(&s.event().await),
        (Some("submitted"), Some(id.as_str()))
    );
    assert_eq!(
        kind_of(&s.event().await),
        (Some("delivery_succeeded"), Some(id.as_str()))
    );
}

/// A bad config is refused at creation, naming the key.
#[actix_rt::test]
async fn a_bad_config_is_refused_naming_the_key() {
    let deployment = Deployment::new(Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    for (config, key) in [
        (json!({"jid": "nodomain", "password": "pw"}), "jid"),
        (json!({"jid": "a@example.org"}), "password"),
        (json!({"password": "pw"}), "jid"),
        (
            json!({"jid": "a@example.org", "password": "pw", "rooms": "lobby@muc.example.org"}),
            "rooms",
        ),
        (
            json!({"jid": "a@example.org", "password": "pw", "allow_plaintext": true}),
            "allow_plaintext",
        ),
        (
            json!({"username": "a@example.org", "password": "pw", "port": "x"}),
            "port",
        ),
    ] {
        let (status, env) = api
            .post("/channels/", json!({"type": "xmpp", "config": config}))
            .await;
        assert_eq!(status, 400, "{env}");
        assert!(env.to_string().contains(key), "{key}: {env}");
    }
}
