//! The GSM 03.38 (3GPP TS 23.038) default alphabet and its basic extension table, as
//! unpacked septets.
//!
//! SMPP's `short_message` carries GSM text with `data_coding` 0 one septet per byte: the SMSC
//! packs septets for the air interface, so packing is not our job. The default alphabet only
//! partly overlaps ASCII (`@` is 0x00, `$` is 0x02, 0x24 is `¤`), so text must go through
//! this table rather than be sent as ASCII bytes.
//!
//! Ten characters (`^ { } \ [ ~ ] | €` and form feed) live in the extension table and take two
//! septets: the escape 0x1B, then their code. National language shift tables are not
//! supported: such text is sent as UCS-2 instead (see [`super::coding::choose`]).
//!
//! Some SMSCs send inbound text packed anyway (eight septets in seven octets, as on the air);
//! a channel that says so (`inbound_gsm7_packed`) reads it through [`unpack`] first.
//!
//! Decoding never fails; what it does with septets that mean nothing follows TS 23.038 where
//! the standard says what a receiver shows:
//!
//! - a byte above 0x7F (not a septet) becomes `?`;
//! - 0x1B followed by a code the extension table does not define shows that code's character
//!   from the default table ("display the character shown in the main default alphabet
//!   table"), so an unknown escape loses only the escape;
//! - 0x1B 0x1B (reserved for a second extension table) shows a space, as the standard asks;
//! - a lone 0x1B at the very end shows nothing: it is half a character, most likely cut off
//!   by a sender that split an escape pair across message parts, and a space or `?` would
//!   only add noise to the reassembled text.

/// The escape septet: the next septet is a code in the extension table.
const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet. Slot 0x1B is the escape, not a character: it holds
/// U+001B only to keep the table's shape, and [`code`] refuses it.
const DEFAULT_ALPHABET: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The basic extension table: (code after the escape, character).
const EXTENSION_TABLE: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How a character is written in GSM 7-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    /// One septet of the default alphabet.
    Default(u8),
    /// The escape, then this code of the extension table.
    Extension(u8),
}

/// The code of `c`, or `None` when GSM 7-bit cannot write it.
fn code(c: char) -> Option<Code> {
    if c == '\u{1B}' {
        return None;
    }
    if let Some(septet) = DEFAULT_ALPHABET.iter().position(|&d| d == c) {
        return Some(Code::Default(septet as u8));
    }
    EXTENSION_TABLE
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(code, _)| Code::Extension(code))
}

/// The septets of `text`, one per byte (extension characters as `[0x1B, code]`), or `None` if
/// any character is not in the default alphabet or its extension table.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        match code(c)? {
            Code::Default(septet) => septets.push(septet),
            Code::Extension(code) => septets.extend([ESCAPE, code]),
        }
    }
    Some(septets)
}

/// The text of unpacked septets. Never fails: see the module docs for what becomes of
/// septets that are not characters.
pub fn decode(septets: &[u8]) -> String {
    let mut text = String::with_capacity(septets.len());
    let mut bytes = septets.iter().copied();
    while let Some(byte) = bytes.next() {
        if byte != ESCAPE {
            text.push(default_char(byte));
            continue;
        }
        match bytes.next() {
            None => {}
            Some(ESCAPE) => text.push(' '),
            Some(code) => text.push(extension_char(code).unwrap_or_else(|| default_char(code))),
        }
    }
    text
}

/// The septets packed in `octets` (TS 23.038 §6.1.2.1.1: least significant bits first), one
/// per byte, skipping the first `header_octets` (a user data header: the septets start at
/// the next septet boundary after it, past its fill bits).
///
/// Packing leaves up to seven fill bits at the end. When exactly seven are left they read
/// as one more septet, 0x00 (`@`), that the sender never wrote: SMPP carries no septet
/// count to tell, so a final 0x00 that fills such a gap is taken for fill and dropped (a
/// real `@` in that position is lost; TS 23.038 asks senders to fill with CR instead, which
/// is kept).
pub fn unpack(octets: &[u8], header_octets: usize) -> Vec<u8> {
    let total_bits = octets.len() * 8;
    let first = (header_octets * 8).div_ceil(7);
    let count = total_bits / 7;
    let mut septets: Vec<u8> = (first..count)
        .map(|index| {
            let bit = index * 7;
            let (byte, shift) = (bit / 8, bit % 8);
            let low = u16::from(octets[byte]) >> shift;
            let high = octets
                .get(byte + 1)
                .map_or(0, |&next| u16::from(next) << (8 - shift));
            ((low | high) & 0x7F) as u8
        })
        .collect();
    if total_bits % 7 == 0 && septets.last() == Some(&0) {
        septets.pop();
    }
    septets
}

/// How many septets `text` takes (extension characters count two), or `None` if any
/// character is not representable. Equal to the length of [`encode`]'s output.
pub fn septets(text: &str) -> Option<usize> {
    text.chars().map(char_septets).sum()
}

/// How many septets one character takes: 1 in the default alphabet, 2 in the extension
/// table, `None` otherwise. Splitting long messages counts with this so that an escape pair
/// never ends up across two parts.
pub fn char_septets(c: char) -> Option<usize> {
    match code(c)? {
        Code::Default(_) => Some(1),
        Code::Extension(_) => Some(2),
    }
}

/// The default-alphabet character of a septet; `?` for a byte that is not a septet.
fn default_char(septet: u8) -> char {
    DEFAULT_ALPHABET
        .get(usize::from(septet))
        .copied()
        .unwrap_or('?')
}

/// The extension-table character of the code after an escape, if the table defines one.
fn extension_char(code: u8) -> Option<char> {
    EXTENSION_TABLE
        .iter()
        .find(|&&(c, _)| c == code)
        .map(|&(_, e)| e)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Packs `septets` after `header` as a sender does (the inverse of [`unpack`]).
    fn pack(header: &[u8], septets: &[u8]) -> Vec<u8> {
        let start = (header.len() * 8).div_ceil(7) * 7;
        let bits = start + septets.len() * 7;
        let mut octets = header.to_vec();
        octets.resize(bits.div_ceil(8), 0);
        for (index, &septet) in septets.iter().enumerate() {
            let bit = start + index * 7;
            let (byte, shift) = (bit / 8, bit % 8);
            octets[byte] |= septet << shift;
            if shift > 1 {
                octets[byte + 1] |= septet >> (8 - shift);
            }
        }
        octets
    }

    #[test]
    fn unpacks_the_standard_example() {
        // "hellohello", as TS 23.038 packs it.
        let packed = [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37];
        assert_eq!(decode(&unpack(&packed, 0)), "hellohello");
        assert_eq!(pack(&[], &encode("hellohello").unwrap()), packed);
    }

    #[test]
    fn seven_fill_bits_are_not_a_character() {
        // Seven septets fill seven octets less seven bits: no eighth `@`.
        let packed = pack(&[], &encode("1234567").unwrap());
        assert_eq!(packed.len(), 7);
        assert_eq!(decode(&unpack(&packed, 0)), "1234567");
        // Eight septets fill seven octets exactly: all are characters.
        assert_eq!(
            decode(&unpack(&pack(&[], &encode("12345678").unwrap()), 0)),
            "12345678"
        );
    }

    #[test]
    fn septets_after_a_header_start_past_its_fill_bits() {
        // A concatenation header of six octets (48 bits) leaves one fill bit.
        let header = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
        let packed = pack(&header, &encode("Hi [there]").unwrap());
        assert_eq!(&packed[..6], header);
        assert_eq!(packed.len(), 6 + (1 + 12 * 7usize).div_ceil(8));
        assert_eq!(decode(&unpack(&packed, header.len())), "Hi [there]");
    }

    /// Every character GSM 7-bit can write: the default table less the escape slot, and the
    /// extension table.
    fn alphabet() -> Vec<char> {
        DEFAULT_ALPHABET
            .iter()
            .copied()
            .filter(|&c| c != '\u{1B}')
            .chain(EXTENSION_TABLE.iter().map(|&(_, c)| c))
            .collect()
    }

    #[test]
    fn every_default_character_round_trips_as_its_own_septet() {
        for (septet, &c) in DEFAULT_ALPHABET.iter().enumerate() {
            if septet == usize::from(ESCAPE) {
                continue;
            }
            let text = c.to_string();
            assert_eq!(encode(&text), Some(vec![septet as u8]), "{c:?}");
            assert_eq!(decode(&[septet as u8]), text, "septet {septet:#04x}");
            assert_eq!(septets(&text), Some(1));
        }
    }

    #[test]
    fn every_extension_character_round_trips_as_an_escape_pair() {
        for &(code, c) in &EXTENSION_TABLE {
            let text = c.to_string();
            assert_eq!(encode(&text), Some(vec![0x1B, code]), "{c:?}");
            assert_eq!(decode(&[0x1B, code]), text, "code {code:#04x}");
            assert_eq!(septets(&text), Some(2));
        }
    }

    #[test]
    fn the_alphabet_has_no_duplicates() {
        let all = alphabet();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), 137, "127 default characters and 10 extensions");
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn characters_that_differ_from_ascii_are_mapped() {
        assert_eq!(encode("@$_"), Some(vec![0x00, 0x02, 0x11]));
        assert_eq!(encode("¤"), Some(vec![0x24]));
        assert_eq!(encode("Hello, World!"), Some(b"Hello, World!".to_vec()));
        assert_eq!(encode("€5 [x]").unwrap().len(), 9, "three escape pairs");
        assert_eq!(decode(&[0x00, 0x02, 0x24]), "@$¤");
    }

    #[test]
    fn unrepresentable_characters_are_refused() {
        for text in ["`", "ç", "á", "Ω€Ж", "😀", "\u{1B}", "\t"] {
            assert_eq!(encode(text), None, "{text:?}");
            assert_eq!(septets(text), None, "{text:?}");
        }
        assert_eq!(encode(""), Some(vec![]));
        assert_eq!(septets(""), Some(0));
    }

    #[test]
    fn bytes_that_are_not_septets_decode_as_question_marks() {
        assert_eq!(decode(&[b'a', 0x80, 0xFF, b'b']), "a??b");
    }

    #[test]
    fn an_unknown_escape_shows_the_default_character() {
        assert_eq!(decode(&[0x1B, b'a']), "a");
        assert_eq!(decode(&[0x1B, 0x00, b'x']), "@x");
        assert_eq!(decode(&[0x1B, 0x80]), "?");
    }

    #[test]
    fn a_double_escape_shows_a_space() {
        assert_eq!(decode(&[b'a', 0x1B, 0x1B, b'b']), "a b");
    }

    #[test]
    fn a_trailing_lone_escape_shows_nothing() {
        assert_eq!(decode(&[b'a', 0x1B]), "a");
        assert_eq!(decode(&[0x1B]), "");
    }

    fn gsm_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(alphabet()), 0..400)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        /// Whatever the header length, packed septets come back (but for a final `@` that
        /// packing cannot tell from fill bits; see [`unpack`]).
        #[test]
        fn packed_septets_round_trip(
            header in proptest::collection::vec(any::<u8>(), 0..8),
            septets in proptest::collection::vec(0u8..0x80, 0..170),
        ) {
            prop_assume!(septets.last() != Some(&0));
            prop_assert_eq!(unpack(&pack(&header, &septets), header.len()), septets);
        }

        #[test]
        fn gsm_text_round_trips(text in gsm_text()) {
            let encoded = encode(&text).unwrap();
            prop_assert!(encoded.iter().all(|&b| b < 0x80));
            prop_assert_eq!(decode(&encoded), text);
        }

        #[test]
        fn septet_count_is_the_encoded_length(text in gsm_text()) {
            prop_assert_eq!(septets(&text), Some(encode(&text).unwrap().len()));
        }

        #[test]
        fn decoding_any_bytes_gives_at_most_one_character_per_byte(bytes in any::<Vec<u8>>()) {
            prop_assert!(decode(&bytes).chars().count() <= bytes.len());
        }

        #[test]
        fn any_text_is_encoded_exactly_when_it_has_a_septet_count(text in any::<String>()) {
            prop_assert_eq!(encode(&text).map(|e| e.len()), septets(&text));
        }
    }
}
