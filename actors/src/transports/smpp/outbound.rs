//! Sending one message: the data coding, the parts, one submit_sm per part, and what the
//! SMSC's answers mean.
//!
//! - **Coding**: GSM 03.38 when every character fits, else Latin-1 if the channel allows it
//!   and it fits, else UCS2. `channel_data.data_coding` (`"gsm7"`, `"latin1"`, `"ucs2"`)
//!   overrides the choice for one message; a text the forced coding cannot carry is rejected.
//! - **Parts**: counted in characters (153 GSM / 67 UCS2 per part with an 8-bit UDH), sent in
//!   order, all sharing one reference. The message is `submitted` only when every part was
//!   accepted; its provider ids are those of all parts.
//! - **Answers**: `ESME_RTHROTTLED` or `ESME_RMSGQFUL` on the first part throttle the channel
//!   (the message is sent again after the pause); on a later part the part is retried here
//!   after `throttle_delay`, so accepted parts are not sent twice. `ESME_RSYSERR` and
//!   `ESME_RX_T_APPN` are temporary (retry). Any other error status rejects the message; the
//!   `rejected` event's reason starts with the status name, e.g. `ESME_RINVDSTADR (0x0000000b)`. A lost link or a timeout means "try again later": the message may
//!   then reach the handset twice (at-least-once, as the queue promises).
//! - **USSD**: a reply to a USSD message (its `transport_metadata.ussd`) or a message with
//!   `channel_data.continue_session` carries `ussd_service_op` — `ussd.reply_continue` when
//!   `continue_session` is true (the default for replies that do not close), else
//!   `ussd.reply_end` — and echoes the session's `its_session_info` with the end-of-session
//!   bit set when it ends.
use std::time::Duration;

use serde_json::Value;

use super::coding::{self, DataCoding};
use super::config::SmppSettings;
use super::parts;
use super::pdu::{self, Submission, UssdFields};
use super::receipt::canonical;
use super::session::Link;
use super::Shared;
use crate::message::{Message, SessionEvent, StatusLevel};
use crate::transport::{SendError, Sent};

/// The coding of `message`: its override, or the best fit.
fn coding_of(settings: &SmppSettings, message: &Message) -> Result<DataCoding, SendError> {
    let text = message.content.as_deref().unwrap_or("");
    match message.helper_metadata.get("data_coding") {
        None | Some(Value::Null) => Ok(coding::choose(text, settings.latin1)),
        Some(Value::String(name)) => DataCoding::from_name(name).ok_or_else(|| {
            SendError::Rejected(format!(
                "channel_data.data_coding {name:?} is not gsm7, latin1 or ucs2"
            ))
        }),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(DataCoding::from_value)
            .ok_or_else(|| {
                SendError::Rejected(format!("channel_data.data_coding {n} is not 0, 3 or 8"))
            }),
        Some(other) => Err(SendError::Rejected(format!(
            "channel_data.data_coding must be a name or a number, not {other}"
        ))),
    }
}

/// How many parts (rate-limit tokens) `message` needs.
pub fn parts_needed(settings: &SmppSettings, message: &Message) -> u32 {
    let text = message.content.as_deref().unwrap_or("");
    let coding = coding_of(settings, message).unwrap_or(DataCoding::Ucs2);
    parts::count(text, coding, settings.concatenation)
}

/// The USSD fields of `message`, when it belongs to a USSD session.
fn ussd_fields(settings: &SmppSettings, message: &Message) -> Option<UssdFields> {
    let metadata = message.transport_metadata.get("ussd");
    let continue_session = message
        .helper_metadata
        .get("continue_session")
        .and_then(Value::as_bool);
    if metadata.is_none() && continue_session.is_none() {
        return None;
    }
    let continues = continue_session.unwrap_or(message.session_event != Some(SessionEvent::Close));
    let service_op = if continues {
        settings.ussd.reply_continue
    } else {
        settings.ussd.reply_end
    };
    let session_info = metadata
        .and_then(|m| m.get("session_info"))
        .and_then(Value::as_str)
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        .map(|info| {
            let [session, sequence] = info.to_be_bytes();
            // Bit 0 of the second octet ends the session (SMPP 3.4 §5.3.2.43).
            [
                session,
                if continues {
                    sequence & !1
                } else {
                    sequence | 1
                },
            ]
        });
    Some(UssdFields {
        service_op,
        session_info,
    })
}

/// Sends `message` over `link`, one submit_sm per part.
pub async fn send(shared: &Shared, link: &Link, message: &Message) -> Result<Sent, SendError> {
    let settings = &shared.settings;
    let id = &message.message_id;
    let text = message.content.as_deref().unwrap_or("");
    let to = message
        .to_addr
        .as_deref()
        .ok_or_else(|| SendError::Rejected("the message has no to address".into()))?;
    let from = message
        .from_addr
        .as_deref()
        .or(settings.default_source_addr.as_deref())
        .ok_or_else(|| {
            SendError::Rejected(
                "the message has no from address and the channel no default_source_addr".into(),
            )
        })?;
    let coding = coding_of(settings, message)?;
    let reference = shared.next_reference.get();
    shared.next_reference.set(reference.wrapping_add(1));
    let parts = parts::split(text, coding, settings.concatenation, reference)
        .map_err(|e| SendError::Rejected(e.to_string()))?;
    let submission = Submission {
        from,
        to,
        data_coding: coding.value(),
        ussd: ussd_fields(settings, message),
    };
    let mut provider_ids = Vec::with_capacity(parts.len());
    for (number, part) in parts.iter().enumerate() {
        let submit = pdu::submit_sm(settings, &submission, part).map_err(SendError::Rejected)?;
        loop {
            let response = link
                .submit(submit.clone(), id)
                .await
                .map_err(|e| SendError::Retry {
                    reason: e.to_string(),
                    after: Duration::from_secs(1),
                })?;
            let status = pdu::status(&response);
            let first = provider_ids.is_empty();
            match status {
                0 => {
                    let provider_id = pdu::submit_sm_resp_id(&response).unwrap_or_default();
                    provider_ids.push(canonical(&provider_id));
                    break;
                }
                pdu::THROTTLED | pdu::QUEUE_FULL => {
                    throttled(shared).await;
                    if first {
                        return Err(SendError::Throttled {
                            after: settings.throttle_delay,
                        });
                    }
                    tokio::time::sleep(settings.throttle_delay).await;
                }
                pdu::SYSTEM_ERROR | pdu::TEMPORARY_APP_ERROR if first => {
                    return Err(SendError::Retry {
                        reason: format!("the SMSC answered with temporary error {status:#010x}"),
                        after: settings.throttle_delay,
                    })
                }
                pdu::SYSTEM_ERROR | pdu::TEMPORARY_APP_ERROR => {
                    tokio::time::sleep(settings.throttle_delay).await;
                }
                _ => {
                    return Err(SendError::Rejected(format!(
                        "{} ({status:#010x}): the SMSC rejected part {} of {}",
                        pdu::status_name(status),
                        number + 1,
                        parts.len()
                    )))
                }
            }
        }
    }
    if shared.throttled.replace(false) {
        let kind = link.kind();
        let message = "The SMSC accepts messages again".to_owned();
        shared
            .status(kind, StatusLevel::Ok, "bound", message, Default::default())
            .await;
    }
    Ok(Sent { provider_ids })
}

/// Marks the channel throttled (one status event per throttling episode).
async fn throttled(shared: &Shared) {
    if !shared.throttled.replace(true) {
        let kind = pdu::BindKind::for_mode(shared.settings.bind_mode)[0];
        let message = "The SMSC asks us to slow down (ESME_RTHROTTLED)".to_owned();
        shared
            .status(
                kind,
                StatusLevel::Degraded,
                "throttled",
                message,
                Default::default(),
            )
            .await;
    }
}
