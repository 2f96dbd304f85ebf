//! Twilio's request signature, `X-Twilio-Signature`: base64 of the HMAC-SHA1, keyed with
//! the account's auth token, of the full URL Twilio called (with its query string) followed
//! by every POST parameter, sorted by name, as name and value with no separators. A GET
//! request (or a POST that is not a form) signs the URL alone.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::transports::web::same_secret;
use crate::webhook::WebhookRequest;

/// The signature of a request to `url` with POST `params`, keyed with `auth_token`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC takes a key of any length: this cannot fail, and an empty signature (matched by
    // no request) is the safe answer if it ever did.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL Twilio signed for `request`: `public_url` (the channel's webhook base as Twilio
/// knows it) with the request's path and query, or the URL the request arrived at.
pub fn signed_url(request: &WebhookRequest, public_url: Option<&str>) -> String {
    match public_url {
        Some(base) if request.query.is_empty() => format!("{base}/{}", request.path),
        Some(base) => format!("{base}/{}?{}", request.path, request.query),
        None => request.url.clone(),
    }
}

/// Whether `request` carries a valid signature for `auth_token`.
pub fn is_signed(request: &WebhookRequest, auth_token: &str, public_url: Option<&str>) -> bool {
    let Some(given) = request.header("x-twilio-signature") else {
        return false;
    };
    let is_form = request.method == "POST"
        && request.header("content-type").is_some_and(|kind| {
            kind.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let params: Vec<(String, String)> = if is_form {
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect()
    } else {
        Vec::new()
    };
    let expected = signature(auth_token, &signed_url(request, public_url), &params);
    !expected.is_empty() && same_secret(given.trim(), &expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The worked example of Twilio's security documentation.
    #[test]
    fn twilio_documented_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    /// A form POST is checked against its URL and body; a changed field, URL or a missing
    /// header fails; behind a proxy the public URL is what counts.
    #[test]
    fn requests_are_checked() {
        let body = "To=%2B1555&Body=hi+there&From=%2B1666";
        let params = pairs(&[("To", "+1555"), ("Body", "hi there"), ("From", "+1666")]);
        let url = "https://jb.example/channels/c/inbound/mo";
        let mut request = WebhookRequest {
            method: "POST".into(),
            path: "mo".into(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("x-twilio-signature".into(), signature("tok", url, &params)),
            ],
            body: body.as_bytes().to_vec(),
            url: url.into(),
            ..Default::default()
        };
        assert!(is_signed(&request, "tok", None));
        assert!(!is_signed(&request, "other", None));
        let public = Some("https://jb.example/channels/c/inbound");
        request.url = "http://10.0.0.5:8080/channels/c/inbound/mo".into();
        assert!(!is_signed(&request, "tok", None));
        assert!(is_signed(&request, "tok", public));
        request.body = b"To=%2B1555&Body=bye&From=%2B1666".to_vec();
        assert!(!is_signed(&request, "tok", public));
        request.headers.pop();
        assert!(!is_signed(&request, "tok", public));
    }
}
