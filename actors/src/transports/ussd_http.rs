//! Synchronous USSD over HTTP, shared by the `africastalking` and `dmark` channel types.
//!
//! The provider calls our webhook once per user step and waits for the HTTP answer, which
//! must carry the application's reply. The application, however, answers asynchronously: it
//! gets the step at its `mo_url` and replies with `POST /channels/{id}/messages` and
//! `reply_to`, which reaches [`Transport::send`] through the channel's queue. This module
//! joins the two, once for every provider:
//!
//! 1. The webhook request is parsed by the provider's [`Wire`] mapping into a [`Step`].
//! 2. [`UssdHttpTransport`] tells a new session from a resumed one by the provider's session
//!    id (kept in the Store through [`TransportContext::session_step`], so a restart of the
//!    channel or the daemon mid-session resumes it; forgotten after `ussd_session_timeout`
//!    of silence), builds
//!    the inbound [`Message`] (`session_event` `new` or `resume`), registers the step as
//!    waiting (by the inbound message's id) and hands the message to the daemon.
//! 3. The webhook waits up to `reply_timeout` (counted from the provider's request) for a
//!    reply. [`Transport::send`] of a message whose `in_reply_to` is a waiting step completes
//!    it and returns [`Sent`] (so the application gets `submitted`); the webhook then answers
//!    the provider with the reply in its wire format, continuing the session unless the reply
//!    closes it (`channel_data.continue_session: false`).
//! 4. No reply in time: the webhook answers `fallback_text` and ends the session; the
//!    application gets an inbound `close` (API.md decision 15) so it can forget the session.
//!    A reply that comes later (or for a step that was never waiting) is rejected with
//!    [`LATE_REPLY`], and so is a message that is not a reply at all ([`NOT_A_REPLY`]):
//!    USSD over HTTP cannot start a session or push a message.
//!
//! Waiting steps live in the memory of the node that runs the channel (a provider's request
//! is open there); the webhook of a channel that runs elsewhere answers 503 (see the
//! daemon's webhook route).
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::message::{new_message_id, timestamp_now, Message, SessionEvent};
use crate::ports::{Direction, LogRecord};
use crate::transport::{ConfigError, SendError, Sent, Transport, TransportContext, TransportError};
use crate::transports::web::{log_refusal, Redactor};
use crate::transports::{seconds, Password};
use crate::webhook::{WebhookRequest, WebhookResponse};

/// Why a reply is rejected when no step waits for it.
pub const LATE_REPLY: &str = "No USSD session step is waiting for this reply: it came after \
    the reply_timeout (the session was ended with the fallback text), or the step was \
    already answered.";

/// Why a message that is not a reply is rejected.
pub const NOT_A_REPLY: &str = "USSD over HTTP can only answer a waiting session step: send \
    the message with reply_to set to the inbound message's id.";

/// The default `reply_timeout`, in seconds.
pub fn default_reply_timeout() -> f64 {
    10.0
}

/// The default `fallback_text`.
pub fn default_fallback_text() -> String {
    "Sorry, the service is not available right now. Please try again later.".to_owned()
}

/// The default `ussd_session_timeout`, in seconds (vumi's).
pub fn default_session_timeout() -> f64 {
    600.0
}

/// The default webhook path (what follows `/channels/{id}/inbound/`).
pub fn default_web_path() -> String {
    "ussd".to_owned()
}

/// The `transport_type` of inbound messages when none is given.
pub fn default_transport_type() -> String {
    "ussd".to_owned()
}

/// The `config` keys both USSD-over-HTTP channel types take.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct UssdHttpConfig {
    /// How long a webhook request waits for the application's reply, in seconds, counted
    /// from the provider's request. Default: [`default_reply_timeout`]. Keep it below the
    /// provider's own timeout. vumi's `request_timeout` is accepted as an alias.
    #[serde(default, alias = "request_timeout")]
    pub reply_timeout: Option<f64>,
    /// What the user sees, in a final (session-ending) answer, when the application does
    /// not reply in time. Default: [`default_fallback_text`].
    #[serde(default)]
    pub fallback_text: Option<String>,
    /// How long a session is remembered after its last step, in seconds (vumi's key): a
    /// step of a session not seen for this long counts as `new`. Default:
    /// [`default_session_timeout`].
    #[serde(default)]
    pub ussd_session_timeout: Option<f64>,
    /// The webhook path after `/channels/{id}/inbound/` (vumi's key, a leading `/` is
    /// ignored). Default: [`default_web_path`].
    #[serde(default)]
    pub web_path: Option<String>,
    /// HTTP Basic user name the provider must send (vumi's key); with `web_password`.
    #[serde(default)]
    pub web_username: Option<String>,
    /// HTTP Basic password, with `web_username` (vumi's key). Never logged.
    #[serde(default)]
    pub web_password: Option<Password>,
    /// The vumi `transport_type` of inbound messages. Default: [`default_transport_type`].
    #[serde(default)]
    pub transport_type: Option<String>,
}

/// A validated [`UssdHttpConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct UssdHttpSettings {
    /// How long a step waits for the reply.
    pub reply_timeout: Duration,
    /// The final answer when it does not come.
    pub fallback_text: String,
    /// How long an idle session is remembered.
    pub session_timeout: Duration,
    /// The webhook path, without a leading `/`.
    pub web_path: String,
    /// User name and password the provider must present, if any.
    pub basic_auth: Option<(String, Password)>,
    /// Of inbound messages.
    pub transport_type: String,
}

impl UssdHttpConfig {
    /// Checks the config and resolves its defaults. Errors name the offending key.
    pub fn validate(self) -> Result<UssdHttpSettings, ConfigError> {
        let reply_timeout = seconds("reply_timeout", self.reply_timeout, default_reply_timeout())?;
        let session_timeout = seconds(
            "ussd_session_timeout",
            self.ussd_session_timeout,
            default_session_timeout(),
        )?;
        if session_timeout < reply_timeout {
            return Err(ConfigError::new(
                "ussd_session_timeout",
                "must not be shorter than reply_timeout",
            ));
        }
        let basic_auth = match (self.web_username, self.web_password) {
            (None, None) => None,
            (Some(user), Some(password)) if !user.is_empty() => Some((user, password)),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("web_username", "must not be empty"));
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "web_password",
                    "is required when web_username is given",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "web_username",
                    "is required when web_password is given",
                ));
            }
        };
        let web_path = self
            .web_path
            .map(|path| path.trim_start_matches('/').to_owned())
            .unwrap_or_else(default_web_path);
        if web_path.is_empty() {
            return Err(ConfigError::new("web_path", "must not be empty"));
        }
        Ok(UssdHttpSettings {
            reply_timeout,
            fallback_text: self.fallback_text.unwrap_or_else(default_fallback_text),
            session_timeout,
            web_path,
            basic_auth,
            transport_type: self.transport_type.unwrap_or_else(default_transport_type),
        })
    }
}

/// One user step, as a provider's wire mapping reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The provider's session id.
    pub session_id: String,
    /// The user's number.
    pub from: String,
    /// The service code dialled.
    pub to: String,
    /// What the user entered (`None` when nothing, e.g. a bare dial).
    pub content: Option<String>,
    /// What the provider said besides, kept on the message (a reply copies it).
    pub transport_metadata: Map<String, Value>,
}

/// A provider's notice that a session ended on its side (the user hung up, a timeout).
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    /// The provider's session id.
    pub session_id: String,
    /// The user's number.
    pub from: String,
    /// The service code.
    pub to: String,
    /// What the provider said about it.
    pub transport_metadata: Map<String, Value>,
}

/// What a webhook request is, once read.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A user step to hand to the application and answer with its reply.
    Step(Step),
    /// A session ended on the provider's side.
    Ended(Ended),
}

/// A bad webhook request: the words for the channel log and the answer for the provider.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRequest {
    /// For the channel log.
    pub reason: String,
    /// For the provider (a 400 in its error format).
    pub answer: WebhookResponse,
}

/// The application's reply to a step, as the provider's answer needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The text to show.
    pub content: String,
    /// Whether the user may answer (`false` ends the session).
    pub continues: bool,
}

/// A provider's wire format: how its requests read and its answers look.
pub trait Wire: 'static {
    /// The channel type's name, for log lines.
    fn name(&self) -> &'static str;

    /// Reads a request to `path` (the request's path is the configured web path, or
    /// `path` + `/…` for sub-paths); `None` when the provider serves nothing there.
    fn parse(&self, request: &WebhookRequest, path: &str) -> Option<Result<Incoming, BadRequest>>;

    /// The answer that shows `reply`.
    fn answer(&self, reply: &Reply) -> WebhookResponse;

    /// The answer to an [`Ended`] notice.
    fn ended_answer(&self) -> WebhookResponse {
        WebhookResponse::text(200, "OK")
    }
}

/// Forgets a session that ended. A failure (logged by the host) leaves it to idle out, after
/// which its id would start a new session anyway.
async fn end_session(ctx: &TransportContext, session_id: &str) {
    let _ = ctx.end_session(session_id).await;
}

/// A transport for a synchronous USSD-over-HTTP provider described by `W`.
pub struct UssdHttpTransport<W: Wire> {
    wire: W,
    settings: UssdHttpSettings,
    /// Masks the Basic password in logged requests.
    redactor: Redactor,
    state: Rc<State>,
}

/// What the webhook requests and `send` share.
#[derive(Default)]
struct State {
    /// Set between `start` and `stop`.
    ctx: RefCell<Option<TransportContext>>,
    /// The steps waiting for their reply, by the inbound message's id. Dropping a sender
    /// (at `stop`) wakes its step, which then answers the fallback.
    waiting: RefCell<HashMap<String, oneshot::Sender<Reply>>>,
}

/// Removes a waiting step when its webhook finishes, however it finishes (answered, timed
/// out, or dropped because the provider hung up).
struct WaitingGuard<'a> {
    state: &'a State,
    message_id: String,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.state.waiting.borrow_mut().remove(&self.message_id);
    }
}

impl<W: Wire> UssdHttpTransport<W> {
    /// A transport for `wire` with validated settings; it does nothing until started.
    pub fn new(wire: W, settings: UssdHttpSettings) -> Self {
        let password = settings.basic_auth.as_ref().map(|(_, p)| p.reveal());
        UssdHttpTransport {
            wire,
            redactor: Redactor::new(password),
            settings,
            state: Rc::new(State::default()),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &UssdHttpSettings {
        &self.settings
    }

    /// How many steps wait for their reply right now.
    pub fn waiting(&self) -> usize {
        self.state.waiting.borrow().len()
    }

    /// Whether the request carries the configured Basic credentials (or none are needed).
    pub fn authorised(&self, request: &WebhookRequest) -> bool {
        let Some((user, password)) = &self.settings.basic_auth else {
            return true;
        };
        let Some(given) = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
        else {
            return false;
        };
        let expected = format!("{user}:{}", password.reveal());
        given == expected.as_bytes()
    }

    /// An inbound message of a session: `from` the user, `to` the service code.
    fn session_message(
        &self,
        ctx: &TransportContext,
        (from, to): (String, String),
        event: SessionEvent,
        content: Option<String>,
        transport_metadata: Map<String, Value>,
    ) -> Message {
        Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: Some(to),
            from_addr: Some(from),
            group: None,
            in_reply_to: None,
            session_event: Some(event),
            content,
            transport_name: ctx.channel_id().to_owned(),
            transport_type: self.settings.transport_type.clone(),
            transport_metadata,
            helper_metadata: Map::new(),
            expires_at: None,
        }
    }

    /// A step: the application's reply, or the fallback.
    async fn step(&self, ctx: TransportContext, step: Step, arrived: Instant) -> WebhookResponse {
        let event = match ctx
            .session_step(&step.session_id, self.settings.session_timeout)
            .await
        {
            Ok(true) => SessionEvent::Resume,
            Ok(false) => SessionEvent::New,
            // Logged by the host; the provider may send the step again.
            Err(_) => return WebhookResponse::text(503, "the step could not be kept; try again"),
        };
        let message = self.session_message(
            &ctx,
            (step.from.clone(), step.to.clone()),
            event,
            step.content,
            step.transport_metadata,
        );
        let message_id = message.message_id.clone();
        ctx.log(
            LogRecord::debug(format!(
                "Received a USSD step of session {} ({}) from {} to {}: {:?}",
                step.session_id,
                if event == SessionEvent::New {
                    "new"
                } else {
                    "resume"
                },
                step.from,
                step.to,
                message.content.as_deref().unwrap_or_default(),
            ))
            .about(&message_id)
            .going(Direction::Inbound),
        );
        // Registered before the daemon sees the message, so a reply can never miss it.
        let (reply_tx, reply_rx) = oneshot::channel();
        self.state
            .waiting
            .borrow_mut()
            .insert(message_id.clone(), reply_tx);
        let _guard = WaitingGuard {
            state: &self.state,
            message_id: message_id.clone(),
        };
        if let Err(e) = ctx.inbound(message).await {
            if event == SessionEvent::New {
                end_session(&ctx, &step.session_id).await;
            }
            ctx.log(
                LogRecord::warning(format!(
                    "Could not keep a USSD step of session {}: {e}",
                    step.session_id
                ))
                .about(&message_id),
            );
            return WebhookResponse::text(503, "the step could not be kept; try again");
        }
        let deadline = arrived + self.settings.reply_timeout;
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(reply)) => {
                if !reply.continues {
                    end_session(&ctx, &step.session_id).await;
                }
                let answer = self.wire.answer(&reply);
                ctx.log(
                    LogRecord::debug(format!(
                        "Answered the USSD step of session {} with the reply: {}",
                        step.session_id,
                        String::from_utf8_lossy(&answer.body)
                    ))
                    .about(&message_id)
                    .going(Direction::Outbound),
                );
                answer
            }
            // Timed out, or the channel stops (the sender was dropped).
            Ok(Err(_)) | Err(_) => {
                end_session(&ctx, &step.session_id).await;
                ctx.log(
                    LogRecord::warning(format!(
                        "No reply within {:?} to a USSD step of session {}: answered the \
                         fallback text and ended the session",
                        self.settings.reply_timeout, step.session_id
                    ))
                    .about(&message_id),
                );
                let timed_out = json!({"reply_to": message_id});
                let close = self.session_message(
                    &ctx,
                    (step.from, step.to),
                    SessionEvent::Close,
                    None,
                    Map::from_iter([("ussd_timeout".to_owned(), timed_out)]),
                );
                if let Err(e) = ctx.inbound(close).await {
                    ctx.log(LogRecord::warning(format!(
                        "Could not report the end of USSD session {}: {e}",
                        step.session_id
                    )));
                }
                self.wire.answer(&Reply {
                    content: self.settings.fallback_text.clone(),
                    continues: false,
                })
            }
        }
    }

    /// A session ended on the provider's side: a `close` to the application, if it was ours.
    async fn ended(&self, ctx: TransportContext, ended: Ended) -> WebhookResponse {
        if matches!(ctx.end_session(&ended.session_id).await, Ok(true)) {
            let close = self.session_message(
                &ctx,
                (ended.from, ended.to),
                SessionEvent::Close,
                None,
                ended.transport_metadata,
            );
            if let Err(e) = ctx.inbound(close).await {
                ctx.log(LogRecord::warning(format!(
                    "Could not report the end of USSD session {}: {e}",
                    ended.session_id
                )));
                return WebhookResponse::text(503, "the notice could not be kept; try again");
            }
        }
        self.wire.ended_answer()
    }
}

#[async_trait(?Send)]
impl<W: Wire> Transport for UssdHttpTransport<W> {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        *self.state.ctx.borrow_mut() = Some(ctx);
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let Some(step_id) = message.in_reply_to.as_deref() else {
            return Err(SendError::Rejected(NOT_A_REPLY.to_owned()));
        };
        let waiting = self.state.waiting.borrow_mut().remove(step_id);
        let reply = Reply {
            content: message.content.clone().unwrap_or_default(),
            continues: message.session_event != Some(SessionEvent::Close),
        };
        match waiting.map(|tx| tx.send(reply)) {
            Some(Ok(())) => Ok(Sent::with_id(message.message_id)),
            Some(Err(_)) | None => Err(SendError::Rejected(LATE_REPLY.to_owned())),
        }
    }

    async fn webhook(&self, request: WebhookRequest) -> WebhookResponse {
        let arrived = Instant::now();
        let Some(ctx) = self.state.ctx.borrow().clone() else {
            return WebhookResponse::text(503, "the channel is starting; try again shortly");
        };
        let Some(parsed) = self.wire.parse(&request, &self.settings.web_path) else {
            return WebhookResponse::not_found(&request);
        };
        if !self.authorised(&request) {
            let reason = format!("no {} credentials", self.wire.name());
            log_refusal(&ctx, &self.redactor, &request, &reason);
            return WebhookResponse::text(401, "authentication required");
        }
        match parsed {
            Ok(Incoming::Step(step)) => self.step(ctx, step, arrived).await,
            Ok(Incoming::Ended(ended)) => self.ended(ctx, ended).await,
            Err(bad) => {
                let reason = format!("a bad {} request: {}", self.wire.name(), bad.reason);
                log_refusal(&ctx, &self.redactor, &request, &reason);
                bad.answer
            }
        }
    }

    async fn stop(&self) {
        self.state.ctx.borrow_mut().take();
        // Wakes every waiting step, which answers the fallback.
        self.state.waiting.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::transports::parse_config;

    fn settings(config: Value) -> Result<UssdHttpSettings, ConfigError> {
        parse_config::<UssdHttpConfig>(&config)?.validate()
    }

    /// Defaults, vumi's aliases, and errors that name the key.
    #[test]
    fn config_defaults_aliases_and_errors() {
        let s = settings(json!({})).unwrap();
        assert_eq!(s.reply_timeout, Duration::from_secs(10));
        assert_eq!(s.session_timeout, Duration::from_secs(600));
        assert_eq!(s.web_path, "ussd");
        assert_eq!(s.transport_type, "ussd");
        assert_eq!(s.basic_auth, None);
        let s =
            settings(json!({"request_timeout": 3, "web_path": "/dmark", "fallback_text": "Bye"}))
                .unwrap();
        assert_eq!(
            (
                s.reply_timeout,
                s.web_path.as_str(),
                s.fallback_text.as_str()
            ),
            (Duration::from_secs(3), "dmark", "Bye")
        );
        for (config, key) in [
            (json!({"reply_timeout": 0}), "reply_timeout"),
            (json!({"reply_timeout": "soon"}), "reply_timeout"),
            (
                json!({"ussd_session_timeout": 1, "reply_timeout": 5}),
                "ussd_session_timeout",
            ),
            (json!({"web_username": "u"}), "web_password"),
            (json!({"web_password": "p"}), "web_username"),
            (json!({"web_path": "/"}), "web_path"),
            (json!({"fallback_text": 3}), "fallback_text"),
        ] {
            assert_eq!(settings(config.clone()).unwrap_err().key, key, "{config}");
        }
    }

    /// A wire that reads `session` and `text` from the query and answers `C:`/`E:` lines.
    struct TestWire;

    impl Wire for TestWire {
        fn name(&self) -> &'static str {
            "test"
        }

        fn parse(
            &self,
            request: &WebhookRequest,
            path: &str,
        ) -> Option<Result<Incoming, BadRequest>> {
            (request.path == path).then(|| {
                Ok(Incoming::Step(Step {
                    session_id: request.field("session").unwrap_or_default(),
                    from: "+27".into(),
                    to: "*1#".into(),
                    content: request.field("text"),
                    transport_metadata: Map::new(),
                }))
            })
        }

        fn answer(&self, reply: &Reply) -> WebhookResponse {
            let verb = if reply.continues { "C" } else { "E" };
            WebhookResponse::text(200, format!("{verb}:{}", reply.content))
        }
    }

    fn request(session: &str, text: &str) -> WebhookRequest {
        WebhookRequest {
            method: "GET".into(),
            path: "ussd".into(),
            query: format!("session={session}&text={text}"),
            ..Default::default()
        }
    }

    fn reply_to(inbound: &Message, content: &str, close: bool) -> Message {
        Message {
            message_id: new_message_id(),
            in_reply_to: Some(inbound.message_id.clone()),
            session_event: close.then_some(SessionEvent::Close),
            content: Some(content.into()),
            ..inbound.clone()
        }
    }

    fn body(answer: WebhookResponse) -> String {
        String::from_utf8(answer.body).unwrap()
    }

    /// A step waits for its reply, which is answered (continuing or ending the session);
    /// the same reply again, or a message that is no reply, is rejected.
    #[test]
    fn a_reply_completes_the_waiting_step() {
        use crate::transports::testkit::{run_local, RecordingHost};
        run_local(|| async {
            let host = RecordingHost::new();
            let (ctx, _) = host.context("ch");
            let settings = settings(json!({"reply_timeout": 5})).unwrap();
            let transport = Rc::new(UssdHttpTransport::new(TestWire, settings));
            transport.start(ctx).await.unwrap();

            let t = transport.clone();
            let step =
                tokio::task::spawn_local(async move { t.webhook(request("s1", "hi")).await });
            let (_, first) = host.inbound().next().await;
            assert_eq!(first.session_event, Some(SessionEvent::New));
            assert_eq!(first.content.as_deref(), Some("hi"));
            let reply = reply_to(&first, "Menu", false);
            let sent = transport.send(reply.clone()).await.unwrap();
            assert_eq!(sent, Sent::with_id(reply.message_id.clone()));
            assert_eq!(body(step.await.unwrap()), "C:Menu");
            assert_eq!(
                transport.send(reply).await,
                Err(SendError::Rejected(LATE_REPLY.into()))
            );

            let t = transport.clone();
            let step = tokio::task::spawn_local(async move { t.webhook(request("s1", "1")).await });
            let (_, second) = host.inbound().next().await;
            assert_eq!(second.session_event, Some(SessionEvent::Resume));
            transport
                .send(reply_to(&second, "Bye", true))
                .await
                .unwrap();
            assert_eq!(body(step.await.unwrap()), "E:Bye");
            assert_eq!(transport.waiting(), 0);

            let t = transport.clone();
            let step =
                tokio::task::spawn_local(async move { t.webhook(request("s1", "again")).await });
            let (_, third) = host.inbound().next().await;
            assert_eq!(
                third.session_event,
                Some(SessionEvent::New),
                "the session had ended"
            );
            let not_a_reply = Message {
                in_reply_to: None,
                ..third.clone()
            };
            assert_eq!(
                transport.send(not_a_reply).await,
                Err(SendError::Rejected(NOT_A_REPLY.into()))
            );
            transport.send(reply_to(&third, "ok", false)).await.unwrap();
            step.await.unwrap();
            transport.stop().await;
        });
    }

    /// Without a reply in time the step answers the fallback, ends the session and tells the
    /// application (`close`); the late reply is rejected.
    #[test]
    fn no_reply_in_time_answers_the_fallback() {
        use crate::transports::testkit::{run_local, RecordingHost};
        run_local(|| async {
            let host = RecordingHost::new();
            let (ctx, _) = host.context("ch");
            let settings =
                settings(json!({"reply_timeout": 0.2, "fallback_text": "Later"})).unwrap();
            let transport = UssdHttpTransport::new(TestWire, settings);
            transport.start(ctx).await.unwrap();
            assert_eq!(body(transport.webhook(request("s2", "x")).await), "E:Later");
            let (_, step) = host.inbound().next().await;
            let (_, close) = host.inbound().next().await;
            assert_eq!(close.session_event, Some(SessionEvent::Close));
            assert_eq!(close.content, None);
            assert_eq!(
                transport.send(reply_to(&step, "late", false)).await,
                Err(SendError::Rejected(LATE_REPLY.into()))
            );
            let other = transport.webhook(WebhookRequest {
                path: "sms".into(),
                ..request("s", "")
            });
            assert_eq!(other.await.status, 404);
        });
    }

    /// Stopping the channel answers the waiting steps with the fallback at once.
    #[test]
    fn stopping_answers_waiting_steps_with_the_fallback() {
        use crate::transports::testkit::{run_local, RecordingHost};
        run_local(|| async {
            let host = RecordingHost::new();
            let (ctx, _) = host.context("ch");
            let settings = settings(json!({"reply_timeout": 60, "fallback_text": "Bye"})).unwrap();
            let transport = Rc::new(UssdHttpTransport::new(TestWire, settings));
            transport.start(ctx).await.unwrap();
            let t = transport.clone();
            let step = tokio::task::spawn_local(async move { t.webhook(request("s3", "x")).await });
            host.inbound().next().await;
            assert_eq!(transport.waiting(), 1);
            transport.stop().await;
            let answer = tokio::time::timeout(Duration::from_secs(5), step).await;
            assert_eq!(body(answer.expect("answered at once").unwrap()), "E:Bye");
            assert_eq!(transport.waiting(), 0);
            assert_eq!(
                transport.webhook(request("s3", "y")).await.status,
                503,
                "a stopped channel takes no steps"
            );
        });
    }
}
