//! What the controllers, the bundle writer and the webhook share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Notify;

use crate::config::Config;
use crate::crd::{ServiceIdentity, ServiceIdentityClaim};
use crate::metrics::Metrics;
use crate::names::CONFIGMAP_LIMIT;
use crate::secrets::{ObjKey, SecretIndex};
use crate::world::{ClaimOutcome, World};

/// Bytes set aside for a key being created or staged, until the world
/// computed from the watches shows it (so concurrent reconciles cannot
/// together push a bundle past the limit).
#[derive(Debug, Clone)]
struct Reservation {
    trust_domain: String,
    namespace: String,
    bytes: usize,
    kid: String,
    at: Instant,
}

/// A reservation older than this is dropped (its write failed or was lost).
const RESERVATION_TTL: Duration = Duration::from_secs(60);

/// State shared by every part of the running operator.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The configuration.
    pub config: Arc<Config>,
    /// The managed Secrets' public views.
    pub secrets: SecretIndex,
    /// Every `ServiceIdentity`.
    pub identities: Store<ServiceIdentity>,
    /// Every claim.
    pub claims: Store<ServiceIdentityClaim>,
    /// Every `spiffile-bundle` ConfigMap.
    pub configmaps: Store<ConfigMap>,
    /// The last computed world.
    pub world: ArcSwap<World>,
    /// Set when anything bundles depend on changed.
    pub dirty: Notify,
    /// Metrics.
    pub metrics: Metrics,
    recorder: Recorder,
    outcomes: Mutex<HashMap<ObjKey, ClaimOutcome>>,
    reservations: Mutex<HashMap<ObjKey, Reservation>>,
    /// Identities refused for size, reconciled again after the next pass.
    deferred: Mutex<std::collections::HashSet<ObjKey>>,
    /// Reconcile requests the writer sends when an object's state changed.
    pub identity_triggers: UnboundedSender<ObjectRef<ServiceIdentity>>,
    /// See [`Context::identity_triggers`].
    pub claim_triggers: UnboundedSender<ObjectRef<ServiceIdentityClaim>>,
}

/// The stores and trigger channels a [`Context`] is built from.
pub struct Parts {
    /// See [`Context::identities`].
    pub identities: Store<ServiceIdentity>,
    /// See [`Context::claims`].
    pub claims: Store<ServiceIdentityClaim>,
    /// See [`Context::configmaps`].
    pub configmaps: Store<ConfigMap>,
    /// See [`Context::identity_triggers`].
    pub identity_triggers: UnboundedSender<ObjectRef<ServiceIdentity>>,
    /// See [`Context::claim_triggers`].
    pub claim_triggers: UnboundedSender<ObjectRef<ServiceIdentityClaim>>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: Client, config: Arc<Config>, metrics: Metrics, parts: Parts) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "spiffile-operator".into(),
                instance: Some(config.identity.clone()),
            },
        );
        Self {
            client,
            config,
            secrets: SecretIndex::default(),
            identities: parts.identities,
            claims: parts.claims,
            configmaps: parts.configmaps,
            world: ArcSwap::from_pointee(World::default()),
            dirty: Notify::new(),
            metrics,
            recorder,
            outcomes: Mutex::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            deferred: Mutex::new(std::collections::HashSet::new()),
            identity_triggers: parts.identity_triggers,
            claim_triggers: parts.claim_triggers,
        }
    }

    /// Publishes a Kubernetes Event about `obj`; failures are logged only.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: String)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            // The events API caps notes at 1 kB.
            note: Some(truncate(note, 1000)),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }

    /// Records a claim's outcome; wakes the writer when it changed.
    pub fn set_claim_outcome(&self, key: &ObjKey, outcome: Option<ClaimOutcome>) {
        let mut map = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match outcome {
            Some(o) => map.insert(key.clone(), o.clone()) != Some(o),
            None => map.remove(key).is_some(),
        };
        drop(map);
        if changed {
            self.dirty.notify_one();
        }
    }

    /// A copy of every claim outcome.
    pub fn claim_outcomes(&self) -> HashMap<ObjKey, ClaimOutcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets aside `bytes` in `trust_domain`'s bundle for the key `kid` of the
    /// identity `key` (in `namespace`), or says why they do not fit.
    pub fn reserve(
        &self,
        key: &ObjKey,
        trust_domain: &str,
        bytes: usize,
        kid: &str,
    ) -> Result<(), String> {
        let world = self.world.load();
        let mut reservations = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        reservations.retain(|_, r| r.at.elapsed() < RESERVATION_TTL);
        reservations.remove(key);
        let mut namespaces = world
            .trust_domain_namespaces
            .get(trust_domain)
            .cloned()
            .unwrap_or_default();
        namespaces.insert(key.namespace.clone());
        for ns in &namespaces {
            let mut size = world.namespace_bytes.get(ns).copied().unwrap_or(0);
            let carries = world
                .trust_domain_namespaces
                .get(trust_domain)
                .is_some_and(|n| n.contains(ns));
            if !carries {
                // The namespace will start carrying the whole trust domain.
                size += world
                    .trust_domain_bytes
                    .get(trust_domain)
                    .copied()
                    .unwrap_or(0)
                    + 120;
            }
            for r in reservations.values() {
                let affects = r.namespace == *ns
                    || world
                        .trust_domain_namespaces
                        .get(&r.trust_domain)
                        .is_some_and(|n| n.contains(ns));
                if affects {
                    size += r.bytes;
                }
            }
            if size + bytes > CONFIGMAP_LIMIT {
                self.deferred
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone());
                return Err(format!(
                    "ConfigMap {ns}/spiffile-bundle would grow to about {} bytes, over Kubernetes' limit of {CONFIGMAP_LIMIT} (the {trust_domain:?} bundle holds {} identities); nothing was written (split the trust domain, shorten rotationOverlap, or move identities to fewer namespaces; see docs/operator.md, Limits)",
                    size + bytes,
                    world
                        .trust_domain_identities
                        .get(trust_domain)
                        .copied()
                        .unwrap_or(0),
                ));
            }
        }
        reservations.insert(
            key.clone(),
            Reservation {
                trust_domain: trust_domain.to_owned(),
                namespace: key.namespace.clone(),
                bytes,
                kid: kid.to_owned(),
                at: Instant::now(),
            },
        );
        Ok(())
    }

    /// Identities refused for size since the last call (they look again once
    /// bundles have changed).
    pub fn take_deferred(&self) -> Vec<ObjKey> {
        self.deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect()
    }

    /// Drops the reservation of `key`.
    pub fn release(&self, key: &ObjKey) {
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Drops reservations the computed `world` already accounts for.
    pub fn settle_reservations(&self, world: &World) {
        let mut reservations = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        reservations.retain(|key, r| {
            let seen = world.identities.get(key).is_some_and(|s| {
                s.current_kid.as_deref() == Some(&r.kid) || s.staged_kid.as_deref() == Some(&r.kid)
            });
            !seen && r.at.elapsed() < RESERVATION_TTL
        });
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
