//! Secrets out of channel log entries, applied by the writer to every entry's `message` and
//! `trace`, so producers may log whole PDUs, configs and HTTP exchanges.
//!
//! What counts as a secret is decided by *name* ([`is_secret_name`]): a name that contains
//! `pass` (password, passwd, passphrase), `pwd`, `secret`, `token`, `auth` (authorization,
//! auth_token), `cookie` or `credential`, or ends in `key` (key, api_key, apikey, x-api-key,
//! access_key), compared case-insensitively. Over-redacting a harmless field (`author`) is the
//! price of never writing a real one.
//!
//! - JSON (a `trace`): the value of every object key with a secret name becomes `"***"`,
//!   whatever it was; a `[name, value]` pair of strings (a header list) with a secret name has
//!   its value masked; every other string is redacted as text.
//! - Text (`message`, and strings inside a trace): the password of `scheme://user:pass@host`
//!   becomes `***`; the value of `name=value`, `name: value`, `"name": "value"` with a secret
//!   name becomes `***` (query strings, form bodies, headers, JSON or configs printed as
//!   text). For an auth scheme (`Authorization: Basic dXNlcjpwYXNz`) the credential after the
//!   scheme goes too.
//!
//! Every string of every entry passes through here, and nearly none holds a secret: a cheap
//! pre-check (`may_hold_secret`: an `@`, or a `=`/`:` and a secret name part anywhere) spares
//! those the full scan, and nothing is allocated unless something is masked.
use serde_json::Value;

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// Parts of names that mark their values as secrets.
const SECRET_PARTS: [&str; 7] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "cookie",
    "credential",
];

/// How a secret name may end instead (`api_key`, `X-Api-Key`).
const SECRET_SUFFIX: &str = "key";

/// Words that name an auth scheme in front of a credential (`Basic …`, `Bearer …`).
const AUTH_SCHEMES: [&str; 5] = ["basic", "bearer", "token", "digest", "negotiate"];

/// Whether a field, parameter or header called `name` holds a secret. Called for every key
/// of every trace, so it does not allocate.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_PARTS
        .iter()
        .any(|part| contains_ignore_case(name, part.as_bytes()))
        || name
            .len()
            .checked_sub(SECRET_SUFFIX.len())
            .is_some_and(|start| name[start..].eq_ignore_ascii_case(SECRET_SUFFIX.as_bytes()))
}

/// Whether `haystack` contains `needle` (lowercase ASCII), ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Whether `text` may hold a secret at all: the cheap test that spares most strings the
/// full scan. A URL password needs an `@`; a named value needs a `=` or `:` and a secret
/// name, which contains one of [`SECRET_PARTS`] or [`SECRET_SUFFIX`] whatever surrounds it.
fn may_hold_secret(text: &str) -> bool {
    let bytes = text.as_bytes();
    let named = bytes.iter().any(|b| matches!(b, b'=' | b':'))
        && SECRET_PARTS
            .iter()
            .chain([&SECRET_SUFFIX])
            .any(|part| contains_ignore_case(bytes, part.as_bytes()));
    named || bytes.contains(&b'@')
}

/// Redacts a trace in place.
pub fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_name(key) {
                    *inner = Value::String(MASK.to_owned());
                } else {
                    redact_json(inner);
                }
            }
        }
        Value::Array(items) => {
            let header_pair = matches!(items.as_slice(),
                [Value::String(name), Value::String(_)] if is_secret_name(name));
            if header_pair {
                items[1] = Value::String(MASK.to_owned());
            } else {
                items.iter_mut().for_each(redact_json);
            }
        }
        Value::String(text) => {
            if let Some(clean) = redact_text(text) {
                *text = clean;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with its secrets masked, or `None` when there is nothing to mask.
pub fn redact_text(text: &str) -> Option<String> {
    if !may_hold_secret(text) {
        return None;
    }
    let mut spans = url_passwords(text);
    spans.extend(named_values(text));
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if end <= at {
            continue; // inside a span already masked
        }
        let start = start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    (out != text).then_some(out)
}

/// Characters that end a URL in running text.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`')
}

/// The byte spans of the passwords in `scheme://user:pass@host` URLs.
fn url_passwords(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let rest = &text[start..];
        let authority_len = rest
            .find(|c: char| ends_url(c) || matches!(c, '/' | '?' | '#'))
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                if colon + 1 < at {
                    spans.push((start + colon + 1, start + at));
                }
            }
        }
        from = start;
    }
    spans
}

/// Whether `c` may be part of a field or parameter name.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Characters that end an unquoted value.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | ',' | ';' | '"' | '\'' | '}' | ']' | ')' | '<' | '>'
        )
}

/// The byte spans of the values of secret-named `name=value` / `name: value` pairs.
fn named_values(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (sep, c) in text.char_indices() {
        if c != '=' && c != ':' {
            continue;
        }
        let Some(name) = name_before(&text[..sep]) else {
            continue;
        };
        if !is_secret_name(name) {
            continue;
        }
        let after = sep + 1;
        // `://` is a URL's scheme, not a value (its password is found by `url_passwords`).
        if c == ':' && text[after..].starts_with("//") {
            continue;
        }
        if let Some(span) = value_after(text, after) {
            spans.push(span);
        }
    }
    spans
}

/// The name right before a separator: `name`, `"name"` or `name ` (for `name : value`).
fn name_before(head: &str) -> Option<&str> {
    let trimmed = head.trim_end_matches([' ', '\t']);
    let trimmed = trimmed
        .strip_suffix('"')
        .or_else(|| trimmed.strip_suffix('\''))
        .unwrap_or(trimmed);
    let start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| name_char(*c))
        .last()
        .map(|(i, _)| i)?;
    Some(&trimmed[start..])
}

/// The span of the value starting at byte `from` (after optional blanks): up to the closing
/// quote of a quoted value, else up to the first character that ends a value; an auth scheme
/// keeps its credential with it.
fn value_after(text: &str, from: usize) -> Option<(usize, usize)> {
    let rest = &text[from..];
    let start = from + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
    let rest = &text[start..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
    let (start, end) = match quote {
        Some(q) => {
            let inner = &rest[1..];
            let mut escaped = false;
            let len = inner
                .char_indices()
                .find(|(_, c)| {
                    let closes = *c == q && !escaped;
                    escaped = *c == '\\' && !escaped;
                    closes
                })
                .map_or(inner.len(), |(i, _)| i);
            (start + 1, start + 1 + len)
        }
        None => {
            let token_len = rest.find(ends_value).unwrap_or(rest.len());
            let token = &rest[..token_len];
            let after_token = &rest[token_len..];
            let credential = after_token
                .strip_prefix(' ')
                .filter(|_| AUTH_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(token)));
            match credential {
                Some(cred) => {
                    let len = cred.find(ends_value).unwrap_or(cred.len());
                    (start + token_len + 1, start + token_len + 1 + len)
                }
                None => (start, start + token_len),
            }
        }
    };
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> String {
        redact_text(s).unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "PASSWD",
            "Authorization",
            "auth_token",
            "api_key",
            "ApiKey",
            "X-Api-Key",
            "key",
            "client_secret",
            "mo_url_auth_token",
            "Set-Cookie",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["system_id", "to", "content", "message_id", "keyword", "url"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn url_credentials_lose_their_password() {
        assert_eq!(
            text("POST http://user:s3cr3t@127.0.0.1:8080/events failed"),
            "POST http://user:***@127.0.0.1:8080/events failed"
        );
        assert_eq!(
            text("amqp://guest:guest@host/%2f and redis://:pw@h:6379/0"),
            "amqp://guest:***@host/%2f and redis://:***@h:6379/0"
        );
        // A user alone, or an `@` in the path, is not a password.
        assert_eq!(redact_text("http://user@host/x"), None);
        assert_eq!(redact_text("http://host/a:b@c"), None);
        assert_eq!(redact_text("http://host:8080/x"), None);
    }

    #[test]
    fn query_parameters_and_form_fields() {
        assert_eq!(
            text("http://h/x?to=27&password=p%40ss&api_token=t0p&Key=k&keyword=ok#frag"),
            "http://h/x?to=27&password=***&api_token=***&Key=***&keyword=ok#frag"
        );
        assert_eq!(text("user=bob&passwd=hunter2"), "user=bob&passwd=***");
        assert_eq!(text("http://u:p@h/?token=abc"), "http://u:***@h/?token=***");
    }

    #[test]
    fn json_and_headers_printed_as_text() {
        assert_eq!(
            text(r#"config: {"password":"s3\"cr3t","twisted_endpoint":"tcp:0","secret": 42}"#),
            r#"config: {"password":"***","twisted_endpoint":"tcp:0","secret": ***}"#
        );
        assert_eq!(
            text("Authorization: Basic dXNlcjpwYXNz\r\nHost: h"),
            "Authorization: Basic ***\r\nHost: h"
        );
        assert_eq!(text("Authorization: s3cr3t"), "Authorization: ***");
        assert_eq!(text("Your password: 1234"), "Your password: ***");
        // Words alone are not values.
        assert_eq!(redact_text("the token expired at 12:30"), None);
        assert_eq!(redact_text("Message 12ab sent in 3 ms"), None);
    }

    #[test]
    fn traces_are_redacted_by_key_and_by_text() {
        let mut trace = json!({
            "pdu": {"command": "bind_transceiver", "system_id": "smppclient1",
                    "password": "pw123", "sequence_number": 1},
            "request": {
                "method": "POST",
                "url": "https://user:hunter2@example.com/send?apikey=abc&to=27",
                "headers": [["Authorization", "Token xyz"], ["Accept", "*/*"]],
                "body": "username=u&password=hunter3",
            },
            "Auth_Token": {"nested": "anything"},
            "count": 3,
        });
        redact_json(&mut trace);
        assert_eq!(
            trace,
            json!({
                "pdu": {"command": "bind_transceiver", "system_id": "smppclient1",
                        "password": "***", "sequence_number": 1},
                "request": {
                    "method": "POST",
                    "url": "https://user:***@example.com/send?apikey=***&to=27",
                    "headers": [["Authorization", "***"], ["Accept", "*/*"]],
                    "body": "username=u&password=***",
                },
                "Auth_Token": "***",
                "count": 3,
            })
        );
    }

    /// The pre-check lets through every text that has a secret, and nothing else is masked
    /// because of it.
    #[test]
    fn the_pre_check_skips_only_texts_without_secrets() {
        for plain in ["Message 12ab sent in 3 ms", "to=27&content=hi", "a b: c"] {
            assert!(!may_hold_secret(plain), "{plain}");
            assert_eq!(redact_text(plain), None);
        }
        for secret in [
            "x?API_KEY=1",
            "PassWord: 2",
            "http://u:p@h/",
            "Set-Cookie: a",
        ] {
            assert!(may_hold_secret(secret), "{secret}");
            assert!(redact_text(secret).is_some(), "{secret}");
        }
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(text("passé: x, pass: é€ ok"), "passé: x, pass: *** ok");
        assert_eq!(redact_text("ünïcödé : = :// @"), None);
    }
}
