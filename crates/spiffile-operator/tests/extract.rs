//! `spiffile k8s extract`: a trust domain from the cluster into a root that
//! the library and the provisioning commands use as any other.

mod support;

use std::time::Duration;

use kube::api::{Api, PostParams};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentitySpec};
use support::{Result, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_writes_a_root_with_the_clusters_keys_and_never_overwrites() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let a = support::namespace(&env.client, &support::unique("exa"), &[]).await?;
    let b = support::namespace(&env.client, &support::unique("exb"), &[]).await?;
    let td = format!("{}.test", support::unique("extract"));
    let _op = support::Operator::start(&env, &a.name, &[])?;
    for (ns, name, path) in [
        (&a.name, "orders", ""),
        (&b.name, "billing", "team/billing"),
    ] {
        let si = ServiceIdentity::new(
            name,
            ServiceIdentitySpec {
                trust_domain: td.clone(),
                path: path.into(),
                secret_name: String::new(),
                rotation_overlap: String::new(),
            },
        );
        Api::<ServiceIdentity>::namespaced(env.client.clone(), ns)
            .create(&PostParams::default(), &si)
            .await?;
    }
    for (ns, name) in [(&a.name, "orders"), (&b.name, "billing")] {
        let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), ns);
        wait_for(Duration::from_secs(30), &format!("{name} Ready"), || {
            let api = api.clone();
            async move { api.get(name).await.ok()?.status?.ready.then_some(()) }
        })
        .await?;
    }
    // Both namespaces' bundles carry both identities once the writer caught up.
    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &a.name);
    let key = format!("{td}.json");
    wait_for(Duration::from_secs(10), "the bundle of both", || {
        let (cms, key) = (cms.clone(), key.clone());
        async move {
            let d = cms.get("spiffile-bundle").await.ok()?.data?;
            d.get(&key)?.contains("team/billing").then_some(())
        }
    })
    .await?;

    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let report = spiffile_operator::extract::extract(&env.client, &td, &root).await?;
    let mut written = report.written.clone();
    written.sort();
    assert_eq!(
        written,
        [
            format!("spiffe://{td}/orders"),
            format!("spiffe://{td}/team/billing")
        ]
    );
    let services = spiffile::provision::list_services(&root)?;
    assert_eq!(services.len(), 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("services/team/billing/key.pem"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The extracted keys are the cluster's: a token minted from the root
    // verifies against the cluster's bundle (the status keyID matches).
    let orders = spiffile::provision::load_identity(&root, "orders")?;
    let status = Api::<ServiceIdentity>::namespaced(env.client.clone(), &a.name)
        .get("orders")
        .await?
        .status
        .unwrap_or_default();
    assert_eq!(orders.kid(), Some(status.key_id.clone()));
    let billing = spiffile::provision::load_identity(&root, "team/billing")?;
    let token = orders.token(billing.id())?;
    assert_eq!(billing.verify(&token)?.id(), orders.id());

    // Never over an existing root.
    let again = spiffile_operator::extract::extract(&env.client, &td, &root).await;
    assert!(again.is_err_and(|e| e.to_string().contains("refusing to overwrite")));
    let missing =
        spiffile_operator::extract::extract(&env.client, "nobody.test", &dir.path().join("x"))
            .await;
    assert!(missing.is_err_and(|e| e.to_string().contains("nobody.test")));
    Ok(())
}
