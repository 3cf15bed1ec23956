//! `Serialize` and `Deserialize` for SPIFFE IDs and trust domains (the
//! `serde` feature): as strings, validated on the way in.

use crate::{SpiffeId, TrustDomain};
use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

struct IdVisitor;
impl Visitor<'_> for IdVisitor {
    type Value = SpiffeId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SPIFFE ID string")
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<SpiffeId, E> {
        SpiffeId::new(v).map_err(|e| E::custom(format_args!("SPIFFE ID {e}")))
    }
}
impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(IdVisitor)
    }
}

struct TdVisitor;
impl Visitor<'_> for TdVisitor {
    type Value = TrustDomain;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a trust domain name")
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<TrustDomain, E> {
        TrustDomain::new(v).map_err(|e| E::custom(format_args!("trust domain {e}")))
    }
}
impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::{SpiffeId, TrustDomain};

    #[test]
    fn ids_serialize_as_strings_and_validate_on_the_way_in() {
        let id = SpiffeId::new("spiffe://example.org/a").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"spiffe://example.org/a\""
        );
        let back: SpiffeId = serde_json::from_str("\"spiffe://example.org/a\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<SpiffeId>("\"spiffe://example.org/\"").unwrap_err();
        assert!(err.to_string().contains("trailing slash"), "{err}");
        let td: TrustDomain = serde_json::from_str("\"example.org\"").unwrap();
        assert_eq!(serde_json::to_string(&td).unwrap(), "\"example.org\"");
        assert!(serde_json::from_str::<TrustDomain>("\"Example.org\"").is_err());
    }
}
