//! The mutating admission webhook (`/inject-pod`): pods that opt in get the
//! identity Secret and the bundle ConfigMap mounted whole and read-only, and
//! the three `SPIFFILE_*` variables.
//!
//! Beyond upstream: the key volume's files are mode 0400 (`defaultMode`;
//! upstream leaves Kubernetes' 0644), with an admission warning when a
//! container runs as non-root without an `fsGroup` (kubelet then cannot
//! make the file readable by it), and the webhook's certificate is
//! hot-reloaded from its files.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, Pod, SecretVolumeSource, Volume, VolumeMount,
};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::crd::{IdentityObject, ServiceIdentity, ServiceIdentityClaim};
use crate::error::is_not_found;
use crate::metrics::Metrics;
use crate::names::{
    BUNDLE_CONFIGMAP, BUNDLE_MOUNT_PATH, BUNDLE_VOLUME, ENV_BUNDLE_FILE, ENV_DIR, ENV_ID_FILE,
    ENV_KEY_FILE, IDENTITY_ANNOTATION, IDENTITY_MOUNT_PATH, IDENTITY_VOLUME, INJECT_ANNOTATION,
    INJECTED_ANNOTATION, KEY_VOLUME_MODE, SECRET_ID_KEY, SECRET_KEY_KEY, bundle_key,
};

/// Which identity a pod asks for: `spiffile.io/identity`, else its service
/// account (`default` when unset) with `spiffile.io/inject: "true"`.
pub fn requested_identity(pod: &Pod) -> Option<String> {
    let annotations = pod.metadata.annotations.as_ref()?;
    if annotations.get(INJECTED_ANNOTATION).map(String::as_str) == Some("true") {
        return None;
    }
    if let Some(name) = annotations
        .get(IDENTITY_ANNOTATION)
        .filter(|n| !n.is_empty())
    {
        return Some(name.clone());
    }
    if annotations.get(INJECT_ANNOTATION).map(String::as_str) == Some("true") {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        return Some(sa);
    }
    None
}

fn configured_by_hand(c: &Container) -> bool {
    c.env
        .iter()
        .flatten()
        .any(|e| [ENV_ID_FILE, ENV_KEY_FILE, ENV_BUNDLE_FILE, ENV_DIR].contains(&e.name.as_str()))
}

fn inject_container(c: &mut Container, bundle_file: &str) {
    if configured_by_hand(c) {
        return;
    }
    let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
    for (name, path) in [
        (IDENTITY_VOLUME, IDENTITY_MOUNT_PATH),
        (BUNDLE_VOLUME, BUNDLE_MOUNT_PATH),
    ] {
        if !mounts.iter().any(|m| m.mount_path == path) {
            mounts.push(VolumeMount {
                name: name.into(),
                mount_path: path.into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    let env = c.env.get_or_insert_with(Vec::new);
    for (name, value) in [
        (
            ENV_ID_FILE,
            format!("{IDENTITY_MOUNT_PATH}/{SECRET_ID_KEY}"),
        ),
        (
            ENV_KEY_FILE,
            format!("{IDENTITY_MOUNT_PATH}/{SECRET_KEY_KEY}"),
        ),
        (ENV_BUNDLE_FILE, bundle_file.to_owned()),
    ] {
        env.push(EnvVar {
            name: name.into(),
            value: Some(value),
            value_from: None,
        });
    }
}

/// Mutates `pod` for the identity whose Secret is `secret_name` in
/// `trust_domain`; returns admission warnings.
pub fn mutate(pod: &mut Pod, secret_name: &str, trust_domain: &str) -> Vec<String> {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == IDENTITY_VOLUME) {
        volumes.push(Volume {
            name: IDENTITY_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name.into()),
                default_mode: Some(KEY_VOLUME_MODE),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if !volumes.iter().any(|v| v.name == BUNDLE_VOLUME) {
        volumes.push(Volume {
            name: BUNDLE_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: BUNDLE_CONFIGMAP.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    // One data key per trust domain, named explicitly: identities of other
    // trust domains in the namespace never change this pod's file.
    let bundle_file = format!("{BUNDLE_MOUNT_PATH}/{}", bundle_key(trust_domain));
    for c in spec.containers.iter_mut() {
        inject_container(c, &bundle_file);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        inject_container(c, &bundle_file);
    }

    let mut warnings = Vec::new();
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    if fs_group.is_none() {
        let pod_user = spec.security_context.as_ref().and_then(|s| s.run_as_user);
        let pod_nonroot = spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root)
            .unwrap_or(false);
        let non_root = spec.containers.iter().any(|c| {
            let sc = c.security_context.as_ref();
            let user = sc.and_then(|s| s.run_as_user).or(pod_user);
            let nonroot = sc.and_then(|s| s.run_as_non_root).unwrap_or(pod_nonroot);
            user.is_some_and(|u| u != 0) || (nonroot && user.is_none())
        });
        if non_root {
            warnings.push(format!(
                "spiffile: the key file is mode 0400 and owned by root; set spec.securityContext.fsGroup so a non-root container can read {IDENTITY_MOUNT_PATH}/{SECRET_KEY_KEY}"
            ));
        }
    }
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(INJECTED_ANNOTATION.into(), "true".into());
    warnings
}

/// What the handler needs.
#[derive(Clone)]
pub struct Webhook {
    /// The API client (identities are read live, not from a cache, so a
    /// pod created right after its identity is admitted).
    pub client: kube::Client,
    /// Metrics.
    pub metrics: Metrics,
}

/// Resolves a name as a `ServiceIdentity`, then as a claim: its Secret and
/// trust domain. `Ok(None)` when neither exists.
async fn resolve(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, String)>, kube::Error> {
    match Api::<ServiceIdentity>::namespaced(client.clone(), ns)
        .get(name)
        .await
    {
        Ok(si) => return Ok(Some((si.secret_name(), si.spec.trust_domain.clone()))),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    match Api::<ServiceIdentityClaim>::namespaced(client.clone(), ns)
        .get(name)
        .await
    {
        Ok(c) => Ok(Some((c.secret_name(), c.spec.trust_domain.clone()))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Answers one AdmissionReview.
pub async fn admit(hook: &Webhook, review: AdmissionReview<Pod>) -> AdmissionReview<DynamicObject> {
    let req: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            hook.metrics.webhook_request("error");
            return AdmissionResponse::invalid(e.to_string()).into_review();
        }
    };
    let response = AdmissionResponse::from(&req);
    let (Some(pod), Operation::Create) = (req.object.as_ref(), &req.operation) else {
        hook.metrics.webhook_request("skipped");
        return response.into_review();
    };
    let Some(name) = requested_identity(pod) else {
        hook.metrics.webhook_request("skipped");
        return response.into_review();
    };
    let ns = req
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    match resolve(&hook.client, &ns, &name).await {
        Ok(Some((secret_name, trust_domain))) => {
            let mut mutated = pod.clone();
            let warnings = mutate(&mut mutated, &secret_name, &trust_domain);
            let (Ok(before), Ok(after)) =
                (serde_json::to_value(pod), serde_json::to_value(&mutated))
            else {
                hook.metrics.webhook_request("error");
                return response
                    .deny("spiffile: cannot serialize the pod")
                    .into_review();
            };
            let patch = json_patch::diff(&before, &after);
            match response.with_patch(patch) {
                Ok(mut r) => {
                    if !warnings.is_empty() {
                        r.warnings = Some(warnings);
                    }
                    hook.metrics.webhook_request("mutated");
                    tracing::info!(namespace = %ns, identity = %name, "pod injected");
                    r.into_review()
                }
                Err(e) => {
                    hook.metrics.webhook_request("error");
                    AdmissionResponse::from(&req)
                        .deny(format!("spiffile: {e}"))
                        .into_review()
                }
            }
        }
        Ok(None) => {
            hook.metrics.webhook_request("denied");
            response
                .deny(format!(
                    "pod requests spiffile identity {name:?} but no ServiceIdentity or ServiceIdentityClaim with that name exists in namespace {ns:?}"
                ))
                .into_review()
        }
        Err(e) => {
            hook.metrics.webhook_request("error");
            tracing::warn!(error = %e, "webhook: cannot read the identity");
            response
                .deny(format!("spiffile: cannot look up identity {name:?}: {e}"))
                .into_review()
        }
    }
}

/// The webhook's routes.
pub fn router(hook: Arc<Webhook>) -> axum::Router {
    use axum::Json;
    use axum::extract::State;
    axum::Router::new()
        .route(
            "/inject-pod",
            axum::routing::post(
                |State(hook): State<Arc<Webhook>>, Json(review): Json<AdmissionReview<Pod>>| async move {
                    Json(admit(&hook, review).await)
                },
            ),
        )
        .with_state(hook)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec};

    fn pod(annotations: &[(&str, &str)], containers: Vec<Container>) -> Pod {
        let mut p = Pod::default();
        p.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p.spec = Some(PodSpec {
            containers,
            ..Default::default()
        });
        p
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn opt_in_annotations() {
        let p = pod(&[("spiffile.io/identity", "billing")], vec![]);
        assert_eq!(requested_identity(&p).as_deref(), Some("billing"));
        let mut p = pod(&[("spiffile.io/inject", "true")], vec![]);
        assert_eq!(requested_identity(&p).as_deref(), Some("default"));
        p.spec.as_mut().unwrap().service_account_name = Some("orders".into());
        assert_eq!(requested_identity(&p).as_deref(), Some("orders"));
        assert_eq!(
            requested_identity(&pod(&[("spiffile.io/inject", "false")], vec![])),
            None
        );
        let done = pod(
            &[
                ("spiffile.io/identity", "x"),
                ("spiffile.io/injected", "true"),
            ],
            vec![],
        );
        assert_eq!(requested_identity(&done), None);
    }

    #[test]
    fn mutation_mounts_whole_volumes_read_only_with_0400_keys() {
        let mut hand = container("hand");
        hand.env = Some(vec![EnvVar {
            name: "SPIFFILE_DIR".into(),
            value: Some("/x".into()),
            value_from: None,
        }]);
        let mut p = pod(
            &[("spiffile.io/identity", "billing")],
            vec![container("app"), hand],
        );
        let warnings = mutate(&mut p, "billing-spiffile", "example.org");
        assert!(warnings.is_empty());
        let spec = p.spec.as_ref().unwrap();
        let volumes = spec.volumes.as_ref().unwrap();
        let secret = volumes[0].secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("billing-spiffile"));
        assert_eq!(secret.default_mode, Some(0o400));
        assert!(secret.items.is_none());
        assert_eq!(
            volumes[1].config_map.as_ref().unwrap().name,
            "spiffile-bundle"
        );
        let app = &spec.containers[0];
        let mounts = app.volume_mounts.as_ref().unwrap();
        assert!(
            mounts
                .iter()
                .all(|m| m.read_only == Some(true) && m.sub_path.is_none())
        );
        let env: Vec<_> = app
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("SPIFFILE_ID_FILE", "/var/run/spiffile/identity/id"),
                ("SPIFFILE_KEY_FILE", "/var/run/spiffile/identity/key.pem"),
                (
                    "SPIFFILE_BUNDLE_FILE",
                    "/var/run/spiffile/bundle/example.org.json"
                ),
            ]
        );
        // The container configured by hand is left alone.
        assert_eq!(spec.containers[1].env.as_ref().unwrap().len(), 1);
        assert!(spec.containers[1].volume_mounts.is_none());
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()["spiffile.io/injected"],
            "true"
        );
        // Idempotent on volumes.
        mutate(&mut p, "billing-spiffile", "example.org");
        assert_eq!(p.spec.as_ref().unwrap().volumes.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn non_root_without_fs_group_is_warned() {
        let mut p = pod(
            &[("spiffile.io/identity", "billing")],
            vec![container("app")],
        );
        p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
            run_as_user: Some(1000),
            ..Default::default()
        });
        let w = mutate(&mut p.clone(), "s", "example.org");
        assert_eq!(w.len(), 1, "{w:?}");
        p.spec
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .fs_group = Some(2000);
        assert!(mutate(&mut p, "s", "example.org").is_empty());
    }
}
