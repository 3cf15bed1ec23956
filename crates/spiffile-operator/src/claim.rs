//! The `ServiceIdentityClaim` reconciler: validates the delivered material
//! and hands the bundle to the writer, which fans it out. It never writes or
//! deletes the claim's Secret.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use spiffile_bundle::Bundle;

use crate::context::Context;
use crate::crd::{IdentityObject, ObjectKeyRef, ServiceIdentityClaim, ServiceIdentityClaimStatus};
use crate::error::{Error, is_not_found};
use crate::names::{MANAGED_BY, SECRET_ID_KEY, SECRET_KEY_KEY};
use crate::secrets::ObjKey;
use crate::status::{Reason, Verdict, merge_patch_of, ready_condition};
use crate::world::ClaimOutcome;

const STATUS_FIELDS: &[&str] = &[
    "spiffeID",
    "keyID",
    "ready",
    "message",
    "conditions",
    "observedGeneration",
];

/// The delivered bundle document, or why it could not be had.
pub type Delivered = Result<(Vec<u8>, String), Verdict>;

/// The namespace a `bundleFrom` reference may be read from: the claim's own
/// or the shared-bundle namespace, nothing else (a claim must not make the
/// operator copy data out of arbitrary namespaces).
pub fn source_namespace(claim_ns: &str, referenced: &str, shared: &str) -> Result<String, Verdict> {
    if referenced.is_empty() || referenced == claim_ns {
        Ok(claim_ns.to_owned())
    } else if referenced == shared {
        Ok(referenced.to_owned())
    } else {
        Err(Verdict::not_ready(
            Reason::ForbiddenNamespace,
            format!(
                "bundleFrom may only reference this namespace or the shared-bundle namespace {shared:?}, not {referenced:?}"
            ),
        ))
    }
}

/// Validates delivered material (pure, for tests): the Secret's key parses,
/// its `id` is the claimed SPIFFE ID, the bundle parses, is for the claim's
/// trust domain, has the identity, and binds the delivered key.
pub fn validate(
    claim: &ServiceIdentityClaim,
    secret: Option<&Secret>,
    bundle: Delivered,
) -> ClaimOutcome {
    let invalid = |reason, msg: String| ClaimOutcome::Invalid(Verdict::not_ready(reason, msg));
    let id = match claim.spiffe_id() {
        Ok(id) => id,
        Err(e) => return invalid(Reason::InvalidSpec, e),
    };
    let name = claim.secret_name();
    let Some(secret) = secret else {
        return invalid(
            Reason::WaitingForSecret,
            format!("waiting for secret {name:?} to be delivered"),
        );
    };
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let key = match get(SECRET_KEY_KEY).map(spiffile_provision::public_key_of_pem) {
        None => {
            return invalid(
                Reason::InvalidSecret,
                format!("delivered secret {name:?}: it has no key.pem"),
            );
        }
        Some(Err(e)) => {
            return invalid(
                Reason::InvalidSecret,
                format!("delivered secret {name:?}: invalid key.pem: {e}"),
            );
        }
        Some(Ok(k)) => k,
    };
    let delivered_id = get(SECRET_ID_KEY)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .unwrap_or_default();
    if delivered_id != id.as_str() {
        return invalid(
            Reason::IdentityMismatch,
            format!(
                "delivered secret {name:?}: id {delivered_id:?} does not match claimed identity {:?}",
                id.as_str()
            ),
        );
    }
    let (doc, description) = match bundle {
        Ok(b) => b,
        Err(v) => return ClaimOutcome::Invalid(v),
    };
    let Ok(text) = String::from_utf8(doc) else {
        return invalid(Reason::InvalidBundle, format!("{description}: not UTF-8"));
    };
    let parsed = match Bundle::from_json_quiet(text.as_bytes()) {
        Ok(b) => b,
        Err(e) => return invalid(Reason::InvalidBundle, format!("{description}: {e}")),
    };
    if parsed.trust_domain().as_str() != claim.trust_domain() {
        return invalid(
            Reason::WrongTrustDomain,
            format!(
                "{description}: bundle is for trust domain {:?}, claim is for {:?}",
                parsed.trust_domain().as_str(),
                claim.trust_domain()
            ),
        );
    }
    let Some(keys) = parsed.keys(&id) else {
        return invalid(
            Reason::IdentityNotInBundle,
            format!(
                "{description}: bundle has no keys for {:?} — not provisioned at the authority yet",
                id.as_str()
            ),
        );
    };
    if !keys.iter().any(|k| k.kid() == key.kid()) {
        return invalid(
            Reason::KeyNotInBundle,
            format!(
                "{description}: the delivered key {} is not among the bundle's keys for {:?} (the Secret and the bundle are from different provisionings, or one of them is stale)",
                key.kid(),
                id.as_str()
            ),
        );
    }
    ClaimOutcome::Valid {
        kid: key.kid().to_owned(),
        doc: Arc::from(text),
    }
}

async fn fetch_bundle(ctx: &Context, claim: &ServiceIdentityClaim) -> Result<Delivered, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let Some(delivered) = &claim.spec.source.delivered else {
        return Ok(Err(Verdict::not_ready(
            Reason::NoSource,
            "spec.source.delivered is required (the only implemented source mode)",
        )));
    };
    let from = &delivered.bundle_from;
    let (kind, r): (&str, &ObjectKeyRef) = match (&from.secret_ref, &from.config_map_ref) {
        (Some(r), _) => ("secret", r),
        (None, Some(r)) => ("configmap", r),
        (None, None) => {
            return Ok(Err(Verdict::not_ready(
                Reason::NoSource,
                "spec.source.delivered.bundleFrom must reference a secret or a configmap",
            )));
        }
    };
    let source_ns = match source_namespace(&ns, &r.namespace, ctx.config.shared_namespace()) {
        Ok(n) => n,
        Err(v) => return Ok(Err(v)),
    };
    let description = format!("bundle {kind} {source_ns}/{} key {:?}", r.name, r.key());
    let waiting = || {
        Err(Verdict::not_ready(
            Reason::WaitingForBundle,
            format!("waiting for {description} to be delivered"),
        ))
    };
    let value: Option<Vec<u8>> = if kind == "secret" {
        match Api::<Secret>::namespaced(ctx.client.clone(), &source_ns)
            .get(&r.name)
            .await
        {
            Ok(s) => s.data.and_then(|mut d| d.remove(r.key())).map(|b| b.0),
            Err(e) if is_not_found(&e) => return Ok(waiting()),
            Err(e) => {
                return Err(Error::Kube {
                    action: format!("reading {description}"),
                    source: e,
                });
            }
        }
    } else {
        match Api::<ConfigMap>::namespaced(ctx.client.clone(), &source_ns)
            .get(&r.name)
            .await
        {
            Ok(c) => c
                .data
                .and_then(|mut d| d.remove(r.key()))
                .map(String::into_bytes),
            Err(e) if is_not_found(&e) => return Ok(waiting()),
            Err(e) => {
                return Err(Error::Kube {
                    action: format!("reading {description}"),
                    source: e,
                });
            }
        }
    };
    Ok(match value {
        Some(v) => Ok((v, description)),
        None => Err(Verdict::not_ready(
            Reason::InvalidBundle,
            format!("{description}: key not present"),
        )),
    })
}

/// Reconciles one claim.
pub async fn reconcile(
    claim: Arc<ServiceIdentityClaim>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("ServiceIdentityClaim");
    let key = ObjKey::of(&*claim);
    if claim.meta().deletion_timestamp.is_some() {
        ctx.set_claim_outcome(&key, None);
        return Ok(Action::await_change());
    }
    let secret_name = claim.secret_name();
    let secret = match Api::<Secret>::namespaced(ctx.client.clone(), &key.namespace)
        .get(&secret_name)
        .await
    {
        Ok(s) => Some(s),
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            return Err(Error::Kube {
                action: format!("reading Secret {}/{secret_name}", key.namespace),
                source: e,
            });
        }
    };
    let bundle = if secret.is_some() {
        fetch_bundle(&ctx, &claim).await?
    } else {
        Err(Verdict::not_ready(Reason::WaitingForSecret, String::new()))
    };
    let outcome = validate(&claim, secret.as_ref(), bundle);
    drop(secret); // the delivered private key is not kept
    ctx.set_claim_outcome(&key, Some(outcome.clone()));

    let state = ctx
        .world
        .load()
        .claims
        .get(&key)
        .cloned()
        .unwrap_or_default();
    let (verdict, kid) = match &outcome {
        ClaimOutcome::Invalid(v) => (v.clone(), None),
        ClaimOutcome::Valid { kid, .. } => {
            let v = match &state.excluded {
                Some(v) => v.clone(),
                None if state.published => Verdict::ready(),
                None => Verdict::not_ready(
                    Reason::BundlePending,
                    format!(
                        "waiting for ConfigMap {}/spiffile-bundle to carry the delivered bundle",
                        key.namespace
                    ),
                ),
            };
            (v, Some(kid.clone()))
        }
    };
    set_status(&ctx, &claim, &verdict, kid).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn set_status(
    ctx: &Context,
    claim: &ServiceIdentityClaim,
    verdict: &Verdict,
    kid: Option<String>,
) -> Result<(), Error> {
    let old = claim.status.clone().unwrap_or_default();
    let new = ServiceIdentityClaimStatus {
        spiffe_id: claim.spiffe_id().map(|i| i.to_string()).unwrap_or_default(),
        key_id: kid.unwrap_or_default(),
        ready: verdict.is_ready(),
        message: verdict.message.clone(),
        conditions: vec![ready_condition(
            verdict,
            claim.metadata.generation,
            &old.conditions,
            Timestamp::now(),
        )],
        observed_generation: claim.metadata.generation,
    };
    if new == old {
        return Ok(());
    }
    let value = serde_json::to_value(&new).map_err(|source| Error::Serialize {
        what: "a ServiceIdentityClaim status".into(),
        source,
    })?;
    let api: Api<ServiceIdentityClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let written = api
        .patch_status(
            &claim.name_any(),
            &PatchParams {
                field_manager: Some(MANAGED_BY.into()),
                ..Default::default()
            },
            &Patch::Merge(&merge_patch_of(value, STATUS_FIELDS)),
        )
        .await;
    match written {
        Ok(_) => {}
        // Deleted since the cache showed it: no status left to write.
        Err(e) if crate::error::is_not_found(&e) => {
            tracing::debug!(claim = %ObjKey::of(claim), "deleted before its status was written");
            return Ok(());
        }
        Err(e) => {
            return Err(Error::kube(format!(
                "updating the status of ServiceIdentityClaim {}",
                ObjKey::of(claim)
            ))(e));
        }
    }
    let old_reason = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone());
    if old_reason.as_deref() != Some(verdict.reason.as_str()) {
        if verdict.is_ready() {
            ctx.event(claim, false, "Ready", format!("{} is ready", new.spiffe_id))
                .await;
        } else if !verdict.reason.is_transient() {
            ctx.event(
                claim,
                true,
                verdict.reason.as_str(),
                verdict.message.clone(),
            )
            .await;
        }
    }
    Ok(())
}

/// Whether `claim` refers to the object `ns/name` (its Secret or its bundle).
pub fn refers_to(
    claim: &ServiceIdentityClaim,
    kind: &str,
    ns: &str,
    name: &str,
    shared: &str,
) -> bool {
    let claim_ns = claim.namespace().unwrap_or_default();
    if kind == "secret" && claim_ns == ns && claim.secret_name() == name {
        return true;
    }
    let Some(d) = &claim.spec.source.delivered else {
        return false;
    };
    let r = if kind == "secret" {
        d.bundle_from.secret_ref.as_ref()
    } else {
        d.bundle_from.config_map_ref.as_ref()
    };
    r.is_some_and(|r| {
        r.name == name && source_namespace(&claim_ns, &r.namespace, shared).is_ok_and(|n| n == ns)
    })
}

/// What happens after a failed reconcile.
pub fn error_policy(claim: Arc<ServiceIdentityClaim>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_namespace_terminating() {
        tracing::debug!(claim = %ObjKey::of(&*claim), "namespace terminating; left alone");
        return Action::await_change();
    }
    ctx.metrics.reconcile_error("ServiceIdentityClaim");
    tracing::warn!(claim = %ObjKey::of(&*claim), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BundleSource, ClaimSource, DeliveredSource, ServiceIdentityClaimSpec};
    use k8s_openapi::ByteString;

    fn claim() -> ServiceIdentityClaim {
        let mut c = ServiceIdentityClaim::new(
            "tenant",
            ServiceIdentityClaimSpec {
                trust_domain: "ext.test".into(),
                path: String::new(),
                secret_name: String::new(),
                source: ClaimSource {
                    delivered: Some(DeliveredSource {
                        bundle_from: BundleSource {
                            secret_ref: None,
                            config_map_ref: Some(ObjectKeyRef {
                                name: "b".into(),
                                key: String::new(),
                                namespace: String::new(),
                            }),
                        },
                    }),
                },
            },
        );
        c.metadata.namespace = Some("shop".into());
        c
    }

    fn secret(id: &str, pem: &[u8]) -> Secret {
        Secret {
            data: Some(
                [
                    ("id".to_owned(), ByteString(format!("{id}\n").into_bytes())),
                    ("key.pem".to_owned(), ByteString(pem.to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        }
    }

    fn bundle(td: &str, id: &str, key: &spiffile_bundle::PublicKey) -> Delivered {
        let mut b = Bundle::new(td.parse().unwrap());
        b.set_keys(&id.parse().unwrap(), vec![key.clone()]).unwrap();
        Ok((
            b.to_json().into_bytes(),
            "bundle configmap shop/b key \"bundle.json\"".into(),
        ))
    }

    fn reason(o: &ClaimOutcome) -> Option<Reason> {
        match o {
            ClaimOutcome::Invalid(v) => Some(v.reason),
            ClaimOutcome::Valid { .. } => None,
        }
    }

    #[test]
    fn each_fault_has_its_reason() {
        let c = claim();
        let id = "spiffe://ext.test/tenant";
        let (pem, key) = spiffile_provision::generate_service_key().unwrap();
        let (_, other) = spiffile_provision::generate_service_key().unwrap();
        let s = secret(id, pem.as_bytes());
        assert_eq!(
            reason(&validate(&c, Some(&s), bundle("ext.test", id, &key))),
            None
        );
        assert_eq!(
            reason(&validate(&c, None, bundle("ext.test", id, &key))),
            Some(Reason::WaitingForSecret)
        );
        let wrong = secret("spiffe://ext.test/mallory", pem.as_bytes());
        assert_eq!(
            reason(&validate(&c, Some(&wrong), bundle("ext.test", id, &key))),
            Some(Reason::IdentityMismatch)
        );
        let bad = secret(
            id,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert_eq!(
            reason(&validate(&c, Some(&bad), bundle("ext.test", id, &key))),
            Some(Reason::InvalidSecret)
        );
        assert_eq!(
            reason(&validate(
                &c,
                Some(&s),
                bundle("other.test", "spiffe://other.test/tenant", &key)
            )),
            Some(Reason::WrongTrustDomain)
        );
        assert_eq!(
            reason(&validate(
                &c,
                Some(&s),
                bundle("ext.test", "spiffe://ext.test/x", &key)
            )),
            Some(Reason::IdentityNotInBundle)
        );
        assert_eq!(
            reason(&validate(&c, Some(&s), bundle("ext.test", id, &other))),
            Some(Reason::KeyNotInBundle)
        );
        let junk: Delivered = Ok((b"{".to_vec(), "d".into()));
        assert_eq!(
            reason(&validate(&c, Some(&s), junk)),
            Some(Reason::InvalidBundle)
        );
    }

    #[test]
    fn only_own_or_shared_namespace() {
        assert_eq!(source_namespace("shop", "", "sys").unwrap(), "shop");
        assert_eq!(source_namespace("shop", "shop", "sys").unwrap(), "shop");
        assert_eq!(source_namespace("shop", "sys", "sys").unwrap(), "sys");
        let e = source_namespace("shop", "kube-system", "sys").unwrap_err();
        assert_eq!(e.reason, Reason::ForbiddenNamespace);
        assert!(e.message.contains("kube-system"));
    }

    #[test]
    fn errors_never_quote_the_delivered_key() {
        let c = claim();
        let s = secret(
            "spiffe://ext.test/tenant",
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n",
        );
        match validate(
            &c,
            Some(&s),
            Err(Verdict::not_ready(Reason::WaitingForBundle, "x")),
        ) {
            ClaimOutcome::Invalid(v) => assert!(!v.message.contains("c2VjcmV0"), "{}", v.message),
            ClaimOutcome::Valid { .. } => panic!("accepted"),
        }
    }
}
