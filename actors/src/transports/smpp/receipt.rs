//! Delivery receipts: what an SMSC's receipt `deliver_sm` says about a message we sent.
//!
//! A receipt names the message by the id the SMSC gave it in `submit_sm_resp`, and says
//! where delivery stands. SMSCs say it in one or both of two ways:
//!
//! - the text of `short_message`, in the de-facto format of SMPP 3.4's appendix B
//!   (`id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`), read by
//!   [`parse_text`];
//! - the `receipted_message_id` and `message_state` TLVs, read by [`from_tlvs`].
//!
//! Many SMSCs write the id differently in the receipt than in `submit_sm_resp` (decimal
//! against hex, leading zeros, letter case): [`IdFormat`] and [`canonical`] bring both to one
//! form so they can be matched.

use serde::Deserialize;

use crate::message::DeliveryStatus;

/// What a receipt says.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// The SMSC's id of the message, as the receipt writes it (see [`IdFormat::normalize`]).
    pub id: String,
    /// The final or current state, uppercase: `DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`,
    /// `DELETED`, `ENROUTE`, `ACCEPTD`, `UNKNOWN` or what else the SMSC sent.
    pub stat: String,
    /// The SMSC's error code (`err:`), network- or SMSC-specific.
    pub err: Option<String>,
    /// What [`stat`](Self::stat) means for the application.
    pub status: DeliveryStatus,
    /// Number of messages originally submitted (`sub:`).
    pub sub: Option<String>,
    /// Number of messages delivered (`dlvrd:`).
    pub dlvrd: Option<String>,
    /// When the message was submitted, `YYMMDDhhmm` as the SMSC wrote it.
    pub submit_date: Option<String>,
    /// When the message reached its final state, `YYMMDDhhmm` as the SMSC wrote it.
    pub done_date: Option<String>,
    /// The start of the original message's text (`text:`), if the receipt quotes it.
    pub text: Option<String>,
}

/// Reads a receipt in the de-facto text format:
///
/// `id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
/// err:E text:…`
///
/// SMSCs vary, so keys are read in any case and any order, with `submit_date`/`done_date`
/// for `submit date`/`done date`, spaces around values, fields left out, and fields we do not
/// know ignored. `text:` comes last and runs to the end of the receipt: it quotes the user's
/// message, which may hold anything, so nothing after it is read as a field. When a key
/// comes twice, the first wins.
///
/// `id` and `stat` are required: without them this is not a receipt, and the result is
/// `None`. [`Receipt::status`] follows `stat`: `DELIVRD` is delivered; `UNDELIV`,
/// `EXPIRED`, `REJECTD` and `DELETED` are failed; `ENROUTE`, `ACCEPTD`, `UNKNOWN` and any
/// other value are pending, since nothing final has been said. The spelled-out names of
/// SMPP's message states (`DELIVERED`, `UNDELIVERABLE`, `REJECTED`, `ACCEPTED`), which
/// some SMSCs write instead, count like their short forms.
pub fn parse_text(text: &str) -> Option<Receipt> {
    let mut fields = Fields::parse(text);
    let id = fields.id.take().filter(|id| !id.is_empty())?;
    let stat = fields.stat.take().filter(|stat| !stat.is_empty())?;
    Some(fields.into_receipt(id, stat.to_ascii_uppercase()))
}

/// A receipt from the `receipted_message_id` and `message_state` TLVs, with the other
/// fields taken from the receipt's `text` where it has them (in [`parse_text`]'s format,
/// even if it lacks `id` or `stat`). The TLVs win over the text for the id and the state.
///
/// `message_state` is mapped to the text format's `stat` names: 1 `ENROUTE`, 2 `DELIVRD`,
/// 3 `EXPIRED`, 4 `DELETED`, 5 `UNDELIV`, 6 `ACCEPTD`, 7 `UNKNOWN`, 8 `REJECTD`; a value
/// SMPP 3.4 does not define is `UNKNOWN`.
pub fn from_tlvs(receipted_message_id: &str, message_state: u8, text: Option<&str>) -> Receipt {
    let stat = match message_state {
        1 => "ENROUTE",
        2 => "DELIVRD",
        3 => "EXPIRED",
        4 => "DELETED",
        5 => "UNDELIV",
        6 => "ACCEPTD",
        8 => "REJECTD",
        _ => "UNKNOWN",
    };
    text.map(Fields::parse)
        .unwrap_or_default()
        .into_receipt(receipted_message_id.to_owned(), stat.to_owned())
}

/// What a `stat` means for the application; see [`parse_text`].
fn status_of(stat: &str) -> DeliveryStatus {
    match stat {
        "DELIVRD" | "DELIVERED" => DeliveryStatus::Delivered,
        "UNDELIV" | "UNDELIVERABLE" | "EXPIRED" | "REJECTD" | "REJECTED" | "DELETED" => {
            DeliveryStatus::Failed
        }
        _ => DeliveryStatus::Pending,
    }
}

/// The fields found in a receipt's text, each as written.
#[derive(Debug, Default)]
struct Fields {
    id: Option<String>,
    sub: Option<String>,
    dlvrd: Option<String>,
    submit_date: Option<String>,
    done_date: Option<String>,
    stat: Option<String>,
    err: Option<String>,
    text: Option<String>,
}

impl Fields {
    /// The fields of `receipt`; see [`parse_text`] for what is tolerated.
    fn parse(receipt: &str) -> Fields {
        let (fields_part, text) = split_off_text(receipt);
        let mut fields = Fields {
            text: text.map(|text| text.trim().to_owned()),
            ..Fields::default()
        };
        let mut words = fields_part.split_whitespace().peekable();
        // The last word without a colon: the first half of `submit date:`, or the key of
        // `id : 123`.
        let mut loose_word = None;
        while let Some(word) = words.next() {
            let Some((key, value)) = word.split_once(':') else {
                loose_word = Some(word);
                continue;
            };
            let key = match (loose_word.take(), key) {
                (Some(first), "") => first.to_owned(),
                (Some(first), second) if second.eq_ignore_ascii_case("date") => {
                    format!("{first}{second}")
                }
                (_, key) => key.to_owned(),
            };
            let value = match value {
                "" => words.next_if(|next| !next.contains(':')).unwrap_or(""),
                value => value,
            };
            if let Some(slot) = fields.slot(&key) {
                slot.get_or_insert_with(|| value.to_owned());
            }
        }
        fields
    }

    /// Where the value of `key` goes, matched ignoring case, `_` and `-` (so `submit date`,
    /// `submit_date` and `SubmitDate` are one key), or `None` for a key we do not know.
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "id" => Some(&mut self.id),
            "sub" => Some(&mut self.sub),
            "dlvrd" => Some(&mut self.dlvrd),
            "submitdate" => Some(&mut self.submit_date),
            "donedate" => Some(&mut self.done_date),
            "stat" => Some(&mut self.stat),
            "err" => Some(&mut self.err),
            _ => None,
        }
    }

    /// A receipt of these fields with the given id and (uppercase) stat.
    fn into_receipt(self, id: String, stat: String) -> Receipt {
        Receipt {
            status: status_of(&stat),
            id,
            stat,
            err: self.err,
            sub: self.sub,
            dlvrd: self.dlvrd,
            submit_date: self.submit_date,
            done_date: self.done_date,
            text: self.text,
        }
    }
}

/// `receipt` cut at its `text:` key (in any case, at the start of a word): what comes
/// before, and the value after the colon.
fn split_off_text(receipt: &str) -> (&str, Option<&str>) {
    const KEY: &str = "text:";
    // ASCII lowercasing keeps every byte where it was, so indices carry over.
    let lowercase = receipt.to_ascii_lowercase();
    let start = lowercase
        .match_indices(KEY)
        .map(|(index, _)| index)
        .find(|&index| {
            receipt[..index]
                .chars()
                .next_back()
                .is_none_or(char::is_whitespace)
        });
    match start {
        Some(index) => (&receipt[..index], Some(&receipt[index + KEY.len()..])),
        None => (receipt, None),
    }
}

/// How the ids in an SMSC's receipts relate to the ids in its `submit_sm_resp`s (the
/// channel's config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// Both are written alike.
    #[default]
    AsIs,
    /// Receipts write in hex the id that `submit_sm_resp` gave in decimal.
    HexToDecimal,
    /// Receipts write in decimal the id that `submit_sm_resp` gave in hex.
    DecimalToHex,
}

impl IdFormat {
    /// The id of a receipt in the form of the SMSC's `submit_sm_resp`, made [`canonical`]:
    /// e.g. with `DecimalToHex`, a receipt's `"6699"` becomes `"1a2b"`, which matches a
    /// `submit_sm_resp` id `"1A2B"` once that goes through [`canonical`] too, as the
    /// session must do with every id it stores.
    ///
    /// An id that is not a number in the expected base, or too large for 128 bits, is
    /// only made canonical.
    pub fn normalize(self, receipt_id: &str) -> String {
        let converted = match self {
            IdFormat::AsIs => None,
            IdFormat::HexToDecimal => parse_number(receipt_id, 16).map(|n| n.to_string()),
            IdFormat::DecimalToHex => parse_number(receipt_id, 10).map(|n| format!("{n:x}")),
        };
        converted.unwrap_or_else(|| canonical(receipt_id))
    }
}

/// `id` in the one form that matching compares: lowercase, and, for an id of hex digits
/// only (decimal ones included), without leading zeros (`"0001A2B"` becomes `"1a2b"`, and
/// `"000"` becomes `"0"`). Other ids (with dashes, say) are only lowercased.
pub fn canonical(id: &str) -> String {
    let id = id.to_ascii_lowercase();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return id;
    }
    match id.trim_start_matches('0') {
        "" => "0".to_owned(),
        significant => significant.to_owned(),
    }
}

/// `digits` as a number in `radix`: digits only (no sign, no spaces), and fitting 128 bits.
fn parse_number(digits: &str, radix: u32) -> Option<u128> {
    let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    all_digits
        .then(|| u128::from_str_radix(digits, radix).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn some(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    #[test]
    fn reads_the_standard_format() {
        let receipt = parse_text(
            "id:0123456789 sub:001 dlvrd:001 submit date:2301011200 done date:2301011201 \
             stat:DELIVRD err:000 text:Hello world",
        )
        .unwrap();
        assert_eq!(
            receipt,
            Receipt {
                id: "0123456789".into(),
                stat: "DELIVRD".into(),
                err: some("000"),
                status: DeliveryStatus::Delivered,
                sub: some("001"),
                dlvrd: some("001"),
                submit_date: some("2301011200"),
                done_date: some("2301011201"),
                text: some("Hello world"),
            }
        );
    }

    #[test]
    fn reads_a_receipt_without_text() {
        let receipt = parse_text(
            "id:1A2B sub:001 dlvrd:000 submit date:2301011200 done date:2301011205 \
             stat:UNDELIV err:001",
        )
        .unwrap();
        assert_eq!(receipt.id, "1A2B");
        assert_eq!(receipt.stat, "UNDELIV");
        assert_eq!(receipt.status, DeliveryStatus::Failed);
        assert_eq!(receipt.err, some("001"));
        assert_eq!(receipt.done_date, some("2301011205"));
        assert_eq!(receipt.text, None);
    }

    #[test]
    fn keys_are_read_in_any_case() {
        let receipt = parse_text(
            "ID:abc SUB:001 DLVRD:001 SUBMIT DATE:2301011200 Done Date:2301011201 \
             Stat:delivrd ERR:000 Text:hi",
        )
        .unwrap();
        assert_eq!(receipt.id, "abc");
        assert_eq!(receipt.stat, "DELIVRD", "stat is uppercased");
        assert_eq!(receipt.status, DeliveryStatus::Delivered);
        assert_eq!(receipt.submit_date, some("2301011200"));
        assert_eq!(receipt.done_date, some("2301011201"));
        assert_eq!(receipt.text, some("hi"));
    }

    #[test]
    fn fields_may_come_in_any_order() {
        let receipt = parse_text(
            "id:77 sub:001 dlvrd:001 submit date:2301011200 done date:2301011201 err:000 \
             stat:DELIVRD",
        )
        .unwrap();
        assert_eq!(
            (receipt.id.as_str(), receipt.stat.as_str()),
            ("77", "DELIVRD")
        );
        assert_eq!(receipt.err, some("000"));
        let receipt = parse_text("stat:EXPIRED err:005 id:78").unwrap();
        assert_eq!(
            (receipt.id.as_str(), receipt.stat.as_str()),
            ("78", "EXPIRED")
        );
    }

    #[test]
    fn dates_may_be_written_with_underscores() {
        let receipt =
            parse_text("id:5 submit_date:2301011200 done_date:2301011201 stat:EXPIRED").unwrap();
        assert_eq!(receipt.submit_date, some("2301011200"));
        assert_eq!(receipt.done_date, some("2301011201"));
        assert_eq!(receipt.status, DeliveryStatus::Failed);
        assert_eq!(
            (receipt.sub, receipt.dlvrd, receipt.err),
            (None, None, None)
        );
    }

    #[test]
    fn extra_spaces_are_tolerated() {
        let receipt =
            parse_text("  id: 42   sub:001  stat:  ENROUTE   err : 0  text:  hi there  \r\n")
                .unwrap();
        assert_eq!(receipt.id, "42");
        assert_eq!(receipt.sub, some("001"));
        assert_eq!(receipt.stat, "ENROUTE");
        assert_eq!(receipt.status, DeliveryStatus::Pending);
        assert_eq!(receipt.err, some("0"));
        assert_eq!(receipt.text, some("hi there"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let receipt = parse_text(
            "id:9 sub:001 dlvrd:001 submit date:2301011200 done date:2301011201 stat:DELIVRD \
             err:000 nt:2 mccmnc:65501 date:2301011202 text:",
        )
        .unwrap();
        assert_eq!(receipt.id, "9");
        assert_eq!(receipt.status, DeliveryStatus::Delivered);
        assert_eq!(
            receipt.submit_date,
            some("2301011200"),
            "a lone `date:` is not one"
        );
        assert_eq!(receipt.text, some(""));
    }

    #[test]
    fn the_quoted_text_is_not_read_as_fields() {
        let receipt = parse_text("id:1 stat:DELIVRD err:000 text:stat:UNDELIV id:2 err:9").unwrap();
        assert_eq!(receipt.id, "1");
        assert_eq!(receipt.stat, "DELIVRD");
        assert_eq!(receipt.err, some("000"));
        assert_eq!(receipt.text, some("stat:UNDELIV id:2 err:9"));
    }

    #[test]
    fn text_is_a_key_only_at_the_start_of_a_word() {
        let receipt = parse_text("id:1 context:x stat:DELIVRD").unwrap();
        assert_eq!(receipt.stat, "DELIVRD");
        assert_eq!(receipt.text, None);
        let receipt = parse_text("TEXT:first id:1 stat:DELIVRD");
        assert_eq!(receipt, None, "everything after text: is text");
    }

    #[test]
    fn the_first_of_a_repeated_key_wins() {
        let receipt = parse_text("id:1 id:2 stat:DELIVRD stat:UNDELIV").unwrap();
        assert_eq!(
            (receipt.id.as_str(), receipt.stat.as_str()),
            ("1", "DELIVRD")
        );
    }

    #[test]
    fn id_and_stat_are_required() {
        for text in [
            "",
            "Hello there",
            "sub:001 dlvrd:001 stat:DELIVRD err:000",
            "id:12 sub:001 dlvrd:001 err:000",
            "id: stat:DELIVRD",
            "id:12 stat:",
            "stat:DELIVRD text:id:12",
        ] {
            assert_eq!(parse_text(text), None, "{text:?}");
        }
    }

    #[test]
    fn every_stat_has_its_status() {
        for (stat, status) in [
            ("DELIVRD", DeliveryStatus::Delivered),
            ("DELIVERED", DeliveryStatus::Delivered),
            ("UNDELIV", DeliveryStatus::Failed),
            ("UNDELIVERABLE", DeliveryStatus::Failed),
            ("EXPIRED", DeliveryStatus::Failed),
            ("REJECTD", DeliveryStatus::Failed),
            ("REJECTED", DeliveryStatus::Failed),
            ("DELETED", DeliveryStatus::Failed),
            ("ENROUTE", DeliveryStatus::Pending),
            ("ACCEPTD", DeliveryStatus::Pending),
            ("ACCEPTED", DeliveryStatus::Pending),
            ("UNKNOWN", DeliveryStatus::Pending),
            ("BUFFRED", DeliveryStatus::Pending),
            ("undeliv", DeliveryStatus::Failed),
        ] {
            let receipt = parse_text(&format!("id:1 stat:{stat}")).unwrap();
            assert_eq!(receipt.status, status, "{stat}");
            assert_eq!(receipt.stat, stat.to_ascii_uppercase());
        }
    }

    #[test]
    fn every_message_state_has_its_stat_and_status() {
        for (state, stat, status) in [
            (1, "ENROUTE", DeliveryStatus::Pending),
            (2, "DELIVRD", DeliveryStatus::Delivered),
            (3, "EXPIRED", DeliveryStatus::Failed),
            (4, "DELETED", DeliveryStatus::Failed),
            (5, "UNDELIV", DeliveryStatus::Failed),
            (6, "ACCEPTD", DeliveryStatus::Pending),
            (7, "UNKNOWN", DeliveryStatus::Pending),
            (8, "REJECTD", DeliveryStatus::Failed),
            (0, "UNKNOWN", DeliveryStatus::Pending),
            (9, "UNKNOWN", DeliveryStatus::Pending),
            (255, "UNKNOWN", DeliveryStatus::Pending),
        ] {
            let receipt = from_tlvs("abc", state, None);
            assert_eq!(
                (receipt.stat.as_str(), receipt.status),
                (stat, status),
                "state {state}"
            );
            assert_eq!(receipt.id, "abc");
            assert_eq!(receipt.err, None);
        }
    }

    #[test]
    fn tlvs_win_over_the_text_for_id_and_state() {
        let receipt = from_tlvs(
            "ABC",
            2,
            Some("id:999 sub:001 dlvrd:001 submit date:2301011200 done date:2301011201 stat:UNDELIV err:042 text:hi"),
        );
        assert_eq!(
            receipt,
            Receipt {
                id: "ABC".into(),
                stat: "DELIVRD".into(),
                err: some("042"),
                status: DeliveryStatus::Delivered,
                sub: some("001"),
                dlvrd: some("001"),
                submit_date: some("2301011200"),
                done_date: some("2301011201"),
                text: some("hi"),
            }
        );
    }

    #[test]
    fn tlvs_take_what_a_partial_text_has() {
        let receipt = from_tlvs("7", 5, Some("err:069"));
        assert_eq!(receipt.err, some("069"));
        assert_eq!(receipt.status, DeliveryStatus::Failed);
        let receipt = from_tlvs("7", 5, Some(""));
        assert_eq!(receipt, from_tlvs("7", 5, None));
    }

    #[test]
    fn ids_are_converted_both_ways() {
        assert_eq!(IdFormat::DecimalToHex.normalize("6699"), "1a2b");
        assert_eq!(IdFormat::DecimalToHex.normalize("0006699"), "1a2b");
        assert_eq!(IdFormat::HexToDecimal.normalize("1A2B"), "6699");
        assert_eq!(IdFormat::HexToDecimal.normalize("001a2b"), "6699");
        assert_eq!(IdFormat::HexToDecimal.normalize("0"), "0");
        assert_eq!(
            IdFormat::HexToDecimal.normalize("ffffffffffffffffffffffffffffffff"),
            u128::MAX.to_string()
        );
        assert_eq!(IdFormat::AsIs.normalize("0001A2B"), "1a2b");
        assert_eq!(IdFormat::AsIs.normalize("AbC-12"), "abc-12");
    }

    #[test]
    fn ids_that_are_not_numbers_in_the_base_are_only_made_canonical() {
        assert_eq!(IdFormat::DecimalToHex.normalize("1A2B"), "1a2b");
        assert_eq!(IdFormat::DecimalToHex.normalize("+12"), "+12");
        assert_eq!(IdFormat::HexToDecimal.normalize("-1A"), "-1a");
        assert_eq!(IdFormat::HexToDecimal.normalize("G1"), "g1");
        assert_eq!(IdFormat::DecimalToHex.normalize(""), "");
        let too_big = "1".repeat(40);
        assert!(too_big.parse::<u128>().is_err());
        assert_eq!(IdFormat::DecimalToHex.normalize(&too_big), too_big);
        let too_big_hex = format!("1{}", "0".repeat(32));
        assert_eq!(IdFormat::HexToDecimal.normalize(&too_big_hex), too_big_hex);
    }

    #[test]
    fn canonical_ids_match_across_case_and_leading_zeros() {
        assert_eq!(canonical("0001A2B"), canonical("1a2b"));
        assert_eq!(canonical("000"), "0");
        assert_eq!(canonical(""), "");
        assert_eq!(canonical("00-AB"), "00-ab", "not a number: zeros kept");
        assert_eq!(
            canonical("C449AB9744F47B6AF1879E49E75E4F40"),
            "c449ab9744f47b6af1879e49e75e4f40"
        );
    }

    #[test]
    fn id_format_is_configured_in_snake_case() {
        for (name, format) in [
            ("as_is", IdFormat::AsIs),
            ("hex_to_decimal", IdFormat::HexToDecimal),
            ("decimal_to_hex", IdFormat::DecimalToHex),
        ] {
            let parsed: IdFormat = serde_json::from_value(name.into()).unwrap();
            assert_eq!(parsed, format);
        }
        assert_eq!(IdFormat::default(), IdFormat::AsIs);
    }

    const STATS: [&str; 8] = [
        "DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ENROUTE", "ACCEPTD", "UNKNOWN",
    ];

    /// One `key:value` field written with a key in random case.
    fn field(key: &'static str, value: String) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), key.len()).prop_map(move |upper| {
            let key: String = key
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            format!("{key}:{value}")
        })
    }

    /// A receipt's id, stat, err and quoted text, and the receipt written in random key
    /// case, field order and spacing.
    fn written_receipt(
    ) -> impl Strategy<Value = (String, String, Option<String>, Option<String>, String)> {
        (
            "[0-9A-Za-z]{1,40}",
            proptest::sample::select(STATS.to_vec()),
            proptest::option::of("[0-9]{1,3}"),
            proptest::option::of("[ -~é€😀]{0,30}"),
        )
            .prop_flat_map(|(id, stat, err, text)| {
                let mut fields = vec![
                    field("id", id.clone()).boxed(),
                    field("stat", stat.to_owned()).boxed(),
                    field("sub", "001".into()).boxed(),
                    field("submit date", "2301011200".into()).boxed(),
                ];
                if let Some(err) = &err {
                    fields.push(field("err", err.clone()).boxed());
                }
                (
                    Just((id, stat.to_owned(), err, text)),
                    fields.prop_shuffle(),
                    proptest::collection::vec(" {1,3}", 8),
                )
            })
            .prop_map(|((id, stat, err, text), fields, spaces)| {
                let mut written: String = fields
                    .iter()
                    .zip(&spaces)
                    .map(|(field, space)| format!("{space}{field}"))
                    .collect();
                if let Some(text) = &text {
                    written.push_str(&format!(" text:{text}"));
                }
                (id, stat, err, text, written)
            })
    }

    proptest! {
        #[test]
        fn a_written_receipt_reads_back((id, stat, err, text, written) in written_receipt()) {
            let receipt = parse_text(&written).unwrap();
            prop_assert_eq!(receipt.id, id);
            prop_assert_eq!(receipt.stat, stat);
            prop_assert_eq!(receipt.err, err);
            prop_assert_eq!(receipt.text, text.map(|text| text.trim().to_owned()));
            prop_assert_eq!(receipt.submit_date.as_deref(), Some("2301011200"));
        }

        #[test]
        fn parsing_any_text_never_panics(text in any::<String>()) {
            if let Some(receipt) = parse_text(&text) {
                prop_assert!(!receipt.id.is_empty() && !receipt.stat.is_empty());
            }
        }

        #[test]
        fn ids_convert_both_ways(n in any::<u128>(), zeros in 0usize..4) {
            let pad = "0".repeat(zeros);
            prop_assert_eq!(IdFormat::DecimalToHex.normalize(&format!("{pad}{n}")), format!("{n:x}"));
            prop_assert_eq!(IdFormat::HexToDecimal.normalize(&format!("{pad}{n:X}")), n.to_string());
            prop_assert_eq!(IdFormat::AsIs.normalize(&format!("{pad}{n:X}")), canonical(&format!("{n:x}")));
        }

        #[test]
        fn normalized_ids_are_canonical(
            id in "[0-9A-Fa-fxX-]{0,45}",
            format in proptest::sample::select(vec![IdFormat::AsIs, IdFormat::HexToDecimal, IdFormat::DecimalToHex]),
        ) {
            let normalized = format.normalize(&id);
            prop_assert_eq!(canonical(&normalized), normalized);
        }
    }
}
