//! The outbox contract (pending callbacks and dead letters), checked on both backends with
//! the same test bodies (DESIGN §3), then what only Redis has: several nodes sharing it.
//!
//! The Redis variants need a Redis at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`);
//! each test writes under its own key prefix and deletes its keys when it ends.
mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::KeyCleanup;
use junebug::delivery::outbox::embedded::{EmbeddedOutbox, SCHEMA};
use junebug::delivery::outbox::redis::RedisOutbox;
use junebug::delivery::outbox::{Outbox, OutboxItem};
use junebug::delivery::template::CallbackMethod;
use junebug::delivery::{Callback, CallbackKind};
use junebug::sqlite::Database;
use serde_json::json;

/// The node name the shared tests run as.
const NODE: &str = "node-a";

/// Expands each body into a module with an `embedded` and a `redis` test, `backend` being a
/// [`Backend`] of that kind.
macro_rules! outbox_tests {
    ($($(#[$meta:meta])* fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            use super::*;

            #[actix_rt::test]
            async fn embedded() {
                let $backend = Backend::embedded();
                $body
            }

            #[actix_rt::test]
            async fn redis() {
                let $backend = Backend::redis();
                $body
            }
        }
    )*};
}

/// Where a test's outbox lives; [`Backend::open`] gives a new outbox on it each time, as a
/// restarted process would get.
enum Backend {
    /// The temp dir holding the SQLite file.
    Embedded(tempfile::TempDir),
    /// The test's key prefix, whose keys are deleted on drop.
    Redis(KeyCleanup),
}

impl Backend {
    fn embedded() -> Backend {
        Backend::Embedded(tempfile::tempdir().expect("temp dir"))
    }

    fn redis() -> Backend {
        Backend::Redis(KeyCleanup {
            url: test_redis_url(),
            prefix: format!("test-{}:", uuid::Uuid::new_v4().simple()),
        })
    }

    /// An outbox for node [`NODE`].
    async fn open(&self) -> Arc<dyn Outbox> {
        self.open_node(NODE).await
    }

    /// An outbox for `node` (the embedded backend has one node only: its process).
    async fn open_node(&self, node: &str) -> Arc<dyn Outbox> {
        match self {
            Backend::Embedded(dir) => {
                let db = Database::open(dir.path(), SCHEMA).expect("open the database");
                Arc::new(EmbeddedOutbox::new(Arc::new(db)))
            }
            Backend::Redis(keys) => {
                let outbox = RedisOutbox::connect(&keys.url, &keys.prefix, node)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{e} (start redis-server, or point TEST_REDIS_URL at a Redis)")
                    });
                Arc::new(outbox)
            }
        }
    }
}

fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

fn channel_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// A new pending callback of `channel_id`, numbered `n` (in its body and creation time).
fn item(channel_id: &str, n: u32) -> OutboxItem {
    let created_at = 1_700_000_000.123_456 + f64::from(n);
    OutboxItem {
        id: uuid::Uuid::new_v4().simple().to_string(),
        channel_id: channel_id.to_owned(),
        callback: Callback {
            url: "http://127.0.0.1/mo".into(),
            token: None,
            body: json!({"a": 1, "n": n, "empty": [], "nested": {}}),
            what: CallbackKind::Inbound,
            secret: None,
            message_id: Some("m".into()),
            method: CallbackMethod::Post,
        },
        attempts: 0,
        created_at,
        next_attempt_at: created_at,
        last_error: None,
    }
}

/// `item` after `attempts` failed attempts, the last with `error`.
fn failed(mut item: OutboxItem, attempts: u32, error: &str) -> OutboxItem {
    item.attempts = attempts;
    item.next_attempt_at = item.created_at + 60.0 * f64::from(attempts);
    item.last_error = Some(error.to_owned());
    item
}

fn ids(items: &[OutboxItem]) -> Vec<&str> {
    items.iter().map(|item| item.id.as_str()).collect()
}

outbox_tests! {
    /// Pending callbacks come back whole, in the order they were added (not by id or time).
    fn pending_callbacks_come_back_in_the_order_added(backend) {
        let outbox = backend.open().await;
        assert!(outbox.pending().await.expect("pending").is_empty());
        let channel = channel_id();
        let mut items: Vec<OutboxItem> = (0..5).map(|n| item(&channel, n)).collect();
        items.swap(0, 3); // Neither in creation order nor (likely) in id order.
        items[1].id = "ffffffffffffffffffffffffffffffff".into();
        items[2].id = "00000000000000000000000000000000".into();
        for item in &items {
            outbox.add(item).await.expect("add");
        }
        assert_eq!(outbox.pending().await.expect("pending"), items);
    }

    /// Adding a pending id again replaces the callback but keeps its turn.
    fn adding_an_id_again_keeps_its_place(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let (first, second) = (item(&channel, 1), item(&channel, 2));
        outbox.add(&first).await.expect("add");
        outbox.add(&second).await.expect("add");
        let again = failed(first.clone(), 1, "again");
        outbox.add(&again).await.expect("add again");
        assert_eq!(outbox.pending().await.expect("pending"), vec![again, second]);
    }

    /// An update saves the attempt count, due time and last error, and keeps the order.
    fn updates_persist_attempts_due_time_and_last_error(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let (first, second) = (item(&channel, 1), item(&channel, 2));
        outbox.add(&first).await.expect("add");
        outbox.add(&second).await.expect("add");
        let retried = failed(first, 3, "HTTP 503 from http://127.0.0.1/mo");
        outbox.update(&retried).await.expect("update");
        assert_eq!(
            outbox.pending().await.expect("pending"),
            vec![retried.clone(), second.clone()]
        );
        drop(outbox); // the daemon's file is its own: a restart opens it again
        let reopened = backend.open().await;
        assert_eq!(
            reopened.pending().await.expect("pending"),
            vec![retried, second]
        );
    }

    /// A delivered callback is removed; updating it afterwards does not bring it back.
    fn removed_callbacks_are_no_longer_pending(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let items: Vec<OutboxItem> = (0..3).map(|n| item(&channel, n)).collect();
        for item in &items {
            outbox.add(item).await.expect("add");
        }
        outbox.remove(&[items[1].id.clone()]).await.expect("remove");
        let unknown = ["not-an-id".to_owned()];
        outbox.remove(&unknown).await.expect("removing an unknown id is fine");
        assert_eq!(
            outbox.pending().await.expect("pending"),
            vec![items[0].clone(), items[2].clone()]
        );
        outbox.update(&failed(items[1].clone(), 1, "late")).await.expect("update");
        assert_eq!(
            ids(&outbox.pending().await.expect("pending")),
            vec![items[0].id.as_str(), items[2].id.as_str()]
        );
    }

    /// Delivered callbacks are removed many at once (as the delivery lanes clear them), with
    /// unknown ids among them skipped.
    fn callbacks_are_removed_many_at_once(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let items: Vec<OutboxItem> = (0..5).map(|n| item(&channel, n)).collect();
        for item in &items {
            outbox.add(item).await.expect("add");
        }
        let delivered = [items[0].id.clone(), "not-an-id".to_owned(), items[3].id.clone()];
        outbox.remove(&delivered).await.expect("remove");
        assert_eq!(
            ids(&outbox.pending().await.expect("pending")),
            vec![items[1].id.as_str(), items[2].id.as_str(), items[4].id.as_str()]
        );
        outbox.remove(&[]).await.expect("removing nothing is fine");
        assert_eq!(outbox.pending().await.expect("pending").len(), 3);
    }

    /// A buried callback leaves the pending ones and becomes its channel's dead letter, as
    /// it was when buried (attempts and last error).
    fn buried_callbacks_move_to_their_channels_dead_letters(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let (kept, doomed) = (item(&channel, 1), item(&channel, 2));
        outbox.add(&kept).await.expect("add");
        outbox.add(&doomed).await.expect("add");
        let doomed = failed(doomed, 5, "HTTP 500 from http://127.0.0.1/mo");
        outbox.bury(&doomed).await.expect("bury");
        assert_eq!(outbox.pending().await.expect("pending"), vec![kept]);
        assert_eq!(outbox.dead_letters(&channel).await.expect("dead letters"), vec![doomed]);
    }

    /// A callback the outbox could not keep when posted is still buried when it fails.
    fn callbacks_never_kept_can_still_be_buried(backend) {
        let outbox = backend.open().await;
        let channel = channel_id();
        let lost = failed(item(&channel, 1), 2, "timeout");
        outbox.bury(&lost).await.expect("bury");
        assert!(outbox.pending().await.expect("pending").is_empty());
        assert_eq!(outbox.dead_letters(&channel).await.expect("dead letters"), vec![lost]);
    }

    /// Dead letters belong to their channel and come oldest (first buried) first.
    fn dead_letters_are_per_channel_oldest_first(backend) {
        let outbox = backend.open().await;
        let (a, b) = (channel_id(), channel_id());
        let of_a: Vec<OutboxItem> = (0..3).map(|n| failed(item(&a, 10 - n), 1, "a")).collect();
        let of_b: Vec<OutboxItem> = (0..2).map(|n| failed(item(&b, n), 2, "b")).collect();
        for item in of_a.iter().chain(&of_b) {
            outbox.add(item).await.expect("add");
        }
        for item in [&of_a[0], &of_b[0], &of_a[1], &of_a[2], &of_b[1]] {
            outbox.bury(item).await.expect("bury");
        }
        assert_eq!(outbox.dead_letters(&a).await.expect("dead letters"), of_a);
        assert_eq!(outbox.dead_letters(&b).await.expect("dead letters"), of_b);
        assert!(outbox.dead_letters(&channel_id()).await.expect("dead letters").is_empty());
    }

    /// Reviving hands back a channel's dead letters oldest first, with a fresh set of attempts
    /// due now (the last error kept), and makes them pending again after those already
    /// pending; other channels' dead letters stay.
    fn revived_dead_letters_are_pending_again_with_attempts_reset(backend) {
        let outbox = backend.open().await;
        let (channel, other) = (channel_id(), channel_id());
        let waiting = item(&channel, 0);
        let dead: Vec<OutboxItem> = (1..4).map(|n| failed(item(&channel, n), 7, "gone")).collect();
        let dead_elsewhere = failed(item(&other, 9), 1, "elsewhere");
        for item in dead.iter().chain([&dead_elsewhere]) {
            outbox.add(item).await.expect("add");
            outbox.bury(item).await.expect("bury");
        }
        outbox.add(&waiting).await.expect("add");

        let before = unix_now();
        let revived = outbox.revive(&channel).await.expect("revive");
        let after = unix_now();
        assert_eq!(ids(&revived), ids(&dead));
        for (revived, dead) in revived.iter().zip(&dead) {
            assert_eq!(revived.attempts, 0);
            assert!(
                (before..=after).contains(&revived.next_attempt_at),
                "due now, not {}",
                revived.next_attempt_at
            );
            assert_eq!(revived.last_error.as_deref(), Some("gone"));
            assert_eq!(
                (&revived.channel_id, &revived.callback, revived.created_at),
                (&dead.channel_id, &dead.callback, dead.created_at)
            );
        }
        let mut pending = vec![waiting];
        pending.extend(revived.iter().cloned());
        assert_eq!(outbox.pending().await.expect("pending"), pending);
        assert!(outbox.dead_letters(&channel).await.expect("dead letters").is_empty());
        assert_eq!(
            outbox.dead_letters(&other).await.expect("dead letters"),
            vec![dead_elsewhere]
        );
        assert!(outbox.revive(&channel).await.expect("revive again").is_empty());
    }

    /// Purging deletes a channel's dead letters and says how many there were; other
    /// channels' dead letters and pending callbacks stay.
    fn purging_counts_and_empties_a_channels_dead_letters(backend) {
        let outbox = backend.open().await;
        let (channel, other) = (channel_id(), channel_id());
        assert_eq!(outbox.purge_dead(&channel).await.expect("purge"), 0);
        let waiting = item(&channel, 0);
        outbox.add(&waiting).await.expect("add");
        for n in 1..4 {
            outbox.bury(&failed(item(&channel, n), 1, "x")).await.expect("bury");
        }
        let dead_elsewhere = failed(item(&other, 9), 1, "y");
        outbox.bury(&dead_elsewhere).await.expect("bury");

        assert_eq!(outbox.purge_dead(&channel).await.expect("purge"), 3);
        assert!(outbox.dead_letters(&channel).await.expect("dead letters").is_empty());
        assert_eq!(outbox.purge_dead(&channel).await.expect("purge again"), 0);
        assert_eq!(
            outbox.dead_letters(&other).await.expect("dead letters"),
            vec![dead_elsewhere]
        );
        assert_eq!(outbox.pending().await.expect("pending"), vec![waiting]);
    }

    /// A new outbox on the same file (embedded) or prefix and node (Redis), as after a
    /// restart, has the same pending callbacks in the same order, and the dead letters; what
    /// it adds or revives comes after what was already pending.
    fn pending_callbacks_and_dead_letters_survive_reopening(backend) {
        let channel = channel_id();
        let items: Vec<OutboxItem> = (0..4).map(|n| item(&channel, n)).collect();
        let dead = failed(items[3].clone(), 4, "dead");
        {
            let outbox = backend.open().await;
            for item in &items {
                outbox.add(item).await.expect("add");
            }
            outbox.update(&failed(items[0].clone(), 1, "retry")).await.expect("update");
            outbox.remove(&[items[1].id.clone()]).await.expect("remove");
            outbox.bury(&dead).await.expect("bury");
        }
        let outbox = backend.open().await;
        let expected = vec![failed(items[0].clone(), 1, "retry"), items[2].clone()];
        assert_eq!(outbox.pending().await.expect("pending"), expected);
        assert_eq!(outbox.dead_letters(&channel).await.expect("dead letters"), vec![dead]);

        let later = item(&channel, 5);
        outbox.add(&later).await.expect("add");
        let revived = outbox.revive(&channel).await.expect("revive");
        assert_eq!(ids(&revived), vec![items[3].id.as_str()]);
        let pending = outbox.pending().await.expect("pending");
        assert_eq!(
            ids(&pending),
            vec![
                items[0].id.as_str(),
                items[2].id.as_str(),
                later.id.as_str(),
                items[3].id.as_str()
            ]
        );
    }
}

/// Redis: each node sees only its own pending callbacks, but a channel's dead letters are
/// shared, whichever node buried them, and reviving moves them to the reviving node.
#[actix_rt::test]
async fn redis_nodes_keep_their_own_pending_callbacks_and_share_dead_letters() {
    let backend = Backend::redis();
    let (a, b) = (
        backend.open_node("node-a").await,
        backend.open_node("node-b").await,
    );
    let channel = channel_id();
    let (of_a, of_b) = (item(&channel, 1), item(&channel, 2));
    a.add(&of_a).await.expect("add on a");
    b.add(&of_b).await.expect("add on b");
    assert_eq!(a.pending().await.expect("pending on a"), vec![of_a.clone()]);
    assert_eq!(b.pending().await.expect("pending on b"), vec![of_b.clone()]);

    let (dead_a, dead_b) = (failed(of_a, 3, "a"), failed(of_b, 3, "b"));
    a.bury(&dead_a).await.expect("bury on a");
    b.bury(&dead_b).await.expect("bury on b");
    let both = vec![dead_a.clone(), dead_b.clone()];
    assert_eq!(a.dead_letters(&channel).await.expect("dead letters"), both);
    assert_eq!(b.dead_letters(&channel).await.expect("dead letters"), both);

    let revived = b.revive(&channel).await.expect("revive on b");
    assert_eq!(ids(&revived), ids(&both));
    assert!(a.pending().await.expect("pending on a").is_empty());
    assert_eq!(b.pending().await.expect("pending on b"), revived);
    assert!(a
        .dead_letters(&channel)
        .await
        .expect("dead letters")
        .is_empty());

    let reopened = backend.open_node("node-b").await;
    assert_eq!(reopened.pending().await.expect("pending on b"), revived);
}

/// Redis: callbacks buried while a revive runs are never lost: each ends up either revived
/// (pending) or still a dead letter, exactly once.
#[actix_rt::test]
async fn redis_revive_racing_burials_loses_nothing() {
    let backend = Backend::redis();
    let (a, b) = (
        backend.open_node("node-a").await,
        backend.open_node("node-b").await,
    );
    let channel = channel_id();
    let items: Vec<OutboxItem> = (0..40).map(|n| failed(item(&channel, n), 1, "x")).collect();
    let burying = {
        let (a, items) = (a.clone(), items.clone());
        actix_rt::spawn(async move {
            for item in &items {
                a.bury(item).await.expect("bury");
            }
        })
    };
    let mut revived = Vec::new();
    for _ in 0..10 {
        revived.extend(b.revive(&channel).await.expect("revive"));
    }
    burying.await.expect("burying task");
    // Each callback is revived (hence pending on b) or still dead, exactly once.
    let revived = ids(&revived).join(" ");
    assert_eq!(ids(&b.pending().await.expect("pending")).join(" "), revived);
    let mut seen: Vec<OutboxItem> = b.pending().await.expect("pending");
    seen.extend(a.dead_letters(&channel).await.expect("dead letters"));
    let mut seen: Vec<&str> = ids(&seen);
    seen.sort_unstable();
    let mut expected = ids(&items);
    expected.sort_unstable();
    assert_eq!(seen, expected);
}
