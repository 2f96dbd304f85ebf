//! IRC's wire form (RFC 1459 / RFC 2812; IRCv3 message tags are tolerated and skipped):
//! bytes ↔ text lines ([`LineCodec`]), text ↔ [`Line`]s, and cutting long text into pieces
//! that fit in one line ([`split_text`]). Pure: no I/O, no state beyond the read buffer.
use std::fmt;
use std::io;

use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

/// The most bytes of one IRC line, CR LF included (RFC 2812 §2.3). A server relays what we
/// send with our `nick!user@host` prefix in front, and that relayed line must fit too.
pub const MAX_LINE: usize = 512;

/// The longest inbound line we read: 512 bytes plus IRCv3's 8191 bytes of tags. Anything
/// longer is dropped whole (and logged), never cut into pieces that would read as commands.
pub const MAX_INBOUND_LINE: usize = MAX_LINE + 8191;

/// Splits the byte stream from the server into lines.
///
/// Lines end with CR LF (a bare LF is accepted too, as most servers do); empty lines are
/// skipped. Text is UTF-8 when it is valid UTF-8, else Latin-1 (what IRC clients fall back
/// to for old clients' bytes), so a line is never lost to its encoding.
#[derive(Debug, Default)]
pub struct LineCodec {
    /// Inside an over-long line: bytes are dropped up to its end.
    discarding: bool,
    /// Over-long lines dropped so far, for the log.
    pub dropped: usize,
}

impl Decoder for LineCodec {
    type Item = String;
    type Error = io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<String>, io::Error> {
        loop {
            let Some(end) = buffer.iter().position(|b| *b == b'\n') else {
                if buffer.len() > MAX_INBOUND_LINE {
                    buffer.clear();
                    if !self.discarding {
                        self.discarding = true;
                        self.dropped += 1;
                    }
                }
                return Ok(None);
            };
            let line = buffer.split_to(end + 1);
            if std::mem::take(&mut self.discarding) || line.len() > MAX_INBOUND_LINE + 1 {
                continue;
            }
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            return Ok(Some(decode_text(line)));
        }
    }

    /// A partial line at the end of the stream is dropped: the connection died mid-line.
    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<String>, io::Error> {
        let line = self.decode(buffer)?;
        buffer.clear();
        Ok(line)
    }
}

/// UTF-8 if it is, else Latin-1.
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|b| char::from(*b)).collect(),
    }
}

/// One IRC message: `[:prefix] COMMAND param… [:trailing]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Who it is from (`nick!user@host` or a server name), for lines from the server.
    pub prefix: Option<String>,
    /// The command or three-digit numeric reply, as sent (commands are matched
    /// case-insensitively by [`Line::is`]).
    pub command: String,
    /// The parameters, the trailing one included (without its `:`).
    pub params: Vec<String>,
}

impl Line {
    /// A line to send: `command` with `params`; see its `Display` for how they are written.
    pub fn new(command: &str, params: &[&str]) -> Line {
        Line {
            prefix: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Parses a line from the server (without its line ending); `None` if it has no command.
    pub fn parse(text: &str) -> Option<Line> {
        let mut rest = text;
        if rest.starts_with('@') {
            // IRCv3 message tags: nothing we use.
            rest = rest.split_once(' ').map_or("", |(_, after)| after);
        }
        rest = rest.trim_start_matches(' ');
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (source, after) = after.split_once(' ').unwrap_or((after, ""));
            prefix = Some(source.to_owned());
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.to_owned());
            rest = after;
        }
        Some(Line {
            prefix,
            command: command.to_owned(),
            params,
        })
    }

    /// Whether the command is `command` (case-insensitive, as IRC commands are).
    pub fn is(&self, command: &str) -> bool {
        self.command.eq_ignore_ascii_case(command)
    }

    /// Parameter `index`, if there is one.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// The nick of a `nick!user@host` prefix (or the whole prefix: a server name).
    pub fn nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        Some(prefix.split_once('!').map_or(prefix, |(nick, _)| nick))
    }

    /// The line as sent on the wire, without CR LF.
    pub fn wire(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(prefix) = &self.prefix {
            write!(f, ":{prefix} ")?;
        }
        f.write_str(&self.command)?;
        // The last of several parameters is always trailing (the text of a PRIVMSG, say);
        // a lone one only when it must be.
        let last = self.params.len().saturating_sub(1);
        for (i, param) in self.params.iter().enumerate() {
            let must = param.is_empty() || param.contains(' ') || param.starts_with(':');
            let trailing = i == last && (must || last > 0);
            if trailing {
                write!(f, " :{param}")?;
            } else {
                write!(f, " {param}")?;
            }
        }
        Ok(())
    }
}

/// Whether `text` can be one parameter of a line: no CR, LF or NUL, which would end or
/// corrupt the line (an injection of commands, for text from a message).
pub fn is_safe(text: &str) -> bool {
    !text.contains(['\r', '\n', '\0'])
}

/// Cuts `text` into pieces of at most `max` bytes each: at every line break (IRC text cannot
/// hold one), then at the last space that keeps a piece within `max`, or inside a word when
/// the word alone is too long; never inside a UTF-8 character. Empty lines are left out (IRC
/// cannot send empty text), and NUL characters are dropped.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4); // room for any one character
    let mut pieces = Vec::new();
    for line in text.split(['\r', '\n']) {
        let line = line.replace('\0', "");
        let mut rest = line.as_str();
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // A space right after the piece is as good a break as one inside it.
            let space = if rest.as_bytes()[cut] == b' ' {
                Some(cut)
            } else {
                rest[..cut].rfind(' ')
            };
            match space {
                Some(space) if space > 0 => {
                    pieces.push(rest[..space].to_owned());
                    rest = &rest[space + 1..];
                }
                _ => {
                    pieces.push(rest[..cut].to_owned());
                    rest = &rest[cut..];
                }
            }
        }
        if !rest.is_empty() {
            pieces.push(rest.to_owned());
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> (Vec<String>, LineCodec) {
        let mut codec = LineCodec::default();
        let mut buffer = BytesMut::from(bytes);
        let mut lines = Vec::new();
        while let Some(line) = codec.decode(&mut buffer).unwrap() {
            lines.push(line);
        }
        if let Some(line) = codec.decode_eof(&mut buffer).unwrap() {
            lines.push(line);
        }
        (lines, codec)
    }

    /// CR LF and bare LF end lines; empty lines and a partial last line are dropped.
    #[test]
    fn lines_are_split_on_line_ends() {
        let (lines, _) = decode_all(b"PING :a\r\n\r\nPING :b\nPING :c");
        assert_eq!(lines, ["PING :a", "PING :b"]);
    }

    /// Bytes that are not UTF-8 read as Latin-1; UTF-8 stays UTF-8.
    #[test]
    fn text_is_utf8_or_latin1() {
        let (lines, _) = decode_all(b"PRIVMSG #a :caf\xe9\r\nPRIVMSG #a :caf\xc3\xa9\r\n");
        assert_eq!(lines, ["PRIVMSG #a :café", "PRIVMSG #a :café"]);
    }

    /// A line longer than the limit is dropped whole, even across reads, and counted.
    #[test]
    fn over_long_lines_are_dropped_whole() {
        let mut codec = LineCodec::default();
        let mut buffer = BytesMut::from(&vec![b'x'; MAX_INBOUND_LINE + 10][..]);
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"still the long line\r\nPING :ok\r\n");
        assert_eq!(
            codec.decode(&mut buffer).unwrap().as_deref(),
            Some("PING :ok")
        );
        assert_eq!(codec.dropped, 1);
    }

    /// Prefix, command, middle and trailing parameters, tags and extra spaces.
    #[test]
    fn lines_parse() {
        let line = Line::parse(":Alice!al@host PRIVMSG #test :junebug: hi there").unwrap();
        assert_eq!(line.prefix.as_deref(), Some("Alice!al@host"));
        assert_eq!(line.nick(), Some("Alice"));
        assert!(line.is("privmsg"));
        assert_eq!(line.params, ["#test", "junebug: hi there"]);

        let line = Line::parse("@time=2024 :irc.test 001  bot  :Welcome").unwrap();
        assert_eq!(line.nick(), Some("irc.test"));
        assert_eq!((line.command.as_str(), line.param(0)), ("001", Some("bot")));
        assert_eq!(line.param(1), Some("Welcome"));

        let line = Line::parse("PING irc.test").unwrap();
        assert_eq!((line.prefix, line.params), (None, vec!["irc.test".into()]));
        assert_eq!(Line::parse(":only.a.prefix"), None);
        assert_eq!(Line::parse(""), None);
    }

    /// The last parameter becomes trailing only when it must.
    #[test]
    fn lines_format() {
        assert_eq!(Line::new("NICK", &["bot"]).wire(), "NICK bot");
        assert_eq!(Line::new("PONG", &["a b"]).wire(), "PONG :a b");
        assert_eq!(Line::new("PRIVMSG", &["#a", "x"]).wire(), "PRIVMSG #a :x");
        assert_eq!(
            Line::new("USER", &["bot", "0", "*", "Junebug bot"]).wire(),
            "USER bot 0 * :Junebug bot"
        );
        assert_eq!(Line::new("PRIVMSG", &["#a", ":)"]).wire(), "PRIVMSG #a ::)");
        assert_eq!(Line::new("PRIVMSG", &["#a", ""]).wire(), "PRIVMSG #a :");
        let parsed = Line::parse(&Line::new("PRIVMSG", &["#a", "x y"]).wire()).unwrap();
        assert_eq!(parsed.params, ["#a", "x y"]);
        assert!(is_safe("fine text") && !is_safe("a\r\nQUIT"));
    }

    /// Splits at line breaks, then spaces, then inside words; never inside a character.
    #[test]
    fn text_splits_into_pieces_that_fit() {
        assert_eq!(
            split_text("one\r\ntwo\n\nthree", 100),
            ["one", "two", "three"]
        );
        assert_eq!(split_text("aaa bbb ccc", 7), ["aaa bbb", "ccc"]);
        assert_eq!(split_text("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(split_text("ééé", 5), ["éé", "é"]);
        assert!(split_text("\n\n", 10).is_empty());
        assert_eq!(split_text("a\0b", 10), ["ab"]);
        let long = "word ".repeat(200);
        let pieces = split_text(&long, 100);
        assert!(pieces.iter().all(|p| p.len() <= 100), "{pieces:?}");
        assert_eq!(pieces.join(" "), long, "only the spaces at the breaks go");
    }
}
