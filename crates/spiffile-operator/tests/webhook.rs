//! The pod-injection webhook registered with a real API server
//! (`clientConfig.url` on loopback with a `caBundle`), serving TLS from
//! files it follows while they are renewed.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, PostParams};
use rustls::pki_types::{CertificateDer, ServerName};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentitySpec};
use support::{Mounted, Result, wait_for};

struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

fn ca() -> Result<Ca> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "spiffile webhook test CA");
    let key = rcgen::KeyPair::generate()?;
    let pem = params.self_signed(&key)?.pem();
    Ok(Ca { params, key, pem })
}

/// A serving certificate for 127.0.0.1 signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca) -> Result<(String, String)> {
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    let key = rcgen::KeyPair::generate()?;
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    Ok((params.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
}

/// The certificate the webhook presents now.
async fn served_certificate(port: u16, ca_pem: &str) -> Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no certificate")?;
    Ok(certs[0].clone().into_owned())
}

struct WebhookGuard {
    api: Api<MutatingWebhookConfiguration>,
    name: String,
}

impl Drop for WebhookGuard {
    fn drop(&mut self) {
        let (api, name) = (self.api.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(api.delete(&name, &Default::default()));
            }
        })
        .join();
    }
}

fn pod(name: &str, annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.invalid/app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_injected_missing_identities_denied_and_certificates_reloaded() -> Result {
    let Some(env) = support::env().await else {
        return Ok(());
    };
    let ns = support::namespace(
        &env.client,
        &support::unique("inject"),
        &[("spiffile.io/injection", "enabled")],
    )
    .await?;
    let td = format!("{}.test", support::unique("hook"));

    let ca = ca()?;
    let certs = tempfile::tempdir()?;
    let mut mount = Mounted::new(certs.path())?;
    let (crt, key) = leaf(&ca)?;
    mount.update(
        &BTreeMap::from([
            ("tls.crt".into(), crt.into_bytes()),
            ("tls.key".into(), key.into_bytes()),
        ]),
        0o600,
    )?;
    let port = support::free_port();
    let op = support::Operator::start(
        &env,
        &ns.name,
        &[
            "--webhook",
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--webhook-cert-dir",
            certs.path().to_str().ok_or("path")?,
        ],
    )?;
    wait_for(
        Duration::from_secs(30),
        "the operator ready (webhook serving)",
        || {
            let ok = op.get("/readyz").map(|(c, _)| c == 200).unwrap_or(false);
            async move { ok.then_some(()) }
        },
    )
    .await?;

    // Register the webhook with the API server.
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(env.client.clone());
    let hook_name = support::unique("spiffile-inject");
    let config = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(hook_name.clone()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "inject.spiffile.io".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    ("spiffile.io/injection".into(), "enabled".into()),
                    ("kubernetes.io/metadata.name".into(), ns.name.clone()),
                ])),
                ..Default::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".into()]),
                operations: Some(vec!["CREATE".into()]),
                resources: Some(vec!["pods".into()]),
                scope: None,
            }]),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{port}/inject-pod")),
                ca_bundle: Some(ByteString(ca.pem.clone().into_bytes())),
                service: None,
            },
            timeout_seconds: Some(10),
            ..Default::default()
        }]),
    };
    hooks.create(&PostParams::default(), &config).await?;
    let _guard = WebhookGuard {
        api: hooks.clone(),
        name: hook_name,
    };

    let sis: Api<ServiceIdentity> = Api::namespaced(env.client.clone(), &ns.name);
    let si = ServiceIdentity::new(
        "billing",
        ServiceIdentitySpec {
            trust_domain: td.clone(),
            path: String::new(),
            secret_name: String::new(),
            rotation_overlap: String::new(),
        },
    );
    sis.create(&PostParams::default(), &si).await?;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &ns.name);
    wait_for(
        Duration::from_secs(30),
        "the default service account",
        || {
            let sas = sas.clone();
            async move { sas.get_opt("default").await.ok()?.map(|_| ()) }
        },
    )
    .await?;

    // A pod naming its identity is stored mutated (it stays Pending: no kubelet).
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let created = wait_for(
        Duration::from_secs(20),
        "the webhook to admit a pod",
        || {
            let pods = pods.clone();
            async move {
                pods.create(
                    &PostParams::default(),
                    &pod("app", &[("spiffile.io/identity", "billing")]),
                )
                .await
                .ok()
            }
        },
    )
    .await?;
    let stored = pods.get("app").await?;
    assert_eq!(stored.metadata.uid, created.metadata.uid);
    let spec = stored.spec.ok_or("no spec")?;
    let volumes = spec.volumes.unwrap_or_default();
    let secret = volumes
        .iter()
        .find(|v| v.name == "spiffile-identity")
        .and_then(|v| v.secret.clone())
        .ok_or("no identity volume")?;
    assert_eq!(secret.secret_name.as_deref(), Some("billing-spiffile"));
    assert_eq!(
        secret.default_mode,
        Some(0o400),
        "keys are 0400, not Kubernetes' 0644"
    );
    assert!(secret.items.is_none(), "the Secret is mounted whole");
    let cm = volumes
        .iter()
        .find(|v| v.name == "spiffile-bundle")
        .and_then(|v| v.config_map.clone())
        .ok_or("no bundle volume")?;
    assert_eq!(cm.name, "spiffile-bundle");
    let app = &spec.containers[0];
    let mounts = app.volume_mounts.clone().unwrap_or_default();
    let by_path: BTreeMap<_, _> = mounts.iter().map(|m| (m.mount_path.as_str(), m)).collect();
    for (path, volume) in [
        ("/var/run/spiffile/identity", "spiffile-identity"),
        ("/var/run/spiffile/bundle", "spiffile-bundle"),
    ] {
        let m = by_path.get(path).ok_or(format!("no mount at {path}"))?;
        assert_eq!(m.name, volume);
        assert_eq!(m.read_only, Some(true));
        assert!(
            m.sub_path.is_none(),
            "never subPath: updates would not propagate"
        );
    }
    let env_vars: BTreeMap<_, _> = app
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(
        env_vars["SPIFFILE_ID_FILE"],
        "/var/run/spiffile/identity/id"
    );
    assert_eq!(
        env_vars["SPIFFILE_KEY_FILE"],
        "/var/run/spiffile/identity/key.pem"
    );
    assert_eq!(
        env_vars["SPIFFILE_BUNDLE_FILE"],
        format!("/var/run/spiffile/bundle/{td}.json")
    );
    assert_eq!(
        stored.metadata.annotations.unwrap_or_default()["spiffile.io/injected"],
        "true"
    );

    // A pod naming an identity that does not exist is denied, by name.
    let denied = pods
        .create(
            &PostParams::default(),
            &pod("ghost", &[("spiffile.io/identity", "nobody")]),
        )
        .await
        .err()
        .ok_or("a pod with a missing identity was admitted")?;
    let text = denied.to_string();
    assert!(
        text.contains("\"nobody\"") && text.contains(&ns.name),
        "{text}"
    );

    // Renew the certificate the way cert-manager and kubelet do; the webhook serves it.
    let before = served_certificate(port, &ca.pem).await?;
    let (crt2, key2) = leaf(&ca)?;
    mount.update(
        &BTreeMap::from([
            ("tls.crt".into(), crt2.clone().into_bytes()),
            ("tls.key".into(), key2.into_bytes()),
        ]),
        0o600,
    )?;
    use rustls::pki_types::pem::PemObject;
    let want = CertificateDer::from_pem_slice(crt2.as_bytes())?.into_owned();
    assert_ne!(before, want);
    let ca_pem = ca.pem.clone();
    wait_for(
        Duration::from_secs(10),
        "the renewed certificate served",
        || {
            let (want, ca_pem) = (want.clone(), ca_pem.clone());
            async move { (served_certificate(port, &ca_pem).await.ok()? == want).then_some(()) }
        },
    )
    .await?;
    // The API server still reaches it.
    pods.create(
        &PostParams::default(),
        &pod("after-renewal", &[("spiffile.io/inject", "true")]),
    )
    .await
    .err()
    .map(|e| assert!(e.to_string().contains("\"default\""), "{e}"))
    .ok_or("a pod for the missing identity `default` was admitted")?;
    Ok(())
}
