//! ServiceIdentityClaims: delivered material validated and fanned out,
//! never written; the shared-namespace rule; trust domain conflicts.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use spiffile_operator::crd::{
    BundleSource, ClaimSource, DeliveredSource, ObjectKeyRef, ServiceIdentity,
    ServiceIdentityClaim, ServiceIdentityClaimSpec, ServiceIdentitySpec,
};
use support::{Env, Result, wait_for};

fn claim(name: &str, td: &str, cm: &str, cm_ns: &str) -> ServiceIdentityClaim {
    ServiceIdentityClaim::new(
        name,
        ServiceIdentityClaimSpec {
            trust_domain: td.into(),
            path: String::new(),
            secret_name: String::new(),
            source: ClaimSource {
                delivered: Some(DeliveredSource {
                    bundle_from: BundleSource {
                        secret_ref: None,
                        config_map_ref: Some(ObjectKeyRef {
                            name: cm.into(),
                            key: String::new(),
                            namespace: cm_ns.into(),
                        }),
                    },
                }),
            },
        },
    )
}

/// Waits for the claim's Ready condition to have `reason`; returns its message.
async fn wait_reason(env: &Env, ns: &str, name: &str, reason: &str) -> Result<String> {
    let api: Api<ServiceIdentityClaim> = Api::namespaced(env.client.clone(), ns);
    wait_for(
        Duration::from_secs(30),
        &format!("claim {ns}/{name} reason {reason}"),
        || {
            let api = api.clone();
            async move {
                let c = api.get(name).await.ok()?;
                let st = c.status?;
                let cond = st.conditions.iter().find(|c| c.type_ == "Ready")?;
                (cond.reason == reason && st.ready == (reason == "Ready"))
                    .then(|| st.message.clone())
            }
        },
    )
    .await
}

async fn deliver_secret(env: &Env, ns: &str, name: &str, id: &[u8], key: &[u8]) -> Result<Secret> {
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("id".to_owned(), ByteString(id.to_vec())),
            ("key.pem".to_owned(), ByteString(key.to_vec())),
        ])),
        ..Default::default()
    };
    Ok(Api::<Secret>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_material_is_validated_fanned_out_and_never_written() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let shared = support::namespace(&env.client, &support::unique("shared"), &[]).await?;
    let ns = support::namespace(&env.client, &support::unique("tenant"), &[]).await?;
    let elsewhere = support::namespace(&env.client, &support::unique("other"), &[]).await?;
    let td = format!("{}.test", support::unique("ext"));
    let _op = support::Operator::start(&env, &shared.name, &[])?;

    // The authority: a root provisioned outside the cluster.
    let root = tempfile::tempdir()?;
    spiffile_provision::init_root(root.path(), &td)?;
    spiffile_provision::add_service(root.path(), "tenant-manager")?;
    let bundle = std::fs::read_to_string(root.path().join("bundle.json"))?;
    let svc = root.path().join("services/tenant-manager");
    let (id, key) = (
        std::fs::read(svc.join("id"))?,
        std::fs::read(svc.join("key.pem"))?,
    );

    // The courier delivers the bundle once into the shared namespace, the key per namespace.
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("shared-bundle".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("bundle.json".to_owned(), bundle.clone())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), &shared.name)
        .create(&PostParams::default(), &cm)
        .await?;
    let delivered = deliver_secret(&env, &ns.name, "tenant-manager-spiffile", &id, &key).await?;

    let claims: Api<ServiceIdentityClaim> = Api::namespaced(env.client.clone(), &ns.name);
    claims
        .create(
            &PostParams::default(),
            &claim("tenant-manager", &td, "shared-bundle", &shared.name),
        )
        .await?;
    wait_reason(&env, &ns.name, "tenant-manager", "Ready").await?;
    let c = claims.get("tenant-manager").await?;
    let st = c.status.unwrap_or_default();
    assert_eq!(st.spiffe_id, format!("spiffe://{td}/tenant-manager"));
    let fanned = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
        .get("spiffile-bundle")
        .await?;
    assert_eq!(
        fanned.data.as_ref().unwrap()[&format!("{td}.json")],
        bundle,
        "fanned out byte for byte"
    );

    // The delivered Secret is read, never written.
    let after = Api::<Secret>::namespaced(env.client.clone(), &ns.name)
        .get("tenant-manager-spiffile")
        .await?;
    assert_eq!(
        after.metadata.resource_version,
        delivered.metadata.resource_version
    );
    assert!(after.metadata.owner_references.is_none());

    // A delivered id that is another identity: Ready=False with the reason.
    claims
        .create(
            &PostParams::default(),
            &claim("billing", &td, "shared-bundle", &shared.name),
        )
        .await?;
    deliver_secret(&env, &ns.name, "billing-spiffile", &id, &key).await?;
    let msg = wait_reason(&env, &ns.name, "billing", "IdentityMismatch").await?;
    assert!(
        msg.contains("billing-spiffile") && msg.contains(&format!("spiffe://{td}/billing")),
        "{msg}"
    );

    // bundleFrom may not read from an arbitrary namespace.
    let cm2 = ConfigMap {
        metadata: ObjectMeta {
            name: Some("stolen".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("bundle.json".to_owned(), bundle.clone())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), &elsewhere.name)
        .create(&PostParams::default(), &cm2)
        .await?;
    let mut sneaky = claim("tenant-manager", &td, "stolen", &elsewhere.name);
    sneaky.metadata.name = Some("sneaky".into());
    sneaky.spec.path = "tenant-manager".into();
    sneaky.spec.secret_name = "tenant-manager-spiffile".into();
    claims.create(&PostParams::default(), &sneaky).await?;
    let msg = wait_reason(&env, &ns.name, "sneaky", "ForbiddenNamespace").await?;
    assert!(msg.contains(&elsewhere.name), "{msg}");

    // The authority rotates; the courier redelivers; the fan-out follows.
    spiffile_provision::rotate_service(
        root.path(),
        "tenant-manager",
        spiffile_provision::OldKeys::Keep,
    )?;
    let bundle2 = std::fs::read_to_string(root.path().join("bundle.json"))?;
    let mut cm = Api::<ConfigMap>::namespaced(env.client.clone(), &shared.name)
        .get("shared-bundle")
        .await?;
    cm.data = Some(BTreeMap::from([(
        "bundle.json".to_owned(),
        bundle2.clone(),
    )]));
    Api::<ConfigMap>::namespaced(env.client.clone(), &shared.name)
        .replace("shared-bundle", &PostParams::default(), &cm)
        .await?;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let key_name = format!("{td}.json");
    wait_for(
        Duration::from_secs(10),
        "the redelivered bundle fanned out",
        || {
            let (cms, key_name, bundle2) = (cms.clone(), key_name.clone(), bundle2.clone());
            async move {
                let cm = cms.get("spiffile-bundle").await.ok()?;
                (cm.data?.get(&key_name)? == &bundle2).then_some(())
            }
        },
    )
    .await?;

    // A ServiceIdentity in the claimed trust domain: a conflict, not a merge.
    let sis: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    let si = ServiceIdentity::new(
        "intruder",
        ServiceIdentitySpec {
            trust_domain: td.clone(),
            path: String::new(),
            secret_name: String::new(),
            rotation_overlap: String::new(),
        },
    );
    sis.create(&PostParams::default(), &si).await?;
    let msg = wait_for(
        Duration::from_secs(20),
        "the identity's trust domain conflict",
        || {
            let sis = sis.clone();
            async move {
                let st = sis.get("intruder").await.ok()?.status?;
                let c = st.conditions.iter().find(|c| c.type_ == "Ready")?;
                (c.reason == "TrustDomainConflict" && !st.ready).then(|| st.message.clone())
            }
        },
    )
    .await?;
    assert!(msg.contains("trust domain conflict"), "{msg}");
    assert!(
        Api::<Secret>::namespaced(env.client.clone(), &ns.name)
            .get_opt("intruder-spiffile")
            .await?
            .is_none(),
        "no key is issued in a claimed trust domain"
    );
    // The claim keeps working.
    wait_reason(&env, &ns.name, "tenant-manager", "Ready").await?;
    let fanned = cms.get("spiffile-bundle").await?;
    assert_eq!(fanned.data.unwrap()[&key_name], bundle2);
    Ok(())
}
