//! SMPP `data_coding`: which coding an outbound text gets, and the text codecs both ways.
//!
//! Outbound we send one of three codings ([`DataCoding`]): GSM 7-bit whenever the text fits
//! it (the cheapest: 160 characters a message), else Latin-1 where the channel allows it
//! (not every SMSC or handset supports `data_coding` 3), else UCS-2, which writes anything.
//! [`choose`] makes that choice; a message may override it by name ([`DataCoding::from_name`]).
//!
//! Inbound, [`decode`] reads whatever `data_coding` an SMSC sends and never fails: an SMS
//! that arrives must reach the application, even with a character or two replaced.

use std::fmt;

use super::gsm7;

/// The codings we send text in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCoding {
    /// GSM 03.38 default alphabet, unpacked (`data_coding` 0x00, "SMSC default").
    Gsm7,
    /// ISO-8859-1 (`data_coding` 0x03).
    Latin1,
    /// UCS-2 (`data_coding` 0x08), sent as UTF-16BE so that characters outside the Basic
    /// Multilingual Plane (emoji) survive as surrogate pairs; handsets display them.
    Ucs2,
}

impl DataCoding {
    /// The `data_coding` field value.
    pub fn value(self) -> u8 {
        match self {
            DataCoding::Gsm7 => 0x00,
            DataCoding::Latin1 => 0x03,
            DataCoding::Ucs2 => 0x08,
        }
    }

    /// The coding of a `data_coding` value, for the three values we send (0x00, 0x03,
    /// 0x08). [`decode`] reads more values than these; this is for the ones we can also
    /// write, e.g. a configured default.
    pub fn from_value(value: u8) -> Option<DataCoding> {
        match value {
            0x00 => Some(DataCoding::Gsm7),
            0x03 => Some(DataCoding::Latin1),
            0x08 => Some(DataCoding::Ucs2),
            _ => None,
        }
    }

    /// The coding a message asks for by name in its `channel_data`, ignoring ASCII case:
    /// `gsm7`, `gsm` or `default`; `latin1` or `iso-8859-1`; `ucs2`.
    pub fn from_name(name: &str) -> Option<DataCoding> {
        match name.to_ascii_lowercase().as_str() {
            "gsm7" | "gsm" | "default" => Some(DataCoding::Gsm7),
            "latin1" | "iso-8859-1" => Some(DataCoding::Latin1),
            "ucs2" => Some(DataCoding::Ucs2),
            _ => None,
        }
    }
}

/// The coding's name as [`DataCoding::from_name`] accepts it.
impl fmt::Display for DataCoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataCoding::Gsm7 => "gsm7",
            DataCoding::Latin1 => "latin1",
            DataCoding::Ucs2 => "ucs2",
        })
    }
}

/// Why a text cannot be sent as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    /// The text holds a character the coding cannot write (the first such character).
    #[error("{character:?} (U+{:04X}) cannot be encoded in {coding}", u32::from(*character))]
    Unrepresentable {
        /// The first character that does not fit.
        character: char,
        /// The coding it does not fit.
        coding: DataCoding,
    },
    /// The text needs more parts than a concatenated message can have (255).
    #[error("the message needs {parts} parts, and a long message has at most 255")]
    TooManyParts {
        /// How many parts it would need.
        parts: usize,
    },
    /// The text is longer than the `message_payload` TLV can carry (65535 octets).
    #[error("the message is {octets} octets long, and message_payload carries at most 65535")]
    PayloadTooLong {
        /// Its encoded length.
        octets: usize,
    },
}

/// The coding for `text`: GSM 7-bit if every character fits it, else Latin-1 if allowed and
/// every character fits it, else UCS-2.
pub fn choose(text: &str, latin1_allowed: bool) -> DataCoding {
    if gsm7::septets(text).is_some() {
        DataCoding::Gsm7
    } else if latin1_allowed && text.chars().all(is_latin1) {
        DataCoding::Latin1
    } else {
        DataCoding::Ucs2
    }
}

/// The bytes of `text` in `coding`: unpacked septets, one byte per character, or UTF-16BE.
/// The error names the first character that does not fit.
pub fn encode(text: &str, coding: DataCoding) -> Result<Vec<u8>, CodingError> {
    let unrepresentable = |character| CodingError::Unrepresentable { character, coding };
    match coding {
        DataCoding::Gsm7 => gsm7::encode(text).ok_or_else(|| {
            let first = text.chars().find(|&c| gsm7::char_septets(c).is_none());
            unrepresentable(first.expect("gsm7::encode fails only on a character"))
        }),
        DataCoding::Latin1 => text
            .chars()
            .map(|c| u8::try_from(c).map_err(|_| unrepresentable(c)))
            .collect(),
        DataCoding::Ucs2 => Ok(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
    }
}

/// The text of a `short_message` (or `message_payload`) with this `data_coding`. Never
/// fails; what cannot be read is replaced (`?` or U+FFFD).
///
/// - 0x00 (SMSC default): GSM 7-bit, unpacked ([`gsm7::decode`]).
/// - 0x01 (IA5): ASCII; bytes above 0x7F become `?`. Some SMSCs send GSM text with this
///   value, but IA5 is what SMPP 3.4 defines, and the two agree on letters and digits.
/// - 0x03: Latin-1.
/// - 0x08: UCS-2 read as UTF-16BE, so surrogate pairs become the characters they encode;
///   an odd last byte or a lone surrogate becomes U+FFFD.
/// - 0x02 and 0x04 (8-bit binary) and any value we do not know: UTF-8, lossily, which is
///   what applications that send "binary" text mostly mean.
///
/// GSM 03.38 coding groups, which carry a message class (0x10–0x1F uncompressed, and
/// 0xF0–0xFF, e.g. flash messages), are read by the alphabet they name: GSM 7-bit, 8-bit
/// (as UTF-8) or UCS-2.
pub fn decode(bytes: &[u8], data_coding: u8) -> String {
    match data_coding {
        0x00 => gsm7::decode(bytes),
        0x01 => bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
            .collect(),
        0x03 => bytes.iter().copied().map(char::from).collect(),
        0x08 => decode_utf16be(bytes),
        0x10..=0x1F => decode_group_alphabet(bytes, (data_coding >> 2) & 0b11),
        0xF0..=0xFF => decode_group_alphabet(bytes, (data_coding >> 2) & 0b01),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether `data_coding` names GSM 7-bit: 0x00 (SMSC default), or a GSM 03.38 coding group
/// whose alphabet bits say the default alphabet (as [`decode`] reads them).
pub fn is_gsm7(data_coding: u8) -> bool {
    match data_coding {
        0x00 => true,
        0x10..=0x1F => (data_coding >> 2) & 0b11 == 0,
        0xF0..=0xFF => (data_coding >> 2) & 0b01 == 0,
        _ => false,
    }
}

/// How many units `text` takes in `coding`: septets for GSM 7-bit, bytes for Latin-1,
/// UTF-16 code units for UCS-2. A character the coding cannot write counts one unit (such
/// a text is refused by [`encode`] anyway); this is for length limits and costs.
pub fn units(text: &str, coding: DataCoding) -> usize {
    text.chars()
        .map(|c| char_units(c, coding).unwrap_or(1))
        .sum()
}

/// How many units one character takes in `coding`, or `None` if the coding cannot write
/// it. Splitting long messages counts with this, so an escape pair or a surrogate pair is
/// never cut.
pub fn char_units(c: char, coding: DataCoding) -> Option<usize> {
    match coding {
        DataCoding::Gsm7 => gsm7::char_septets(c),
        DataCoding::Latin1 => is_latin1(c).then_some(1),
        DataCoding::Ucs2 => Some(c.len_utf16()),
    }
}

/// Whether Latin-1 (one byte, U+0000 to U+00FF) can write `c`.
fn is_latin1(c: char) -> bool {
    u32::from(c) <= 0xFF
}

/// UTF-16BE, lossily: an odd last byte or a lone surrogate becomes U+FFFD.
fn decode_utf16be(bytes: &[u8]) -> String {
    let pairs = bytes.chunks_exact(2);
    let odd_byte = !pairs.remainder().is_empty();
    let units = pairs.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if odd_byte {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// The text of a message whose GSM 03.38 coding group names its alphabet in two bits:
/// 0 GSM 7-bit, 1 8-bit data, 2 UCS-2 (3 is reserved, read like 8-bit).
fn decode_group_alphabet(bytes: &[u8], alphabet: u8) -> String {
    match alphabet {
        0 => gsm7::decode(bytes),
        2 => decode_utf16be(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ALL: [DataCoding; 3] = [DataCoding::Gsm7, DataCoding::Latin1, DataCoding::Ucs2];

    #[test]
    fn values_round_trip() {
        for coding in ALL {
            assert_eq!(DataCoding::from_value(coding.value()), Some(coding));
        }
        assert_eq!(
            ALL.map(DataCoding::value),
            [0x00, 0x03, 0x08],
            "the SMPP 3.4 values"
        );
        for other in [0x01, 0x02, 0x04, 0x18, 0xF0] {
            assert_eq!(DataCoding::from_value(other), None, "{other:#04x}");
        }
    }

    #[test]
    fn names_are_accepted_in_any_case() {
        for (name, coding) in [
            ("gsm7", DataCoding::Gsm7),
            ("GSM", DataCoding::Gsm7),
            ("default", DataCoding::Gsm7),
            ("latin1", DataCoding::Latin1),
            ("ISO-8859-1", DataCoding::Latin1),
            ("ucs2", DataCoding::Ucs2),
            ("UCS2", DataCoding::Ucs2),
        ] {
            assert_eq!(DataCoding::from_name(name), Some(coding), "{name}");
        }
        for name in ["", "utf8", "ascii", "gsm 7"] {
            assert_eq!(DataCoding::from_name(name), None, "{name}");
        }
        for coding in ALL {
            assert_eq!(DataCoding::from_name(&coding.to_string()), Some(coding));
        }
    }

    #[test]
    fn choose_prefers_gsm_then_latin1_then_ucs2() {
        assert_eq!(choose("Hello {world} €", true), DataCoding::Gsm7);
        assert_eq!(choose("", false), DataCoding::Gsm7);
        assert_eq!(choose("façade", true), DataCoding::Latin1);
        assert_eq!(choose("façade", false), DataCoding::Ucs2);
        assert_eq!(
            choose("ç and €", true),
            DataCoding::Ucs2,
            "€ is GSM but not Latin-1, ç is Latin-1 but not GSM"
        );
        assert_eq!(choose("Привет", true), DataCoding::Ucs2);
        assert_eq!(choose("👍", true), DataCoding::Ucs2);
    }

    #[test]
    fn encode_writes_each_coding() {
        assert_eq!(encode("a@", DataCoding::Gsm7).unwrap(), [0x61, 0x00]);
        assert_eq!(encode("aé", DataCoding::Latin1).unwrap(), [0x61, 0xE9]);
        assert_eq!(
            encode("aЖ😀", DataCoding::Ucs2).unwrap(),
            [0x00, 0x61, 0x04, 0x16, 0xD8, 0x3D, 0xDE, 0x00]
        );
    }

    #[test]
    fn encode_names_the_first_character_that_does_not_fit() {
        assert_eq!(
            encode("ok ç then Ж", DataCoding::Gsm7),
            Err(CodingError::Unrepresentable {
                character: 'ç',
                coding: DataCoding::Gsm7
            })
        );
        let err = encode("ok € then Ж", DataCoding::Latin1).unwrap_err();
        assert_eq!(
            err,
            CodingError::Unrepresentable {
                character: '€',
                coding: DataCoding::Latin1
            }
        );
        assert_eq!(err.to_string(), "'€' (U+20AC) cannot be encoded in latin1");
    }

    #[test]
    fn decode_reads_every_data_coding() {
        assert_eq!(decode(&[0x00, 0x1B, 0x65], 0x00), "@€");
        assert_eq!(decode(b"a@\x80", 0x01), "a@?");
        assert_eq!(decode(&[0x61, 0xE9, 0xFF], 0x03), "aéÿ");
        assert_eq!(decode(&[0x04, 0x16, 0xD8, 0x3D, 0xDE, 0x00], 0x08), "Ж😀");
        assert_eq!(decode("héllo".as_bytes(), 0x02), "héllo");
        assert_eq!(decode("héllo".as_bytes(), 0x04), "héllo");
        assert_eq!(decode(b"bad \xFF", 0x04), "bad \u{FFFD}");
        assert_eq!(
            decode("Привет".as_bytes(), 0x06),
            "Привет",
            "unknown: UTF-8"
        );
    }

    #[test]
    fn decode_reads_gsm_coding_groups_by_their_alphabet() {
        assert_eq!(
            decode(&[0x00], 0x10),
            "@",
            "general group, GSM 7-bit, class 0"
        );
        assert_eq!(
            decode(&[0x04, 0x16], 0x18),
            "Ж",
            "general group, UCS-2, class 0"
        );
        assert_eq!(decode(&[0x00], 0xF0), "@", "flash SMS, GSM 7-bit");
        assert_eq!(decode(b"@", 0xF4), "@", "8-bit data, class 0");
        assert_eq!(
            decode(&[0x04, 0x16], 0x08 | 0x20),
            "\u{4}\u{16}",
            "compressed: bytes"
        );
    }

    #[test]
    fn ucs2_decoding_is_lossy_on_broken_input() {
        assert_eq!(decode(&[0x00, 0x61, 0x00], 0x08), "a\u{FFFD}");
        assert_eq!(decode(&[0xD8, 0x3D, 0x00, 0x61], 0x08), "\u{FFFD}a");
        assert_eq!(decode(&[0xDE, 0x00], 0x08), "\u{FFFD}");
        assert_eq!(decode(&[], 0x08), "");
    }

    #[test]
    fn units_count_each_codings_unit() {
        let text = "a€😀";
        assert_eq!(units("a€", DataCoding::Gsm7), 3, "€ is an escape pair");
        assert_eq!(units("aé", DataCoding::Latin1), 2);
        assert_eq!(units(text, DataCoding::Ucs2), 4, "😀 is a surrogate pair");
        assert_eq!(units("aç", DataCoding::Gsm7), 2, "unwritable counts one");
        assert_eq!(char_units('ç', DataCoding::Gsm7), None);
        assert_eq!(char_units('€', DataCoding::Latin1), None);
        assert_eq!(char_units('ÿ', DataCoding::Latin1), Some(1));
    }

    proptest! {
        #[test]
        fn ucs2_round_trips_any_text(text in any::<String>()) {
            let bytes = encode(&text, DataCoding::Ucs2).unwrap();
            prop_assert_eq!(bytes.len(), 2 * units(&text, DataCoding::Ucs2));
            prop_assert_eq!(decode(&bytes, 0x08), text);
        }

        #[test]
        fn latin1_round_trips_latin1_text(text in "[\u{0}-\u{FF}]{0,300}") {
            let bytes = encode(&text, DataCoding::Latin1).unwrap();
            prop_assert_eq!(bytes.len(), units(&text, DataCoding::Latin1));
            prop_assert_eq!(decode(&bytes, 0x03), text);
        }

        #[test]
        fn the_chosen_coding_can_encode_the_text(text in any::<String>(), latin1 in any::<bool>()) {
            let coding = choose(&text, latin1);
            let bytes = encode(&text, coding).unwrap();
            prop_assert_eq!(decode(&bytes, coding.value()), text);
            prop_assert!(latin1 || coding != DataCoding::Latin1);
        }

        #[test]
        fn encoding_fails_exactly_on_a_character_without_units(
            text in any::<String>(),
            coding in proptest::sample::select(ALL.to_vec()),
        ) {
            let first_bad = text.chars().find(|&c| char_units(c, coding).is_none());
            match encode(&text, coding) {
                Ok(_) => prop_assert_eq!(first_bad, None),
                Err(CodingError::Unrepresentable { character, .. }) => {
                    prop_assert_eq!(Some(character), first_bad);
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
