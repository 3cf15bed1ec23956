//! Kubernetes' 1 MiB object limit: measured against the API server, and
//! enforced by the operator before a write would fail.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use spiffile_bundle::{Bundle, TrustDomain};
use spiffile_operator::crd::{
    BundleSource, ClaimSource, DeliveredSource, ObjectKeyRef, ServiceIdentity,
    ServiceIdentityClaim, ServiceIdentityClaimSpec, ServiceIdentitySpec,
};
use spiffile_operator::names::CONFIGMAP_LIMIT;
use support::{Env, Result, wait_for};

/// A bundle of `n` identities named like a real cluster's
/// (`spiffe://example.org/ns-NN/svc-NNNNN`, 36 bytes), `keys` keys each.
fn bundle_of(n: usize, keys: &[spiffile_bundle::PublicKey]) -> Result<String> {
    let mut b = Bundle::new("example.org".parse::<TrustDomain>()?);
    for i in 0..n {
        let id = format!("spiffe://example.org/ns-{:02}/svc-{i:05}", i % 100).parse()?;
        b.set_keys(&id, keys.to_vec())?;
    }
    Ok(b.to_json())
}

/// The most identities whose bundle fits one ConfigMap.
fn capacity(keys: &[spiffile_bundle::PublicKey]) -> Result<usize> {
    let (mut lo, mut hi) = (1usize, 20_000usize);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if bundle_of(mid, keys)?.len() <= CONFIGMAP_LIMIT {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

async fn put(
    env: &Env,
    ns: &str,
    name: &str,
    key: &str,
    value: String,
) -> std::result::Result<(), kube::Error> {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), value)])),
        ..Default::default()
    };
    let api = Api::<ConfigMap>::namespaced(env.client.clone(), ns);
    match api.get_opt(name).await? {
        Some(mut old) => {
            old.data = cm.data;
            api.replace(name, &PostParams::default(), &old)
                .await
                .map(|_| ())
        }
        None => api.create(&PostParams::default(), &cm).await.map(|_| ()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_configmap_holds_what_the_operator_computes() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("cap"), &[]).await?;
    let key1 = spiffile_provision::generate_service_key()?.1;
    let key2 = spiffile_provision::generate_service_key()?.1;
    let one = capacity(std::slice::from_ref(&key1))?;
    let two = capacity(&[key1.clone(), key2])?;
    eprintln!(
        "bundle capacity of one ConfigMap: {one} identities with one key each, {two} while every one of them rotates (36-byte SPIFFE IDs)"
    );
    // The API server agrees to the byte: N fits, N + 1 is refused.
    put(
        &env,
        &ns.name,
        "fits",
        "example.org.json",
        bundle_of(one, std::slice::from_ref(&key1))?,
    )
    .await?;
    let e = put(
        &env,
        &ns.name,
        "too-big",
        "example.org.json",
        bundle_of(one + 1, std::slice::from_ref(&key1))?,
    )
    .await
    .err()
    .ok_or("the API server accepted a bundle past the limit the operator enforces")?;
    assert!(e.to_string().contains("1048576"), "{e}");
    assert!(one > 2500, "capacity {one}");
    Ok(())
}

/// `doc` grown to exactly `len` bytes with a padding member (kept, unread).
fn padded(doc: &str, len: usize) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(doc)?;
    v["x-padding"] = serde_json::Value::String(String::new());
    let base = serde_json::to_string(&v)?.len();
    v["x-padding"] =
        serde_json::Value::String("x".repeat(len.checked_sub(base).ok_or("too small")?));
    let out = serde_json::to_string(&v)?;
    assert_eq!(out.len(), len);
    Ok(out)
}

fn reason_of<S>(
    status: Option<&S>,
    get: impl Fn(&S) -> (bool, Vec<(String, String)>),
) -> Option<(bool, String)> {
    let (ready, conds) = get(status?);
    conds
        .into_iter()
        .find(|(t, _)| t == "Ready")
        .map(|(_, r)| (ready, r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_past_the_limit_is_refused_with_a_reason_before_any_write_fails() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let shared = support::namespace(&env.client, &support::unique("limshared"), &[]).await?;
    let ns = support::namespace(&env.client, &support::unique("lim"), &[]).await?;
    let op = support::Operator::start(&env, &shared.name, &[])?;
    let td_b = format!("{}.test", support::unique("own"));
    let td_a = format!("{}.test", support::unique("ext"));
    let sis: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    let si = |name: &str| {
        ServiceIdentity::new(
            name,
            ServiceIdentitySpec {
                trust_domain: td_b.clone(),
                path: String::new(),
                secret_name: String::new(),
                rotation_overlap: String::new(),
            },
        )
    };
    let si_reason = |name: &'static str| {
        let sis = sis.clone();
        async move {
            let s = sis.get(name).await.ok()?;
            reason_of(s.status.as_ref(), |st| {
                (
                    st.ready,
                    st.conditions
                        .iter()
                        .map(|c| (c.type_.clone(), c.reason.clone()))
                        .collect(),
                )
            })
        }
    };
    sis.create(&PostParams::default(), &si("svc")).await?;
    wait_for(Duration::from_secs(30), "svc Ready", || async {
        (si_reason("svc").await? == (true, "Ready".into())).then_some(())
    })
    .await?;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let own_len =
        cms.get("spiffile-bundle").await?.data.ok_or("no data")?[&format!("{td_b}.json")].len();

    // An external trust domain delivered for a claim in the same namespace.
    let root = tempfile::tempdir()?;
    spiffile_provision::init_root(root.path(), &td_a)?;
    spiffile_provision::add_service(root.path(), "tenant")?;
    let doc = std::fs::read_to_string(root.path().join("bundle.json"))?;
    let svc = root.path().join("services/tenant");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("tenant-spiffile".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("id".to_owned(), ByteString(std::fs::read(svc.join("id"))?)),
            (
                "key.pem".to_owned(),
                ByteString(std::fs::read(svc.join("key.pem"))?),
            ),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await?;
    // Too big beside the namespace's own bundle: refused, the rest keeps working.
    put(
        &env,
        &shared.name,
        "delivered",
        "bundle.json",
        padded(&doc, CONFIGMAP_LIMIT - own_len + 10)?,
    )
    .await?;
    let claims: Api<ServiceIdentityClaim> = Api::namespaced(env.client.clone(), &ns.name);
    let claim = ServiceIdentityClaim::new(
        "tenant",
        ServiceIdentityClaimSpec {
            trust_domain: td_a.clone(),
            path: String::new(),
            secret_name: String::new(),
            source: ClaimSource {
                delivered: Some(DeliveredSource {
                    bundle_from: BundleSource {
                        secret_ref: None,
                        config_map_ref: Some(ObjectKeyRef {
                            name: "delivered".into(),
                            key: String::new(),
                            namespace: shared.name.clone(),
                        }),
                    },
                }),
            },
        },
    );
    claims.create(&PostParams::default(), &claim).await?;
    let claim_reason = || {
        let claims = claims.clone();
        async move {
            let c = claims.get("tenant").await.ok()?;
            reason_of(c.status.as_ref(), |st| {
                (
                    st.ready,
                    st.conditions
                        .iter()
                        .map(|c| (c.type_.clone(), c.reason.clone()))
                        .collect(),
                )
            })
        }
    };
    wait_for(
        Duration::from_secs(30),
        "the claim refused as too large",
        || async { (claim_reason().await? == (false, "BundleTooLarge".into())).then_some(()) },
    )
    .await?;
    let msg = claims
        .get("tenant")
        .await?
        .status
        .unwrap_or_default()
        .message;
    assert!(msg.contains("1048576") && msg.contains(&ns.name), "{msg}");
    let data = cms.get("spiffile-bundle").await?.data.ok_or("no data")?;
    assert!(!data.contains_key(&format!("{td_a}.json")));
    assert_eq!(si_reason("svc").await, Some((true, "Ready".into())));
    assert_eq!(
        op.metric(
            "spiffile_operator_configmap_write_errors_total",
            &format!("namespace=\"{}\"", ns.name)
        ),
        0.0,
        "a write failed"
    );

    // Nearly full but fitting: fanned out.
    put(
        &env,
        &shared.name,
        "delivered",
        "bundle.json",
        padded(&doc, CONFIGMAP_LIMIT - own_len - 100)?,
    )
    .await?;
    wait_for(Duration::from_secs(30), "the claim Ready", || async {
        (claim_reason().await? == (true, "Ready".into())).then_some(())
    })
    .await?;

    // A new identity would not fit: Ready=False before any write, no key issued.
    sis.create(&PostParams::default(), &si("svc2")).await?;
    wait_for(
        Duration::from_secs(30),
        "svc2 refused as too large",
        || async { (si_reason("svc2").await? == (false, "BundleTooLarge".into())).then_some(()) },
    )
    .await?;
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &ns.name);
    assert!(
        secrets.get_opt("svc2-spiffile").await?.is_none(),
        "a key was issued past the limit"
    );
    assert_eq!(
        op.metric(
            "spiffile_operator_configmap_write_errors_total",
            &format!("namespace=\"{}\"", ns.name)
        ),
        0.0,
        "a write failed"
    );

    // Room again: the waiting identity is issued without anyone touching it.
    put(&env, &shared.name, "delivered", "bundle.json", doc.clone()).await?;
    wait_for(
        Duration::from_secs(30),
        "svc2 Ready once there is room",
        || async { (si_reason("svc2").await? == (true, "Ready".into())).then_some(()) },
    )
    .await?;
    Ok(())
}
