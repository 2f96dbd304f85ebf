//! Nothing is lost across a crash: after `kill -9` and a restart, every channel runs again
//! with the same id and config, and messages accepted before the kill are still sent.
#[macro_use]
mod common;

use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::json;

both_backends! {
/// A queued message survives `kill -9` of the daemon and is sent after the restart.
async fn channels_and_queued_messages_survive_kill_9(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    let event_url = format!("{}/events", app.url);
    let (port, client_port) = (common::free_port(), common::free_port());
    // One message per 5 s: the second and third sends wait in the queue.
    let body = json!({"type": "telnet", "label": "durable", "rate_limit_count": 1,
                      "rate_limit_window": 5,
                      "config": {"twisted_endpoint": format!("tcp:port={port}:interface=127.0.0.1")}});
    let id = api.create_channel(body).await;
    let (_, before) = api.get(&format!("/channels/{id}")).await;

    let mut client = TelnetClient::connect_from(port, client_port).await;
    let to = client.local_addr.clone();
    let send = |content: &'static str| {
        let (api, id, to, event_url) = (api.clone(), id.clone(), to.clone(), event_url.clone());
        async move {
            let body = json!({"to": to, "content": content, "event_url": event_url});
            let (status, env) = api.post(&format!("/channels/{id}/messages/"), body).await;
            assert_eq!(status, 201, "{env}");
            env["result"]["message_id"].as_str().unwrap().to_owned()
        }
    };
    send("m1").await;
    assert_eq!(client.read_line().await, "m1");
    assert_eq!(app.next().await.body["event_type"], "submitted");
    let m2 = send("m2").await;
    let m3 = send("m3").await;
    for m in [&m2, &m3] {
        let (_, env) = api.get(&format!("/channels/{id}/messages/{m}")).await;
        assert_eq!(env["result"]["events"], json!([]), "still queued");
    }

    daemon.kill9();
    assert!(
        client.closed().await,
        "the old session died with the daemon"
    );
    drop(client); // frees the client port for the reconnect

    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let (_, list) = api.get("/channels/").await;
    assert_eq!(list["result"], json!([id]));
    let (_, mut after) = api.get(&format!("/channels/{id}")).await;
    // The status block holds rates, which move with the clock; the rest must not change.
    let mut before = before;
    for object in [&mut before, &mut after] {
        object["result"].as_object_mut().unwrap().remove("status");
    }
    assert_eq!(after["result"], before["result"], "same id and config");

    // The same client address reconnects; the queued messages go out (m2 may go before the
    // client is back, in which case it is rejected as an unknown address, never lost).
    let mut client = TelnetClient::connect_from(port, client_port).await;
    loop {
        let line = client.read_line().await;
        if line == "m3" {
            break;
        }
        assert!(line == "m2" || line.starts_with("UNKNOWN ADDR"), "{line}");
    }
    let mut outcomes = std::collections::HashMap::new();
    while outcomes.len() < 2 {
        let event = app.next().await.body;
        outcomes.insert(
            event["message_id"].as_str().unwrap().to_owned(),
            event["event_type"].clone(),
        );
    }
    assert!(outcomes.contains_key(&m2));
    assert_eq!(outcomes[&m3], "submitted");
}
}
