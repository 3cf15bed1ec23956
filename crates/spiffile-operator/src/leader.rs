//! Leader election with a `coordination.k8s.io/v1` Lease, compatible with
//! client-go's (the upstream operator's): same Lease name, same fields, the
//! same expiry rule (a lease is taken over only after it has not changed for
//! its whole duration, measured on this replica's clock, so clock skew
//! between replicas does not matter), and release on shutdown by clearing
//! the holder. During a switch from one implementation to the other, at
//! most one of them acts.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::error::is_conflict;
use crate::names::MANAGED_BY;

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews.
    pub retry_period: Duration,
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<(Option<String>, Option<MicroTime>, String)>,
    observed_at: Instant,
}

/// Held leadership: `lost` turns true if it is lost.
pub struct Leadership {
    /// Becomes `true` when the lease could not be renewed in time, or
    /// another holder took it.
    pub lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Elector>,
}

impl Elector {
    /// A candidate for Lease `namespace/name` under `identity`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: None,
            observed_at: Instant::now(),
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.lease_duration.as_secs().max(1)).unwrap_or(15),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt: `Ok(true)` when this candidate holds the lease after it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let pp = PostParams {
            field_manager: Some(MANAGED_BY.into()),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if holder.as_deref() == Some(self.identity.as_str()) {
            self.spec(transitions, spec.acquire_time.clone())
        } else {
            let record = (
                holder.clone(),
                spec.renew_time.clone(),
                lease.resource_version().unwrap_or_default(),
            );
            if self.observed.as_ref() != Some(&record) {
                self.observed = Some(record);
                self.observed_at = Instant::now();
            }
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.timing.lease_duration, Duration::from_secs);
            if holder.is_some() && self.observed_at.elapsed() < duration {
                return Ok(false);
            }
            self.spec(transitions + 1, None)
        };
        lease.spec = Some(new_spec);
        lease.metadata.managed_fields = None;
        match self.api.replace(&self.name, &pp, &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Tries until this candidate is the leader, or `stop` resolves
    /// (then `None`).
    pub async fn acquire(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Leadership> {
        let mut stop = std::pin::pin!(stop);
        let mut logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {
                    if !logged {
                        tracing::info!(lease = %self.name, holder = ?self.observed.as_ref().and_then(|o| o.0.clone()), "waiting for leadership");
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "leader election: cannot reach the lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry_period) => {}
                _ = &mut stop => return None,
            }
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
        let (lost_tx, lost) = watch::channel(false);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut last_ok = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.timing.retry_period) => {}
                    _ = stop_rx.changed() => return self,
                }
                let attempt =
                    tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew())
                        .await;
                match attempt {
                    Ok(Ok(true)) => last_ok = Instant::now(),
                    Ok(Ok(false)) => {
                        tracing::error!(lease = %self.name, "another replica holds the lease: stepping down");
                        let _ = lost_tx.send(true);
                        return self;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
                    Err(_) => tracing::warn!("leader election: renewal timed out"),
                }
                if last_ok.elapsed() >= self.timing.renew_deadline {
                    tracing::error!(lease = %self.name, "could not renew the lease in time: stepping down");
                    let _ = lost_tx.send(true);
                    return self;
                }
            }
        });
        Some(Leadership {
            lost,
            stop: stop_tx,
            task,
        })
    }
}

impl Leadership {
    /// Stops renewing and releases the lease (the holder is cleared, so
    /// another replica takes over at once instead of after the lease time).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let Ok(elector) = self.task.await else {
            return;
        };
        if *self.lost.borrow() {
            return;
        }
        let Ok(Some(mut lease)) = elector.api.get_opt(&elector.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(elector.identity.as_str()) {
            return;
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        lease.metadata.managed_fields = None;
        match elector
            .api
            .replace(&elector.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %elector.name, "lease released"),
            Err(e) => tracing::warn!(error = %e, "could not release the lease"),
        }
    }
}
