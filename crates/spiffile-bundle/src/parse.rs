//! Reading a bundle document in one streaming pass, in memory bounded by a
//! small multiple of its size.
//!
//! Nothing is kept as a `serde_json::Value` tree (32 bytes and more per
//! element): entries are validated as they are read, each key becomes a
//! [`PublicKey`] at once, unknown members are skipped (in identity entries)
//! or kept as text ([`Extras`]), the names seen are remembered as 64-bit
//! keyed hashes, and at most [`MAX_WARNINGS`] warnings are kept (the others
//! are counted). A document whose `identities` comes before `trust_domain`
//! is read twice (the entries cannot be checked before the trust domain is
//! known); the canonical form puts `trust_domain` first.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use spiffile_id::{SpiffeId, TrustDomain};

use crate::document::{BundleError, SPIFFILE_VERSION, Warning, WarningKind};
use crate::extras::Extras;
use crate::key::{PublicKey, RawJwk};

/// The most warnings of each [`WarningKind`] a parse keeps; the rest are
/// counted in one last warning of that kind (a hostile document can hold
/// millions of bad entries).
pub const MAX_WARNINGS: usize = 1000;

/// What a parse produced.
pub(crate) struct Parsed {
    pub(crate) trust_domain: TrustDomain,
    pub(crate) identities: BTreeMap<SpiffeId, Vec<PublicKey>>,
    pub(crate) extra: Extras,
    pub(crate) warnings: Vec<Warning>,
}

pub(crate) fn json_error(e: &serde_json::Error) -> BundleError {
    // serde_json appends " at line L column C" to its own message; keep the
    // bare message and report the position separately.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    if message.ends_with("expected `identities` to be an object") {
        return BundleError::WrongType {
            member: "identities",
            expected: "an object",
        };
    }
    if message.starts_with("duplicate member `") {
        let name = message
            .trim_start_matches("duplicate member `")
            .trim_end_matches('`')
            .to_owned();
        return BundleError::DuplicateMember(name);
    }
    BundleError::Json {
        message,
        line: e.line(),
        column: e.column(),
    }
}

/// Parses a document (the size cap is checked by the caller).
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, BundleError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        // Valid JSON of another type, or not JSON at all?
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => BundleError::NotAnObject,
            Err(e) => json_error(&e),
        });
    }
    let mut loader = None;
    let top = read(
        bytes,
        TopVisitor {
            loader: &mut loader,
        },
    )?;
    match top.version {
        None => return Err(BundleError::MissingMember("spiffile_version")),
        Some(Version::Other(text)) => return Err(BundleError::UnsupportedVersion(text)),
        Some(Version::One) => {}
    }
    let td = match top.trust_domain {
        None => return Err(BundleError::MissingMember("trust_domain")),
        Some(TdMember::NotStr) => {
            return Err(BundleError::WrongType {
                member: "trust_domain",
                expected: "a string",
            });
        }
        Some(TdMember::Invalid(e)) => return Err(BundleError::InvalidTrustDomain(e)),
        Some(TdMember::Valid(td)) => td,
    };
    match top.identities {
        None => return Err(BundleError::MissingMember("identities")),
        Some(Identities::Read) => {}
        Some(Identities::Deferred) => {
            // `identities` came first: read the document again, entries only.
            let mut again = Some(Loader::new(td.clone()));
            read(bytes, IdentitiesOnly { loader: &mut again })?;
            loader = again;
        }
    }
    let loader = loader.unwrap_or_else(|| Loader::new(td.clone()));
    Ok(loader.finish(top.extra))
}

fn read<'de, V: Visitor<'de>>(bytes: &'de [u8], visitor: V) -> Result<V::Value, BundleError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de.deserialize_map(visitor).map_err(|e| json_error(&e))?;
    de.end().map_err(|e| json_error(&e))?;
    Ok(value)
}

/// `spiffile_version` as read: 1, or its text (shortened) for the error.
enum Version {
    One,
    Other(String),
}

/// `trust_domain` as read.
enum TdMember {
    Valid(TrustDomain),
    Invalid(spiffile_id::IdError),
    NotStr,
}

/// Whether `identities` was read (into the loader) or must be read again.
enum Identities {
    Read,
    Deferred,
}

#[derive(Default)]
struct Top {
    trust_domain: Option<TdMember>,
    version: Option<Version>,
    identities: Option<Identities>,
    extra: Extras,
}

struct TopVisitor<'l> {
    loader: &'l mut Option<Loader>,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bundle object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let dup = match &*key {
                "trust_domain" => {
                    let v: &'de RawValue = map.next_value()?;
                    top.trust_domain.replace(trust_domain(v)).is_some()
                }
                "spiffile_version" => {
                    let v: &'de RawValue = map.next_value()?;
                    let text = v.get();
                    let version = if text.parse::<u64>().ok() == Some(SPIFFILE_VERSION) {
                        Version::One
                    } else {
                        Version::Other(shorten(text))
                    };
                    top.version.replace(version).is_some()
                }
                "identities" => {
                    let state = match &top.trust_domain {
                        Some(TdMember::Valid(td)) if top.identities.is_none() => {
                            let loader = self.loader.insert(Loader::new(td.clone()));
                            map.next_value_seed(IdentitiesSeed { loader })?;
                            Identities::Read
                        }
                        _ => {
                            map.next_value_seed(IdentitiesShape)?;
                            Identities::Deferred
                        }
                    };
                    top.identities.replace(state).is_some()
                }
                _ => {
                    // Kept as text; a repeated unknown member is kept as
                    // written (it selects nothing).
                    let v: &'de RawValue = map.next_value()?;
                    top.extra.push(&key, v);
                    false
                }
            };
            if dup {
                return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
            }
        }
        Ok(top)
    }
}

fn trust_domain(v: &RawValue) -> TdMember {
    match serde_json::from_str::<Cow<'_, str>>(v.get()) {
        Ok(s) => match TrustDomain::new(&s) {
            Ok(td) => TdMember::Valid(td),
            Err(e) => TdMember::Invalid(e),
        },
        Err(_) => TdMember::NotStr,
    }
}

fn shorten(text: &str) -> String {
    if text.len() <= 40 {
        return text.to_owned();
    }
    let mut cut = 37;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// The second pass: `identities` only.
struct IdentitiesOnly<'l> {
    loader: &'l mut Option<Loader>,
}

impl<'de> Visitor<'de> for IdentitiesOnly<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bundle object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (&*key, self.loader.as_mut()) {
                ("identities", Some(loader)) => map.next_value_seed(IdentitiesSeed { loader })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `identities` skipped, checking only that it is an object.
struct IdentitiesShape;

impl<'de> DeserializeSeed<'de> for IdentitiesShape {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdentitiesShape {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`identities` to be an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Warnings, at most [`MAX_WARNINGS`] of each kind (so that a flood of
/// advice never hides a problem); the others counted.
#[derive(Default)]
struct Warnings {
    list: Vec<Warning>,
    kept: [usize; 4],
    omitted: [usize; 4],
}

const KINDS: [WarningKind; 4] = [
    WarningKind::SkippedIdentity,
    WarningKind::SkippedKey,
    WarningKind::SharedKey,
    WarningKind::Advice,
];

fn slot(kind: WarningKind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(3)
}

impl Warnings {
    fn push(
        &mut self,
        kind: WarningKind,
        identity: &str,
        key_index: Option<usize>,
        message: String,
    ) {
        let i = slot(kind);
        if self.kept[i] >= MAX_WARNINGS {
            self.omitted[i] += 1;
            return;
        }
        self.kept[i] += 1;
        self.list.push(Warning {
            kind,
            identity: identity.to_owned(),
            key_index,
            message,
        });
    }

    fn full(&self, kind: WarningKind) -> bool {
        self.kept[slot(kind)] >= MAX_WARNINGS
    }
}

/// An identity seen more than once: how many times, and its warning in
/// `Loader::repeat_warnings` when there was room for one (kept small: a
/// hostile document can repeat every name).
struct Repeat {
    count: u32,
    warning: Option<u32>,
}

/// The entries read so far.
pub(crate) struct Loader {
    td: TrustDomain,
    identities: BTreeMap<SpiffeId, Vec<PublicKey>>,
    warnings: Warnings,
    hasher: RandomState,
    /// Keyed hashes of every valid identity name seen (a collision between
    /// two different names, about one in 10^7 for a million names, would
    /// only ever refuse both: fail closed).
    seen: HashSet<u64>,
    repeated: HashMap<u64, Repeat>,
    repeat_warnings: Vec<Warning>,
}

impl Loader {
    fn new(td: TrustDomain) -> Self {
        Loader {
            td,
            identities: BTreeMap::new(),
            warnings: Warnings::default(),
            hasher: RandomState::new(),
            seen: HashSet::new(),
            repeated: HashMap::new(),
            repeat_warnings: Vec::new(),
        }
    }

    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    fn skip(&mut self, name: &str, message: String) {
        self.warnings
            .push(WarningKind::SkippedIdentity, name, None, message);
    }

    /// One entry of `identities`: its name checked, its value read.
    fn entry<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        let id = match SpiffeId::new(name) {
            Ok(id) if id.is_member_of(&self.td) => id.with_shared_trust_domain(&self.td),
            Ok(_) => {
                let msg = format!("not in the trust domain `{}`", self.td);
                self.skip(name, msg);
                return map.next_value::<IgnoredAny>().map(|_| ());
            }
            Err(e) => {
                self.skip(name, format!("not a SPIFFE ID: it {e}"));
                return map.next_value::<IgnoredAny>().map(|_| ());
            }
        };
        let h = self.hash(name);
        if !self.seen.insert(h) {
            // An identity that appears more than once is not trusted at
            // all: implementations differ on which entry wins (the Python
            // reference takes the last, a streaming reader the first), so
            // any choice would let one bundle authorize different keys in
            // different verifiers.
            let full = self.warnings.full(WarningKind::SkippedIdentity);
            let repeat = self.repeated.entry(h).or_insert(Repeat {
                count: 1,
                warning: None,
            });
            repeat.count = repeat.count.saturating_add(1);
            if repeat.count == 2 && !full {
                self.warnings.kept[slot(WarningKind::SkippedIdentity)] += 1;
                repeat.warning = Some(self.repeat_warnings.len() as u32);
                self.repeat_warnings.push(Warning {
                    kind: WarningKind::SkippedIdentity,
                    identity: name.to_owned(),
                    key_index: None,
                    message: String::new(),
                });
            }
            return map.next_value::<IgnoredAny>().map(|_| ());
        }
        let entry = map.next_value_seed(EntrySeed {
            name,
            warnings: &mut self.warnings,
        })?;
        self.load(id, name, entry);
        Ok(())
    }

    fn load(&mut self, id: SpiffeId, name: &str, entry: Entry) {
        let keys = match entry {
            Entry::Keys { keys, count } if keys.is_empty() => {
                let msg = if count == 0 {
                    "has no keys"
                } else {
                    "has no usable key"
                };
                return self.skip(name, msg.into());
            }
            Entry::Keys { keys, .. } => keys,
            Entry::Problem(problem) => return self.skip(name, problem.into()),
        };
        self.identities.insert(id, keys);
    }

    fn finish(mut self, extra: Extras) -> Parsed {
        if !self.repeated.is_empty() {
            let hasher = &self.hasher;
            let repeated = &self.repeated;
            self.identities
                .retain(|id, _| !repeated.contains_key(&hasher.hash_one(id.as_str())));
            self.warnings
                .list
                .retain(|w| !repeated.contains_key(&hasher.hash_one(w.identity.as_str())));
            let mut unlisted = 0;
            for r in self.repeated.into_values() {
                match r
                    .warning
                    .and_then(|i| self.repeat_warnings.get_mut(i as usize))
                {
                    Some(w) => {
                        w.message = format!(
                            "appears {} times in `identities`; none of its entries is used, so its tokens are refused (keep exactly one)",
                            r.count
                        );
                    }
                    None => unlisted += 1,
                }
            }
            self.warnings.omitted[slot(WarningKind::SkippedIdentity)] += unlisted;
            self.repeat_warnings
                .sort_by(|a, b| a.identity.cmp(&b.identity));
            self.warnings.list.append(&mut self.repeat_warnings);
        }
        let mut warnings = self.warnings;
        advise_shared_keys(&self.identities, &mut warnings);
        let mut list = warnings.list;
        for (kind, n) in KINDS.into_iter().zip(warnings.omitted) {
            if n > 0 {
                let what = match kind {
                    WarningKind::SkippedIdentity => "more identity entries were skipped",
                    WarningKind::SkippedKey => "more keys were skipped",
                    WarningKind::SharedKey => "more keys are bound to more than one identity",
                    _ => "more pieces of advice",
                };
                list.push(Warning {
                    kind,
                    identity: "…".into(),
                    key_index: None,
                    message: format!(
                        "{n} {what}, not listed (only the first {MAX_WARNINGS} of each kind are kept)"
                    ),
                });
            }
        }
        Parsed {
            trust_domain: self.td,
            identities: self.identities,
            extra,
            warnings: list,
        }
    }
}

/// A [`WarningKind::SharedKey`] for each public key bound to more than one
/// identity: whoever holds that private key can sign as every one of them.
fn advise_shared_keys(identities: &BTreeMap<SpiffeId, Vec<PublicKey>>, warnings: &mut Warnings) {
    let mut seen: HashMap<([u8; 32], [u8; 32]), &SpiffeId> = HashMap::new();
    for (id, keys) in identities {
        for (i, k) in keys.iter().enumerate() {
            if let Some(first) = seen.insert((*k.x(), *k.y()), id)
                && first != id
            {
                warnings.push(
                    WarningKind::SharedKey,
                    id.as_str(),
                    Some(i),
                    format!(
                        "the same public key is also bound to `{first}`: its holder can sign as both, and verifiers accept that"
                    ),
                );
            }
        }
    }
}

struct IdentitiesSeed<'l> {
    loader: &'l mut Loader,
}

impl<'de> DeserializeSeed<'de> for IdentitiesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdentitiesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`identities` to be an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            self.loader.entry(&name, &mut map)?;
        }
        Ok(())
    }
}

/// One identity entry as read: its valid keys, or what is wrong with its
/// shape (reported as a warning; the document itself is fine).
enum Entry {
    Keys { keys: Vec<PublicKey>, count: usize },
    Problem(&'static str),
}

struct EntrySeed<'a> {
    name: &'a str,
    warnings: &'a mut Warnings,
}

const NOT_OBJECT: Entry = Entry::Problem("is not a JSON object");

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an identity entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut keys: Option<Option<(Vec<PublicKey>, usize)>> = None;
        let mut repeated = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "keys" && keys.is_none() {
                keys = Some(map.next_value_seed(KeysSeed {
                    name: self.name,
                    warnings: self.warnings,
                })?);
            } else {
                repeated |= key == "keys";
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match (keys, repeated) {
            (_, true) => Entry::Problem("has the member `keys` twice"),
            (None, _) => Entry::Problem("has no `keys` member"),
            (Some(None), _) => Entry::Problem("`keys` is not an array"),
            (Some(Some((keys, count))), _) => Entry::Keys { keys, count },
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(NOT_OBJECT)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
        Ok(NOT_OBJECT)
    }
}

/// The `keys` member: each JWK validated as it is read (`None` when the
/// member is not an array). Returns the usable keys and how many there were.
struct KeysSeed<'a> {
    name: &'a str,
    warnings: &'a mut Warnings,
}

impl<'de> DeserializeSeed<'de> for KeysSeed<'_> {
    type Value = Option<(Vec<PublicKey>, usize)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeysSeed<'_> {
    type Value = Option<(Vec<PublicKey>, usize)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWK list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut good: Vec<PublicKey> = Vec::new();
        // kid hash -> index in `good`, so a repeated kid is found without
        // comparing every pair.
        let hasher = RandomState::new();
        let mut kids: HashMap<u64, usize> = HashMap::new();
        let mut count = 0;
        while let Some(raw) = seq.next_element::<RawJwk<'de>>()? {
            let i = count;
            count += 1;
            match PublicKey::from_raw(raw) {
                Ok(k) => {
                    let h = hasher.hash_one(k.kid());
                    if kids.get(&h).is_some_and(|&j| good[j].kid() == k.kid()) {
                        let msg = format!("repeats the kid `{}` of an earlier key", k.kid());
                        self.warnings
                            .push(WarningKind::SkippedKey, self.name, Some(i), msg);
                        continue;
                    }
                    if k.key_use().is_none() {
                        let msg = "has no `use` member; \"jwt-svid\" is recommended".to_owned();
                        self.warnings
                            .push(WarningKind::Advice, self.name, Some(i), msg);
                    }
                    kids.entry(h).or_insert(good.len());
                    good.push(k);
                }
                Err(e) => self.warnings.push(
                    WarningKind::SkippedKey,
                    self.name,
                    Some(i),
                    format!("key {e}"),
                ),
            }
        }
        good.shrink_to_fit();
        Ok(Some((good, count)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
