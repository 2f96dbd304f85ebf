//! `GET /metrics`: Prometheus counters, gauges and histograms of this process (the
//! `prometheus` crate, text exposition format 0.0.4).
//!
//! Counters are updated where things happen (inbound messages and events in the host, sends in
//! the API, callback outcomes in the delivery lanes, request latency in the API middleware).
//! Gauges that describe the present (queue depth per lane, messages in flight, whether each
//! channel's transport is running, restarts) are read when scraped. Every series is per
//! process: Prometheus scrapes each Junebug process and sums.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The kinds of callback, as the delivery component names them.
pub const CALLBACK_KINDS: [&str; 3] = ["inbound message", "event", "status"];

/// Every metric Junebug exposes.
pub struct Metrics {
    registry: Registry,
    /// Messages by channel and direction (`inbound`, `outbound`).
    pub messages: IntCounterVec,
    /// Events by channel and API event type.
    pub events: IntCounterVec,
    /// Callback attempts by channel, kind (`inbound message`, `event`, `status`) and outcome
    /// (`delivered`, `failed`).
    pub callbacks: IntCounterVec,
    /// Callbacks given up on (dead letters) by channel and kind.
    pub dead_letters: IntCounterVec,
    /// Delays on the way out by channel and reason (`rate_limit`: a message waited for the
    /// rate limiter; `retry`: the transport asked to try again; `throttled`: the provider
    /// asked to slow down).
    pub send_delays: IntCounterVec,
    /// The level of each transport component (SMPP bind, …) per channel: 2 ok, 1 degraded,
    /// 0 down (scrape time, from the last status event).
    pub component_status: IntGaugeVec,
    /// HTTP API request latency by method, route pattern and status.
    pub api_latency: HistogramVec,
    /// Messages waiting per channel and lane (read at scrape time).
    pub queue_depth: IntGaugeVec,
    /// Messages a channel holds, taken from its queue and not yet settled (scrape time).
    pub in_flight: IntGaugeVec,
    /// 1 while the channel's transport runs in this process, else 0 (scrape time).
    pub transport_up: IntGaugeVec,
    /// Restarts of the channel after failures since this process started it (scrape time).
    pub restarts: IntGaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Names and labels are constants below, valid by construction (a test scrapes them all).
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric")
}

impl Metrics {
    /// A registry holding every metric, all at zero.
    pub fn new() -> Metrics {
        let latency = HistogramOpts::new(
            "junebug_api_request_duration_seconds",
            "HTTP API request latency",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        let metrics = Metrics {
            registry: Registry::new(),
            messages: counter(
                "junebug_messages_total",
                "Messages by channel and direction",
                &["channel_id", "direction"],
            ),
            events: counter(
                "junebug_events_total",
                "Message events by channel and type",
                &["channel_id", "event_type"],
            ),
            callbacks: counter(
                "junebug_callbacks_total",
                "Callback attempts by channel, kind and outcome",
                &["channel_id", "kind", "outcome"],
            ),
            dead_letters: counter(
                "junebug_dead_letters_total",
                "Callbacks given up on, by channel and kind",
                &["channel_id", "kind"],
            ),
            send_delays: counter(
                "junebug_send_delays_total",
                "Delays on the way out, by channel and reason",
                &["channel_id", "reason"],
            ),
            component_status: gauge(
                "junebug_component_status",
                "Transport component level per channel: 2 ok, 1 degraded, 0 down",
                &["channel_id", "component"],
            ),
            api_latency: HistogramVec::new(latency, &["method", "route", "status"])
                .expect("a valid metric"),
            queue_depth: gauge(
                "junebug_queue_depth",
                "Messages waiting in a channel's queue, per lane",
                &["channel_id", "lane"],
            ),
            in_flight: gauge(
                "junebug_in_flight",
                "Messages a channel holds, taken from its queue and not yet settled",
                &["channel_id"],
            ),
            transport_up: gauge(
                "junebug_transport_up",
                "1 while the channel's transport runs in this process",
                &["channel_id"],
            ),
            restarts: gauge(
                "junebug_channel_restarts",
                "Restarts of the channel after failures in this process",
                &["channel_id"],
            ),
        };
        for collector in [
            Box::new(metrics.messages.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.events.clone()),
            Box::new(metrics.callbacks.clone()),
            Box::new(metrics.dead_letters.clone()),
            Box::new(metrics.send_delays.clone()),
            Box::new(metrics.component_status.clone()),
            Box::new(metrics.api_latency.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.transport_up.clone()),
            Box::new(metrics.restarts.clone()),
        ] {
            // Distinct names, registered once: cannot collide.
            metrics
                .registry
                .register(collector)
                .expect("unique metric names");
        }
        metrics
    }

    /// Drops a deleted channel's counters (gauges are rebuilt at every scrape).
    pub fn forget(&self, channel_id: &str) {
        // Removing a series that was never created is an error we do not care about.
        for direction in ["inbound", "outbound"] {
            let _ = self.messages.remove_label_values(&[channel_id, direction]);
        }
        for (label, _) in super::RATES.iter().skip(2) {
            let _ = self.events.remove_label_values(&[channel_id, label]);
        }
        for kind in CALLBACK_KINDS {
            for outcome in ["delivered", "failed"] {
                let _ = self
                    .callbacks
                    .remove_label_values(&[channel_id, kind, outcome]);
            }
            let _ = self.dead_letters.remove_label_values(&[channel_id, kind]);
        }
        for delay in ["rate_limit", "retry", "throttled"] {
            let _ = self.send_delays.remove_label_values(&[channel_id, delay]);
        }
    }

    /// Clears the scrape-time gauges before they are set again for the channels that exist.
    pub fn reset_gauges(&self) {
        for vec in [
            &self.queue_depth,
            &self.in_flight,
            &self.transport_up,
            &self.restarts,
            &self.component_status,
        ] {
            vec.reset();
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
