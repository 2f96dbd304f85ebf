//! Templates in an `http` channel's config: text with `{name}` placeholders filled from the
//! outbound message. `{{` and `}}` stand for literal braces. Unknown names are refused when
//! the config is validated, not at the first send.
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::message::Message;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 6] = [
    "to",
    "from",
    "content",
    "message_id",
    "reply_to",
    "channel_id",
];

/// What is percent-encoded in a URL placeholder's value: everything but RFC 3986's
/// unreserved characters, so a value cannot change the URL's structure.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(&'static str),
}

impl Template {
    /// Parses `text`; the error says what is wrong (an unknown or unclosed placeholder).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed placeholder {{{name}")),
                        }
                    }
                    let Some(field) = PLACEHOLDERS.iter().find(|known| **known == name) else {
                        return Err(format!(
                            "unknown placeholder {{{name}}} (known: {})",
                            PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
                        ));
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(field));
                }
                '}' => return Err("a lone } (write }} for a literal brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// The text for `message` on channel `channel_id` (a missing value is empty).
    pub fn render(&self, message: &Message, channel_id: &str) -> String {
        self.expand(message, channel_id, |value| value.to_owned())
    }

    /// The text for `message`, each value percent-encoded (for URLs).
    pub fn render_url(&self, message: &Message, channel_id: &str) -> String {
        self.expand(message, channel_id, |value| {
            utf8_percent_encode(value, URL_VALUE).to_string()
        })
    }

    /// Whether the template is exactly one placeholder (a JSON body's `"{content}"` is then
    /// the value itself: `null` when the message has none).
    pub fn sole_field(&self) -> Option<&'static str> {
        match self.0.as_slice() {
            [Piece::Field(field)] => Some(field),
            _ => None,
        }
    }

    fn expand(
        &self,
        message: &Message,
        channel_id: &str,
        encode: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) => out.push_str(&encode(
                    value(message, channel_id, field).unwrap_or_default(),
                )),
            }
        }
        out
    }
}

/// The value of placeholder `field` for `message`.
pub fn value<'a>(message: &'a Message, channel_id: &'a str, field: &str) -> Option<&'a str> {
    match field {
        "to" => message.to_addr.as_deref(),
        "from" => message.from_addr.as_deref(),
        "content" => message.content.as_deref(),
        "message_id" => Some(&message.message_id),
        "reply_to" => message.in_reply_to.as_deref(),
        "channel_id" => Some(channel_id),
        _ => None,
    }
}
