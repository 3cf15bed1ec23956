//! `deploy/operator.yaml` applies to a real API server, and the RBAC it
//! grants is enough: the operator runs as its service account
//! (impersonated) through issuance, rotation, a claim and revocation, and
//! is never refused.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentityClaim};
use support::{Result, wait_for};

const OPERATOR_YAML: &str = include_str!("../../../deploy/operator.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_apply_and_their_rbac_is_enough() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let system = support::fresh_namespace(&env.client, "spiffile-system")
        .await
        .map_err(|e| format!("fresh namespace: {e}"))?;
    support::apply_yaml(&env.client, "spiffile-system", OPERATOR_YAML).await?;
    let app = support::namespace(&env.client, &support::unique("app"), &[]).await?;

    // A kubeconfig that acts as the operator's service account.
    let mut kc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&env.kubeconfig)?)?;
    for user in kc["users"].as_array_mut().ok_or("no users")? {
        user["user"]["as"] = "system:serviceaccount:spiffile-system:spiffile-operator".into();
    }
    let dir = tempfile::tempdir()?;
    let as_sa = dir.path().join("kubeconfig");
    std::fs::write(&as_sa, serde_json::to_string(&kc)?)?;
    // The impersonation is real: what the role does not grant is refused.
    let sa_client = support::client(&as_sa).await?;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::all(sa_client.clone())
        .list(&Default::default())
        .await;
    assert!(
        pods.is_err_and(|e| e.to_string().contains("forbidden")),
        "the service account may list pods"
    );
    let other_lease =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(sa_client, "default")
            .list(&Default::default())
            .await;
    assert!(
        other_lease.is_err(),
        "the service account may read Leases outside its namespace"
    );
    let op = support::Operator::start_with(&as_sa, "spiffile-system", &[])?;

    let td = format!("{}.test", support::unique("rbac"));
    let ext = format!("{}.test", support::unique("rbacext"));
    support::apply_yaml(
        &env.client,
        &app.name,
        &format!("apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {{name: api}}\nspec: {{trustDomain: {td}, secretName: api-id, rotationOverlap: 2s}}\n"),
    )
    .await?;
    let sis: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &app.name);
    let ready = |rotated: bool| {
        let sis = sis.clone();
        async move {
            let st = sis.get("api").await.ok()?.status?;
            (st.ready && (!rotated || st.last_rotate_value == "now")).then_some(())
        }
    };
    wait_for(Duration::from_secs(30), "api Ready", || ready(false)).await?;
    let patch = serde_json::json!({"metadata": {"annotations": {"spiffile.io/rotate": "now"}}});
    sis.patch("api", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for(Duration::from_secs(30), "api rotated", || ready(true)).await?;
    // spec.secretName moves: the new Secret is issued, the old one deleted.
    let patch = serde_json::json!({"spec": {"secretName": "api-id-2"}});
    sis.patch("api", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &app.name);
    wait_for(Duration::from_secs(30), "the Secret renamed", || {
        let secrets = secrets.clone();
        async move {
            (secrets.get_opt("api-id-2").await.ok()?.is_some()
                && secrets.get_opt("api-id").await.ok()?.is_none())
            .then_some(())
        }
    })
    .await?;

    // A claim reading its bundle from the operator's namespace.
    let root = tempfile::tempdir()?;
    spiffile_provision::init_root(root.path(), &ext)?;
    spiffile_provision::add_service(root.path(), "worker")?;
    let svc = root.path().join("services/worker");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("shared".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "bundle.json".to_owned(),
            std::fs::read_to_string(root.path().join("bundle.json"))?,
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), "spiffile-system")
        .create(&PostParams::default(), &cm)
        .await?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("worker-spiffile".into()),
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
    secrets.create(&PostParams::default(), &secret).await?;
    support::apply_yaml(
        &env.client,
        &app.name,
        &format!("apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentityClaim\nmetadata: {{name: worker}}\nspec:\n  trustDomain: {ext}\n  source: {{delivered: {{bundleFrom: {{configMapRef: {{name: shared, namespace: spiffile-system}}}}}}}}\n"),
    )
    .await?;
    let claims: Api<ServiceIdentityClaim> = Api::namespaced(env.client.clone(), &app.name);
    wait_for(Duration::from_secs(30), "the claim Ready", || {
        let claims = claims.clone();
        async move { claims.get("worker").await.ok()?.status?.ready.then_some(()) }
    })
    .await?;

    // Revocation.
    sis.delete("api", &Default::default()).await?;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &app.name);
    let key = format!("{td}.json");
    wait_for(Duration::from_secs(10), "api revoked", || {
        let (cms, key) = (cms.clone(), key.clone());
        async move {
            let d = cms
                .get("spiffile-bundle")
                .await
                .ok()?
                .data
                .unwrap_or_default();
            (!d.contains_key(&key)).then_some(())
        }
    })
    .await?;

    let log = std::fs::read_to_string(&op.log)?;
    // An RBAC refusal names the user (`User "system:serviceaccount:…" cannot
    // …`); other 403s, such as an Event refused in a namespace an earlier
    // test is deleting, are not about this role.
    let refused = log
        .lines()
        .filter(|l| {
            l.contains("system:serviceaccount:spiffile-system:spiffile-operator")
                && l.contains("cannot")
        })
        .collect::<Vec<_>>();
    assert!(
        refused.is_empty(),
        "the operator was refused by RBAC:\n{}",
        refused.join("\n")
    );
    assert_eq!(
        op.metric("spiffile_operator_reconcile_errors_total", ""),
        0.0,
        "{}",
        op.log_tail()
    );
    drop(system);
    Ok(())
}
