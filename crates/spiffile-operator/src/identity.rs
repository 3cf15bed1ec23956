//! The `ServiceIdentity` reconciler: the key Secret, rotation, and status.
//!
//! Bundles are not written here (the bundle writer does that for every
//! namespace at once); this reconciler acts on one identity's Secret and
//! status, reading the world the writer last computed.
//!
//! Rotation is staged so that no bundle ever misses a key a workload may
//! sign with, and so that a crash at any step resumes rather than repeats:
//! 1. **stage**: a new key is written beside `key.pem` (`next-key.pem`) with
//!    the rotate value it answers (`spiffile.io/rotation`); the bundle
//!    writer publishes it in every namespace of the trust domain;
//! 2. **commit**, once every bundle binds the staged key: it replaces
//!    `key.pem`, and the replaced public key is recorded on the Secret
//!    (`spiffile.io/previous-jwk`, `…/previous-expires-at`) in the same
//!    write, so it stays in the bundle for the overlap whatever happens next;
//! 3. **record**: `status.previousKeys` and `status.lastRotateValue` (the
//!    upstream fields) are updated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::{IdentityObject, PreviousKey, ServiceIdentity, ServiceIdentityStatus};
use crate::error::{Error, is_conflict};
use crate::names::{
    MANAGED_BY, MANAGED_BY_LABEL, PREVIOUS_EXPIRES_ANNOTATION, PREVIOUS_JWK_ANNOTATION,
    ROTATE_ANNOTATION, ROTATION_ANNOTATION, SECRET_ID_KEY, SECRET_KEY_KEY, SECRET_STAGED_KEY,
};
use crate::secrets::{ObjKey, SecretView, parse_jwk};
use crate::status::{Reason, Verdict, merge_patch_of, ready_condition};
use crate::world::{IdentityState, growth};

/// The status fields this operator writes (upstream's, plus conditions).
const STATUS_FIELDS: &[&str] = &[
    "spiffeID",
    "keyID",
    "lastRotateValue",
    "previousKeys",
    "ready",
    "message",
    "conditions",
    "observedGeneration",
];

/// How often an identity is looked at even when nothing happens.
const RESYNC: Duration = Duration::from_secs(300);

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGED_BY.into()),
        ..Default::default()
    }
}

/// Reconciles one `ServiceIdentity`.
pub async fn reconcile(si: Arc<ServiceIdentity>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("ServiceIdentity");
    if si.meta().deletion_timestamp.is_some() {
        // Revocation: the writer already dropped it; the Secret goes with it
        // by ownership.
        return Ok(Action::await_change());
    }
    let key = ObjKey::of(&*si);
    let Some(state) = ctx.world.load().identities.get(&key).cloned() else {
        // Not in a computed world yet: the writer reconciles us when it is.
        ctx.dirty.notify_one();
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    if let Some(verdict) = &state.excluded {
        set_status(&ctx, &si, verdict, None).await?;
        return Ok(Action::requeue(RESYNC));
    }
    let id = match si.spiffe_id() {
        Ok(id) => id,
        Err(e) => {
            set_status(&ctx, &si, &Verdict::not_ready(Reason::InvalidSpec, e), None).await?;
            return Ok(Action::requeue(RESYNC));
        }
    };
    let overlap = si
        .rotation_overlap()
        .unwrap_or(crate::names::DEFAULT_ROTATION_OVERLAP);
    let secret_key = ObjKey::new(&key.namespace, si.secret_name());

    let Some(secret) = ctx.secrets.get(&secret_key) else {
        return create_secret(&ctx, &si, &key, &secret_key, &id).await;
    };
    if secret.controller_uid.as_deref() != si.metadata.uid.as_deref() {
        let v = Verdict::not_ready(
            Reason::SecretConflict,
            format!(
                "Secret {secret_key} exists and is not controlled by this ServiceIdentity (set spec.secretName to another name)"
            ),
        );
        set_status(&ctx, &si, &v, None).await?;
        return Ok(Action::requeue(RESYNC));
    }
    delete_stale_secrets(&ctx, &si, &secret_key).await?;

    // The id file follows spec.path.
    if secret.id.as_deref() != Some(id.as_str()) {
        let patch = serde_json::json!({
            "data": { SECRET_ID_KEY: ByteString(format!("{id}\n").into_bytes()) }
        });
        let written = secrets_api(&ctx, &key.namespace)
            .patch(&secret_key.name, &params(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube(format!(
                "updating the id of Secret {secret_key}"
            )))?;
        ctx.secrets.record(&written);
        return Ok(Action::requeue(Duration::from_millis(100)));
    }

    let status = si.status.clone().unwrap_or_default();
    let rotate_value = si
        .annotations()
        .get(ROTATE_ANNOTATION)
        .cloned()
        .unwrap_or_default();

    // 3. record what a committed rotation left on the Secret before
    // anything else (a crash may have come between its two writes): the
    // replaced key must be in status before a later commit overwrites the
    // Secret's note of it.
    let now = Timestamp::now();
    let mut previous_keys = status.previous_keys.clone();
    let mut last_rotate_value = status.last_rotate_value.clone();
    if let Some((k, expires)) = &secret.previous
        && *expires > now
    {
        push_previous(&mut previous_keys, k, *expires);
    }
    if secret.staged.is_none()
        && let Some(done) = &secret.rotation
    {
        last_rotate_value = done.clone();
    }
    if previous_keys != status.previous_keys || last_rotate_value != status.last_rotate_value {
        let fields = StatusFields {
            key_id: secret.current.as_ref().ok().map(|k| k.kid().to_owned()),
            previous_keys,
            last_rotate_value,
        };
        let verdict = if state.published {
            Verdict::ready()
        } else {
            Verdict::not_ready(Reason::BundlePending, "recording a completed rotation")
        };
        set_status(&ctx, &si, &verdict, Some(fields)).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }

    // 2. commit a staged key once every bundle carries it.
    if let Some(staged) = &secret.staged {
        return match staged {
            Ok(k) if state.staged_published && state.staged_kid.as_deref() == Some(k.kid()) => {
                commit(&ctx, &si, &secret, &state, overlap).await
            }
            Ok(_) => Ok(Action::requeue(Duration::from_secs(30))),
            Err(e) => {
                // A damaged staged key: drop it and start again.
                tracing::warn!(secret = %secret_key, "discarding staged key: {e}");
                let patch = serde_json::json!({"data": { SECRET_STAGED_KEY: null }});
                let written = secrets_api(&ctx, &key.namespace)
                    .patch(&secret_key.name, &params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::kube(format!("updating Secret {secret_key}")))?;
                ctx.secrets.record(&written);
                Ok(Action::requeue(Duration::from_millis(100)))
            }
        };
    }

    // 1. stage a new key for a new rotate value.
    if !rotate_value.is_empty() && rotate_value != last_rotate_value {
        return stage(&ctx, &si, &key, &secret, &rotate_value).await;
    }

    // Status.
    previous_keys.retain(|p| p.expires_at.0 > now);
    let verdict = match &secret.current {
        Err(e) => Verdict::not_ready(
            Reason::InvalidKey,
            format!(
                "Secret {secret_key}: {e}; rotate to replace it (kubectl annotate serviceidentity {} spiffile.io/rotate=\"$(date -Is)\" --overwrite)",
                key.name
            ),
        ),
        Ok(_) if state.too_large.is_some() => Verdict::not_ready(
            Reason::BundleTooLarge,
            state.too_large.clone().unwrap_or_default(),
        ),
        Ok(_) if state.published => Verdict::ready(),
        Ok(k) => Verdict::not_ready(
            Reason::BundlePending,
            format!(
                "waiting for ConfigMap {}/spiffile-bundle to carry key {}",
                key.namespace,
                k.kid()
            ),
        ),
    };
    let fields = StatusFields {
        key_id: secret.current.as_ref().ok().map(|k| k.kid().to_owned()),
        previous_keys,
        last_rotate_value,
    };
    set_status(&ctx, &si, &verdict, Some(fields)).await?;
    let next = status
        .previous_keys
        .iter()
        .map(|p| p.expires_at.0)
        .filter(|t| *t > now)
        .min()
        .map(|t| until(t) + Duration::from_secs(1));
    Ok(Action::requeue(next.map_or(RESYNC, |n| n.min(RESYNC))))
}

fn until(t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
}

fn push_previous(
    list: &mut Vec<PreviousKey>,
    key: &spiffile_bundle::PublicKey,
    expires: Timestamp,
) {
    let known = list
        .iter()
        .any(|p| parse_jwk(&p.jwk).is_ok_and(|k| k.kid() == key.kid()));
    if !known {
        list.push(PreviousKey {
            jwk: key.to_jwk().to_string(),
            expires_at: Time(expires),
        });
    }
}

fn secrets_api(ctx: &Context, ns: &str) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), ns)
}

fn owner_reference(si: &ServiceIdentity) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", crate::names::GROUP, crate::names::VERSION),
        kind: "ServiceIdentity".into(),
        name: si.name_any(),
        uid: si.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

async fn create_secret(
    ctx: &Context,
    si: &ServiceIdentity,
    key: &ObjKey,
    secret_key: &ObjKey,
    id: &spiffile_id::SpiffeId,
) -> Result<Action, Error> {
    let (pem, public) = spiffile_provision::generate_service_key()?;
    let bytes = growth().identity_overhead + id.as_str().len();
    if let Err(why) = ctx.reserve(key, si.trust_domain(), bytes, public.kid()) {
        set_status(
            ctx,
            si,
            &Verdict::not_ready(Reason::BundleTooLarge, why),
            None,
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            )])),
            owner_references: Some(vec![owner_reference(si)]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                SECRET_ID_KEY.to_owned(),
                ByteString(format!("{id}\n").into_bytes()),
            ),
            (
                SECRET_KEY_KEY.to_owned(),
                ByteString(pem.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    };
    let api = secrets_api(ctx, &key.namespace);
    match api
        .create(
            &PostParams {
                field_manager: Some(MANAGED_BY.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(created) => {
            ctx.secrets.record(&created);
            ctx.metrics.key_created();
            ctx.dirty.notify_one();
            tracing::info!(identity = %key, id = %id, kid = public.kid(), "key created");
            ctx.event(
                si,
                false,
                "KeyCreated",
                format!(
                    "generated key {} into Secret {}",
                    public.kid(),
                    secret_key.name
                ),
            )
            .await;
            Ok(Action::requeue(RESYNC))
        }
        Err(e) if is_conflict(&e) => {
            ctx.release(key);
            // Ours but not in the cache yet, or someone else's.
            let existing = api
                .get(&secret_key.name)
                .await
                .map_err(Error::kube(format!("reading Secret {secret_key}")))?;
            if SecretView::of(&existing).controller_uid.as_deref() == si.metadata.uid.as_deref()
                && existing.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
            {
                ctx.secrets.record(&existing);
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            let v = Verdict::not_ready(
                Reason::SecretConflict,
                format!(
                    "Secret {secret_key} exists and is not managed by this ServiceIdentity (set spec.secretName to another name, or delete that Secret)"
                ),
            );
            set_status(ctx, si, &v, None).await?;
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            ctx.release(key);
            Err(Error::Kube {
                action: format!("creating Secret {secret_key}"),
                source: e,
            })
        }
    }
}

/// A Secret this identity controls under a name it no longer uses
/// (`spec.secretName` changed) is deleted: its key must not stay valid.
async fn delete_stale_secrets(
    ctx: &Context,
    si: &ServiceIdentity,
    current: &ObjKey,
) -> Result<(), Error> {
    let uid = si.metadata.uid.as_deref();
    for view in ctx.secrets.all() {
        if view.key.namespace == current.namespace
            && view.key != *current
            && view.controller_uid.as_deref() == uid
            && uid.is_some()
        {
            match secrets_api(ctx, &view.key.namespace)
                .delete(&view.key.name, &Default::default())
                .await
            {
                Ok(_) => {
                    tracing::info!(secret = %view.key, "deleted the Secret of a former spec.secretName")
                }
                Err(e) if crate::error::is_not_found(&e) => {}
                Err(e) => {
                    return Err(Error::Kube {
                        action: format!("deleting Secret {}", view.key),
                        source: e,
                    });
                }
            }
        }
    }
    Ok(())
}

async fn stage(
    ctx: &Context,
    si: &ServiceIdentity,
    key: &ObjKey,
    secret: &SecretView,
    rotate_value: &str,
) -> Result<Action, Error> {
    let (pem, public) = spiffile_provision::generate_service_key()?;
    if let Err(why) = ctx.reserve(key, si.trust_domain(), growth().key, public.kid()) {
        let v = Verdict::not_ready(Reason::BundleTooLarge, format!("rotation deferred: {why}"));
        set_status(ctx, si, &v, None).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": secret.resource_version,
            "annotations": { ROTATION_ANNOTATION: rotate_value },
        },
        "data": { SECRET_STAGED_KEY: ByteString(pem.as_bytes().to_vec()) },
    });
    match secrets_api(ctx, &key.namespace)
        .patch(&secret.key.name, &params(), &Patch::Merge(&patch))
        .await
    {
        Ok(written) => {
            ctx.secrets.record(&written);
            ctx.dirty.notify_one();
            tracing::info!(identity = %key, kid = public.kid(), rotate = rotate_value, "rotation staged");
            ctx.event(
                si,
                false,
                "RotationStarted",
                format!(
                    "staged key {} for rotate value {rotate_value:?}; it replaces the current key once every bundle carries it",
                    public.kid()
                ),
            )
            .await;
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        Err(e) => {
            ctx.release(key);
            if is_conflict(&e) {
                // The Secret changed meanwhile: look again.
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(Error::Kube {
                action: format!("staging a key in Secret {}", secret.key),
                source: e,
            })
        }
    }
}

async fn commit(
    ctx: &Context,
    si: &ServiceIdentity,
    view: &SecretView,
    state: &IdentityState,
    overlap: Duration,
) -> Result<Action, Error> {
    let api = secrets_api(ctx, &view.key.namespace);
    // The index holds no private keys: read the staged one.
    let mut secret = api
        .get(&view.key.name)
        .await
        .map_err(Error::kube(format!("reading Secret {}", view.key)))?;
    let fresh = SecretView::of(&secret);
    let staged_kid = match &fresh.staged {
        Some(Ok(k)) => k.kid().to_owned(),
        _ => return Ok(Action::requeue(Duration::from_millis(200))),
    };
    if state.staged_kid.as_deref() != Some(staged_kid.as_str()) {
        // Not the key every bundle was seen to carry: wait for the writer.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let rotation = fresh.rotation.clone().unwrap_or_default();
    let expires = Timestamp::now()
        .checked_add(SignedDuration::try_from(overlap).unwrap_or(SignedDuration::from_hours(24)))
        .unwrap_or(Timestamp::MAX);
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    let Some(staged_pem) = data.remove(SECRET_STAGED_KEY) else {
        return Ok(Action::requeue(Duration::from_millis(200)));
    };
    data.insert(SECRET_KEY_KEY.to_owned(), staged_pem);
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match &fresh.current {
        Ok(old) => {
            annotations.insert(PREVIOUS_JWK_ANNOTATION.to_owned(), old.to_jwk().to_string());
            annotations.insert(PREVIOUS_EXPIRES_ANNOTATION.to_owned(), expires.to_string());
        }
        Err(_) => {
            annotations.remove(PREVIOUS_JWK_ANNOTATION);
            annotations.remove(PREVIOUS_EXPIRES_ANNOTATION);
        }
    }
    secret.metadata.managed_fields = None;
    let written = match api
        .replace(
            &view.key.name,
            &PostParams {
                field_manager: Some(MANAGED_BY.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(w) => w,
        Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(200))),
        Err(e) => {
            return Err(Error::Kube {
                action: format!("committing the rotation of Secret {}", view.key),
                source: e,
            });
        }
    };
    ctx.secrets.record(&written);
    ctx.metrics.rotation();
    ctx.dirty.notify_one();

    let status = si.status.clone().unwrap_or_default();
    let mut previous_keys = status.previous_keys.clone();
    if let Some((k, t)) = &fresh.previous {
        push_previous(&mut previous_keys, k, *t);
    }
    if let Ok(old) = &fresh.current {
        push_previous(&mut previous_keys, old, expires);
    }
    let now = Timestamp::now();
    previous_keys.retain(|p| p.expires_at.0 > now);
    let fields = StatusFields {
        key_id: Some(staged_kid.clone()),
        previous_keys,
        last_rotate_value: rotation.clone(),
    };
    set_status(ctx, si, &Verdict::ready(), Some(fields)).await?;
    let old_kid = fresh
        .current
        .as_ref()
        .map(|k| k.kid().to_owned())
        .unwrap_or_default();
    tracing::info!(identity = %ObjKey::of(si), old = old_kid, new = staged_kid, "key rotated");
    ctx.event(
        si,
        false,
        "KeyRotated",
        format!("key {staged_kid} replaced {old_kid}, which stays in the bundle until {expires}"),
    )
    .await;
    Ok(Action::requeue(
        overlap.min(RESYNC) + Duration::from_secs(1),
    ))
}

/// Status fields a reconcile knows; `None` keeps what the status has.
struct StatusFields {
    key_id: Option<String>,
    previous_keys: Vec<PreviousKey>,
    last_rotate_value: String,
}

/// Writes the status when it changed, with an Event when the reason changed.
async fn set_status(
    ctx: &Context,
    si: &ServiceIdentity,
    verdict: &Verdict,
    fields: Option<StatusFields>,
) -> Result<(), Error> {
    let old = si.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut new = ServiceIdentityStatus {
        spiffe_id: si.spiffe_id().map(|i| i.to_string()).unwrap_or_default(),
        ready: verdict.is_ready(),
        message: verdict.message.clone(),
        conditions: vec![ready_condition(
            verdict,
            si.metadata.generation,
            &old.conditions,
            now,
        )],
        observed_generation: si.metadata.generation,
        ..old.clone()
    };
    if let Some(f) = fields {
        new.key_id = f.key_id.unwrap_or_default();
        new.previous_keys = f.previous_keys;
        new.last_rotate_value = f.last_rotate_value;
    }
    if new == old {
        return Ok(());
    }
    // A new identity waiting for its first bundle write (a fraction of a
    // second) is not worth a status write of its own: Ready follows.
    if verdict.reason == Reason::BundlePending && old.conditions.is_empty() {
        return Ok(());
    }
    let value = serde_json::to_value(&new).map_err(|source| Error::Serialize {
        what: "a ServiceIdentity status".into(),
        source,
    })?;
    let patch = merge_patch_of(value, STATUS_FIELDS);
    let api: Api<ServiceIdentity> =
        Api::namespaced(ctx.client.clone(), &si.namespace().unwrap_or_default());
    match api
        .patch_status(&si.name_any(), &params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        // Deleted since the cache showed it (its namespace going, say):
        // there is no status left to write.
        Err(e) if crate::error::is_not_found(&e) => {
            tracing::debug!(identity = %ObjKey::of(si), "deleted before its status was written");
            return Ok(());
        }
        Err(e) => {
            return Err(Error::kube(format!(
                "updating the status of ServiceIdentity {}",
                ObjKey::of(si)
            ))(e));
        }
    }
    let old_reason = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone());
    if old_reason.as_deref() != Some(verdict.reason.as_str()) {
        // KeyCreated and KeyRotated tell the normal story; Ready is an Event
        // only when it ends a fault.
        let recovered = old_reason
            .as_deref()
            .is_some_and(|r| !matches!(r, "Ready" | "BundlePending" | "KeyPending"));
        if verdict.is_ready() && recovered {
            ctx.event(
                si,
                false,
                "Ready",
                format!("{} is ready again", new.spiffe_id),
            )
            .await;
        } else if !verdict.is_ready() && !verdict.reason.is_transient() {
            ctx.event(si, true, verdict.reason.as_str(), verdict.message.clone())
                .await;
        }
    }
    Ok(())
}

/// What happens after a failed reconcile: log, count, retry with a delay.
pub fn error_policy(si: Arc<ServiceIdentity>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_namespace_terminating() {
        // The namespace is being deleted, and the identity with it: its
        // deletion (or any change) brings it back here; no retry storm.
        tracing::debug!(identity = %ObjKey::of(&*si), "namespace terminating; left alone");
        return Action::await_change();
    }
    ctx.metrics.reconcile_error("ServiceIdentity");
    tracing::warn!(identity = %ObjKey::of(&*si), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
