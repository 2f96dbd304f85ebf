//! A scripted provider for the HTTP channel types' tests: a real HTTP server on 127.0.0.1
//! that records every request and answers from the test's script, in order, then with its
//! default responder (what the provider's happy path answers, as the test describes it; the
//! `twitter` tests plug in a fake X API).
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::logs::{eventually, message_logs, text};
use super::{Api, AppChannel, Backend, CallbackServer, Daemon, Deployment, WAIT};

/// A request the aggregator received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `Authorization` header.
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The body's form fields, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The decoded value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.uri.split_once('?')?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// An answer the aggregator gives.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// An answer with a JSON body.
pub fn answer(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> Answer {
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Answers a request when the script is empty; `n` counts requests from 1.
pub type Responder = Arc<dyn Fn(&Request, u32) -> Answer + Send + Sync>;

/// A scripted provider; see the module docs.
pub struct Aggregator {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Request>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Aggregator {
    /// One that answers 200 `{"data": {"id": "prov-N"}}` by default.
    pub async fn start() -> Aggregator {
        Self::answering(|n| answer(200, vec![], json!({"data": {"id": format!("prov-{n}")}}))).await
    }

    /// One that answers `default(N)` to the Nth request when its script is empty.
    pub async fn answering(default: impl Fn(u32) -> Answer + Send + Sync + 'static) -> Aggregator {
        Self::start_with(Arc::new(move |_, n| default(n))).await
    }

    /// One that answers with `responder` when its script is empty.
    pub async fn start_with(responder: Responder) -> Aggregator {
        let (tx, rx) = mpsc::unbounded_channel();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let counter = Arc::new(AtomicU32::new(0));
        let answers = script.clone();
        let server = HttpServer::new(move || {
            let (tx, answers, counter) = (tx.clone(), answers.clone(), counter.clone());
            let responder = responder.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let mut request = Request {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                        .collect(),
                    body: body.to_vec(),
                    at: Instant::now(),
                    status: 0,
                };
                let scripted = answers.lock().unwrap().pop_front();
                let answer = scripted.unwrap_or_else(|| responder(&request, n));
                request.status = answer.status;
                let _ = tx.send(request);
                async move {
                    let mut response = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(answer.status).unwrap(),
                    );
                    for (name, value) in answer.headers {
                        response.insert_header((name, value));
                    }
                    response.content_type("application/json").body(answer.body)
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
        Aggregator {
            url: format!("http://{addr}"),
            rx,
            script,
            handle,
        }
    }

    /// The next answers, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    /// The next request, or a panic after [`WAIT`].
    pub async fn next(&mut self) -> Request {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no request reached the aggregator in time")
            .expect("aggregator gone")
    }

    /// The next request that `matches` (others are skipped), or a panic after [`WAIT`].
    pub async fn next_matching(&mut self, matches: impl Fn(&Request) -> bool) -> Request {
        loop {
            let request = self.next().await;
            if matches(&request) {
                return request;
            }
        }
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A daemon with one channel of an HTTP provider's type on a scripted [`Aggregator`], and
/// the application's servers; it derefs to its [`AppChannel`].
pub struct ProviderChannel {
    _deployment: Deployment,
    _daemon: Daemon,
    pub chan: AppChannel,
    /// The channel's status_url, apart so that waiting for events skips no status.
    pub statuses: CallbackServer,
    pub aggregator: Aggregator,
}

impl std::ops::Deref for ProviderChannel {
    type Target = AppChannel;

    fn deref(&self) -> &AppChannel {
        &self.chan
    }
}

impl std::ops::DerefMut for ProviderChannel {
    fn deref_mut(&mut self) -> &mut AppChannel {
        &mut self.chan
    }
}

impl ProviderChannel {
    /// Sends `message` while the provider first answers `throttled` (a 429 asking for a
    /// one-second pause): the message is tried again no sooner than that, then `submitted`.
    pub async fn assert_throttling_pauses_the_channel(
        &mut self,
        throttled: Answer,
        message: Value,
    ) {
        self.aggregator.script(vec![throttled]);
        let id = self.send(message).await;
        let first = self.aggregator.next().await;
        let second = self.aggregator.next().await;
        let waited = second.at - first.at;
        assert!(
            waited >= std::time::Duration::from_millis(900),
            "resent after {waited:?}"
        );
        self.event_of("submitted", &id).await;
    }

    /// Waits until the channel log holds message `id`'s exchange with the provider (the
    /// request, and the answer with `status`), and checks that `secret` is nowhere in it.
    pub async fn assert_exchange_logged_without(&self, id: &str, status: u16, secret: &str) {
        let (api, channel) = (&self.api, &self.channel);
        let entries = eventually("the provider exchange is logged", || async {
            let entries = message_logs(api, channel, id).await;
            let logged = entries.iter().any(|e| e["trace"]["method"] == "POST")
                && entries.iter().any(|e| e["trace"]["status"] == status);
            logged.then_some(entries)
        })
        .await;
        let all = Value::Array(entries).to_string();
        assert!(
            !all.contains(secret),
            "a secret leaked into the channel log: {all}"
        );
    }

    /// A channel of type `kind` with `config` (made for the aggregator's URL).
    pub async fn start(
        backend: Backend,
        kind: &str,
        aggregator: Aggregator,
        config: impl FnOnce(&str) -> Value,
    ) -> ProviderChannel {
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let api = Api::new(&daemon.url);
        let app = CallbackServer::start().await;
        let statuses = CallbackServer::start().await;
        let channel = api
            .create_channel(json!({
                "type": kind,
                "config": config(&aggregator.url),
                "mo_url": format!("{}/mo", app.url),
                "status_url": format!("{}/status", statuses.url),
            }))
            .await;
        ProviderChannel {
            _deployment: deployment,
            _daemon: daemon,
            chan: AppChannel { api, app, channel },
            statuses,
            aggregator,
        }
    }

    /// The URL of the channel's webhook at `path`.
    pub fn webhook_url(&self, path: &str) -> String {
        format!("{}/channels/{}/inbound/{path}", self.api.base, self.channel)
    }

    /// A provider's webhook request: POST `body` of `content_type` (and `headers`) to
    /// `path` under the channel's inbound prefix; the answer's status and body.
    pub async fn webhook_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(self.webhook_url(path))
            .header("content-type", content_type)
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// [`webhook_with`](Self::webhook_with) without extra headers.
    pub async fn webhook(&self, path: &str, content_type: &str, body: &str) -> (u16, String) {
        self.webhook_with(path, &[], content_type, body).await
    }

    /// A form POST of `fields` to `path`.
    pub async fn form_webhook(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.webhook(path, "application/x-www-form-urlencoded", &body)
            .await
    }

    /// The next status of `component` posted to status_url of type `kind` (others skipped).
    pub async fn status_of(&mut self, component: &str, kind: &str) -> Value {
        loop {
            let status = self.statuses.next().await.body;
            assert_eq!(status["component"], component, "{status}");
            if status["type"] == kind {
                return status;
            }
        }
    }

    /// Waits until the channel log holds `count` warnings that contain `words`.
    pub async fn warnings_logged(&self, words: &str, count: usize) {
        let (api, channel) = (&self.api, &self.channel);
        eventually(&format!("{count} warnings say {words:?}"), || async {
            let (status, env) = api.get(&format!("/channels/{channel}/logs?n=100")).await;
            assert_eq!(status, 200, "{env}");
            let found = env["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["level"] == 30 && text(e).contains(words))
                .count();
            (found == count).then_some(())
        })
        .await;
    }
}
