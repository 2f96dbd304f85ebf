//! XMPP `<message/>` stanzas ↔ our [`Message`]s, pure and table-tested.
//!
//! Inbound, as vumi's `XMPPTransport` did for one-to-one chats: `from` is the sender's bare
//! JID, `to` ours, `content` the body without surrounding whitespace, and
//! `transport_metadata.xmpp_id` the stanza's id. A groupchat message in one of our rooms
//! carries `group` = the room's JID and `from` = the sender's occupant JID
//! (`room@service/nick`); our own echo and the room's replayed history are not messages.
//! `channel_data.xmpp` says which (`type`, `xmpp_id`, and `room`/`nick` in rooms).
//!
//! Outbound: with `group`, a groupchat message to that room (one of the configured ones),
//! prefixed `nick: ` when `to` is an occupant of it (a reply to someone in the room);
//! otherwise a chat message to the bare JID `to`, asking for a receipt (XEP-0184) when the
//! channel does. The stanza id is our message id, so a receipt or an error bounce names the
//! message it is about.
use serde_json::{json, Map, Value};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Id, Lang, Message as Stanza, MessageType};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::receipts::{Received, Request};

use crate::message::{new_message_id, timestamp_now, Message};

/// What the inbound side needs to know besides the stanza.
pub struct InboundContext<'a> {
    /// Our account.
    pub jid: &'a BareJid,
    /// Our nick in the rooms.
    pub nickname: &'a str,
    /// The rooms we are in.
    pub rooms: &'a [BareJid],
    /// The channel id (`transport_name`).
    pub channel_id: &'a str,
    /// `transport_type` of inbound messages.
    pub transport_type: &'a str,
}

/// What an inbound `<message/>` means for us.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// A message for the application.
    Message(Box<Message>),
    /// A delivery receipt (XEP-0184) for the stanza with this id (one of ours).
    Receipt(String),
    /// The server or the peer bounced the stanza with this id: why.
    Bounce {
        /// The id of our stanza.
        id: String,
        /// The error condition, e.g. `service-unavailable`.
        reason: String,
    },
    /// Nothing for us: a chat state, a subject, our own echo in a room, room history.
    Nothing,
}

/// The stanza's id, if it has one.
fn stanza_id(stanza: &Stanza) -> Option<String> {
    stanza.id.as_ref().map(|Id(id)| id.clone())
}

/// The body, without surrounding whitespace (as vumi read it), if there is one.
fn body(stanza: &Stanza) -> Option<String> {
    let (_, body) = stanza.get_best_body(vec![])?;
    Some(body.trim().to_owned())
}

/// Whether a payload is `name` in namespace `namespace`.
fn has_payload(stanza: &Stanza, name: &str, namespace: &str) -> bool {
    stanza.payloads.iter().any(|p| p.is(name, namespace))
}

/// The condition of an `<error/>` payload (its first child in the stanzas namespace).
fn error_condition(stanza: &Stanza) -> String {
    stanza
        .payloads
        .iter()
        .find(|p| p.name() == "error")
        .and_then(|error| {
            error
                .children()
                .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
                .map(|c| c.name().to_owned())
        })
        .unwrap_or_else(|| "undefined-condition".to_owned())
}

/// Reads an inbound `<message/>`; see the module docs.
pub fn inbound(stanza: &Stanza, cx: &InboundContext<'_>) -> Inbound {
    let id = stanza_id(stanza);
    if stanza.type_ == MessageType::Error {
        return match id {
            Some(id) => Inbound::Bounce {
                id,
                reason: error_condition(stanza),
            },
            None => Inbound::Nothing,
        };
    }
    let Some(from) = &stanza.from else {
        return Inbound::Nothing;
    };
    let body = body(stanza);
    if body.is_none() {
        let receipt = stanza
            .payloads
            .iter()
            .find(|p| p.is("received", ns::RECEIPTS))
            .and_then(|p| Received::try_from(p.clone()).ok());
        return match receipt {
            Some(Received { id }) if !id.is_empty() => Inbound::Receipt(id),
            _ => Inbound::Nothing,
        };
    }
    let content = body.unwrap_or_default();
    let room = from.to_bare();
    let in_room = cx.rooms.contains(&room);
    let (kind, from_addr, group, to_addr, mut xmpp) = match stanza.type_ {
        MessageType::Groupchat => {
            let Some(nick) = from.resource().map(|r| r.to_string()) else {
                return Inbound::Nothing; // the room itself (a subject, a notice)
            };
            if !in_room || nick == cx.nickname || has_payload(stanza, "delay", ns::DELAY) {
                return Inbound::Nothing;
            }
            let xmpp = json!({"room": room.as_str(), "nick": nick});
            (
                "groupchat",
                from.to_string(),
                Some(room.to_string()),
                None,
                xmpp,
            )
        }
        MessageType::Chat | MessageType::Normal => {
            // A private message from a room's occupant is only known by its occupant JID.
            let from_addr = if in_room {
                from.to_string()
            } else {
                room.to_string()
            };
            let resource = from.resource().map(|r| r.to_string());
            let xmpp = json!({"resource": resource});
            let kind = if stanza.type_ == MessageType::Chat {
                "chat"
            } else {
                "normal"
            };
            (kind, from_addr, None, Some(cx.jid.to_string()), xmpp)
        }
        MessageType::Headline | MessageType::Error => return Inbound::Nothing,
    };
    xmpp["type"] = json!(kind);
    xmpp["xmpp_id"] = json!(id);
    Inbound::Message(Box::new(Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr,
        from_addr: Some(from_addr),
        group,
        in_reply_to: None,
        session_event: None,
        content: Some(content),
        transport_name: cx.channel_id.to_owned(),
        transport_type: cx.transport_type.to_owned(),
        transport_metadata: Map::from_iter([("xmpp_id".to_owned(), json!(id))]),
        helper_metadata: Map::from_iter([("xmpp".to_owned(), xmpp)]),
        expires_at: None,
    }))
}

/// The receipt to answer an inbound chat message with, when it asks for one (XEP-0184):
/// `<message to=sender><received id=its id/></message>`. None for groupchat messages.
pub fn receipt_for(stanza: &Stanza) -> Option<Stanza> {
    if stanza.type_ == MessageType::Groupchat || !has_payload(stanza, "request", ns::RECEIPTS) {
        return None;
    }
    let id = stanza_id(stanza)?;
    let from = stanza.from.clone()?;
    let mut receipt = Stanza::new(Some(from));
    receipt.id = Some(Id(new_message_id()));
    Some(receipt.with_payload(Received { id }))
}

/// What the outbound side needs to know besides the message.
pub struct OutboundContext<'a> {
    /// The rooms we are in.
    pub rooms: &'a [BareJid],
    /// Whether chat messages ask for a receipt.
    pub request_receipts: bool,
}

/// An outbound message as a stanza.
#[derive(Debug, PartialEq)]
pub struct Outbound {
    /// The `<message/>`, its id our message id.
    pub stanza: Stanza,
    /// Whether it asks for a receipt (a `delivery_succeeded` may follow).
    pub receipt_requested: bool,
}

/// The stanza that sends `message`; `Err` with the reason to reject it.
pub fn outbound(message: &Message, cx: &OutboundContext<'_>) -> Result<Outbound, String> {
    let content = message.content.as_deref().unwrap_or_default();
    if content.trim().is_empty() {
        return Err("XMPP cannot send an empty message.".into());
    }
    let to = message.to_addr.as_deref().filter(|to| !to.is_empty());
    let (mut stanza, text, receipt_requested) = match message.group.as_deref() {
        Some(group) => {
            let room = BareJid::new(group)
                .ok()
                .filter(|room| cx.rooms.contains(room))
                .ok_or_else(|| format!("{group:?} is not one of this channel's rooms."))?;
            let nick = to
                .and_then(|to| Jid::new(to).ok())
                .filter(|to| to.to_bare() == room)
                .and_then(|to| to.resource().map(|r| r.to_string()));
            let text = match nick {
                Some(nick) => format!("{nick}: {content}"),
                None => content.to_owned(),
            };
            (Stanza::groupchat(Some(Jid::from(room))), text, false)
        }
        None => {
            let to = to.ok_or("No recipient: an XMPP message needs a to (a JID) or a group.")?;
            let jid = Jid::new(to).map_err(|e| format!("{to:?} is not a JID: {e}."))?;
            let stanza = Stanza::chat(Some(Jid::from(jid.to_bare())));
            (stanza, content.to_owned(), cx.request_receipts)
        }
    };
    stanza.id = Some(Id(message.message_id.clone()));
    stanza.bodies.insert(Lang::default(), text);
    if receipt_requested {
        stanza.payloads.push(Element::from(Request));
    }
    Ok(Outbound {
        stanza,
        receipt_requested,
    })
}

/// The room and nick of a groupchat message's `from`, for logs.
pub fn occupant(stanza: &Stanza) -> Option<(String, String)> {
    let from = stanza.from.as_ref()?;
    Some((from.to_bare().to_string(), from.resource()?.to_string()))
}

/// `channel_data.xmpp.type` of an inbound message, for tests and logs.
pub fn kind(message: &Message) -> Option<&str> {
    message
        .helper_metadata
        .get("xmpp")?
        .get("type")
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Stanza {
        let element: Element = xml.parse().expect("well-formed XML");
        Stanza::try_from(element).expect("a message stanza")
    }

    fn cx_rooms() -> Vec<BareJid> {
        vec![BareJid::new("lobby@conference.localhost").unwrap()]
    }

    fn received(xml: &str) -> Inbound {
        let jid = BareJid::new("bot@localhost").unwrap();
        let rooms = cx_rooms();
        let cx = InboundContext {
            jid: &jid,
            nickname: "bot",
            rooms: &rooms,
            channel_id: "ch",
            transport_type: "xmpp",
        };
        inbound(&parse(xml), &cx)
    }

    /// (from, to, group, content) of an inbound message.
    fn summary(xml: &str) -> (String, Option<String>, Option<String>, String) {
        match received(xml) {
            Inbound::Message(m) => (m.from_addr.unwrap(), m.to_addr, m.group, m.content.unwrap()),
            other => panic!("no message in {xml}: {other:?}"),
        }
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    const NS: &str = "xmlns='jabber:client'";

    /// One-to-one chats: bare JIDs both ways, the body trimmed, the stanza id kept.
    #[test]
    fn inbound_chats() {
        let xml = format!(
            "<message {NS} from='alice@localhost/phone' to='bot@localhost/jb' type='chat' \
             id='m1'><body> hello there </body></message>"
        );
        assert_eq!(
            summary(&xml),
            (
                "alice@localhost".into(),
                s("bot@localhost"),
                None,
                "hello there".into()
            )
        );
        let Inbound::Message(m) = received(&xml) else {
            unreachable!()
        };
        assert_eq!(m.transport_metadata["xmpp_id"], "m1");
        assert_eq!(m.helper_metadata["xmpp"]["resource"], "phone");
        assert_eq!(kind(&m), Some("chat"));
        assert_eq!(m.transport_type, "xmpp");
        let normal = format!("<message {NS} from='carol@localhost'><body>hi</body></message>");
        assert_eq!(summary(&normal).0, "carol@localhost");
        let private = format!(
            "<message {NS} from='lobby@conference.localhost/dave' type='chat'>\
             <body>psst</body></message>"
        );
        assert_eq!(summary(&private).0, "lobby@conference.localhost/dave");
    }

    /// Room messages carry the room as group; echo, history and subjects are not messages.
    #[test]
    fn inbound_groupchat() {
        let xml = format!(
            "<message {NS} from='lobby@conference.localhost/alice' type='groupchat' id='g1'>\
             <body>hello room</body></message>"
        );
        assert_eq!(
            summary(&xml),
            (
                "lobby@conference.localhost/alice".into(),
                None,
                s("lobby@conference.localhost"),
                "hello room".into()
            )
        );
        let Inbound::Message(m) = received(&xml) else {
            unreachable!()
        };
        assert_eq!(m.helper_metadata["xmpp"]["nick"], "alice");
        assert_eq!(kind(&m), Some("groupchat"));
        for xml in [
            format!(
                "<message {NS} from='lobby@conference.localhost/bot' type='groupchat'>\
                 <body>my own echo</body></message>"
            ),
            format!(
                "<message {NS} from='lobby@conference.localhost/alice' type='groupchat'>\
                 <body>old</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>\
                 </message>"
            ),
            format!(
                "<message {NS} from='lobby@conference.localhost' type='groupchat'>\
                 <subject>Topic</subject></message>"
            ),
            format!(
                "<message {NS} from='other@conference.localhost/x' type='groupchat'>\
                 <body>not our room</body></message>"
            ),
            format!(
                "<message {NS} from='alice@localhost' type='chat'>\
                 <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
            ),
            format!("<message {NS} type='chat'><body>from nobody</body></message>"),
        ] {
            assert_eq!(received(&xml), Inbound::Nothing, "{xml}");
        }
    }

    /// Receipts and error bounces name the stanza (our message id) they are about.
    #[test]
    fn inbound_receipts_and_bounces() {
        let receipt = format!(
            "<message {NS} from='alice@localhost/phone' id='r1'>\
             <received xmlns='urn:xmpp:receipts' id='0123abcd'/></message>"
        );
        assert_eq!(received(&receipt), Inbound::Receipt("0123abcd".into()));
        let bounce = format!(
            "<message {NS} from='nobody@localhost' type='error' id='0123abcd'>\
             <error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        );
        assert_eq!(
            received(&bounce),
            Inbound::Bounce {
                id: "0123abcd".into(),
                reason: "service-unavailable".into()
            }
        );
    }

    /// A chat that asks for a receipt gets one naming its id; groupchat never does.
    #[test]
    fn receipts_are_answered() {
        let asking = parse(&format!(
            "<message {NS} from='alice@localhost/phone' type='chat' id='q1'><body>hi</body>\
             <request xmlns='urn:xmpp:receipts'/></message>"
        ));
        let receipt = receipt_for(&asking).expect("a receipt");
        assert_eq!(receipt.to.unwrap().to_string(), "alice@localhost/phone");
        let received = Received::try_from(receipt.payloads[0].clone()).unwrap();
        assert_eq!(received.id, "q1");
        let quiet = parse(&format!(
            "<message {NS} from='a@b' id='q2'><body>x</body></message>"
        ));
        assert!(receipt_for(&quiet).is_none());
        let room = parse(&format!(
            "<message {NS} from='lobby@conference.localhost/a' type='groupchat' id='q3'>\
             <body>x</body><request xmlns='urn:xmpp:receipts'/></message>"
        ));
        assert!(receipt_for(&room).is_none());
    }

    fn message(to: Option<&str>, group: Option<&str>, content: &str) -> Message {
        Message {
            message_id: "00ff00ff00ff00ff00ff00ff00ff00ff".into(),
            timestamp: timestamp_now(),
            to_addr: to.map(str::to_owned),
            from_addr: None,
            group: group.map(str::to_owned),
            in_reply_to: None,
            session_event: None,
            content: Some(content.to_owned()),
            transport_name: "ch".into(),
            transport_type: "xmpp".into(),
            transport_metadata: Map::new(),
            helper_metadata: Map::new(),
            expires_at: None,
        }
    }

    fn wire(message: &Message, receipts: bool) -> Result<String, String> {
        let rooms = cx_rooms();
        let cx = OutboundContext {
            rooms: &rooms,
            request_receipts: receipts,
        };
        outbound(message, &cx).map(|o| String::from(&Element::from(o.stanza)))
    }

    /// Chats go to the bare JID with our id and a receipt request; groupchat to the room.
    #[test]
    fn outbound_stanzas() {
        let chat = wire(&message(Some("alice@localhost/phone"), None, "hi"), true).unwrap();
        for part in [
            "type='chat'",
            "to='alice@localhost'",
            "id='00ff00ff00ff00ff00ff00ff00ff00ff'",
            "<body>hi</body>",
            "<request xmlns='urn:xmpp:receipts'/>",
        ] {
            assert!(chat.contains(part), "{part} in {chat}");
        }
        let no_receipt = wire(&message(Some("alice@localhost"), None, "hi"), false).unwrap();
        assert!(!no_receipt.contains("receipts"), "{no_receipt}");
        let reply = message(
            Some("lobby@conference.localhost/alice"),
            Some("lobby@conference.localhost"),
            "welcome",
        );
        let room = wire(&reply, true).unwrap();
        for part in [
            "type='groupchat'",
            "to='lobby@conference.localhost'",
            "<body>alice: welcome</body>",
        ] {
            assert!(room.contains(part), "{part} in {room}");
        }
        assert!(!room.contains("receipts"), "no receipts in rooms: {room}");
        let to_all = message(
            Some("lobby@conference.localhost"),
            Some("lobby@conference.localhost"),
            "hello all",
        );
        assert!(wire(&to_all, true)
            .unwrap()
            .contains("<body>hello all</body>"));
    }

    /// Messages that cannot go out are rejected with a reason.
    #[test]
    fn outbound_rejects() {
        assert!(wire(&message(None, None, "x"), true).is_err());
        assert!(wire(&message(Some("alice@localhost"), None, " "), true).is_err());
        assert!(wire(&message(Some("a@b@c"), None, "x"), true).is_err());
        let elsewhere = message(None, Some("other@conference.localhost"), "x");
        assert!(wire(&elsewhere, true).unwrap_err().contains("rooms"));
    }
}
