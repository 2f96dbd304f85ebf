//! What arrives in a deliver_sm: a delivery receipt, or an inbound SMS or USSD message.
//!
//! deliver_sm_resp goes back only once what the PDU carries is safe: the inbound message
//! recorded by the daemon, or the receipt turned into an event (or known to match nothing).
//! When the daemon cannot record a receipt, the answer is `ESME_RX_T_APPN` so the SMSC
//! sends it again.
//!
//! - **Receipts**: esm_class says "delivery receipt" (or an intermediate notification), or
//!   the `receipted_message_id` TLV is present. The TLVs (`receipted_message_id`,
//!   `message_state`) win over the text (`id:… stat:… err:…`). The id is converted as the
//!   channel's `receipt_id_format` says and matched case-insensitively.
//! - **Text** is decoded as `data_coding` says (GSM 7-bit one septet per octet, Latin-1,
//!   UCS-2, …); GSM 7-bit comes packed instead when the channel says `inbound_gsm7_packed`.
//! - **Long messages**: parts (UDH 8/16-bit or SAR TLVs) wait for each other up to
//!   `multipart_timeout`, kept by the daemon's Store ([`TransportContext::inbound_part`]):
//!   each part is answered once kept, so a restart between parts loses none, and the whole
//!   text goes to the application once complete. Parts that wait too long are delivered as
//!   they are, with a warning in the channel log (after a restart too).
//! - **Answers**: `ESME_ROK` once the message (or part) is kept; `ESME_RX_T_APPN` when the
//!   daemon could not keep it (a backend down), so the SMSC sends it again later.
//! - **USSD**: with a `ussd_service_op` TLV the message is USSD (`transport_type` `ussd`):
//!   ops in `ussd.new` open a session, in `ussd.resume` continue it, in `ussd.close` (or the
//!   end-of-session bit of `its_session_info`) end it; any other op continues it. The op and
//!   `its_session_info` are kept in `transport_metadata.ussd` so that a reply can echo them.
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use serde_json::{json, Map};

use super::parts::{self, ConcatKey};
use super::pdu::{self, Command, Delivered, Pdu};
use super::receipt;
use super::session::{DeliverHandler, Link};
use super::Shared;
use super::{coding, gsm7};
use crate::message::{new_message_id, timestamp_now, DeliveryReport, Message, SessionEvent};
use crate::ports::{InboundPart, LogRecord, PartialMessage, ReportOutcome};

impl DeliverHandler for Shared {
    fn deliver(
        self: Rc<Self>,
        link: Rc<Link>,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            let status = match command.pdu() {
                Some(Pdu::DeliverSm(sm)) => {
                    let delivered = pdu::delivered(sm);
                    if delivered.is_receipt() {
                        let (status, message_id) = self.receipt(&delivered).await;
                        // Logged once matched, so the message's story includes its receipt.
                        link.log_received(&command, message_id.as_deref());
                        status
                    } else {
                        self.mo(&link, &command, delivered).await
                    }
                }
                _ => 0,
            };
            link.respond(
                command.sequence_number(),
                status,
                pdu::deliver_sm_resp(),
                None,
            );
        })
    }
}

impl Shared {
    /// Reports a receipt; the command_status to answer with, and our id of the message it
    /// is about when it matched one.
    async fn receipt(&self, delivered: &Delivered) -> (u32, Option<String>) {
        let text = coding::decode(&delivered.body, delivered.data_coding);
        let parsed = match (&delivered.receipted_message_id, delivered.message_state) {
            (Some(id), Some(state)) => Some(receipt::from_tlvs(id, state, Some(&text))),
            _ => receipt::parse_text(&text),
        };
        let Some(parsed) = parsed else {
            self.ctx.log(LogRecord::warning(format!(
                "Ignored an unreadable delivery receipt: {text:?}"
            )));
            return (0, None);
        };
        let mut details = Map::new();
        details.insert("stat".into(), json!(parsed.stat));
        details.insert("err".into(), json!(parsed.err));
        details.insert("smsc_message_id".into(), json!(parsed.id));
        let report = DeliveryReport {
            provider_message_id: self.settings.receipt_id_format.normalize(&parsed.id),
            status: parsed.status,
            details,
        };
        match self.ctx.delivery_report(report).await {
            ReportOutcome::Failed => (pdu::TEMPORARY_APP_ERROR, None),
            ReportOutcome::Matched(message_id) => (0, Some(message_id)),
            ReportOutcome::Unmatched => (0, None),
        }
    }

    /// Hands an inbound message (or part) to the daemon; the command_status to answer with.
    async fn mo(&self, link: &Link, command: &Command, delivered: Delivered) -> u32 {
        let (concat, body) = match delivered.sar {
            Some((reference, total, sequence)) => (
                Some(ConcatKey {
                    reference,
                    total,
                    sequence,
                }),
                &delivered.body[..],
            ),
            None => parts::strip_udh(&delivered.body, delivered.udhi()),
        };
        let text = self.decode(&delivered, body);
        let text = match concat {
            Some(key) if key.total > 1 && (1..=key.total).contains(&key.sequence) => {
                let part = InboundPart {
                    sender: delivered.from.clone(),
                    reference: key.reference,
                    total: key.total,
                    sequence: key.sequence,
                    text,
                };
                let max_age = self.settings.multipart_timeout;
                match self.ctx.inbound_part(part, max_age).await {
                    Ok(Some(whole)) => whole,
                    Ok(None) => {
                        link.log_received(command, None);
                        return 0; // kept; the message goes on with its last part
                    }
                    Err(_) => {
                        link.log_received(command, None);
                        return pdu::TEMPORARY_APP_ERROR; // logged by the host
                    }
                }
            }
            _ => text,
        };
        let message = self.inbound_message(&delivered, text);
        link.log_received(command, Some(&message.message_id));
        match self.ctx.inbound(message).await {
            Ok(()) => 0,
            Err(_) => pdu::TEMPORARY_APP_ERROR, // logged by the host
        }
    }

    /// The text of an inbound message (or part) whose user data, after any header, is
    /// `body`.
    fn decode(&self, delivered: &Delivered, body: &[u8]) -> String {
        if self.settings.inbound_gsm7_packed && coding::is_gsm7(delivered.data_coding) {
            let header_octets = delivered.body.len() - body.len();
            return gsm7::decode(&gsm7::unpack(&delivered.body, header_octets));
        }
        coding::decode(body, delivered.data_coding)
    }

    /// The inbound message a deliver_sm makes.
    fn inbound_message(&self, delivered: &Delivered, text: String) -> Message {
        let mut message = self.message(&delivered.from, Some(&delivered.to), text);
        if let Some(op) = delivered.ussd_service_op {
            let ussd = &self.settings.ussd;
            let ends = delivered
                .its_session_info
                .is_some_and(|[_, sequence]| sequence & 1 == 1);
            let event = if ussd.new.contains(&op) {
                SessionEvent::New
            } else if ends || ussd.close.contains(&op) {
                SessionEvent::Close
            } else {
                SessionEvent::Resume
            };
            message.session_event = Some(event);
            message.transport_type = "ussd".to_owned();
            let mut metadata = Map::new();
            metadata.insert("service_op".into(), json!(op));
            if let Some(info) = delivered.its_session_info {
                metadata.insert(
                    "session_info".into(),
                    json!(format!("{:04x}", u16::from_be_bytes(info))),
                );
            }
            message
                .transport_metadata
                .insert("ussd".into(), metadata.into());
        }
        message
    }

    fn message(&self, from: &str, to: Option<&str>, text: String) -> Message {
        Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: to.map(str::to_owned),
            from_addr: Some(from.to_owned()),
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some(text),
            transport_name: self.ctx.channel_id().to_owned(),
            transport_type: self.settings.transport_type.clone(),
            transport_metadata: Map::new(),
            helper_metadata: Map::new(),
            expires_at: None,
        }
    }
}

/// Delivers the parts of a long message that waited too long for the rest.
pub async fn deliver_partial(shared: &Shared, partial: PartialMessage) {
    let PartialMessage { sender, text } = partial;
    let message = shared.message(&sender, None, text);
    shared.ctx.log(
        LogRecord::warning(format!(
            "Parts of a long message from {sender} were missing after the multipart timeout; delivering what arrived"
        ))
        .about(&message.message_id),
    );
    // The parts are forgotten by now: if the daemon cannot keep the message, it is lost,
    // and the channel log says so.
    if let Err(e) = shared.ctx.inbound(message.clone()).await {
        shared.ctx.log(
            LogRecord::error(format!(
                "Lost the parts of a long message from {sender}: {e}"
            ))
            .about(&message.message_id),
        );
    }
}
