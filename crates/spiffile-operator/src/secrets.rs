//! The public view of the identity Secrets this operator manages.
//!
//! The Secret watch delivers private keys; each event is reduced at once to
//! what bundles and reconciles need (owner, `id`, the public keys, the
//! rotation annotations) and the Secret itself is dropped, so the operator
//! never keeps a cache of private keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use spiffile_bundle::PublicKey;

use crate::names::{
    MANAGED_BY, MANAGED_BY_LABEL, PREVIOUS_EXPIRES_ANNOTATION, PREVIOUS_JWK_ANNOTATION,
    ROTATION_ANNOTATION, SECRET_ID_KEY, SECRET_KEY_KEY, SECRET_STAGED_KEY,
};

/// A namespaced object's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjKey {
    /// A key from parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a namespaced resource.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self::new(obj.namespace().unwrap_or_default(), obj.name_any())
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the operator keeps of one managed Secret: public material only.
#[derive(Debug, Clone)]
pub struct SecretView {
    /// Namespace and name.
    pub key: ObjKey,
    /// `metadata.resourceVersion` (a precondition for rotation writes).
    pub resource_version: String,
    /// The uid of the controlling owner, if any.
    pub controller_uid: Option<String>,
    /// The `id` data key, trailing whitespace removed.
    pub id: Option<String>,
    /// The public key of `key.pem`, or why it does not parse.
    pub current: Result<PublicKey, String>,
    /// The public key of a staged rotation key, if one is staged.
    pub staged: Option<Result<PublicKey, String>>,
    /// The rotate value the staged or last completed rotation answers.
    pub rotation: Option<String>,
    /// The key the last rotation replaced and when it leaves the bundle.
    pub previous: Option<(PublicKey, Timestamp)>,
}

impl SecretView {
    /// Reduces a Secret to its public view.
    pub fn of(secret: &Secret) -> Self {
        let data = secret.data.as_ref();
        let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
        let current = match get(SECRET_KEY_KEY) {
            None => Err(format!("it has no {SECRET_KEY_KEY}")),
            Some(pem) => spiffile_provision::public_key_of_pem(pem)
                .map_err(|e| format!("its {SECRET_KEY_KEY} is not a usable key: {e}")),
        };
        let staged = get(SECRET_STAGED_KEY).map(|pem| {
            spiffile_provision::public_key_of_pem(pem)
                .map_err(|e| format!("its {SECRET_STAGED_KEY} is not a usable key: {e}"))
        });
        let annotations = secret.annotations();
        let previous = annotations
            .get(PREVIOUS_JWK_ANNOTATION)
            .and_then(|jwk| parse_jwk(jwk).ok())
            .zip(
                annotations
                    .get(PREVIOUS_EXPIRES_ANNOTATION)
                    .and_then(|t| t.parse::<Timestamp>().ok()),
            );
        Self {
            key: ObjKey::of(secret),
            resource_version: secret.resource_version().unwrap_or_default(),
            controller_uid: secret
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            id: get(SECRET_ID_KEY).map(|b| String::from_utf8_lossy(b).trim_end().to_owned()),
            current,
            staged,
            rotation: annotations.get(ROTATION_ANNOTATION).cloned(),
            previous,
        }
    }
}

/// Parses a JWK given as JSON text (the form of `status.previousKeys[].jwk`).
pub fn parse_jwk(text: &str) -> Result<PublicKey, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    PublicKey::from_jwk(&value).map_err(|e| e.to_string())
}

/// The public views of every managed Secret, kept by the Secret watch.
#[derive(Debug, Clone, Default)]
pub struct SecretIndex {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<ObjKey, Arc<SecretView>>,
    /// The relist in progress (between `Init` and `InitDone`).
    buffer: Option<HashMap<ObjKey, Arc<SecretView>>>,
    ready: bool,
}

impl SecretIndex {
    /// Applies one watch event, returning whether the index changed.
    pub fn apply(&self, event: &Event<Secret>) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(s) => {
                if !is_managed(s) {
                    return inner.live.remove(&ObjKey::of(s)).is_some();
                }
                let view = Arc::new(SecretView::of(s));
                inner.live.insert(view.key.clone(), view);
                true
            }
            Event::Delete(s) => inner.live.remove(&ObjKey::of(s)).is_some(),
            Event::Init => {
                inner.buffer = Some(HashMap::new());
                false
            }
            Event::InitApply(s) => {
                if is_managed(s) {
                    let view = Arc::new(SecretView::of(s));
                    if let Some(b) = inner.buffer.as_mut() {
                        b.insert(view.key.clone(), view);
                    }
                }
                false
            }
            Event::InitDone => {
                if let Some(b) = inner.buffer.take() {
                    inner.live = b;
                }
                inner.ready = true;
                true
            }
        }
    }

    /// The view of one Secret.
    pub fn get(&self, key: &ObjKey) -> Option<Arc<SecretView>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.live.get(key).cloned()
    }

    /// Every view (a snapshot).
    pub fn all(&self) -> Vec<Arc<SecretView>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.live.values().cloned().collect()
    }

    /// Whether the first full list has been seen.
    pub fn is_ready(&self) -> bool {
        self.inner.read().map(|i| i.ready).unwrap_or(false)
    }

    /// Records a Secret this process just wrote, so the next reconcile sees
    /// it before the watch delivers it.
    pub fn record(&self, secret: &Secret) {
        let view = Arc::new(SecretView::of(secret));
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.live.insert(view.key.clone(), view);
    }
}

fn is_managed(s: &Secret) -> bool {
    s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
}

/// A Secret with its data removed: what the controller's owner trigger
/// needs, without key material.
pub fn strip(mut secret: Secret) -> Secret {
    secret.data = None;
    secret.string_data = None;
    secret
}
