//! Per-channel rates (API.md 4.3): counts per time bucket of `metric_window` seconds; a rate
//! is the count of the previous, complete bucket divided by the window. These live in the
//! Store, so every process sharing it sees the same rates.
//!
//! [`exporter`]: the Prometheus metrics of this process (`GET /metrics`).
pub mod exporter;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The counted labels and the keys of their rates in the channel object.
pub const RATES: [(&str, &str); 7] = [
    ("inbound", "inbound_message_rate"),
    ("outbound", "outbound_message_rate"),
    ("submitted", "submitted_event_rate"),
    ("rejected", "rejected_event_rate"),
    ("delivery_succeeded", "delivery_succeeded_rate"),
    ("delivery_failed", "delivery_failed_rate"),
    ("delivery_pending", "delivery_pending_rate"),
];

/// The bucket `now` falls in.
pub fn current_bucket(window: f64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    (now / window).floor() as i64
}

/// How long a bucket's count must be kept: until the bucket after it has closed.
pub fn bucket_ttl(window: f64) -> Duration {
    Duration::from_secs_f64((2.0 * window).ceil())
}

/// The seven rates from the previous bucket's counts: integer 0 without data, else a float.
pub fn rates(counts: &HashMap<String, u64>, window: f64) -> Map<String, Value> {
    RATES
        .iter()
        .map(|(label, key)| {
            let rate = match counts.get(*label) {
                Some(&n) if n > 0 => json!(n as f64 / window),
                _ => json!(0),
            };
            ((*key).to_owned(), rate)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without data a rate is the integer 0; with data, count per second as a float.
    #[test]
    fn rates_are_counts_per_second() {
        let counts = HashMap::from([("outbound".to_owned(), 5)]);
        let r = rates(&counts, 10.0);
        assert_eq!(r["outbound_message_rate"], json!(0.5));
        assert_eq!(r["inbound_message_rate"], json!(0));
        assert_eq!(r.len(), 7);
    }
}
