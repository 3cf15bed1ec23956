//! A bounded, sharded map for the verified-token and minted-token caches.
//!
//! Entries are found by a 64-bit keyed hash (SipHash with a per-process
//! random key) and then compared in full by the caller's `matches` closure,
//! so a hash collision can only cost a miss, never return another entry.
//! Each shard is a `Mutex` on its own cache line: two threads contend only
//! when they touch the same shard, and a lookup holds the lock for one hash
//! probe and one comparison. Every entry carries the time (seconds since the
//! epoch) after which it is useless; a full shard first drops those, then the
//! entry that would expire soonest.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The hashes are already uniform: the shard maps use them as they are.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever used; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A doorkeeper in front of a cache, as TinyLFU has: a direct-mapped table
/// of the keyed hashes of keys seen once. Entries are admitted to the cache
/// from their key's second sighting on, so a stream of keys that never come
/// back (fresh tokens, new audiences) costs one relaxed atomic store each
/// instead of an allocation, a copy and an eviction in cold memory.
pub(crate) struct SeenOnce(Box<[std::sync::atomic::AtomicU64]>);

impl SeenOnce {
    /// A table of `slots` hashes (rounded up to a power of two; 0: none, and
    /// everything counts as seen).
    pub(crate) fn new(slots: usize) -> Self {
        let slots = if slots == 0 {
            0
        } else {
            slots.next_power_of_two()
        };
        SeenOnce(
            (0..slots)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        )
    }

    /// Whether `hash` is recorded, without recording it (a key that is not
    /// cannot be in a cache this table admits to).
    pub(crate) fn contains(&self, hash: u64) -> bool {
        let mask = self.0.len().wrapping_sub(1);
        self.0
            .get((hash as usize) & mask)
            .is_none_or(|slot| slot.load(std::sync::atomic::Ordering::Relaxed) == hash | 1)
    }

    /// Whether `hash` was seen before; records it either way. A collision
    /// can only admit an entry one sighting early, or one late.
    pub(crate) fn seen_before(&self, hash: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let mask = self.0.len().wrapping_sub(1);
        let Some(slot) = self.0.get((hash as usize) & mask) else {
            return true;
        };
        let tag = hash | 1; // never 0, the empty slot
        if slot.load(Relaxed) == tag {
            return true;
        }
        slot.store(tag, Relaxed);
        false
    }
}

struct Slot<E> {
    /// After this time (seconds since the epoch) the entry is never used.
    useless_after: i64,
    entry: E,
}

type ShardMap<E> = HashMap<u64, Slot<E>, BuildHasherDefault<PassThrough>>;

/// One shard, aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Shard<E>(Mutex<ShardMap<E>>);

/// A bounded map from a keyed hash to entries, split into shards.
pub(crate) struct ShardedCache<E> {
    shards: Box<[Shard<E>]>,
    per_shard: usize,
    state: std::hash::RandomState,
}

impl<E> ShardedCache<E> {
    /// A cache of about `capacity` entries (`capacity` >= 1), in
    /// `max_shards` shards at most.
    pub(crate) fn new(capacity: usize, max_shards: usize) -> Self {
        let capacity = capacity.max(1);
        // Shards of at least 16 entries, a power of two of them.
        let shards = (capacity / 16)
            .clamp(1, max_shards.max(1))
            .next_power_of_two();
        let shards = if shards > max_shards.max(1) {
            shards / 2
        } else {
            shards
        };
        let per_shard = capacity.div_ceil(shards);
        ShardedCache {
            shards: (0..shards)
                .map(|_| Shard(Mutex::new(HashMap::default())))
                .collect(),
            per_shard,
            state: std::hash::RandomState::new(),
        }
    }

    /// The most entries the cache holds.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// The keyed hash of `parts`.
    pub(crate) fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut h = self.state.build_hasher();
        for p in parts {
            h.write_usize(p.len());
            h.write(p);
        }
        h.finish()
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, ShardMap<E>> {
        // The low bits pick the bucket inside a shard; the high bits the shard.
        let index = (hash >> 48) as usize & (self.shards.len() - 1);
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What `found` makes of the entry under `hash`, if the entry is still
    /// of use at `now`; `found` does the full comparison and returns `None`
    /// when the entry is not the one sought.
    pub(crate) fn get<R>(
        &self,
        hash: u64,
        now: i64,
        found: impl FnOnce(&E) -> Option<R>,
    ) -> Option<R> {
        let shard = self.shard(hash);
        let slot = shard.get(&hash)?;
        if slot.useless_after > now {
            found(&slot.entry)
        } else {
            None
        }
    }

    /// Stores `entry` under `hash` (replacing whatever was there) until
    /// `useless_after`.
    pub(crate) fn insert(&self, hash: u64, entry: E, useless_after: i64, now: i64) {
        if useless_after <= now {
            return;
        }
        let mut shard = self.shard(hash);
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            // One pass finds the entry that expires soonest and whether any
            // has expired; only then is the shard swept (a second pass).
            let mut soonest: Option<(u64, i64)> = None;
            for (h, slot) in shard.iter() {
                if soonest.is_none_or(|(_, t)| slot.useless_after < t) {
                    soonest = Some((*h, slot.useless_after));
                }
            }
            match soonest {
                Some((_, t)) if t <= now => shard.retain(|_, slot| slot.useless_after > now),
                Some((h, _)) => {
                    shard.remove(&h);
                }
                None => {}
            }
        }
        shard.insert(
            hash,
            Slot {
                useless_after,
                entry,
            },
        );
    }

    /// The number of entries held (expired ones included until evicted).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_evicts_the_soonest_to_expire() {
        let cache: ShardedCache<u32> = ShardedCache::new(16, 1);
        assert_eq!(cache.capacity(), 16);
        for i in 0..16u32 {
            cache.insert(cache.hash(&[&i.to_le_bytes()]), i, 100 + i64::from(i), 0);
        }
        assert_eq!(cache.len(), 16);
        let h = |i: u32| cache.hash(&[&i.to_le_bytes()]);
        cache.insert(h(99), 99, 1000, 0);
        assert_eq!(cache.len(), 16);
        assert_eq!(cache.get(h(0), 0, |e| Some(*e)), None, "soonest evicted");
        assert_eq!(cache.get(h(1), 0, |e| Some(*e)), Some(1));
        assert_eq!(cache.get(h(99), 0, |e| Some(*e)), Some(99));
        // Expired entries go first, and are never returned.
        assert_eq!(cache.get(h(5), 105, |e| Some(*e)), None);
        cache.insert(h(100), 100, 1000, 110);
        assert_eq!(cache.len(), 16 - 10 + 1, "entries 1..=10 expired at 110");
    }

    #[test]
    fn the_full_comparison_decides() {
        let cache: ShardedCache<&'static str> = ShardedCache::new(64, 4);
        let h = cache.hash(&[b"a"]);
        cache.insert(h, "a", 10, 0);
        assert_eq!(cache.get(h, 0, |e| (*e == "b").then_some(*e)), None);
        assert_eq!(cache.get(h, 0, |e| (*e == "a").then_some(*e)), Some("a"));
        assert_ne!(cache.hash(&[b"ab", b"c"]), cache.hash(&[b"a", b"bc"]));
    }

    #[test]
    fn the_doorkeeper_admits_from_the_second_sighting() {
        let seen = SeenOnce::new(100);
        assert_eq!(seen.0.len(), 128);
        assert!(!seen.seen_before(42));
        assert!(seen.seen_before(42));
        assert!(seen.seen_before(42));
        assert!(!seen.seen_before(42 + 128), "same slot, another key");
        assert!(!seen.seen_before(42), "evicted by the other key");
        assert!(seen.contains(42));
        assert!(!seen.contains(42 + 128), "looked at, not recorded");
        assert!(seen.contains(42));
        assert!(
            SeenOnce::new(0).seen_before(7),
            "no table: everything admitted"
        );
        assert!(SeenOnce::new(0).contains(7));
    }

    #[test]
    fn shard_counts() {
        for (capacity, max_shards) in [(1, 64), (15, 64), (4096, 64), (100_000, 64), (33, 3)] {
            let cache: ShardedCache<u8> = ShardedCache::new(capacity, max_shards);
            assert!(cache.shards.len().is_power_of_two());
            assert!(cache.shards.len() <= max_shards);
            assert!(cache.capacity() >= capacity);
            assert!(cache.capacity() < capacity + cache.shards.len());
        }
    }
}
