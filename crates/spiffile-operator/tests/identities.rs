//! ServiceIdentities against a real API server: issuance, interop with our
//! library and the Python reference, rotation with overlap, revocation.

#[path = "../../../xtask/src/python.rs"]
#[allow(dead_code)]
mod python;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentitySpec};
use support::{Env, Mounted, Result, wait_for};

fn identity(name: &str, td: &str, overlap: &str) -> ServiceIdentity {
    ServiceIdentity::new(
        name,
        ServiceIdentitySpec {
            trust_domain: td.into(),
            path: String::new(),
            secret_name: String::new(),
            rotation_overlap: overlap.into(),
        },
    )
}

async fn wait_ready(env: &Env, ns: &str, name: &str) -> Result<ServiceIdentity> {
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), ns);
    wait_for(
        Duration::from_secs(30),
        &format!("ServiceIdentity {ns}/{name} Ready"),
        || {
            let api = api.clone();
            async move {
                let si = api.get(name).await.ok()?;
                let st = si.status.as_ref()?;
                let cond = st.conditions.iter().find(|c| c.type_ == "Ready")?;
                (st.ready && cond.status == "True" && cond.reason == "Ready").then_some(si)
            }
        },
    )
    .await
}

/// The volumes of one workload, laid out as kubelet does.
struct Workload {
    identity: Mounted,
    bundle: Mounted,
}

impl Workload {
    fn new(root: &std::path::Path, name: &str) -> Result<Self> {
        Ok(Self {
            identity: Mounted::new(&root.join(name).join("identity"))?,
            bundle: Mounted::new(&root.join(name).join("bundle"))?,
        })
    }

    async fn sync(&mut self, env: &Env, ns: &str, secret: &str) -> Result {
        let s = Api::<Secret>::namespaced(env.client.clone(), ns)
            .get(secret)
            .await?;
        let c = Api::<ConfigMap>::namespaced(env.client.clone(), ns)
            .get("spiffile-bundle")
            .await?;
        self.identity.update(&support::secret_data(&s), 0o400)?;
        self.bundle.update(&support::configmap_data(&c), 0o644)?;
        Ok(())
    }

    fn files(&self, td: &str) -> [std::path::PathBuf; 3] {
        [
            self.identity.path("id"),
            self.identity.path("key.pem"),
            self.bundle.path(&format!("{td}.json")),
        ]
    }

    fn load(&self, td: &str) -> Result<spiffile::Identity> {
        let [id, key, bundle] = self.files(td);
        Ok(spiffile::Identity::builder()
            .poll_interval(Duration::from_millis(50))
            .from_files(id, key, bundle)?)
    }
}

fn python_verifies(workload: &Workload, td: &str, token: &str) -> Result<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = python::ensure_venv(&root)?;
    let [id, key, bundle] = workload.files(td);
    let out = python::run_peer(
        &py,
        &root.join("xtask/peer/peer.py"),
        &[
            "verify",
            "--id-file",
            id.to_str().ok_or("path")?,
            "--key-file",
            key.to_str().ok_or("path")?,
            "--bundle-file",
            bundle.to_str().ok_or("path")?,
            token,
        ],
    )?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_billing_interoperate_from_mounted_volumes() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("shop"), &[]).await?;
    let td = format!("{}.test", support::unique("td"));
    let _op = support::Operator::start(&env, &ns.name, &[])?;
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    for name in ["orders", "billing"] {
        api.create(&PostParams::default(), &identity(name, &td, ""))
            .await?;
    }
    let orders_si = wait_ready(&env, &ns.name, "orders").await?;
    wait_ready(&env, &ns.name, "billing").await?;
    let status = orders_si.status.clone().unwrap_or_default();
    assert_eq!(status.spiffe_id, format!("spiffe://{td}/orders"));

    // The Secret: upstream's shape, owned, labelled.
    let secret = Api::<Secret>::namespaced(env.client.clone(), &ns.name)
        .get("orders-spiffile")
        .await?;
    let data = support::secret_data(&secret);
    assert_eq!(data["id"], format!("spiffe://{td}/orders\n").into_bytes());
    assert!(data["key.pem"].starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "spiffile-operator"
    );
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ServiceIdentity", Some(true))
    );
    assert_eq!(Some(&owner.uid), orders_si.metadata.uid.as_ref());

    let dir = tempfile::tempdir()?;
    let mut orders = Workload::new(dir.path(), "orders")?;
    let mut billing = Workload::new(dir.path(), "billing")?;
    orders.sync(&env, &ns.name, "orders-spiffile").await?;
    billing.sync(&env, &ns.name, "billing-spiffile").await?;
    let orders_id = orders.load(&td)?;
    let billing_id = billing.load(&td)?;
    assert_eq!(orders_id.kid(), Some(status.key_id.clone()));

    let token = orders_id.token(billing_id.id())?;
    let caller = billing_id.verify(&token)?;
    assert_eq!(caller.id(), orders_id.id());

    // The Python reference accepts it from the same files.
    let out = python_verifies(&billing, &td, &token)?;
    assert!(python::json_ok(&out), "the Python reference refused: {out}");
    assert!(out.contains(&format!("spiffe://{td}/orders")), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_overlaps_then_prunes_and_a_running_identity_follows() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("rot"), &[]).await?;
    let td = format!("{}.test", support::unique("td"));
    let _op = support::Operator::start(&env, &ns.name, &[])?;
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    api.create(&PostParams::default(), &identity("orders", &td, "4s"))
        .await?;
    api.create(&PostParams::default(), &identity("billing", &td, "4s"))
        .await?;
    let before = wait_ready(&env, &ns.name, "orders").await?;
    wait_ready(&env, &ns.name, "billing").await?;
    let old_kid = before.status.unwrap_or_default().key_id;

    let dir = tempfile::tempdir()?;
    let mut orders = Workload::new(dir.path(), "orders")?;
    let mut billing = Workload::new(dir.path(), "billing")?;
    orders.sync(&env, &ns.name, "orders-spiffile").await?;
    billing.sync(&env, &ns.name, "billing-spiffile").await?;
    let orders_id = orders.load(&td)?;
    let billing_id = billing.load(&td)?;
    let old_token = orders_id.token(billing_id.id())?;

    let patch = serde_json::json!({"metadata": {"annotations": {"spiffile.io/rotate": "2026-12-01T10:00:00Z"}}});
    api.patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let rotated = wait_for(
        Duration::from_secs(20),
        "the rotation recorded in status",
        || {
            let api = api.clone();
            async move {
                let si = api.get("orders").await.ok()?;
                let st = si.status.clone()?;
                (st.last_rotate_value == "2026-12-01T10:00:00Z" && st.ready).then_some(si)
            }
        },
    )
    .await?;
    let st = rotated.status.unwrap_or_default();
    assert_ne!(st.key_id, old_kid);
    assert_eq!(st.previous_keys.len(), 1);
    assert!(st.previous_keys[0].jwk.contains(&old_kid));

    // The bundle carries both keys during the overlap.
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
        .get("spiffile-bundle")
        .await?;
    let doc = spiffile_bundle::Bundle::from_json(
        cm.data.as_ref().unwrap()[&format!("{td}.json")].as_bytes(),
    )?;
    let mut kids: Vec<_> = doc
        .keys(&format!("spiffe://{td}/orders").parse()?)
        .unwrap()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    kids.sort();
    let mut want = vec![st.key_id.clone(), old_kid.clone()];
    want.sort();
    assert_eq!(kids, want);

    // Kubelet refreshes the volumes; the running identities follow.
    billing.sync(&env, &ns.name, "billing-spiffile").await?;
    orders.sync(&env, &ns.name, "orders-spiffile").await?;
    wait_for(
        Duration::from_secs(5),
        "orders' Identity to load the new key",
        || {
            let ok = orders_id.kid().as_deref() == Some(st.key_id.as_str());
            async move { ok.then_some(()) }
        },
    )
    .await?;
    let new_token = orders_id.token(billing_id.id())?;
    wait_for(
        Duration::from_secs(5),
        "billing to accept the new key",
        || {
            let ok = billing_id.verify(&new_token).is_ok();
            async move { ok.then_some(()) }
        },
    )
    .await?;
    assert!(
        billing_id.verify(&old_token).is_ok(),
        "the old key must verify during the overlap"
    );

    // After the overlap the old key is pruned from status and bundle.
    let api2 = api.clone();
    wait_for(
        Duration::from_secs(20),
        "the old key pruned from status",
        || {
            let api = api2.clone();
            async move {
                let si = api.get("orders").await.ok()?;
                si.status?.previous_keys.is_empty().then_some(())
            }
        },
    )
    .await?;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let key = format!("{td}.json");
    let old = old_kid.clone();
    wait_for(
        Duration::from_secs(10),
        "the old key pruned from the bundle",
        || {
            let cms = cms.clone();
            let key = key.clone();
            let old = old.clone();
            async move {
                let cm = cms.get("spiffile-bundle").await.ok()?;
                (!cm.data?.get(&key)?.contains(&old)).then_some(())
            }
        },
    )
    .await?;
    billing.sync(&env, &ns.name, "billing-spiffile").await?;
    let refused = Arc::new(billing_id);
    let t = old_token.clone();
    wait_for(
        Duration::from_secs(5),
        "billing to refuse the pruned key",
        || {
            let r = refused.verify(&t).is_err();
            async move { r.then_some(()) }
        },
    )
    .await?;
    assert!(refused.verify(&new_token).is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_identity_revokes_it_and_collects_its_secret() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("del"), &[]).await?;
    let td = format!("{}.test", support::unique("td"));
    let op = support::Operator::start(&env, &ns.name, &[])?;
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    api.create(&PostParams::default(), &identity("orders", &td, ""))
        .await?;
    api.create(&PostParams::default(), &identity("billing", &td, ""))
        .await?;
    wait_ready(&env, &ns.name, "orders").await?;
    wait_ready(&env, &ns.name, "billing").await?;
    let writes_before = op.metric(
        "spiffile_operator_configmap_writes_total",
        &format!("namespace=\"{}\"", ns.name),
    );

    api.delete("orders", &Default::default()).await?;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let key = format!("{td}.json");
    let id = format!("spiffe://{td}/orders");
    wait_for(Duration::from_secs(5), "orders to leave the bundle", || {
        let (cms, key, id) = (cms.clone(), key.clone(), id.clone());
        async move {
            let cm = cms.get("spiffile-bundle").await.ok()?;
            let doc: BTreeMap<String, String> = cm.data?;
            let text = doc.get(&key)?;
            (!text.contains(&id) && text.contains("billing")).then_some(())
        }
    })
    .await?;
    let writes_after = op.metric(
        "spiffile_operator_configmap_writes_total",
        &format!("namespace=\"{}\"", ns.name),
    );
    assert_eq!(
        writes_after - writes_before,
        1.0,
        "one write for one deletion"
    );

    // The garbage collector deletes the Secret it owned.
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &ns.name);
    wait_for(
        Duration::from_secs(90),
        "orders-spiffile garbage-collected",
        || {
            let secrets = secrets.clone();
            async move {
                secrets
                    .get_opt("orders-spiffile")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await?;
    assert!(secrets.get_opt("billing-spiffile").await?.is_some());
    Ok(())
}
