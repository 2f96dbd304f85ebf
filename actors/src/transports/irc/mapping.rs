//! Between IRC and our [`Message`]s, as vumi's `IrcTransport` did it.
//!
//! **Inbound** (a PRIVMSG, or a CTCP ACTION inside one; NOTICEs are never answered
//! automatically on IRC, so they are not delivered): `from` is the sender's nick; in a
//! channel, `group` is the channel and `to` is our nick when the text addresses us (its first
//! word is our nick, followed by `:` or `,` or nothing), in which case that word is taken off
//! the content; otherwise `to` is empty and the content is the whole text. A private message
//! has `to` = our nick and no group. Nicks and channels are lowercased (IRC compares them
//! case-insensitively; vumi wrote them so). `helper_metadata.irc` carries vumi's
//! `transport_nickname`, `addressed_to_transport`, `irc_server`, `irc_channel` and
//! `irc_command` (`PRIVMSG` or `ACTION`); `transport_metadata.irc_channel` the channel.
//!
//! **Outbound**: a message with a `group` (or vumi's `transport_metadata.irc_channel`) goes
//! to that channel, its lines prefixed with `<to>: ` when its `to` is a nick; without one it
//! goes to `to`: privately to a nick, or to everyone in a channel (`to` = `#channel`, as the
//! HTTP API needs a `to` for a message that is not a reply). `channel_data.irc.irc_command` (vumi's place) or
//! `channel_data.irc_command` picks `PRIVMSG` (default), `NOTICE` or `ACTION` (a CTCP
//! ACTION, "/me", never prefixed). Text is cut to fit IRC's line limit ([`split_text`]).
use serde_json::{json, Map, Value};

use super::codec::{is_safe, split_text, Line, MAX_LINE};
use crate::message::{new_message_id, timestamp_now, Message};

/// The first characters of channel names: vumi's `#`, `&` and `$` (a server mask), and
/// RFC 2812's `+` and `!`.
const CHANNEL_PREFIXES: [char; 5] = ['#', '&', '$', '+', '!'];

/// CTCP's delimiter (`\x01ACTION waves\x01`).
const CTCP: char = '\x01';

/// Whether `target` names a channel rather than a nick.
pub fn is_channel(target: &str) -> bool {
    target.starts_with(CHANNEL_PREFIXES)
}

/// The form in which addresses are compared and reported (vumi's canonical form).
pub fn canonical(name: &str) -> String {
    name.to_lowercase()
}

/// What the inbound side needs to know besides the line.
pub struct InboundContext<'a> {
    /// Our nick as the server knows us now.
    pub nick: &'a str,
    /// `host:port` of the server.
    pub server: &'a str,
    /// The channel id (`transport_name`).
    pub channel_id: &'a str,
    /// `transport_type` of inbound messages.
    pub transport_type: &'a str,
}

/// The inbound message a line from the server carries, if it carries one (see the module
/// docs); `None` for every other line, and for CTCP requests other than ACTION.
pub fn inbound(line: &Line, cx: &InboundContext<'_>) -> Option<Message> {
    if !line.is("PRIVMSG") {
        return None;
    }
    let sender = canonical(line.nick()?);
    let recipient = canonical(line.param(0)?);
    let text = line.param(1)?;
    let (command, text) = match text.strip_prefix(CTCP) {
        None => ("PRIVMSG", text),
        Some(ctcp) => {
            let ctcp = ctcp.strip_suffix(CTCP).unwrap_or(ctcp);
            match ctcp.strip_prefix("ACTION") {
                Some(action) if action.is_empty() || action.starts_with(' ') => {
                    ("ACTION", action.strip_prefix(' ').unwrap_or(action))
                }
                _ => return None,
            }
        }
    };
    let nick = canonical(cx.nick);
    let channel = is_channel(&recipient).then(|| recipient.clone());
    let (to_addr, content, addressed) = match &channel {
        None => {
            let addressed = recipient == nick;
            (Some(recipient), text.to_owned(), addressed)
        }
        Some(_) => match addressed_text(text, &nick) {
            Some(rest) => (Some(nick.clone()), rest.to_owned(), true),
            None => (None, text.to_owned(), false),
        },
    };
    let irc = json!({
        "transport_nickname": cx.nick,
        "addressed_to_transport": addressed,
        "irc_server": cx.server,
        "irc_channel": channel,
        "irc_command": command,
    });
    Some(Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr,
        from_addr: Some(sender),
        group: channel.clone(),
        in_reply_to: None,
        session_event: None,
        content: Some(content),
        transport_name: cx.channel_id.to_owned(),
        transport_type: cx.transport_type.to_owned(),
        transport_metadata: Map::from_iter([("irc_channel".to_owned(), json!(channel))]),
        helper_metadata: Map::from_iter([("irc".to_owned(), irc)]),
        expires_at: None,
    })
}

/// The rest of `text` when its first word is `nick` (canonical), with or without a `:` or `,`
/// after it, as vumi's `addressed_to` reads it.
fn addressed_text<'t>(text: &'t str, nick: &str) -> Option<&'t str> {
    let text = text.trim_start();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    (canonical(word.trim_end_matches([':', ','])) == nick).then(|| rest.trim_start())
}

/// How an outbound message goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Privmsg,
    Notice,
    Action,
}

/// An outbound message as IRC lines.
#[derive(Debug, PartialEq)]
pub struct Outbound {
    /// The channel or nick it goes to.
    pub target: String,
    /// The lines, in order.
    pub lines: Vec<Line>,
}

/// The lines that send `message`, for a sender that others see as `mask_len` bytes of
/// `nick!user@host`; `Err` with the reason to reject it.
pub fn outbound(message: &Message, mask_len: usize) -> Result<Outbound, String> {
    let command = irc_command(message)?;
    let channel = message.group.clone().or_else(|| {
        message
            .transport_metadata
            .get("irc_channel")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let to = message.to_addr.as_deref().filter(|to| !to.is_empty());
    let target = match (&channel, to) {
        (Some(channel), _) => channel.as_str(),
        (None, Some(to)) => to,
        (None, None) => return Err("No recipient: an IRC message needs a group or a to.".into()),
    };
    if target.is_empty()
        || target.starts_with(':')
        || target.contains([' ', ','])
        || !is_safe(target)
    {
        return Err(format!("{target:?} is not an IRC nick or channel."));
    }
    let prefix = match (&channel, to, command) {
        (Some(_), Some(to), Command::Privmsg | Command::Notice) if !is_channel(to) => {
            format!("{to}: ")
        }
        _ => String::new(),
    };
    let wire_command = if command == Command::Notice {
        "NOTICE"
    } else {
        "PRIVMSG"
    };
    // What a server relays: ":" mask " " command " " target " :" text CR LF.
    let overhead = 1 + mask_len + 1 + wire_command.len() + 1 + target.len() + 2 + 2;
    let ctcp_overhead = if command == Command::Action {
        "\u{1}ACTION \u{1}".len()
    } else {
        0
    };
    let budget = MAX_LINE.saturating_sub(overhead + ctcp_overhead + prefix.len());
    let content = message.content.as_deref().unwrap_or_default();
    let pieces = split_text(content, budget);
    if pieces.is_empty() {
        return Err("IRC cannot send an empty message.".into());
    }
    let lines = pieces
        .into_iter()
        .map(|piece| {
            let text = match command {
                Command::Action => format!("{CTCP}ACTION {piece}{CTCP}"),
                _ => format!("{prefix}{piece}"),
            };
            Line::new(wire_command, &[target, &text])
        })
        .collect();
    Ok(Outbound {
        target: target.to_owned(),
        lines,
    })
}

/// `channel_data.irc.irc_command` or `channel_data.irc_command`, `PRIVMSG` by default.
fn irc_command(message: &Message) -> Result<Command, String> {
    let metadata = &message.helper_metadata;
    let value = metadata
        .get("irc")
        .and_then(|irc| irc.get("irc_command"))
        .or_else(|| metadata.get("irc_command"));
    let name = match value {
        None | Some(Value::Null) => return Ok(Command::Privmsg),
        Some(Value::String(name)) => name.to_ascii_uppercase(),
        Some(other) => return Err(format!("irc_command must be a string, not {other}.")),
    };
    match name.as_str() {
        "PRIVMSG" => Ok(Command::Privmsg),
        "NOTICE" => Ok(Command::Notice),
        "ACTION" => Ok(Command::Action),
        _ => Err(format!(
            "irc_command {name:?} is not one of PRIVMSG, NOTICE or ACTION."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: InboundContext<'static> = InboundContext {
        nick: "Junebug",
        server: "irc.test:6667",
        channel_id: "ch",
        transport_type: "irc",
    };

    fn received(line: &str) -> Option<Message> {
        inbound(&Line::parse(line).unwrap(), &CX)
    }

    /// (from, to, group, content, irc_command, addressed) of an inbound line.
    fn summary(line: &str) -> (String, Option<String>, Option<String>, String, String, bool) {
        let m = received(line).unwrap_or_else(|| panic!("no message in {line:?}"));
        let irc = &m.helper_metadata["irc"];
        assert_eq!(irc["irc_server"], "irc.test:6667");
        assert_eq!(irc["transport_nickname"], "Junebug");
        assert_eq!(m.transport_metadata["irc_channel"], json!(m.group));
        (
            m.from_addr.unwrap(),
            m.to_addr,
            m.group,
            m.content.unwrap(),
            irc["irc_command"].as_str().unwrap().to_owned(),
            irc["addressed_to_transport"].as_bool().unwrap(),
        )
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    /// vumi's inbound semantics, case by case.
    #[test]
    fn inbound_follows_vumi() {
        let cases = [
            (
                ":Alice!a@h PRIVMSG #Test :junebug: hello there",
                (
                    "alice",
                    s("junebug"),
                    s("#test"),
                    "hello there",
                    "PRIVMSG",
                    true,
                ),
            ),
            (
                ":alice!a@h PRIVMSG #test :JUNEBUG, hi",
                ("alice", s("junebug"), s("#test"), "hi", "PRIVMSG", true),
            ),
            (
                ":alice!a@h PRIVMSG #test :junebug what now",
                (
                    "alice",
                    s("junebug"),
                    s("#test"),
                    "what now",
                    "PRIVMSG",
                    true,
                ),
            ),
            (
                ":alice!a@h PRIVMSG #test :junebug",
                ("alice", s("junebug"), s("#test"), "", "PRIVMSG", true),
            ),
            (
                ":alice!a@h PRIVMSG #test :hello junebug",
                ("alice", None, s("#test"), "hello junebug", "PRIVMSG", false),
            ),
            (
                ":alice!a@h PRIVMSG #test :junebugs are bugs",
                (
                    "alice",
                    None,
                    s("#test"),
                    "junebugs are bugs",
                    "PRIVMSG",
                    false,
                ),
            ),
            (
                ":Alice!a@h PRIVMSG Junebug :psst",
                ("alice", s("junebug"), None, "psst", "PRIVMSG", true),
            ),
            (
                ":alice!a@h PRIVMSG #test :\u{1}ACTION waves\u{1}",
                ("alice", None, s("#test"), "waves", "ACTION", false),
            ),
            (
                ":alice!a@h PRIVMSG junebug :\u{1}ACTION pokes you\u{1}",
                ("alice", s("junebug"), None, "pokes you", "ACTION", true),
            ),
        ];
        for (line, (from, to, group, content, command, addressed)) in cases {
            let expected = (
                from.to_owned(),
                to,
                group,
                content.to_owned(),
                command.to_owned(),
                addressed,
            );
            assert_eq!(summary(line), expected, "{line}");
        }
    }

    /// NOTICEs, other CTCP requests and other commands carry no message.
    #[test]
    fn inbound_ignores_the_rest() {
        for line in [
            ":alice!a@h NOTICE #test :junebug: hi",
            ":alice!a@h PRIVMSG junebug :\u{1}VERSION\u{1}",
            ":alice!a@h PRIVMSG junebug :\u{1}ACTIONS\u{1}",
            ":alice!a@h JOIN #test",
            "PING :irc.test",
            ":alice!a@h PRIVMSG #test",
        ] {
            assert_eq!(received(line), None, "{line}");
        }
    }

    fn message(to: Option<&str>, group: Option<&str>, content: &str) -> Message {
        Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: to.map(str::to_owned),
            from_addr: None,
            group: group.map(str::to_owned),
            in_reply_to: None,
            session_event: None,
            content: Some(content.to_owned()),
            transport_name: "ch".into(),
            transport_type: "irc".into(),
            transport_metadata: Map::new(),
            helper_metadata: Map::new(),
            expires_at: None,
        }
    }

    fn wire(message: &Message) -> Result<Vec<String>, String> {
        outbound(message, 30).map(|o| o.lines.iter().map(Line::wire).collect())
    }

    /// Channel messages are prefixed with `to: `; private ones go to `to`.
    #[test]
    fn outbound_follows_vumi() {
        let reply = message(Some("alice"), Some("#test"), "hi there");
        assert_eq!(wire(&reply).unwrap(), ["PRIVMSG #test :alice: hi there"]);
        let to_all = message(None, Some("#test"), "hello all");
        assert_eq!(wire(&to_all).unwrap(), ["PRIVMSG #test :hello all"]);
        let to_channel = message(Some("#test"), None, "hello all");
        assert_eq!(wire(&to_channel).unwrap(), ["PRIVMSG #test :hello all"]);
        let both = message(Some("#test"), Some("#test"), "hello all");
        assert_eq!(wire(&both).unwrap(), ["PRIVMSG #test :hello all"]);
        let private = message(Some("alice"), None, "psst");
        assert_eq!(wire(&private).unwrap(), ["PRIVMSG alice :psst"]);
        let mut old_style = message(None, None, "hi");
        old_style
            .transport_metadata
            .insert("irc_channel".into(), json!("#old"));
        assert_eq!(wire(&old_style).unwrap(), ["PRIVMSG #old :hi"]);
    }

    /// irc_command from channel_data (vumi's nested place or flat): ACTION, NOTICE.
    #[test]
    fn outbound_commands() {
        let mut action = message(Some("alice"), Some("#test"), "waves");
        action
            .helper_metadata
            .insert("irc".into(), json!({"irc_command": "ACTION"}));
        assert_eq!(
            wire(&action).unwrap(),
            ["PRIVMSG #test :\u{1}ACTION waves\u{1}"]
        );
        let mut notice = message(Some("alice"), None, "fyi");
        notice
            .helper_metadata
            .insert("irc_command".into(), json!("notice"));
        assert_eq!(wire(&notice).unwrap(), ["NOTICE alice :fyi"]);
        let mut bad = message(Some("alice"), None, "x");
        bad.helper_metadata
            .insert("irc_command".into(), json!("KICK"));
        assert!(wire(&bad).unwrap_err().contains("KICK"));
    }

    /// Messages that cannot go out are rejected with a reason.
    #[test]
    fn outbound_rejects() {
        assert!(wire(&message(None, None, "x")).is_err());
        assert!(wire(&message(Some("alice"), None, "")).is_err());
        assert!(wire(&message(Some("alice"), None, "\n\n")).is_err());
        assert!(wire(&message(Some("a b"), None, "x")).is_err());
        assert!(wire(&message(Some("alice\r\nQUIT"), None, "x")).is_err());
        assert!(wire(&message(Some("#a,#b"), None, "x")).is_err());
    }

    /// Long and multi-line texts become several lines, each within what a server relays.
    #[test]
    fn outbound_splits_to_fit() {
        let text = format!("{}\nsecond line", "word ".repeat(300));
        let reply = message(Some("alice"), Some("#test"), &text);
        let mask_len = "junebug!junebug@some.host.example".len();
        let out = outbound(&reply, mask_len).unwrap();
        assert!(out.lines.len() >= 4, "{:?}", out.lines);
        for line in &out.lines {
            let relayed = format!(":junebug!junebug@some.host.example {line}\r\n");
            assert!(relayed.len() <= MAX_LINE, "{} bytes", relayed.len());
            assert!(line.param(1).unwrap().starts_with("alice: "), "{line}");
        }
        assert_eq!(
            out.lines.last().unwrap().param(1),
            Some("alice: second line")
        );
    }
}
