//! The bundle writer: one task that turns bursts of changes into at most one
//! ConfigMap write per namespace.
//!
//! Every watch event that bundles depend on wakes it; it then waits until
//! the changes pause for [`Config::bundle_debounce`](crate::config::Config::bundle_debounce) (but never longer than
//! [`Config::bundle_max_delay`](crate::config::Config::bundle_max_delay) after the first change), computes the world
//! from the watch caches, writes the ConfigMaps whose data differ (nothing
//! when nothing changed: the canonical form is byte-stable), and asks the
//! controllers to reconcile the objects whose state changed.
//!
//! It computes nothing before every watch has delivered its first full list:
//! a partial view would drop live keys from bundles.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;

use crate::context::Context;
use crate::names::{BUNDLE_CONFIGMAP, MANAGED_BY, MANAGED_BY_LABEL};
use crate::world::{self, ActualConfigMap, DocCache, Inputs, World};

/// A write whose result the ConfigMap watch has not shown yet.
struct InFlight {
    resource_version: String,
    data: BTreeMap<String, String>,
    at: Instant,
}

/// The writes of every namespace: at most one in progress per namespace
/// (so an older write can never land after a newer one), and the last
/// completed ones until the watch confirms them. Writes run beside the
/// computation: a slow API server delays a namespace's bundle, never the
/// next computation or the reconciles waiting on it.
#[derive(Default)]
struct Writes {
    running: std::collections::HashSet<String>,
    done: HashMap<String, InFlight>,
    /// Namespaces whose last write failed: not before this instant.
    retry_at: HashMap<String, Instant>,
}

type SharedWrites = Arc<std::sync::Mutex<Writes>>;

fn lock(w: &SharedWrites) -> std::sync::MutexGuard<'_, Writes> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a failed write waits before it is tried again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a namespace that refused a write because it is being deleted
/// is left alone.
const TERMINATING_PAUSE: Duration = Duration::from_secs(10);

/// How long a namespace whose ConfigMap vanished under a write waits for
/// the watch to show it gone before it is written again.
const GONE_DELAY: Duration = Duration::from_millis(200);

/// How long a write may stay unconfirmed by the watch before it is retried.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the writer until `shutdown` resolves, then makes one last pass so a
/// revocation seen just before shutdown is still written.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        _ = wait_ready(&ctx) => {}
        _ = &mut shutdown => return,
    }
    tracing::info!("bundle writer: caches synced");
    let mut cache = DocCache::default();
    let writes = SharedWrites::default();
    let mut stopping = false;
    let mut first = true;
    loop {
        if !first {
            let until_expiry = ctx
                .world
                .load()
                .next_expiry
                .map(|t| duration_until(t) + Duration::from_millis(10))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = ctx.dirty.notified() => {}
                _ = tokio::time::sleep(until_expiry) => {}
                _ = &mut shutdown => stopping = true,
            }
            if !stopping {
                // Trailing debounce, bounded by the maximum delay.
                let started = Instant::now();
                loop {
                    let left = ctx
                        .config
                        .bundle_max_delay
                        .saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    tokio::select! {
                        _ = ctx.dirty.notified() => continue,
                        _ = tokio::time::sleep(ctx.config.bundle_debounce.min(left)) => break,
                        _ = &mut shutdown => { stopping = true; break }
                    }
                }
            }
        }
        first = false;
        if stopping {
            // Let running writes land, then one last pass, written in full.
            drain(&writes).await;
            pass(&ctx, &mut cache, &writes);
            drain(&writes).await;
            tracing::info!("bundle writer: stopped after a final pass");
            return;
        }
        pass(&ctx, &mut cache, &writes);
    }
}

/// Waits until `store` has its first full list.
///
/// `Store::wait_until_ready` wakes only the most recent of several
/// concurrent waiters (the controller waits on the same store), so it is
/// polled again on a short timer instead of awaited once.
pub async fn store_ready<K>(store: &kube::runtime::reflector::Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await
        {
            if r.is_err() {
                // The writer is gone: nothing will ever be listed.
                std::future::pending::<()>().await;
            }
            return;
        }
    }
}

async fn wait_ready(ctx: &Context) {
    store_ready(&ctx.identities).await;
    store_ready(&ctx.claims).await;
    store_ready(&ctx.configmaps).await;
    while !ctx.secrets.is_ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn duration_until(t: Timestamp) -> Duration {
    let now = Timestamp::now();
    if t <= now {
        Duration::ZERO
    } else {
        Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
    }
}

/// The ConfigMaps as the watch last saw them, by namespace.
fn actual_configmaps(ctx: &Context) -> BTreeMap<String, ActualConfigMap> {
    ctx.configmaps
        .state()
        .into_iter()
        .filter(|cm| cm.name_any() == BUNDLE_CONFIGMAP)
        .map(|cm| {
            (
                cm.namespace().unwrap_or_default(),
                ActualConfigMap {
                    data: cm.data.clone().unwrap_or_default().into_iter().collect(),
                    resource_version: cm.resource_version().unwrap_or_default(),
                    managed: cm.labels().get(MANAGED_BY_LABEL).map(String::as_str)
                        == Some(MANAGED_BY),
                },
            )
        })
        .collect()
}

async fn drain(writes: &SharedWrites) {
    while !lock(writes).running.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One computation; the writes it needs are started in the background.
fn pass(ctx: &Arc<Context>, cache: &mut DocCache, writes: &SharedWrites) {
    let started = Instant::now();
    let identities = ctx.identities.state();
    let claims = ctx.claims.state();
    let outcomes = ctx.claim_outcomes();
    let actual = actual_configmaps(ctx);
    let world = world::compute(Inputs {
        identities: &identities,
        claims: &claims,
        secrets: &ctx.secrets,
        claim_outcomes: &outcomes,
        actual: &actual,
        parsed: cache,
        now: Timestamp::now(),
    });
    ctx.settle_reservations(&world);
    let world = Arc::new(world);
    let previous = ctx.world.swap(world.clone());
    ctx.metrics.record_world(&world);
    send_triggers(ctx, &previous, &world);
    for (ns, why) in &world.blocked {
        if previous.blocked.get(ns) != Some(why) {
            tracing::warn!(namespace = %ns, "bundle ConfigMap not written: {why}");
        }
    }

    // Write only what differs from what the watch shows, not again while an
    // identical write awaits confirmation, and one write at a time per
    // namespace (a namespace busy now is looked at again when it is done).
    let mut w = lock(writes);
    let now = Instant::now();
    w.retry_at.retain(|_, t| *t > now);
    for (ns, data) in &world.desired {
        let current = actual.get(ns);
        if current.is_some_and(|a| a.data == *data && a.managed) {
            w.done.remove(ns);
            continue;
        }
        if w.running.contains(ns) || w.retry_at.contains_key(ns) {
            continue;
        }
        if let Some(f) = w.done.get(ns) {
            let confirmed = current.is_some_and(|a| a.resource_version == f.resource_version);
            if f.data == *data && !confirmed && f.at.elapsed() < CONFIRM_TIMEOUT {
                continue;
            }
        }
        w.running.insert(ns.clone());
        let (ctx, writes) = (ctx.clone(), writes.clone());
        let (ns, data, current) = (ns.clone(), data.clone(), current.cloned());
        tokio::spawn(async move {
            let had_configmap = current.is_some();
            let result = write(&ctx, &ns, &data, current.as_ref()).await;
            let mut w = lock(&writes);
            w.running.remove(&ns);
            match result {
                Ok(rv) => {
                    ctx.metrics.configmap_write(&ns);
                    w.done.insert(
                        ns,
                        InFlight {
                            resource_version: rv,
                            data,
                            at: Instant::now(),
                        },
                    );
                }
                Err(e) if crate::error::is_namespace_terminating(&e) => {
                    // The namespace and everything in it are going away: no
                    // warning, no retry loop. A later pass (a change, or the
                    // namespace created again under the same name) writes
                    // again once the pause is over.
                    tracing::debug!(namespace = %ns, "namespace terminating; bundle not written");
                    w.done.remove(&ns);
                    w.retry_at.insert(ns, Instant::now() + TERMINATING_PAUSE);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(TERMINATING_PAUSE).await;
                        ctx.dirty.notify_one();
                    });
                }
                Err(e) if had_configmap && crate::error::is_not_found(&e) => {
                    // The ConfigMap was deleted after the watch last showed
                    // it (its namespace being deleted, or by hand): not a
                    // failure. Once the watch shows it gone, a pass creates
                    // it again (refused quietly if the namespace is going).
                    tracing::debug!(namespace = %ns, "bundle ConfigMap deleted meanwhile; written again after the watch sees it");
                    w.done.remove(&ns);
                    w.retry_at.insert(ns, Instant::now() + GONE_DELAY);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(GONE_DELAY).await;
                        ctx.dirty.notify_one();
                    });
                }
                Err(e) => {
                    ctx.metrics.configmap_write_error(&ns);
                    tracing::warn!(namespace = %ns, error = %e, "bundle ConfigMap write failed; retrying in 1 s");
                    w.done.remove(&ns);
                    w.retry_at.insert(ns, Instant::now() + RETRY_DELAY);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY_DELAY).await;
                        ctx.dirty.notify_one();
                    });
                }
            }
            drop(w);
            ctx.dirty.notify_one();
        });
    }
    drop(w);
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        namespaces = world.desired.len(),
        "bundle pass"
    );
}

/// Creates or updates one namespace's ConfigMap; returns its new
/// resourceVersion.
async fn write(
    ctx: &Context,
    ns: &str,
    data: &BTreeMap<String, String>,
    current: Option<&ActualConfigMap>,
) -> Result<String, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    let written = match current {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(BUNDLE_CONFIGMAP.into()),
                    namespace: Some(ns.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                data: Some(data.clone()),
                ..Default::default()
            };
            api.create(
                &PostParams {
                    field_manager: Some(MANAGED_BY.into()),
                    ..Default::default()
                },
                &cm,
            )
            .await?
        }
        Some(current) => {
            let mut patch_data = serde_json::Map::new();
            for (k, v) in data {
                patch_data.insert(k.clone(), v.clone().into());
            }
            for k in current.data.keys() {
                if !data.contains_key(k) {
                    patch_data.insert(k.clone(), serde_json::Value::Null);
                }
            }
            let patch = serde_json::json!({
                "metadata": { "labels": labels },
                "data": patch_data,
            });
            api.patch(
                BUNDLE_CONFIGMAP,
                &PatchParams {
                    field_manager: Some(MANAGED_BY.into()),
                    ..Default::default()
                },
                &Patch::Merge(&patch),
            )
            .await?
        }
    };
    tracing::info!(
        namespace = ns,
        trust_domains = data.len(),
        bytes = data.values().map(String::len).sum::<usize>(),
        "bundle ConfigMap written"
    );
    Ok(written.resource_version().unwrap_or_default())
}

fn send_triggers(ctx: &Context, previous: &World, world: &World) {
    if previous.namespace_bytes != world.namespace_bytes {
        for key in ctx.take_deferred() {
            let _ = ctx
                .identity_triggers
                .unbounded_send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }
    for (key, state) in &world.identities {
        if previous.identities.get(key) != Some(state) {
            let _ = ctx
                .identity_triggers
                .unbounded_send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }
    for (key, state) in &world.claims {
        if previous.claims.get(key) != Some(state) {
            let _ = ctx
                .claim_triggers
                .unbounded_send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }
}
