//! The `smpp` channel type against a real SMSC we did not write (the npm `smpp` package in
//! server mode, tests/peers/smsc): binds, sends with delivery receipts, MO, long messages and
//! UCS2 both ways, throttling, a dropped connection, a dead link, USSD sessions.
#[macro_use]
mod common;

use common::redis_server::RedisServer;
use common::smsc::Smsc;
use common::{logs, metrics, Api, AppChannel, Backend, CallbackServer, Daemon, Deployment};
use serde_json::{json, Value};

/// A daemon with one SMPP channel bound to a fresh SMSC, and an application server.
struct Setup {
    deployment: Deployment,
    daemon: Daemon,
    chan: AppChannel,
    smsc: Smsc,
}

app_channel_setup!(Setup);

impl Setup {
    async fn new(backend: Backend, config: Value) -> Setup {
        Self::with_smsc(backend, Smsc::start(json!({})).await, config).await
    }

    async fn with_smsc(backend: Backend, smsc: Smsc, config: Value) -> Setup {
        let mut setup = Self::unbound(backend, smsc, config).await;
        setup.smsc.expect("bind").await;
        setup
    }

    /// A channel on `smsc` that may not bind (a test of failures).
    async fn new_unbound(smsc: Smsc, config: Value) -> Setup {
        Self::unbound(Backend::Embedded, smsc, config).await
    }

    async fn unbound(backend: Backend, smsc: Smsc, config: Value) -> Setup {
        Self::unbound_with(backend, smsc, config, &[]).await
    }

    /// A channel on `smsc` of a daemon started with extra environment `env`.
    async fn unbound_with(
        backend: Backend,
        smsc: Smsc,
        config: Value,
        env: &[(&str, &str)],
    ) -> Setup {
        let deployment = Deployment::new(backend);
        let daemon = deployment.start_with(env);
        let api = Api::new(&daemon.url);
        let app = CallbackServer::start().await;
        let channel = api
            .create_channel(json!({
                "type": "smpp",
                "config": smsc.channel_config(config),
                "mo_url": format!("{}/mo", app.url),
                "status_url": format!("{}/status", app.url),
            }))
            .await;
        Setup {
            chan: AppChannel { api, app, channel },
            deployment,
            daemon,
            smsc,
        }
    }

    /// Waits until every message of `ids` has its `submitted` event (at least once).
    async fn assert_all_submitted(&mut self, ids: Vec<String>) {
        let mut submitted = std::collections::BTreeSet::new();
        while submitted.len() < ids.len() {
            let event = self.event().await;
            if event["event_type"] == "submitted" {
                submitted.insert(event["message_id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(submitted, ids.into_iter().collect());
    }
}

both_backends! {
/// A send goes out as one GSM submit_sm asking for a receipt; the application gets
/// `submitted`, then `delivery_succeeded` with the receipt's fields.
async fn a_send_is_submitted_and_its_receipt_becomes_an_event(backend) {
    let mut s = Setup::new(backend, json!({})).await;
    let id = s.send(json!({"to": "+27831234567", "from": "1234", "content": "hello {world}"})).await;
    let submit = s.smsc.expect("submit_sm").await;
    assert_eq!(submit["destination_addr"], "+27831234567");
    assert_eq!(submit["source_addr"], "1234");
    assert_eq!(submit["text"], "hello {world}", "GSM with the extension table, decoded by the SMSC");
    assert_eq!(submit["data_coding"], 0);
    assert_eq!(submit["esm_class"], 0);
    assert_eq!(submit["registered_delivery"], 1);

    s.event_of("submitted", &id).await;
    let delivered = s.event().await;
    assert_eq!(delivered["event_type"], "delivery_succeeded");
    assert_eq!(delivered["message_id"], json!(id));
    assert_eq!(delivered["event_details"]["stat"], "DELIVRD");
    assert_eq!(delivered["event_details"]["smsc_message_id"], submit["message_id"]);
}
}

/// A receipt that reaches Junebug before its submit_sm_resp is held until the id is known,
/// and the events still arrive in order.
#[actix_rt::test]
async fn a_receipt_racing_ahead_of_its_submit_response_is_not_lost() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.smsc.command(json!({"cmd": "receipts_first", "on": true}));
    s.smsc
        .command(json!({"cmd": "receipt_stat", "stat": "UNDELIV"}));
    s.smsc.expect("done").await;
    s.smsc.expect("done").await;
    let id = s
        .send(json!({"to": "+27831234567", "from": "1234", "content": "race"}))
        .await;
    s.smsc.expect("receipt_sent").await;
    assert_eq!(s.event().await["event_type"], "submitted");
    let failed = s.event_of("delivery_failed", &id).await;
    assert_eq!(failed["event_details"]["stat"], "UNDELIV");
    assert_eq!(s.smsc.expect("receipt_resp").await["status"], 0);
}

/// An SMSC that writes receipt ids in decimal (for hex submit ids) is matched by config.
#[actix_rt::test]
async fn receipt_ids_in_another_base_are_matched_by_config() {
    let smsc = Smsc::start(json!({"receipt_ids": "decimal"})).await;
    let config = json!({"receipt_id_format": "decimal_to_hex"});
    let mut s = Setup::with_smsc(Backend::Embedded, smsc, config).await;
    let id = s
        .send(json!({"to": "+27830000001", "from": "1234", "content": "base"}))
        .await;
    assert_eq!(s.event().await["event_type"], "submitted");
    s.event_of("delivery_succeeded", &id).await;
}

/// An MO from a handset reaches mo_url, and the SMSC gets its deliver_sm_resp after that.
#[actix_rt::test]
async fn an_inbound_sms_reaches_mo_url() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.smsc.command(
        json!({"cmd": "mo", "from": "+27831112222", "to": "1234", "text": "hi there", "tag": "m1"}),
    );
    let mo = s.app.next_on("/mo").await.body;
    assert_eq!(mo["from"], "+27831112222");
    assert_eq!(mo["to"], "1234");
    assert_eq!(mo["content"], "hi there");
    assert_eq!(mo["channel_id"], json!(s.channel));
    assert_eq!(s.smsc.expect("mo_resp").await["status"], 0);
}

/// While the daemon cannot keep an inbound message (its Redis does not answer), the SMSC is
/// told to send it again later (`ESME_RX_T_APPN`); once Redis is back, the message goes through.
#[actix_rt::test]
async fn an_inbound_message_the_daemon_cannot_keep_is_refused_for_later() {
    let redis = RedisServer::start(common::free_port());
    let env = [("JUNEBUG_REDIS__URL", redis.url())];
    let env: Vec<_> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let smsc = Smsc::start(json!({})).await;
    let mut s = Setup::unbound_with(Backend::Production, smsc, json!({}), &env).await;
    s.smsc.expect("bind").await;
    let mo =
        |tag| json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": "keep me", "tag": tag});

    // Frozen rather than killed: it still holds the channel when it answers again.
    redis.signal("STOP");
    s.smsc.command(mo(1));
    let refused = s.smsc.expect("mo_resp").await;
    assert_eq!(refused["status"], 0x64, "ESME_RX_T_APPN: {refused}");

    redis.signal("CONT");
    // The SMSC tries again until the daemon takes it, as an SMSC does.
    let deadline = std::time::Instant::now() + common::WAIT;
    for attempt in 2.. {
        s.smsc.command(mo(attempt));
        if s.smsc.expect("mo_resp").await["status"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused after Redis came back"
        );
    }
    assert_eq!(s.app.next_on("/mo").await.body["content"], "keep me");
}

/// A channel whose SMSC packs GSM 7-bit text reads it packed.
#[actix_rt::test]
async fn packed_gsm_text_is_read_when_configured() {
    let mut s = Setup::new(Backend::Embedded, json!({"inbound_gsm7_packed": true})).await;
    // "hellohello" as TS 23.038 packs it: ten septets in nine octets.
    s.smsc
        .command(json!({"cmd": "mo", "from": "+2783", "to": "1234",
                          "hex": "e8329bfd4697d9ec37", "data_coding": 0}));
    assert_eq!(s.app.next_on("/mo").await.body["content"], "hellohello");
}

/// Long messages: out as UDH parts sharing a reference (one `submitted`, one final event with
/// per-part details), in as UDH parts joined into one message.
#[actix_rt::test]
async fn long_messages_go_out_in_parts_and_come_in_whole() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let id = s
        .send(json!({"to": "+27831234567", "from": "1234", "content": text}))
        .await;
    let mut joined = String::new();
    let mut references = Vec::new();
    for sequence in 1..=3 {
        let part = s.smsc.expect("submit_sm").await;
        assert_eq!(part["esm_class"], 0x40);
        let udh = part["udh"][0].as_str().unwrap().to_owned();
        assert_eq!(&udh[..4], "0003", "8-bit concatenation IE");
        assert_eq!(&udh[6..], format!("03{sequence:02x}"));
        references.push(udh[4..6].to_owned());
        joined.push_str(part["text"].as_str().unwrap());
    }
    assert_eq!(joined, text);
    assert!(
        references.iter().all(|r| *r == references[0]),
        "{references:?}"
    );
    assert_eq!(s.event().await["event_type"], "submitted");
    let delivered = s.event_of("delivery_succeeded", &id).await;
    assert_eq!(
        delivered["event_details"]["parts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    s.app
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;

    for (sequence, text) in [(2, " world"), (1, "hello")] {
        let udh = format!("0500037f02{sequence:02x}");
        s.smsc
            .command(json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": text, "udh": udh}));
    }
    assert_eq!(s.app.next_on("/mo").await.body["content"], "hello world");
}

both_backends! {
/// A part answered before a crash is not lost: the daemon kept it, and the message is whole
/// once the last part arrives after the restart.
async fn a_long_inbound_message_survives_a_crash_between_its_parts(backend) {
    let mut s = Setup::new(backend, json!({})).await;
    let part = |sequence, text| {
        let udh = format!("0500034202{sequence:02x}");
        json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": text, "udh": udh, "tag": sequence})
    };
    s.smsc.command(part(1, "hello"));
    let answered = s.smsc.expect("mo_resp").await;
    assert_eq!((answered["tag"].as_i64(), answered["status"].as_i64()), (Some(1), Some(0)));

    s.deployment.crash_and_restart(&mut s.daemon);
    s.smsc.expect("bind").await;
    s.smsc.command(part(2, " world"));
    assert_eq!(s.app.next_on("/mo").await.body["content"], "hello world");
}
}

/// A long message whose other parts never come is delivered as far as it arrived once
/// `multipart_timeout` has passed.
#[actix_rt::test]
async fn a_long_message_missing_parts_is_delivered_after_the_timeout() {
    let mut s = Setup::new(Backend::Embedded, json!({"multipart_timeout": 0.5})).await;
    let udh = "0500034303"; // reference 0x43, 3 parts
    for (sequence, text) in [(1, "hello"), (3, "!")] {
        let udh = format!("{udh}{sequence:02x}");
        s.smsc
            .command(json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": text, "udh": udh}));
    }
    let mo = s.app.next_on("/mo").await.body;
    assert_eq!(
        (mo["content"].as_str(), mo["from"].as_str()),
        (Some("hello!"), Some("+2783"))
    );
}

/// Text outside GSM 03.38 goes out as UCS2 (emoji included) and comes in from UCS2.
#[actix_rt::test]
async fn ucs2_both_ways() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.send(json!({"to": "+27831234567", "from": "1234", "content": "Привет 👋"}))
        .await;
    let submit = s.smsc.expect("submit_sm").await;
    assert_eq!(submit["data_coding"], 8);
    assert_eq!(submit["text"], "Привет 👋");
    s.smsc.command(
        json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": "Жук 🐞", "data_coding": 8}),
    );
    assert_eq!(s.app.next_on("/mo").await.body["content"], "Жук 🐞");
}

/// ESME_RTHROTTLED pauses the channel (status `throttled`), then the message goes out.
#[actix_rt::test]
async fn throttling_slows_the_channel_down_and_it_recovers() {
    let config = json!({"throttle_delay": 0.2});
    let mut s = Setup::new(Backend::Embedded, config).await;
    s.status("bound").await;
    s.smsc.command(json!({"cmd": "throttle", "count": 2}));
    s.smsc.expect("done").await;
    let id = s
        .send(json!({"to": "+27831234567", "from": "1234", "content": "slowly"}))
        .await;
    s.smsc.expect("throttled").await;
    s.smsc.expect("throttled").await;
    s.smsc.expect("submit_sm").await;
    assert_eq!(s.status("throttled").await["status"], "degraded");
    assert_eq!(s.status("bound").await["status"], "ok");
    s.event_of("submitted", &id).await;

    let scrape = metrics::scrape(&s.daemon.url).await;
    let ch = s.channel.as_str();
    let throttled = metrics::sample(
        &scrape,
        "junebug_send_delays_total",
        &[("channel_id", ch), ("reason", "throttled")],
    );
    assert!(throttled >= Some(1.0), "{throttled:?}");
    let bind = metrics::sample(
        &scrape,
        "junebug_component_status",
        &[("channel_id", ch), ("component", "smpp")],
    );
    assert_eq!(bind, Some(2.0));
}

/// The SMSC drops the connection while submits await their responses: Junebug reconnects
/// and every message is submitted (at least once).
#[actix_rt::test]
async fn a_dropped_connection_loses_nothing() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.smsc.command(json!({"cmd": "hold_submits", "on": true}));
    s.smsc.expect("done").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            s.send(json!({"to": format!("+2783000000{n}"), "from": "1234", "content": "x"}))
                .await,
        );
    }
    for _ in 0..5 {
        s.smsc.expect("submit_sm").await;
    }
    s.smsc.command(json!({"cmd": "hold_submits", "on": false}));
    s.smsc.command(json!({"cmd": "disconnect"}));
    assert_eq!(s.status("connection_lost").await["status"], "down");
    s.smsc.expect("bind").await;
    s.assert_all_submitted(ids).await;
}

/// An SMSC that stops answering enquire_link is declared dead and reconnected to.
#[actix_rt::test]
async fn an_unanswered_enquire_link_means_a_dead_link() {
    let config = json!({"enquire_link_interval": 0.3, "response_timeout": 0.5});
    let mut s = Setup::new(Backend::Embedded, config).await;
    s.smsc
        .expect_where("enquire_link", |e| e["answered"] == true)
        .await;
    s.smsc
        .command(json!({"cmd": "enquire_link", "answer": false}));
    s.smsc
        .expect_where("enquire_link", |e| e["answered"] == false)
        .await;
    s.smsc
        .command(json!({"cmd": "enquire_link", "answer": true}));
    let lost = s.status("connection_lost").await;
    assert!(
        lost["message"].as_str().unwrap().contains("enquire_link"),
        "{lost}"
    );
    s.smsc.expect("bind").await;
    assert_eq!(s.status("bound").await["status"], "ok");
}

/// A refused bind is reported with its command_status, and retried.
#[actix_rt::test]
async fn a_refused_bind_is_reported() {
    let smsc = Smsc::start(json!({"password": "other"})).await;
    let mut s = Setup::with_smsc(Backend::Embedded, smsc, json!({})).await;
    let failed = s.status("bind_failed").await;
    assert_eq!(failed["status"], "down");
    assert_eq!(failed["details"]["command_status"], 0x0e);
    s.smsc.expect_where("bind", |e| e["ok"] == false).await;
}

/// With a transmitter and a receiver bind, sends use the first and MO arrives on the second.
#[actix_rt::test]
async fn transmitter_and_receiver_binds_split_the_traffic() {
    let mut s = Setup::new(
        Backend::Embedded,
        json!({"bind_mode": "transmitter_receiver"}),
    )
    .await;
    let second = s.smsc.expect("bind").await;
    assert_eq!(second["ok"], true);
    s.send(json!({"to": "+27831234567", "from": "1234", "content": "out"}))
        .await;
    s.smsc.expect("submit_sm").await;
    assert_eq!(s.event().await["event_type"], "submitted");
    s.smsc
        .command(json!({"cmd": "mo", "from": "+2783", "to": "1234", "text": "in"}));
    assert_eq!(s.app.next_on("/mo").await.body["content"], "in");
}

/// A USSD session of three steps: dial, menu, answer, final screen.
#[actix_rt::test]
async fn a_ussd_session_of_three_steps() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.smsc.command(
        json!({"cmd": "mo", "from": "+2783", "to": "*120#", "text": "*120#",
                          "ussd_service_op": 1, "its_session_info": "2a00"}),
    );
    let dial = s.app.next_on("/mo").await.body;
    assert_eq!(dial["channel_data"]["session_event"], "new");
    let reply = |to: &Value, text: &str, more: bool| json!({"reply_to": to["message_id"], "content": text, "channel_data": {"continue_session": more}});
    s.send(reply(&dial, "1. Balance 2. Quit", true)).await;
    let menu = s.smsc.expect("submit_sm").await;
    assert_eq!(
        (
            menu["ussd_service_op"].as_u64(),
            menu["its_session_info"].as_str()
        ),
        (Some(2), Some("2a00"))
    );
    assert_eq!(menu["text"], "1. Balance 2. Quit");

    s.smsc.command(
        json!({"cmd": "mo", "from": "+2783", "to": "*120#", "text": "1",
                          "ussd_service_op": 18, "its_session_info": "2a00"}),
    );
    let answer = s.app.next_on("/mo").await.body;
    assert_eq!(answer["channel_data"]["session_event"], "resume");
    assert_eq!(answer["content"], "1");
    s.send(reply(&answer, "Your balance is 0", false)).await;
    let last = s.smsc.expect("submit_sm").await;
    assert_eq!(
        (
            last["ussd_service_op"].as_u64(),
            last["its_session_info"].as_str()
        ),
        (Some(17), Some("2a01"))
    );
}

/// A bad SMPP config is refused at creation, naming the key.
#[actix_rt::test]
async fn a_bad_config_is_refused_naming_the_key() {
    let deployment = Deployment::new(Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (status, env) = api
        .post("/channels/", json!({"type": "smpp", "config": {"host": "h", "port": 1, "system_id": "a", "password": "far too long"}}))
        .await;
    assert_eq!(status, 400, "{env}");
    assert!(env.to_string().contains("password"), "{env}");
}

both_backends! {
/// Issue 14, under load: 2,000 sends from 16 clients at once, with receipts. Every message
/// reaches the SMSC exactly once, and its application gets `submitted` then
/// `delivery_succeeded`, exactly once each and in that order, for every message.
async fn under_load_every_message_goes_out_once_with_its_events_in_order(backend) {
    use futures_util::StreamExt;
    use std::collections::HashMap;
    const MESSAGES: usize = 2000;
    let mut s = Setup::new(backend, json!({})).await;
    let numbers: Vec<String> = (0..MESSAGES).map(|n| format!("+2784{n:07}")).collect();
    let ids: Vec<String> = futures_util::stream::iter(&numbers)
        .map(|to| s.send(json!({"to": to, "from": "1234", "content": "load"})))
        .buffered(16)
        .collect()
        .await;
    let mut submits: HashMap<String, usize> = HashMap::new();
    for _ in 0..MESSAGES {
        let submit = s.smsc.expect("submit_sm").await;
        *submits.entry(submit["destination_addr"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    let mut complete = 0;
    while complete < MESSAGES {
        let event = s.event().await;
        let of = events.entry(event["message_id"].as_str().unwrap().to_owned()).or_default();
        of.push(event["event_type"].as_str().unwrap().to_owned());
        if of.len() == 2 {
            complete += 1;
        }
    }
    assert_eq!(s.smsc.seen("submit_sm"), Vec::<Value>::new(), "a message went out twice");
    assert!(submits.values().all(|&n| n == 1), "a number got two submit_sm");
    assert_eq!(submits.len(), MESSAGES, "a message never reached the SMSC");
    assert_eq!(events.len(), MESSAGES, "events of unknown messages");
    for id in &ids {
        assert_eq!(events[id], ["submitted", "delivery_succeeded"], "events of {id}");
    }
}
}

/// At most `window_size` submit_sm await their response at once; unanswered ones time out
/// and are sent again, so every message is still submitted.
#[actix_rt::test]
async fn the_window_bounds_outstanding_submits() {
    let config = json!({"window_size": 2, "response_timeout": 1});
    let mut s = Setup::new(Backend::Embedded, config).await;
    s.smsc.command(json!({"cmd": "hold_submits", "on": true}));
    s.smsc.expect("done").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            s.send(json!({"to": format!("+2783100000{n}"), "from": "1234", "content": "w"}))
                .await,
        );
    }
    s.smsc.expect("submit_sm").await;
    s.smsc.expect("submit_sm").await;
    // The SMSC holds both: nothing else may go out until one is answered or times out.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        s.smsc.seen("submit_sm"),
        Vec::<Value>::new(),
        "a third submit_sm went out"
    );
    s.smsc.command(json!({"cmd": "hold_submits", "on": false}));
    s.assert_all_submitted(ids).await;
}

/// Issue 14: a channel without `max_in_flight` keeps its SMPP session's whole window of
/// submit_sm outstanding (30 here), not the old fixed 10; the channel holds the rest ready
/// (up to three windows more), and the queue endpoint counts all it took as in flight.
#[actix_rt::test]
async fn a_channel_keeps_its_smpp_window_full() {
    // Held submit_sm are never answered: they time out (after the checks below, well before
    // the test's wait) and are sent again.
    let config = json!({"window_size": 30, "response_timeout": 3});
    let mut s = Setup::new(Backend::Embedded, config).await;
    s.smsc.command(json!({"cmd": "hold_submits", "on": true}));
    s.smsc.expect("done").await;
    let mut ids = Vec::new();
    for n in 0..35 {
        let to = format!("+278320000{n:02}");
        ids.push(
            s.send(json!({"to": to, "from": "1234", "content": "w"}))
                .await,
        );
    }
    for _ in 0..30 {
        s.smsc.expect("submit_sm").await;
    }
    let (status, queue) = s.api.get(&format!("/channels/{}/queue", s.channel)).await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(queue["result"]["in_flight"], 35, "{queue}");
    assert_eq!(queue["result"]["waiting"]["total"], 0, "{queue}");
    s.smsc.command(json!({"cmd": "hold_submits", "on": false}));
    s.assert_all_submitted(ids).await;
}

/// With `concatenation: sar` the parts carry SAR TLVs instead of a UDH.
#[actix_rt::test]
async fn sar_parts_when_configured() {
    let mut s = Setup::new(
        Backend::Embedded,
        json!({"concatenation": "sar", "registered_delivery": false}),
    )
    .await;
    let text = "x".repeat(200);
    s.send(json!({"to": "+27831234567", "from": "1234", "content": text}))
        .await;
    let first = s.smsc.expect("submit_sm").await;
    let second = s.smsc.expect("submit_sm").await;
    assert_eq!(
        (
            first["esm_class"].as_u64(),
            first["udh"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(first["sar"]["total"], 2);
    assert_eq!(
        (
            first["sar"]["sequence"].as_u64(),
            second["sar"]["sequence"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(first["sar"]["reference"], second["sar"]["reference"]);
    let joined = format!(
        "{}{}",
        first["text"].as_str().unwrap(),
        second["text"].as_str().unwrap()
    );
    assert_eq!(joined, text);
}

/// The channel's status object shows the bind, and deleting the channel unbinds politely.
#[actix_rt::test]
async fn status_shows_the_bind_and_delete_unbinds() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.status("bound").await;
    let (_, env) = s.api.get(&format!("/channels/{}", s.channel)).await;
    let status = &env["result"]["status"];
    assert_eq!(status["status"], "ok", "{env}");
    assert_eq!(status["components"]["smpp"]["type"], "bound", "{env}");
    let (code, _) = s.api.delete(&format!("/channels/{}", s.channel)).await;
    assert_eq!(code, 200);
    s.smsc.expect("unbind").await;
    s.smsc.expect("closed").await;
}

/// SMPP over TLS, the SMSC's certificate verified against the channel's CA file.
#[actix_rt::test]
async fn tls_to_the_smsc() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, key, cert) = common::certificates(dir.path(), "smsc.test");
    let tls = json!({"key": key, "cert": cert});
    let smsc = Smsc::start(json!({"tls": tls})).await;
    let config = json!({"tls": true, "tls_ca_file": ca, "tls_server_name": "smsc.test"});
    let mut s = Setup::with_smsc(Backend::Embedded, smsc, config).await;
    s.send(json!({"to": "+27831234567", "from": "1234", "content": "secret handshake"}))
        .await;
    assert_eq!(s.smsc.expect("submit_sm").await["text"], "secret handshake");
    assert_eq!(s.event().await["event_type"], "submitted");

    // A certificate for another name is refused: no bind, and the status says why.
    let smsc = Smsc::start(json!({"tls": tls})).await;
    let config = json!({"tls": true, "tls_ca_file": ca, "tls_server_name": "other.test"});
    let mut s = Setup::new_unbound(smsc, config).await;
    let lost = s.status("connection_lost").await;
    assert!(lost["message"].as_str().unwrap().contains("TLS"), "{lost}");
    assert!(
        s.smsc.seen("bind").is_empty(),
        "bound despite a bad certificate"
    );
}

/// `GET /channels/{id}/messages/{msg_id}/logs` tells an SMPP message's whole story in time
/// order: the API accepting it, submit_sm and its response, the receipt, the event callbacks.
#[actix_rt::test]
async fn a_messages_logs_tell_its_whole_story() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    let id = s
        .send(json!({"to": "+27831234567", "from": "1234", "content": "story"}))
        .await;
    assert_eq!(s.event().await["event_type"], "submitted");
    assert_eq!(s.event().await["event_type"], "delivery_succeeded");
    let (api, channel) = (&s.api, s.channel.as_str());
    let entries = logs::eventually("the receipt's event callback is logged", || async {
        let entries = logs::message_logs(api, channel, &id).await;
        let callbacks = entries
            .iter()
            .filter(|e| logs::text(e).contains("attempt 1"))
            .count();
        (callbacks == 2).then_some(entries)
    })
    .await;
    let command = |e: &Value| {
        e["trace"]["command"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let position = |what: &str, matches: &dyn Fn(&Value) -> bool| {
        entries
            .iter()
            .position(matches)
            .unwrap_or_else(|| panic!("no {what}: {entries:#?}"))
    };
    let accepted = position("acceptance", &|e| logs::text(e).contains("accepted"));
    let submit = position("submit_sm", &|e| command(e) == "SubmitSm");
    let response = position("submit_sm_resp", &|e| command(e) == "SubmitSmResp");
    let receipt = position("deliver_sm", &|e| command(e) == "DeliverSm");
    let callback = position("event callback", &|e| logs::text(e).contains("attempt 1"));
    assert!(
        accepted < submit && submit < response && response < receipt,
        "{entries:#?}"
    );
    assert!(callback > response, "{entries:#?}");
    assert_eq!(
        entries[submit]["trace"]["fields"]["destination_addr"],
        "+27831234567"
    );
    assert_eq!(entries[receipt]["direction"], "inbound");
    let story = serde_json::to_string(&entries).unwrap();
    assert!(
        !story.contains("secret"),
        "the bind password leaked: {story}"
    );
}

/// An error status other than throttling rejects the message, naming the status.
#[actix_rt::test]
async fn an_smsc_error_rejects_the_message_naming_the_status() {
    let mut s = Setup::new(Backend::Embedded, json!({})).await;
    s.smsc
        .command(json!({"cmd": "reject", "count": 1, "status": 0x0b}));
    s.smsc.expect("done").await;
    let id = s
        .send(json!({"to": "+0", "from": "1234", "content": "nowhere"}))
        .await;
    s.smsc.expect("rejected").await;
    let rejected = s.event_of("rejected", &id).await;
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("ESME_RINVDSTADR"), "{reason}");
}
