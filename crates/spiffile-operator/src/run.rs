//! Running the operator: probes, webhook, leader election, the two
//! controllers and the bundle writer, and an orderly shutdown.
//!
//! Only the leader watches and writes; followers serve the webhook and the
//! probes and wait for the lease. On SIGTERM the leader stops taking new
//! work, lets running reconciles finish, makes a last bundle pass, releases
//! the lease (so a follower takes over at once) and exits 0. If it loses the
//! lease it stops writing at once and exits 1, as client-go's operators do.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::claim;
use crate::config::Config;
use crate::context::{Context, Parts};
use crate::crd::{ServiceIdentity, ServiceIdentityClaim};
use crate::error::Error;
use crate::http::{Health, serve_probes, serve_webhook};
use crate::identity;
use crate::leader::{Elector, Timing};
use crate::metrics::Metrics;
use crate::names::{BUNDLE_CONFIGMAP, LEASE_NAME, MANAGED_SELECTOR};
use crate::secrets::strip;
use crate::webhook::{self, Webhook};

/// A client that counts its requests in `metrics`.
pub async fn client(metrics: &Metrics) -> Result<Client, Error> {
    let config = kube::Config::infer().await.map_err(|e| {
        Error::Startup(format!(
            "no Kubernetes configuration (kubeconfig or in-cluster): {e}"
        ))
    })?;
    let m = metrics.clone();
    let counting =
        tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            m.api_request(req.method().as_str(), resource_of(req.uri().path()));
            req
        });
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Error::Startup(format!("cannot build the Kubernetes client: {e}")))?;
    Ok(builder.with_layer(&counting).build())
}

/// The resource a request path names (`secrets`, `serviceidentities/status`,
/// `leases`, …), for the request metric.
fn resource_of(path: &str) -> &str {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next() {
        Some("api") => {
            parts.next(); // version
        }
        Some("apis") => {
            parts.next(); // group
            parts.next(); // version
        }
        _ => return "other",
    }
    let mut resource = parts.next().unwrap_or("other");
    if resource == "namespaces" {
        let _namespace = parts.next();
        resource = parts.next().unwrap_or("namespaces");
    }
    // A subresource (`…/NAME/status`) is counted with it.
    match (parts.next(), parts.next()) {
        (Some(_), Some("status")) => match resource {
            "serviceidentities" => "serviceidentities/status",
            "serviceidentityclaims" => "serviceidentityclaims/status",
            other => other,
        },
        _ => resource,
    }
}

/// A future that resolves once `rx` turns true.
async fn when(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs until SIGTERM/SIGINT (`Ok`) or until leadership is lost (`Err`).
pub async fn run(config: Config) -> Result<(), Error> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let client = client(&metrics).await?;
    let health = Arc::new(Health::new(config.webhook));

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot handle SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(config.probe_addr)
        .await
        .map_err(|e| Error::Startup(format!("cannot listen on {}: {e}", config.probe_addr)))?;
    tracing::info!(addr = %config.probe_addr, "probes and metrics serving");
    let probes = tokio::spawn(serve_probes(
        listener,
        health.clone(),
        metrics.clone(),
        when(stop_rx.clone()),
    ));

    let webhook_task = config.webhook.then(|| {
        let hook = Arc::new(Webhook {
            client: client.clone(),
            metrics: metrics.clone(),
        });
        tokio::spawn(serve_webhook(
            config.webhook_addr,
            config.webhook_cert_dir.clone(),
            webhook::router(hook),
            health.clone(),
            when(stop_rx.clone()),
        ))
    });

    let leadership = if config.leader_election {
        let elector = Elector::new(
            client.clone(),
            &config.namespace,
            LEASE_NAME,
            &config.identity,
            Timing {
                lease_duration: config.lease_duration,
                renew_deadline: config.renew_deadline,
                retry_period: config.retry_period,
            },
        );
        match elector.acquire(when(stop_rx.clone())).await {
            Some(l) => Some(l),
            None => {
                finish(health, probes, webhook_task).await;
                return Ok(());
            }
        }
    } else {
        None
    };
    metrics.set_leader(true);
    health.leader.store(true, Ordering::Relaxed);
    let lost = leadership.as_ref().map(|l| l.lost.clone());

    let result = lead(
        client,
        config,
        metrics.clone(),
        health.clone(),
        stop_rx,
        lost,
    )
    .await;
    metrics.set_leader(false);
    if let Some(l) = leadership
        && result.is_ok()
    {
        l.release().await;
    }
    health.stopping.store(true, Ordering::Relaxed);
    finish(health, probes, webhook_task).await;
    result
}

async fn finish(
    health: Arc<Health>,
    probes: tokio::task::JoinHandle<std::io::Result<()>>,
    webhook: Option<tokio::task::JoinHandle<Result<(), String>>>,
) {
    health.stopping.store(true, Ordering::Relaxed);
    let _ = probes.await;
    if let Some(w) = webhook {
        let _ = w.await;
    }
}

/// The leader's work until shutdown or loss of the lease.
async fn lead(
    client: Client,
    config: Arc<Config>,
    metrics: Metrics,
    health: Arc<Health>,
    stop_rx: watch::Receiver<bool>,
    lost: Option<watch::Receiver<bool>>,
) -> Result<(), Error> {
    let (identity_triggers, identity_rx) = futures::channel::mpsc::unbounded();
    let (claim_triggers, claim_rx) = futures::channel::mpsc::unbounded();
    let (si_reader, si_writer) = reflector::store::<ServiceIdentity>();
    let (claim_reader, claim_writer) = reflector::store::<ServiceIdentityClaim>();
    let (cm_reader, cm_writer) = reflector::store::<ConfigMap>();
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.clone(),
        metrics,
        Parts {
            identities: si_reader.clone(),
            claims: claim_reader.clone(),
            configmaps: cm_reader,
            identity_triggers,
            claim_triggers,
        },
    ));
    let stop = when(stop_rx.clone()).shared();
    let (done_tx, done_rx) = watch::channel(false);

    // The bundle ConfigMaps.
    let c = ctx.clone();
    let cm_watch = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={BUNDLE_CONFIGMAP}")),
    )
    .default_backoff()
    .modify(|o| o.managed_fields_mut().clear())
    .reflect(cm_writer)
    .take_until(stop.clone())
    .for_each(move |_| {
        c.dirty.notify_one();
        std::future::ready(())
    });
    let cm_task = tokio::spawn(cm_watch);

    // ServiceIdentities, their Secrets (reduced to public views at once).
    let c = ctx.clone();
    let identities = watcher(
        Api::<ServiceIdentity>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| o.managed_fields_mut().clear())
    .reflect(si_writer)
    .inspect(move |_| c.dirty.notify_one())
    .applied_objects();
    let c = ctx.clone();
    let secrets = watcher(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().labels(MANAGED_SELECTOR),
    )
    .default_backoff()
    .inspect(move |ev| {
        if let Ok(ev) = ev
            && c.secrets.apply(ev)
        {
            c.dirty.notify_one();
        }
    })
    .touched_objects()
    .map_ok(strip);
    let identity_controller = Controller::for_stream(identities, si_reader)
        .owns_stream(secrets)
        .reconcile_on(identity_rx)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(stop.clone())
        .run(identity::reconcile, identity::error_policy, ctx.clone())
        .for_each(|_| std::future::ready(()));

    // Claims, and the delivered objects they name (metadata only).
    let c = ctx.clone();
    let claims = watcher(
        Api::<ServiceIdentityClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| o.managed_fields_mut().clear())
    .reflect(claim_writer)
    .inspect(move |_| c.dirty.notify_one())
    .applied_objects();
    let shared = config.shared_namespace().to_owned();
    let store = claim_reader.clone();
    let secret_meta = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let claims_of =
        move |kind: &'static str, store: reflector::Store<ServiceIdentityClaim>, shared: String| {
            move |ns: String, name: String| -> Vec<ObjectRef<ServiceIdentityClaim>> {
                store
                    .state()
                    .iter()
                    .filter(|c| claim::refers_to(c, kind, &ns, &name, &shared))
                    .map(|c| ObjectRef::from_obj(&**c))
                    .collect()
            }
        };
    let for_secret = claims_of("secret", store.clone(), shared.clone());
    let for_cm = claims_of("configmap", store, shared);
    let cm_meta = watcher(
        Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let claim_controller = Controller::for_stream(claims, claim_reader)
        .watches_stream(secret_meta, move |s: PartialObjectMeta<Secret>| {
            for_secret(s.namespace().unwrap_or_default(), s.name_any())
        })
        .watches_stream(cm_meta, move |c: PartialObjectMeta<ConfigMap>| {
            for_cm(c.namespace().unwrap_or_default(), c.name_any())
        })
        .reconcile_on(claim_rx)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(stop.clone())
        .run(claim::reconcile, claim::error_policy, ctx.clone())
        .for_each(|_| std::future::ready(()));

    let writer = tokio::spawn(crate::bundles::run(ctx.clone(), when(done_rx)));
    let c = ctx.clone();
    let h = health.clone();
    let synced = tokio::spawn(async move {
        crate::bundles::store_ready(&c.identities).await;
        crate::bundles::store_ready(&c.claims).await;
        crate::bundles::store_ready(&c.configmaps).await;
        h.synced.store(true, Ordering::Relaxed);
        tracing::info!("caches synced");
    });

    let controllers = futures::future::join(identity_controller, claim_controller);
    let lost_fut = match lost {
        Some(rx) => when(rx).boxed(),
        None => std::future::pending().boxed(),
    };
    tokio::select! {
        _ = controllers => {
            // Graceful: reconciles drained; one last bundle pass, then stop.
            let _ = done_tx.send(true);
            let _ = writer.await;
            cm_task.abort();
            synced.abort();
            tracing::info!("stopped");
            Ok(())
        }
        _ = lost_fut => {
            // Not the leader any more: stop writing now.
            writer.abort();
            cm_task.abort();
            synced.abort();
            Err(Error::Startup("lost the leader lease; exiting so a restart rejoins as a follower".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_resources() {
        use super::resource_of;
        assert_eq!(resource_of("/api/v1/namespaces/shop/secrets/a"), "secrets");
        assert_eq!(resource_of("/api/v1/secrets"), "secrets");
        assert_eq!(
            resource_of("/apis/spiffile.io/v1alpha1/namespaces/shop/serviceidentities/a/status"),
            "serviceidentities/status"
        );
        assert_eq!(
            resource_of("/apis/coordination.k8s.io/v1/namespaces/s/leases/x"),
            "leases"
        );
        assert_eq!(resource_of("/version"), "other");
    }
}
