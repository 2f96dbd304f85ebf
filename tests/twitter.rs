//! The `twitter` channel type against a fake X API: a local HTTP server (the shared
//! [`Aggregator`]) answering the documented v2 shapes — users/me, mentions with `since_id`
//! and `next_token`, DM events newest first, posting tweets and DMs, user lookup, the
//! `x-rate-limit-*` headers — that checks every request's OAuth 1.0a signature and answers
//! 401 when it does not verify.
#[macro_use]
mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::aggregator::{answer, Aggregator, Answer, Request};
use common::logs::{eventually, message_logs};
use common::{Api, AppChannel, Backend, CallbackServer, Daemon, Deployment};
use junebug_actors::transports::twitter::oauth;
use serde_json::{json, Value};

/// The channel's credentials; the fake X API knows them.
const CONSUMER_KEY: &str = "ck-XYZ";
const CONSUMER_SECRET: &str = "cs-S3CRET";
const ACCESS_TOKEN: &str = "1-at-T0KEN";
const ACCESS_TOKEN_SECRET: &str = "ats-S3CRET";

/// An OAuth 2.0 user access token the fake X API accepts too.
const BEARER_TOKEN: &str = "oauth2-user-T0KEN";

/// Our account.
const OUR_ID: &str = "1";

/// The answer to a request whose credentials do not verify, as the API documents it.
fn unauthorized() -> Answer {
    answer(
        401,
        vec![],
        json!({"title": "Unauthorized", "type": "about:blank", "status": 401,
               "detail": "Unauthorized"}),
    )
}

/// The fake X API's state.
#[derive(Default)]
struct FakeX {
    /// Where it listens (for signature base URLs).
    base_url: String,
    /// Every user: id → username.
    users: Vec<(String, String)>,
    /// Tweets mentioning us, oldest first.
    mentions: Vec<Value>,
    /// DM events, oldest first.
    dm_events: Vec<Value>,
    /// The next id for a new tweet or DM event.
    next_id: u64,
    /// Answers to give instead, by path, in order.
    overrides: HashMap<String, VecDeque<Answer>>,
}

impl FakeX {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Whether the request's `Authorization` is our OAuth 2.0 user token, or OAuth 1.0a with
    /// our keys and a signature that verifies.
    fn verifies(&self, request: &Request) -> bool {
        if let Some(token) = request
            .authorization()
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            return token == BEARER_TOKEN;
        }
        let Some(header) = request
            .authorization()
            .and_then(|h| h.strip_prefix("OAuth "))
        else {
            return false;
        };
        let fields: Vec<(String, String)> = header
            .split(", ")
            .filter_map(|field| {
                let (key, value) = field.split_once('=')?;
                let value = value.strip_prefix('"')?.strip_suffix('"')?;
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .ok()?;
                Some((key.to_owned(), value.into_owned()))
            })
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("oauth_consumer_key") != Some(CONSUMER_KEY)
            || field("oauth_token") != Some(ACCESS_TOKEN)
            || field("oauth_signature_method") != Some("HMAC-SHA1")
            || field("oauth_nonce").is_none()
            || field("oauth_timestamp").is_none()
        {
            return false;
        }
        let query: Vec<(String, String)> = request
            .uri
            .split_once('?')
            .map(|(_, q)| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let mut params: Vec<(&str, &str)> = fields
            .iter()
            .filter(|(k, _)| k != "oauth_signature")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.extend(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let base = format!("{}{}", self.base_url, request.path());
        let expected = oauth::signature(
            &request.method,
            &base,
            &params,
            CONSUMER_SECRET,
            ACCESS_TOKEN_SECRET,
        );
        field("oauth_signature") == Some(expected.as_str())
    }

    fn username(&self, id: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(user, _)| user == id)
            .map(|(_, name)| name.as_str())
    }

    /// `includes.users` for the users `ids`.
    fn includes(&self, ids: &[&str]) -> Value {
        let users: Vec<Value> = ids
            .iter()
            .filter_map(|id| {
                let name = self.username(id)?;
                Some(json!({"id": id, "username": name, "name": name}))
            })
            .collect();
        json!({ "users": users })
    }

    /// A page of `items` (newest first) from the `pagination_token` offset.
    fn page(&self, request: &Request, items: Vec<Value>, author: &str) -> Value {
        let size: usize = request
            .query("max_results")
            .and_then(|n| n.parse().ok())
            .unwrap_or(10);
        let from: usize = request
            .query("pagination_token")
            .and_then(|t| t.strip_prefix("page-")?.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = items.iter().skip(from).take(size).cloned().collect();
        if page.is_empty() {
            return json!({"meta": {"result_count": 0}});
        }
        let authors: Vec<&str> = page
            .iter()
            .filter_map(|item| item[author].as_str())
            .collect();
        let mut meta = json!({
            "result_count": page.len(),
            "newest_id": page[0]["id"],
            "oldest_id": page[page.len() - 1]["id"],
        });
        if from + size < items.len() {
            meta["next_token"] = json!(format!("page-{}", from + size));
        }
        json!({"data": page, "includes": self.includes(&authors), "meta": meta})
    }

    /// The API's answer to `request`.
    fn respond(&mut self, request: &Request) -> Answer {
        if !self.verifies(request) {
            return unauthorized();
        }
        if let Some(answer) = self
            .overrides
            .get_mut(request.path())
            .and_then(VecDeque::pop_front)
        {
            return answer;
        }
        let reset = chrono::Utc::now().timestamp() + 900;
        let limits = vec![
            ("x-rate-limit-limit", "300".to_owned()),
            ("x-rate-limit-remaining", "299".to_owned()),
            ("x-rate-limit-reset", reset.to_string()),
        ];
        let path = request.path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["2", "users", "me"]) => answer(
                200,
                limits,
                json!({"data": {"id": OUR_ID, "name": "Junebug", "username": "junebug"}}),
            ),
            ("GET", ["2", "users", OUR_ID, "mentions"]) => {
                let since = request.query("since_id");
                let newer: Vec<Value> = self
                    .mentions
                    .iter()
                    .rev()
                    .filter(|t| match &since {
                        Some(since) => {
                            t["id"].as_str().unwrap().parse::<u64>().unwrap()
                                > since.parse::<u64>().unwrap()
                        }
                        None => true,
                    })
                    .cloned()
                    .collect();
                answer(200, limits, self.page(request, newer, "author_id"))
            }
            ("GET", ["2", "dm_events"]) => {
                assert_eq!(
                    request.query("event_types").as_deref(),
                    Some("MessageCreate")
                );
                let events: Vec<Value> = self.dm_events.iter().rev().cloned().collect();
                answer(200, limits, self.page(request, events, "sender_id"))
            }
            ("GET", ["2", "users", "by", "username", name]) => {
                match self.users.iter().find(|(_, user)| user == name) {
                    Some((id, user)) => answer(
                        200,
                        limits,
                        json!({"data": {"id": id, "name": user, "username": user}}),
                    ),
                    None => answer(
                        200,
                        limits,
                        json!({"errors": [{"value": name, "detail":
                            format!("Could not find user with username: [{name}]."),
                            "title": "Not Found Error", "resource_type": "user",
                            "parameter": "username", "resource_id": name,
                            "type": "https://api.twitter.com/2/problems/resource-not-found"}]}),
                    ),
                }
            }
            ("POST", ["2", "tweets"]) => {
                let id = self.new_id();
                let text = request.json()["text"].clone();
                answer(
                    201,
                    limits,
                    json!({"data": {"id": id, "text": text, "edit_history_tweet_ids": [id]}}),
                )
            }
            ("POST", ["2", "dm_conversations", "with", participant, "messages"]) => {
                let conversation = format!("{OUR_ID}-{participant}");
                let event = self.new_id();
                answer(
                    201,
                    limits,
                    json!({"data": {"dm_conversation_id": conversation, "dm_event_id": event}}),
                )
            }
            _ => answer(404, vec![], json!({"title": "Not Found"})),
        }
    }
}

/// A daemon with one `twitter` channel on the fake X API, and an application server.
struct Setup {
    deployment: Deployment,
    daemon: Daemon,
    chan: AppChannel,
    /// The channel's status_url, apart so that waiting for a status skips no message.
    statuses: CallbackServer,
    x: Arc<Mutex<FakeX>>,
    server: Aggregator,
}

app_channel_setup!(Setup);

impl Setup {
    /// A channel polling every second; `extra` config keys on top.
    async fn new(backend: Backend, extra: Value) -> Setup {
        let x = Arc::new(Mutex::new(FakeX {
            users: vec![
                (OUR_ID.into(), "junebug".into()),
                ("7".into(), "alice".into()),
                ("8".into(), "bob".into()),
            ],
            // History a new channel does not replay.
            mentions: vec![
                json!({"id": "100", "text": "@junebug old news", "author_id": "7",
                                  "conversation_id": "100"}),
            ],
            dm_events: vec![dm("50", "7", "old DM")],
            next_id: 1000,
            ..FakeX::default()
        }));
        let fake = x.clone();
        let server = Aggregator::start_with(Arc::new(move |request, _| {
            fake.lock().unwrap().respond(request)
        }))
        .await;
        x.lock().unwrap().base_url = server.url.clone();
        let deployment = Deployment::new(backend);
        let daemon = deployment.start();
        let api = Api::new(&daemon.url);
        let app = CallbackServer::start().await;
        let statuses = CallbackServer::start().await;
        let mut config = json!({
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "access_token": ACCESS_TOKEN,
            "access_token_secret": ACCESS_TOKEN_SECRET,
            "base_url": server.url,
            "poll_interval": 1,
            "retry_delay": 0.2,
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        let channel = api
            .create_channel(json!({
                "type": "twitter",
                "config": config,
                "mo_url": format!("{}/mo", app.url),
                "status_url": format!("{}/status", statuses.url),
            }))
            .await;
        Setup {
            deployment,
            daemon,
            chan: AppChannel { api, app, channel },
            statuses,
            x,
            server,
        }
    }

    /// The next status of type `kind` (others are skipped).
    async fn status_of(&mut self, kind: &str) -> Value {
        loop {
            let status = self.statuses.next_on("/status").await.body;
            if status["type"] == kind {
                return status;
            }
        }
    }

    /// A new mention of us.
    fn mention(&self, id: &str, author: &str, text: &str) {
        self.x
            .lock()
            .unwrap()
            .mentions
            .push(json!({"id": id, "text": text, "author_id": author, "conversation_id": id}));
    }

    /// Instead of the normal answers to `path`.
    fn answer_next(&self, path: &str, answers: Vec<Answer>) {
        self.x
            .lock()
            .unwrap()
            .overrides
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    /// The daemon's entries for message `id`, once `done` holds for them, as one text.
    async fn logs_of(&self, id: &str, done: impl Fn(&[Value]) -> bool) -> String {
        let entries = eventually("the X API exchange is logged", || async {
            let entries = message_logs(&self.api, &self.channel, id).await;
            done(&entries).then_some(entries)
        })
        .await;
        Value::Array(entries).to_string()
    }
}

/// A DM event.
fn dm(id: &str, sender: &str, text: &str) -> Value {
    json!({"id": id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
           "dm_conversation_id": format!("{OUR_ID}-{sender}"),
           "created_at": "2026-11-26T08:00:00.000Z"})
}

fn is_post_tweet(request: &Request) -> bool {
    request.method == "POST" && request.path() == "/2/tweets"
}

fn is_mentions(request: &Request) -> bool {
    request.path() == format!("/2/users/{OUR_ID}/mentions")
}

both_backends! {
/// A new mention reaches the application (history does not); the reply is a tweet threaded
/// under it, signed with OAuth 1.0a, `submitted` under the new tweet's id, logged without
/// credentials. After a daemon crash the poller asks for mentions since the persisted
/// cursor, so nothing is handed on twice or lost.
async fn mentions_replies_and_the_cursor_across_a_restart(backend) {
    let mut s = Setup::new(backend, json!({})).await;
    let ready = s.status_of("ready").await;
    assert_eq!((ready["component"].as_str(), ready["status"].as_str()), (Some("twitter"), Some("ok")));
    let first = s.server.next_matching(is_mentions).await;
    assert_eq!(first.query("since_id"), None, "a new channel starts from the newest mention");
    let auth = first.authorization().unwrap().to_owned();
    for part in [
        "OAuth ",
        &format!("oauth_consumer_key=\"{CONSUMER_KEY}\""),
        "oauth_signature_method=\"HMAC-SHA1\"",
        "oauth_signature=\"",
        "oauth_version=\"1.0\"",
    ] {
        assert!(auth.contains(part), "{part} not in {auth}");
    }

    s.mention("101", "7", "@junebug hello there");
    let mo = s.mo().await;
    assert_eq!(mo["from"], "@alice", "{mo}");
    assert_eq!(mo["to"], "@junebug", "{mo}");
    assert_eq!(mo["content"], "hello there", "{mo}");
    assert_eq!(mo["channel_data"]["twitter"]["type"], "tweet", "{mo}");
    assert_eq!(mo["channel_data"]["twitter"]["tweet_id"], "101", "{mo}");

    let inbound_id = mo["message_id"].as_str().unwrap().to_owned();
    let reply = s.send(json!({"reply_to": inbound_id, "content": "hi alice"})).await;
    let posted = s.server.next_matching(is_post_tweet).await;
    assert_eq!(
        posted.json(),
        json!({"text": "hi alice", "reply": {"in_reply_to_tweet_id": "101"}})
    );
    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted", "{submitted}");
    assert_eq!(submitted["message_id"], json!(reply));
    let logged = s
        .logs_of(&reply, |entries| {
            entries.iter().any(|e| e["trace"]["method"] == "POST")
                && entries.iter().any(|e| e["trace"]["status"] == 201)
                && entries.iter().any(|e| e["trace"]["provider_ids"].is_array())
        })
        .await;
    assert!(logged.contains(r#""provider_ids":["1001"]"#), "the tweet id: {logged}");
    for secret in [CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET] {
        assert!(!logged.contains(secret), "{secret} leaked into the channel log: {logged}");
    }

    let Setup { deployment, daemon, .. } = &mut s;
    deployment.crash_and_restart(daemon);
    s.server.next_matching(|r| r.path() == "/2/users/me").await;
    let after = s.server.next_matching(is_mentions).await;
    assert_eq!(after.query("since_id").as_deref(), Some("101"), "the cursor survived");
    s.mention("102", "8", "@junebug again");
    let mo = s.mo().await;
    assert_eq!((mo["from"].as_str(), mo["content"].as_str()), (Some("@bob"), Some("again")));
}
}

/// A new DM reaches the application (history and our own DMs do not); the reply goes back to
/// its sender as a DM; a DM to `@bob` looks bob up first. Provider ids are DM event ids.
#[actix_rt::test]
async fn direct_messages_both_ways() {
    let mut s = Setup::new(Backend::Embedded, json!({"endpoints": {"dms": "default"}})).await;
    s.status_of("ready").await;
    s.server.next_matching(|r| r.path() == "/2/dm_events").await;
    {
        let mut x = s.x.lock().unwrap();
        x.dm_events.push(dm("51", OUR_ID, "we said this"));
        x.dm_events.push(dm("52", "7", "psst"));
    }
    let mo = s.mo().await;
    assert_eq!(
        (mo["from"].as_str(), mo["content"].as_str()),
        (Some("@alice"), Some("psst")),
        "{mo}"
    );
    assert_eq!(
        mo["channel_data"]["twitter"]["type"], "direct_message",
        "{mo}"
    );

    let inbound_id = mo["message_id"].as_str().unwrap().to_owned();
    let reply = s
        .send(json!({"reply_to": inbound_id, "content": "hello you"}))
        .await;
    let posted = s.server.next_matching(|r| r.method == "POST").await;
    assert_eq!(posted.path(), "/2/dm_conversations/with/7/messages");
    assert_eq!(posted.json(), json!({"text": "hello you"}));
    s.event_of("submitted", &reply).await;

    let to_bob = s
        .send(json!({"to": "@bob", "content": "news", "channel_data": {"twitter": {"type": "direct_message"}}}))
        .await;
    s.server
        .next_matching(|r| r.path() == "/2/users/by/username/bob")
        .await;
    let posted = s.server.next_matching(|r| r.method == "POST").await;
    assert_eq!(posted.path(), "/2/dm_conversations/with/8/messages");
    let submitted = s.event().await;
    assert_eq!(submitted["message_id"], json!(to_bob), "{submitted}");

    let to_nobody = s
        .send(json!({"to": "@nobody", "content": "x", "channel_data": {"twitter": {"type": "direct_message"}}}))
        .await;
    s.event_of("rejected", &to_nobody).await;
    s.app.assert_quiet(Duration::from_millis(1500)).await;
}

/// A 429 with `x-rate-limit-reset` pauses sending until the reset: the status goes
/// `degraded`/`rate_limited` with the reset time, the tweet is posted again only after the
/// reset, then `submitted`, and the status is `ok` again. A rate-limited mentions poll waits
/// for its reset too, and so does one whose answer said `x-rate-limit-remaining: 0`.
#[actix_rt::test]
async fn rate_limits_pause_until_the_reset() {
    let mut s = Setup::new(
        Backend::Embedded,
        json!({"endpoints": {"tweets": "default"}}),
    )
    .await;
    s.status_of("ready").await;
    let reset = chrono::Utc::now().timestamp() + 3;
    let limited = || {
        answer(
            429,
            vec![
                ("x-rate-limit-limit", "300".into()),
                ("x-rate-limit-remaining", "0".into()),
                ("x-rate-limit-reset", reset.to_string()),
            ],
            json!({"title": "Too Many Requests", "detail": "Too Many Requests",
                   "type": "about:blank", "status": 429}),
        )
    };
    s.answer_next("/2/tweets", vec![limited()]);
    let id = s.send(json!({"to": "@alice", "content": "hi"})).await;
    let first = s.server.next_matching(is_post_tweet).await;
    assert_eq!(first.json(), json!({"text": "@alice hi"}));
    let status = s.status_of("rate_limited").await;
    assert_eq!(status["status"], "degraded", "{status}");
    assert_eq!(status["details"]["endpoint"], "POST /2/tweets", "{status}");
    assert_eq!(status["details"]["reset_at"], json!(reset), "{status}");
    let second = s.server.next_matching(is_post_tweet).await;
    s.event_of("submitted", &id).await;
    let now = chrono::Utc::now().timestamp();
    assert!(
        now >= reset,
        "posted again before the reset ({now} < {reset})"
    );
    assert!(
        second.at - first.at >= Duration::from_secs(1),
        "resent after {:?}",
        second.at - first.at
    );
    let recovered = s.status_of("provider_ok").await;
    assert_eq!(recovered["status"], "ok", "{recovered}");

    let reset = chrono::Utc::now().timestamp() + 3;
    s.answer_next(
        &format!("/2/users/{OUR_ID}/mentions"),
        vec![answer(
            429,
            vec![
                ("x-rate-limit-remaining", "0".into()),
                ("x-rate-limit-reset", reset.to_string()),
            ],
            json!({"title": "Too Many Requests", "status": 429}),
        )],
    );
    s.server
        .next_matching(|r| is_mentions(r) && r.status == 429)
        .await;
    s.status_of("rate_limited").await;
    s.server.next_matching(is_mentions).await;
    let now = chrono::Utc::now().timestamp();
    assert!(
        now >= reset,
        "polled again before the reset ({now} < {reset})"
    );

    // A success that uses up the window pauses too, without a 429 (203: a 2xx the test can
    // tell apart from the fake's usual 200).
    let reset = chrono::Utc::now().timestamp() + 3;
    s.answer_next(
        &format!("/2/users/{OUR_ID}/mentions"),
        vec![answer(
            203,
            vec![
                ("x-rate-limit-remaining", "0".into()),
                ("x-rate-limit-reset", reset.to_string()),
            ],
            json!({"meta": {"result_count": 0}}),
        )],
    );
    let spent = s
        .server
        .next_matching(|r| is_mentions(r) && r.status == 203)
        .await;
    let next = s.server.next_matching(is_mentions).await;
    let now = chrono::Utc::now().timestamp();
    assert!(
        now >= reset,
        "polled again before the reset ({now} < {reset})"
    );
    assert!(
        next.at - spent.at >= Duration::from_secs(1),
        "polled again after {:?}",
        next.at - spent.at
    );
}

/// Credentials the API refuses: the status goes `down`/`auth_failed`, and a message is
/// rejected naming the refusal.
#[actix_rt::test]
async fn refused_credentials_are_reported_and_reject_messages() {
    let mut s = Setup::new(Backend::Embedded, json!({"consumer_secret": "wrong"})).await;
    let down = s.status_of("auth_failed").await;
    assert_eq!(
        (down["component"].as_str(), down["status"].as_str()),
        (Some("twitter"), Some("down")),
        "{down}"
    );
    let id = s.send(json!({"to": "@alice", "content": "hi"})).await;
    let rejected = s.event().await;
    assert_eq!(
        (
            rejected["event_type"].as_str(),
            rejected["message_id"].as_str()
        ),
        (Some("rejected"), Some(id.as_str())),
        "{rejected}"
    );
    let reason = rejected["event_details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("credentials") && reason.contains("401"),
        "{reason}"
    );
}

/// OAuth 2.0 user context: a `bearer_token` instead of the OAuth 1.0a keys signs every
/// request as `Authorization: Bearer …`, kept out of the channel log.
#[actix_rt::test]
async fn an_oauth2_user_token_works_too() {
    let oauth1 = [
        "consumer_key",
        "consumer_secret",
        "access_token",
        "access_token_secret",
    ];
    let mut config = json!({"bearer_token": BEARER_TOKEN});
    for key in oauth1 {
        config[key] = Value::Null;
    }
    let mut s = Setup::new(Backend::Embedded, config).await;
    s.status_of("ready").await;
    let id = s.send(json!({"to": "@alice", "content": "hi"})).await;
    let posted = s.server.next_matching(is_post_tweet).await;
    assert_eq!(
        posted.authorization(),
        Some(&*format!("Bearer {BEARER_TOKEN}"))
    );
    let submitted = s.event().await;
    assert_eq!(submitted["event_type"], "submitted", "{submitted}");
    let logged = s
        .logs_of(&id, |entries| {
            entries.iter().any(|e| e["trace"]["status"] == 201)
        })
        .await;
    assert!(!logged.contains(BEARER_TOKEN), "the token leaked: {logged}");
}
