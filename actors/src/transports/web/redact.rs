//! Masking a channel's secrets in what goes to the channel log.

use serde_json::{json, Value};

/// What a secret is shown as in the channel log.
pub const MASK: &str = "********";

/// How much of a body the channel log keeps.
const LOGGED_BODY: usize = 4096;

/// Masks a channel's secrets in what goes to the channel log.
///
/// Built from the secret values of a channel's config (passwords, tokens, API keys), so it
/// masks them wherever they appear: in a URL's query, a form or JSON body, a header. Values
/// of `Authorization` (and `Proxy-Authorization`) headers are masked whole. The daemon's log
/// writer redacts secret-*named* fields again; this catches secrets under any name.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secret forms)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored). Each secret is also masked in its
    /// percent-encoded and form-encoded forms, as it appears in URLs and form bodies.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            all.push(secret.to_owned());
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            all.push(encoded.clone());
            all.push(encoded.replace('+', "%20"));
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Redactor { secrets: all }
    }

    /// `text` with every secret masked.
    pub fn text(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    /// Headers as `[name, value]` pairs for a trace, credentials masked.
    pub fn headers<'a>(&self, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        let pairs: Vec<Value> = headers
            .into_iter()
            .map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                let value = if lower == "authorization" || lower == "proxy-authorization" {
                    masked_credential(value)
                } else {
                    self.text(value)
                };
                json!([name, value])
            })
            .collect();
        Value::Array(pairs)
    }

    /// A body for a trace: text (cut to a few KiB), secrets masked.
    pub fn body(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        self.text(&cut(&text, LOGGED_BODY))
    }
}

/// `Basic dXNl…` → `Basic ********`: the scheme stays, the credential goes.
fn masked_credential(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {MASK}"),
        None => MASK.to_owned(),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets are masked wherever they appear, raw or encoded; Authorization headers whole.
    #[test]
    fn redaction() {
        let redactor = Redactor::new(["s3cr3t pass", "tok/en", ""]);
        assert_eq!(
            redactor.text("https://api.example/send?key=tok%2Fen&x=1"),
            "https://api.example/send?key=********&x=1"
        );
        assert_eq!(
            redactor.text("password=s3cr3t+pass&to=1"),
            "password=********&to=1"
        );
        assert_eq!(
            redactor.text(r#"{"auth": "s3cr3t pass"}"#),
            r#"{"auth": "********"}"#
        );
        let headers = redactor.headers([
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("X-Api", "tok/en"),
            ("Accept", "application/json"),
        ]);
        assert_eq!(
            headers,
            json!([
                ["Authorization", "Basic ********"],
                ["X-Api", "********"],
                ["Accept", "application/json"]
            ])
        );
    }
}
