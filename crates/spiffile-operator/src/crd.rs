//! The two custom resources, `spiffile.io/v1alpha1` `ServiceIdentity` and
//! `ServiceIdentityClaim`, with the upstream operator's fields, names,
//! defaults and validation; `crds_yaml` prints the definitions generated
//! from these types (`spiffile-operator crds`, `deploy/crd.yaml`).
//!
//! What this operator adds to the schema is additive only: standard
//! `status.conditions` and `status.observedGeneration`, a pattern on
//! `rotationOverlap`, a length limit on `trustDomain`, and a CEL rule that a
//! `bundleFrom` names exactly one source. Every manifest the upstream README
//! shows applies unchanged.

// The field docs are the CRDs' descriptions, word for word upstream's
// (`<name>-spiffile` included), so rustdoc's HTML check does not apply.
#![allow(rustdoc::invalid_html_tags)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{DEFAULT_BUNDLE_KEY, SECRET_SUFFIX};

/// A workload identity the operator is the authority for: it generates the
/// key into a Secret, publishes the public key in every bundle of the trust
/// domain, rotates it on request and revokes it when the object is deleted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "spiffile.io",
    version = "v1alpha1",
    kind = "ServiceIdentity",
    namespaced,
    shortname = "svcid",
    status = "ServiceIdentityStatus",
    derive = "PartialEq",
    doc = "A spiffile workload identity whose key the operator generates, rotates and revokes.",
    printcolumn = r#"{"name":"SPIFFE ID","type":"string","jsonPath":".status.spiffeID"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIdentitySpec {
    /// SPIFFE trust domain, e.g. example.org.
    #[schemars(regex(pattern = r"^[a-z0-9._-]+$"), length(max = 255))]
    pub trust_domain: String,
    /// SPIFFE ID path (no leading slash). Defaults to the object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]+(/[a-zA-Z0-9._-]+)*$"))]
    pub path: String,
    /// Name of the identity Secret. Defaults to <name>-spiffile.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// How long rotated-out keys stay in the bundle (e.g. 24h; Go duration syntax). Defaults to 24h.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"))]
    pub rotation_overlap: String,
}

/// A rotated-out public key, kept in the bundle until `expiresAt`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKey {
    /// The public JWK, JSON-encoded.
    pub jwk: String,
    /// When the key is pruned from the trust bundle.
    pub expires_at: Time,
}

/// The observed state of a `ServiceIdentity`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIdentityStatus {
    /// The SPIFFE ID this identity has.
    #[serde(default, rename = "spiffeID", skip_serializing_if = "String::is_empty")]
    pub spiffe_id: String,
    /// The `kid` (RFC 7638 thumbprint) of the current key.
    #[serde(default, rename = "keyID", skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// The value of the spiffile.io/rotate annotation last acted on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_rotate_value: String,
    /// Rotated-out keys still in the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<PreviousKey>,
    /// Whether the Secret holds the key and every bundle of the namespace carries it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// Why the identity is not ready, when it is not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Standard conditions; `Ready` carries a machine-readable reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An identity whose authority lives outside the cluster: a courier delivers
/// the key Secret (`spec.secretName`) and the trust bundle; the operator
/// validates them and fans the bundle out, and never writes the Secret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "spiffile.io",
    version = "v1alpha1",
    kind = "ServiceIdentityClaim",
    namespaced,
    shortname = "svcidclaim",
    status = "ServiceIdentityClaimStatus",
    derive = "PartialEq",
    doc = "Binds an externally provisioned spiffile identity into a namespace; the operator validates and never writes its Secret.",
    printcolumn = r#"{"name":"SPIFFE ID","type":"string","jsonPath":".status.spiffeID"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message"}"#,
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIdentityClaimSpec {
    /// SPIFFE trust domain, e.g. example.org.
    #[schemars(regex(pattern = r"^[a-z0-9._-]+$"), length(max = 255))]
    pub trust_domain: String,
    /// SPIFFE ID path (no leading slash). Defaults to the object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]+(/[a-zA-Z0-9._-]+)*$"))]
    pub path: String,
    /// Rendezvous name, not a pointer: the agreed name at which the delivery mechanism must place the key Secret (data keys "id" and "key.pem") in this namespace; also the Secret pods mount. Defaults to <name>-spiffile. The Secret is externally owned: the operator only reads and validates it, never writes or deletes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// Where the identity material comes from.
    pub source: ClaimSource,
}

/// Where a claim's material comes from. Exactly one member must be set; new
/// source modes are added as new members, and whatever the mode the material
/// lands in the claim's Secret and the namespace's `spiffile-bundle`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.delivered)].filter(x, x).size() == 1").message("exactly one source mode must be set"))]
pub struct ClaimSource {
    /// Identity material is handed to the operator as Kubernetes objects by a courier (ESO, scripts, CI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<DeliveredSource>,
}

/// The delivered source: the key Secret at `spec.secretName`, the bundle
/// where `bundleFrom` points.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredSource {
    /// Externally delivered trust bundle document.
    pub bundle_from: BundleSource,
}

/// A reference to the delivered bundle document: one Secret or one ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.secretRef) != has(self.configMapRef)").message("exactly one of secretRef and configMapRef must be set"))]
pub struct BundleSource {
    /// A Secret holding the bundle document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectKeyRef>,
    /// A ConfigMap holding the bundle document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ObjectKeyRef>,
}

/// One data key of a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKeyRef {
    /// The object's name.
    pub name: String,
    /// The data key. Defaults to bundle.json.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The object's namespace: the claim's own (the default) or the operator's shared-bundle namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl ObjectKeyRef {
    /// The data key, defaulted.
    pub fn key(&self) -> &str {
        if self.key.is_empty() {
            DEFAULT_BUNDLE_KEY
        } else {
            &self.key
        }
    }
}

/// The observed state of a claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIdentityClaimStatus {
    /// The SPIFFE ID claimed.
    #[serde(default, rename = "spiffeID", skip_serializing_if = "String::is_empty")]
    pub spiffe_id: String,
    /// The `kid` of the delivered key.
    #[serde(default, rename = "keyID", skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// Whether the delivered material is valid and the bundle is fanned out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// Why the claim is not ready, when it is not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Standard conditions; `Ready` carries a machine-readable reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The name `spec.path` defaults to and the Secret name `spec.secretName`
/// defaults to, shared by both kinds.
pub trait IdentityObject {
    /// The object's name.
    fn object_name(&self) -> &str;
    /// `spec.trustDomain`.
    fn trust_domain(&self) -> &str;
    /// `spec.path` as written.
    fn spec_path(&self) -> &str;
    /// `spec.secretName` as written.
    fn spec_secret_name(&self) -> &str;

    /// The Secret holding the material: `spec.secretName`, or `<name>-spiffile`.
    fn secret_name(&self) -> String {
        let s = self.spec_secret_name();
        if s.is_empty() {
            format!("{}{SECRET_SUFFIX}", self.object_name())
        } else {
            s.to_owned()
        }
    }

    /// The SPIFFE ID path: `spec.path` (a leading `/` tolerated, as upstream
    /// does), or the object's name.
    fn id_path(&self) -> &str {
        let p = self.spec_path();
        let p = p.strip_prefix('/').unwrap_or(p);
        if p.is_empty() { self.object_name() } else { p }
    }

    /// The SPIFFE ID, validated with the profile's exact grammar (an
    /// identity the operator accepts can never break a bundle parse).
    fn spiffe_id(&self) -> Result<spiffile_id::SpiffeId, String> {
        let text = format!("spiffe://{}/{}", self.trust_domain(), self.id_path());
        text.parse::<spiffile_id::SpiffeId>()
            .map_err(|e| format!("spec: {text} is not a valid SPIFFE ID: {e}"))
    }
}

fn name_of(meta: &kube::api::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

impl IdentityObject for ServiceIdentity {
    fn object_name(&self) -> &str {
        name_of(&self.metadata)
    }
    fn trust_domain(&self) -> &str {
        &self.spec.trust_domain
    }
    fn spec_path(&self) -> &str {
        &self.spec.path
    }
    fn spec_secret_name(&self) -> &str {
        &self.spec.secret_name
    }
}

impl IdentityObject for ServiceIdentityClaim {
    fn object_name(&self) -> &str {
        name_of(&self.metadata)
    }
    fn trust_domain(&self) -> &str {
        &self.spec.trust_domain
    }
    fn spec_path(&self) -> &str {
        &self.spec.path
    }
    fn spec_secret_name(&self) -> &str {
        &self.spec.secret_name
    }
}

impl ServiceIdentity {
    /// `spec.rotationOverlap`, defaulted to 24h.
    pub fn rotation_overlap(&self) -> Result<std::time::Duration, crate::duration::DurationError> {
        if self.spec.rotation_overlap.is_empty() {
            Ok(crate::names::DEFAULT_ROTATION_OVERLAP)
        } else {
            crate::duration::parse(&self.spec.rotation_overlap)
        }
    }
}

/// Both definitions, as generated from the types.
///
/// Optional fields are plain optional properties, as upstream writes them,
/// not `nullable`: the API server then drops an explicit `null` instead of
/// storing it (so `has(self.delivered)` in the CEL rule means "set").
pub fn crds() -> [CustomResourceDefinition; 2] {
    [ServiceIdentity::crd(), ServiceIdentityClaim::crd()].map(|crd| {
        let mut v = serde_json::to_value(&crd).unwrap_or_default();
        strip_nullable(&mut v);
        serde_json::from_value(v).unwrap_or(crd)
    })
}

fn strip_nullable(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("nullable");
            m.values_mut().for_each(strip_nullable);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// Both definitions as one YAML stream (what `spiffile-operator crds`
/// prints and `deploy/crd.yaml` holds).
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::from(
        "# Generated by `spiffile-operator crds` from crates/spiffile-operator/src/crd.rs; do not edit.\n",
    );
    for (i, crd) in crds().iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream() {
        let si: ServiceIdentity = serde_json::from_value(serde_json::json!({
            "apiVersion": "spiffile.io/v1alpha1", "kind": "ServiceIdentity",
            "metadata": {"name": "billing", "namespace": "shop"},
            "spec": {"trustDomain": "example.org"}
        }))
        .unwrap();
        assert_eq!(si.secret_name(), "billing-spiffile");
        assert_eq!(
            si.spiffe_id().unwrap().as_str(),
            "spiffe://example.org/billing"
        );
        assert_eq!(
            si.rotation_overlap().unwrap(),
            std::time::Duration::from_secs(86400)
        );
    }

    #[test]
    fn path_and_secret_name_override() {
        let si = ServiceIdentity::new(
            "x",
            ServiceIdentitySpec {
                trust_domain: "example.org".into(),
                path: "/team/api".into(),
                secret_name: "api-id".into(),
                rotation_overlap: "90s".into(),
            },
        );
        assert_eq!(
            si.spiffe_id().unwrap().as_str(),
            "spiffe://example.org/team/api"
        );
        assert_eq!(si.secret_name(), "api-id");
        assert_eq!(
            si.rotation_overlap().unwrap(),
            std::time::Duration::from_secs(90)
        );
    }

    #[test]
    fn bad_path_names_the_id() {
        let si = ServiceIdentity::new(
            "x",
            ServiceIdentitySpec {
                trust_domain: "example.org".into(),
                path: "a/../b".into(),
                secret_name: String::new(),
                rotation_overlap: String::new(),
            },
        );
        let e = si.spiffe_id().unwrap_err();
        assert!(e.contains("spiffe://example.org/a/../b"), "{e}");
    }

    #[test]
    fn status_field_names_are_upstreams() {
        let status = ServiceIdentityStatus {
            spiffe_id: "spiffe://example.org/billing".into(),
            key_id: "k".into(),
            last_rotate_value: "r".into(),
            ready: true,
            ..Default::default()
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"spiffeID": "spiffe://example.org/billing", "keyID": "k",
                               "lastRotateValue": "r", "ready": true})
        );
    }

    #[test]
    fn crd_yaml_has_upstreams_shape() {
        let yaml = crds_yaml().unwrap();
        assert!(!yaml.contains("nullable"), "{yaml}");
        for needle in [
            "name: serviceidentities.spiffile.io",
            "name: serviceidentityclaims.spiffile.io",
            "- svcid",
            "- svcidclaim",
            "pattern: ^[a-z0-9._-]+$",
            "[has(self.delivered)].filter(x, x).size() == 1",
            "jsonPath: .status.spiffeID",
            "status: {}",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
    }
}
