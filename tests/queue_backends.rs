//! The Queue contract, checked on both backends with the same test bodies (DESIGN §3): order,
//! windows (one per lane), redelivery, purge (all or one lane), lengths per lane; then what
//! only RabbitMQ has: the lane queues' names, a connection that is cut under a waiting
//! consumer, a queue deleted under it, a broker that is not there at start.
//!
//! The RabbitMQ variants need a broker at `TEST_AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); each test uses queues under a prefix of its own
//! (`<prefix><channel id>.outbound.realtime` and `.outbound.bulk`) and deletes them when it
//! ends. The connection-loss test closes its own connection (found
//! by its unique name) with `rabbitmqctl`; no test stops the broker.
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junebug::amqp::AmqpLink;
use junebug::queue::amqp::AmqpQueue;
use junebug::queue::embedded::{EmbeddedQueue, SCHEMA};
use junebug::queue::{LaneLengths, Queue};
use junebug::sqlite::Database;
use junebug_actors::message::{new_message_id, timestamp_now, Lane, Message, Priority};
use junebug_actors::ports::{Delivery, OutboundConsumer};

/// How long a test waits for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);
/// How long a negative check waits for something that must not happen.
const QUIET: Duration = Duration::from_millis(500);
/// How long a RabbitMQ call may take while the connection is down before it counts as a hang.
const FAIL_FAST: Duration = Duration::from_secs(6);

/// Expands each body into a module with an `embedded` and an `amqp` test, `backend` being
/// that test's [`Backend`].
macro_rules! queue_tests {
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
            async fn amqp() {
                let $backend = Backend::amqp();
                $body
            }
        }
    )*};
}

/// Where one test keeps its queues: a temp dir (embedded) or a queue prefix of its own
/// (RabbitMQ, whose queues are deleted when the backend is dropped).
struct Backend {
    kind: Kind,
    /// The queues this test used, to delete at the end (RabbitMQ).
    used: Mutex<BTreeSet<String>>,
}

enum Kind {
    Embedded(tempfile::TempDir),
    Amqp { url: String, prefix: String },
}

fn test_amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

impl Backend {
    fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        Backend {
            kind: Kind::Embedded(dir),
            used: Mutex::new(BTreeSet::new()),
        }
    }

    fn amqp() -> Backend {
        Backend {
            kind: Kind::Amqp {
                url: test_amqp_url(),
                prefix: format!("test-{}.", uuid::Uuid::new_v4().simple()),
            },
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// A new channel id (remembered for the clean-up).
    fn channel_id(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.used.lock().unwrap().insert(id.clone());
        id
    }

    /// A new queue object over the same data, as a new process would open it: a new
    /// database handle, or a new RabbitMQ connection.
    async fn open(&self) -> Arc<dyn Queue> {
        match &self.kind {
            Kind::Embedded(dir) => {
                let db = Database::open(dir.path(), SCHEMA).expect("open the database");
                Arc::new(EmbeddedQueue::new(Arc::new(db)))
            }
            Kind::Amqp { url, prefix } => {
                let link = connect(url, &format!("{prefix}link")).await;
                Arc::new(AmqpQueue::new(link, prefix))
            }
        }
    }
}

async fn connect(url: &str, name: &str) -> AmqpLink {
    AmqpLink::connect_named(url, name)
        .await
        .unwrap_or_else(|e| {
            panic!("{e} (start rabbitmq-server, or point TEST_AMQP_URL at a RabbitMQ)")
        })
}

impl Drop for Backend {
    /// Deletes the test's RabbitMQ queues (both lane queues of each channel, through
    /// [`Queue::remove`]), on a runtime of its own (the test's may be gone).
    fn drop(&mut self) {
        let Kind::Amqp { url, prefix } = &self.kind else {
            return;
        };
        let (url, prefix) = (url.clone(), prefix.clone());
        let used: Vec<String> =
            std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let link = AmqpLink::connect_named(&url, &format!("{prefix}cleanup")).await?;
                let queue = AmqpQueue::new(link.clone(), &prefix);
                for channel_id in used {
                    queue.remove(&channel_id).await?;
                }
                link.close().await;
                Ok::<_, junebug::backend::BackendError>(())
            })
        })
        .join();
        if let Ok(Err(e)) = cleaned {
            eprintln!("cannot delete the test's queues: {e}");
        }
    }
}

/// An outbound message for `channel_id` with `content`.
fn message(channel_id: &str, content: &str) -> Message {
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: Some("+27820000000".to_owned()),
        from_addr: None,
        group: None,
        in_reply_to: None,
        session_event: None,
        content: Some(content.to_owned()),
        transport_name: channel_id.to_owned(),
        transport_type: "telnet".to_owned(),
        transport_metadata: Default::default(),
        helper_metadata: Default::default(),
        expires_at: None,
    }
}

fn priority(level: u8) -> Priority {
    Priority::new(level).expect("a priority from 1 to 5")
}

/// Enqueues one message per content, all at `level`.
async fn enqueue_all(queue: &dyn Queue, channel_id: &str, level: u8, contents: &[&str]) {
    for content in contents {
        queue
            .enqueue(channel_id, &message(channel_id, content), priority(level))
            .await
            .expect("enqueue");
    }
}

/// The next delivery, which must come within [`WAIT`].
async fn next(consumer: &mut Box<dyn OutboundConsumer>) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the queue is still there")
}

/// The next `n` deliveries.
async fn take(consumer: &mut Box<dyn OutboundConsumer>, n: usize) -> Vec<Delivery> {
    let mut deliveries = Vec::new();
    for _ in 0..n {
        deliveries.push(next(consumer).await);
    }
    deliveries
}

/// Asserts that no delivery comes within [`QUIET`].
async fn assert_nothing_comes(consumer: &mut Box<dyn OutboundConsumer>) {
    if let Ok(delivery) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!(
            "expected nothing, got {:?}",
            delivery.map(|d| d.message.content)
        );
    }
}

fn content(delivery: &Delivery) -> &str {
    delivery.message.content.as_deref().unwrap_or_default()
}

fn contents(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(content).collect()
}

fn sorted<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut items: Vec<_> = items.into_iter().collect();
    items.sort_unstable();
    items
}

async fn ack_all(deliveries: Vec<Delivery>) {
    for delivery in deliveries {
        delivery.receipt.ack().await.expect("ack");
    }
}

/// Waits (polling) until `queue` reports `realtime` and `bulk` messages waiting for
/// `channel_id`, for at most [`WAIT`]: RabbitMQ settles a closed channel's deliveries
/// asynchronously.
async fn assert_lengths(queue: &dyn Queue, channel_id: &str, realtime: u64, bulk: u64) {
    let expected = LaneLengths { realtime, bulk };
    let deadline = Instant::now() + WAIT;
    loop {
        let lengths = queue.lengths(channel_id).await.expect("lengths");
        if lengths == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting messages: expected {expected:?}, got {lengths:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn purged_contents(purged: &[Message]) -> Vec<&str> {
    sorted(purged.iter().filter_map(|m| m.content.as_deref()))
}

queue_tests! {
    /// Messages of one priority come out in the order they went in.
    fn fifo_within_a_priority(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 3, &["m1", "m2", "m3", "m4", "m5"]).await;
        let mut consumer = queue.consume(&id, 10).await.expect("consume");
        let deliveries = take(&mut consumer, 5).await;
        assert_eq!(contents(&deliveries), ["m1", "m2", "m3", "m4", "m5"]);
        assert!(deliveries.iter().all(|d| d.priority == priority(3)));
        ack_all(deliveries).await;
    }

    /// Of the messages waiting when consuming starts, higher priorities come first, each
    /// priority in order.
    fn higher_priority_first(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["bulk1", "bulk2"]).await;
        enqueue_all(&*queue, &id, 5, &["realtime1"]).await;
        enqueue_all(&*queue, &id, 3, &["normal1"]).await;
        enqueue_all(&*queue, &id, 5, &["realtime2"]).await;
        let mut consumer = queue.consume(&id, 10).await.expect("consume");
        let deliveries = take(&mut consumer, 5).await;
        assert_eq!(
            contents(&deliveries),
            ["realtime1", "realtime2", "normal1", "bulk1", "bulk2"]
        );
        let levels: Vec<u8> = deliveries.iter().map(|d| d.priority.level()).collect();
        assert_eq!(levels, [5, 5, 3, 1, 1]);
        ack_all(deliveries).await;
    }

    /// A consumer holds at most `prefetch` unacked deliveries; an ack frees a slot.
    fn prefetch_window_limits_unacked_deliveries(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["m1", "m2", "m3", "m4", "m5"]).await;
        let mut consumer = queue.consume(&id, 2).await.expect("consume");
        let mut held = take(&mut consumer, 2).await;
        assert_eq!(contents(&held), ["m1", "m2"]);
        assert_nothing_comes(&mut consumer).await;
        held.remove(0).receipt.ack().await.expect("ack");
        let third = next(&mut consumer).await;
        assert_eq!(content(&third), "m3");
        assert_nothing_comes(&mut consumer).await;
    }

    /// An ack that completes while the consumer is busy looking for messages (here: the
    /// ack is under way before the consumer looks, and done before its look is) still frees
    /// the slot: the next message comes without any new enqueue to wake the consumer.
    fn an_ack_racing_the_consumer_still_frees_its_slot(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["m1", "m2"]).await;
        let mut consumer = queue.consume(&id, 1).await.expect("consume");
        let first = next(&mut consumer).await;
        assert_eq!(content(&first), "m1");
        // The window is full; this also uses up the wake-ups the enqueues left.
        assert_nothing_comes(&mut consumer).await;
        // Biased: the ack is polled first, so its database job goes in before the look.
        let (acked, second) = tokio::join!(
            biased;
            first.receipt.ack(),
            tokio::time::timeout(WAIT, consumer.next())
        );
        acked.expect("ack");
        let second = second
            .expect("the freed slot is noticed")
            .expect("the queue is still there");
        assert_eq!(content(&second), "m2");
    }

    /// What a dropped consumer held unacked goes to the next consumer.
    fn dropped_consumer_deliveries_are_redelivered(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 2, &["m1", "m2", "m3"]).await;
        let mut first = queue.consume(&id, 10).await.expect("consume");
        let held = take(&mut first, 3).await;
        assert_eq!(contents(&held), ["m1", "m2", "m3"]);
        drop(held);
        drop(first);
        let mut second = queue.consume(&id, 10).await.expect("consume again");
        let again = take(&mut second, 3).await;
        assert_eq!(sorted(contents(&again)), ["m1", "m2", "m3"]);
        ack_all(again).await;
    }

    /// Acked messages are gone: a later consumer never sees them.
    fn acked_messages_never_come_back(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["m1", "m2"]).await;
        let mut first = queue.consume(&id, 10).await.expect("consume");
        ack_all(take(&mut first, 2).await).await;
        drop(first);
        enqueue_all(&*queue, &id, 1, &["marker"]).await;
        let mut second = queue.consume(&id, 10).await.expect("consume again");
        let delivery = next(&mut second).await;
        assert_eq!(content(&delivery), "marker");
    }

    /// Purge returns exactly the waiting messages; those a live consumer holds unacked stay
    /// in the queue (and come back when that consumer goes).
    fn purge_returns_only_waiting_messages(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["m1", "m2", "m3", "m4"]).await;
        let mut holder = queue.consume(&id, 2).await.expect("consume");
        let held = take(&mut holder, 2).await;
        assert_eq!(contents(&held), ["m1", "m2"]);

        let purged = queue.purge(&id, None).await.expect("purge");
        let purged_contents = purged.iter().filter_map(|m| m.content.as_deref());
        assert_eq!(sorted(purged_contents), ["m3", "m4"]);
        assert!(purged.iter().all(|m| m.transport_name == id));

        drop(held);
        drop(holder);
        let mut next_consumer = queue.consume(&id, 10).await.expect("consume again");
        let back = take(&mut next_consumer, 2).await;
        assert_eq!(sorted(contents(&back)), ["m1", "m2"]);
        enqueue_all(&*queue, &id, 1, &["marker"]).await;
        assert_eq!(content(&next(&mut next_consumer).await), "marker");
        assert!(queue.purge(&id, None).await.expect("purge again").is_empty());
    }

    /// Each lane has a window of its own: with more realtime messages waiting than the
    /// window, bulk ones still come (the queue never starves bulk), and neither lane hands out
    /// more than the window.
    fn each_lane_has_a_window_of_its_own(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 5, &["r1", "r2", "r3"]).await;
        enqueue_all(&*queue, &id, 1, &["b1", "b2", "b3"]).await;
        let mut consumer = queue.consume(&id, 2).await.expect("consume");
        let held = take(&mut consumer, 4).await;
        assert_eq!(sorted(contents(&held)), ["b1", "b2", "r1", "r2"]);
        assert_nothing_comes(&mut consumer).await;
        ack_all(held).await;
    }

    /// A realtime message enqueued while the window is full of bulk deliveries comes at once,
    /// without waiting for an ack: the realtime lane has its own window.
    fn realtime_is_not_held_up_by_a_full_bulk_window(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["b1", "b2", "b3"]).await;
        let mut consumer = queue.consume(&id, 2).await.expect("consume");
        let held = take(&mut consumer, 2).await;
        assert_eq!(contents(&held), ["b1", "b2"]);
        enqueue_all(&*queue, &id, 5, &["urgent"]).await;
        assert_eq!(content(&next(&mut consumer).await), "urgent");
    }

    /// The measure, at the queue: with the window full of bulk deliveries and more
    /// bulk waiting, a realtime message enqueued afterwards is among the next two deliveries
    /// once one bulk delivery is acked (so it goes out within the next two send slots).
    fn realtime_overtakes_waiting_bulk_after_one_ack(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 1, &["b1", "b2", "b3", "b4", "b5"]).await;
        let mut consumer = queue.consume(&id, 2).await.expect("consume");
        let mut held = take(&mut consumer, 2).await;
        assert_eq!(contents(&held), ["b1", "b2"]);
        enqueue_all(&*queue, &id, 5, &["urgent"]).await;
        held.remove(0).receipt.ack().await.expect("ack");
        let after = take(&mut consumer, 2).await;
        assert!(
            contents(&after).contains(&"urgent"),
            "the realtime message is not among {:?}",
            contents(&after)
        );
    }

    /// `lengths` counts what waits in each lane: an enqueued message counts; one a consumer
    /// holds does not, until that consumer goes away; an acked or purged one is gone.
    fn lengths_count_waiting_messages_per_lane(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        assert_lengths(&*queue, &id, 0, 0).await;
        enqueue_all(&*queue, &id, 4, &["r1"]).await;
        enqueue_all(&*queue, &id, 5, &["r2"]).await;
        enqueue_all(&*queue, &id, 1, &["b1", "b2"]).await;
        enqueue_all(&*queue, &id, 3, &["b3"]).await;
        assert_lengths(&*queue, &id, 2, 3).await;

        // A window of one per lane: the consumer holds r2 (and b3, the best bulk message).
        let mut consumer = queue.consume(&id, 1).await.expect("consume");
        let held = next(&mut consumer).await;
        assert_eq!(content(&held), "r2");
        assert_lengths(&*queue, &id, 1, 2).await;

        // A consumer that goes away gives back what it held.
        drop(held);
        drop(consumer);
        assert_lengths(&*queue, &id, 2, 3).await;

        // An acked message is gone for good.
        let mut consumer = queue.consume(&id, 1).await.expect("consume again");
        let held = next(&mut consumer).await;
        assert_eq!(content(&held), "r2");
        held.receipt.ack().await.expect("ack");
        drop(consumer);
        assert_lengths(&*queue, &id, 1, 3).await;

        // Purged messages are gone, one lane at a time.
        let purged = queue.purge(&id, Some(Lane::Bulk)).await.expect("purge bulk");
        assert_eq!(purged_contents(&purged), ["b1", "b2", "b3"]);
        assert_lengths(&*queue, &id, 1, 0).await;
        let purged = queue.purge(&id, None).await.expect("purge");
        assert_eq!(purged_contents(&purged), ["r1"]);
        assert_lengths(&*queue, &id, 0, 0).await;
    }

    /// Purging one lane takes only that lane's waiting messages; the other lane's stay and
    /// are delivered in their order.
    fn purging_one_lane_leaves_the_other(backend) {
        let queue = backend.open().await;
        let id = backend.channel_id();
        enqueue_all(&*queue, &id, 4, &["r1"]).await;
        enqueue_all(&*queue, &id, 2, &["b1"]).await;
        enqueue_all(&*queue, &id, 1, &["b2"]).await;
        enqueue_all(&*queue, &id, 5, &["r2"]).await;
        let purged = queue
            .purge(&id, Some(Lane::Realtime))
            .await
            .expect("purge realtime");
        assert_eq!(purged_contents(&purged), ["r1", "r2"]);
        assert!(purged.iter().all(|m| m.transport_name == id));
        assert_lengths(&*queue, &id, 0, 2).await;

        let mut consumer = queue.consume(&id, 10).await.expect("consume");
        let rest = take(&mut consumer, 2).await;
        assert_eq!(contents(&rest), ["b1", "b2"]);
        assert_nothing_comes(&mut consumer).await;
        ack_all(rest).await;
        let purged = queue.purge(&id, Some(Lane::Bulk)).await.expect("purge bulk");
        assert!(purged.is_empty());
    }

    /// Queued messages, including one a consumer held unacked, survive the queue object (a
    /// process restart: a new database handle, a new RabbitMQ connection).
    fn messages_survive_a_restart(backend) {
        let id = backend.channel_id();
        {
            let queue = backend.open().await;
            enqueue_all(&*queue, &id, 1, &["m1", "m2"]).await;
            enqueue_all(&*queue, &id, 4, &["m3"]).await;
            let mut consumer = queue.consume(&id, 1).await.expect("consume");
            let held = next(&mut consumer).await;
            assert_eq!(content(&held), "m3");
        }
        let queue = backend.open().await;
        let mut consumer = queue.consume(&id, 10).await.expect("consume after the restart");
        let deliveries = take(&mut consumer, 3).await;
        assert_eq!(sorted(contents(&deliveries)), ["m1", "m2", "m3"]);
        ack_all(deliveries).await;
    }
}

/// What RabbitMQ says is ready in `queue`, `None` if there is no such queue (asked on a
/// channel of its own, which RabbitMQ closes in that case).
async fn ready_in(link: &AmqpLink, queue: &str) -> Option<u32> {
    let channel = link.channel().await.expect("a channel");
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, Default::default())
        .await
        .ok()
        .map(|declared| declared.message_count())
}

/// A channel's messages wait in `<prefix><channel id>.outbound.realtime` and
/// `<prefix><channel id>.outbound.bulk` (names operators and tools rely on); asking for the
/// lengths of a channel without queues creates none.
#[actix_rt::test]
async fn lanes_are_queues_with_stable_names() {
    let backend = Backend::amqp();
    let Kind::Amqp { url, prefix } = &backend.kind else {
        unreachable!()
    };
    let link = connect(url, &format!("{prefix}inspect")).await;
    let queue = AmqpQueue::new(link.clone(), prefix);
    let id = backend.channel_id();
    let realtime = format!("{prefix}{id}.outbound.realtime");
    let bulk = format!("{prefix}{id}.outbound.bulk");
    assert_eq!(queue.queue_name(&id, Lane::Realtime), realtime);
    assert_eq!(queue.queue_name(&id, Lane::Bulk), bulk);

    assert_eq!(
        queue.lengths(&id).await.expect("lengths"),
        LaneLengths::default()
    );
    assert_eq!(ready_in(&link, &realtime).await, None);
    assert_eq!(ready_in(&link, &bulk).await, None);

    enqueue_all(&queue, &id, 4, &["r1"]).await;
    enqueue_all(&queue, &id, 1, &["b1"]).await;
    enqueue_all(&queue, &id, 3, &["b2"]).await;
    assert_eq!(ready_in(&link, &realtime).await, Some(1));
    assert_eq!(ready_in(&link, &bulk).await, Some(2));
    assert_lengths(&queue, &id, 1, 2).await;
    link.close().await;
}

/// The RabbitMQ connection whose client-provided name is `name`, closed from the broker
/// side (as a broker restart or a network cut would).
fn close_connection_named(name: &str) {
    let listed = Command::new("rabbitmqctl")
        .args([
            "-q",
            "--no-table-headers",
            "list_connections",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("run rabbitmqctl");
    assert!(
        listed.status.success(),
        "rabbitmqctl list_connections failed"
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    // One line per connection: the Erlang pid, a tab, the client properties.
    let pid = listed
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name} in:\n{listed}"))
        .to_owned();
    let closed = Command::new("rabbitmqctl")
        .args(["-q", "close_connection", &pid, "closed by a test"])
        .status()
        .expect("run rabbitmqctl");
    assert!(closed.success(), "rabbitmqctl close_connection failed");
}

/// Waits (polling) until `done` holds, for at most [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A runtime on a thread of its own that owns a link, as the daemon's main runtime does while
/// channels consume on the arbiters' runtimes.
struct OwnerRuntime {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnerRuntime {
    /// Connects a link named `name` on a new runtime thread.
    async fn connect(url: &str, name: &str) -> (OwnerRuntime, AmqpLink) {
        let (url, name) = (url.to_owned(), name.to_owned());
        let (linked, link) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let _ = linked.send(connect(&url, &name).await);
                let _ = stopped.await;
            });
        });
        let link = link.await.expect("the owner runtime connects");
        let owner = OwnerRuntime {
            stop: Some(stop),
            thread: Some(thread),
        };
        (owner, link)
    }
}

impl Drop for OwnerRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// When the connection is cut under a waiting consumer, enqueueing fails fast until the link
/// has reconnected; the same consumer then goes on, getting again what it held unacked (whose
/// ack fails) and what was queued since. The link lives on another runtime than its users.
#[actix_rt::test]
async fn consumer_survives_connection_loss() {
    let backend = Backend::amqp();
    let Kind::Amqp { url, prefix } = &backend.kind else {
        unreachable!()
    };
    let name = format!("{prefix}cut");
    let (_owner, link) = OwnerRuntime::connect(url, &name).await;
    let queue = AmqpQueue::new(link.clone(), prefix);
    let id = backend.channel_id();
    enqueue_all(&queue, &id, 1, &["before"]).await;
    let mut consumer = queue.consume(&id, 10).await.expect("consume");
    let held = next(&mut consumer).await;
    assert_eq!(content(&held), "before");
    assert_eq!(link.generation(), 1);

    let cut_and_enqueue = async {
        let kill = name.clone();
        tokio::task::spawn_blocking(move || close_connection_named(&kill))
            .await
            .expect("rabbitmqctl thread");
        eventually("the link notices", || {
            !link.is_connected() || link.generation() > 1
        })
        .await;
        assert!(
            held.receipt.ack().await.is_err(),
            "an ack on the dead channel must fail"
        );
        // Enqueue as a client would: each attempt answers quickly; one succeeds after the
        // reconnection.
        let deadline = Instant::now() + WAIT;
        loop {
            let started = Instant::now();
            let outcome = queue
                .enqueue(&id, &message(&id, "after"), Priority::BULK)
                .await;
            assert!(
                started.elapsed() < FAIL_FAST,
                "enqueue hung for {:?}",
                started.elapsed()
            );
            match outcome {
                Ok(()) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no reconnection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        assert!(link.generation() > 1);
    };
    // The consumer is waiting in `next()` while the connection goes and comes back.
    let (first, ()) = tokio::join!(next(&mut consumer), cut_and_enqueue);
    let second = next(&mut consumer).await;
    assert_eq!(
        sorted([content(&first), content(&second)]),
        ["after", "before"]
    );
    ack_all(vec![first, second]).await;
    drop(consumer);
    let mut fresh = queue.consume(&id, 10).await.expect("consume");
    assert_nothing_comes(&mut fresh).await;
}

/// A consumer ends (`None`) when its queue is deleted.
#[actix_rt::test]
async fn removing_the_queue_ends_its_consumer() {
    let backend = Backend::amqp();
    let queue = backend.open().await;
    let id = backend.channel_id();
    let mut consumer = queue.consume(&id, 10).await.expect("consume");
    queue.remove(&id).await.expect("remove");
    let ended = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("the consumer ends in time");
    assert!(ended.is_none(), "no delivery from a deleted queue");
}

/// When another process deleted the queue, an enqueue fails instead of losing the message,
/// and the next one declares the queue again.
#[actix_rt::test]
async fn enqueue_to_a_queue_deleted_elsewhere_fails_then_recovers() {
    let backend = Backend::amqp();
    let here = backend.open().await;
    let elsewhere = backend.open().await;
    let id = backend.channel_id();
    enqueue_all(&*here, &id, 1, &["first"]).await;
    elsewhere.remove(&id).await.expect("remove");
    let lost = here
        .enqueue(&id, &message(&id, "unroutable"), Priority::BULK)
        .await;
    let Err(e) = lost else {
        panic!("an unroutable message must not be accepted")
    };
    assert!(e.to_string().contains("no queue"), "{e}");
    enqueue_all(&*here, &id, 1, &["again"]).await;
    let mut consumer = elsewhere.consume(&id, 10).await.expect("consume");
    assert_eq!(content(&next(&mut consumer).await), "again");
    assert_nothing_comes(&mut consumer).await;
}

/// Without a reachable broker the link does not start, says where it tried, and does not
/// show the password.
#[actix_rt::test]
async fn connect_fails_clearly_without_a_broker() {
    let started = Instant::now();
    let refused = AmqpLink::connect("amqp://guest:s3cret@127.0.0.1:1/%2f").await;
    let Err(e) = refused else {
        panic!("connected to nothing")
    };
    assert!(started.elapsed() < Duration::from_secs(11));
    let text = e.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
