//! Interchangeability with the upstream Go operator: the manifests of its
//! README apply unchanged and give the objects it describes; its CRD
//! validation holds; `kubectl get` shows its columns.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentityClaim};
use support::{Result, wait_for};

/// Upstream README, "spiffile-operator" and "Quick start".
const README_IDENTITY: &str = "apiVersion: spiffile.io/v1alpha1
kind: ServiceIdentity
metadata:
  name: billing
  namespace: shop
spec:
  trustDomain: example.org
";

/// Upstream README, "Multi-cluster".
const README_CLAIM: &str = "apiVersion: spiffile.io/v1alpha1
kind: ServiceIdentityClaim
metadata: { name: tenant-manager, namespace: shop }
spec:
  trustDomain: platform.example
  source:
    delivered:
      bundleFrom:
        configMapRef: { name: shared-bundle, namespace: spiffile-system }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_readme_manifests_apply_unchanged() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    // The README's names, literally.
    let shop = support::fresh_namespace(&env.client, "shop").await?;
    let system = support::fresh_namespace(&env.client, "spiffile-system").await?;
    let _op = support::Operator::start(&env, &system.name, &[])?;

    support::apply_yaml(&env.client, "default", README_IDENTITY).await?;
    support::apply_yaml(&env.client, "default", README_CLAIM).await?;

    // "The operator then maintains Secret billing-spiffile … ConfigMap spiffile-bundle … example.org.json"
    let sis: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), "shop");
    wait_for(Duration::from_secs(30), "billing Ready", || {
        let sis = sis.clone();
        async move { sis.get("billing").await.ok()?.status?.ready.then_some(()) }
    })
    .await?;
    let secret = Api::<Secret>::namespaced(env.client.clone(), "shop")
        .get("billing-spiffile")
        .await?;
    let data = support::secret_data(&secret);
    assert_eq!(data["id"], b"spiffe://example.org/billing\n");
    spiffile_provision::public_key_of_pem(&data["key.pem"])?;
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), "shop")
        .get("spiffile-bundle")
        .await?;
    let doc = spiffile_bundle::Bundle::from_json(
        cm.data.as_ref().ok_or("no data")?["example.org.json"].as_bytes(),
    )?;
    assert!(doc.contains(&"spiffe://example.org/billing".parse().unwrap()));

    // `kubectl get serviceidentities -n shop`: NAME, SPIFFE ID, READY, AGE.
    let req = http::Request::get("/apis/spiffile.io/v1alpha1/namespaces/shop/serviceidentities")
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())?;
    let table: serde_json::Value = env.client.request(req).await?;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .ok_or("no columns")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Name", "SPIFFE ID", "Ready", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "billing");
    assert_eq!(cells[1], "spiffe://example.org/billing");
    assert_eq!(cells[2], true);

    // The claim waits for its courier, as upstream's docs say.
    let claims: Api<ServiceIdentityClaim> = Api::namespaced(env.client.clone(), "shop");
    let msg = wait_for(
        Duration::from_secs(30),
        "the claim waiting for its Secret",
        || {
            let claims = claims.clone();
            async move {
                let st = claims.get("tenant-manager").await.ok()?.status?;
                (!st.ready && !st.message.is_empty()).then_some(st.message)
            }
        },
    )
    .await?;
    assert_eq!(
        msg,
        "waiting for secret \"tenant-manager-spiffile\" to be delivered"
    );
    // The courier delivers.
    let root = tempfile::tempdir()?;
    spiffile_provision::init_root(root.path(), "platform.example")?;
    spiffile_provision::add_service(root.path(), "tenant-manager")?;
    let bundle = std::fs::read_to_string(root.path().join("bundle.json"))?;
    let svc = root.path().join("services/tenant-manager");
    let shared = ConfigMap {
        metadata: ObjectMeta {
            name: Some("shared-bundle".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("bundle.json".to_owned(), bundle.clone())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), "spiffile-system")
        .create(&PostParams::default(), &shared)
        .await?;
    let key = Secret {
        metadata: ObjectMeta {
            name: Some("tenant-manager-spiffile".into()),
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
    Api::<Secret>::namespaced(env.client.clone(), "shop")
        .create(&PostParams::default(), &key)
        .await?;
    wait_for(Duration::from_secs(30), "the claim Ready", || {
        let claims = claims.clone();
        async move {
            claims
                .get("tenant-manager")
                .await
                .ok()?
                .status?
                .ready
                .then_some(())
        }
    })
    .await?;
    // Both trust domains side by side in the namespace's ConfigMap.
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), "shop");
    wait_for(
        Duration::from_secs(10),
        "both trust domains in spiffile-bundle",
        || {
            let cms = cms.clone();
            let bundle = bundle.clone();
            async move {
                let d = cms.get("spiffile-bundle").await.ok()?.data?;
                (d.get("platform.example.json") == Some(&bundle)
                    && d.contains_key("example.org.json"))
                .then_some(())
            }
        },
    )
    .await?;

    // "Key rotation is one command away": kubectl annotate … spiffile.io/rotate="$(date -Is)" --overwrite
    let before = sis.get("billing").await?.status.unwrap_or_default().key_id;
    let patch = serde_json::json!({"metadata": {"annotations": {"spiffile.io/rotate": "2026-12-01T12:00:00+00:00"}}});
    sis.patch(
        "billing",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    wait_for(Duration::from_secs(30), "billing rotated", || {
        let sis = sis.clone();
        let before = before.clone();
        async move {
            let st = sis.get("billing").await.ok()?.status?;
            (st.ready && st.key_id != before && st.previous_keys.len() == 1).then_some(())
        }
    })
    .await?;
    drop(shop);
    drop(system);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_enforces_upstreams_validation() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("valid"), &[]).await?;
    let refused = [
        // trustDomain pattern
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {name: a}\nspec: {trustDomain: Example.org}\n",
        // trustDomain required
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {name: b}\nspec: {path: x}\n",
        // path pattern
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {name: c}\nspec: {trustDomain: example.org, path: /x}\n",
        // rotationOverlap is a Go duration
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {name: d}\nspec: {trustDomain: example.org, rotationOverlap: 1d}\n",
        // exactly one source mode
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentityClaim\nmetadata: {name: e}\nspec: {trustDomain: example.org, source: {}}\n",
        // exactly one bundle source
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentityClaim\nmetadata: {name: f}\nspec: {trustDomain: example.org, source: {delivered: {bundleFrom: {}}}}\n",
    ];
    for yaml in refused {
        let r = support::apply_yaml(&env.client, &ns.name, yaml).await;
        assert!(r.is_err(), "accepted:\n{yaml}");
    }
    let accepted = [
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentity\nmetadata: {name: g}\nspec: {trustDomain: example.org, path: team/api, secretName: api-id, rotationOverlap: 1h30m}\n",
        "apiVersion: spiffile.io/v1alpha1\nkind: ServiceIdentityClaim\nmetadata: {name: h}\nspec: {trustDomain: example.org, source: {delivered: {bundleFrom: {secretRef: {name: s, key: b.json}}}}}\n",
    ];
    for yaml in accepted {
        support::apply_yaml(&env.client, &ns.name, yaml).await?;
    }
    Ok(())
}
