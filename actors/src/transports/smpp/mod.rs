//! The `smpp` channel type: an SMPP 3.4 ESME for SMS and USSD.
//!
//! Pure pieces (text codings, long-message parts, delivery receipts) live in their own
//! modules with their own tests; the session (bind, window, enquire_link, reconnect) is
//! built on them.
