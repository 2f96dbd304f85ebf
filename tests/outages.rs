//! Backends going away: the API answers 503 in the envelope (quickly, not a hang and not a
//! 500), and works again by itself once the backend is back.
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{Api, Daemon};
use serde_json::json;

/// Redis stopping makes the API answer 503 within seconds; a new Redis brings it back.
#[actix_rt::test]
async fn redis_outage_is_a_503_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(common::free_port());
    let redis_url = redis.url();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("JUNEBUG_REDIS__URL", redis_url.as_str()),
        ("JUNEBUG_AMQP__URL", &common::amqp_url()),
        ("JUNEBUG_AMQP__QUEUE_PREFIX", &format!("{prefix}.")),
    ];
    let daemon = Daemon::start_with(dir.path(), &[], &env);
    let api = Api::new(&daemon.url);
    let (status, _) = api.get("/channels/").await;
    assert_eq!(status, 200);

    let port = redis.port;
    drop(redis);
    let started = Instant::now();
    let (status, env) = api.get("/channels/").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{env}");
    assert_eq!(env["code"], "Service Unavailable");
    assert_eq!(env["result"]["errors"][0]["type"], "BackendUnavailable");
    let (status, _) = api
        .post(
            "/channels/",
            json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}),
        )
        .await;
    assert_eq!(status, 503);

    let _redis = RedisServer::start(port);
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (status, env) = api.get("/channels/").await;
        if status == 200 {
            assert_eq!(env["result"], json!([]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after Redis came back"
        );
        // Reconnection happens in the background; the API is what a client would poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
