//! The pure heart of the operator: from the objects of the cluster (as the
//! watches last saw them) to what every bundle ConfigMap must hold and what
//! every identity's and claim's state is. No I/O; the bundle writer calls
//! [`compute`] after each burst of changes, and the unit tests call it
//! directly.
//!
//! The rules, each one deterministic so the same objects always give the
//! same bytes:
//! * an invalid spec excludes the object;
//! * a trust domain belongs to the kind whose oldest object is oldest; the
//!   other kind's objects of that trust domain are a trust domain conflict
//!   (never a silent merge, and never an outage of the established kind);
//! * a Secret name taken by an object the identity does not control is a
//!   Secret conflict;
//! * one SPIFFE ID, one `ServiceIdentity`: the oldest keeps it, later ones
//!   are duplicates (a namespace cannot take over another's identity);
//! * a trust domain's bundle binds each identity to its current key, a
//!   staged key (rotation in progress) and its rotated-out keys until they
//!   expire, in that order, identities sorted (the canonical form of
//!   `spiffile-bundle`);
//! * every namespace with an identity of a trust domain carries the whole
//!   trust domain's bundle; a namespace whose managed ConfigMap has no
//!   identity left gets an empty one (revocation of the last identity);
//! * a ConfigMap is never written past Kubernetes' 1 MiB: a claim bundle
//!   that grew past it keeps its previous content, and if still too large
//!   the namespace is not written and its objects say `BundleTooLarge`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use spiffile_bundle::{Bundle, PublicKey, TrustDomain};

use crate::crd::{IdentityObject, ServiceIdentity, ServiceIdentityClaim};
use crate::names::{CONFIGMAP_LIMIT, bundle_key};
use crate::secrets::{ObjKey, SecretIndex, parse_jwk};
use crate::status::{Reason, Verdict};

/// A bundle ConfigMap as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActualConfigMap {
    /// Its data.
    pub data: BTreeMap<String, String>,
    /// Its `metadata.resourceVersion`.
    pub resource_version: String,
    /// Whether it carries the operator's label.
    pub managed: bool,
}

/// What the claim reconciler concluded about a claim's delivered material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Valid: the bundle document to fan out.
    Valid {
        /// The delivered key's `kid`.
        kid: String,
        /// The delivered bundle document, exactly as delivered.
        doc: Arc<str>,
    },
    /// Invalid or incomplete, and why.
    Invalid(Verdict),
}

/// Everything [`compute`] reads.
pub struct Inputs<'a> {
    /// Every `ServiceIdentity`.
    pub identities: &'a [Arc<ServiceIdentity>],
    /// Every `ServiceIdentityClaim`.
    pub claims: &'a [Arc<ServiceIdentityClaim>],
    /// The managed Secrets.
    pub secrets: &'a SecretIndex,
    /// The claim reconciler's conclusions.
    pub claim_outcomes: &'a HashMap<ObjKey, ClaimOutcome>,
    /// The bundle ConfigMaps, by namespace.
    pub actual: &'a BTreeMap<String, ActualConfigMap>,
    /// Parsed bundles of the actual ConfigMaps, reused between computations.
    pub parsed: &'a mut DocCache,
    /// The time to prune expired keys at.
    pub now: Timestamp,
}

/// The state of one `ServiceIdentity` in a computed world.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityState {
    /// Why it is left out of every bundle, if it is.
    pub excluded: Option<Verdict>,
    /// The `kid` of its current key, when it has one in the bundle.
    pub current_kid: Option<String>,
    /// Whether its namespace's ConfigMap binds its current key.
    pub published: bool,
    /// The staged key's `kid`, during a rotation.
    pub staged_kid: Option<String>,
    /// Whether every namespace carrying its trust domain binds the staged key.
    pub staged_published: bool,
    /// Why its namespace's ConfigMap cannot be written, if it cannot.
    pub too_large: Option<String>,
}

/// The state of one claim in a computed world.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimState {
    /// Why its bundle is not fanned out, if it is not (conflicts, size).
    pub excluded: Option<Verdict>,
    /// Whether its namespace's ConfigMap holds its delivered bundle.
    pub published: bool,
}

/// A computed world: what to write, and every object's state.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Each `ServiceIdentity`'s state.
    pub identities: HashMap<ObjKey, IdentityState>,
    /// Each claim's state.
    pub claims: HashMap<ObjKey, ClaimState>,
    /// The data each namespace's ConfigMap must hold (namespaces that must
    /// not be written are absent).
    pub desired: BTreeMap<String, BTreeMap<String, String>>,
    /// Namespaces whose ConfigMap would pass the limit, and why.
    pub blocked: BTreeMap<String, String>,
    /// Total value bytes of each namespace's desired ConfigMap.
    pub namespace_bytes: BTreeMap<String, usize>,
    /// The namespaces carrying each operator-backed trust domain.
    pub trust_domain_namespaces: BTreeMap<String, BTreeSet<String>>,
    /// The size of each operator-backed trust domain's bundle document.
    pub trust_domain_bytes: BTreeMap<String, usize>,
    /// The number of identities in each trust domain's bundle.
    pub trust_domain_identities: BTreeMap<String, usize>,
    /// When the next rotated-out key expires (the writer wakes then).
    pub next_expiry: Option<Timestamp>,
}

/// Parsed bundles of actual ConfigMap values, keyed by namespace and data
/// key, valid for one value.
#[derive(Debug, Default)]
pub struct DocCache {
    entries: HashMap<DocKey, (u64, Option<Arc<Bundle>>)>,
}

/// A namespace and one of its data keys.
type DocKey = (String, String);

impl DocCache {
    fn get(&mut self, namespace: &str, key: &str, value: &str) -> Option<Arc<Bundle>> {
        let h = fingerprint(value);
        let slot = self
            .entries
            .entry((namespace.to_owned(), key.to_owned()))
            .or_insert((h.wrapping_add(1), None));
        if slot.0 != h {
            *slot = (
                h,
                Bundle::from_json_quiet(value.as_bytes()).ok().map(Arc::new),
            );
        }
        slot.1.clone()
    }

    fn retain(&mut self, actual: &BTreeMap<String, ActualConfigMap>) {
        self.entries
            .retain(|(ns, key), _| actual.get(ns).is_some_and(|cm| cm.data.contains_key(key)));
    }
}

fn fingerprint(s: &str) -> u64 {
    // FNV-1a plus the length: only tells apart successive values of one key.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (s.len() as u64).rotate_left(32)
}

/// The order of seniority: creation time, then namespace, then name.
fn seniority<K: kube::Resource>(obj: &K) -> (Option<Timestamp>, String, String) {
    (
        obj.meta().creation_timestamp.as_ref().map(|t| t.0),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    )
}

fn is_deleting<K: kube::Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// One identity that made it into its trust domain's bundle.
struct Member<'a> {
    si: &'a ServiceIdentity,
    key: ObjKey,
    id: spiffile_id::SpiffeId,
    keys: Vec<PublicKey>,
    staged_kid: Option<String>,
}

/// Computes the world. Deterministic in its inputs.
pub fn compute(inputs: Inputs<'_>) -> World {
    let now = inputs.now;
    let mut world = World::default();

    // Seniority of each kind per trust domain.
    let mut oldest_si: BTreeMap<&str, (Option<Timestamp>, String, String)> = BTreeMap::new();
    let mut oldest_claim: BTreeMap<&str, (Option<Timestamp>, String, String)> = BTreeMap::new();
    for si in inputs.identities.iter().filter(|s| !is_deleting(&***s)) {
        let s = seniority(&**si);
        let e = oldest_si
            .entry(si.trust_domain())
            .or_insert_with(|| s.clone());
        if s < *e {
            *e = s;
        }
    }
    for c in inputs.claims.iter().filter(|c| !is_deleting(&***c)) {
        let s = seniority(&**c);
        let e = oldest_claim
            .entry(c.trust_domain())
            .or_insert_with(|| s.clone());
        if s < *e {
            *e = s;
        }
    }
    // true: operator-backed.
    let owner = |td: &str| -> bool {
        match (oldest_si.get(td), oldest_claim.get(td)) {
            (Some(a), Some(b)) => a <= b,
            (_, None) => true,
            (None, Some(_)) => false,
        }
    };

    // ServiceIdentities: exclusions, then duplicates by seniority.
    let mut sorted: Vec<&Arc<ServiceIdentity>> = inputs
        .identities
        .iter()
        .filter(|s| !is_deleting(&***s))
        .collect();
    sorted.sort_by_key(|s| seniority(&***s));
    let mut by_id: HashMap<String, ObjKey> = HashMap::new();
    let mut members: Vec<Member<'_>> = Vec::new();
    for si in sorted {
        let key = ObjKey::of(&**si);
        let mut state = IdentityState::default();
        let td = si.trust_domain();
        let secret = inputs
            .secrets
            .get(&ObjKey::new(&key.namespace, si.secret_name()));
        let excluded = match (si.spiffe_id(), si.rotation_overlap()) {
            (Err(e), _) => Some(Verdict::not_ready(Reason::InvalidSpec, e)),
            (_, Err(e)) => Some(Verdict::not_ready(
                Reason::InvalidSpec,
                format!("spec.rotationOverlap: {e}"),
            )),
            (Ok(id), Ok(_)) => {
                if !owner(td) {
                    let (_, ns, name) = oldest_claim.get(td).cloned().unwrap_or_default();
                    Some(Verdict::not_ready(
                        Reason::TrustDomainConflict,
                        format!(
                            "trust domain conflict: {td:?} is backed by ServiceIdentityClaim objects (the first is {ns}/{name}); a trust domain is either cluster-backed or externally-backed, never both"
                        ),
                    ))
                } else if let Some(s) = secret
                    .as_ref()
                    .filter(|s| s.controller_uid.as_deref() != si.metadata.uid.as_deref())
                {
                    Some(Verdict::not_ready(
                        Reason::SecretConflict,
                        format!(
                            "Secret {} exists and is not controlled by this ServiceIdentity (another object uses the name; set spec.secretName)",
                            s.key
                        ),
                    ))
                } else if let Some(first) = by_id.get(id.as_str()) {
                    Some(Verdict::not_ready(
                        Reason::DuplicateSpiffeId,
                        format!("{id} is already the identity of ServiceIdentity {first}"),
                    ))
                } else {
                    by_id.insert(id.as_str().to_owned(), key.clone());
                    let mut keys: Vec<PublicKey> = Vec::new();
                    let mut staged_kid = None;
                    let mut expiries: Vec<(PublicKey, Timestamp)> = Vec::new();
                    if let Some(s) = &secret {
                        if let Ok(k) = &s.current {
                            keys.push(k.clone());
                            state.current_kid = Some(k.kid().to_owned());
                        }
                        if let Some(Ok(k)) = &s.staged {
                            staged_kid = Some(k.kid().to_owned());
                            keys.push(k.clone());
                        }
                        if let Some((k, t)) = &s.previous {
                            expiries.push((k.clone(), *t));
                        }
                    }
                    for p in si.status.iter().flat_map(|s| s.previous_keys.iter()) {
                        if let Ok(k) = parse_jwk(&p.jwk) {
                            expiries.push((k, p.expires_at.0));
                        }
                    }
                    // Latest expiry first; the same key listed twice keeps its latest.
                    expiries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.kid().cmp(b.0.kid())));
                    for (k, t) in expiries {
                        if t > now && !keys.iter().any(|o| o.kid() == k.kid()) {
                            world.next_expiry = Some(world.next_expiry.map_or(t, |n| n.min(t)));
                            keys.push(k);
                        }
                    }
                    state.staged_kid = staged_kid.clone();
                    members.push(Member {
                        si,
                        key: key.clone(),
                        id,
                        keys,
                        staged_kid,
                    });
                    None
                }
            }
        };
        state.excluded = excluded;
        world.identities.insert(key, state);
    }

    // Operator-backed bundles.
    let mut docs: BTreeMap<String, Bundle> = BTreeMap::new();
    for m in &members {
        let td = m.si.trust_domain().to_owned();
        world
            .trust_domain_namespaces
            .entry(td.clone())
            .or_default()
            .insert(m.key.namespace.clone());
        let Ok(trust_domain) = td.parse::<TrustDomain>() else {
            continue; // spiffe_id() succeeded, so this cannot happen
        };
        let doc = docs.entry(td).or_insert_with(|| Bundle::new(trust_domain));
        if !m.keys.is_empty() {
            // Kids are distinct by construction; an error would be a bug, and
            // leaving the entry out is the safe side of it.
            let _ = doc.set_keys(&m.id, m.keys.clone());
        }
    }
    let texts: BTreeMap<String, String> = docs
        .iter()
        .map(|(td, d)| {
            world.trust_domain_identities.insert(td.clone(), d.len());
            (td.clone(), d.to_json())
        })
        .collect();
    for (td, t) in &texts {
        world.trust_domain_bytes.insert(td.clone(), t.len());
    }

    // Claims.
    let mut sorted_claims: Vec<&Arc<ServiceIdentityClaim>> = inputs
        .claims
        .iter()
        .filter(|c| !is_deleting(&***c))
        .collect();
    sorted_claims.sort_by_key(|c| seniority(&***c));
    // (namespace, trust domain) -> (the claim that provides it, the doc)
    let mut claim_docs: BTreeMap<(String, String), (ObjKey, Arc<str>)> = BTreeMap::new();
    for c in sorted_claims {
        let key = ObjKey::of(&**c);
        let td = c.trust_domain();
        let mut state = ClaimState::default();
        if owner(td) && oldest_si.contains_key(td) {
            let (_, ns, name) = oldest_si.get(td).cloned().unwrap_or_default();
            state.excluded = Some(Verdict::not_ready(
                Reason::TrustDomainConflict,
                format!(
                    "trust domain conflict: {td:?} is backed by ServiceIdentity objects (the first is {ns}/{name}); a trust domain is either cluster-backed or externally-backed, never both"
                ),
            ));
        } else if let Some(doc) = match inputs.claim_outcomes.get(&key) {
            Some(ClaimOutcome::Valid { doc, .. }) => Some(doc.clone()),
            Some(ClaimOutcome::Invalid(_)) => None,
            // Not validated yet (the operator just started): keep what the
            // namespace already carries rather than revoke it for a moment.
            None => inputs
                .actual
                .get(&key.namespace)
                .and_then(|cm| cm.data.get(&bundle_key(td)))
                .map(|v| Arc::from(v.as_str())),
        } {
            let doc = &doc;
            match claim_docs.get(&(key.namespace.clone(), td.to_owned())) {
                Some((first, d)) if d != doc => {
                    state.excluded = Some(Verdict::not_ready(
                        Reason::BundleSourceConflict,
                        format!(
                            "claim {first} already fans out a different bundle for {td:?} into this namespace; claims of one trust domain in one namespace must deliver the same bundle"
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    claim_docs.insert(
                        (key.namespace.clone(), td.to_owned()),
                        (key.clone(), doc.clone()),
                    );
                }
            }
        }
        world.claims.insert(key, state);
    }

    // Desired ConfigMaps.
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for nss in world.trust_domain_namespaces.values() {
        namespaces.extend(nss.iter().cloned());
    }
    namespaces.extend(claim_docs.keys().map(|(ns, _)| ns.clone()));
    namespaces.extend(
        inputs
            .actual
            .iter()
            .filter(|(_, cm)| cm.managed)
            .map(|(ns, _)| ns.clone()),
    );
    for ns in namespaces {
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        for (td, nss) in &world.trust_domain_namespaces {
            if nss.contains(&ns)
                && let Some(t) = texts.get(td)
            {
                data.insert(bundle_key(td), t.clone());
            }
        }
        let mut claim_keys: Vec<(String, ObjKey)> = Vec::new();
        for ((cns, td), (first, doc)) in &claim_docs {
            if *cns == ns {
                data.insert(bundle_key(td), doc.to_string());
                claim_keys.push((bundle_key(td), first.clone()));
            }
        }
        let mut size: usize = data.values().map(String::len).sum();
        let actual = inputs.actual.get(&ns);
        if size > CONFIGMAP_LIMIT {
            // A delivered bundle that grew keeps its previous content.
            for (dk, claim) in &claim_keys {
                if size <= CONFIGMAP_LIMIT {
                    break;
                }
                let old = actual.and_then(|a| a.data.get(dk)).cloned();
                let new_len = data.get(dk).map_or(0, String::len);
                if old.as_ref().map_or(0, String::len) < new_len {
                    size = size - new_len + old.as_ref().map_or(0, String::len);
                    match old {
                        Some(o) => data.insert(dk.clone(), o),
                        None => data.remove(dk),
                    };
                    let msg = format!(
                        "the delivered bundle would make ConfigMap {ns}/spiffile-bundle {} bytes, over Kubernetes' limit of {CONFIGMAP_LIMIT}; the previous bundle stays (see docs/operator.md, Limits)",
                        size + new_len
                    );
                    if let Some(s) = world.claims.get_mut(claim) {
                        s.excluded = Some(Verdict::not_ready(Reason::BundleTooLarge, msg));
                    }
                }
            }
        }
        world.namespace_bytes.insert(ns.clone(), size);
        if size > CONFIGMAP_LIMIT {
            let msg = format!(
                "ConfigMap {ns}/spiffile-bundle would hold {size} bytes, over Kubernetes' limit of {CONFIGMAP_LIMIT}; it is not written (split the trust domain, or move identities to fewer namespaces; see docs/operator.md, Limits)"
            );
            for m in members.iter().filter(|m| m.key.namespace == ns) {
                if let Some(s) = world.identities.get_mut(&m.key) {
                    s.too_large = Some(msg.clone());
                }
            }
            for (k, s) in world.claims.iter_mut() {
                if k.namespace == ns && s.excluded.is_none() {
                    s.excluded = Some(Verdict::not_ready(Reason::BundleTooLarge, msg.clone()));
                }
            }
            world.blocked.insert(ns, msg);
        } else {
            world.desired.insert(ns, data);
        }
    }

    // What the actual ConfigMaps already carry.
    inputs.parsed.retain(inputs.actual);
    // Each actual document parsed (or taken from the cache) once per pass.
    let mut docs_seen: HashMap<DocKey, Option<Arc<Bundle>>> = HashMap::new();
    let mut binds = |ns: &str, td: &str, id: &spiffile_id::SpiffeId, kid: &str| -> bool {
        let dk = bundle_key(td);
        docs_seen
            .entry((ns.to_owned(), dk))
            .or_insert_with_key(|(ns, dk)| {
                let v = inputs.actual.get(ns)?.data.get(dk)?;
                inputs.parsed.get(ns, dk, v)
            })
            .as_ref()
            .is_some_and(|b| {
                b.keys(id)
                    .is_some_and(|ks| ks.iter().any(|k| k.kid() == kid))
            })
    };
    for m in &members {
        let td = m.si.trust_domain();
        let published = world
            .identities
            .get(&m.key)
            .and_then(|s| s.current_kid.clone())
            .is_some_and(|kid| binds(&m.key.namespace, td, &m.id, &kid));
        let staged_published = m.staged_kid.as_ref().is_some_and(|kid| {
            world
                .trust_domain_namespaces
                .get(td)
                .is_some_and(|nss| nss.iter().all(|ns| binds(ns, td, &m.id, kid)))
        });
        if let Some(s) = world.identities.get_mut(&m.key) {
            s.published = published;
            s.staged_published = staged_published;
        }
    }
    for c in inputs.claims {
        let key = ObjKey::of(&**c);
        let published = match inputs.claim_outcomes.get(&key) {
            Some(ClaimOutcome::Valid { doc, .. }) => inputs
                .actual
                .get(&key.namespace)
                .and_then(|cm| cm.data.get(&bundle_key(c.trust_domain())))
                .is_some_and(|v| v.as_str() == &**doc),
            _ => false,
        };
        if let Some(s) = world.claims.get_mut(&key) {
            s.published = published;
        }
    }
    world
}

/// Sizes of bundle growth, measured with the bundle crate's own writer.
pub struct Growth {
    /// Bytes a new identity (one key) adds to a trust domain's bundle, at
    /// most, besides the length of its SPIFFE ID.
    pub identity_overhead: usize,
    /// Bytes one more key adds to an identity's entry.
    pub key: usize,
}

/// The measured [`Growth`] of the canonical bundle form.
pub fn growth() -> &'static Growth {
    static GROWTH: OnceLock<Growth> = OnceLock::new();
    GROWTH.get_or_init(|| {
        let td: TrustDomain = "t".parse().unwrap_or_else(|_| unreachable!());
        let id: spiffile_id::SpiffeId = "spiffe://t/x".parse().unwrap_or_else(|_| unreachable!());
        // Any two valid keys: every P-256 JWK has the same length here.
        let keys: Vec<PublicKey> = (0..2)
            .filter_map(|_| spiffile_provision::generate_service_key().ok().map(|k| k.1))
            .collect();
        let empty = Bundle::new(td.clone()).to_json().len();
        let mut one = Bundle::new(td.clone());
        let mut two = Bundle::new(td);
        let (one_len, two_len) = match keys.as_slice() {
            [a, b] => {
                let _ = one.set_keys(&id, vec![a.clone()]);
                let _ = two.set_keys(&id, vec![a.clone(), b.clone()]);
                (one.to_json().len(), two.to_json().len())
            }
            // The system random generator failed: be pessimistic.
            _ => (empty + 512, empty + 1024),
        };
        Growth {
            identity_overhead: one_len - empty - id.as_str().len(),
            key: two_len - one_len,
        }
    })
}

#[cfg(test)]
mod tests;
