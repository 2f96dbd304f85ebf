//! The `irc` channel type against a real IRC server we did not write (ngIRCd, see
//! `common::ircd`), with a person on it played by a raw IRC client: talk in a channel (to
//! the bot by name, or not), private messages, replies, long texts and actions, a server
//! password, a server restart, a kick, NickServ (Atheme).
#[macro_use]
mod common;

use common::ircd::{command, IrcUser, Ircd, IrcdOptions, TLS_NAME};
use common::logs::files_under;
use common::{Api, AppChannel, Backend, Daemon, Deployment};
use serde_json::{json, Value};

/// The bot's nick in these tests.
const BOT: &str = "junebug";

/// A daemon with one IRC channel on a fresh server, and an application server.
struct Setup {
    deployment: Deployment,
    _daemon: Daemon,
    chan: AppChannel,
    ircd: Ircd,
}

app_channel_setup!(Setup);

impl Setup {
    /// A channel in `#test` on `ircd`, with `extra` config keys on top.
    async fn new(backend: Backend, ircd: Ircd, extra: Value) -> Setup {
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let config = json!({
            "host": "127.0.0.1", "port": ircd.port, "nickname": BOT,
            "channels": ["#test"], "reconnect_initial": 0.1, "reconnect_max": 0.5,
        });
        Setup {
            chan: AppChannel::create(&daemon.url, "irc", config, extra).await,
            deployment,
            _daemon: daemon,
            ircd,
        }
    }

    /// A person, `nick`, in `#test` together with the bot.
    async fn person_in_test(&self, nick: &str) -> IrcUser {
        let mut user = IrcUser::connect(self.ircd.port, nick, None).await;
        if !user.join("#test").await.iter().any(|nick| nick == BOT) {
            user.wait_for_join("#test", BOT).await;
        }
        user
    }
}

both_backends! {
/// In a channel, a line addressed to the bot reaches mo_url without the address, as vumi
/// did (`to` is the bot, `group` the channel); a line to everyone arrives whole with no
/// `to`. A reply goes back to the channel addressed to the person.
async fn channel_messages_reach_the_app_and_replies_come_back(backend) {
    let mut s = Setup::new(backend, Ircd::start().await, json!({})).await;
    let mut alice = s.person_in_test("Alice").await;

    alice.say("#test", "junebug: hello").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "hello", "{mo}");
    assert_eq!(mo["group"], "#test");
    assert_eq!(mo["from"], "alice", "nicks are lowercased, as vumi did");
    assert_eq!(mo["to"], BOT);
    assert_eq!(mo["channel_id"], json!(s.channel));
    let irc = &mo["channel_data"]["irc"];
    assert_eq!(irc["irc_command"], "PRIVMSG");
    assert_eq!(irc["addressed_to_transport"], true);
    assert_eq!(irc["irc_channel"], "#test");

    alice.say("#test", "nice weather today").await;
    let chatter = s.mo().await;
    assert_eq!(chatter["content"], "nice weather today");
    assert_eq!(chatter["to"], Value::Null);
    assert_eq!(chatter["channel_data"]["irc"]["addressed_to_transport"], false);

    let reply = mo["message_id"].as_str().unwrap();
    let id = s.send(json!({"reply_to": reply, "content": "hi Alice"})).await;
    assert_eq!(alice.privmsg(BOT, "#test").await, "alice: hi Alice");
    s.event_of("submitted", &id).await;
}
}

/// A private message reaches mo_url with `to` = the bot and no group; the reply, and a
/// fresh message to a nick, go back privately.
#[actix_rt::test]
async fn private_messages_both_ways() {
    let mut s = Setup::new(Backend::Embedded, Ircd::start().await, json!({})).await;
    s.status("connected").await;
    let mut bob = IrcUser::connect(s.ircd.port, "bob", None).await;
    bob.say(BOT, "psst, junebug").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "psst, junebug");
    assert_eq!(
        (mo["from"].as_str(), mo["to"].as_str()),
        (Some("bob"), Some(BOT))
    );
    assert_eq!(mo["group"], Value::Null);

    let reply = mo["message_id"].as_str().unwrap();
    s.send(json!({"reply_to": reply, "content": "what is it?"}))
        .await;
    assert_eq!(bob.privmsg(BOT, "bob").await, "what is it?");
    s.send(json!({"to": "bob", "content": "and another thing"}))
        .await;
    assert_eq!(bob.privmsg(BOT, "bob").await, "and another thing");
}

/// A long text goes out in several lines that each fit IRC's limit and together make the
/// text; `channel_data.irc.irc_command` `ACTION` sends a CTCP ACTION ("/me"). A message
/// whose `to` is a channel goes to everyone in it.
#[actix_rt::test]
async fn long_texts_are_split_and_actions_are_ctcp() {
    let mut s = Setup::new(Backend::Embedded, Ircd::start().await, json!({})).await;
    let mut carol = s.person_in_test("carol").await;
    let words: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let text = words.join(" ");
    s.send(json!({"to": "#test", "content": text})).await;
    let mut received = Vec::new();
    while received.join(" ").len() < text.len() {
        received.push(carol.privmsg(BOT, "#test").await);
    }
    assert!(received.len() >= 3, "{received:?}");
    assert_eq!(received.join(" "), text);

    s.send(json!({"to": "#test", "content": "waves",
                  "channel_data": {"irc": {"irc_command": "ACTION"}}}))
        .await;
    assert_eq!(carol.privmsg(BOT, "#test").await, "\u{1}ACTION waves\u{1}");
    carol.say("#test", "\u{1}ACTION waves back\u{1}").await;
    let action = s.mo().await;
    assert_eq!(action["content"], "waves back");
    assert_eq!(action["channel_data"]["irc"]["irc_command"], "ACTION");
}

/// When the server goes away the channel says so (`down`/`connection_lost`), reconnects
/// when it is back, rejoins its channels (`ok`/`connected`), and sends again.
#[actix_rt::test]
async fn the_channel_reconnects_and_rejoins_after_a_server_restart() {
    let mut s = Setup::new(Backend::Embedded, Ircd::start().await, json!({})).await;
    let connected = s.status("connected").await;
    assert_eq!(connected["status"], "ok");
    assert_eq!(connected["component"], "irc");

    s.ircd.restart().await;
    let lost = s.status("connection_lost").await;
    assert_eq!(lost["status"], "down");
    assert_eq!(s.status("connected").await["status"], "ok");
    let (_, env) = s.api.get(&format!("/channels/{}", s.channel)).await;
    let components = &env["result"]["status"]["components"];
    assert_eq!(components["irc"]["type"], "connected", "{env}");

    let mut dave = s.person_in_test("dave").await;
    s.send(json!({"to": "#test", "content": "back again"}))
        .await;
    assert_eq!(dave.privmsg(BOT, "#test").await, "back again");
    dave.say("#test", "junebug, welcome back").await;
    assert_eq!(s.mo().await["content"], "welcome back");
}

/// Kicked out of a channel, the bot says so (`degraded`/`kicked`), joins again after
/// `rejoin_delay`, says it is back (`ok`/`rejoined`) and hears the channel again.
#[actix_rt::test]
async fn a_kicked_channel_is_rejoined() {
    let ircd = Ircd::start().await;
    // Erin makes the channel, so she is its operator and may kick.
    let mut erin = IrcUser::connect(ircd.port, "erin", None).await;
    erin.join("#ops").await;
    let extra = json!({"channels": ["#ops"], "rejoin_delay": 0.2});
    let mut s = Setup::new(Backend::Embedded, ircd, extra).await;
    erin.wait_for_join("#ops", BOT).await;

    erin.send(&format!("KICK #ops {BOT} :out you go")).await;
    let kicked = s.status("kicked").await;
    assert_eq!(kicked["status"], "degraded", "{kicked}");
    assert_eq!(kicked["details"]["channel"], "#ops");
    assert!(
        kicked["message"].as_str().unwrap().contains("out you go"),
        "{kicked}"
    );

    erin.wait_for_join("#ops", BOT).await;
    let back = s.status("rejoined").await;
    assert_eq!(back["status"], "ok", "{back}");
    erin.say("#ops", "junebug: sorry about that").await;
    assert_eq!(s.mo().await["content"], "sorry about that");
}

/// With `nickserv_password` the bot identifies to the network's NickServ (Atheme, linked to
/// ngIRCd) before joining, so it gets into a channel that admits registered users only
/// (`+R`); the password never reaches the log. A wrong password is reported as
/// `degraded`/`identify_failed`, and that channel stays closed to the bot.
#[actix_rt::test]
async fn the_bot_identifies_to_nickserv_before_joining() {
    const NS_PASSWORD: &str = "ns-s3cret-pass";
    let ircd = Ircd::start_with(IrcdOptions {
        services: true,
        ..IrcdOptions::default()
    })
    .await;
    // The bot's account, registered the way a person registers one.
    let mut owner = IrcUser::connect(ircd.port, BOT, None).await;
    owner.register_with_nickserv(NS_PASSWORD).await;
    owner.send("QUIT").await;
    // Frank's channel admits registered users only.
    let mut frank = IrcUser::connect(ircd.port, "frank", None).await;
    frank.join("#members").await;
    frank.send("MODE #members +R").await;
    frank.expect(|line| command(line) == "MODE").await;

    let extra = json!({"channels": ["#members"], "nickserv_password": NS_PASSWORD});
    let mut s = Setup::new(Backend::Embedded, ircd, extra).await;
    frank.wait_for_join("#members", BOT).await;
    frank.say("#members", "junebug: welcome").await;
    assert_eq!(s.mo().await["content"], "welcome");
    let logs = files_under(&s.deployment.dir.path().join("logs"));
    let logged: String = logs
        .iter()
        .map(|file| String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned())
        .collect();
    assert!(logged.contains("Identified to NickServ"), "{logged}");
    assert!(!logged.contains(NS_PASSWORD));

    let (_, env) = s.api.get(&format!("/channels/{}", s.channel)).await;
    let config = &env["result"]["config"];
    let mut wrong = config.clone();
    wrong["nickserv_password"] = json!("not-the-password");
    let (status, env) = s
        .api
        .post(
            &format!("/channels/{}", s.channel),
            json!({"config": wrong}),
        )
        .await;
    assert_eq!(status, 200, "{env}");
    let failed = s.status("identify_failed").await;
    assert_eq!(failed["status"], "degraded", "{failed}");
    let refused = s.status("join_failed").await;
    assert_eq!(refused["details"]["channel"], "#members", "{refused}");
}

/// A server password goes in the PASS line and never into the channel's log files; a wrong
/// one is reported as `down`/`registration_failed` with the server's words.
#[actix_rt::test]
async fn a_server_password_is_used_and_never_logged() {
    const PASSWORD: &str = "s3cret-irc-pass";
    let with_password = || IrcdOptions {
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    let ircd = Ircd::start_with(with_password()).await;
    let mut s = Setup::new(Backend::Embedded, ircd, json!({"password": PASSWORD})).await;
    assert_eq!(s.status("connected").await["status"], "ok");
    let mut erin = IrcUser::connect(s.ircd.port, "erin", Some(PASSWORD)).await;
    erin.say(BOT, "hello").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "hello");

    // The inbound line is in the message's log (DEBUG, found by its id).
    let id = mo["message_id"].as_str().unwrap().to_owned();
    let (status, env) = s
        .api
        .get(&format!("/channels/{}/messages/{id}/logs", s.channel))
        .await;
    assert_eq!(status, 200, "{env}");
    assert!(env.to_string().contains("PRIVMSG junebug :hello"), "{env}");
    let mut masked = false;
    for file in files_under(&s.deployment.dir.path().join("logs")) {
        let content = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!content.contains(PASSWORD), "the password is in {file:?}");
        masked |= content.contains("PASS ********");
    }
    assert!(masked, "the PASS line is logged, masked");

    let ircd = Ircd::start_with(with_password()).await;
    let mut wrong = Setup::new(Backend::Embedded, ircd, json!({"password": "wrong"})).await;
    let failed = wrong.status("registration_failed").await;
    assert_eq!(failed["status"], "down", "{failed}");
    assert!(
        failed["message"].as_str().unwrap().contains("Bad password"),
        "{failed}"
    );
}

/// Over TLS the server's certificate is verified (here against the CA file of the config)
/// and messages flow; a certificate for another name is refused, and the status says so.
#[actix_rt::test]
async fn tls_to_the_server() {
    let ircd = Ircd::start_with(IrcdOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    let tls = |name: &str| {
        json!({"port": ircd.tls_port, "tls": true, "tls_server_name": name,
               "tls_ca_file": ircd.ca_file()})
    };
    let (good, bad) = (tls(TLS_NAME), tls("other.test"));
    let mut s = Setup::new(Backend::Embedded, ircd, good).await;
    assert_eq!(s.status("connected").await["status"], "ok");
    let mut frank = IrcUser::connect(s.ircd.port, "frank", None).await;
    frank.say(BOT, "over TLS?").await;
    let mo = s.mo().await;
    assert_eq!(mo["content"], "over TLS?");
    s.send(json!({"reply_to": mo["message_id"], "content": "yes"}))
        .await;
    assert_eq!(frank.privmsg(BOT, "frank").await, "yes");

    let mut config = bad;
    config["host"] = json!("127.0.0.1");
    config["nickname"] = json!("other");
    s.api
        .create_channel(json!({"type": "irc", "config": config,
                               "status_url": format!("{}/refused", s.app.url)}))
        .await;
    let lost = s.app.next_on("/refused").await.body;
    assert_eq!(
        (lost["status"].as_str(), lost["type"].as_str()),
        (Some("down"), Some("connection_lost"))
    );
    assert!(lost["message"].as_str().unwrap().contains("TLS"), "{lost}");
}

/// A bad config is refused at creation, naming the key.
#[actix_rt::test]
async fn a_bad_config_is_refused_naming_the_key() {
    let deployment = Deployment::new(Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    for (config, key) in [
        (
            json!({"host": "irc.test", "nickname": "bot", "channels": "#one"}),
            "channels",
        ),
        (json!({"host": "irc.test", "nickname": "1bot"}), "nickname"),
        (json!({"host": "irc.test"}), "nickname"),
        (json!({"nickname": "bot", "channels": ["#a"]}), "host"),
    ] {
        let (status, env) = api
            .post("/channels/", json!({"type": "irc", "config": config}))
            .await;
        assert_eq!(status, 400, "{env}");
        assert!(env.to_string().contains(key), "{key}: {env}");
    }
}
