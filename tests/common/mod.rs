//! Test harness: the real daemon binary (or the app in-process), a real HTTP server that
//! records callbacks, a JSON API client and a telnet client, all on 127.0.0.1.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub mod aggregator;
pub mod ircd;
pub mod logs;
pub mod metrics;
pub mod process;
pub mod prosody;
pub mod redis_keys;
pub mod redis_server;
pub mod smsc;

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which backends a daemon under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite under the test's temp dir.
    Embedded,
    /// The machine's Redis and RabbitMQ, under a key and queue prefix of the test's own.
    Production,
}

/// The Redis the production tests use (`TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// The RabbitMQ the production tests use (`TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Runs each test body once per backend: `name::embedded` and `name::production`.
#[macro_export]
macro_rules! both_backends {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            use super::*;
            #[actix_rt::test]
            async fn embedded() {
                let $backend = common::Backend::Embedded;
                $body
            }
            #[actix_rt::test]
            async fn production() {
                let $backend = common::Backend::Production;
                $body
            }
        }
    )*};
}

/// Where a test's daemons keep their data: a temp dir, and in production a Redis key prefix
/// and RabbitMQ queue prefix of its own, removed when the deployment is dropped (so tests
/// run side by side on one Redis and one RabbitMQ, and leave nothing behind).
pub struct Deployment {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    prefix: String,
}

impl Deployment {
    pub fn new(backend: Backend) -> Deployment {
        Deployment {
            backend,
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The environment that points a daemon at this deployment.
    pub fn env(&self) -> Vec<(String, String)> {
        match self.backend {
            Backend::Embedded => vec![],
            Backend::Production => vec![
                ("JUNEBUG_REDIS__URL".into(), redis_url()),
                (
                    "JUNEBUG_REDIS__KEY_PREFIX".into(),
                    format!("{}:", self.prefix),
                ),
                ("JUNEBUG_AMQP__URL".into(), amqp_url()),
                (
                    "JUNEBUG_AMQP__QUEUE_PREFIX".into(),
                    format!("{}.", self.prefix),
                ),
            ],
        }
    }

    /// A configuration for an in-process daemon on this deployment.
    pub fn config(&self) -> junebug::config::Config {
        let mut config = junebug::config::Config {
            interface: "127.0.0.1".into(),
            port: 0,
            data_dir: self.dir.path().join("data"),
            logging_path: self.dir.path().join("logs"),
            ..Default::default()
        };
        if self.backend == Backend::Production {
            config.redis.url = Some(redis_url());
            config.redis.key_prefix = format!("{}:", self.prefix);
            config.amqp.url = Some(amqp_url());
            config.amqp.queue_prefix = format!("{}.", self.prefix);
        }
        config
    }

    /// Starts a daemon on this deployment.
    pub fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    /// Kills `daemon` with SIGKILL (no clean shutdown at all) and starts a new one on this
    /// deployment in its place.
    pub fn crash_and_restart(&self, daemon: &mut Daemon) {
        daemon.child.kill().expect("kill");
        daemon.child.wait().expect("wait");
        *daemon = self.start();
    }

    /// Starts a daemon on this deployment with extra environment.
    pub fn start_with(&self, extra: &[(&str, &str)]) -> Daemon {
        let mut env: Vec<(String, String)> = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Daemon::start_with(self.dir.path(), &[], &env)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if self.backend == Backend::Production {
            let prefix = self.prefix.clone();
            // Drop runs inside the test's runtime: clean up from a thread of its own.
            let _ = std::thread::spawn(move || clean_production(&prefix)).join();
        }
    }
}

/// Deletes every key under `prefix` when dropped, so a failing test leaves nothing behind.
/// It uses the crate's blocking API: `Drop` cannot await, and runs inside the test's runtime.
pub struct KeyCleanup {
    pub url: String,
    pub prefix: String,
}

impl KeyCleanup {
    pub fn delete_keys(&self) -> redis::RedisResult<()> {
        redis_keys::delete_matching(&self.url, &format!("{}*", self.prefix))
    }
}

impl Drop for KeyCleanup {
    fn drop(&mut self) {
        if let Err(e) = self.delete_keys() {
            eprintln!("Could not delete the test keys {}*: {e}", self.prefix);
        }
    }
}

/// Deletes the queues of the channels a production test left, then its Redis keys.
fn clean_production(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut redis) = client.get_connection() else {
        return;
    };
    let channels: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:channels"))
        .query(&mut redis)
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if let Ok(link) = junebug::amqp::AmqpLink::connect(&amqp_url()).await {
            if let Ok(channel) = link.channel().await {
                for id in channels {
                    for lane in ["realtime", "bulk"] {
                        let _ = channel
                            .queue_delete(
                                format!("{prefix}.{id}.outbound.{lane}").into(),
                                lapin::options::QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                }
            }
        }
    });
    // Dropping the guard deletes the keys.
    drop(KeyCleanup {
        url: redis_url(),
        prefix: format!("{prefix}:"),
    });
}

/// A running `junebug` process with its own data directory.
pub struct Daemon {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts the binary on a fresh temp dir.
    pub fn start(dir: &Path) -> Daemon {
        Daemon::start_with(dir, &[], &[])
    }

    /// Starts the binary on `dir` with extra args and environment.
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let data_dir = dir.join("data");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junebug"));
        cmd.current_dir(dir)
            .args(["-i", "127.0.0.1", "-p", "0", "--data-dir"])
            .arg(&data_dir)
            .arg("--logging-path")
            .arg(dir.join("logs"))
            .args(args)
            .env("JUNEBUG_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start junebug");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found_tx, found_rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if entry["msg"] == "Listening" {
                        let _ = found_tx.send(entry["url"].as_str().unwrap_or_default().to_owned());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let url = match found_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => panic!("junebug did not start: {:?}", lines.lock().unwrap()),
        };
        Daemon {
            child,
            url,
            data_dir,
            stderr: lines,
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown at all).
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lets a channel test's setup type (with an [`AppChannel`] in field `chan`) be used as that
/// channel: `s.send(…)`, `s.app`, `s.channel`.
#[allow(unused_macros)] // only the channel tests use it
macro_rules! app_channel_setup {
    ($setup:ty) => {
        impl std::ops::Deref for $setup {
            type Target = common::AppChannel;

            fn deref(&self) -> &common::AppChannel {
                &self.chan
            }
        }

        impl std::ops::DerefMut for $setup {
            fn deref_mut(&mut self) -> &mut common::AppChannel {
                &mut self.chan
            }
        }
    };
}

/// A channel created through the API, and the application server that gets its callbacks:
/// `mo_url` at `/mo`, `status_url` at `/status`, and `event_url` at `/events` for what
/// [`send`](Self::send) sends. Channel tests' setups deref to it.
pub struct AppChannel {
    pub api: Api,
    pub app: CallbackServer,
    pub channel: String,
}

impl AppChannel {
    /// Creates a channel of type `kind` on the daemon at `daemon_url` with `config` (and the
    /// keys of `extra` on top), its `mo_url` and `status_url` on a new application server.
    pub async fn create(daemon_url: &str, kind: &str, config: Value, extra: Value) -> AppChannel {
        let mut config = config;
        for (key, value) in extra.as_object().expect("extra config keys").clone() {
            config[key] = value;
        }
        let api = Api::new(daemon_url);
        let app = CallbackServer::start().await;
        let channel = api
            .create_channel(serde_json::json!({
                "type": kind,
                "config": config,
                "mo_url": format!("{}/mo", app.url),
                "status_url": format!("{}/status", app.url),
            }))
            .await;
        AppChannel { api, app, channel }
    }

    /// Sends `body` through the API (events to the app); the message id.
    pub async fn send(&self, body: Value) -> String {
        let mut body = body;
        body["event_url"] = serde_json::json!(format!("{}/events", self.app.url));
        let (status, env) = self
            .api
            .post(&format!("/channels/{}/messages/", self.channel), body)
            .await;
        assert_eq!(status, 201, "{env}");
        env["result"]["message_id"].as_str().unwrap().to_owned()
    }

    /// The next inbound message posted to mo_url.
    pub async fn mo(&mut self) -> Value {
        self.app.next_on("/mo").await.body
    }

    /// The next event posted to event_url.
    pub async fn event(&mut self) -> Value {
        self.app.next_on("/events").await.body
    }

    /// The next event posted to event_url, which must be `kind` about message `id`.
    pub async fn event_of(&mut self, kind: &str, id: &str) -> Value {
        let event = self.event().await;
        assert_eq!(
            (event["event_type"].as_str(), event["message_id"].as_str()),
            (Some(kind), Some(id)),
            "{event}"
        );
        event
    }

    /// The next status posted to status_url of type `kind` (others are skipped).
    pub async fn status(&mut self, kind: &str) -> Value {
        loop {
            let status = self.app.next_on("/status").await.body;
            if status["type"] == kind {
                return status;
            }
        }
    }
}

/// A JSON API client: every answer is (status, envelope).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        (status, json)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body.map(|b| serde_json::to_vec(&b).unwrap()))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None).await
    }

    /// Creates a channel and returns its id (asserting 201).
    pub async fn create_channel(&self, body: Value) -> String {
        let (status, env) = self.post("/channels/", body).await;
        assert_eq!(status, 201, "{env}");
        env["result"]["id"].as_str().unwrap().to_owned()
    }
}

/// A request the callback server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub signature: Option<String>,
    pub body: Value,
    pub raw: Vec<u8>,
}

/// A real HTTP server on 127.0.0.1 recording every request. It answers 200, or the status
/// set with [`CallbackServer::answer`] (to fail and recover on command).
pub struct CallbackServer {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Received>,
    handle: actix_web::dev::ServerHandle,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl CallbackServer {
    pub async fn start() -> CallbackServer {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let answer = status.clone();
        let server = HttpServer::new(move || {
            let (tx, answer) = (tx.clone(), answer.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let tx = tx.clone();
                // Decided before the request is reported, so a test that changes the answer
                // after seeing a request changes the next one, never that one.
                let code = answer.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    let _ = tx.send(Received {
                        method: req.method().to_string(),
                        path: req.uri().to_string(),
                        authorization: req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        signature: req
                            .headers()
                            .get("x-junebug-signature")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        raw: body.to_vec(),
                    });
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                        .finish()
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr: SocketAddr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        CallbackServer {
            url: format!("http://{addr}"),
            rx,
            handle,
            status,
        }
    }

    /// Answers every following request with `status`.
    pub fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next request, or a panic after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no callback arrived in time")
            .expect("callback server gone")
    }

    /// The next request whose path starts with `prefix` (others are skipped).
    pub async fn next_on(&mut self, prefix: &str) -> Received {
        loop {
            let r = self.next().await;
            if r.path.starts_with(prefix) {
                return r;
            }
        }
    }

    /// Nothing else arrives within `window`.
    pub async fn assert_quiet(&mut self, window: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(window, self.rx.recv()).await {
            panic!("unexpected callback: {r:?}");
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

/// A telnet client on a real socket.
pub struct TelnetClient {
    reader: AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub local_addr: String,
}

impl TelnetClient {
    pub async fn connect(port: u16) -> TelnetClient {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let local_addr = stream.local_addr().unwrap().to_string();
        let (r, w) = stream.into_split();
        TelnetClient {
            reader: AsyncBufReader::new(r),
            writer: w,
            local_addr,
        }
    }

    /// Connects, retrying while the channel is still starting to listen.
    pub async fn connect_when_ready(port: u16) -> TelnetClient {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(stream) => {
                    let local_addr = stream.local_addr().unwrap().to_string();
                    let (r, w) = stream.into_split();
                    return TelnetClient {
                        reader: AsyncBufReader::new(r),
                        writer: w,
                        local_addr,
                    };
                }
                Err(e) if tokio::time::Instant::now() > deadline => panic!("cannot connect: {e}"),
                // The listener is not up yet: poll the port, as a real client would retry.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Connects from local port `local_port` (so a reconnect has the same address),
    /// retrying while the channel is still starting to listen.
    pub async fn connect_from(port: u16, local_port: u16) -> TelnetClient {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket.bind(([127, 0, 0, 1], local_port).into()).unwrap();
            match socket.connect(([127, 0, 0, 1], port).into()).await {
                Ok(stream) => {
                    let local_addr = stream.local_addr().unwrap().to_string();
                    let (r, w) = stream.into_split();
                    return TelnetClient {
                        reader: AsyncBufReader::new(r),
                        writer: w,
                        local_addr,
                    };
                }
                Err(e) if tokio::time::Instant::now() > deadline => panic!("cannot connect: {e}"),
                // The listener is not up yet: poll the port, as a real client would retry.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    pub async fn send_line(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, without its line ending.
    pub async fn read_line(&mut self) -> String {
        self.read_line_within(WAIT).await
    }

    /// The next line, waiting at most `wait`.
    pub async fn read_line_within(&mut self, wait: Duration) -> String {
        let mut line = String::new();
        tokio::time::timeout(wait, self.reader.read_line(&mut line))
            .await
            .expect("no line in time")
            .unwrap();
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// Whether the server closed the connection (EOF) in time.
    pub async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await,
            Ok(Ok(0))
        )
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private CA and a certificate it signed for `name` (a DNS name), made with the openssl
/// CLI in `dir`: (CA file, key, certificate).
pub fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = |file: &str| dir.join(file);
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(path("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        &cert,
    ]);
    (path("ca.pem"), path(&key), path(&cert))
}
