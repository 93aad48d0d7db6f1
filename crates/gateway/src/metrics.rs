//! The gateway's Prometheus metrics: request latency by route, PSP outcomes by kind (retries
//! are `retry_scheduled`), webhooks by result, and the executor's backlog of due orders.
//! One registry per gateway process, rendered in the text exposition format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RouteLabels, Counter>,
    pub request_seconds: Family<RouteOnly, Histogram>,
    pub psp_outcomes: Family<OutcomeLabels, Counter>,
    pub webhooks: Family<OutcomeLabels, Counter>,
    /// Orders the last sweep found due (not started, retry due, lease expired, pending check).
    pub orders_due: Gauge,
    /// Orders by state, cluster-wide, read from the ledger at each scrape.
    pub orders: Family<StateLabels, Gauge>,
    /// Work the last sweep of each worker found due, by kind (`payout`).
    pub work_due: Family<OutcomeLabels, Gauge>,
    /// Outcomes recorded by the workers, by work kind and outcome.
    pub work_outcomes: Family<WorkOutcomeLabels, Counter>,
    /// Dead letters by work kind and payouts by state, cluster-wide, at scrape time.
    pub dead_letters: Family<OutcomeLabels, Gauge>,
    pub payouts: Family<StateLabels, Gauge>,
    /// Webhook delivery latency and failed attempts, by merchant endpoint.
    pub delivery_seconds: Family<EndpointLabels, Histogram>,
    pub delivery_failures: Family<EndpointLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkOutcomeLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tally_gateway");
        let requests = Family::<RouteLabels, Counter>::default();
        // 0.5 ms to about 8 s: loopback calls up to PSP timeouts.
        let request_seconds = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
        });
        let psp_outcomes = Family::<OutcomeLabels, Counter>::default();
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        let orders_due = Gauge::default();
        let orders = Family::<StateLabels, Gauge>::default();
        let work_due = Family::<OutcomeLabels, Gauge>::default();
        let work_outcomes = Family::<WorkOutcomeLabels, Counter>::default();
        let dead_letters = Family::<OutcomeLabels, Gauge>::default();
        let payouts = Family::<StateLabels, Gauge>::default();
        let delivery_seconds = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let delivery_failures = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "delivery_seconds",
            "Webhook delivery latency by merchant endpoint",
            delivery_seconds.clone(),
        );
        registry.register(
            "delivery_failures",
            "Webhook delivery attempts that got no 2xx, by merchant endpoint",
            delivery_failures.clone(),
        );
        registry.register(
            "work_due",
            "Work the last sweep found due, by kind (queue depth of the retry queue)",
            work_due.clone(),
        );
        registry.register(
            "work_outcomes",
            "Outcomes the workers recorded, by work kind and outcome",
            work_outcomes.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead letters waiting for an operator, by work kind, cluster-wide",
            dead_letters.clone(),
        );
        registry.register("payouts", "Payouts by state, cluster-wide", payouts.clone());
        registry.register(
            "orders",
            "Orders by state, cluster-wide (from the replicated ledger, at scrape time)",
            orders.clone(),
        );
        registry.register(
            "requests",
            "Requests by route and result code",
            requests.clone(),
        );
        registry.register(
            "request_seconds",
            "Request latency by route",
            request_seconds.clone(),
        );
        registry.register(
            "psp_outcomes",
            "PSP outcomes recorded by the executor, by kind (captured, declined, retry_scheduled...)",
            psp_outcomes.clone(),
        );
        registry.register(
            "webhooks",
            "PSP webhooks received, by result",
            webhooks.clone(),
        );
        registry.register(
            "orders_due",
            "Orders the executor's last sweep found due (a backlog that grows means it falls behind)",
            orders_due.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            orders_due,
            orders,
            work_due,
            work_outcomes,
            dead_letters,
            payouts,
            delivery_seconds,
            delivery_failures,
            requests,
            request_seconds,
            psp_outcomes,
            webhooks,
        }
    }

    pub fn observe_request(&self, route: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteOnly {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn count_outcome(&self, kind: &str, count: u64) {
        self.psp_outcomes
            .get_or_create(&OutcomeLabels {
                kind: kind.to_string(),
            })
            .inc_by(count);
    }

    /// Replaces the orders-by-state gauges with `counts`.
    pub fn set_orders_by_state(&self, counts: &std::collections::BTreeMap<String, u64>) {
        self.orders.clear();
        for (state, count) in counts {
            self.orders
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }

    pub fn set_work_due(&self, kind: &str, count: usize) {
        self.work_due
            .get_or_create(&OutcomeLabels {
                kind: kind.to_string(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn count_work_outcome(&self, kind: &str, outcome: &str, count: u64) {
        self.work_outcomes
            .get_or_create(&WorkOutcomeLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(count);
    }

    /// Replaces the dead-letter and payout gauges with the ledger's counts.
    pub fn set_work_counts(
        &self,
        payouts_by_state: &std::collections::BTreeMap<String, u64>,
        dead_letters: &std::collections::BTreeMap<String, u64>,
    ) {
        self.payouts.clear();
        for (state, count) in payouts_by_state {
            self.payouts
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.dead_letters.clear();
        // Kinds without dead letters read 0 rather than vanish, so alerts can compare.
        for kind in ["charge", "payout", "delivery", "refund"] {
            let count = dead_letters.get(kind).copied().unwrap_or(0);
            self.dead_letters
                .get_or_create(&OutcomeLabels {
                    kind: kind.to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    pub fn observe_delivery(&self, endpoint: &str, delivered: bool, latency_ms: u64) {
        let labels = EndpointLabels {
            endpoint: endpoint.to_string(),
        };
        self.delivery_seconds
            .get_or_create(&labels)
            .observe(latency_ms as f64 / 1_000.0);
        if !delivered {
            self.delivery_failures.get_or_create(&labels).inc();
        }
    }

    pub fn set_orders_due(&self, count: usize) {
        self.orders_due
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn count_webhook(&self, result: &str) {
        self.webhooks
            .get_or_create(&OutcomeLabels {
                kind: result.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("metrics encode into a string");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_what_was_counted() {
        let metrics = Metrics::new();
        metrics.observe_request("create_payment", "ok", 0.002);
        metrics.count_outcome("captured", 3);
        metrics.set_orders_due(7);
        metrics.set_orders_by_state(&std::collections::BTreeMap::from([(
            "succeeded".to_string(),
            4,
        )]));
        metrics.set_work_due("payout", 2);
        metrics.count_work_outcome("payout", "paid", 5);
        metrics.set_work_counts(
            &std::collections::BTreeMap::from([("paid".to_string(), 5)]),
            &std::collections::BTreeMap::from([("charge".to_string(), 1)]),
        );
        let text = metrics.render();
        assert!(text.contains("tally_gateway_orders_due 7"), "{text}");
        assert!(
            text.contains("tally_gateway_work_due{kind=\"payout\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_work_outcomes_total{kind=\"payout\",outcome=\"paid\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_dead_letters{kind=\"charge\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_dead_letters{kind=\"payout\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_payouts{state=\"paid\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_orders{state=\"succeeded\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_requests_total{route=\"create_payment\",code=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_psp_outcomes_total{kind=\"captured\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tally_gateway_request_seconds_bucket"),
            "{text}"
        );
    }
}
