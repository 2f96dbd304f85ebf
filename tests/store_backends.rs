//! The Store contract, checked on both backends with the same test bodies (DESIGN §3), then
//! what only Redis has: a server that goes away and comes back.
//!
//! The Redis variants need a Redis at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`);
//! each test writes under its own key prefix and deletes its keys when it ends. The outage
//! tests start private `redis-server` processes on free ports.
//!
//! TTL tests sleep for real: Redis expires keys on its own wall clock, which paused tokio
//! time cannot move.
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::KeyCleanup;
use junebug::metrics::RATES;
use junebug::sqlite::Database;
use junebug::store::embedded::{EmbeddedStore, SCHEMA};
use junebug::store::redis::RedisStore;
use junebug::store::{ChannelProperties, OutboundRecord, PartRef, PartsKey, Store, Tally};
use junebug_actors::message::{
    new_message_id, timestamp_now, DeliveryStatus, Event, Message, StatusEvent, StatusLevel,
};
use serde_json::{json, Map};

/// A TTL short enough to wait out in a test.
const SHORT_TTL: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT_TTL`].
const PAST_SHORT_TTL: Duration = Duration::from_millis(300);
/// A TTL no test outlives.
const LONG_TTL: Duration = Duration::from_secs(600);
/// How long a store call may take while Redis is gone before we call it a hang.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// How long the store gets to reconnect once Redis is back.
const RECOVERY: Duration = Duration::from_secs(10);

/// Expands each body into a module with an `embedded` and a `redis` test, `store` being an
/// `Arc<dyn Store>` of that backend.
macro_rules! store_tests {
    ($($(#[$meta:meta])* fn $name:ident($store:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            use super::*;

            #[actix_rt::test]
            async fn embedded() {
                let (_dir, $store) = embedded_store();
                $body
            }

            #[actix_rt::test]
            async fn redis() {
                let (_keys, $store) = redis_store().await;
                $body
            }
        }
    )*};
}

/// A fresh embedded store, and the temp dir its file lives in.
fn embedded_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path(), SCHEMA).expect("open the database");
    (dir, Arc::new(EmbeddedStore::new(Arc::new(db))))
}

fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A Redis store under a prefix of its own, and the guard that deletes its keys.
async fn redis_store() -> (KeyCleanup, Arc<dyn Store>) {
    let url = test_redis_url();
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("{e} (start redis-server, or point TEST_REDIS_URL at a Redis)"));
    (KeyCleanup { url, prefix }, Arc::new(store))
}

fn channel_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn props(value: serde_json::Value) -> ChannelProperties {
    value.as_object().expect("a JSON object").clone()
}

fn message(channel_id: &str, content: &str) -> Message {
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: Some("+27820000001".to_owned()),
        from_addr: Some("+27820000002".to_owned()),
        group: None,
        in_reply_to: None,
        session_event: None,
        content: Some(content.to_owned()),
        transport_name: channel_id.to_owned(),
        transport_type: "telnet".to_owned(),
        transport_metadata: Default::default(),
        helper_metadata: props(json!({"voice": {"speech_url": "http://example.com"}})),
        expires_at: None,
    }
}

fn outbound(channel_id: &str) -> OutboundRecord {
    OutboundRecord {
        message: message(channel_id, "hello"),
        event_url: Some("http://127.0.0.1:9/events".to_owned()),
        event_auth_token: Some("token".to_owned()),
        callback_secret: Some("s3cret".to_owned()),
        event_url_method: Some(json!("GET")),
    }
}

fn status(component: &str, level: StatusLevel, kind: &str) -> StatusEvent {
    StatusEvent {
        component: component.to_owned(),
        status: level,
        kind: kind.to_owned(),
        message: format!("{component} is {kind}"),
        details: props(json!({"attempt": 1})),
    }
}

/// An `outbound` count in bucket 1, kept for `ttl`.
fn tally(ttl: Duration) -> Tally<'static> {
    Tally {
        label: "outbound",
        bucket: 1,
        ttl,
    }
}

/// A `submitted` count in bucket 2 (apart from [`tally`]'s), kept long.
fn event_tally() -> Tally<'static> {
    Tally {
        label: "submitted",
        bucket: 2,
        ttl: LONG_TTL,
    }
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs
        .iter()
        .map(|(label, n)| ((*label).to_owned(), *n))
        .collect()
}

fn sorted_by_component(mut statuses: Vec<StatusEvent>) -> Vec<StatusEvent> {
    statuses.sort_by(|a, b| a.component.cmp(&b.component));
    statuses
}

store_tests! {
    /// A saved channel loads back as saved; saving it again replaces it.
    fn channel_is_saved_loaded_and_replaced(store) {
        let id = channel_id();
        assert_eq!(store.load_channel(&id).await.unwrap(), None);
        let first = props(json!({"type": "telnet", "config": {"port": 0}, "amqp_queue": "q"}));
        store.save_channel(&id, &first).await.unwrap();
        assert_eq!(store.load_channel(&id).await.unwrap(), Some(first));
        let second = props(json!({"type": "telnet", "config": {"port": 1}, "mo_url": "http://x"}));
        store.save_channel(&id, &second).await.unwrap();
        assert_eq!(store.load_channel(&id).await.unwrap(), Some(second.clone()));
        assert_eq!(store.load_channels().await.unwrap(), vec![(id, second)]);
    }

    /// Every channel is listed, sorted by id.
    fn channels_are_listed_sorted_by_id(store) {
        assert_eq!(store.load_channels().await.unwrap(), vec![]);
        let mut ids: Vec<String> = (0..5).map(|_| channel_id()).collect();
        for (n, id) in ids.iter().enumerate() {
            store.save_channel(id, &props(json!({"n": n}))).await.unwrap();
        }
        let listed = store.load_channels().await.unwrap();
        ids.sort();
        assert_eq!(listed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids);
        for (id, properties) in listed {
            assert_eq!(store.load_channel(&id).await.unwrap(), Some(properties));
        }
    }

    /// Deleting a channel removes it and its statuses; a second delete finds nothing.
    fn deleting_a_channel_removes_it_and_its_statuses(store) {
        let (id, other) = (channel_id(), channel_id());
        store.save_channel(&id, &props(json!({"n": 1}))).await.unwrap();
        store.save_channel(&other, &props(json!({"n": 2}))).await.unwrap();
        store.save_status(&id, &status("smpp", StatusLevel::Ok, "bound")).await.unwrap();
        store.save_status(&other, &status("smpp", StatusLevel::Ok, "bound")).await.unwrap();

        assert!(store.delete_channel(&id).await.unwrap());
        assert_eq!(store.load_channel(&id).await.unwrap(), None);
        assert_eq!(store.statuses(&id).await.unwrap(), vec![]);
        assert_eq!(store.load_channels().await.unwrap().len(), 1);
        assert_eq!(store.statuses(&other).await.unwrap().len(), 1);
        assert!(!store.delete_channel(&id).await.unwrap());
    }

    /// An inbound message is found through its own channel only.
    fn inbound_message_is_kept_for_its_channel(store) {
        let (id, other) = (channel_id(), channel_id());
        let msg = message(&id, "hi");
        store.save_inbound(&id, &msg, LONG_TTL).await.unwrap();
        assert_eq!(store.load_inbound(&id, &msg.message_id).await.unwrap(), Some(msg.clone()));
        assert_eq!(store.load_inbound(&other, &msg.message_id).await.unwrap(), None);
        assert_eq!(store.load_inbound(&id, &new_message_id()).await.unwrap(), None);
    }

    /// An inbound message is gone once its TTL has passed.
    fn inbound_message_is_gone_after_its_ttl(store) {
        let id = channel_id();
        let msg = message(&id, "hi");
        store.save_inbound(&id, &msg, SHORT_TTL).await.unwrap();
        assert!(store.load_inbound(&id, &msg.message_id).await.unwrap().is_some());
        actix_rt::time::sleep(PAST_SHORT_TTL).await; // wall-clock expiry, see the module doc
        assert_eq!(store.load_inbound(&id, &msg.message_id).await.unwrap(), None);
    }

    /// An outbound record is found through its own channel only.
    fn outbound_record_is_kept_for_its_channel(store) {
        let (id, other) = (channel_id(), channel_id());
        let record = outbound(&id);
        let message_id = record.message.message_id.clone();
        store.accept_outbound(&id, &record, LONG_TTL, tally(LONG_TTL)).await.unwrap();
        assert_eq!(store.load_outbound(&id, &message_id).await.unwrap(), Some(record));
        assert_eq!(store.load_outbound(&other, &message_id).await.unwrap(), None);
        assert_eq!(store.load_outbound(&id, &new_message_id()).await.unwrap(), None);
    }

    /// An outbound record is gone once its TTL has passed.
    fn outbound_record_is_gone_after_its_ttl(store) {
        let id = channel_id();
        let record = outbound(&id);
        let message_id = record.message.message_id.clone();
        store.accept_outbound(&id, &record, SHORT_TTL, tally(LONG_TTL)).await.unwrap();
        assert!(store.load_outbound(&id, &message_id).await.unwrap().is_some());
        actix_rt::time::sleep(PAST_SHORT_TTL).await; // wall-clock expiry, see the module doc
        assert_eq!(store.load_outbound(&id, &message_id).await.unwrap(), None);
    }

    /// A message's events come back in the order they were added, and only for that message.
    fn events_come_back_in_order_for_their_message(store) {
        let (id, other) = (channel_id(), channel_id());
        let (msg, other_msg) = (new_message_id(), new_message_id());
        let events = vec![
            Event::ack(&msg, Some("provider-1".to_owned())),
            Event::delivery_report(&msg, DeliveryStatus::Pending, Map::new()),
            Event::delivery_report(
                &msg,
                DeliveryStatus::Delivered,
                Map::from_iter([("stat".to_owned(), json!("DELIVRD"))]),
            ),
        ];
        for event in &events {
            store.record_event(&id, event, LONG_TTL, event_tally()).await.unwrap();
            let nack = Event::nack(&other_msg, "no");
            store.record_event(&id, &nack, LONG_TTL, event_tally()).await.unwrap();
        }
        assert_eq!(store.events(&id, &msg).await.unwrap(), events);
        assert_eq!(store.events(&id, &other_msg).await.unwrap().len(), 3);
        assert_eq!(store.events(&other, &msg).await.unwrap(), vec![]);
        assert_eq!(store.events(&id, &new_message_id()).await.unwrap(), vec![]);
    }

    /// A message's events are gone once their TTL has passed.
    fn events_are_gone_after_their_ttl(store) {
        let (id, msg) = (channel_id(), new_message_id());
        store.record_event(&id, &Event::ack(&msg, None), SHORT_TTL, event_tally()).await.unwrap();
        assert_eq!(store.events(&id, &msg).await.unwrap().len(), 1);
        actix_rt::time::sleep(PAST_SHORT_TTL).await; // wall-clock expiry, see the module doc
        assert_eq!(store.events(&id, &msg).await.unwrap(), vec![]);
    }

    /// Each provider id of a long message points to its part, for its channel only.
    fn provider_ids_map_to_message_parts(store) {
        let (id, other, msg) = (channel_id(), channel_id(), new_message_id());
        let ids = ["a1".to_owned(), "a2".to_owned()];
        store.map_provider_ids(&id, &msg, &ids, LONG_TTL).await.unwrap();
        let second = store.find_provider_id(&id, "a2").await.unwrap().unwrap();
        assert_eq!(second, PartRef { message_id: msg.clone(), part: 1, parts: 2 });
        assert_eq!(store.find_provider_id(&other, "a2").await.unwrap(), None);
        assert_eq!(store.find_provider_id(&id, "a3").await.unwrap(), None);
    }

    /// Part reports accumulate (the latest per part wins) and one caller claims the outcome.
    fn part_reports_accumulate_and_the_outcome_is_claimed_once(store) {
        let (id, msg) = (channel_id(), new_message_id());
        let part = |part| PartRef { message_id: msg.clone(), part, parts: 2 };
        store.record_part_report(&id, &part(0), &json!("pending"), LONG_TTL).await.unwrap();
        store.record_part_report(&id, &part(0), &json!("delivered"), LONG_TTL).await.unwrap();
        let all = store.record_part_report(&id, &part(1), &json!("failed"), LONG_TTL).await.unwrap();
        assert_eq!(all.into_iter().collect::<Vec<_>>(), vec![(0, json!("delivered")), (1, json!("failed"))]);
        assert!(store.claim_final_report(&id, &msg, LONG_TTL).await.unwrap());
        assert!(!store.claim_final_report(&id, &msg, LONG_TTL).await.unwrap());
        let again = store.record_part_report(&id, &part(1), &json!("failed"), LONG_TTL).await.unwrap();
        assert_eq!(again.len(), 2, "the claim is not a part");
    }

    /// The parts of a long inbound message come together in any order, a repeated part
    /// replaces its copy, and parts of other senders, lengths or channels never mix.
    fn long_message_parts_complete_in_any_order(store) {
        let (id, other) = (channel_id(), channel_id());
        let key = |sender: &str, reference, total| PartsKey { sender: sender.into(), reference, total };
        let a = key("+27831234567", 9, 3);
        assert_eq!(store.add_inbound_part(&id, &a, 3, "!", LONG_TTL).await.unwrap(), None);
        assert_eq!(store.add_inbound_part(&id, &a, 1, "Hullo", LONG_TTL).await.unwrap(), None);
        assert_eq!(store.add_inbound_part(&id, &a, 1, "Hello", LONG_TTL).await.unwrap(), None);
        for (channel, other_key) in [
            (&id, key("+27830000000", 9, 3)),
            (&id, key("+27831234567", 9, 4)),
            (&id, key("+27831234567", 8, 3)),
            (&other, a.clone()),
        ] {
            let added = store.add_inbound_part(channel, &other_key, 2, "x", LONG_TTL).await;
            assert_eq!(added.unwrap(), None, "{other_key:?}");
        }
        let whole = store.add_inbound_part(&id, &a, 2, ", world", LONG_TTL).await.unwrap();
        assert_eq!(whole, Some(vec!["Hello".into(), ", world".into(), "!".into()]));
        assert_eq!(
            store.add_inbound_part(&id, &a, 2, "again", LONG_TTL).await.unwrap(),
            None,
            "a completed message is forgotten: a late part starts anew"
        );
    }

    /// Long messages whose first part is older than the age asked for are taken, oldest
    /// first, with what arrived of them, once; younger ones stay and can still complete.
    fn incomplete_long_messages_are_taken_when_too_old(store) {
        let id = channel_id();
        let key = |sender: &str, total| PartsKey { sender: sender.into(), reference: 1, total };
        store.add_inbound_part(&id, &key("older", 2), 1, "only", LONG_TTL).await.unwrap();
        tokio::time::sleep(PAST_SHORT_TTL).await;
        store.add_inbound_part(&id, &key("old", 3), 3, "3", LONG_TTL).await.unwrap();
        tokio::time::sleep(PAST_SHORT_TTL).await;
        store.add_inbound_part(&id, &key("new", 2), 1, "n", LONG_TTL).await.unwrap();
        store.add_inbound_part(&id, &key("old", 3), 1, "1", LONG_TTL).await.unwrap();

        // Older than SHORT_TTL: "older" and "old" (by their first parts), not "new".
        let expired = store.take_expired_parts(&id, SHORT_TTL).await.unwrap();
        let taken: Vec<_> = expired.iter().map(|e| (e.key.sender.as_str(), e.texts.concat())).collect();
        assert_eq!(taken, [("older", "only".to_owned()), ("old", "13".to_owned())], "age counts from the first part");
        assert_eq!(store.take_expired_parts(&id, SHORT_TTL).await.unwrap(), vec![]);
        let whole = store.add_inbound_part(&id, &key("new", 2), 2, "+", LONG_TTL).await.unwrap();
        assert_eq!(whole, Some(vec!["n".into(), "+".into()]), "the young message is still there");
    }

    /// Only the latest status of each component is kept, per channel.
    fn latest_status_per_component_wins(store) {
        let (id, other) = (channel_id(), channel_id());
        assert_eq!(store.statuses(&id).await.unwrap(), vec![]);
        store.save_status(&id, &status("smpp", StatusLevel::Down, "connecting")).await.unwrap();
        store.save_status(&id, &status("http", StatusLevel::Ok, "listening")).await.unwrap();
        let bound = status("smpp", StatusLevel::Ok, "bound");
        store.save_status(&id, &bound).await.unwrap();
        store.save_status(&other, &status("smpp", StatusLevel::Degraded, "slow")).await.unwrap();
        assert_eq!(
            sorted_by_component(store.statuses(&id).await.unwrap()),
            vec![status("http", StatusLevel::Ok, "listening"), bound],
        );
        assert_eq!(store.statuses(&other).await.unwrap().len(), 1);
    }

    /// Cursors are kept by name, per channel, the latest value winning; deleting the channel
    /// forgets them.
    fn cursors_are_kept_per_channel_until_it_is_deleted(store) {
        let (id, other) = (channel_id(), channel_id());
        store.save_channel(&id, &props(json!({}))).await.unwrap();
        assert_eq!(store.cursor(&id, "mentions").await.unwrap(), None);
        store.save_cursor(&id, "mentions", "100").await.unwrap();
        store.save_cursor(&id, "mentions", "205").await.unwrap();
        store.save_cursor(&id, "dms", "7").await.unwrap();
        store.save_cursor(&other, "mentions", "3").await.unwrap();
        assert_eq!(store.cursor(&id, "mentions").await.unwrap().as_deref(), Some("205"));
        assert_eq!(store.cursor(&id, "dms").await.unwrap().as_deref(), Some("7"));

        assert!(store.delete_channel(&id).await.unwrap());
        assert_eq!(store.cursor(&id, "mentions").await.unwrap(), None);
        assert_eq!(store.cursor(&id, "dms").await.unwrap(), None);
        assert_eq!(store.cursor(&other, "mentions").await.unwrap().as_deref(), Some("3"));
    }

    /// A session is new at its first step and live at the next; ending it says whether it
    /// was live. One idle past its timeout is new again. Deleting the channel forgets them.
    fn sessions_are_new_then_live_until_they_end_or_idle_out(store) {
        let (id, other) = (channel_id(), channel_id());
        store.save_channel(&id, &props(json!({}))).await.unwrap();
        assert!(!store.session_step(&id, "s1", LONG_TTL).await.unwrap(), "new");
        assert!(store.session_step(&id, "s1", LONG_TTL).await.unwrap(), "live");
        assert!(!store.session_step(&other, "s1", LONG_TTL).await.unwrap(), "per channel");
        assert!(store.end_session(&id, "s1").await.unwrap());
        assert!(!store.end_session(&id, "s1").await.unwrap(), "already ended");
        assert!(!store.session_step(&id, "s1", LONG_TTL).await.unwrap(), "new again");

        assert!(!store.session_step(&id, "s2", SHORT_TTL).await.unwrap());
        actix_rt::time::sleep(PAST_SHORT_TTL).await; // wall-clock expiry, see the module doc
        assert!(!store.session_step(&id, "s2", LONG_TTL).await.unwrap(), "idled out");
        assert!(!store.end_session(&other, "missing").await.unwrap());

        assert!(store.delete_channel(&id).await.unwrap());
        assert!(!store.session_step(&id, "s1", LONG_TTL).await.unwrap(), "forgotten");
    }

    /// Counts are kept per bucket and label, apart for each channel.
    fn counts_are_kept_per_bucket_label_and_channel(store) {
        let (id, other) = (channel_id(), channel_id());
        assert_eq!(store.counts(&id, 7).await.unwrap(), HashMap::new());
        for _ in 0..3 {
            store.count(&id, "inbound", 7, LONG_TTL).await.unwrap();
        }
        store.count(&id, "delivery_failed", 7, LONG_TTL).await.unwrap();
        store.count(&id, "inbound", 8, LONG_TTL).await.unwrap();
        store.count(&other, "outbound", 7, LONG_TTL).await.unwrap();
        let expected = counts(&[("inbound", 3), ("delivery_failed", 1)]);
        assert_eq!(store.counts(&id, 7).await.unwrap(), expected);
        assert_eq!(store.counts(&id, 8).await.unwrap(), counts(&[("inbound", 1)]));
        assert_eq!(store.counts(&other, 7).await.unwrap(), counts(&[("outbound", 1)]));
        assert_eq!(store.counts(&id, 6).await.unwrap(), HashMap::new());
    }

    /// Accepting a send records it and counts it in the outbound rate.
    fn accepted_sends_are_recorded_and_counted(store) {
        let id = channel_id();
        for _ in 0..2 {
            let record = OutboundRecord {
                message: message(&id, "hello"),
                event_url: None,
                event_auth_token: None,
                callback_secret: None,
                event_url_method: None,
            };
            store.accept_outbound(&id, &record, LONG_TTL, tally(LONG_TTL)).await.unwrap();
            let loaded = store.load_outbound(&id, &record.message.message_id).await.unwrap();
            assert_eq!(loaded, Some(record));
        }
        assert_eq!(store.counts(&id, 1).await.unwrap(), counts(&[("outbound", 2)]));
    }

    /// Recording an event counts it and hands back its message's record (where the event
    /// goes), for a message of its channel only.
    fn recorded_events_are_counted_and_find_their_message(store) {
        let (id, other) = (channel_id(), channel_id());
        let record = outbound(&id);
        let message_id = record.message.message_id.clone();
        store.accept_outbound(&id, &record, LONG_TTL, tally(LONG_TTL)).await.unwrap();
        let ack = Event::ack(&message_id, None);
        let found = store.record_event(&id, &ack, LONG_TTL, event_tally()).await.unwrap();
        assert_eq!(found, Some(record));
        let elsewhere = store.record_event(&other, &ack, LONG_TTL, event_tally()).await.unwrap();
        assert_eq!(elsewhere, None);
        let unknown = Event::ack(&new_message_id(), None);
        assert_eq!(store.record_event(&id, &unknown, LONG_TTL, event_tally()).await.unwrap(), None);
        assert_eq!(store.counts(&id, 2).await.unwrap(), counts(&[("submitted", 2)]));
        assert_eq!(store.counts(&other, 2).await.unwrap(), counts(&[("submitted", 1)]));
        assert_eq!(store.events(&id, &message_id).await.unwrap(), vec![ack]);
    }

    /// Counts are gone once their TTL has passed.
    fn counts_are_gone_after_their_ttl(store) {
        let id = channel_id();
        store.count(&id, "inbound", 3, SHORT_TTL).await.unwrap();
        assert_eq!(store.counts(&id, 3).await.unwrap(), counts(&[("inbound", 1)]));
        actix_rt::time::sleep(PAST_SHORT_TTL).await; // wall-clock expiry, see the module doc
        assert_eq!(store.counts(&id, 3).await.unwrap(), HashMap::new());
    }

    /// Every label of the metrics is counted and read back.
    fn every_rate_label_is_counted(store) {
        let id = channel_id();
        for (n, (label, _)) in RATES.iter().enumerate() {
            for _ in 0..=n {
                store.count(&id, label, 1, LONG_TTL).await.unwrap();
            }
        }
        let expected: HashMap<String, u64> = RATES
            .iter()
            .enumerate()
            .map(|(n, (label, _))| ((*label).to_owned(), n as u64 + 1))
            .collect();
        assert_eq!(store.counts(&id, 1).await.unwrap(), expected);
    }
}

/// A stored value that is not our JSON is reported as a backend error, not skipped or panicked on.
#[actix_rt::test]
async fn unreadable_json_in_redis_is_a_backend_error() {
    let (keys, store) = redis_store().await;
    let id = channel_id();
    let client = redis::Client::open(keys.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(format!("{}{id}:properties", keys.prefix))
        .arg("{not json")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let error = store.load_channel(&id).await.unwrap_err();
    assert_eq!(error.backend, "redis");
    assert!(error.detail.contains("JSON"), "{error}");
}

/// Connecting to a Redis that is not there fails at once with a message naming it.
#[actix_rt::test]
async fn connecting_to_an_absent_redis_fails_clearly() {
    let url = format!("redis://:hunter2@127.0.0.1:{}/", common::free_port());
    let started = Instant::now();
    let error = match RedisStore::connect(&url, "test:").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.backend, "redis");
    assert!(error.detail.contains("cannot connect"), "{error}");
    assert!(!error.detail.contains("hunter2"), "password shown: {error}");
}

/// Redis killed: calls fail fast instead of hanging; Redis back on the same port: the same
/// store works again by itself.
#[actix_rt::test]
async fn store_survives_redis_going_away_and_coming_back() {
    let port = common::free_port();
    let mut server = RedisServer::start(port);
    let store = RedisStore::connect(&server.url(), "outage:").await.unwrap();
    let id = channel_id();
    store
        .save_channel(&id, &props(json!({"n": 1})))
        .await
        .unwrap();

    server.kill();
    let started = Instant::now();
    let outcome = actix_rt::time::timeout(FAIL_FAST, store.load_channels()).await;
    let error = outcome.expect("a store call hung while Redis was down");
    let error = error.expect_err("a store call succeeded with Redis down");
    assert_eq!(error.backend, "redis");
    eprintln!("Redis down: failed in {:?}: {error}", started.elapsed());
    // Later calls, which wait for the manager's reconnection attempts, fail fast too.
    let started = Instant::now();
    let outcome = actix_rt::time::timeout(FAIL_FAST, store.load_channel(&id)).await;
    assert!(outcome
        .expect("a store call hung while Redis was down")
        .is_err());
    eprintln!("Redis down: failed again in {:?}", started.elapsed());

    // The new server starts empty (no persistence): what matters is that calls work again.
    let _server = RedisServer::start(port);
    let deadline = Instant::now() + RECOVERY;
    loop {
        match store.save_channel(&id, &props(json!({"n": 2}))).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("Not reconnected yet: {e}");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover within {RECOVERY:?}: {e}"),
        }
    }
    assert_eq!(
        store.load_channels().await.unwrap(),
        vec![(id, props(json!({"n": 2})))]
    );
}

/// Redis frozen (SIGSTOP, like a partitioned host): calls time out instead of hanging, and
/// work again, with the data intact, once it answers.
#[actix_rt::test]
async fn store_survives_redis_not_answering() {
    let server = RedisServer::start(common::free_port());
    let store = RedisStore::connect(&server.url(), "frozen:").await.unwrap();
    let id = channel_id();
    store
        .save_channel(&id, &props(json!({"n": 1})))
        .await
        .unwrap();

    server.signal("STOP");
    for _ in 0..2 {
        let started = Instant::now();
        let outcome = actix_rt::time::timeout(FAIL_FAST, store.load_channel(&id)).await;
        let error = outcome.expect("a store call hung while Redis was frozen");
        assert!(error.is_err(), "a store call succeeded with Redis frozen");
        eprintln!("Redis frozen: failed in {:?}", started.elapsed());
    }

    server.signal("CONT");
    let deadline = Instant::now() + RECOVERY;
    loop {
        match store.load_channel(&id).await {
            Ok(found) => {
                assert_eq!(found, Some(props(json!({"n": 1}))));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("Not answering yet: {e}");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover within {RECOVERY:?}: {e}"),
        }
    }
}
