//! Prometheus metrics, served at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::world::World;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every metric of the operator. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_seconds: Family<Labels, Histogram>,
    configmap_writes: Family<Labels, Counter>,
    configmap_write_errors: Family<Labels, Counter>,
    bundle_bytes: Family<Labels, Gauge>,
    bundle_identities: Family<Labels, Gauge>,
    keys_created: Counter,
    rotations: Counter,
    api_requests: Family<Labels, Counter>,
    webhook_requests: Family<Labels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("spiffile_operator");
        let reconciles = Family::<Labels, Counter>::default();
        r.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        let reconcile_errors = Family::<Labels, Counter>::default();
        r.register(
            "reconcile_errors",
            "Reconciles that failed (and will be retried), by kind",
            reconcile_errors.clone(),
        );
        let reconcile_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by kind",
            reconcile_seconds.clone(),
        );
        let configmap_writes = Family::<Labels, Counter>::default();
        r.register(
            "configmap_writes",
            "Bundle ConfigMap creates and updates, by namespace",
            configmap_writes.clone(),
        );
        let configmap_write_errors = Family::<Labels, Counter>::default();
        r.register(
            "configmap_write_errors",
            "Bundle ConfigMap writes that failed, by namespace",
            configmap_write_errors.clone(),
        );
        let bundle_bytes = Family::<Labels, Gauge>::default();
        r.register(
            "bundle_bytes",
            "Bytes of a namespace's bundle ConfigMap values (the API server refuses more than 1048576)",
            bundle_bytes.clone(),
        );
        let bundle_identities = Family::<Labels, Gauge>::default();
        r.register(
            "bundle_identities",
            "Identities in an operator-backed trust domain's bundle",
            bundle_identities.clone(),
        );
        let keys_created = Counter::default();
        r.register(
            "keys_created",
            "Identity keys generated",
            keys_created.clone(),
        );
        let rotations = Counter::default();
        r.register("rotations", "Key rotations completed", rotations.clone());
        let api_requests = Family::<Labels, Counter>::default();
        r.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, by HTTP method and resource",
            api_requests.clone(),
        );
        let webhook_requests = Family::<Labels, Counter>::default();
        r.register(
            "webhook_requests",
            "Admission requests answered, by result (mutated, skipped, denied, error)",
            webhook_requests.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        Self {
            registry: Arc::new(r),
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            configmap_writes,
            configmap_write_errors,
            bundle_bytes,
            bundle_identities,
            keys_created,
            rotations,
            api_requests,
            webhook_requests,
            leader,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Starts timing a reconcile of `kind`.
    pub fn reconcile(&self, kind: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_error(&self, kind: &'static str) {
        self.reconcile_errors
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }

    /// Counts a ConfigMap write.
    pub fn configmap_write(&self, namespace: &str) {
        self.configmap_writes
            .get_or_create(&labels(&[("namespace", namespace)]))
            .inc();
    }

    /// Counts a failed ConfigMap write.
    pub fn configmap_write_error(&self, namespace: &str) {
        self.configmap_write_errors
            .get_or_create(&labels(&[("namespace", namespace)]))
            .inc();
    }

    /// Records the sizes of a computed world.
    pub fn record_world(&self, world: &World) {
        self.bundle_bytes.clear();
        for (ns, bytes) in &world.namespace_bytes {
            self.bundle_bytes
                .get_or_create(&labels(&[("namespace", ns)]))
                .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
        }
        self.bundle_identities.clear();
        for (td, n) in &world.trust_domain_identities {
            self.bundle_identities
                .get_or_create(&labels(&[("trust_domain", td)]))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Counts a generated key.
    pub fn key_created(&self) {
        self.keys_created.inc();
    }

    /// Counts a completed rotation.
    pub fn rotation(&self) {
        self.rotations.inc();
    }

    /// Counts an API request.
    pub fn api_request(&self, method: &str, resource: &str) {
        self.api_requests
            .get_or_create(&labels(&[("method", method), ("resource", resource)]))
            .inc();
    }

    /// Counts an admission answer.
    pub fn webhook_request(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .reconcile_seconds
            .get_or_create(&labels(&[("kind", self.kind)]))
            .observe(self.started.elapsed().as_secs_f64());
    }
}
