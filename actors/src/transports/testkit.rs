//! The shared harness for transport, channel-actor and supervisor tests.
//!
//! Compiled for this crate's tests and, for other crates, with the `testkit` feature:
//!
//! ```toml
//! [dev-dependencies]
//! junebug-actors = { path = "actors", features = ["testkit"] }
//! ```
//!
//! Pieces:
//!
//! - [`RecordingHost`]: a [`ChannelHost`] that records every inbound message, event, status and
//!   log line in a [`Journal`], and holds an in-memory outbound queue per channel
//!   ([`RecordingHost::enqueue`], [`ChannelHost::consume`]) whose acks are recorded too.
//! - [`Journal`]: what was recorded, in order, with ways to await the next entry or the first
//!   entry matching a predicate, each bounded by a timeout (no sleeps as synchronisation).
//! - [`FailureRecorder`]: a tiny actix actor that records [`TransportFailed`] reports, so a
//!   [`TransportContext`] can be built without a channel actor.
//! - [`run_local`]: runs a test body inside an actix `System` (a tokio current-thread runtime
//!   plus a `LocalSet`), where `spawn_local`, [`TransportContext::spawn`] and actors work.
//!
//! A typical transport test:
//!
//! ```ignore
//! use junebug_actors::transports::testkit::{run_local, RecordingHost};
//!
//! run_local(|| async {
//!     let host = RecordingHost::new();
//!     let (ctx, failures) = host.context("channel-1");
//!     transport.start(ctx).await.unwrap();
//!     // … drive the provider side …
//!     let (channel_id, message) = host.inbound().next().await;
//!     assert_eq!(message.content.as_deref(), Some("hello"));
//!     assert!(failures.all().is_empty());
//! });
//! ```
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Recipient};
use async_trait::async_trait;
use tokio::sync::Notify;

use crate::message::{DeliveryReport, Event, Message, Priority, StatusEvent};
use crate::ports::{
    ChannelHost, Delivery, InboundPart, LogRecord, OutboundConsumer, PartialMessage, PortError,
    Receipt, ReportOutcome,
};
use crate::transport::{TransportContext, TransportFailed};

/// How long [`Journal::next`] and [`Journal::wait_for`] wait before they panic.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Runs `body` to completion inside a fresh actix `System` on the current thread.
///
/// The System provides a tokio current-thread runtime and a `LocalSet`, which is what a
/// channel's arbiter gives a transport: `tokio::task::spawn_local`,
/// [`TransportContext::spawn`] and `Actor::start` all work inside `body`. Equivalent to an
/// `#[actix_rt::test]` function, for tests that prefer a plain `#[test]`.
pub fn run_local<F, Fut>(body: F) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    actix_rt::System::new().block_on(async move { body().await })
}

/// Locks `mutex`, ignoring poisoning: a test that panicked while holding it has failed
/// already, and the data stays readable for the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An append-only record of things that happened, in order, that a test can await.
///
/// It keeps everything ([`Journal::all`]) and a read cursor: [`Journal::next`] returns the
/// entries one by one, in order, each once, waiting for the next one to arrive.
/// [`Journal::wait_for`] instead searches every entry, read or not, for one that matches.
pub struct Journal<T> {
    /// What is recorded, for panic messages ("no inbound message within 5s").
    what: &'static str,
    /// The entries and the read cursor.
    state: Mutex<JournalState<T>>,
    /// Woken on every new entry.
    added: Notify,
}

struct JournalState<T> {
    entries: Vec<T>,
    /// Index of the next entry [`Journal::next`] returns.
    cursor: usize,
}

impl<T: Clone> Journal<T> {
    /// An empty journal of `what` (used in panic messages).
    pub fn new(what: &'static str) -> Self {
        Journal {
            what,
            state: Mutex::new(JournalState {
                entries: Vec::new(),
                cursor: 0,
            }),
            added: Notify::new(),
        }
    }

    /// Appends an entry and wakes whoever waits for one.
    pub fn push(&self, entry: T) {
        lock(&self.state).entries.push(entry);
        self.added.notify_waiters();
    }

    /// Every entry so far, in order (read or not).
    pub fn all(&self) -> Vec<T> {
        lock(&self.state).entries.clone()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether there is no entry yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next unread entry, if one is there already; does not wait.
    pub fn try_next(&self) -> Option<T> {
        let mut state = lock(&self.state);
        let entry = state.entries.get(state.cursor).cloned()?;
        state.cursor += 1;
        Some(entry)
    }

    /// The next unread entry, waiting for it at most `wait`; `None` if none came.
    pub async fn next_within(&self, wait: Duration) -> Option<T> {
        self.wait_until(wait, || self.try_next()).await
    }

    /// The next unread entry; panics if none comes within [`DEFAULT_WAIT`].
    pub async fn next(&self) -> T {
        match self.next_within(DEFAULT_WAIT).await {
            Some(entry) => entry,
            None => panic!("no {} within {:?}", self.what, DEFAULT_WAIT),
        }
    }

    /// The first entry (read or not) for which `matches` is true, waiting for one at most
    /// `wait`. Does not move the read cursor.
    pub async fn wait_for_within(
        &self,
        wait: Duration,
        mut matches: impl FnMut(&T) -> bool,
    ) -> Option<T> {
        self.wait_until(wait, || {
            lock(&self.state)
                .entries
                .iter()
                .find(|entry| matches(entry))
                .cloned()
        })
        .await
    }

    /// The first entry (read or not) for which `matches` is true; panics if none comes
    /// within [`DEFAULT_WAIT`]. Does not move the read cursor.
    pub async fn wait_for(&self, matches: impl FnMut(&T) -> bool) -> T {
        match self.wait_for_within(DEFAULT_WAIT, matches).await {
            Some(entry) => entry,
            None => panic!("no matching {} within {:?}", self.what, DEFAULT_WAIT),
        }
    }

    /// Polls `check` after every new entry until it gives a value or `wait` runs out.
    async fn wait_until<R>(
        &self,
        wait: Duration,
        mut check: impl FnMut() -> Option<R>,
    ) -> Option<R> {
        let attempt = async {
            loop {
                // Register for the wake-up before checking, so an entry pushed between the
                // check and the await is not missed.
                let added = self.added.notified();
                tokio::pin!(added);
                added.as_mut().enable();
                if let Some(found) = check() {
                    return found;
                }
                added.await;
            }
        };
        tokio::time::timeout(wait, attempt).await.ok()
    }
}

/// A [`ChannelHost`] for tests: records what channels report and serves an in-memory queue.
///
/// Cheap to clone (all clones share one record). Every `inbound`, `event`, `status` and `log`
/// call is appended, with its channel id, to the matching [`Journal`]. The outbound side is one
/// queue per channel id:
///
/// - [`RecordingHost::enqueue`] adds a message;
/// - [`ChannelHost::consume`] opens a consumer that hands out messages highest priority first
///   (FIFO within a priority), at most `prefetch` unacked at once (`0`: no limit, as in AMQP);
/// - [`Receipt::ack`] removes the message for good and records it in [`RecordingHost::acks`];
/// - dropping a consumer puts its unacked messages back in the queue, in their original
///   order (like an AMQP channel closing). A [`Delivery`] dropped without an ack keeps its
///   prefetch slot until then, as in AMQP.
#[derive(Clone)]
pub struct RecordingHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    inbound: Journal<(String, Message)>,
    events: Journal<(String, Event)>,
    statuses: Journal<(String, StatusEvent)>,
    logs: Journal<(String, LogRecord)>,
    acks: Journal<(String, Message)>,
    provider_ids: Journal<(String, String, Vec<String>)>,
    reports: Journal<(String, DeliveryReport)>,
    /// Parts of long inbound messages: (channel, sender, reference, total) → when the first
    /// was kept, and the texts by sequence.
    parts: Mutex<HashMap<PartsOf, KeptParts>>,
    /// Saved cursors: (channel, name) → value.
    cursors: Mutex<HashMap<(String, String), String>>,
    /// Live sessions: (channel, session) → when they go idle.
    sessions: Mutex<HashMap<(String, String), tokio::time::Instant>>,
    /// Outbound queues by channel id.
    queues: Mutex<HashMap<String, OutboundQueue>>,
    /// Woken whenever a queue changes (enqueue, ack, requeue, close).
    queue_changed: Notify,
    /// When set, `consume` fails with this reason.
    consume_error: Mutex<Option<String>>,
    /// Source of consumer ids, delivery tags and enqueue sequence numbers.
    counter: AtomicU64,
}

/// Which long inbound message a part belongs to: channel, sender, reference, total.
type PartsOf = (String, String, u16, u8);

/// When the first part of a long inbound message was kept, and the texts by sequence.
type KeptParts = (Instant, BTreeMap<u8, String>);

#[derive(Default)]
struct OutboundQueue {
    /// Waiting to be delivered.
    ready: Vec<Queued>,
    /// Delivered, not acked, by delivery tag.
    unacked: HashMap<u64, (u64, Queued)>,
    /// Gone for good: consumers return `None`.
    closed: bool,
}

#[derive(Clone)]
struct Queued {
    /// Enqueue order, kept across redeliveries.
    seq: u64,
    message: Message,
    priority: Priority,
}

impl Default for RecordingHost {
    fn default() -> Self {
        RecordingHost {
            inner: Arc::new(HostInner {
                inbound: Journal::new("inbound message"),
                events: Journal::new("event"),
                statuses: Journal::new("status"),
                logs: Journal::new("log record"),
                acks: Journal::new("ack"),
                provider_ids: Journal::new("provider id mapping"),
                reports: Journal::new("delivery report"),
                parts: Mutex::new(HashMap::new()),
                cursors: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                queues: Mutex::new(HashMap::new()),
                queue_changed: Notify::new(),
                consume_error: Mutex::new(None),
                counter: AtomicU64::new(1),
            }),
        }
    }
}

impl RecordingHost {
    /// A host with nothing recorded and empty queues.
    pub fn new() -> Self {
        Self::default()
    }

    /// This host as the trait object a [`TransportContext`] or a channel actor takes.
    pub fn as_host(&self) -> Arc<dyn ChannelHost> {
        Arc::new(self.clone())
    }

    /// A [`TransportContext`] for `channel_id` on this host, and the journal of the failures
    /// its tasks report. Must be called inside an actix System (see [`run_local`]).
    pub fn context(&self, channel_id: &str) -> (TransportContext, Arc<Journal<String>>) {
        let (failed, failures) = FailureRecorder::start_recording();
        let ctx = TransportContext::new(Arc::from(channel_id), self.as_host(), failed);
        (ctx, failures)
    }

    /// Inbound messages, with their channel id, in the order they were reported.
    pub fn inbound(&self) -> &Journal<(String, Message)> {
        &self.inner.inbound
    }

    /// Events, with their channel id.
    pub fn events(&self) -> &Journal<(String, Event)> {
        &self.inner.events
    }

    /// Status events, with their channel id.
    pub fn statuses(&self) -> &Journal<(String, StatusEvent)> {
        &self.inner.statuses
    }

    /// Channel log records, with their channel id.
    pub fn logs(&self) -> &Journal<(String, LogRecord)> {
        &self.inner.logs
    }

    /// Provider ids reported for sent messages: (channel id, message id, provider ids).
    pub fn provider_ids(&self) -> &Journal<(String, String, Vec<String>)> {
        &self.inner.provider_ids
    }

    /// Delivery reports, with their channel id. A report counts as matched when its id was
    /// reported through [`ChannelHost::provider_ids`] before; this host makes no event of it
    /// (the daemon's host does), so transport tests check what the transport reported.
    pub fn reports(&self) -> &Journal<(String, DeliveryReport)> {
        &self.inner.reports
    }

    /// Acked outbound messages, with their channel id, in ack order.
    pub fn acks(&self) -> &Journal<(String, Message)> {
        &self.inner.acks
    }

    /// The ids of the messages acked on `channel_id`, in ack order.
    pub fn acked_ids(&self, channel_id: &str) -> Vec<String> {
        self.acks()
            .all()
            .into_iter()
            .filter(|(id, _)| id == channel_id)
            .map(|(_, message)| message.message_id)
            .collect()
    }

    /// Adds `message` to `channel_id`'s outbound queue.
    pub fn enqueue(&self, channel_id: &str, message: Message, priority: Priority) {
        let seq = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        self.with_queue(channel_id, |queue| {
            queue.ready.push(Queued {
                seq,
                message,
                priority,
            })
        });
    }

    /// The messages waiting in `channel_id`'s queue (not delivered), in delivery order.
    pub fn queued(&self, channel_id: &str) -> Vec<Message> {
        let queues = lock(&self.inner.queues);
        let mut ready: Vec<&Queued> = queues
            .get(channel_id)
            .map(|queue| queue.ready.iter().collect())
            .unwrap_or_default();
        ready.sort_by_key(|queued| delivery_order(queued));
        ready
            .into_iter()
            .map(|queued| queued.message.clone())
            .collect()
    }

    /// The messages of `channel_id` delivered to a consumer and not acked yet, in enqueue
    /// order.
    pub fn unacked(&self, channel_id: &str) -> Vec<Message> {
        let queues = lock(&self.inner.queues);
        let mut unacked: Vec<&Queued> = queues
            .get(channel_id)
            .map(|queue| queue.unacked.values().map(|(_, queued)| queued).collect())
            .unwrap_or_default();
        unacked.sort_by_key(|queued| queued.seq);
        unacked
            .into_iter()
            .map(|queued| queued.message.clone())
            .collect()
    }

    /// Deletes `channel_id`'s queue for good: its consumers' `next` returns `None`, and
    /// later acks fail.
    pub fn close_queue(&self, channel_id: &str) {
        self.with_queue(channel_id, |queue| {
            queue.closed = true;
            queue.ready.clear();
            queue.unacked.clear();
        });
    }

    /// Makes every later `consume` fail with `reason` (`None`: work again), to test a
    /// backend that is down.
    pub fn fail_consume(&self, reason: Option<&str>) {
        *lock(&self.inner.consume_error) = reason.map(str::to_owned);
    }

    fn with_queue<R>(&self, channel_id: &str, change: impl FnOnce(&mut OutboundQueue) -> R) -> R {
        let result = change(
            lock(&self.inner.queues)
                .entry(channel_id.to_owned())
                .or_default(),
        );
        self.inner.queue_changed.notify_waiters();
        result
    }
}

/// Highest priority first, then enqueue order.
fn delivery_order(queued: &Queued) -> (std::cmp::Reverse<Priority>, u64) {
    (std::cmp::Reverse(queued.priority), queued.seq)
}

#[async_trait]
impl ChannelHost for RecordingHost {
    async fn inbound(&self, channel_id: &str, message: Message) -> Result<(), PortError> {
        self.inner.inbound.push((channel_id.to_owned(), message));
        Ok(())
    }

    async fn inbound_part(
        &self,
        channel_id: &str,
        part: InboundPart,
        _max_age: Duration,
    ) -> Result<Option<String>, PortError> {
        let of = (
            channel_id.to_owned(),
            part.sender,
            part.reference,
            part.total,
        );
        let mut parts = lock(&self.inner.parts);
        let (_, texts) = parts
            .entry(of.clone())
            .or_insert_with(|| (Instant::now(), BTreeMap::new()));
        texts.insert(part.sequence, part.text);
        if texts.len() < usize::from(part.total) {
            return Ok(None);
        }
        Ok(parts
            .remove(&of)
            .map(|(_, texts)| texts.into_values().collect()))
    }

    async fn expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<PartialMessage>, PortError> {
        let mut parts = lock(&self.inner.parts);
        let due: Vec<PartsOf> = parts
            .iter()
            .filter(|((channel, ..), (first, _))| {
                channel == channel_id && first.elapsed() > max_age
            })
            .map(|(of, _)| of.clone())
            .collect();
        let mut expired: Vec<_> = due
            .into_iter()
            .filter_map(|of| parts.remove(&of).map(|(first, texts)| (first, of.1, texts)))
            .collect();
        expired.sort_by_key(|(first, ..)| *first);
        Ok(expired
            .into_iter()
            .map(|(_, sender, texts)| PartialMessage {
                sender,
                text: texts.into_values().collect(),
            })
            .collect())
    }

    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, PortError> {
        let key = (channel_id.to_owned(), name.to_owned());
        Ok(lock(&self.inner.cursors).get(&key).cloned())
    }

    async fn save_cursor(
        &self,
        channel_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), PortError> {
        let key = (channel_id.to_owned(), name.to_owned());
        lock(&self.inner.cursors).insert(key, value.to_owned());
        Ok(())
    }

    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, PortError> {
        let now = tokio::time::Instant::now();
        let mut sessions = lock(&self.inner.sessions);
        sessions.retain(|_, idle_at| *idle_at > now);
        let key = (channel_id.to_owned(), session_id.to_owned());
        Ok(sessions.insert(key, now + idle_timeout).is_some())
    }

    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, PortError> {
        let key = (channel_id.to_owned(), session_id.to_owned());
        let idle_at = lock(&self.inner.sessions).remove(&key);
        Ok(idle_at.is_some_and(|at| at > tokio::time::Instant::now()))
    }

    async fn event(&self, channel_id: &str, event: Event) {
        self.inner.events.push((channel_id.to_owned(), event));
    }

    async fn provider_ids(&self, channel_id: &str, message_id: &str, provider_ids: &[String]) {
        let mapping = (channel_id.into(), message_id.into(), provider_ids.to_vec());
        self.inner.provider_ids.push(mapping);
    }

    async fn delivery_report(&self, channel_id: &str, report: DeliveryReport) -> ReportOutcome {
        let known = self
            .inner
            .provider_ids
            .all()
            .into_iter()
            .find(|(channel, _, ids)| {
                channel == channel_id && ids.contains(&report.provider_message_id)
            });
        self.inner.reports.push((channel_id.to_owned(), report));
        match known {
            Some((_, message_id, _)) => ReportOutcome::Matched(message_id),
            None => ReportOutcome::Unmatched,
        }
    }

    async fn status(&self, channel_id: &str, status: StatusEvent) {
        self.inner.statuses.push((channel_id.to_owned(), status));
    }

    fn log(&self, channel_id: &str, record: LogRecord) {
        self.inner.logs.push((channel_id.to_owned(), record));
    }

    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, PortError> {
        if let Some(reason) = lock(&self.inner.consume_error).clone() {
            return Err(PortError(reason));
        }
        Ok(Box::new(TestConsumer {
            host: self.clone(),
            channel_id: channel_id.to_owned(),
            consumer_id: self.inner.counter.fetch_add(1, Ordering::Relaxed),
            prefetch,
        }))
    }
}

/// A consumer of one in-memory queue; see [`RecordingHost`].
struct TestConsumer {
    host: RecordingHost,
    channel_id: String,
    consumer_id: u64,
    prefetch: usize,
}

impl TestConsumer {
    /// Takes the next deliverable message, if the window and the queue allow. `Err` when the
    /// queue is closed.
    fn try_take(&self) -> Result<Option<Delivery>, ()> {
        let tag = self.host.inner.counter.fetch_add(1, Ordering::Relaxed);
        let mut queues = lock(&self.host.inner.queues);
        let queue = queues.entry(self.channel_id.clone()).or_default();
        if queue.closed {
            return Err(());
        }
        let in_flight = queue
            .unacked
            .values()
            .filter(|(consumer, _)| *consumer == self.consumer_id)
            .count();
        if self.prefetch != 0 && in_flight >= self.prefetch {
            return Ok(None);
        }
        let Some(index) = (0..queue.ready.len()).min_by_key(|&i| delivery_order(&queue.ready[i]))
        else {
            return Ok(None);
        };
        let queued = queue.ready.remove(index);
        queue
            .unacked
            .insert(tag, (self.consumer_id, queued.clone()));
        Ok(Some(Delivery {
            message: queued.message,
            priority: queued.priority,
            receipt: Box::new(TestReceipt {
                host: self.host.clone(),
                channel_id: self.channel_id.clone(),
                tag,
            }),
        }))
    }
}

#[async_trait(?Send)]
impl OutboundConsumer for TestConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let changed = self.host.inner.queue_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_take() {
                Err(()) => return None,
                Ok(Some(delivery)) => return Some(delivery),
                Ok(None) => changed.await,
            }
        }
    }
}

impl Drop for TestConsumer {
    fn drop(&mut self) {
        let consumer_id = self.consumer_id;
        self.host.with_queue(&self.channel_id, |queue| {
            let tags: Vec<u64> = queue
                .unacked
                .iter()
                .filter(|(_, (consumer, _))| *consumer == consumer_id)
                .map(|(tag, _)| *tag)
                .collect();
            for tag in tags {
                if let Some((_, queued)) = queue.unacked.remove(&tag) {
                    queue.ready.push(queued);
                }
            }
        });
    }
}

/// The receipt of one in-memory delivery; acking records the message in
/// [`RecordingHost::acks`].
struct TestReceipt {
    host: RecordingHost,
    channel_id: String,
    tag: u64,
}

#[async_trait]
impl Receipt for TestReceipt {
    async fn ack(self: Box<Self>) -> Result<(), PortError> {
        let acked = self
            .host
            .with_queue(&self.channel_id, |queue| queue.unacked.remove(&self.tag));
        match acked {
            Some((_, queued)) => {
                self.host
                    .inner
                    .acks
                    .push((self.channel_id.clone(), queued.message));
                Ok(())
            }
            None => Err(PortError(format!(
                "delivery {} of channel {} is no longer unacked (consumer dropped or queue closed)",
                self.tag, self.channel_id
            ))),
        }
    }
}

/// An actor that records the [`TransportFailed`] reports sent to it.
pub struct FailureRecorder {
    failures: Arc<Journal<String>>,
}

impl FailureRecorder {
    /// Starts a recorder on the current arbiter and returns its recipient (for
    /// [`TransportContext::new`]) and the journal of the failure reasons it receives. Must
    /// be called inside an actix System (see [`run_local`]).
    pub fn start_recording() -> (Recipient<TransportFailed>, Arc<Journal<String>>) {
        let failures = Arc::new(Journal::new("transport failure"));
        let recorder = FailureRecorder {
            failures: failures.clone(),
        };
        (recorder.start().recipient(), failures)
    }
}

impl Actor for FailureRecorder {
    type Context = Context<Self>;
}

impl Handler<TransportFailed> for FailureRecorder {
    type Result = ();

    fn handle(&mut self, failure: TransportFailed, _: &mut Self::Context) {
        self.failures.push(failure.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{new_message_id, timestamp_now};
    use crate::transport::TransportError;

    fn message(content: &str) -> Message {
        Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: Some("+27000000000".into()),
            from_addr: None,
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some(content.into()),
            transport_name: "ch".into(),
            transport_type: "test".into(),
            transport_metadata: Default::default(),
            helper_metadata: Default::default(),
            expires_at: None,
        }
    }

    fn content(delivery: &Delivery) -> &str {
        delivery.message.content.as_deref().unwrap_or_default()
    }

    /// `next` waits for an entry pushed later, and returns entries once each, in order.
    #[test]
    fn journal_next_waits_for_later_entries() {
        run_local(|| async {
            let journal = Arc::new(Journal::new("number"));
            let pusher = journal.clone();
            tokio::task::spawn_local(async move {
                pusher.push(1);
                pusher.push(2);
            });
            assert_eq!(journal.next().await, 1);
            assert_eq!(journal.next().await, 2);
            assert_eq!(journal.try_next(), None);
            assert_eq!(journal.all(), vec![1, 2]);
            let none = journal.next_within(Duration::from_millis(10)).await;
            assert_eq!(none, None);
        });
    }

    /// `wait_for` finds an already-read entry and does not move the cursor.
    #[test]
    fn journal_wait_for_searches_all_entries() {
        run_local(|| async {
            let journal = Journal::new("word");
            journal.push("a");
            journal.push("b");
            assert_eq!(journal.next().await, "a");
            assert_eq!(journal.wait_for(|w| *w == "a").await, "a");
            assert_eq!(journal.next().await, "b");
        });
    }

    /// The queue hands out realtime before bulk, FIFO within a priority.
    #[test]
    fn queue_delivers_by_priority_then_fifo() {
        run_local(|| async {
            let host = RecordingHost::new();
            host.enqueue("ch", message("bulk 1"), Priority::BULK);
            host.enqueue("ch", message("bulk 2"), Priority::BULK);
            host.enqueue("ch", message("urgent"), Priority::REALTIME);
            let mut consumer = host.consume("ch", 0).await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(content(&consumer.next().await.unwrap()).to_owned());
            }
            assert_eq!(seen, ["urgent", "bulk 1", "bulk 2"]);
        });
    }

    /// At most `prefetch` deliveries are unacked; an ack frees a slot and is recorded.
    #[test]
    fn queue_respects_prefetch_and_records_acks() {
        run_local(|| async {
            let host = RecordingHost::new();
            for text in ["one", "two"] {
                host.enqueue("ch", message(text), Priority::BULK);
            }
            let mut consumer = host.consume("ch", 1).await.unwrap();
            let first = consumer.next().await.unwrap();
            let blocked = tokio::time::timeout(Duration::from_millis(20), consumer.next()).await;
            assert!(blocked.is_err(), "a second delivery beyond prefetch 1");
            let first_id = first.message.message_id.clone();
            first.receipt.ack().await.unwrap();
            assert_eq!(host.acked_ids("ch"), vec![first_id]);
            let second = consumer.next().await.unwrap();
            assert_eq!(content(&second), "two");
            assert_eq!(host.unacked("ch").len(), 1);
        });
    }

    /// Dropping a consumer requeues its unacked deliveries in their original order.
    #[test]
    fn dropped_consumer_requeues_unacked() {
        run_local(|| async {
            let host = RecordingHost::new();
            for text in ["one", "two", "three"] {
                host.enqueue("ch", message(text), Priority::BULK);
            }
            let mut consumer = host.consume("ch", 2).await.unwrap();
            let one = consumer.next().await.unwrap();
            let two = consumer.next().await.unwrap();
            drop(one);
            drop(consumer);
            let texts: Vec<_> = host
                .queued("ch")
                .into_iter()
                .filter_map(|m| m.content)
                .collect();
            assert_eq!(texts, ["one", "two", "three"]);
            assert!(two.receipt.ack().await.is_err(), "ack after requeue");
            assert!(host.acks().is_empty());
        });
    }

    /// A closed queue ends its consumers; `fail_consume` makes `consume` fail.
    #[test]
    fn closed_queue_and_failing_consume() {
        run_local(|| async {
            let host = RecordingHost::new();
            let mut consumer = host.consume("ch", 1).await.unwrap();
            let closer = host.clone();
            tokio::task::spawn_local(async move { closer.close_queue("ch") });
            assert!(consumer.next().await.is_none());
            host.fail_consume(Some("backend down"));
            assert!(host.consume("ch", 1).await.is_err());
            host.fail_consume(None);
            assert!(host.consume("ch", 1).await.is_ok());
        });
    }

    /// A context built by the host records what a transport reports, and failed tasks.
    #[test]
    fn context_records_reports_and_failures() {
        run_local(|| async {
            let host = RecordingHost::new();
            let (ctx, failures) = host.context("ch");
            ctx.log(LogRecord::info("Hello"));
            ctx.inbound(message("hi")).await.unwrap();
            let _task = ctx.spawn("worker", async { Err(TransportError("boom".into())) });
            assert_eq!(failures.next().await, "worker failed: boom");
            assert_eq!(
                host.logs().next().await,
                ("ch".into(), LogRecord::info("Hello"))
            );
            let (channel, inbound) = host.inbound().next().await;
            assert_eq!(
                (channel.as_str(), inbound.content.as_deref()),
                ("ch", Some("hi"))
            );
        });
    }
}
