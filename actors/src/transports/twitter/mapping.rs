//! Tweets and direct messages to and from Junebug messages.
//!
//! Addresses are `@screen_name`, as in vumi's `TwitterTransport`. An inbound message's
//! `transport_metadata.twitter` carries what a reply needs (it is copied onto the reply);
//! its `helper_metadata.twitter` (the application's `channel_data.twitter`) says what it is.
use serde_json::{json, Map, Value};

use super::api::Identity;
use crate::message::{new_message_id, timestamp_now, Message};
use crate::transport::SendError;

/// The `transport_type` of this channel's messages.
pub const TRANSPORT_TYPE: &str = "twitter";

/// `channel_data.twitter.type` / `transport_metadata.twitter.kind` of a tweet.
pub const TWEET: &str = "tweet";

/// `channel_data.twitter.type` / `transport_metadata.twitter.kind` of a direct message.
pub const DIRECT_MESSAGE: &str = "direct_message";

/// `@name`.
fn address(username: &str) -> String {
    format!("@{username}")
}

/// The username of user `id` among a page's `includes.users`.
fn username_of<'a>(page: &'a Value, id: &str) -> Option<&'a str> {
    page["includes"]["users"]
        .as_array()?
        .iter()
        .find(|user| user["id"].as_str() == Some(id))?["username"]
        .as_str()
}

/// A message from the provider, with the metadata of its kind.
fn inbound(
    channel_id: &str,
    from: String,
    to: &Identity,
    content: String,
    metadata: Map<String, Value>,
) -> Message {
    let mut helper = metadata.clone();
    helper.remove("kind");
    helper.insert("type".into(), metadata["kind"].clone());
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: Some(address(&to.username)),
        from_addr: Some(from),
        group: None,
        in_reply_to: None,
        session_event: None,
        content: Some(content),
        transport_name: channel_id.to_owned(),
        transport_type: TRANSPORT_TYPE.to_owned(),
        transport_metadata: Map::from_iter([(TRANSPORT_TYPE.to_owned(), Value::Object(metadata))]),
        helper_metadata: Map::from_iter([(TRANSPORT_TYPE.to_owned(), Value::Object(helper))]),
        expires_at: None,
    }
}

/// A mention (one of `page`'s `data`) as an inbound message; `None` for our own tweets and
/// entries without an id or text. Like vumi, a leading `@us` is cut from the content.
pub fn mention(channel_id: &str, us: &Identity, page: &Value, tweet: &Value) -> Option<Message> {
    let id = tweet["id"].as_str()?;
    let text = tweet["text"].as_str()?;
    let author_id = tweet["author_id"].as_str().unwrap_or_default();
    if author_id == us.id {
        return None;
    }
    let from = username_of(page, author_id).map_or_else(|| author_id.to_owned(), address);
    let ours = address(&us.username);
    let content = match text.get(..ours.len()) {
        Some(head)
            if head.eq_ignore_ascii_case(&ours)
                && text[ours.len()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace) =>
        {
            text[ours.len()..].trim_start()
        }
        _ => text,
    };
    let metadata = Map::from_iter([
        ("kind".to_owned(), json!(TWEET)),
        ("tweet_id".to_owned(), json!(id)),
        // vumi's name for it.
        ("status_id".to_owned(), json!(id)),
        ("author_id".to_owned(), json!(author_id)),
        (
            "conversation_id".to_owned(),
            tweet["conversation_id"].clone(),
        ),
    ]);
    Some(inbound(channel_id, from, us, content.to_owned(), metadata))
}

/// A DM event (one of `page`'s `data`) as an inbound message; `None` for the DMs we sent
/// and for events that are not a new message.
pub fn direct_message(
    channel_id: &str,
    us: &Identity,
    page: &Value,
    event: &Value,
) -> Option<Message> {
    if event["event_type"].as_str() != Some("MessageCreate") {
        return None;
    }
    let id = event["id"].as_str()?;
    let sender_id = event["sender_id"].as_str()?;
    if sender_id == us.id {
        return None;
    }
    let from = username_of(page, sender_id).map_or_else(|| sender_id.to_owned(), address);
    let metadata = Map::from_iter([
        ("kind".to_owned(), json!(DIRECT_MESSAGE)),
        ("dm_event_id".to_owned(), json!(id)),
        (
            "dm_conversation_id".to_owned(),
            event["dm_conversation_id"].clone(),
        ),
        ("sender_id".to_owned(), json!(sender_id)),
    ]);
    let text = event["text"].as_str().unwrap_or_default().to_owned();
    Some(inbound(channel_id, from, us, text, metadata))
}

/// What to send for an outbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A tweet, threaded under `in_reply_to` when it answers one.
    Tweet {
        /// The text.
        text: String,
        /// The tweet it answers.
        in_reply_to: Option<String>,
    },
    /// A direct message.
    DirectMessage {
        /// Who to: a user id, or a screen name to look up.
        to: Recipient,
        /// The text.
        text: String,
    },
}

/// The recipient of a direct message.
#[derive(Debug, PartialEq, Eq)]
pub enum Recipient {
    /// A user id (a reply to a DM, or a numeric `to`).
    Id(String),
    /// A screen name, without `@`.
    Username(String),
}

/// What `message` asks for: `channel_data.twitter.type` (`tweet` or `direct_message`) when
/// given, else the kind of the message it replies to, else a tweet.
pub fn outbound(message: &Message) -> Result<Outbound, SendError> {
    let ours = message.transport_metadata.get(TRANSPORT_TYPE);
    let asked = message
        .helper_metadata
        .get(TRANSPORT_TYPE)
        .and_then(|twitter| twitter.get("type"));
    let kind = match asked {
        Some(Value::String(kind)) if kind == TWEET || kind == DIRECT_MESSAGE => kind.as_str(),
        Some(other) => {
            return Err(SendError::Rejected(format!(
                "channel_data.twitter.type must be \"tweet\" or \"direct_message\", not {other}"
            )))
        }
        None => ours
            .and_then(|twitter| twitter["kind"].as_str())
            .unwrap_or(TWEET),
    };
    let text = message
        .content
        .clone()
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| SendError::Rejected("a tweet or direct message needs content".into()))?;
    let replied = |key: &str| {
        ours.filter(|_| message.in_reply_to.is_some())
            .and_then(|twitter| twitter[key].as_str())
            .map(str::to_owned)
    };
    let to = message.to_addr.as_deref().unwrap_or_default();
    if kind == TWEET {
        let in_reply_to = replied("tweet_id").or_else(|| replied("status_id"));
        // A new tweet to @someone mentions them (vumi prefixed `to_addr` too); a reply is
        // threaded instead.
        let text = match to.strip_prefix('@') {
            Some(_) if in_reply_to.is_none() => format!("{to} {text}"),
            _ => text,
        };
        return Ok(Outbound::Tweet { text, in_reply_to });
    }
    let to = match replied("sender_id") {
        Some(id) => Recipient::Id(id),
        None if !to.is_empty() && to.bytes().all(|b| b.is_ascii_digit()) => {
            Recipient::Id(to.to_owned())
        }
        None => match to.trim_start_matches('@') {
            "" => {
                return Err(SendError::Rejected(
                    "a direct message needs a recipient: to=@screen_name or a user id".into(),
                ))
            }
            name => Recipient::Username(name.to_owned()),
        },
    };
    Ok(Outbound::DirectMessage { to, text })
}

/// Whether tweet or event id `a` is newer than `b` (ids are decimal snowflakes, too long
/// for some JSON readers, so compared as text: longer is newer, then by digits).
pub fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Identity {
        Identity {
            id: "1".into(),
            username: "junebug".into(),
        }
    }

    fn page() -> Value {
        json!({"includes": {"users": [{"id": "7", "username": "alice", "name": "A"}]}})
    }

    /// A mention: from @author, to @us, the leading @us cut, ids in metadata.
    #[test]
    fn mention_mapping() {
        let tweet = json!({"id": "100", "text": "@JuneBug  hello there", "author_id": "7",
                           "conversation_id": "90"});
        let message = mention("ch", &us(), &page(), &tweet).unwrap();
        assert_eq!(message.from_addr.as_deref(), Some("@alice"));
        assert_eq!(message.to_addr.as_deref(), Some("@junebug"));
        assert_eq!(message.content.as_deref(), Some("hello there"));
        assert_eq!(
            message.transport_metadata["twitter"],
            json!({"kind": "tweet", "tweet_id": "100", "status_id": "100",
                   "author_id": "7", "conversation_id": "90"})
        );
        assert_eq!(message.helper_metadata["twitter"]["type"], json!("tweet"));
        let own = json!({"id": "101", "text": "@junebug me", "author_id": "1"});
        assert_eq!(mention("ch", &us(), &page(), &own), None);
        let unknown = json!({"id": "102", "text": "hi @junebug", "author_id": "8"});
        let message = mention("ch", &us(), &page(), &unknown).unwrap();
        assert_eq!(message.from_addr.as_deref(), Some("8"));
        assert_eq!(message.content.as_deref(), Some("hi @junebug"));
    }

    /// A DM: from @sender, metadata for the reply; our own DMs are skipped.
    #[test]
    fn dm_mapping() {
        let event = json!({"id": "5", "event_type": "MessageCreate", "text": "psst",
                           "sender_id": "7", "dm_conversation_id": "1-7"});
        let message = direct_message("ch", &us(), &page(), &event).unwrap();
        assert_eq!(message.from_addr.as_deref(), Some("@alice"));
        assert_eq!(message.content.as_deref(), Some("psst"));
        assert_eq!(
            message.transport_metadata["twitter"],
            json!({"kind": "direct_message", "dm_event_id": "5",
                   "dm_conversation_id": "1-7", "sender_id": "7"})
        );
        let mut own = event.clone();
        own["sender_id"] = json!("1");
        assert_eq!(direct_message("ch", &us(), &page(), &own), None);
        let mut join = event;
        join["event_type"] = json!("ParticipantsJoin");
        assert_eq!(direct_message("ch", &us(), &page(), &join), None);
    }

    fn outgoing(to: &str, content: &str, channel_data: Value) -> Message {
        Message {
            message_id: "m".into(),
            timestamp: timestamp_now(),
            to_addr: Some(to.into()),
            from_addr: None,
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some(content.into()),
            transport_name: "ch".into(),
            transport_type: TRANSPORT_TYPE.into(),
            transport_metadata: Map::new(),
            helper_metadata: channel_data.as_object().cloned().unwrap_or_default(),
            expires_at: None,
        }
    }

    /// Replies follow the kind of what they answer; channel_data.twitter.type overrides.
    #[test]
    fn outbound_kinds() {
        let tweet = json!({"id": "100", "text": "@junebug hi", "author_id": "7"});
        let mut reply = mention("ch", &us(), &page(), &tweet).unwrap();
        reply.in_reply_to = Some(reply.message_id.clone());
        reply.content = Some("hello".into());
        reply.helper_metadata = Map::new();
        assert_eq!(
            outbound(&reply),
            Ok(Outbound::Tweet {
                text: "hello".into(),
                in_reply_to: Some("100".into())
            })
        );
        let event =
            json!({"id": "5", "event_type": "MessageCreate", "text": "x", "sender_id": "7"});
        let mut dm_reply = direct_message("ch", &us(), &page(), &event).unwrap();
        dm_reply.in_reply_to = Some("r".into());
        assert_eq!(
            outbound(&dm_reply),
            Ok(Outbound::DirectMessage {
                to: Recipient::Id("7".into()),
                text: "x".into()
            })
        );
        assert_eq!(
            outbound(&outgoing("@bob", "hey", json!({}))),
            Ok(Outbound::Tweet {
                text: "@bob hey".into(),
                in_reply_to: None
            })
        );
        let dm = json!({"twitter": {"type": "direct_message"}});
        assert_eq!(
            outbound(&outgoing("@bob", "hey", dm.clone())),
            Ok(Outbound::DirectMessage {
                to: Recipient::Username("bob".into()),
                text: "hey".into()
            })
        );
        assert_eq!(
            outbound(&outgoing("42", "hey", dm.clone())),
            Ok(Outbound::DirectMessage {
                to: Recipient::Id("42".into()),
                text: "hey".into()
            })
        );
        assert!(matches!(
            outbound(&outgoing(
                "@bob",
                "hey",
                json!({"twitter": {"type": "fax"}})
            )),
            Err(SendError::Rejected(_))
        ));
        assert!(matches!(
            outbound(&outgoing("@bob", " ", json!({}))),
            Err(SendError::Rejected(_))
        ));
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert!(newer("1000", "999"));
        assert!(newer("1001", "1000"));
        assert!(!newer("1000", "1000"));
    }
}
