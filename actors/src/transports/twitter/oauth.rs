//! How a `twitter` channel signs its requests: OAuth 1.0a user context (HMAC-SHA1, RFC 5849
//! §3.4, as X's "Creating a signature" page describes it) or an OAuth 2.0 user access token.
//!
//! Signing is written here rather than taken from a crate: it is forty lines over `hmac` and
//! `sha1` (already in the build through the XMPP stack), and it must sign the exact query
//! pairs [`super::api`] puts in the URL. The unit tests check it against X's worked example.
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::Sha1;

use crate::transports::web::{Auth, Redactor};
use crate::transports::Password;

/// RFC 3986 unreserved characters stay, everything else is percent-encoded (RFC 5849 §3.6).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A channel's credentials (their `Debug` masks the secrets).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// OAuth 1.0a user context: the app's key pair and the account's token pair.
    OAuth1 {
        /// API key.
        consumer_key: Password,
        /// API key secret.
        consumer_secret: Password,
        /// Access token.
        access_token: Password,
        /// Access token secret.
        access_token_secret: Password,
    },
    /// OAuth 2.0 user context: `Authorization: Bearer <user access token>`.
    Bearer(Password),
}

impl Credentials {
    /// Masks every credential in the channel log.
    pub fn redactor(&self) -> Redactor {
        match self {
            Credentials::OAuth1 {
                consumer_key,
                consumer_secret,
                access_token,
                access_token_secret,
            } => Redactor::new([
                consumer_key.reveal(),
                consumer_secret.reveal(),
                access_token.reveal(),
                access_token_secret.reveal(),
            ]),
            Credentials::Bearer(token) => Redactor::new([token.reveal()]),
        }
    }

    /// The `Authorization` of a request: `method` to `base_url` (the URL without its query)
    /// with query parameters `query`. A JSON body is not signed (RFC 5849 §3.4.1.3 signs
    /// form bodies only).
    pub fn authorize(&self, method: &str, base_url: &str, query: &[(String, String)]) -> Auth {
        match self {
            Credentials::Bearer(token) => Auth::Bearer(token.clone()),
            Credentials::OAuth1 {
                consumer_key,
                consumer_secret,
                access_token,
                access_token_secret,
            } => {
                let nonce: String = std::iter::repeat_with(fastrand::alphanumeric)
                    .take(32)
                    .collect();
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let oauth = [
                    ("oauth_consumer_key", consumer_key.reveal()),
                    ("oauth_nonce", nonce.as_str()),
                    ("oauth_signature_method", "HMAC-SHA1"),
                    ("oauth_timestamp", timestamp.as_str()),
                    ("oauth_token", access_token.reveal()),
                    ("oauth_version", "1.0"),
                ];
                let mut params: Vec<(&str, &str)> = oauth.to_vec();
                params.extend(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let signature = signature(
                    method,
                    base_url,
                    &params,
                    consumer_secret.reveal(),
                    access_token_secret.reveal(),
                );
                let mut fields: Vec<(&str, &str)> = oauth.to_vec();
                fields.push(("oauth_signature", signature.as_str()));
                fields.sort();
                let header = fields
                    .iter()
                    .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                Auth::Header(Password(format!("OAuth {header}")))
            }
        }
    }
}

/// RFC 3986 percent-encoding, as OAuth 1.0a wants it.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The signature base string: `METHOD&encoded base URL&encoded sorted parameters`, the
/// parameters (OAuth's and the request's, decoded) each encoded, sorted, joined with `&`.
pub fn base_string(method: &str, base_url: &str, params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let joined = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_url),
        encode(&joined)
    )
}

/// The HMAC-SHA1 signature (base64) of a request with parameters `params`, keyed by the
/// consumer secret and the token secret.
pub fn signature(
    method: &str,
    base_url: &str,
    params: &[(&str, &str)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(base_string(method, base_url, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X's worked example ("Creating a signature"): its parameters, base string and the
    /// signature every conforming implementation computes from them.
    const PARAMS: [(&str, &str); 8] = [
        (
            "status",
            "Hello Ladies + Gentlemen, a signed OAuth request!",
        ),
        ("include_entities", "true"),
        ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
        ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "1318622958"),
        (
            "oauth_token",
            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        ),
        ("oauth_version", "1.0"),
    ];
    const URL: &str = "https://api.twitter.com/1.1/statuses/update.json";

    #[test]
    fn documented_example_base_string() {
        assert_eq!(
            base_string("post", URL, &PARAMS),
            "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&\
             include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26\
             oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26\
             oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26\
             oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26\
             oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen\
             %252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
    }

    #[test]
    fn documented_example_signature() {
        let signature = signature(
            "POST",
            URL,
            &PARAMS,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        );
        assert_eq!(signature, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    /// The header carries every oauth_ field, quoted and encoded, and verifies.
    #[test]
    fn header_is_well_formed_and_verifies() {
        let credentials = Credentials::OAuth1 {
            consumer_key: Password("ck".into()),
            consumer_secret: Password("c s".into()),
            access_token: Password("at".into()),
            access_token_secret: Password("t/s".into()),
        };
        let query = vec![("since_id".to_owned(), "5".to_owned())];
        let Auth::Header(header) = credentials.authorize("GET", "http://h/2/x", &query) else {
            panic!("OAuth 1.0a gives a ready header");
        };
        let header = header.reveal().strip_prefix("OAuth ").unwrap().to_owned();
        let fields: Vec<(String, String)> = header
            .split(", ")
            .map(|field| {
                let (k, v) = field.split_once('=').unwrap();
                let v = v.trim_matches('"');
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8()
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("oauth_consumer_key").as_deref(), Some("ck"));
        assert_eq!(get("oauth_signature_method").as_deref(), Some("HMAC-SHA1"));
        let mut params: Vec<(&str, &str)> = fields
            .iter()
            .filter(|(k, _)| k != "oauth_signature")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.push(("since_id", "5"));
        let expected = signature("GET", "http://h/2/x", &params, "c s", "t/s");
        assert_eq!(get("oauth_signature"), Some(expected));
    }
}
