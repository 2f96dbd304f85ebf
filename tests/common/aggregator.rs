//! A scripted HTTP provider on 127.0.0.1 for the HTTP channel types' tests: it records every
//! request and answers from the test's script, in order, then with its default responder
//! (the `http` tests' aggregator answers 200 with a provider id; the `twitter` tests plug in
//! a fake X API).
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::WAIT;

/// A request the aggregator received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
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

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
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
    /// Answers 200 `{"data": {"id": "prov-N"}}` once the script is done.
    pub async fn start() -> Aggregator {
        Aggregator::start_with(Arc::new(|_, n| {
            answer(200, vec![], json!({"data": {"id": format!("prov-{n}")}}))
        }))
        .await
    }

    /// Answers with `responder` once the script is done.
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
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                let mut request = Request {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
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
