//! The telnet wire codec (RFC 854), pure and byte-level.
//!
//! [`Decoder`] separates what a client sends into application data and the answers we owe it,
//! the way Twisted's `TelnetTransport` (which vumi's telnet transport runs on) does:
//!
//! - `IAC IAC` is a data byte `0xFF`;
//! - `IAC DO x` is refused with `IAC WONT x`, `IAC WILL x` with `IAC DONT x` (we support no
//!   option); `IAC WONT x` and `IAC DONT x` need no answer, the option being off already;
//! - `IAC SB … IAC SE` (subnegotiation) is skipped, as is any other two-byte command
//!   (`NOP`, `GA`, `IP`, `AYT`, …);
//! - `CR LF` becomes `LF` and `CR NUL` becomes `CR`, as in Twisted.
//!
//! The decoder keeps its state between reads, so a sequence split across two TCP reads is
//! still recognised. It never buffers data: whatever application data a read holds comes out
//! of that read (a subnegotiation's payload is dropped as it goes, so a client cannot make us
//! hold an unbounded amount).
//!
//! We wrote this rather than use a crate: `nectar` (a tokio codec) is line-oriented, while a
//! read must stay one message here, and `libtelnet-rs` does not keep a negotiation split across
//! reads nor unescape `IAC IAC` in data. The state machine is small and tested byte by byte.
//!
//! [`encode_line`] is the other direction: one line of text for a client.

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 255;
/// Refuses, or asks the other side to stop, an option (`IAC DONT x`).
pub const DONT: u8 = 254;
/// Asks the other side to use an option (`IAC DO x`).
pub const DO: u8 = 253;
/// Refuses, or announces the end of, an option (`IAC WONT x`).
pub const WONT: u8 = 252;
/// Offers an option (`IAC WILL x`).
pub const WILL: u8 = 251;
/// Starts a subnegotiation (`IAC SB x … IAC SE`).
pub const SB: u8 = 250;
/// No operation.
pub const NOP: u8 = 241;
/// Ends a subnegotiation.
pub const SE: u8 = 240;

/// Where the decoder is between two bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Plain data.
    #[default]
    Data,
    /// Just after a data `CR`: a `LF` or `NUL` completes it.
    Cr,
    /// Just after an `IAC`.
    Iac,
    /// After `IAC` and a `WILL`/`WONT`/`DO`/`DONT` verb: the next byte is the option.
    Verb(u8),
    /// Inside a subnegotiation.
    Sub,
    /// After an `IAC` inside a subnegotiation.
    SubIac,
}

/// What one read decodes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The application data, with telnet commands removed.
    pub data: Vec<u8>,
    /// Bytes to send back to the client (our refusals of the options it asked about).
    pub replies: Vec<u8>,
}

impl Decoded {
    /// The data as text (UTF-8, invalid bytes replaced) without trailing `\r` and `\n`, or
    /// `None` when the read held no application data at all (only negotiation).
    pub fn text(&self) -> Option<String> {
        if self.data.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&self.data);
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// Decodes what one client sends, read by read; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the bytes of one read.
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        for &byte in input {
            self.state = step(self.state, byte, &mut out);
        }
        out
    }
}

/// The state after `byte`, given the state before it.
fn step(state: State, byte: u8, out: &mut Decoded) -> State {
    match state {
        State::Data => data_byte(byte, out),
        State::Cr => match byte {
            // When the CR was in this read, it is the last data byte: CR LF becomes LF. When it
            // ended the previous read, that read's message is gone and the LF is dropped.
            b'\n' => {
                if out.data.last() == Some(&b'\r') {
                    out.data.pop();
                    out.data.push(b'\n');
                }
                State::Data
            }
            // CR NUL is a bare carriage return: keep the CR, drop the NUL.
            0 => State::Data,
            _ => data_byte(byte, out),
        },
        State::Iac => match byte {
            IAC => {
                out.data.push(IAC);
                State::Data
            }
            SB => State::Sub,
            WILL | WONT | DO | DONT => State::Verb(byte),
            // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, and anything unknown: nothing to do.
            _ => State::Data,
        },
        State::Verb(verb) => {
            match verb {
                DO => out.replies.extend([IAC, WONT, byte]),
                WILL => out.replies.extend([IAC, DONT, byte]),
                _ => {}
            }
            State::Data
        }
        State::Sub => match byte {
            IAC => State::SubIac,
            _ => State::Sub,
        },
        State::SubIac => match byte {
            SE => State::Data,
            // IAC IAC is an escaped 0xFF of the payload; anything else is a malformed
            // payload byte, skipped like the rest (as Twisted does).
            _ => State::Sub,
        },
    }
}

/// A byte in the data state.
fn data_byte(byte: u8, out: &mut Decoded) -> State {
    match byte {
        IAC => State::Iac,
        b'\r' => {
            out.data.push(b'\r');
            State::Cr
        }
        _ => {
            out.data.push(byte);
            State::Data
        }
    }
}

/// One line for a client: `text` then a newline, every `\n` sent as `\r\n` (what Twisted's
/// telnet transport writes for vumi's `text + "\n"`).
///
/// No `IAC` escaping is needed: UTF-8 text never contains the byte `0xFF`.
pub fn encode_line(text: &str) -> Vec<u8> {
    let mut line = text.replace('\n', "\r\n");
    line.push_str("\r\n");
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: u8 = 1;
    const SGA: u8 = 3;
    const NAWS: u8 = 31;

    /// Decodes `reads` one after the other with one decoder.
    fn decode_all(reads: &[&[u8]]) -> Vec<Decoded> {
        let mut decoder = Decoder::new();
        reads.iter().map(|read| decoder.decode(read)).collect()
    }

    fn decoded(data: &[u8], replies: &[u8]) -> Decoded {
        Decoded {
            data: data.to_vec(),
            replies: replies.to_vec(),
        }
    }

    /// Byte fixtures of single reads: input → (data, replies).
    #[test]
    fn single_read_fixtures() {
        // (name, input, data, replies)
        type Fixture = (&'static str, &'static [u8], &'static [u8], &'static [u8]);
        let cases: &[Fixture] = &[
            ("plain text", b"hello", b"hello", b""),
            ("crlf becomes lf", b"hi\r\nthere\r\n", b"hi\nthere\n", b""),
            ("cr nul is a cr", b"a\r\0b", b"a\rb", b""),
            ("bare cr stays", b"a\rb", b"a\rb", b""),
            (
                "escaped iac is data",
                &[b'a', IAC, IAC, b'b'],
                &[b'a', IAC, b'b'],
                b"",
            ),
            (
                "do is refused with wont",
                &[IAC, DO, ECHO],
                b"",
                &[IAC, WONT, ECHO],
            ),
            (
                "will is refused with dont",
                &[IAC, WILL, SGA],
                b"",
                &[IAC, DONT, SGA],
            ),
            ("wont needs no answer", &[IAC, WONT, ECHO], b"", b""),
            ("dont needs no answer", &[IAC, DONT, ECHO], b"", b""),
            ("nop is skipped", &[b'a', IAC, NOP, b'b'], b"ab", b""),
            (
                "unknown command is skipped",
                &[b'a', IAC, 200, b'b'],
                b"ab",
                b"",
            ),
            (
                "subnegotiation is skipped",
                &[b'x', IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE, b'y'],
                b"xy",
                b"",
            ),
            (
                "iac iac inside subnegotiation does not end it",
                &[IAC, SB, NAWS, IAC, IAC, 1, IAC, SE, b'z'],
                b"z",
                b"",
            ),
            (
                "negotiation around data",
                &[IAC, WILL, ECHO, IAC, DO, SGA, b'h', b'i', b'\r', b'\n'],
                b"hi\n",
                &[IAC, DONT, ECHO, IAC, WONT, SGA],
            ),
            (
                "cr then iac command",
                &[b'a', b'\r', IAC, NOP, b'b'],
                b"a\rb",
                b"",
            ),
        ];
        for (name, input, data, replies) in cases {
            let mut decoder = Decoder::new();
            assert_eq!(decoder.decode(input), decoded(data, replies), "{name}");
        }
    }

    /// Every way of splitting a negotiation-laden input over two reads gives the same result.
    #[test]
    fn sequences_split_across_reads() {
        let input = [
            b'a', IAC, WILL, ECHO, IAC, SB, NAWS, 0, 80, IAC, SE, IAC, IAC, b'b', b'\r', b'\n',
        ];
        for cut in 0..=input.len() {
            let parts = decode_all(&[&input[..cut], &input[cut..]]);
            let data: Vec<u8> = parts.iter().flat_map(|d| d.data.clone()).collect();
            let replies: Vec<u8> = parts.iter().flat_map(|d| d.replies.clone()).collect();
            let expected_data: &[u8] = if cut == input.len() - 1 {
                // The CR ends the first read; the LF of the next one completes it.
                &[b'a', IAC, b'b', b'\r']
            } else {
                &[b'a', IAC, b'b', b'\n']
            };
            assert_eq!(data, expected_data, "cut at {cut}");
            assert_eq!(replies, [IAC, DONT, ECHO], "cut at {cut}");
        }
    }

    /// A read of negotiation only has no text; a read of a bare newline has empty text.
    #[test]
    fn text_of_reads() {
        let reads = decode_all(&[&[IAC, DO, ECHO], b"\r\n", b"two\r\nlines\r\n"]);
        assert_eq!(reads[0].text(), None);
        assert_eq!(reads[1].text().as_deref(), Some(""));
        assert_eq!(reads[2].text().as_deref(), Some("two\nlines"));
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(b"caf\xc3").text().as_deref(),
            Some("caf\u{fffd}")
        );
    }

    /// A LF completing a CR of the previous read is not a message of its own.
    #[test]
    fn lf_after_cr_of_previous_read_is_dropped() {
        let reads = decode_all(&[b"hello\r", b"\n", b"\0"]);
        assert_eq!(reads[0].text().as_deref(), Some("hello"));
        assert_eq!(reads[1].text(), None);
        let reads = decode_all(&[b"hello\r", b"\0x"]);
        assert_eq!(reads[1].data, b"x");
    }

    /// Outbound lines end in CRLF and every LF inside becomes CRLF.
    #[test]
    fn encode_line_translates_newlines() {
        assert_eq!(encode_line("hello"), b"hello\r\n");
        assert_eq!(encode_line("a\nb"), b"a\r\nb\r\n");
        assert_eq!(encode_line(""), b"\r\n");
        assert_eq!(encode_line("a\r\nb"), b"a\r\r\nb\r\n");
    }
}
