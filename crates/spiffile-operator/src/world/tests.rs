use super::*;
use crate::crd::{PreviousKey, ServiceIdentitySpec, ServiceIdentityStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::runtime::watcher::Event;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn si(ns: &str, name: &str, td: &str, created: &str) -> ServiceIdentity {
    let mut s = ServiceIdentity::new(
        name,
        ServiceIdentitySpec {
            trust_domain: td.into(),
            path: String::new(),
            secret_name: String::new(),
            rotation_overlap: String::new(),
        },
    );
    s.metadata.namespace = Some(ns.into());
    s.metadata.uid = Some(format!("uid-{ns}-{name}"));
    s.metadata.creation_timestamp = Some(Time(t(created)));
    s
}

fn secret_for(s: &ServiceIdentity, pem: &str) -> Secret {
    let mut sec = Secret::default();
    sec.metadata.namespace = s.metadata.namespace.clone();
    sec.metadata.name = Some(s.secret_name());
    sec.metadata.labels = Some(
        [(
            crate::names::MANAGED_BY_LABEL.to_owned(),
            crate::names::MANAGED_BY.to_owned(),
        )]
        .into(),
    );
    sec.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "spiffile.io/v1alpha1".into(),
        kind: "ServiceIdentity".into(),
        name: s.object_name().into(),
        uid: s.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    sec.data = Some(
        [
            (
                "id".to_owned(),
                ByteString(format!("{}\n", s.spiffe_id().unwrap()).into_bytes()),
            ),
            ("key.pem".to_owned(), ByteString(pem.as_bytes().to_vec())),
        ]
        .into(),
    );
    sec
}

struct Fixture {
    identities: Vec<Arc<ServiceIdentity>>,
    claims: Vec<Arc<ServiceIdentityClaim>>,
    secrets: SecretIndex,
    outcomes: HashMap<ObjKey, ClaimOutcome>,
    actual: BTreeMap<String, ActualConfigMap>,
    cache: DocCache,
}

impl Fixture {
    fn new() -> Self {
        let secrets = SecretIndex::default();
        secrets.apply(&Event::InitDone);
        Self {
            identities: vec![],
            claims: vec![],
            secrets,
            outcomes: HashMap::new(),
            actual: BTreeMap::new(),
            cache: DocCache::default(),
        }
    }
    fn add(&mut self, s: ServiceIdentity) -> String {
        let (pem, public) = spiffile_provision::generate_service_key().unwrap();
        self.secrets.apply(&Event::Apply(secret_for(&s, &pem)));
        self.identities.push(Arc::new(s));
        public.kid().to_owned()
    }
    fn compute(&mut self, now: &str) -> World {
        compute(Inputs {
            identities: &self.identities,
            claims: &self.claims,
            secrets: &self.secrets,
            claim_outcomes: &self.outcomes,
            actual: &self.actual,
            parsed: &mut self.cache,
            now: t(now),
        })
    }
    /// Pretends the writer wrote what the world wants.
    fn publish(&mut self, w: &World) {
        for (ns, data) in &w.desired {
            self.actual.insert(
                ns.clone(),
                ActualConfigMap {
                    data: data.clone(),
                    resource_version: "1".into(),
                    managed: true,
                },
            );
        }
    }
}

const NOW: &str = "2026-06-01T00:00:00Z";

#[test]
fn same_objects_same_bytes_and_publication() {
    let mut f = Fixture::new();
    let ko = f.add(si("shop", "orders", "example.org", "2026-01-01T00:00:00Z"));
    f.add(si("shop", "billing", "example.org", "2026-01-01T00:00:01Z"));
    let w1 = f.compute(NOW);
    let data = &w1.desired["shop"];
    assert_eq!(data.len(), 1);
    let doc = Bundle::from_json(data["example.org.json"].as_bytes()).unwrap();
    assert_eq!(doc.len(), 2);
    assert_eq!(
        doc.keys(&"spiffe://example.org/orders".parse().unwrap())
            .unwrap()[0]
            .kid(),
        ko
    );
    let state = &w1.identities[&ObjKey::new("shop", "orders")];
    assert!(state.excluded.is_none() && !state.published);
    // Order of the inputs does not matter.
    f.identities.reverse();
    let w2 = f.compute(NOW);
    assert_eq!(w1.desired, w2.desired);
    f.publish(&w2);
    let w3 = f.compute(NOW);
    assert!(w3.identities[&ObjKey::new("shop", "orders")].published);
}

#[test]
fn bundle_spans_namespaces_of_the_trust_domain_only() {
    let mut f = Fixture::new();
    f.add(si("a", "x", "one.org", "2026-01-01T00:00:00Z"));
    f.add(si("b", "y", "one.org", "2026-01-01T00:00:00Z"));
    f.add(si("b", "z", "two.org", "2026-01-01T00:00:00Z"));
    let w = f.compute(NOW);
    assert_eq!(w.desired["a"].keys().collect::<Vec<_>>(), ["one.org.json"]);
    assert_eq!(
        w.desired["b"].keys().collect::<Vec<_>>(),
        ["one.org.json", "two.org.json"]
    );
    assert_eq!(
        w.desired["a"]["one.org.json"],
        w.desired["b"]["one.org.json"]
    );
}

#[test]
fn deleted_identity_leaves_and_last_one_empties_the_configmap() {
    let mut f = Fixture::new();
    f.add(si("shop", "orders", "example.org", "2026-01-01T00:00:00Z"));
    let w = f.compute(NOW);
    f.publish(&w);
    let mut gone = (*f.identities[0]).clone();
    gone.metadata.deletion_timestamp = Some(Time(t(NOW)));
    f.identities[0] = Arc::new(gone);
    let w = f.compute(NOW);
    assert!(w.desired["shop"].is_empty(), "{:?}", w.desired);
}

#[test]
fn duplicates_and_secret_conflicts_are_refused() {
    let mut f = Fixture::new();
    f.add(si("prod", "billing", "example.org", "2026-01-01T00:00:00Z"));
    f.add(si("dev", "billing", "example.org", "2026-02-01T00:00:00Z"));
    let w = f.compute(NOW);
    let dup = w.identities[&ObjKey::new("dev", "billing")]
        .excluded
        .clone()
        .unwrap();
    assert_eq!(dup.reason, Reason::DuplicateSpiffeId);
    assert!(dup.message.contains("prod/billing"), "{}", dup.message);
    let doc = Bundle::from_json(w.desired["prod"]["example.org.json"].as_bytes()).unwrap();
    assert_eq!(
        doc.keys(&"spiffe://example.org/billing".parse().unwrap())
            .unwrap()
            .len(),
        1
    );

    // Two identities naming one Secret: the second does not own it.
    let mut other = si("prod", "other", "example.org", "2026-03-01T00:00:00Z");
    other.spec.secret_name = "billing-spiffile".into();
    other.spec.path = "other".into();
    f.identities.push(Arc::new(other));
    let w = f.compute(NOW);
    let c = w.identities[&ObjKey::new("prod", "other")]
        .excluded
        .clone()
        .unwrap();
    assert_eq!(c.reason, Reason::SecretConflict);
}

#[test]
fn previous_keys_stay_until_they_expire() {
    let mut f = Fixture::new();
    let mut s = si("shop", "orders", "example.org", "2026-01-01T00:00:00Z");
    let (_, old) = spiffile_provision::generate_service_key().unwrap();
    s.status = Some(ServiceIdentityStatus {
        previous_keys: vec![PreviousKey {
            jwk: old.to_jwk().to_string(),
            expires_at: Time(t("2026-06-01T00:00:10Z")),
        }],
        ..Default::default()
    });
    let current = f.add(s);
    let w = f.compute(NOW);
    let doc = Bundle::from_json(w.desired["shop"]["example.org.json"].as_bytes()).unwrap();
    let kids: Vec<_> = doc
        .keys(&"spiffe://example.org/orders".parse().unwrap())
        .unwrap()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    assert_eq!(kids, [current.clone(), old.kid().to_owned()]);
    assert_eq!(w.next_expiry, Some(t("2026-06-01T00:00:10Z")));
    let w = f.compute("2026-06-01T00:00:10Z");
    let doc = Bundle::from_json(w.desired["shop"]["example.org.json"].as_bytes()).unwrap();
    assert_eq!(
        doc.keys(&"spiffe://example.org/orders".parse().unwrap())
            .unwrap()
            .len(),
        1
    );
    assert_eq!(w.next_expiry, None);
}

#[test]
fn trust_domain_belongs_to_the_kind_that_came_first() {
    use crate::crd::{
        BundleSource, ClaimSource, DeliveredSource, ObjectKeyRef, ServiceIdentityClaimSpec,
    };
    let mut f = Fixture::new();
    f.add(si("shop", "orders", "example.org", "2026-01-01T00:00:00Z"));
    let mut c = ServiceIdentityClaim::new(
        "tenant",
        ServiceIdentityClaimSpec {
            trust_domain: "example.org".into(),
            path: String::new(),
            secret_name: String::new(),
            source: ClaimSource {
                delivered: Some(DeliveredSource {
                    bundle_from: BundleSource {
                        secret_ref: None,
                        config_map_ref: Some(ObjectKeyRef {
                            name: "b".into(),
                            key: String::new(),
                            namespace: String::new(),
                        }),
                    },
                }),
            },
        },
    );
    c.metadata.namespace = Some("shop".into());
    c.metadata.creation_timestamp = Some(Time(t("2026-02-01T00:00:00Z")));
    f.claims.push(Arc::new(c.clone()));
    f.outcomes.insert(
        ObjKey::new("shop", "tenant"),
        ClaimOutcome::Valid {
            kid: "k".into(),
            doc: Arc::from("{}"),
        },
    );
    let w = f.compute(NOW);
    assert_eq!(
        w.claims[&ObjKey::new("shop", "tenant")]
            .excluded
            .as_ref()
            .unwrap()
            .reason,
        Reason::TrustDomainConflict
    );
    assert!(
        w.identities[&ObjKey::new("shop", "orders")]
            .excluded
            .is_none()
    );
    assert!(w.desired["shop"]["example.org.json"].contains("orders"));

    // The other way round: a claim first, an identity later.
    let mut f2 = Fixture::new();
    c.metadata.creation_timestamp = Some(Time(t("2025-01-01T00:00:00Z")));
    f2.claims.push(Arc::new(c));
    f2.outcomes.insert(
        ObjKey::new("shop", "tenant"),
        ClaimOutcome::Valid {
            kid: "k".into(),
            doc: Arc::from("{\"delivered\":1}"),
        },
    );
    f2.add(si("shop", "orders", "example.org", "2026-01-01T00:00:00Z"));
    let w = f2.compute(NOW);
    let v = w.identities[&ObjKey::new("shop", "orders")]
        .excluded
        .clone()
        .unwrap();
    assert_eq!(v.reason, Reason::TrustDomainConflict);
    assert!(v.message.contains("shop/tenant"), "{}", v.message);
    assert_eq!(w.desired["shop"]["example.org.json"], "{\"delivered\":1}");
}

#[test]
fn over_the_limit_is_not_written() {
    let mut f = Fixture::new();
    let g = growth();
    let per = g.identity_overhead + "spiffe://example.org/svc-00000".len();
    // Beyond the first entry each costs two bytes less than `identity_overhead`.
    let n = CONFIGMAP_LIMIT / (per - 2) + 2;
    for i in 0..n {
        let mut s = si(
            "big",
            &format!("svc-{i:05}"),
            "example.org",
            "2026-01-01T00:00:00Z",
        );
        s.metadata.uid = Some(format!("u{i}"));
        // one shared key is enough to measure sizes
        f.identities.push(Arc::new(s));
    }
    let (pem, _) = spiffile_provision::generate_service_key().unwrap();
    for s in f.identities.clone() {
        f.secrets.apply(&Event::Apply(secret_for(&s, &pem)));
    }
    let w = f.compute(NOW);
    assert!(w.blocked.contains_key("big"), "{} identities fit", n);
    assert!(!w.desired.contains_key("big"));
    assert!(w.identities.values().all(|s| s.too_large.is_some()));
    assert!(w.namespace_bytes["big"] > CONFIGMAP_LIMIT);
}

#[test]
fn growth_matches_the_writer() {
    let g = growth();
    assert!(g.key > 150 && g.key < 400, "{}", g.key);
    assert!(g.identity_overhead > g.key);
}
