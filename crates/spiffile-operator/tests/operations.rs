//! Operations against a real API server: crash safety under SIGKILL in the
//! middle of a rotation burst, leader election between two replicas,
//! graceful shutdown.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use spiffile_bundle::Bundle;
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentitySpec};
use support::{Env, Result, wait_for};

fn identity(name: &str, td: &str) -> ServiceIdentity {
    ServiceIdentity::new(
        name,
        ServiceIdentitySpec {
            trust_domain: td.into(),
            path: String::new(),
            secret_name: String::new(),
            rotation_overlap: "1h".into(),
        },
    )
}

async fn all_ready(env: &Env, ns: &str, n: usize, rotate: Option<&str>) -> Result {
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), ns);
    wait_for(
        Duration::from_secs(90),
        &format!("{n} identities Ready in {ns}"),
        || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                let ok = list.items.len() == n
                    && list.items.iter().all(|si| {
                        si.status.as_ref().is_some_and(|st| {
                            st.ready && rotate.is_none_or(|r| st.last_rotate_value == r)
                        })
                    });
                ok.then_some(())
            }
        },
    )
    .await
}

/// Every kid currently in a Secret's key.pem, by SPIFFE ID, and whether a
/// staged key is present.
async fn secret_keys(env: &Env, ns: &str) -> Result<(BTreeMap<String, String>, bool, Vec<Secret>)> {
    let list = Api::<Secret>::namespaced(env.client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=spiffile-operator"))
        .await?;
    let mut keys = BTreeMap::new();
    let mut staged = false;
    for s in &list.items {
        let data = support::secret_data(s);
        let id = String::from_utf8_lossy(&data["id"]).trim().to_owned();
        let kid = spiffile_provision::public_key_of_pem(&data["key.pem"])?
            .kid()
            .to_owned();
        staged |= data.contains_key("next-key.pem");
        keys.insert(id, kid);
    }
    Ok((keys, staged, list.items))
}

async fn bundle(env: &Env, ns: &str, td: &str) -> Result<Option<Bundle>> {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), ns)
        .get_opt("spiffile-bundle")
        .await?;
    let Some(text) = cm
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(&format!("{td}.json")))
    else {
        return Ok(None);
    };
    Ok(Some(Bundle::from_json(text.as_bytes())?))
}

fn binds(b: &Bundle, id: &str, kid: &str) -> bool {
    id.parse()
        .ok()
        .and_then(|id| b.keys(&id))
        .is_some_and(|ks| ks.iter().any(|k| k.kid() == kid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_in_a_rotation_burst_loses_no_key() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let env = Arc::new(env);
    let ns = support::namespace(&env.client, &support::unique("crash"), &[]).await?;
    let td = format!("{}.test", support::unique("crash"));
    const N: usize = 12;
    let mut op = support::Operator::start(&env, &ns.name, &[])?;
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    for i in 0..N {
        api.create(
            &PostParams::default(),
            &identity(&format!("svc-{i:02}"), &td),
        )
        .await?;
    }
    all_ready(&env, &ns.name, N, None).await?;

    // A monitor: whatever moment it looks, every key a Secret holds is in
    // the bundle (Secrets are read first: a key published before it was
    // committed stays published for the overlap).
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<BTreeSet<(String, String)>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let monitor = {
        let (env, ns, td, stop, seen, violations) = (
            env.clone(),
            ns.name.clone(),
            td.clone(),
            stop.clone(),
            seen.clone(),
            violations.clone(),
        );
        tokio::spawn(async move {
            let mut samples = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if let (Ok((keys, _, _)), Ok(Some(b))) =
                    (secret_keys(&env, &ns).await, bundle(&env, &ns, &td).await)
                {
                    samples += 1;
                    for (id, kid) in keys {
                        if !binds(&b, &id, &kid) {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("{id} signs with {kid}, absent from the bundle"));
                        }
                        seen.lock().unwrap().insert((id, kid));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        })
    };

    // The burst: five rotations of every identity, as fast as the API takes them.
    let burst = {
        let api = api.clone();
        tokio::spawn(async move {
            for round in 0..5 {
                for i in 0..N {
                    let patch = serde_json::json!({"metadata": {"annotations": {"spiffile.io/rotate": format!("round-{round}")}}});
                    let _ = api
                        .patch(
                            &format!("svc-{i:02}"),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    // SIGKILL once rotations are both committed and staged (in flight).
    let log = op.log.clone();
    wait_for(Duration::from_secs(20), "rotations under way", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ok = text.matches("key rotated").count() >= 2
            && text.matches("rotation staged").count() >= 6;
        async move { ok.then_some(()) }
    })
    .await?;
    op.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _op2 = support::Operator::start(&env, &ns.name, &[])?;
    burst.await?;
    all_ready(&env, &ns.name, N, Some("round-4")).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the last bundle write land
    stop.store(true, Ordering::Relaxed);
    let samples = monitor.await?;
    assert!(samples > 20, "the monitor looked only {samples} times");
    let v = violations.lock().unwrap().clone();
    assert!(
        v.is_empty(),
        "a bundle missed a live key:\n{}",
        v.join("\n")
    );

    // No key lost: every key a Secret ever held is still bound (1h overlap),
    // and status lists the rotated-out ones.
    let b = bundle(&env, &ns.name, &td).await?.ok_or("no bundle")?;
    for (id, kid) in seen.lock().unwrap().iter() {
        assert!(
            binds(&b, id, kid),
            "{id}'s key {kid} was lost from the bundle"
        );
    }
    let list = api.list(&ListParams::default()).await?;
    for si in &list.items {
        let st = si.status.clone().unwrap_or_default();
        assert!(
            !st.previous_keys.is_empty(),
            "{} rotated but lists no previous key",
            st.spiffe_id
        );
        for p in &st.previous_keys {
            let k = spiffile_operator::secrets::parse_jwk(&p.jwk)?;
            assert!(
                binds(&b, &st.spiffe_id, k.kid()),
                "previous key {} of {} not in the bundle",
                k.kid(),
                st.spiffe_id
            );
        }
    }
    // No Secret orphaned or half-rotated: one per identity, owned by it, no staged key.
    let (keys, staged, secrets) = secret_keys(&env, &ns.name).await?;
    assert_eq!(keys.len(), N);
    assert!(!staged, "a staged key was left behind");
    let uids: BTreeSet<_> = list
        .items
        .iter()
        .filter_map(|s| s.metadata.uid.clone())
        .collect();
    for s in &secrets {
        let owner = s
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.controller == Some(true)));
        assert!(
            owner.is_some_and(|o| uids.contains(&o.uid)),
            "orphaned Secret {:?}",
            s.metadata.name
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_writer_and_takeover() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(&env.client, &support::unique("ha"), &[]).await?;
    let td = format!("{}.test", support::unique("ha"));
    let mut a = support::Operator::start(&env, &ns.name, &[])?;
    let leader_of = |op: &support::Operator| op.metric("spiffile_operator_leader", "") == 1.0;
    wait_for(Duration::from_secs(20), "the first replica to lead", || {
        let ok = leader_of(&a);
        async move { ok.then_some(()) }
    })
    .await?;
    let mut b = support::Operator::start(&env, &ns.name, &[])?;
    wait_for(
        Duration::from_secs(20),
        "the second replica to be ready",
        || {
            let ok = b.get("/readyz").map(|(c, _)| c == 200).unwrap_or(false);
            async move { ok.then_some(()) }
        },
    )
    .await?;

    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    for i in 0..3 {
        api.create(&PostParams::default(), &identity(&format!("svc-{i}"), &td))
            .await?;
    }
    all_ready(&env, &ns.name, 3, None).await?;
    assert!(leader_of(&a) && !leader_of(&b));
    // The follower wrote nothing at all.
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let n = b.metric(
            "spiffile_operator_api_requests_total",
            &format!("method=\"{method}\""),
        );
        assert_eq!(n, 0.0, "the follower sent {n} {method} requests");
    }
    assert!(a.metric("spiffile_operator_keys_created_total", "") >= 3.0);

    // The leader dies without releasing its lease: the follower takes over
    // within the lease time (4 s here) plus one retry.
    let killed = Instant::now();
    a.kill();
    wait_for(Duration::from_secs(12), "the follower to take over", || {
        let ok = leader_of(&b);
        async move { ok.then_some(()) }
    })
    .await?;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(8), "takeover took {took:?}");
    api.create(&PostParams::default(), &identity("svc-after", &td))
        .await?;
    all_ready(&env, &ns.name, 4, None).await?;

    // Graceful shutdown: exit 0 and the lease released for the next replica.
    let status = b.terminate()?;
    assert!(status.success(), "{status}");
    let lease = Api::<Lease>::namespaced(env.client.clone(), &ns.name)
        .get("spiffile-operator.spiffile.io")
        .await?;
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(holder.is_empty(), "the lease is still held by {holder:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_being_deleted_is_left_alone() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    // The Lease lives elsewhere: the namespace deleted is only the identities'.
    let home = support::namespace(&env.client, &support::unique("home"), &[]).await?;
    let doomed = support::namespace(&env.client, &support::unique("doomed"), &[]).await?;
    let td = format!("{}.test", support::unique("doomed"));
    let op = support::Operator::start(&env, &home.name, &[])?;
    const N: usize = 40;
    let api: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &doomed.name);
    for i in 0..N {
        api.create(
            &PostParams::default(),
            &identity(&format!("svc-{i:02}"), &td),
        )
        .await?;
    }
    all_ready(&env, &doomed.name, N, None).await?;

    // The namespace controller deletes the Secrets and the ConfigMap while
    // the identities still exist: the operator must not fight it (each
    // recreation is refused with NamespaceTerminating) in a retry loop.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    namespaces.delete(&doomed.name, &Default::default()).await?;
    wait_for(
        Duration::from_secs(120),
        &format!("namespace {} gone", doomed.name),
        || {
            let namespaces = namespaces.clone();
            let name = doomed.name.clone();
            async move {
                namespaces
                    .get_opt(&name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = op.metric("spiffile_operator_reconcile_errors_total", "")
        + op.metric("spiffile_operator_configmap_write_errors_total", "");
    let log = std::fs::read_to_string(&op.log)?;
    // The operator's retry warnings: "reconcile failed; retrying", "bundle
    // ConfigMap write failed; retrying in 1 s".
    let retries = log
        .lines()
        .filter(|l| l.contains("failed; retrying"))
        .count();
    assert!(
        failures == 0.0 && retries == 0,
        "{failures} failed reconciles or writes, {retries} retries logged while {} was deleted:\n{}",
        doomed.name,
        op.log_tail()
    );
    Ok(())
}
