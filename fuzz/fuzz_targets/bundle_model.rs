//! The streaming bundle reader against a model built the slow, obvious way
//! (a `serde_json::Value` per entry, every occurrence of every name kept):
//! the same identities are trusted with the same keys, an identity that
//! appears twice is never trusted (issue 15, item 4), and extra members are
//! the ones the document holds.
#![no_main]

use std::collections::BTreeMap;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use spiffile_bundle::{Bundle, PublicKey, SpiffeId, TrustDomain};

/// An object's members in order, repeats kept.
struct Members<V>(Vec<(String, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Members<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Members<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// Whether any object inside `text` repeats a member (a `Value` would hide
/// it, so such entries are left out of the comparison).
fn has_repeats(text: &str) -> bool {
    struct Walk(bool);
    impl<'de> Visitor<'de> for &mut Walk {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            let mut names = std::collections::HashSet::new();
            while let Some(k) = m.next_key::<String>()? {
                self.0 |= !names.insert(k);
                m.next_value_seed(&mut *self)?;
            }
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            while s.next_element_seed(&mut *self)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> { Ok(()) }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> { Ok(()) }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> { Ok(()) }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> { Ok(()) }
        fn visit_str<E>(self, _: &str) -> Result<(), E> { Ok(()) }
        fn visit_unit<E>(self) -> Result<(), E> { Ok(()) }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for &mut Walk {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    let mut w = Walk(false);
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(&mut w, &mut de).is_err() || w.0
}

/// What the model trusts: identity -> kids, from the `identities` object.
fn model(td: &TrustDomain, identities: &RawValue) -> Option<BTreeMap<String, Vec<String>>> {
    let Members::<Box<RawValue>>(raw) = serde_json::from_str(identities.get()).ok()?;
    if raw.iter().any(|(_, e)| has_repeats(e.get())) {
        return None;
    }
    let mut entries = Vec::new();
    for (name, e) in raw {
        entries.push((name, serde_json::from_str::<Value>(e.get()).ok()?));
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &entries {
        *count.entry(name).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (name, entry) in &entries {
        let Ok(id) = SpiffeId::new(name) else { continue };
        if !id.is_member_of(td) || count[name.as_str()] > 1 {
            continue;
        }
        let Some(keys) = entry.get("keys").and_then(Value::as_array) else {
            continue;
        };
        let mut kids: Vec<String> = Vec::new();
        for k in keys {
            if let Ok(key) = PublicKey::from_jwk(k)
                && !kids.iter().any(|kid| kid == key.kid())
            {
                kids.push(key.kid().to_owned());
            }
        }
        if !kids.is_empty() {
            out.insert(name.clone(), kids);
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json_quiet(data) else {
        return;
    };
    // The document parsed, so it is JSON: the model reads it too. An
    // object repeating a member inside an entry (`keys` twice) makes the
    // entry a problem for both; those documents are left out of the model.
    let Ok(Members::<Box<RawValue>>(top)) = serde_json::from_slice(data) else {
        return;
    };
    let Some((_, identities)) = top.iter().find(|(k, _)| k == "identities") else {
        panic!("parsed without `identities`")
    };
    let Some(want) = model(bundle.trust_domain(), identities) else {
        return;
    };
    let got: BTreeMap<String, Vec<String>> = bundle
        .identities()
        .map(|(id, keys)| {
            (
                id.to_string(),
                keys.iter().map(|k| k.kid().to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(got, want, "trusted identities differ from the model");
    // Extra members: every top-level member other than the three.
    let mut extra = serde_json::Map::new();
    for (k, v) in top {
        if !matches!(k.as_str(), "trust_domain" | "spiffile_version" | "identities") {
            extra.insert(k, serde_json::from_str(v.get()).expect("a member of a parsed document"));
        }
    }
    assert_eq!(bundle.extra_members(), extra);
});
