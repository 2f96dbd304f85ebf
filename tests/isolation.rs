//! Isolation: a hanging endpoint never delays another channel's callbacks. (A test binary of
//! its own, so the 100 ms bound is measured without a dozen other tests sharing the cores.)
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Api, CallbackServer, Deployment, TelnetClient};
use serde_json::json;

both_backends! {
/// A channel whose mo_url hangs does not delay another channel's callbacks: each of those
/// arrives within 100 ms.
async fn a_hanging_mo_url_does_not_delay_other_channels(backend) {
    let deployment = Deployment::new(backend);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    let mut app = CallbackServer::start().await;
    // Accepts connections and never answers.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}/mo", hang.local_addr().unwrap());
    let (stuck_port, live_port) = (common::free_port(), common::free_port());
    api.create_channel(json!({"type": "telnet", "mo_url": hang_url,
                              "config": {"twisted_endpoint": format!("tcp:{stuck_port}")}}))
        .await;
    api.create_channel(json!({"type": "telnet", "mo_url": format!("{}/mo", app.url),
                              "config": {"twisted_endpoint": format!("tcp:{live_port}")}}))
        .await;
    let mut stuck = TelnetClient::connect_when_ready(stuck_port).await;
    let mut live = TelnetClient::connect_when_ready(live_port).await;
    assert_eq!(app.next().await.body["channel_data"]["session_event"], "new");
    for n in 0..5 {
        stuck.send_line(&format!("stuck {n}")).await;
        live.send_line(&format!("live {n}")).await;
        let sent = Instant::now();
        let callback = app.next().await;
        let took = sent.elapsed();
        assert_eq!(callback.body["content"], format!("live {n}"));
        assert!(took < Duration::from_millis(100), "took {took:?}");
    }
    drop(hang);
}
}
