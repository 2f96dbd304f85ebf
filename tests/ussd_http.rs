//! The synchronous USSD-over-HTTP channel types, `africastalking` and `dmark`: the test plays
//! the provider (reqwest against the channel's webhook URL, waiting for the answer) and the
//! application (a callback server for `mo_url` and `event_url`; replies through the API with
//! `reply_to`).
#[macro_use]
mod common;

use common::logs::{self, eventually, message_logs};
use common::{Api, Backend, CallbackServer, Daemon, Deployment};
use serde_json::{json, Value};

/// A daemon with one USSD channel, the application's servers and a provider's HTTP client.
struct Setup {
    deployment: Deployment,
    daemon: Daemon,
    api: Api,
    /// `mo_url`.
    app: CallbackServer,
    /// `event_url` of the replies.
    events: CallbackServer,
    channel: String,
    http: reqwest::Client,
}

/// What the webhook answered: status, content type, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }
}

impl Setup {
    async fn new(backend: Backend, kind: &str, config: Value) -> Setup {
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let api = Api::new(&daemon.url);
        let app = CallbackServer::start().await;
        let events = CallbackServer::start().await;
        let channel = api
            .create_channel(json!({
                "type": kind,
                "config": config,
                "mo_url": format!("{}/mo", app.url),
            }))
            .await;
        Setup {
            deployment,
            daemon,
            api,
            app,
            events,
            channel,
            http: reqwest::Client::new(),
        }
    }

    fn webhook_url(&self, path: &str) -> String {
        format!(
            "{}/channels/{}/inbound/{path}",
            self.daemon.url, self.channel
        )
    }

    /// Africa's Talking POSTs a form; the request runs on its own, its answer is awaited
    /// later (it waits for the application's reply).
    fn at_step(&self, path: &str, fields: &[(&str, &str)]) -> tokio::task::JoinHandle<Answer> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .post(self.webhook_url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        actix_rt::spawn(answer(request))
    }

    /// Sends an Africa's Talking step until the channel takes it, as the provider retries
    /// a 503 (the channel is starting): the step's request, still waiting for its answer,
    /// and the inbound message it became.
    async fn at_step_taken(
        &mut self,
        fields: &[(&str, &str)],
    ) -> (tokio::task::JoinHandle<Answer>, Value) {
        loop {
            let mut step = self.at_step("ussd", fields);
            tokio::select! {
                mo = self.app.next_on("/mo") => return (step, mo.body),
                answer = &mut step => {
                    let answer = answer.unwrap();
                    assert_eq!(answer.status, 503, "{answer:?}");
                    // The provider's pause before it tries again.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// DMARK GETs with a query string.
    fn dmark_step(&self, fields: &[(&str, &str)]) -> tokio::task::JoinHandle<Answer> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .get(format!("{}?{query}", self.webhook_url("ussd")));
        actix_rt::spawn(answer(request))
    }

    /// The next inbound message at `mo_url`.
    async fn mo(&mut self) -> Value {
        self.app.next_on("/mo").await.body
    }

    /// Replies to `inbound` through the API; the reply's id.
    async fn reply(&self, inbound: &Value, content: &str, more: bool) -> String {
        let (status, env) = self
            .api
            .post(
                &format!("/channels/{}/messages/", self.channel),
                json!({"reply_to": inbound["message_id"], "content": content,
                       "channel_data": {"continue_session": more},
                       "event_url": format!("{}/events", self.events.url)}),
            )
            .await;
        assert_eq!(status, 201, "{env}");
        env["result"]["message_id"].as_str().unwrap().to_owned()
    }

    /// The next event about a reply: (message id, event type, details).
    async fn event(&mut self) -> (String, String, Value) {
        let event = self.events.next_on("/events").await.body;
        (
            event["message_id"].as_str().unwrap().to_owned(),
            event["event_type"].as_str().unwrap().to_owned(),
            event["event_details"].clone(),
        )
    }

    /// The channel log's entries whose text contains `words`, once there is one.
    async fn logged(&self, words: &str) -> Value {
        eventually(&format!("the channel log says {words:?}"), || async {
            let (status, env) = self
                .api
                .get(&format!("/channels/{}/logs?n=100", self.channel))
                .await;
            assert_eq!(status, 200, "{env}");
            env["result"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["message"].as_str().unwrap_or_default().contains(words))
                .cloned()
        })
        .await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the webhook answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

/// An Africa's Talking step of session `ATUid_1` whose input history is `text`.
fn at_fields(text: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sessionId", "ATUid_1".into()),
        ("serviceCode", "*384*1234#".into()),
        ("phoneNumber", "+254711000111".into()),
        ("networkCode", "63902".into()),
        ("text", text.into()),
    ]
}

fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A DMARK step of transaction `tx-1` carrying `input`.
fn dmark_fields(input: &str, continuing: bool) -> Vec<(&'static str, String)> {
    vec![
        ("transactionId", "tx-1".into()),
        ("msisdn", "256700000001".into()),
        ("ussdServiceCode", "*185*4#".into()),
        ("transactionTime", "1389971940".into()),
        ("ussdRequestString", input.into()),
        ("creationTime", "1389971939".into()),
        ("response", continuing.to_string()),
    ]
}

both_backends! {
/// Africa's Talking: dial, choose, enter a PIN. Each step reaches the application (`new`,
/// then `resume` with the latest input), and each reply is the webhook's answer: `CON …`
/// while the session continues, `END …` once the reply closes it; each reply is `submitted`.
async fn an_africastalking_session_of_three_steps(backend) {
    let mut s = Setup::new(backend, "africastalking", json!({})).await;

    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let dial = s.mo().await;
    assert_eq!(
        (&dial["from"], &dial["to"], &dial["content"], &dial["channel_data"]["session_event"]),
        (&json!("+254711000111"), &json!("*384*1234#"), &Value::Null, &json!("new"))
    );
    let menu = s.reply(&dial, "1. Balance\n2. Quit", true).await;
    let answer = step.await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "CON 1. Balance\n2. Quit"));
    assert!(answer.content_type.starts_with("text/plain"), "{answer:?}");
    assert_eq!(s.event().await, (menu, "submitted".into(), json!({})));
    // The step's story is in the channel log under the inbound message's id.
    let dial_id = dial["message_id"].as_str().unwrap().to_owned();
    eventually("the step and its answer are logged", || async {
        let entries = message_logs(&s.api, &s.channel, &dial_id).await;
        let said = |words: &str| entries.iter().any(|e| logs::text(e).starts_with(words));
        (said("Received a USSD step of session ATUid_1 (new)")
            && said("Answered the USSD step of session ATUid_1 with the reply: CON 1. Balance"))
        .then_some(())
    })
    .await;

    let step = s.at_step("ussd", &pairs(&at_fields("1")));
    let choice = s.mo().await;
    assert_eq!(choice["channel_data"]["session_event"], "resume");
    assert_eq!(choice["content"], "1");
    s.reply(&choice, "Enter your PIN", true).await;
    assert_eq!(step.await.unwrap().body, "CON Enter your PIN");

    let step = s.at_step("ussd", &pairs(&at_fields("1*4321")));
    let pin = s.mo().await;
    assert_eq!(pin["channel_data"]["session_event"], "resume");
    assert_eq!(pin["content"], "4321");
    let last = s.reply(&pin, "Your balance is 0", false).await;
    let answer = step.await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "END Your balance is 0"));
    // (The first `submitted` was taken above; the second and third follow in any order.)
    let mut submitted = vec![s.event().await, s.event().await];
    submitted.retain(|(id, kind, _)| *id == last && kind == "submitted");
    assert_eq!(submitted.len(), 1, "the closing reply is submitted");

    // The session ended with the reply: the same session id starts a new one.
    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let again = s.mo().await;
    assert_eq!(again["channel_data"]["session_event"], "new");
    s.reply(&again, "Welcome back", false).await;
    assert_eq!(step.await.unwrap().body, "END Welcome back");
}

/// A session survives a crash of the daemon between two steps: the next step resumes it
/// (the session is kept in the Store), and its end is remembered too.
async fn a_session_survives_a_daemon_crash(backend) {
    let mut s = Setup::new(backend, "africastalking", json!({})).await;
    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let dial = s.mo().await;
    assert_eq!(dial["channel_data"]["session_event"], "new");
    s.reply(&dial, "1. Balance", true).await;
    assert_eq!(step.await.unwrap().body, "CON 1. Balance");

    s.deployment.crash_and_restart(&mut s.daemon);
    s.api = Api::new(&s.daemon.url);
    let (step, choice) = s.at_step_taken(&pairs(&at_fields("1"))).await;
    assert_eq!(choice["channel_data"]["session_event"], "resume", "{choice}");
    s.reply(&choice, "Your balance is 0", false).await;
    assert_eq!(step.await.unwrap().body, "END Your balance is 0");

    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let again = s.mo().await;
    assert_eq!(again["channel_data"]["session_event"], "new", "it ended with the reply");
    s.reply(&again, "Bye", false).await;
    assert_eq!(step.await.unwrap().body, "END Bye");
}

/// DMARK: the same three steps over GET, answered with vumi's JSON (`action` `request`,
/// then `end`), the transaction's fields kept for the application.
async fn a_dmark_session_of_three_steps(backend) {
    let mut s = Setup::new(backend, "dmark", json!({})).await;

    let step = s.dmark_step(&pairs(&dmark_fields("*185*4#", false)));
    let dial = s.mo().await;
    assert_eq!(
        (&dial["from"], &dial["to"], &dial["content"], &dial["channel_data"]["session_event"]),
        (&json!("256700000001"), &json!("*185*4#"), &json!("*185*4#"), &json!("new"))
    );
    s.reply(&dial, "1. Balance\n2. Quit", true).await;
    let answer = step.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.json(), json!({"responseString": "1. Balance\n2. Quit", "action": "request"}));

    let step = s.dmark_step(&pairs(&dmark_fields("1", true)));
    let choice = s.mo().await;
    assert_eq!((&choice["content"], &choice["channel_data"]["session_event"]), (&json!("1"), &json!("resume")));
    s.reply(&choice, "Enter your PIN", true).await;
    assert_eq!(step.await.unwrap().json(), json!({"responseString": "Enter your PIN", "action": "request"}));

    let step = s.dmark_step(&pairs(&dmark_fields("4321", true)));
    let pin = s.mo().await;
    assert_eq!((&pin["content"], &pin["channel_data"]["session_event"]), (&json!("4321"), &json!("resume")));
    s.reply(&pin, "Your balance is 0", false).await;
    assert_eq!(step.await.unwrap().json(), json!({"responseString": "Your balance is 0", "action": "end"}));
    for _ in 0..3 {
        assert_eq!(s.event().await.1, "submitted");
    }
}
}

/// The application does not answer within `reply_timeout`: the provider gets the fallback
/// text as a final answer, the application an inbound `close`; its reply, coming late, is
/// `rejected` with a clear reason; the next step of that session id starts a new session.
#[actix_rt::test]
async fn no_reply_in_time_answers_the_fallback_and_a_late_reply_is_rejected() {
    let config = json!({"reply_timeout": 1, "fallback_text": "Please try again later"});
    let mut s = Setup::new(Backend::Embedded, "africastalking", config).await;
    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let dial = s.mo().await;
    let answer = step.await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "END Please try again later")
    );
    let close = s.mo().await;
    assert_eq!(
        (
            &close["content"],
            &close["channel_data"]["session_event"],
            &close["from"]
        ),
        (&Value::Null, &json!("close"), &json!("+254711000111"))
    );
    s.logged("No reply within").await;

    let late = s.reply(&dial, "Too late", true).await;
    let (id, kind, details) = s.event().await;
    assert_eq!((id, kind.as_str()), (late, "rejected"));
    let reason = details["reason"].as_str().unwrap();
    assert!(
        reason.contains("No USSD session step is waiting"),
        "{reason}"
    );

    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let again = s.mo().await;
    assert_eq!(again["channel_data"]["session_event"], "new");
    s.reply(&again, "Hello", true).await;
    assert_eq!(step.await.unwrap().body, "CON Hello");
}

/// Bad payloads get each provider's error answer (400) and a warning in the channel log;
/// an unknown channel is a 404, a path the type does not serve too.
#[actix_rt::test]
async fn bad_requests_unknown_channels_and_paths() {
    let s = Setup::new(Backend::Embedded, "africastalking", json!({})).await;
    let answer = s
        .at_step("ussd", &[("text", "1"), ("phoneNumber", "+2547")])
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body.contains("sessionId"), "{answer:?}");
    let entry = s
        .logged("Refused a webhook request to 'ussd': a bad africastalking request")
        .await;
    assert_eq!(entry["level"], 30, "a warning: {entry}");
    assert_eq!(s.at_step("sms", &[]).await.unwrap().status, 404);

    let dmark = Setup::new(Backend::Embedded, "dmark", json!({})).await;
    let answer = dmark
        .dmark_step(&[("transactionId", "t"), ("msisdn", "1"), ("extra", "x")])
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"missing_parameter": ["creationTime", "response", "transactionTime",
                                     "ussdRequestString", "ussdServiceCode"],
               "unexpected_parameter": ["extra"]})
    );
    dmark.logged("a bad dmark request").await;

    let unknown = format!(
        "{}/channels/{}/inbound/ussd",
        s.daemon.url,
        uuid::Uuid::new_v4()
    );
    let response = s
        .http
        .post(unknown)
        .body("sessionId=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// A bad config is refused at creation (400), naming the key.
#[actix_rt::test]
async fn bad_configs_are_refused_naming_the_key() {
    let deployment = Deployment::new(Backend::Embedded);
    let daemon = deployment.start();
    let api = Api::new(&daemon.url);
    for (kind, config, key) in [
        (
            "africastalking",
            json!({"reply_timeout": 0}),
            "reply_timeout",
        ),
        (
            "africastalking",
            json!({"web_username": "u"}),
            "web_password",
        ),
        (
            "dmark",
            json!({"validation_mode": "lax"}),
            "validation_mode",
        ),
        ("dmark", json!({"fallback_text": 1}), "fallback_text"),
    ] {
        let (status, env) = api
            .post(
                "/channels/",
                json!({"type": kind, "config": config, "mo_url": "http://127.0.0.1:1/"}),
            )
            .await;
        assert_eq!(status, 400, "{env}");
        assert!(env.to_string().contains(key), "{key}: {env}");
    }
}

/// With `web_username`/`web_password` the provider must send those Basic credentials
/// (Africa's Talking: in the callback URL); without them, 401 and nothing reaches the app.
#[actix_rt::test]
async fn basic_credentials_when_configured() {
    let config = json!({"web_username": "at", "web_password": "s3cret"});
    let mut s = Setup::new(Backend::Embedded, "africastalking", config).await;
    assert_eq!(
        s.at_step("ussd", &pairs(&at_fields("")))
            .await
            .unwrap()
            .status,
        401
    );
    s.logged("no africastalking credentials").await;
    let url = s.webhook_url("ussd");
    let fields = at_fields("");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs(&fields))
        .finish();
    let request = s
        .http
        .post(url)
        .basic_auth("at", Some("s3cret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    let step = actix_rt::spawn(answer(request));
    let dial = s.mo().await;
    assert_eq!(
        dial["channel_data"]["session_event"], "new",
        "the refused step never counted"
    );
    s.reply(&dial, "Hi", false).await;
    assert_eq!(step.await.unwrap().body, "END Hi");
}

/// Africa's Talking's end-of-session notification (at `ussd/end`) about a session still
/// open reaches the application as `close`; the next step starts a new session.
#[actix_rt::test]
async fn an_africastalking_end_notification_closes_the_session() {
    let mut s = Setup::new(Backend::Embedded, "africastalking", json!({})).await;
    let step = s.at_step("ussd", &pairs(&at_fields("")));
    let dial = s.mo().await;
    s.reply(&dial, "1. Balance", true).await;
    assert_eq!(step.await.unwrap().body, "CON 1. Balance");
    let notice = s
        .at_step(
            "ussd/end",
            &[
                ("sessionId", "ATUid_1"),
                ("serviceCode", "*384*1234#"),
                ("phoneNumber", "+254711000111"),
                ("status", "Incomplete"),
                ("input", ""),
            ],
        )
        .await
        .unwrap();
    assert_eq!((notice.status, notice.body.as_str()), (200, "OK"));
    let close = s.mo().await;
    assert_eq!(
        (&close["content"], &close["channel_data"]["session_event"]),
        (&Value::Null, &json!("close"))
    );
    let step = s.at_step("ussd", &pairs(&at_fields("")));
    assert_eq!(s.mo().await["channel_data"]["session_event"], "new");
    drop(step);
}
