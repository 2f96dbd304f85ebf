//! The AMQP integration for applications (API.md 11): inbound messages and events published
//! to exchange `vumi` as `Q.inbound` / `Q.event` in vumi format, and messages published to
//! `Q.outbound` sent through the channel.
#[macro_use]
mod common;

use common::{Api, Backend, Deployment, TelnetClient, WAIT};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};
use serde_json::{json, Value};

/// Declares `name` bound to exchange `vumi` with `routing_key`, and consumes it.
async fn bind_queue(channel: &Channel, name: &str, routing_key: &str) -> Consumer {
    channel
        .exchange_declare(
            "vumi".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            name.into(),
            "vumi".into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_consume(
            name.into(),
            format!("test-{name}").as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
}

async fn next_json(consumer: &mut Consumer) -> Value {
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("nothing published in time")
        .expect("consumer ended")
        .expect("delivery");
    serde_json::from_slice(&delivery.data).expect("JSON")
}

/// Inbound messages and events go to `Q.inbound` and `Q.event`; `Q.outbound` is sent.
#[actix_rt::test]
async fn applications_talk_to_channels_over_amqp() {
    let deployment = Deployment::new(Backend::Production);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let link = junebug::amqp::AmqpLink::connect(&common::amqp_url())
        .await
        .unwrap();
    let amqp = link.channel().await.unwrap();
    let q = format!("app-{}", uuid::Uuid::new_v4().simple());
    let mut inbound =
        bind_queue(&amqp, &format!("{q}.inbound.test"), &format!("{q}.inbound")).await;
    let mut events = bind_queue(&amqp, &format!("{q}.event.test"), &format!("{q}.event")).await;
    // Declared here too, so what the test publishes waits even if Junebug is still starting.
    drop(bind_queue(&amqp, &format!("{q}.outbound"), &format!("{q}.outbound")).await);

    let port = common::free_port();
    let id = api
        .create_channel(json!({"type": "telnet", "amqp_queue": q,
                               "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut client = TelnetClient::connect_when_ready(port).await;
    let new = next_json(&mut inbound).await;
    assert_eq!(new["message_type"], "user_message");
    assert_eq!(new["message_version"], "20110921");
    assert_eq!(new["session_event"], "new");
    assert_eq!(new["transport_name"], json!(id));
    assert_eq!(new["from_addr"], json!(client.local_addr));
    assert_eq!(new["content"], json!(null));

    let outbound = json!({"to_addr": client.local_addr, "content": "from amqp",
                          "message_id": "0123456789abcdef0123456789abcdef"});
    amqp.basic_publish(
        "vumi".into(),
        format!("{q}.outbound").as_str().into(),
        BasicPublishOptions::default(),
        &serde_json::to_vec(&outbound).unwrap(),
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(client.read_line().await, "from amqp");
    let ack = next_json(&mut events).await;
    assert_eq!(ack["message_type"], "event");
    assert_eq!(ack["event_type"], "ack");
    assert_eq!(ack["user_message_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(ack["transport_name"], json!(id));

    // A send over HTTP reports its events over AMQP too.
    let (status, env) = api
        .post(
            &format!("/channels/{id}/messages/"),
            json!({"to": "nobody", "content": "x"}),
        )
        .await;
    assert_eq!(status, 201);
    let nack = next_json(&mut events).await;
    assert_eq!(
        (&nack["event_type"], &nack["nack_reason"]),
        (&json!("nack"), &json!("Unknown address."))
    );
    assert_eq!(nack["user_message_id"], env["result"]["message_id"]);

    for name in [
        format!("{q}.inbound.test"),
        format!("{q}.event.test"),
        format!("{q}.outbound"),
    ] {
        let _ = amqp
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// Without RabbitMQ configured, a channel with `amqp_queue` is refused, not half-working.
#[actix_rt::test]
async fn embedded_backend_refuses_amqp_queue() {
    let deployment = Deployment::new(Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (status, env) = api
        .post(
            "/channels/",
            json!({"type": "telnet", "amqp_queue": "q",
                                   "config": {"twisted_endpoint": "tcp:0"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(env["result"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("RabbitMQ"));
    let (_, list) = api.get("/channels/").await;
    assert_eq!(list["result"], json!([]));
}
