//! Long messages: splitting outbound text into SMS parts, and putting inbound parts back
//! together.
//!
//! An SMS carries 140 octets of user data. A longer text goes out in parts that each carry a
//! concatenation header, so the handset can join them ([`split`], [`Concatenation`]):
//!
//! | coding  | one message | part, 8-bit UDH or SAR | part, 16-bit UDH |
//! |---------|-------------|------------------------|------------------|
//! | GSM 7   | 160 septets | 153 septets            | 152 septets      |
//! | Latin-1 | 140 bytes   | 134 bytes              | 133 bytes        |
//! | UCS-2   | 70 units    | 67 UTF-16 units        | 66 UTF-16 units  |
//!
//! The header takes 6 octets (8-bit reference) or 7 (16-bit reference) of the 140; in GSM
//! 7-bit it is padded to a whole number of septets (7 or 8). SAR parts carry their header in
//! TLVs, not in `short_message`, yet get the 8-bit UDH sizes: the SMSC turns SAR TLVs into a
//! UDH on the air interface, so the room for it must be left.
//!
//! A part boundary never falls inside a GSM escape pair or a UTF-16 surrogate pair: parts are
//! cut between characters, counting each character's width in its coding, so every part
//! decodes on its own.
//!
//! Inbound, [`strip_udh`] takes the concatenation header off a part; the daemon keeps the
//! parts of each long message until it is whole (see the `inbound` module).

use serde::Deserialize;

use super::coding::{self, CodingError, DataCoding};

/// Octets of user data in one SMS, headers included.
const USER_DATA_OCTETS: usize = 140;
/// The most octets the `message_payload` TLV carries: its length is two octets.
const MAX_PAYLOAD_OCTETS: usize = 65535;
/// The information element of a concatenation header with an 8-bit reference.
const IEI_CONCAT_8BIT: u8 = 0x00;
/// The information element of a concatenation header with a 16-bit reference.
const IEI_CONCAT_16BIT: u8 = 0x08;

/// How a text too long for one SMS is sent (the channel's config, or a message's override).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concatenation {
    /// Parts with a user data header and an 8-bit reference (IE 0x00): the most widely
    /// supported.
    Udh,
    /// Parts with a user data header and a 16-bit reference (IE 0x08): references collide
    /// less, at one unit less per part.
    Udh16,
    /// Parts with the `sar_msg_ref_num`, `sar_total_segments` and `sar_segment_seqnum` TLVs.
    Sar,
    /// One PDU with the whole text in the `message_payload` TLV; the SMSC splits it.
    MessagePayload,
}

impl Concatenation {
    /// Octets of the concatenation header each part carries on the air, or `None` when we
    /// do not split.
    fn header_octets(self) -> Option<usize> {
        match self {
            Concatenation::Udh | Concatenation::Sar => Some(6),
            Concatenation::Udh16 => Some(7),
            Concatenation::MessagePayload => None,
        }
    }
}

/// One `submit_sm` worth of an outbound text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPart {
    /// The bytes to send, the user data header first when [`udhi`](Self::udhi) is set.
    pub short_message: Vec<u8>,
    /// A user data header leads `short_message`: `esm_class` must get 0x40.
    pub udhi: bool,
    /// The SAR TLVs to send with this part.
    pub sar: Option<SarInfo>,
    /// Put `short_message`'s bytes in the `message_payload` TLV and send an empty
    /// `short_message`.
    pub payload: bool,
}

impl OutboundPart {
    /// A whole text in one ordinary `short_message`.
    fn single(short_message: Vec<u8>) -> Self {
        OutboundPart {
            short_message,
            udhi: false,
            sar: None,
            payload: false,
        }
    }
}

/// The SAR TLVs of one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SarInfo {
    /// `sar_msg_ref_num`: the same in every part of one message.
    pub reference: u16,
    /// `sar_total_segments`.
    pub total: u8,
    /// `sar_segment_seqnum`, from 1.
    pub sequence: u8,
}

/// The parts `text` goes out in, in order.
///
/// A text that fits one SMS gives one plain part, whatever `method` says. A longer one
/// gives parts with a UDH or SAR TLVs, or, for [`Concatenation::MessagePayload`], one
/// payload part. `reference` identifies the message among the sender's recent long
/// messages: UDH with an 8-bit reference uses its low byte.
///
/// Fails if a character does not fit `coding` (the first one is named), if the text needs
/// more than 255 parts, or if it is too long for `message_payload`.
pub fn split(
    text: &str,
    coding: DataCoding,
    method: Concatenation,
    reference: u16,
) -> Result<Vec<OutboundPart>, CodingError> {
    let whole = coding::encode(text, coding)?;
    if fits_one_message(text, coding) {
        return Ok(vec![OutboundPart::single(whole)]);
    }
    let Some(header_octets) = method.header_octets() else {
        if whole.len() > MAX_PAYLOAD_OCTETS {
            return Err(CodingError::PayloadTooLong {
                octets: whole.len(),
            });
        }
        return Ok(vec![OutboundPart {
            payload: true,
            ..OutboundPart::single(whole)
        }]);
    };
    let capacity = units_in(coding, USER_DATA_OCTETS - header_octets);
    let chunks: Vec<usize> = chunk_units(text, coding, capacity).collect();
    // The part count is one octet in both the UDH and the SAR TLVs.
    let total = u8::try_from(chunks.len()).map_err(|_| CodingError::TooManyParts {
        parts: chunks.len(),
    })?;
    let octets_per_unit = octets_per_unit(coding);
    let mut rest = whole.as_slice();
    let mut parts = Vec::with_capacity(chunks.len());
    for (sequence, units) in (1..=total).zip(chunks) {
        let (body, after) = rest.split_at(units * octets_per_unit);
        rest = after;
        parts.push(part(method, body, reference, total, sequence));
    }
    Ok(parts)
}

/// How many parts [`split`] would give for `text` (at least 1); for rate-limit costs.
/// Characters `coding` cannot write count one unit, and a count above 255, which `split`
/// refuses, is still reported as it is.
pub fn count(text: &str, coding: DataCoding, method: Concatenation) -> u32 {
    if fits_one_message(text, coding) {
        return 1;
    }
    let Some(header_octets) = method.header_octets() else {
        return 1;
    };
    let capacity = units_in(coding, USER_DATA_OCTETS - header_octets);
    u32::try_from(chunk_units(text, coding, capacity).count()).unwrap_or(u32::MAX)
}

/// Whether `text` fits one SMS without a header.
fn fits_one_message(text: &str, coding: DataCoding) -> bool {
    coding::units(text, coding) <= units_in(coding, USER_DATA_OCTETS)
}

/// How many of the coding's units fit `octets` octets of user data on the air.
fn units_in(coding: DataCoding, octets: usize) -> usize {
    match coding {
        DataCoding::Gsm7 => octets * 8 / 7,
        DataCoding::Latin1 => octets,
        DataCoding::Ucs2 => octets / 2,
    }
}

/// How many octets one unit takes in our encoding (unpacked septets take one).
fn octets_per_unit(coding: DataCoding) -> usize {
    match coding {
        DataCoding::Gsm7 | DataCoding::Latin1 => 1,
        DataCoding::Ucs2 => 2,
    }
}

/// The unit count of each part, cutting only between characters. Characters the coding
/// cannot write count one unit.
fn chunk_units(
    text: &str,
    coding: DataCoding,
    capacity: usize,
) -> impl Iterator<Item = usize> + '_ {
    let mut widths = text
        .chars()
        .map(move |c| coding::char_units(c, coding).unwrap_or(1))
        .peekable();
    std::iter::from_fn(move || {
        let mut units = 0;
        while let Some(width) = widths.next_if(|&width| units + width <= capacity) {
            units += width;
        }
        (units > 0).then_some(units)
    })
}

/// Part `sequence` of `total`, carrying `body`.
fn part(
    method: Concatenation,
    body: &[u8],
    reference: u16,
    total: u8,
    sequence: u8,
) -> OutboundPart {
    let [high, low] = reference.to_be_bytes();
    // Header length, then one element: its id, its length, its data.
    let header = match method {
        Concatenation::Udh => vec![0x05, IEI_CONCAT_8BIT, 0x03, low, total, sequence],
        Concatenation::Udh16 => vec![0x06, IEI_CONCAT_16BIT, 0x04, high, low, total, sequence],
        Concatenation::Sar | Concatenation::MessagePayload => vec![],
    };
    OutboundPart {
        short_message: [header.as_slice(), body].concat(),
        udhi: !header.is_empty(),
        sar: (method == Concatenation::Sar).then_some(SarInfo {
            reference,
            total,
            sequence,
        }),
        payload: false,
    }
}

/// Which long message an inbound part belongs to, and where it goes in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConcatKey {
    /// The sender's reference for the message (an 8-bit reference as is).
    pub reference: u16,
    /// How many parts the message has.
    pub total: u8,
    /// This part's place, from 1.
    pub sequence: u8,
}

/// Takes the user data header off an inbound `short_message` whose `esm_class` has the UDHI
/// bit (`udhi`), returning its concatenation information, if any, and the text bytes after
/// it.
///
/// Information elements other than concatenation (port numbers, text formatting, …) are
/// skipped. A concatenation element with the wrong length, a zero total or a sequence
/// outside `1..=total` is ignored too: the part is then delivered alone. A header that does
/// not hold together (its length or an element's runs past the end) gives `(None, all of
/// short_message)`: the bytes cannot be split with confidence, and delivering them as they
/// are loses nothing.
pub fn strip_udh(short_message: &[u8], udhi: bool) -> (Option<ConcatKey>, &[u8]) {
    if !udhi {
        return (None, short_message);
    }
    parse_udh(short_message).unwrap_or((None, short_message))
}

/// The concatenation key and body of a message with a UDH, or `None` if the UDH is
/// malformed.
fn parse_udh(short_message: &[u8]) -> Option<(Option<ConcatKey>, &[u8])> {
    let (&header_length, rest) = short_message.split_first()?;
    let (mut elements, body) = rest.split_at_checked(usize::from(header_length))?;
    let mut key = None;
    while let Some((&id, rest)) = elements.split_first() {
        let (&length, rest) = rest.split_first()?;
        let (data, rest) = rest.split_at_checked(usize::from(length))?;
        elements = rest;
        key = key.or(concat_key(id, data));
    }
    Some((key, body))
}

/// The key of a concatenation information element, if `id` is one and `data` is valid.
fn concat_key(id: u8, data: &[u8]) -> Option<ConcatKey> {
    let (reference, total, sequence) = match (id, data) {
        (IEI_CONCAT_8BIT, &[reference, total, sequence]) => (u16::from(reference), total, sequence),
        (IEI_CONCAT_16BIT, &[high, low, total, sequence]) => {
            (u16::from_be_bytes([high, low]), total, sequence)
        }
        _ => return None,
    };
    (1..=total).contains(&sequence).then_some(ConcatKey {
        reference,
        total,
        sequence,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const METHODS: [Concatenation; 4] = [
        Concatenation::Udh,
        Concatenation::Udh16,
        Concatenation::Sar,
        Concatenation::MessagePayload,
    ];

    /// A character that takes one unit in `coding` and is not ASCII where possible, so the
    /// encoding matters.
    fn filler(coding: DataCoding) -> char {
        match coding {
            DataCoding::Gsm7 => 'Δ',
            DataCoding::Latin1 => 'é',
            DataCoding::Ucs2 => 'Ж',
        }
    }

    fn repeat(c: char, times: usize) -> String {
        std::iter::repeat_n(c, times).collect()
    }

    /// What an SMSC would do with each part: take the header off, decode, join the parts
    /// of one reference in sequence order.
    fn reassemble(parts: &[OutboundPart], coding: DataCoding) -> String {
        let mut texts = BTreeMap::new();
        let mut shared = None;
        for part in parts {
            let (udh_key, body) = strip_udh(&part.short_message, part.udhi);
            let sar_key = part.sar.map(|sar| ConcatKey {
                reference: sar.reference,
                total: sar.total,
                sequence: sar.sequence,
            });
            let text = coding::decode(body, coding.value());
            let Some(key) = udh_key.or(sar_key) else {
                assert_eq!(parts.len(), 1, "only a lone part has no concatenation key");
                return text;
            };
            let (reference, total) = *shared.get_or_insert((key.reference, key.total));
            assert_eq!((key.reference, key.total), (reference, total), "{key:?}");
            texts.insert(key.sequence, text);
        }
        let total = shared.map_or(0, |(_, total)| usize::from(total));
        assert_eq!(texts.len(), total, "every part from 1 to total, once");
        texts.into_values().collect()
    }

    /// The octets a part takes on the air interface, where GSM 7-bit is packed, its header
    /// padded to a septet boundary, and SAR TLVs become an 8-bit UDH.
    fn air_octets(part: &OutboundPart, coding: DataCoding) -> usize {
        let (header, body) = match (part.udhi, part.sar) {
            (true, _) => {
                let header = 1 + usize::from(part.short_message[0]);
                (header, &part.short_message[header..])
            }
            (false, Some(_)) => (6, part.short_message.as_slice()),
            (false, None) => (0, part.short_message.as_slice()),
        };
        match coding {
            DataCoding::Gsm7 => ((header * 8).div_ceil(7) + body.len()) * 7 / 8,
            DataCoding::Latin1 | DataCoding::Ucs2 => header + body.len(),
        }
    }

    #[test]
    fn a_text_that_fits_one_message_is_one_plain_part() {
        for coding in [DataCoding::Gsm7, DataCoding::Latin1, DataCoding::Ucs2] {
            let limit = units_in(coding, 140);
            let text = repeat(filler(coding), limit);
            for method in METHODS {
                let parts = split(&text, coding, method, 7).unwrap();
                assert_eq!(
                    parts,
                    [OutboundPart {
                        short_message: coding::encode(&text, coding).unwrap(),
                        udhi: false,
                        sar: None,
                        payload: false,
                    }],
                    "{coding} {method:?}"
                );
                assert_eq!(count(&text, coding, method), 1);
            }
        }
        assert_eq!(
            split("", DataCoding::Gsm7, Concatenation::Udh, 0)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn part_counts_at_the_boundaries() {
        use Concatenation::*;
        use DataCoding::*;
        let cases = [
            (Gsm7, Udh, 160, 1),
            (Gsm7, Udh, 161, 2),
            (Gsm7, Udh, 306, 2),
            (Gsm7, Udh, 307, 3),
            (Gsm7, Sar, 306, 2),
            (Gsm7, Sar, 307, 3),
            (Gsm7, Udh16, 161, 2),
            (Gsm7, Udh16, 304, 2),
            (Gsm7, Udh16, 305, 3),
            (Gsm7, MessagePayload, 161, 1),
            (Gsm7, MessagePayload, 5000, 1),
            (Latin1, Udh, 140, 1),
            (Latin1, Udh, 141, 2),
            (Latin1, Udh, 268, 2),
            (Latin1, Udh, 269, 3),
            (Latin1, Sar, 269, 3),
            (Latin1, Udh16, 266, 2),
            (Latin1, Udh16, 267, 3),
            (Ucs2, Udh, 70, 1),
            (Ucs2, Udh, 71, 2),
            (Ucs2, Udh, 134, 2),
            (Ucs2, Udh, 135, 3),
            (Ucs2, Sar, 135, 3),
            (Ucs2, Udh16, 132, 2),
            (Ucs2, Udh16, 133, 3),
        ];
        for (coding, method, length, expected) in cases {
            let text = repeat(filler(coding), length);
            let parts = split(&text, coding, method, 1).unwrap();
            assert_eq!(parts.len(), expected, "{coding} {method:?} {length}");
            assert_eq!(count(&text, coding, method), expected as u32);
        }
    }

    #[test]
    fn extension_characters_count_two_septets() {
        let text = repeat('€', 80);
        assert_eq!(count(&text, DataCoding::Gsm7, Concatenation::Udh), 1);
        let text = repeat('€', 81);
        assert_eq!(count(&text, DataCoding::Gsm7, Concatenation::Udh), 2);
    }

    #[test]
    fn udh_parts_carry_an_8bit_reference() {
        let text = repeat('a', 161);
        let parts = split(&text, DataCoding::Gsm7, Concatenation::Udh, 0x1234).unwrap();
        assert_eq!(parts[0].short_message[..6], [0x05, 0x00, 0x03, 0x34, 2, 1]);
        assert_eq!(parts[0].short_message[6..], *repeat('a', 153).as_bytes());
        assert_eq!(parts[1].short_message[..6], [0x05, 0x00, 0x03, 0x34, 2, 2]);
        assert_eq!(parts[1].short_message[6..], *b"aaaaaaaa");
        assert!(parts
            .iter()
            .all(|p| p.udhi && p.sar.is_none() && !p.payload));
    }

    #[test]
    fn udh16_parts_carry_a_16bit_reference() {
        let text = repeat('Ж', 71);
        let parts = split(&text, DataCoding::Ucs2, Concatenation::Udh16, 0x1234).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].short_message[..7],
            [0x06, 0x08, 0x04, 0x12, 0x34, 2, 1]
        );
        assert_eq!(parts[0].short_message.len(), 7 + 66 * 2);
        assert_eq!(
            parts[1].short_message,
            [
                0x06, 0x08, 0x04, 0x12, 0x34, 2, 2, 0x04, 0x16, 0x04, 0x16, 0x04, 0x16, 0x04, 0x16,
                0x04, 0x16
            ]
        );
        assert!(parts
            .iter()
            .all(|p| p.udhi && p.sar.is_none() && !p.payload));
    }

    #[test]
    fn sar_parts_carry_tlvs_and_no_header() {
        let text = repeat('é', 300);
        let parts = split(&text, DataCoding::Latin1, Concatenation::Sar, 0xBEEF).unwrap();
        let sar: Vec<_> = parts.iter().map(|p| p.sar.unwrap()).collect();
        assert_eq!(
            sar,
            (1..=3)
                .map(|sequence| SarInfo {
                    reference: 0xBEEF,
                    total: 3,
                    sequence
                })
                .collect::<Vec<_>>()
        );
        let lengths: Vec<_> = parts.iter().map(|p| p.short_message.len()).collect();
        assert_eq!(lengths, [134, 134, 32]);
        assert!(parts.iter().all(|p| !p.udhi && !p.payload));
        assert!(parts
            .iter()
            .all(|p| p.short_message.iter().all(|&b| b == 0xE9)));
    }

    #[test]
    fn message_payload_sends_a_long_text_whole() {
        let text = repeat('😀', 400);
        let parts = split(&text, DataCoding::Ucs2, Concatenation::MessagePayload, 9).unwrap();
        assert_eq!(
            parts,
            [OutboundPart {
                short_message: coding::encode(&text, DataCoding::Ucs2).unwrap(),
                udhi: false,
                sar: None,
                payload: true,
            }]
        );
    }

    #[test]
    fn message_payload_is_limited_by_its_length_field() {
        let fits = repeat('a', 65535);
        assert!(split(&fits, DataCoding::Latin1, Concatenation::MessagePayload, 0).is_ok());
        let too_long = repeat('a', 65536);
        assert_eq!(
            split(
                &too_long,
                DataCoding::Latin1,
                Concatenation::MessagePayload,
                0
            ),
            Err(CodingError::PayloadTooLong { octets: 65536 })
        );
    }

    #[test]
    fn an_escape_pair_is_never_cut() {
        let text = format!("{}€{}", repeat('a', 152), repeat('b', 10));
        let parts = split(&text, DataCoding::Gsm7, Concatenation::Udh, 1).unwrap();
        assert_eq!(
            parts[0].short_message.len(),
            6 + 152,
            "€ does not fit in 153"
        );
        assert_eq!(parts[1].short_message[6..8], [0x1B, 0x65]);
        assert_eq!(reassemble(&parts, DataCoding::Gsm7), text);

        let text = format!("{}€{}", repeat('a', 151), repeat('b', 10));
        let parts = split(&text, DataCoding::Gsm7, Concatenation::Udh, 1).unwrap();
        assert_eq!(
            parts[0].short_message[6 + 151..],
            [0x1B, 0x65],
            "€ fits exactly"
        );
        assert_eq!(reassemble(&parts, DataCoding::Gsm7), text);
    }

    #[test]
    fn a_surrogate_pair_is_never_cut() {
        let text = format!("{}😀{}", repeat('a', 66), repeat('b', 10));
        let parts = split(&text, DataCoding::Ucs2, Concatenation::Udh, 1).unwrap();
        assert_eq!(
            parts[0].short_message.len(),
            6 + 66 * 2,
            "😀 does not fit in 67"
        );
        assert_eq!(parts[1].short_message[6..10], [0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(reassemble(&parts, DataCoding::Ucs2), text);
    }

    #[test]
    fn a_long_message_has_at_most_255_parts() {
        let most = repeat('a', 255 * 153);
        let parts = split(&most, DataCoding::Gsm7, Concatenation::Udh, 3).unwrap();
        assert_eq!(parts.len(), 255);
        assert_eq!(
            parts[254].short_message[..6],
            [0x05, 0x00, 0x03, 3, 255, 255]
        );
        let too_many = repeat('a', 255 * 153 + 1);
        assert_eq!(
            split(&too_many, DataCoding::Gsm7, Concatenation::Udh, 3),
            Err(CodingError::TooManyParts { parts: 256 })
        );
        assert_eq!(count(&too_many, DataCoding::Gsm7, Concatenation::Udh), 256);
    }

    #[test]
    fn split_names_a_character_the_coding_cannot_write() {
        let text = format!("{}ç", repeat('a', 200));
        assert_eq!(
            split(&text, DataCoding::Gsm7, Concatenation::Udh, 0),
            Err(CodingError::Unrepresentable {
                character: 'ç',
                coding: DataCoding::Gsm7
            })
        );
        assert_eq!(count(&text, DataCoding::Gsm7, Concatenation::Udh), 2);
    }

    #[test]
    fn concatenation_is_configured_in_snake_case() {
        for (name, method) in [
            ("udh", Concatenation::Udh),
            ("udh16", Concatenation::Udh16),
            ("sar", Concatenation::Sar),
            ("message_payload", Concatenation::MessagePayload),
        ] {
            let parsed: Concatenation = serde_json::from_value(name.into()).unwrap();
            assert_eq!(parsed, method);
        }
        assert!(serde_json::from_value::<Concatenation>("UDH".into()).is_err());
    }

    #[test]
    fn strip_udh_reads_both_concatenation_elements() {
        let eight = [0x05, 0x00, 0x03, 0xAB, 3, 2, b'h', b'i'];
        let key = ConcatKey {
            reference: 0xAB,
            total: 3,
            sequence: 2,
        };
        assert_eq!(strip_udh(&eight, true), (Some(key), &b"hi"[..]));
        let sixteen = [0x06, 0x08, 0x04, 0x01, 0x02, 4, 4, b'h'];
        let key = ConcatKey {
            reference: 0x0102,
            total: 4,
            sequence: 4,
        };
        assert_eq!(strip_udh(&sixteen, true), (Some(key), &b"h"[..]));
    }

    #[test]
    fn strip_udh_skips_other_elements() {
        // Application port addressing (IE 0x05, 4 octets), then an 8-bit concatenation.
        let message = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 2, 1, b'x',
        ];
        let (key, body) = strip_udh(&message, true);
        assert_eq!(
            key,
            Some(ConcatKey {
                reference: 7,
                total: 2,
                sequence: 1
            })
        );
        assert_eq!(body, b"x");
        let ports_only = [0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, b'x', b'y'];
        assert_eq!(strip_udh(&ports_only, true), (None, &b"xy"[..]));
        assert_eq!(
            strip_udh(&[0x00, b'z'], true),
            (None, &b"z"[..]),
            "empty header"
        );
    }

    #[test]
    fn strip_udh_leaves_messages_without_udhi_alone() {
        let message = [0x05, 0x00, 0x03, 0xAB, 3, 2, b'h', b'i'];
        assert_eq!(strip_udh(&message, false), (None, &message[..]));
    }

    #[test]
    fn a_malformed_header_leaves_the_message_whole() {
        let cases: [&[u8]; 5] = [
            &[],
            &[0x05, 0x00, 0x03, 0xAB], // header longer than the message
            &[0x03, 0x00, 0x03, 0xAB, b'x'], // element longer than the header
            &[0x01, 0x00],             // element without its length
            &[0x04, 0x00, 0x03, 0xAB, 3], // element cut short
        ];
        for message in cases {
            assert_eq!(strip_udh(message, true), (None, message), "{message:?}");
        }
    }

    #[test]
    fn an_invalid_concatenation_element_is_ignored() {
        let cases: [&[u8]; 4] = [
            &[0x05, 0x00, 0x03, 0xAB, 0, 0, b'x'],    // zero total
            &[0x05, 0x00, 0x03, 0xAB, 2, 0, b'x'],    // sequence zero
            &[0x05, 0x00, 0x03, 0xAB, 2, 3, b'x'],    // sequence past the total
            &[0x06, 0x00, 0x04, 0xAB, 2, 1, 0, b'x'], // wrong length
        ];
        for message in cases {
            assert_eq!(strip_udh(message, true), (None, &b"x"[..]), "{message:?}");
        }
    }

    /// A coding and a text it can write, rich in the characters that take two units.
    fn coded_text() -> impl Strategy<Value = (DataCoding, String)> {
        let gsm: Vec<char> = "aZ0 @£$Δ_\n€[]{}^~|\\\u{0C}".chars().collect();
        prop_oneof![
            proptest::collection::vec(proptest::sample::select(gsm), 0..700)
                .prop_map(|chars| (DataCoding::Gsm7, chars.into_iter().collect())),
            "[\u{0}-\u{FF}]{0,500}".prop_map(|text| (DataCoding::Latin1, text)),
            "[a-zЖ😀🎉\u{10FFFF}]{0,300}".prop_map(|text| (DataCoding::Ucs2, text)),
            any::<String>().prop_map(|text| (DataCoding::Ucs2, text)),
        ]
    }

    proptest! {
        #[test]
        fn split_parts_reassemble_to_the_text(
            (coding, text) in coded_text(),
            method in proptest::sample::select(METHODS.to_vec()),
            reference in any::<u16>(),
        ) {
            let parts = split(&text, coding, method, reference).unwrap();
            prop_assert_eq!(parts.len() as u32, count(&text, coding, method));
            prop_assert_eq!(reassemble(&parts, coding), text);
        }

        #[test]
        fn every_split_part_fits_an_sms(
            (coding, text) in coded_text(),
            method in proptest::sample::select(METHODS.to_vec()),
        ) {
            for part in split(&text, coding, method, 0).unwrap() {
                if !part.payload {
                    prop_assert!(air_octets(&part, coding) <= 140, "{:?}", part);
                }
            }
        }

        #[test]
        fn strip_udh_never_panics_and_returns_a_suffix(
            message in proptest::collection::vec(any::<u8>(), 0..40),
            udhi in any::<bool>(),
        ) {
            let (_, body) = strip_udh(&message, udhi);
            prop_assert!(message.ends_with(body));
        }
    }
}
