//! Channels fail alone: one channel's transport panics, another channel keeps sending and
//! receiving meanwhile, and the failed one is restarted with backoff and comes back without
//! losing the message it was sending.
#[macro_use]
mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Api, CallbackServer, Deployment, TelnetClient};
use junebug_actors::message::{new_message_id, timestamp_now, Message};
use junebug_actors::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use junebug_actors::TransportRegistry;
use serde_json::{json, Value};
use std::cell::RefCell;

/// The loopback's one-shot bomb: armed until the first "panic" message, which it reports.
#[derive(Default)]
struct Bomb {
    armed: AtomicBool,
    exploded: tokio::sync::Notify,
}

/// A loopback channel type for this test: it acks every message and echoes it back as an
/// inbound message, except that the first message saying "panic" makes it panic.
struct Loopback {
    bomb: Arc<Bomb>,
}

struct LoopbackTransport {
    bomb: Arc<Bomb>,
    ctx: RefCell<Option<TransportContext>>,
}

impl ChannelType for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }
    fn description(&self) -> &'static str {
        "echoes messages back (test only)"
    }
    fn build(&self, _: &str, _: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        Ok(Rc::new(LoopbackTransport {
            bomb: self.bomb.clone(),
            ctx: RefCell::new(None),
        }))
    }
}

#[async_trait(?Send)]
impl Transport for LoopbackTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        *self.ctx.borrow_mut() = Some(ctx);
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        if message.content.as_deref() == Some("panic")
            && self.bomb.armed.swap(false, Ordering::SeqCst)
        {
            self.bomb.exploded.notify_one();
            panic!("the loopback transport blew up");
        }
        let ctx = self.ctx.borrow().clone().expect("started");
        ctx.inbound(Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: message.from_addr.clone(),
            from_addr: message.to_addr.clone(),
            group: None,
            in_reply_to: None,
            session_event: None,
            content: message.content.map(|c| format!("echo: {c}")),
            transport_name: ctx.channel_id().to_owned(),
            transport_type: "loopback".into(),
            transport_metadata: Default::default(),
            helper_metadata: Default::default(),
            expires_at: None,
        })
        .await
        .map_err(|e| SendError::Retry {
            reason: e.to_string(),
            after: Duration::from_secs(1),
        })?;
        Ok(Sent::default())
    }

    async fn stop(&self) {
        self.ctx.borrow_mut().take();
    }
}

both_backends! {
/// A panicking transport is restarted alone while the other channel keeps working.
async fn panicking_channel_restarts_alone_while_others_keep_working(backend) {
    let deployment = Deployment::new(backend);
    let mut config = deployment.config();
    // Long enough that the other channel's whole exchange fits inside the outage.
    config.supervisor.restart_backoff_initial = 2.0;
    let bomb = Arc::new(Bomb::default());
    bomb.armed.store(true, Ordering::SeqCst);
    let mut registry = TransportRegistry::builtin();
    registry.register(Loopback { bomb: bomb.clone() });
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let running = junebug::server::start(&config, registry, logger)
        .await
        .unwrap();
    let api = Api::new(&format!("http://{}", running.addrs[0]));
    let handle = running.handle();
    actix_rt::spawn(running.serve());

    let mut app = CallbackServer::start().await;
    let faulty = api
        .create_channel(
            json!({"type": "loopback", "config": {}, "mo_url": format!("{}/faulty", app.url)}),
        )
        .await;
    let port = common::free_port();
    let healthy = api
        .create_channel(
            json!({"type": "telnet", "mo_url": format!("{}/healthy", app.url),
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let mut telnet = TelnetClient::connect_when_ready(port).await;
    assert_eq!(app.next().await.path, "/healthy");

    // The faulty channel works, then panics on "panic".
    let send = |id: String, body: Value| {
        let api = api.clone();
        async move {
            let (status, env) = api.post(&format!("/channels/{id}/messages/"), body).await;
            assert_eq!(status, 201, "{env}");
            env["result"]["message_id"].as_str().unwrap().to_owned()
        }
    };
    send(faulty.clone(), json!({"to": "x", "content": "one"})).await;
    assert_eq!(app.next().await.body["content"], "echo: one");
    let events = format!("{}/events", app.url);
    let poisoned = send(
        faulty.clone(),
        json!({"to": "x", "content": "panic", "event_url": events}),
    )
    .await;
    tokio::time::timeout(common::WAIT, bomb.exploded.notified())
        .await
        .expect("the transport panicked");

    // Meanwhile the telnet channel sends and receives.
    send(
        healthy.clone(),
        json!({"to": telnet.local_addr, "content": "still here"}),
    )
    .await;
    assert_eq!(telnet.read_line().await, "still here");
    telnet.send_line("me too").await;
    let inbound = app.next().await;
    assert_eq!(
        (inbound.path.as_str(), &inbound.body["content"]),
        ("/healthy", &json!("me too"))
    );

    // The faulty channel comes back by itself and sends the message it was holding. "one"
    // may come again too: if the panic cut its acknowledgement short, it is redelivered
    // (at-least-once), never lost.
    let (mut echoed, mut submitted) = (false, false);
    while !(echoed && submitted) {
        let callback = app.next().await;
        match (callback.path.as_str(), &callback.body) {
            (_, body) if body["content"] == json!("echo: one") => {}
            ("/faulty", body) => {
                assert_eq!(body["content"], "echo: panic");
                echoed = true;
            }
            ("/events", body) => {
                assert_eq!((&body["event_type"], &body["message_id"]), (&json!("submitted"), &json!(poisoned)));
                submitted = true;
            }
            (path, body) => panic!("unexpected callback to {path}: {body}"),
        }
    }
    send(faulty.clone(), json!({"to": "x", "content": "two"})).await;
    loop {
        let content = app.next().await.body["content"].clone();
        if content != json!("echo: one") {
            assert_eq!(content, "echo: two");
            break;
        }
    }

    let (_, env) = api.get(&format!("/channels/{faulty}/logs")).await;
    let messages: Vec<&str> = env["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Restarting the channel") && m.contains("panicked")),
        "{messages:?}"
    );
    handle.stop(false).await;
}
}
