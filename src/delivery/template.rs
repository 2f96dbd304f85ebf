//! Callback URL templates (`mo_url`, `event_url`, `status_url`) and the callback method.
//!
//! A callback URL may carry values of the message, event or status it is about, in two
//! notations that can be mixed:
//!
//! - `{name}` placeholders, e.g. `https://app.example/mo/{channel_id}?from={from}`;
//! - Kannel's `%` escapes, e.g. `https://app.example/dlr?id=%I&dlr=%d` (see the table below).
//!
//! A template is parsed once, when the URL is set ([`UrlTemplate::parse`]); anything it cannot
//! expand is refused then, with an error naming the field (the API answers 400), never at
//! delivery time. Expansion ([`UrlTemplate::expand`]) is one pass over the pre-split parts.
//! Most URLs have no placeholders: they parse to one literal and expand to themselves.
//!
//! # Rules
//!
//! - Every value is percent-encoded as a URL component: only `A-Z a-z 0-9 - . _ ~` stay as
//!   they are, so a space is `%20`, `&` is `%26`, `=` is `%3D`, `/` is `%2F`, `+` is `%2B`,
//!   `é` is `%C3%A9`. A value can therefore never add a path segment or a query parameter.
//! - A value that is missing (no `to` on a message, no provider id on an ack, no original
//!   message known for an event) expands to the empty string.
//! - `{{` and `}}` are a literal `{` and `}`; a lone `}` is literal too. A `{` that is never
//!   closed is an error, as is a name the URL's kind does not know.
//! - `%%` is a literal `%` (as in Kannel). A `%` followed by two hex digits is a
//!   percent-encoded octet and stays as it is (`%20`, `%C3%A9`), so ordinary URLs keep
//!   working. This means an escape whose letter is a hex digit (`%a`, `%A`, `%c`, `%d`, `%F`)
//!   directly followed by a hex digit reads as an octet: write `%d&x=…`, not `%dA`. Any other
//!   `%x` is an error, and so is a `%` at the very end.
//! - Placeholders and escapes are expanded only in the path, query and fragment. In the
//!   scheme, host and port they are refused, so the destination host is fixed when the URL is
//!   set. The `user:pass@` part is copied as it is, never expanded (it may contain `%` or
//!   `{`); [`super`] turns it into a Basic `Authorization` header.
//! - After expansion with sample values the result must be an absolute `http`/`https` URL.
//!
//! # Placeholders
//!
//! | Name | `mo_url` (inbound message) | `event_url` (event) | `status_url` (status) |
//! |---|---|---|---|
//! | `message_id` | its id | the outbound message's id | – |
//! | `channel_id` | the channel (or destination) id | same | same |
//! | `to`, `from`, `group` | its addresses | the outbound message's, when known | – |
//! | `content` | its text | the outbound message's, when known | – |
//! | `session_event` | `new`, `resume`, `close` | the outbound message's, when known | – |
//! | `reply_to` | the id of the message it answers | the outbound message's, when known | – |
//! | `timestamp` | `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) | the event's | – |
//! | `event_type` | – | `submitted`, `rejected`, `delivery_succeeded`, `delivery_failed`, `delivery_pending` | – |
//! | `provider_message_id` | – | the provider's id for the message (acks that carry one, delivery reports) | – |
//! | `status` | – | delivery reports: `delivered`, `failed`, `pending` | `ok`, `degraded`, `down` |
//! | `reason` | – | nacks: the reason | – |
//! | `component`, `type`, `message` | – | – | the status's |
//!
//! # Kannel escapes
//!
//! Meanings are those of Kannel's user guide ("Parameters (Escape Codes)") and of its
//! `urltrans_fill_escape_codes`. For an event, "the message" is the outbound message the event
//! is about (Kannel's DLR keeps the original sender and receiver too); its addresses and text
//! are empty when that message is not known any more.
//!
//! | Escape | Kannel | Here |
//! |---|---|---|
//! | `%p` | phone number of the sender | the message's `from` |
//! | `%P` | phone number of the receiver | the message's `to` |
//! | `%q` | `%p` with a leading `00` replaced by `+` | same (the `+` is sent as `%2B`) |
//! | `%Q` | `%P` with a leading `00` replaced by `+` | same |
//! | `%t` | time of the message, UTC: `YYYY-MM-DD HH:MM` in the guide, `…HH:MM:SS` in the code | `timestamp` (for an event, its own time, as Kannel's DLR time) without the fraction: `YYYY-MM-DD HH:MM:SS`, UTC, sent as `2015-10-06%2014%3A16%3A34` (Kannel writes `+` for the space) |
//! | `%T` | time of the message, Unix epoch seconds | same, from `timestamp` |
//! | `%a` | all words of the message, spaces squeezed to one | the words of `content`, joined by one space (`%20`, where Kannel writes `+`) |
//! | `%k` | the keyword: the first word | the first word of `content` |
//! | `%s` | the next word, starting with the second; each `%s` takes one more | same |
//! | `%r` | the words not yet used by `%s` | same |
//! | `%c` | message coding: `0` (7-bit), `1` (8-bit), `2` (UCS-2) | `0` when `content` fits the GSM 03.38 alphabet (with its extension table), else `2`; empty without content. Read from the text: the wire coding is not kept |
//! | `%i` | smsc-id of the connection | `channel_id` |
//! | `%I` | Kannel's internal message id | `message_id` |
//! | `%d` | delivery report value: `1` delivered, `2` not delivered, `4` queued on SMSC, `8` accepted by SMSC, `16` rejected by SMSC | `event_url` only: ack `8`, nack `16`, delivered `1`, failed `2`, pending `4` |
//! | `%A` | the SMSC's delivery report text, if any | `event_url` only: a nack's reason; empty for acks and delivery reports (the provider's raw report is not kept) |
//! | `%F` | the SMSC's (foreign) message id; DLRs only | `event_url` only: `provider_message_id` |
//! | `%%` | a literal `%` | same |
//!
//! `status_url` has no message: only `%i` and `%%` apply there. Kannel escapes without an
//! equivalent here are refused: `%S` (an unencoded word: every value is encoded here), `%b`
//! (binary text), `%B` (billing), `%C` (charset: values are always UTF-8), `%f` (originating
//! SMSC number), `%m`/`%M` (message class, MWI), `%n` (service name), `%o` (account), `%O`
//! (DCS), `%u` (UDH) and `%x` (smsbox id).
//!
//! # Method
//!
//! [`CallbackMethod`] (`mo_url_method`, `event_url_method`) is `POST` with the JSON body by
//! default; `GET` sends no body and puts the body's top-level fields in the query instead
//! ([`query_url`]).
use std::fmt;

use junebug_actors::message::{
    DeliveryStatus, Event, EventKind, Message, SessionEvent, StatusEvent, StatusLevel,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// What a value may contain unencoded: RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Which URL a template is for, and so which values it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    /// `mo_url`: an inbound message.
    Inbound,
    /// `event_url`: an event about an outbound message.
    Event,
    /// `status_url`: a status event of a channel.
    Status,
}

/// One value a template can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    MessageId,
    ChannelId,
    To,
    From,
    Timestamp,
    Content,
    SessionEvent,
    Group,
    ReplyTo,
    EventType,
    ProviderMessageId,
    Status,
    Reason,
    Component,
    Type,
    StatusMessage,
    /// `%q`: `from`, leading `00` as `+`.
    FromPlus,
    /// `%Q`: `to`, leading `00` as `+`.
    ToPlus,
    /// `%t`: `YYYY-MM-DD HH:MM:SS`.
    KannelTime,
    /// `%T`: Unix seconds.
    Epoch,
    /// `%a`: all words.
    Words,
    /// `%k`: the first word.
    Keyword,
    /// `%s`: the next word.
    NextWord,
    /// `%r`: the words `%s` has not taken.
    RestWords,
    /// `%c`: 0 or 2.
    Coding,
    /// `%d`: Kannel's DLR value.
    DlrValue,
}

/// The placeholders of `mo_url`.
const INBOUND_NAMES: &[(&str, Field)] = &[
    ("message_id", Field::MessageId),
    ("channel_id", Field::ChannelId),
    ("to", Field::To),
    ("from", Field::From),
    ("timestamp", Field::Timestamp),
    ("content", Field::Content),
    ("session_event", Field::SessionEvent),
    ("group", Field::Group),
    ("reply_to", Field::ReplyTo),
];

/// The placeholders of `event_url`.
const EVENT_NAMES: &[(&str, Field)] = &[
    ("message_id", Field::MessageId),
    ("channel_id", Field::ChannelId),
    ("event_type", Field::EventType),
    ("timestamp", Field::Timestamp),
    ("provider_message_id", Field::ProviderMessageId),
    ("status", Field::Status),
    ("reason", Field::Reason),
    ("to", Field::To),
    ("from", Field::From),
    ("content", Field::Content),
    ("session_event", Field::SessionEvent),
    ("group", Field::Group),
    ("reply_to", Field::ReplyTo),
];

/// The placeholders of `status_url`.
const STATUS_NAMES: &[(&str, Field)] = &[
    ("channel_id", Field::ChannelId),
    ("component", Field::Component),
    ("status", Field::Status),
    ("type", Field::Type),
    ("message", Field::StatusMessage),
];

impl TemplateKind {
    /// The `{name}` placeholders this kind knows.
    fn names(self) -> &'static [(&'static str, Field)] {
        match self {
            TemplateKind::Inbound => INBOUND_NAMES,
            TemplateKind::Event => EVENT_NAMES,
            TemplateKind::Status => STATUS_NAMES,
        }
    }

    /// The escapes this kind supports, for error messages.
    fn escapes(self) -> &'static str {
        match self {
            TemplateKind::Inbound => "%p %P %q %Q %t %T %a %k %s %r %c %i %I %%",
            TemplateKind::Event => "%p %P %q %Q %t %T %a %k %s %r %c %i %I %d %A %F %%",
            TemplateKind::Status => "%i %%",
        }
    }

    /// What escape `%c` yields here, or why it is refused.
    fn escape(self, c: char) -> Result<Field, &'static str> {
        let about_message = match c {
            'p' => Some(Field::From),
            'P' => Some(Field::To),
            'q' => Some(Field::FromPlus),
            'Q' => Some(Field::ToPlus),
            't' => Some(Field::KannelTime),
            'T' => Some(Field::Epoch),
            'a' => Some(Field::Words),
            'k' => Some(Field::Keyword),
            's' => Some(Field::NextWord),
            'r' => Some(Field::RestWords),
            'c' => Some(Field::Coding),
            'I' => Some(Field::MessageId),
            _ => None,
        };
        match (self, c, about_message) {
            (_, 'i', _) => Ok(Field::ChannelId),
            (TemplateKind::Event, 'd', _) => Ok(Field::DlrValue),
            (TemplateKind::Event, 'A', _) => Ok(Field::Reason),
            (TemplateKind::Event, 'F', _) => Ok(Field::ProviderMessageId),
            (_, 'd' | 'A' | 'F', _) => Err("a delivery report escape, for event_url only"),
            (TemplateKind::Status, _, Some(_)) => Err("a status has no message to take it from"),
            (_, _, Some(field)) => Ok(field),
            (_, 'S' | 'b' | 'B' | 'C' | 'f' | 'm' | 'M' | 'n' | 'o' | 'O' | 'u' | 'x', _) => {
                Err("a Kannel escape with no equivalent here")
            }
            _ => Err("not a Kannel escape"),
        }
    }
}

/// Why a URL template or a callback method was refused. The message starts with the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{name}` the URL's kind does not know.
    #[error("{field}: unknown placeholder {{{name}}} (known: {known})")]
    UnknownPlaceholder {
        /// The field, e.g. `mo_url`.
        field: String,
        /// The name between the braces.
        name: String,
        /// The names this field knows, comma-separated.
        known: String,
    },
    /// A `%x` that is not supported for the URL's kind.
    #[error("{field}: unsupported escape %{escape}: {why} (supported here: {supported})")]
    UnsupportedEscape {
        /// The field.
        field: String,
        /// The character after `%`.
        escape: char,
        /// Why it is refused.
        why: &'static str,
        /// The escapes this field supports.
        supported: &'static str,
    },
    /// A `{` without its `}`.
    #[error("{field}: unclosed {{ at byte {at} (write {{{{ for a literal {{)")]
    Unclosed {
        /// The field.
        field: String,
        /// Where the `{` is.
        at: usize,
    },
    /// A `%` with nothing after it.
    #[error("{field}: a lone % at the end (write %% for a literal %)")]
    TrailingPercent {
        /// The field.
        field: String,
    },
    /// A placeholder or escape in the scheme, host or port.
    #[error(
        "{field}: {what} cannot be used in the scheme, host or port \
         (placeholders and escapes go in the path, query or fragment)"
    )]
    InAuthority {
        /// The field.
        field: String,
        /// The placeholder or escape as written.
        what: String,
    },
    /// The template does not make an absolute http(s) URL.
    #[error("{field}: not an absolute http(s) URL ({reason})")]
    NotAnUrl {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A callback method other than `POST` or `GET`.
    #[error("{field}: must be \"POST\" or \"GET\", not {value}")]
    BadMethod {
        /// The field, e.g. `mo_url_method`.
        field: String,
        /// The value given, as JSON.
        value: String,
    },
}

impl TemplateError {
    /// The field the error is about, for the 400 response.
    pub fn field(&self) -> &str {
        match self {
            TemplateError::UnknownPlaceholder { field, .. }
            | TemplateError::UnsupportedEscape { field, .. }
            | TemplateError::Unclosed { field, .. }
            | TemplateError::TrailingPercent { field }
            | TemplateError::InAuthority { field, .. }
            | TemplateError::NotAnUrl { field, .. }
            | TemplateError::BadMethod { field, .. } => field,
        }
    }
}

/// A piece of a parsed template.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    /// Copied as is.
    Literal(String),
    /// Replaced by a value, percent-encoded.
    Field(Field),
}

/// A callback URL, parsed once: literal text and the values to put between.
#[derive(Clone, Debug)]
pub struct UrlTemplate {
    /// The URL as written, for display and storage.
    text: String,
    /// Literals and fields, in order; adjacent literals are merged.
    parts: Vec<Part>,
    /// Which values it may use.
    kind: TemplateKind,
}

impl UrlTemplate {
    /// Parses `text`, the value of `field` (named in errors), for a URL of `kind`.
    ///
    /// Refuses unknown placeholders, unsupported escapes, an unclosed `{`, a lone trailing
    /// `%`, placeholders or escapes in the scheme, host or port, and a result that is not an
    /// absolute `http`/`https` URL once expanded.
    pub fn parse(
        field: &str,
        text: &str,
        kind: TemplateKind,
    ) -> Result<UrlTemplate, TemplateError> {
        let start = check_authority(field, text)?;
        let bytes = text.as_bytes();
        let mut parts = Vec::new();
        // The literal being built, and where its not yet copied run of `text` starts.
        let mut literal = String::with_capacity(text.len());
        literal.push_str(&text[..start]);
        let mut run = start;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push_str(&text[run..=i]);
                    i += 2;
                    run = i;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push_str(&text[run..=i]);
                    i += 2;
                    run = i;
                }
                b'{' => {
                    let close = text[i + 1..]
                        .find('}')
                        .ok_or_else(|| TemplateError::Unclosed {
                            field: field.to_owned(),
                            at: i,
                        })?;
                    let name = &text[i + 1..i + 1 + close];
                    let found = kind.names().iter().find(|(known, _)| *known == name);
                    let Some(&(_, found)) = found else {
                        return Err(TemplateError::UnknownPlaceholder {
                            field: field.to_owned(),
                            name: name.to_owned(),
                            known: kind
                                .names()
                                .iter()
                                .map(|(known, _)| *known)
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    };
                    literal.push_str(&text[run..i]);
                    push_field(&mut parts, &mut literal, found);
                    i += close + 2;
                    run = i;
                }
                b'%' => {
                    // A `%` is ASCII, so `i + 1` is a character boundary.
                    let Some(next) = text[i + 1..].chars().next() else {
                        return Err(TemplateError::TrailingPercent {
                            field: field.to_owned(),
                        });
                    };
                    if next == '%' {
                        literal.push_str(&text[run..=i]);
                        i += 2;
                        run = i;
                    } else if is_octet(bytes, i) {
                        i += 3;
                    } else {
                        let found =
                            kind.escape(next)
                                .map_err(|why| TemplateError::UnsupportedEscape {
                                    field: field.to_owned(),
                                    escape: next,
                                    why,
                                    supported: kind.escapes(),
                                })?;
                        literal.push_str(&text[run..i]);
                        push_field(&mut parts, &mut literal, found);
                        i += 1 + next.len_utf8();
                        run = i;
                    }
                }
                _ => i += 1,
            }
        }
        literal.push_str(&text[run..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let template = UrlTemplate {
            text: text.to_owned(),
            parts,
            kind,
        };
        template.validate(field)?;
        Ok(template)
    }

    /// Checks that the template makes an absolute http(s) URL, expanding sample values.
    fn validate(&self, field: &str) -> Result<(), TemplateError> {
        let sample = "1";
        let values = TemplateValues {
            message_id: Some(sample),
            channel_id: Some(sample),
            to: Some(sample),
            from: Some(sample),
            timestamp: Some("2015-10-06 14:16:34.578820"),
            content: Some(sample),
            session_event: Some(sample),
            group: Some(sample),
            reply_to: Some(sample),
            event_type: Some(sample),
            provider_message_id: Some(sample),
            status: Some(sample),
            reason: Some(sample),
            component: Some(sample),
            kind: Some(sample),
            message: Some(sample),
            dlr_value: Some(sample),
        };
        let not_an_url = |reason: String| TemplateError::NotAnUrl {
            field: field.to_owned(),
            reason,
        };
        let url = url::Url::parse(&self.expand(&values)).map_err(|e| not_an_url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(not_an_url(format!(
                "scheme {} is not http or https",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(not_an_url("no host".to_owned()));
        }
        Ok(())
    }

    /// The URL with `values` in place of its placeholders and escapes. Values are
    /// percent-encoded; missing ones expand to nothing.
    pub fn expand(&self, values: &TemplateValues<'_>) -> String {
        match self.parts.as_slice() {
            [] => return String::new(),
            [Part::Literal(url)] => return url.clone(),
            _ => {}
        }
        let mut out = String::with_capacity(self.text.len() + 64);
        let mut words = Words::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(field) => values.write(*field, &mut words, &mut out),
            }
        }
        out
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Which values the template may use.
    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// Whether the URL has no placeholder or escape (it expands to itself, `%%` aside).
    pub fn is_plain(&self) -> bool {
        !self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Ends the current literal (if any) and adds `field` after it.
fn push_field(parts: &mut Vec<Part>, literal: &mut String, field: Field) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
    parts.push(Part::Field(field));
}

/// Whether the `%` at `i` starts a percent-encoded octet (`%` and two hex digits).
fn is_octet(bytes: &[u8], i: usize) -> bool {
    matches!(
        (bytes.get(i + 1), bytes.get(i + 2)),
        (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
    )
}

/// Refuses placeholders and escapes in the scheme, host and port, and returns where the part
/// of `text` that is expanded starts: after `scheme://user:pass@host:port`. Without a
/// `scheme://`, all of `text` is expanded (and validation will refuse it).
fn check_authority(field: &str, text: &str) -> Result<usize, TemplateError> {
    let Some(scheme_end) = text.find("://") else {
        return Ok(0);
    };
    let scheme = &text[..scheme_end];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return Ok(0);
    }
    let authority_start = scheme_end + 3;
    let authority_end = text[authority_start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |n| authority_start + n);
    // `user:pass@` is copied as is: only the host and port are checked.
    let host_start = text[authority_start..authority_end]
        .rfind('@')
        .map_or(authority_start, |n| authority_start + n + 1);
    let bytes = text.as_bytes();
    let in_authority = |what: &str| TemplateError::InAuthority {
        field: field.to_owned(),
        what: what.to_owned(),
    };
    for (i, &b) in bytes.iter().enumerate().take(authority_end) {
        if (scheme_end..host_start).contains(&i) {
            continue;
        }
        match b {
            b'{' => {
                let end = text[i..].find('}').map_or(text.len(), |n| i + n + 1);
                return Err(in_authority(&text[i..end]));
            }
            b'%' if !is_octet(bytes, i) => {
                let end = text[i + 1..]
                    .chars()
                    .next()
                    .map_or(text.len(), |c| i + 1 + c.len_utf8());
                return Err(in_authority(&text[i..end]));
            }
            _ => {}
        }
    }
    Ok(authority_end)
}

/// The words of the content, split once per expansion when `%a %k %s %r` need them.
struct Words<'v> {
    /// `None` until first needed.
    list: Option<Vec<&'v str>>,
    /// The index of the word the next `%s` takes: Kannel starts after the keyword.
    next: usize,
}

impl<'v> Words<'v> {
    /// No words split yet.
    fn new() -> Self {
        Words {
            list: None,
            next: 1,
        }
    }

    /// All the words of `content`.
    fn all(&mut self, content: Option<&'v str>) -> &[&'v str] {
        self.list
            .get_or_insert_with(|| split_words(content))
            .as_slice()
    }

    /// The next word for `%s`, if any is left.
    fn next_word(&mut self, content: Option<&'v str>) -> Option<&'v str> {
        let list = self.list.get_or_insert_with(|| split_words(content));
        let word = list.get(self.next).copied();
        if word.is_some() {
            self.next += 1;
        }
        word
    }

    /// The words `%s` has not taken, for `%r`.
    fn rest(&mut self, content: Option<&'v str>) -> &[&'v str] {
        let list = self.list.get_or_insert_with(|| split_words(content));
        list.get(self.next..).unwrap_or_default()
    }
}

/// The words of a text, whatever the spaces between them.
fn split_words(content: Option<&str>) -> Vec<&str> {
    content.map_or_else(Vec::new, |c| c.split_whitespace().collect())
}

/// The values one callback's URL may use, borrowed from the message, event or status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateValues<'a> {
    message_id: Option<&'a str>,
    channel_id: Option<&'a str>,
    to: Option<&'a str>,
    from: Option<&'a str>,
    timestamp: Option<&'a str>,
    content: Option<&'a str>,
    session_event: Option<&'a str>,
    group: Option<&'a str>,
    reply_to: Option<&'a str>,
    event_type: Option<&'a str>,
    provider_message_id: Option<&'a str>,
    /// Delivery status (events) or level (statuses).
    status: Option<&'a str>,
    /// A nack's reason.
    reason: Option<&'a str>,
    component: Option<&'a str>,
    /// A status's `type`.
    kind: Option<&'a str>,
    /// A status's `message`.
    message: Option<&'a str>,
    /// Kannel's DLR value (`%d`).
    dlr_value: Option<&'a str>,
}

impl<'a> TemplateValues<'a> {
    /// The values of an inbound message, for `mo_url`; `channel_id` is the channel (or
    /// destination) it is delivered for.
    pub fn inbound(channel_id: &'a str, message: &'a Message) -> Self {
        TemplateValues {
            message_id: Some(&message.message_id),
            channel_id: Some(channel_id),
            timestamp: Some(&message.timestamp),
            ..Self::message_fields(message)
        }
    }

    /// The values of an event, for `event_url`. `original` is the outbound message the event
    /// is about, when still known: it gives `to`, `from`, `content` and the like.
    pub fn event(channel_id: &'a str, event: &'a Event, original: Option<&'a Message>) -> Self {
        let base = original.map(Self::message_fields).unwrap_or_default();
        let (provider_message_id, status, reason, dlr_value) = match &event.kind {
            EventKind::Ack { sent_message_id } => (sent_message_id.as_deref(), None, None, "8"),
            EventKind::Nack { nack_reason } => (None, None, Some(nack_reason.as_str()), "16"),
            EventKind::DeliveryReport {
                delivery_status,
                details,
            } => {
                let (status, value) = match delivery_status {
                    DeliveryStatus::Delivered => ("delivered", "1"),
                    DeliveryStatus::Failed => ("failed", "2"),
                    DeliveryStatus::Pending => ("pending", "4"),
                };
                let provider_id = details.get("provider_message_id").and_then(Value::as_str);
                (provider_id, Some(status), None, value)
            }
        };
        TemplateValues {
            message_id: Some(&event.user_message_id),
            channel_id: Some(channel_id),
            timestamp: Some(&event.timestamp),
            event_type: Some(crate::wire::event_type(&event.kind)),
            provider_message_id,
            status,
            reason,
            dlr_value: Some(dlr_value),
            ..base
        }
    }

    /// The values of a status event, for `status_url`.
    pub fn status(
        channel_id: &'a str,
        component: &'a str,
        status: StatusLevel,
        kind: &'a str,
        message: &'a str,
    ) -> Self {
        TemplateValues {
            channel_id: Some(channel_id),
            component: Some(component),
            status: Some(match status {
                StatusLevel::Ok => "ok",
                StatusLevel::Degraded => "degraded",
                StatusLevel::Down => "down",
            }),
            kind: Some(kind),
            message: Some(message),
            ..Self::default()
        }
    }

    /// [`TemplateValues::status`] from a [`StatusEvent`].
    pub fn status_event(channel_id: &'a str, status: &'a StatusEvent) -> Self {
        Self::status(
            channel_id,
            &status.component,
            status.status,
            &status.kind,
            &status.message,
        )
    }

    /// The addresses, text and session of a message.
    fn message_fields(message: &'a Message) -> Self {
        TemplateValues {
            to: message.to_addr.as_deref(),
            from: message.from_addr.as_deref(),
            content: message.content.as_deref(),
            session_event: message.session_event.map(|s| match s {
                SessionEvent::New => "new",
                SessionEvent::Resume => "resume",
                SessionEvent::Close => "close",
            }),
            group: message.group.as_deref(),
            reply_to: message.in_reply_to.as_deref(),
            ..Self::default()
        }
    }

    /// Appends the value of `field`, percent-encoded.
    fn write(&self, field: Field, words: &mut Words<'a>, out: &mut String) {
        let plain = match field {
            Field::MessageId => self.message_id,
            Field::ChannelId => self.channel_id,
            Field::To => self.to,
            Field::From => self.from,
            Field::Timestamp => self.timestamp,
            Field::Content => self.content,
            Field::SessionEvent => self.session_event,
            Field::Group => self.group,
            Field::ReplyTo => self.reply_to,
            Field::EventType => self.event_type,
            Field::ProviderMessageId => self.provider_message_id,
            Field::Status => self.status,
            Field::Reason => self.reason,
            Field::Component => self.component,
            Field::Type => self.kind,
            Field::StatusMessage => self.message,
            Field::DlrValue => self.dlr_value,
            Field::FromPlus => return write_plus(self.from, out),
            Field::ToPlus => return write_plus(self.to, out),
            Field::KannelTime => {
                if let Some(time) = self.time() {
                    encode(&time.format("%Y-%m-%d %H:%M:%S").to_string(), out);
                }
                return;
            }
            Field::Epoch => {
                if let Some(time) = self.time() {
                    out.push_str(&time.and_utc().timestamp().to_string());
                }
                return;
            }
            Field::Words => return write_words(words.all(self.content), out),
            Field::Keyword => {
                let first = words.all(self.content).get(..1);
                return write_words(first.unwrap_or_default(), out);
            }
            Field::NextWord => {
                if let Some(word) = words.next_word(self.content) {
                    encode(word, out);
                }
                return;
            }
            Field::RestWords => return write_words(words.rest(self.content), out),
            Field::Coding => {
                if let Some(content) = self.content {
                    out.push(if content.chars().all(is_gsm7) {
                        '0'
                    } else {
                        '2'
                    });
                }
                return;
            }
        };
        if let Some(value) = plain {
            encode(value, out);
        }
    }

    /// The timestamp, when there is one and it parses.
    fn time(&self) -> Option<chrono::NaiveDateTime> {
        chrono::NaiveDateTime::parse_from_str(self.timestamp?, "%Y-%m-%d %H:%M:%S%.f").ok()
    }
}

/// Appends `value` percent-encoded as a URL component.
fn encode(value: &str, out: &mut String) {
    out.extend(utf8_percent_encode(value, COMPONENT));
}

/// Appends words separated by one (encoded) space.
fn write_words(words: &[&str], out: &mut String) {
    for (n, word) in words.iter().enumerate() {
        if n > 0 {
            out.push_str("%20");
        }
        encode(word, out);
    }
}

/// Appends an address with a leading `00` as `+` (Kannel's `%q`, `%Q`).
fn write_plus(address: Option<&str>, out: &mut String) {
    if let Some(address) = address {
        match address.strip_prefix("00") {
            Some(rest) => {
                out.push_str("%2B");
                encode(rest, out);
            }
            None => encode(address, out),
        }
    }
}

/// Whether `c` is in the GSM 03.38 default alphabet or its extension table.
fn is_gsm7(c: char) -> bool {
    /// The characters beyond ASCII that GSM 03.38 has (basic and extension tables).
    const NON_ASCII: &str = "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà€";
    if c.is_ascii() {
        // All printable ASCII is in GSM 03.38 but the backtick; of the controls, only LF,
        // CR and (in the extension table) form feed.
        c != '`' && (!c.is_ascii_control() || matches!(c, '\n' | '\r' | '\x0c'))
    } else {
        NON_ASCII.contains(c)
    }
}

/// How a callback is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CallbackMethod {
    /// `POST` with the JSON body (API.md 10), the default.
    #[default]
    Post,
    /// `GET` with the body's top-level fields in the query ([`query_url`]).
    Get,
}

impl CallbackMethod {
    /// Parses `value`, the JSON value of `field` (e.g. `mo_url_method`): `"POST"` or
    /// `"GET"` in any case; null means `POST` (pass `Value::Null` when the field is absent).
    pub fn parse(field: &str, value: &Value) -> Result<CallbackMethod, TemplateError> {
        match value {
            Value::Null => Ok(CallbackMethod::Post),
            Value::String(s) if s.eq_ignore_ascii_case("post") => Ok(CallbackMethod::Post),
            Value::String(s) if s.eq_ignore_ascii_case("get") => Ok(CallbackMethod::Get),
            other => Err(TemplateError::BadMethod {
                field: field.to_owned(),
                value: other.to_string(),
            }),
        }
    }

    /// `"POST"` or `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackMethod::Post => "POST",
            CallbackMethod::Get => "GET",
        }
    }
}

/// The URL of a `GET` callback: `url` with the top-level fields of `body` appended as query
/// parameters, after any query already there (and before a fragment). Strings go as they
/// are, null as an empty value, numbers and booleans as their JSON text, objects and arrays
/// as compact JSON; names and values are percent-encoded. A body that is not an object adds
/// nothing.
pub fn query_url(url: &str, body: &Value) -> String {
    let Some(fields) = body.as_object().filter(|f| !f.is_empty()) else {
        return url.to_owned();
    };
    let (base, fragment) = url.split_at(url.find('#').unwrap_or(url.len()));
    let mut out = String::with_capacity(url.len() + 32 * fields.len());
    out.push_str(base);
    let mut separator = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    for (name, value) in fields {
        out.push_str(separator);
        separator = "&";
        encode(name, &mut out);
        out.push('=');
        match value {
            Value::Null => {}
            Value::String(s) => encode(s, &mut out),
            other => encode(&other.to_string(), &mut out),
        }
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHANNEL: &str = "f7b3a4c0-5e2b-4c1e-9a53-1d0c6f1e2a3b";

    /// An inbound message with every field set.
    fn inbound() -> Message {
        Message {
            message_id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
            timestamp: "2015-10-06 14:16:34.578820".into(),
            to_addr: Some("1234".into()),
            from_addr: Some("0027821234567".into()),
            group: Some("#room".into()),
            in_reply_to: Some("ffeeddccbbaa99887766554433221100".into()),
            session_event: Some(SessionEvent::Resume),
            content: Some("Join  the club & win=yes".into()),
            transport_name: CHANNEL.into(),
            transport_type: "sms".into(),
            transport_metadata: Default::default(),
            helper_metadata: Default::default(),
            expires_at: None,
        }
    }

    /// The outbound message events are about.
    fn outbound() -> Message {
        Message {
            message_id: "0123456789abcdef0123456789abcdef".into(),
            to_addr: Some("0027829876543".into()),
            from_addr: Some("1234".into()),
            content: Some("Your code is 42".into()),
            session_event: None,
            group: None,
            in_reply_to: None,
            ..inbound()
        }
    }

    /// An event about the outbound message, at a fixed time.
    fn event(kind: EventKind) -> Event {
        Event {
            event_id: "99999999999999999999999999999999".into(),
            user_message_id: "0123456789abcdef0123456789abcdef".into(),
            timestamp: "2015-10-06 14:20:00.000001".into(),
            kind,
        }
    }

    /// Parses an `mo_url` template, panicking on error.
    fn mo(text: &str) -> UrlTemplate {
        UrlTemplate::parse("mo_url", text, TemplateKind::Inbound).unwrap()
    }

    /// Parses an `event_url` template, panicking on error.
    fn ev(text: &str) -> UrlTemplate {
        UrlTemplate::parse("event_url", text, TemplateKind::Event).unwrap()
    }

    /// Expands `text` as an `mo_url` for the sample inbound message.
    fn mo_expand(text: &str) -> String {
        let message = inbound();
        mo(text).expand(&TemplateValues::inbound(CHANNEL, &message))
    }

    /// Expands `text` as an `event_url` for `kind`, with the original message known.
    fn ev_expand(text: &str, kind: EventKind) -> String {
        let (event, original) = (event(kind), outbound());
        ev(text).expand(&TemplateValues::event(CHANNEL, &event, Some(&original)))
    }

    /// An ack carrying the provider's id.
    fn ack() -> EventKind {
        EventKind::Ack {
            sent_message_id: Some("smsc-77/a".into()),
        }
    }

    /// The error message of parsing `text` for `field` and `kind`.
    fn error(field: &str, text: &str, kind: TemplateKind) -> String {
        UrlTemplate::parse(field, text, kind)
            .unwrap_err()
            .to_string()
    }

    /// Each placeholder of mo_url expands to the inbound message's value, encoded.
    #[test]
    fn inbound_placeholders() {
        let cases = [
            ("message_id", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
            ("channel_id", CHANNEL),
            ("to", "1234"),
            ("from", "0027821234567"),
            ("timestamp", "2015-10-06%2014%3A16%3A34.578820"),
            ("content", "Join%20%20the%20club%20%26%20win%3Dyes"),
            ("session_event", "resume"),
            ("group", "%23room"),
            ("reply_to", "ffeeddccbbaa99887766554433221100"),
        ];
        for (name, want) in cases {
            let got = mo_expand(&format!("http://app.example/mo?v={{{name}}}"));
            assert_eq!(got, format!("http://app.example/mo?v={want}"), "{{{name}}}");
        }
    }

    /// Each Kannel escape of mo_url yields the documented value of the inbound message.
    #[test]
    fn inbound_escapes() {
        let cases = [
            ("%p", "0027821234567"),
            ("%P", "1234"),
            ("%q", "%2B27821234567"),
            ("%Q", "1234"),
            ("%t", "2015-10-06%2014%3A16%3A34"),
            ("%T", "1444140994"),
            ("%a", "Join%20the%20club%20%26%20win%3Dyes"),
            ("%k", "Join"),
            ("%s", "the"),
            ("%r", "the%20club%20%26%20win%3Dyes"),
            ("%c", "0"),
            ("%i", CHANNEL),
            ("%I", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        ];
        for (escape, want) in cases {
            let got = mo_expand(&format!("http://app.example/mo?v={escape}"));
            assert_eq!(got, format!("http://app.example/mo?v={want}"), "{escape}");
        }
    }

    /// `%s` takes the next word each time and `%r` what is left after them, as in Kannel.
    #[test]
    fn successive_words() {
        let got = mo_expand("http://app.example/%k/%s/%s?rest=%r&all=%a");
        assert_eq!(
            got,
            "http://app.example/Join/the/club?rest=%26%20win%3Dyes\
             &all=Join%20the%20club%20%26%20win%3Dyes"
        );
        let got = mo_expand("http://app.example/?a=%s&b=%s&c=%s&d=%s&e=%s&f=%r");
        assert_eq!(
            got,
            "http://app.example/?a=the&b=club&c=%26&d=win%3Dyes&e=&f="
        );
    }

    /// `%c` is 2 (UCS-2) for text beyond GSM 03.38, 0 for GSM text with extension characters.
    #[test]
    fn coding_follows_the_alphabet() {
        let mut message = inbound();
        let template = mo("http://app.example/?c=%c");
        for (content, want) in [
            ("price: 5€ [ok] {x} ~ ^ | \\", "0"),
            ("Grüße, Ελλάδα", "2"),
            ("😀", "2"),
            ("back`tick", "2"),
            ("", "0"),
        ] {
            message.content = Some(content.into());
            let got = template.expand(&TemplateValues::inbound(CHANNEL, &message));
            assert_eq!(got, format!("http://app.example/?c={want}"), "{content:?}");
        }
        message.content = None;
        let got = template.expand(&TemplateValues::inbound(CHANNEL, &message));
        assert_eq!(got, "http://app.example/?c=");
    }

    /// Values are encoded as URL components: spaces, `&`, `=`, `/`, `+`, `?`, `#`, unicode.
    #[test]
    fn values_are_url_encoded() {
        let mut message = inbound();
        message.content = Some("a b&c=d/e+f?g#h%i é☃".into());
        let got = mo("http://app.example/{content}?c={content}")
            .expand(&TemplateValues::inbound(CHANNEL, &message));
        let encoded = "a%20b%26c%3Dd%2Fe%2Bf%3Fg%23h%25i%20%C3%A9%E2%98%83";
        assert_eq!(got, format!("http://app.example/{encoded}?c={encoded}"));
    }

    /// Missing values (no `to`, no content, no session) expand to the empty string.
    #[test]
    fn missing_values_are_empty() {
        let mut message = inbound();
        message.to_addr = None;
        message.content = None;
        message.session_event = None;
        message.group = None;
        message.in_reply_to = None;
        let got = mo(
            "http://app.example/?to={to}&c={content}&s={session_event}&g={group}\
                      &r={reply_to}&P=%P&Q=%Q&a=%a&k=%k&s=%s&r=%r",
        )
        .expand(&TemplateValues::inbound(CHANNEL, &message));
        assert_eq!(got, "http://app.example/?to=&c=&s=&g=&r=&P=&Q=&a=&k=&s=&r=");
    }

    /// An unparseable timestamp leaves `%t` and `%T` empty; one without fraction works.
    #[test]
    fn timestamp_variants() {
        let mut message = inbound();
        message.timestamp = "2015-10-06 14:16:34".into();
        let template = mo("http://app.example/?t=%t&T=%T&ts={timestamp}");
        let got = template.expand(&TemplateValues::inbound(CHANNEL, &message));
        assert_eq!(
            got,
            "http://app.example/?t=2015-10-06%2014%3A16%3A34&T=1444140994\
             &ts=2015-10-06%2014%3A16%3A34"
        );
        message.timestamp = "yesterday".into();
        let got = template.expand(&TemplateValues::inbound(CHANNEL, &message));
        assert_eq!(got, "http://app.example/?t=&T=&ts=yesterday");
    }

    /// An ack gives event_type submitted, the provider's id (also as `%F`) and DLR value 8.
    #[test]
    fn ack_values() {
        let got = ev_expand(
            "http://app.example/ev/{message_id}?type={event_type}&pid={provider_message_id}\
             &F=%F&d=%d&A=%A&status={status}&reason={reason}&I=%I&i=%i&ts={timestamp}&t=%t&T=%T",
            ack(),
        );
        assert_eq!(
            got,
            format!(
                "http://app.example/ev/0123456789abcdef0123456789abcdef?type=submitted\
                 &pid=smsc-77%2Fa&F=smsc-77%2Fa&d=8&A=&status=&reason=\
                 &I=0123456789abcdef0123456789abcdef&i={CHANNEL}\
                 &ts=2015-10-06%2014%3A20%3A00.000001&t=2015-10-06%2014%3A20%3A00&T=1444141200"
            )
        );
    }

    /// An ack without a provider id leaves `{provider_message_id}` and `%F` empty.
    #[test]
    fn ack_without_provider_id() {
        let got = ev_expand(
            "http://app.example/?pid={provider_message_id}&F=%F",
            EventKind::Ack {
                sent_message_id: None,
            },
        );
        assert_eq!(got, "http://app.example/?pid=&F=");
    }

    /// A nack gives event_type rejected, its reason (also as `%A`) and DLR value 16.
    #[test]
    fn nack_values() {
        let got = ev_expand(
            "http://app.example/?type={event_type}&reason={reason}&A=%A&d=%d&F=%F&s={status}",
            EventKind::Nack {
                nack_reason: "Throttled: retry later".into(),
            },
        );
        assert_eq!(
            got,
            "http://app.example/?type=rejected&reason=Throttled%3A%20retry%20later\
             &A=Throttled%3A%20retry%20later&d=16&F=&s="
        );
    }

    /// Delivery reports give their event_type, status and Kannel's DLR value (1, 2, 4).
    #[test]
    fn delivery_report_values() {
        let cases = [
            (
                DeliveryStatus::Delivered,
                "delivery_succeeded",
                "delivered",
                "1",
            ),
            (DeliveryStatus::Failed, "delivery_failed", "failed", "2"),
            (DeliveryStatus::Pending, "delivery_pending", "pending", "4"),
        ];
        for (delivery_status, event_type, status, dlr) in cases {
            let details = serde_json::Map::from_iter([(
                "provider_message_id".to_owned(),
                Value::from("smsc-7"),
            )]);
            let got = ev_expand(
                "http://app.example/?e={event_type}&s={status}&d=%d&A=%A&r={reason}&F=%F",
                EventKind::DeliveryReport {
                    delivery_status,
                    details,
                },
            );
            assert_eq!(
                got,
                format!("http://app.example/?e={event_type}&s={status}&d={dlr}&A=&r=&F=smsc-7")
            );
        }
    }

    /// Event templates take addresses and text from the original outbound message.
    #[test]
    fn event_uses_original_message() {
        let template = "http://app.example/?to={to}&from={from}&c={content}&p=%p&P=%P&Q=%Q\
                        &q=%q&k=%k&s=%s&r=%r&a=%a&c2=%c";
        let got = ev_expand(template, ack());
        assert_eq!(
            got,
            "http://app.example/?to=0027829876543&from=1234&c=Your%20code%20is%2042\
             &p=1234&P=0027829876543&Q=%2B27829876543&q=1234&k=Your&s=code&r=is%2042\
             &a=Your%20code%20is%2042&c2=0"
        );
    }

    /// Without the original message, its values expand to nothing; the event's remain.
    #[test]
    fn event_without_original_message() {
        let event = event(ack());
        let got = ev("http://app.example/{message_id}?to={to}&p=%p&c={content}&a=%a&c2=%c")
            .expand(&TemplateValues::event(CHANNEL, &event, None));
        assert_eq!(
            got,
            "http://app.example/0123456789abcdef0123456789abcdef?to=&p=&c=&a=&c2="
        );
    }

    /// Status templates expand the channel, component, status, type and message.
    #[test]
    fn status_values() {
        let status = StatusEvent {
            component: "smpp".into(),
            status: StatusLevel::Degraded,
            kind: "connection_lost".into(),
            message: "Lost connection (will retry)".into(),
            details: Default::default(),
        };
        let template = UrlTemplate::parse(
            "status_url",
            "http://app.example/status/{channel_id}/{component}?s={status}&t={type}&m={message}&i=%i",
            TemplateKind::Status,
        )
        .unwrap();
        let got = template.expand(&TemplateValues::status_event(CHANNEL, &status));
        assert_eq!(
            got,
            format!(
                "http://app.example/status/{CHANNEL}/smpp?s=degraded&t=connection_lost\
                 &m=Lost%20connection%20%28will%20retry%29&i={CHANNEL}"
            )
        );
        for (level, name) in [(StatusLevel::Ok, "ok"), (StatusLevel::Down, "down")] {
            let values = TemplateValues::status(CHANNEL, "c", level, "k", "m");
            assert_eq!(
                template.expand(&values),
                format!("http://app.example/status/{CHANNEL}/c?s={name}&t=k&m=m&i={CHANNEL}")
            );
        }
    }

    /// A placeholder the field's kind does not know is refused, naming field and placeholder.
    #[test]
    fn unknown_placeholder_is_refused() {
        assert_eq!(
            error(
                "mo_url",
                "http://app.example/?f={frm}",
                TemplateKind::Inbound
            ),
            "mo_url: unknown placeholder {frm} (known: message_id, channel_id, to, from, \
             timestamp, content, session_event, group, reply_to)"
        );
        let message = error(
            "mo_url",
            "http://app.example/{event_type}",
            TemplateKind::Inbound,
        );
        assert!(
            message.starts_with("mo_url: unknown placeholder {event_type}"),
            "{message}"
        );
        let message = error(
            "status_url",
            "http://app.example/{to}",
            TemplateKind::Status,
        );
        assert!(
            message.starts_with("status_url: unknown placeholder {to}"),
            "{message}"
        );
        let message = error("event_url", "http://app.example/{}", TemplateKind::Event);
        assert!(
            message.starts_with("event_url: unknown placeholder {}"),
            "{message}"
        );
    }

    /// Escapes that do not apply are refused at parse time, naming field and escape.
    #[test]
    fn unsupported_escape_is_refused() {
        let message = error("event_url", "http://app.example/?x=%x", TemplateKind::Event);
        assert!(
            message.starts_with("event_url: unsupported escape %x"),
            "{message}"
        );
        for escape in ["%d", "%A", "%F"] {
            let message = error(
                "mo_url",
                &format!("http://app.example/?v={escape}&x=1"),
                TemplateKind::Inbound,
            );
            assert!(
                message.starts_with(&format!("mo_url: unsupported escape {escape}: a delivery")),
                "{message}"
            );
        }
        for escape in [
            "%S", "%b", "%B", "%C", "%f", "%m", "%M", "%n", "%o", "%O", "%u", "%z",
        ] {
            let text = format!("http://app.example/?v={escape}");
            let message = error("event_url", &text, TemplateKind::Event);
            assert!(
                message.starts_with(&format!("event_url: unsupported escape {escape}")),
                "{message}"
            );
        }
        let message = error("status_url", "http://app.example/%p", TemplateKind::Status);
        assert!(
            message.starts_with("status_url: unsupported escape %p"),
            "{message}"
        );
        let message = error("mo_url", "http://app.example/%é", TemplateKind::Inbound);
        assert!(
            message.starts_with("mo_url: unsupported escape %é"),
            "{message}"
        );
    }

    /// An unclosed brace and a trailing `%` are refused with the field name.
    #[test]
    fn malformed_templates_are_refused() {
        assert_eq!(
            error("mo_url", "http://app.example/{to", TemplateKind::Inbound),
            "mo_url: unclosed { at byte 19 (write {{ for a literal {)"
        );
        assert_eq!(
            error("event_url", "http://app.example/?x=%", TemplateKind::Event),
            "event_url: a lone % at the end (write %% for a literal %)"
        );
    }

    /// Something that is not an absolute http(s) URL is refused when set.
    #[test]
    fn non_urls_are_refused() {
        for text in [
            "",
            "not a url",
            "/relative/{to}",
            "{to}",
            "ftp://app.example/{to}",
            "mailto:someone@example.com",
            "http://",
        ] {
            let got = UrlTemplate::parse("mo_url", text, TemplateKind::Inbound).unwrap_err();
            assert!(
                matches!(got, TemplateError::NotAnUrl { .. }),
                "{text:?}: {got}"
            );
            assert!(got
                .to_string()
                .starts_with("mo_url: not an absolute http(s) URL"));
            assert_eq!(got.field(), "mo_url");
        }
    }

    /// Placeholders and escapes are refused in the scheme, host and port.
    #[test]
    fn placeholders_in_host_are_refused() {
        for (text, what) in [
            ("http://{to}.example/", "{to}"),
            ("http://app.example:{channel_id}/", "{channel_id}"),
            ("http://app%p.example/", "%p"),
            ("http://user:pw@{from}/", "{from}"),
        ] {
            assert_eq!(
                error("mo_url", text, TemplateKind::Inbound),
                format!(
                    "mo_url: {what} cannot be used in the scheme, host or port \
                     (placeholders and escapes go in the path, query or fragment)"
                )
            );
        }
    }

    /// `%%` is a literal `%`, and `{{`/`}}` are literal braces.
    #[test]
    fn literal_percent_and_braces() {
        assert_eq!(
            mo_expand("http://app.example/100%%/{{to}}/}?x=%%p"),
            "http://app.example/100%/{to}/}?x=%p"
        );
        assert!(mo("http://app.example/%%").is_plain());
    }

    /// URLs without placeholders expand to themselves, percent-encoded octets included.
    #[test]
    fn plain_urls_are_unchanged() {
        for text in [
            "http://app.example/",
            "https://app.example:8443/hooks/mo?token=abc&x=%20y&name=%C3%A9&z=%2F#frag",
            "http://127.0.0.1:9000/a%2Fb/%AF%d3",
        ] {
            let template = mo(text);
            assert!(template.is_plain());
            assert_eq!(template.as_str(), text);
            assert_eq!(template.to_string(), text);
            let message = inbound();
            assert_eq!(
                template.expand(&TemplateValues::inbound(CHANNEL, &message)),
                text
            );
        }
    }

    /// Credentials are copied as they are, even with `%`, `{` or an escape-like sequence.
    #[test]
    fn credentials_are_untouched() {
        assert_eq!(
            mo_expand("http://us%40er:p%p{x}%@app.example:8080/mo/{to}?f=%p"),
            "http://us%40er:p%p{x}%@app.example:8080/mo/1234?f=0027821234567"
        );
        assert_eq!(
            mo_expand("https://user:secret@app.example/mo"),
            "https://user:secret@app.example/mo"
        );
    }

    /// Placeholders and escapes may be adjacent and mixed, with a fragment too.
    #[test]
    fn mixed_notations() {
        assert_eq!(
            mo_expand("http://app.example/{to}%p{from}#%I"),
            "http://app.example/123400278212345670027821234567\
             #a1b2c3d4e5f60718293a4b5c6d7e8f90"
        );
    }

    /// The method is POST or GET in any case; null is POST; anything else is refused.
    #[test]
    fn callback_method() {
        for (value, want) in [
            (json!(null), CallbackMethod::Post),
            (json!("POST"), CallbackMethod::Post),
            (json!("post"), CallbackMethod::Post),
            (json!("GET"), CallbackMethod::Get),
            (json!("Get"), CallbackMethod::Get),
        ] {
            assert_eq!(CallbackMethod::parse("mo_url_method", &value), Ok(want));
        }
        assert_eq!(CallbackMethod::default(), CallbackMethod::Post);
        assert_eq!(CallbackMethod::Get.as_str(), "GET");
        for value in [json!("PUT"), json!(1), json!(true), json!(["GET"])] {
            let got = CallbackMethod::parse("event_url_method", &value).unwrap_err();
            assert_eq!(got.field(), "event_url_method");
            assert_eq!(
                got.to_string(),
                format!("event_url_method: must be \"POST\" or \"GET\", not {value}")
            );
        }
    }

    /// GET callbacks carry the body's fields in the query, typed as documented.
    #[test]
    fn query_from_body() {
        let body = json!({
            "to": "+27 82",
            "from": null,
            "n": 5,
            "ok": true,
            "channel_data": {"session_event": "new"},
            "list": [1, "a"],
        });
        let url = query_url("http://app.example/mo", &body);
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "http://app.example/mo");
        // The order of the fields is the body's (serde_json's map order).
        let mut pairs: Vec<&str> = query.split('&').collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            [
                "channel_data=%7B%22session_event%22%3A%22new%22%7D",
                "from=",
                "list=%5B1%2C%22a%22%5D",
                "n=5",
                "ok=true",
                "to=%2B27%2082",
            ]
        );
    }

    /// An existing query string and fragment are kept; credentials stay untouched.
    #[test]
    fn query_keeps_existing_parts() {
        let body = json!({"a": "1 2"});
        for (url, want) in [
            (
                "http://app.example/mo?x=1",
                "http://app.example/mo?x=1&a=1%202",
            ),
            ("http://app.example/mo?", "http://app.example/mo?a=1%202"),
            (
                "http://app.example/mo?x=1&",
                "http://app.example/mo?x=1&a=1%202",
            ),
            (
                "http://app.example/mo#top",
                "http://app.example/mo?a=1%202#top",
            ),
            (
                "http://u:p@app.example/mo?x#f",
                "http://u:p@app.example/mo?x&a=1%202#f",
            ),
        ] {
            assert_eq!(query_url(url, &body), want);
        }
        assert_eq!(
            query_url("http://app.example/mo?x=1", &json!({})),
            "http://app.example/mo?x=1"
        );
        assert_eq!(
            query_url("http://app.example/mo", &json!("text")),
            "http://app.example/mo"
        );
    }

    /// The GET URL of a real inbound body parses back to the same values.
    #[test]
    fn query_round_trips() {
        let message = inbound();
        let body = crate::wire::message_json(&message);
        let url = url::Url::parse(&query_url("http://app.example/mo?k=v", &body)).unwrap();
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["k"], "v");
        assert_eq!(pairs["content"], "Join  the club & win=yes");
        assert_eq!(pairs["from"], "0027821234567");
        assert_eq!(pairs["to"], "1234");
        assert_eq!(pairs["channel_data"], r#"{"session_event":"resume"}"#);
    }

    /// An expanded template parses back to the values it was given.
    #[test]
    fn expansion_round_trips() {
        let mut message = inbound();
        message.content = Some("x=1&y=2 / ü + 😀".into());
        let got = mo("http://app.example/{from}/in?text={content}&to=%P")
            .expand(&TemplateValues::inbound(CHANNEL, &message));
        let url = url::Url::parse(&got).unwrap();
        assert_eq!(url.path(), "/0027821234567/in");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("text".to_owned(), "x=1&y=2 / ü + 😀".to_owned()),
                ("to".to_owned(), "1234".to_owned()),
            ]
        );
    }

    /// A template is kept pre-split: literals merged, one part per value.
    #[test]
    fn parsed_once_into_parts() {
        let template = mo("http://app.example/%%{{/{to}?a=%p");
        assert_eq!(
            template.parts,
            vec![
                Part::Literal("http://app.example/%{/".into()),
                Part::Field(Field::To),
                Part::Literal("?a=".into()),
                Part::Field(Field::From),
            ]
        );
        assert_eq!(template.kind(), TemplateKind::Inbound);
    }
}
