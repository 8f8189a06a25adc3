//! Prometheus metrics: requests by route and status, a latency histogram,
//! writes and appends (counted by the application), and the store's head position. Hand-written text exposition:
//! a handful of counters do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

impl Metrics {
    /// One answered request; `route` is the matched pattern, never the raw path.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            *m.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            let secs = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    m.latency_buckets[i] += 1;
                }
            }
            m.latency_count += 1;
            m.latency_sum += secs;
        }
    }

    /// The text exposition format.
    pub fn render(&self, head_position: u64, counts: fangkong_app::WriteCounts) -> String {
        let mut out = String::new();
        let Ok(m) = self.inner.lock() else {
            return out;
        };
        let _ = writeln!(
            out,
            "# HELP fangkong_http_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE fangkong_http_requests_total counter");
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "fangkong_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP fangkong_http_request_duration_seconds Request latency."
        );
        let _ = writeln!(
            out,
            "# TYPE fangkong_http_request_duration_seconds histogram"
        );
        for (bound, n) in BUCKETS.iter().zip(m.latency_buckets) {
            let _ = writeln!(
                out,
                "fangkong_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "fangkong_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.latency_count
        );
        let _ = writeln!(
            out,
            "fangkong_http_request_duration_seconds_sum {}",
            m.latency_sum
        );
        let _ = writeln!(
            out,
            "fangkong_http_request_duration_seconds_count {}",
            m.latency_count
        );
        let _ = writeln!(
            out,
            "# HELP fangkong_writes_total Writes that recorded events."
        );
        let _ = writeln!(out, "# TYPE fangkong_writes_total counter");
        let _ = writeln!(out, "fangkong_writes_total {}", counts.writes);
        let _ = writeln!(
            out,
            "# HELP fangkong_events_appended_total Events appended by this instance."
        );
        let _ = writeln!(out, "# TYPE fangkong_events_appended_total counter");
        let _ = writeln!(out, "fangkong_events_appended_total {}", counts.events);
        let _ = writeln!(
            out,
            "# HELP fangkong_write_conflicts_total Appends another writer beat, each decided again on the fresh state."
        );
        let _ = writeln!(out, "# TYPE fangkong_write_conflicts_total counter");
        let _ = writeln!(out, "fangkong_write_conflicts_total {}", counts.conflicts);
        let _ = writeln!(
            out,
            "# HELP fangkong_store_head_position The last position of the event log."
        );
        let _ = writeln!(out, "# TYPE fangkong_store_head_position gauge");
        let _ = writeln!(out, "fangkong_store_head_position {head_position}");
        out
    }
}
