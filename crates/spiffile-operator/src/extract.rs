//! `spiffile k8s extract TD OUTDIR` (and `kubectl spiffile extract`): a
//! trust domain's operator-backed identities, read from the cluster, written
//! as a provisioning root (`bundle.json`, `services/<path>/{id,key.pem}`).
//! For migrating a trust domain to claims (a writer outside the cluster
//! takes over with the same keys) and for local debugging.

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use spiffile_bundle::Bundle;
use spiffile_provision::ImportedService;

use crate::crd::{IdentityObject, ServiceIdentity};
use crate::names::{MANAGED_SELECTOR, SECRET_KEY_KEY, bundle_key};

/// What an extraction wrote and skipped.
#[derive(Debug, Default)]
pub struct Extracted {
    /// The SPIFFE IDs written under `services/`.
    pub written: Vec<String>,
    /// Identities left out, and why.
    pub skipped: Vec<String>,
    /// The namespace whose bundle was used.
    pub bundle_from: String,
}

/// Why an extraction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The API server refused or failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being read.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Nothing to extract.
    #[error("{0}")]
    Nothing(String),
    /// Writing the root failed (it refuses to overwrite).
    #[error(transparent)]
    Root(#[from] spiffile_provision::Error),
}

fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExtractError {
    let what = what.into();
    move |source| ExtractError::Kube { what, source }
}

/// Extracts `trust_domain` into a new root at `outdir` (which must not hold
/// a root already).
pub async fn extract(
    client: &Client,
    trust_domain: &str,
    outdir: &Path,
) -> Result<Extracted, ExtractError> {
    let mut report = Extracted::default();
    // The bundle: every namespace carries the same document; take the first
    // managed one that has the trust domain.
    let cms = Api::<ConfigMap>::all(client.clone())
        .list(&ListParams::default().labels(MANAGED_SELECTOR))
        .await
        .map_err(kube("listing bundle ConfigMaps"))?;
    let key = bundle_key(trust_domain);
    let (ns, text) = cms
        .items
        .iter()
        .filter(|c| c.name_any() == crate::names::BUNDLE_CONFIGMAP)
        .find_map(|c| {
            let text = c.data.as_ref()?.get(&key)?.clone();
            Some((c.namespace().unwrap_or_default(), text))
        })
        .ok_or_else(|| {
            ExtractError::Nothing(format!(
                "no spiffile-bundle ConfigMap holds {key}: the trust domain {trust_domain:?} has no ready identity in this cluster"
            ))
        })?;
    let bundle = Bundle::from_json_quiet(text.as_bytes()).map_err(|e| {
        ExtractError::Nothing(format!("ConfigMap {ns}/spiffile-bundle key {key}: {e}"))
    })?;
    report.bundle_from = ns;

    // Operator-backed identities only: a claim's key belongs to its writer.
    let sis = Api::<ServiceIdentity>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube("listing ServiceIdentities"))?;
    let mut material = Vec::new();
    for si in sis
        .items
        .iter()
        .filter(|s| s.spec.trust_domain == trust_domain)
    {
        let ns = si.namespace().unwrap_or_default();
        let name = si.name_any();
        let ready = si.status.as_ref().is_some_and(|s| s.ready);
        let id = match si.spiffe_id() {
            Ok(id) if ready => id,
            Ok(id) => {
                report
                    .skipped
                    .push(format!("{id} ({ns}/{name} is not Ready)"));
                continue;
            }
            Err(e) => {
                report.skipped.push(format!("{ns}/{name}: {e}"));
                continue;
            }
        };
        let secret_name = si.secret_name();
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get(&secret_name)
            .await
            .map_err(kube(format!("reading Secret {ns}/{secret_name}")))?;
        let Some(pem) = secret.data.and_then(|mut d| d.remove(SECRET_KEY_KEY)) else {
            report
                .skipped
                .push(format!("{id} (Secret {ns}/{secret_name} has no key.pem)"));
            continue;
        };
        material.push((id, pem.0));
    }
    if material.is_empty() {
        return Err(ExtractError::Nothing(format!(
            "no ready ServiceIdentity of the trust domain {trust_domain:?}{}",
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", report.skipped.join("; "))
            }
        )));
    }
    let services: Vec<ImportedService<'_>> = material
        .iter()
        .map(|(id, pem)| ImportedService { id, key_pem: pem })
        .collect();
    spiffile_provision::import_root(outdir, &bundle, &services)?;
    report.written = material.iter().map(|(id, _)| id.to_string()).collect();
    // The private keys read from the cluster are dropped here.
    for (_, pem) in material.iter_mut() {
        pem.fill(0);
    }
    Ok(report)
}
