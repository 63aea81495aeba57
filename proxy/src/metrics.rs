//! Metrics of the edge: requests by app and status class, upstream latency
//! by app, requests in flight. Labels are bounded: app names come from the
//! store, never from the client; unmatched requests count under `-`.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label value for requests that matched no app.
pub const NO_APP: &str = "-";

/// An app name as a label value: shared with the route table, so counting
/// a request copies no string.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct App(Arc<str>);

impl EncodeLabelValue for App {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: App,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: App,
}

type HistogramFamily = Family<AppLabels, Histogram, fn() -> Histogram>;

fn upstream_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Metric handles of the edge proxy.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    requests: Family<RequestLabels, Counter>,
    upstream: HistogramFamily,
    in_flight: Gauge<i64, AtomicI64>,
    no_app: Arc<str>,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them under `proxy_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        reg.register(
            "requests",
            "Requests answered by the edge, by app and status class",
            requests.clone(),
        );
        let upstream: HistogramFamily = Family::new_with_constructor(upstream_histogram);
        reg.register(
            "upstream_duration_seconds",
            "Time from choosing a replica to its response header, by app",
            upstream.clone(),
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        reg.register(
            "in_flight_requests",
            "Requests being served by the edge",
            in_flight.clone(),
        );
        Self {
            requests,
            upstream,
            in_flight,
            no_app: Arc::from(NO_APP),
        }
    }

    /// Counts one finished request; `status` 0 means no response was sent.
    pub fn observe_request(&self, app: Option<&Arc<str>>, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.requests
            .get_or_create(&RequestLabels {
                app: App(app.unwrap_or(&self.no_app).clone()),
                class,
            })
            .inc();
    }

    /// Records the upstream latency of one request, in seconds.
    pub fn observe_upstream(&self, app: &Arc<str>, seconds: f64) {
        self.upstream
            .get_or_create(&AppLabels {
                app: App(app.clone()),
            })
            .observe(seconds);
    }

    /// Marks a request as in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight {
            gauge: self.in_flight.clone(),
        }
    }

    /// Requests in flight now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.get()
    }
}

/// Guard of one in-flight request.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge<i64, AtomicI64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
