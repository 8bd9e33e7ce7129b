//! Request counts, errors and latency per endpoint, in Prometheus' text format at
//! `GET /metrics`. Endpoints are route templates (`/v1/indexes/{index_name}/users`), so no
//! index name, id or key ever becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    in_flight: AtomicUsize,
}

/// Counts a request as in flight until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Endpoint {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// Marks a request in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Counts one answered request.
    pub fn record(&self, endpoint: &str, status: u16, latency: Duration) {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = endpoints.entry(endpoint.to_owned()).or_default();
        *e.by_status.entry(status).or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in e.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        e.count += 1;
        e.sum_seconds += seconds;
    }

    /// The text exposition, with `open_handles` as a gauge.
    pub fn render(&self, open_handles: usize) -> String {
        let endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        out.push_str(
            "# HELP ciphervec_http_requests_total Requests answered, by endpoint and status.\n",
        );
        out.push_str("# TYPE ciphervec_http_requests_total counter\n");
        for (name, e) in endpoints.iter() {
            for (status, n) in &e.by_status {
                let _ = writeln!(
                    out,
                    "ciphervec_http_requests_total{{endpoint=\"{name}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP ciphervec_http_request_errors_total Requests answered with a status of 400 or more.\n");
        out.push_str("# TYPE ciphervec_http_request_errors_total counter\n");
        for (name, e) in endpoints.iter() {
            let errors: u64 = e
                .by_status
                .iter()
                .filter(|(s, _)| **s >= 400)
                .map(|(_, n)| n)
                .sum();
            let _ = writeln!(
                out,
                "ciphervec_http_request_errors_total{{endpoint=\"{name}\"}} {errors}"
            );
        }
        out.push_str(
            "# HELP ciphervec_http_request_duration_seconds Time to answer, by endpoint.\n",
        );
        out.push_str("# TYPE ciphervec_http_request_duration_seconds histogram\n");
        for (name, e) in endpoints.iter() {
            for (n, bound) in e.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "ciphervec_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ciphervec_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"+Inf\"}} {}",
                e.count
            );
            let _ = writeln!(
                out,
                "ciphervec_http_request_duration_seconds_sum{{endpoint=\"{name}\"}} {}",
                e.sum_seconds
            );
            let _ = writeln!(
                out,
                "ciphervec_http_request_duration_seconds_count{{endpoint=\"{name}\"}} {}",
                e.count
            );
        }
        out.push_str("# HELP ciphervec_http_requests_in_flight Requests being handled now.\n");
        out.push_str("# TYPE ciphervec_http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "ciphervec_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP ciphervec_open_index_handles Index handles kept open for reuse.\n");
        out.push_str("# TYPE ciphervec_open_index_handles gauge\n");
        let _ = writeln!(out, "ciphervec_open_index_handles {open_handles}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_buckets() {
        let m = Metrics::default();
        m.record("/v1/vectors/query", 200, Duration::from_millis(3));
        m.record("/v1/vectors/query", 401, Duration::from_millis(30));
        let text = m.render(2);
        assert!(text.contains(
            "ciphervec_http_requests_total{endpoint=\"/v1/vectors/query\",status=\"200\"} 1"
        ));
        assert!(
            text.contains("ciphervec_http_request_errors_total{endpoint=\"/v1/vectors/query\"} 1")
        );
        assert!(text.contains("ciphervec_http_request_duration_seconds_bucket{endpoint=\"/v1/vectors/query\",le=\"0.005\"} 1"));
        assert!(text.contains("ciphervec_http_request_duration_seconds_bucket{endpoint=\"/v1/vectors/query\",le=\"0.05\"} 2"));
        assert!(text.contains(
            "ciphervec_http_request_duration_seconds_count{endpoint=\"/v1/vectors/query\"} 2"
        ));
        assert!(text.contains("ciphervec_open_index_handles 2"));
    }
}
