//! Our window on the `rusmpp` codec: building the PDUs the ESME sends, reading the fields of
//! the ones it receives, and describing any PDU for the channel log.
//!
//! Nothing else in the transport names a rusmpp type, so the codec can be replaced here
//! alone. Caveats of rusmpp 0.4 handled here: `esm_class` is always set from our own byte
//! (its default would encode 0x08), and strings are built with their length checked, so a
//! bad address becomes a rejection of that message, not a panic.
use rusmpp::pdus::{
    BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm,
};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue as SubmitTlv, Tlv, TlvValue};
use rusmpp::types::{AnyOctetString, COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, ItsSessionInfo, MessagePayload, Npi,
    RegisteredDelivery, ServiceType, Ton, UssdServiceOp,
};
use serde_json::{json, Map, Value};

pub use rusmpp::{Command, CommandId, CommandStatus, Pdu};

use super::coding;
use super::config::{BindMode, SmppSettings};
use super::parts::OutboundPart;

/// `ESME_RTHROTTLED`: the SMSC asks us to slow down.
pub const THROTTLED: u32 = 0x58;
/// `ESME_RMSGQFUL`: the SMSC's queue is full; also a request to slow down.
pub const QUEUE_FULL: u32 = 0x14;
/// `ESME_RX_T_APPN`: a temporary error on our side; the SMSC should send again.
pub const TEMPORARY_APP_ERROR: u32 = 0x64;
/// `ESME_RSYSERR`: a system error on the SMSC, worth another try.
pub const SYSTEM_ERROR: u32 = 0x08;

/// Which bind a session makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    /// bind_transceiver.
    Transceiver,
    /// bind_transmitter.
    Transmitter,
    /// bind_receiver.
    Receiver,
}

impl BindKind {
    /// The sessions a bind mode opens.
    pub fn for_mode(mode: BindMode) -> &'static [BindKind] {
        match mode {
            BindMode::Transceiver => &[BindKind::Transceiver],
            BindMode::TransmitterReceiver => &[BindKind::Transmitter, BindKind::Receiver],
        }
    }

    /// Whether this session carries submit_sm.
    pub fn sends(self) -> bool {
        self != BindKind::Receiver
    }

    /// Its name, for logs and statuses.
    pub fn name(self) -> &'static str {
        match self {
            BindKind::Transceiver => "transceiver",
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
        }
    }
}

/// A C-octet string, or why it cannot be one.
fn c_string<const MIN: usize, const MAX: usize>(
    what: &str,
    text: &str,
) -> Result<COctetString<MIN, MAX>, String> {
    text.parse().map_err(|_| {
        format!(
            "{what} {text:?} is longer than SMPP allows ({} bytes)",
            MAX - 1
        )
    })
}

/// The bind PDU of `kind`. Config validation has checked every length already.
pub fn bind(kind: BindKind, s: &SmppSettings) -> Result<Pdu, String> {
    macro_rules! bind_pdu {
        ($pdu:ident) => {
            $pdu::builder()
                .system_id(c_string("system_id", &s.system_id)?)
                .password(c_string("password", &s.password)?)
                .system_type(c_string("system_type", &s.system_type)?)
                .interface_version(InterfaceVersion::from(s.interface_version))
                .addr_ton(Ton::from(s.source.0))
                .addr_npi(Npi::from(s.source.1))
                .address_range(c_string("address_range", &s.address_range)?)
                .build()
                .into()
        };
    }
    Ok(match kind {
        BindKind::Transceiver => bind_pdu!(BindTransceiver),
        BindKind::Transmitter => bind_pdu!(BindTransmitter),
        BindKind::Receiver => bind_pdu!(BindReceiver),
    })
}

/// The USSD fields of a submit_sm: the service op and, when the session had one, the
/// `its_session_info` to echo (with the end-of-session bit as needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UssdFields {
    /// ussd_service_op.
    pub service_op: u8,
    /// its_session_info as two bytes.
    pub session_info: Option<[u8; 2]>,
}

/// What one submit_sm carries besides its part.
pub struct Submission<'a> {
    /// Source address.
    pub from: &'a str,
    /// Destination address.
    pub to: &'a str,
    /// data_coding.
    pub data_coding: u8,
    /// USSD fields, for a USSD reply.
    pub ussd: Option<UssdFields>,
}

/// A submit_sm for one part.
pub fn submit_sm(
    s: &SmppSettings,
    sub: &Submission<'_>,
    part: &OutboundPart,
) -> Result<Pdu, String> {
    let esm_class = if part.udhi { 0x40 } else { 0x00 };
    let short_message = if part.payload {
        &[][..]
    } else {
        &part.short_message[..]
    };
    let mut pdu = SubmitSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::from(s.source.0))
        .source_addr_npi(Npi::from(s.source.1))
        .source_addr(c_string("from address", sub.from)?)
        .dest_addr_ton(Ton::from(s.destination.0))
        .dest_addr_npi(Npi::from(s.destination.1))
        .destination_addr(c_string("to address", sub.to)?)
        .esm_class(EsmClass::from(esm_class))
        .registered_delivery(RegisteredDelivery::from(u8::from(s.registered_delivery)))
        .data_coding(DataCoding::from(sub.data_coding))
        .short_message(
            OctetString::from_slice(short_message).map_err(|e| format!("short_message: {e:?}"))?,
        )
        .build();
    if part.payload {
        let payload = MessagePayload::new(AnyOctetString::from_slice(&part.short_message));
        pdu.push_tlv(SubmitTlv::MessagePayload(payload));
    }
    if let Some(sar) = part.sar {
        pdu.push_tlv(SubmitTlv::SarMsgRefNum(sar.reference));
        pdu.push_tlv(SubmitTlv::SarTotalSegments(sar.total));
        pdu.push_tlv(SubmitTlv::SarSegmentSeqnum(sar.sequence));
    }
    if let Some(ussd) = sub.ussd {
        pdu.push_tlv(SubmitTlv::UssdServiceOp(UssdServiceOp::from(
            ussd.service_op,
        )));
        if let Some([session, sequence]) = ussd.session_info {
            pdu.push_tlv(SubmitTlv::ItsSessionInfo(ItsSessionInfo::new(
                session, sequence,
            )));
        }
    }
    Ok(pdu.into())
}

/// The response to a deliver_sm.
pub fn deliver_sm_resp() -> Pdu {
    DeliverSmResp::builder().build().into()
}

/// The raw status of a command.
pub fn status(command: &Command) -> u32 {
    command.status().into()
}

/// The SMPP name of a command_status (`ESME_RINVDSTADR`, `ESME_RX_T_APPN`), or its hex code
/// when it has none. Derived from rusmpp's variant names (`EsmeRxTAppn`), so every status
/// rusmpp knows is named without a table of our own.
pub fn status_name(status: u32) -> String {
    match CommandStatus::from(status) {
        CommandStatus::Other(code) => format!("{code:#010x}"),
        known => {
            let variant = format!("{known:?}");
            let rest = variant.strip_prefix("Esme").unwrap_or(&variant);
            let mut name = String::from("ESME");
            for c in rest.chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

/// The message id of a submit_sm_resp.
pub fn submit_sm_resp_id(command: &Command) -> Option<String> {
    match command.pdu() {
        Some(Pdu::SubmitSmResp(resp)) => Some(resp.message_id().to_string()),
        _ => None,
    }
}

/// What a deliver_sm carries, read out of rusmpp's types.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivered {
    /// source_addr (the handset for MO).
    pub from: String,
    /// destination_addr (our short code).
    pub to: String,
    /// The raw esm_class.
    pub esm_class: u8,
    /// The raw data_coding.
    pub data_coding: u8,
    /// short_message, or message_payload when that TLV is present.
    pub body: Vec<u8>,
    /// receipted_message_id TLV.
    pub receipted_message_id: Option<String>,
    /// message_state TLV.
    pub message_state: Option<u8>,
    /// SAR TLVs: (reference, total, sequence).
    pub sar: Option<(u16, u8, u8)>,
    /// ussd_service_op TLV.
    pub ussd_service_op: Option<u8>,
    /// its_session_info TLV.
    pub its_session_info: Option<[u8; 2]>,
}

impl Delivered {
    /// Whether esm_class marks a delivery receipt (or intermediate notification), or the
    /// receipt TLVs are there.
    pub fn is_receipt(&self) -> bool {
        self.esm_class & 0x3c == 0x04
            || self.esm_class & 0x3c == 0x20
            || self.receipted_message_id.is_some()
    }

    /// Whether a user data header leads the body.
    pub fn udhi(&self) -> bool {
        self.esm_class & 0x40 != 0
    }
}

/// The fields of a deliver_sm.
pub fn delivered(sm: &DeliverSm) -> Delivered {
    let mut out = Delivered {
        from: sm.source_addr.to_string(),
        to: sm.destination_addr.to_string(),
        esm_class: sm.esm_class.into(),
        data_coding: sm.data_coding.into(),
        body: sm.short_message().as_ref().to_vec(),
        ..Delivered::default()
    };
    let (mut reference, mut total, mut sequence) = (None, None, None);
    for tlv in sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => {
                out.receipted_message_id = Some(id.to_string())
            }
            Some(TlvValue::MessageState(state)) => out.message_state = Some((*state).into()),
            Some(TlvValue::MessagePayload(payload)) => out.body = payload.value.as_ref().to_vec(),
            Some(TlvValue::SarMsgRefNum(n)) => reference = Some(*n),
            Some(TlvValue::SarTotalSegments(n)) => total = Some(*n),
            Some(TlvValue::SarSegmentSeqnum(n)) => sequence = Some(*n),
            Some(TlvValue::UssdServiceOp(op)) => out.ussd_service_op = Some((*op).into()),
            Some(TlvValue::ItsSessionInfo(info)) => {
                out.its_session_info = Some([info.session_number, info.sequence_number])
            }
            _ => {}
        }
    }
    out.sar = reference
        .zip(total)
        .zip(sequence)
        .map(|((r, t), s)| (r, t, s));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PDU for the channel log: command, sequence number, status and decoded fields. The
/// password of a bind is never included.
pub fn trace(command: &Command) -> Value {
    let mut fields = Map::new();
    match command.pdu() {
        Some(Pdu::SubmitSm(sm)) => {
            let data_coding: u8 = sm.data_coding.into();
            let esm_class: u8 = sm.esm_class.into();
            fields.insert("source_addr".into(), json!(sm.source_addr.to_string()));
            fields.insert(
                "destination_addr".into(),
                json!(sm.destination_addr.to_string()),
            );
            fields.insert("esm_class".into(), json!(esm_class));
            fields.insert("data_coding".into(), json!(data_coding));
            fields.insert(
                "short_message".into(),
                json!(hex(sm.short_message().as_ref())),
            );
            fields.insert("tlvs".into(), tlvs(sm.tlvs()));
        }
        Some(Pdu::DeliverSm(sm)) => {
            let d = delivered(sm);
            fields.insert("source_addr".into(), json!(d.from));
            fields.insert("destination_addr".into(), json!(d.to));
            fields.insert("esm_class".into(), json!(d.esm_class));
            fields.insert("data_coding".into(), json!(d.data_coding));
            fields.insert("short_message".into(), json!(hex(&d.body)));
            fields.insert("text".into(), json!(coding::decode(&d.body, d.data_coding)));
            fields.insert("tlvs".into(), tlvs(sm.tlvs()));
        }
        Some(Pdu::SubmitSmResp(resp)) => {
            fields.insert("message_id".into(), json!(resp.message_id().to_string()));
        }
        Some(Pdu::BindTransceiver(b)) => bind_fields(&mut fields, &b.system_id, &b.system_type),
        Some(Pdu::BindTransmitter(b)) => bind_fields(&mut fields, &b.system_id, &b.system_type),
        Some(Pdu::BindReceiver(b)) => bind_fields(&mut fields, &b.system_id, &b.system_type),
        _ => {}
    }
    json!({
        "command": format!("{:?}", command.id()),
        "sequence_number": command.sequence_number(),
        "command_status": format!("{:?}", command.status()),
        "fields": fields,
    })
}

fn bind_fields(
    fields: &mut Map<String, Value>,
    system_id: &impl ToString,
    system_type: &impl ToString,
) {
    fields.insert("system_id".into(), json!(system_id.to_string()));
    fields.insert("system_type".into(), json!(system_type.to_string()));
}

fn tlvs(tlvs: &[Tlv]) -> Value {
    tlvs.iter()
        .filter_map(Tlv::value)
        .map(|value| json!(format!("{value:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::status_name;

    /// Statuses are named as the SMPP specification writes them.
    #[test]
    fn statuses_have_their_smpp_names() {
        assert_eq!(status_name(0x0b), "ESME_RINVDSTADR");
        assert_eq!(status_name(0x58), "ESME_RTHROTTLED");
        assert_eq!(status_name(0x64), "ESME_RX_T_APPN");
        assert_eq!(status_name(0x00), "ESME_ROK");
        assert_eq!(status_name(0x0400), "0x00000400");
    }
}
