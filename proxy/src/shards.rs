//! A string-keyed map split into a fixed number of shards, each behind its
//! own `Arc`: a clone shares every shard, and a change copies only the
//! shard it touches. The route table is such a map, so replacing one app's
//! routes costs a few dozen entries whatever the number of hosts, while a
//! lookup stays one hash of the key plus one `HashMap` probe.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Shards per map: at 10,000 hosts a change copies about 160 entries.
const SHARDS: usize = 64;

/// The map. Cloning it costs `SHARDS` reference counts.
#[derive(Debug, Clone)]
pub(crate) struct Shards<V> {
    shards: Box<[Arc<Shard<V>>]>,
}

/// Keys are shared strings: copying a shard copies reference counts, not
/// text.
type Shard<V> = HashMap<Arc<str>, V>;

impl<V> Default for Shards<V> {
    fn default() -> Self {
        let empty = Arc::new(HashMap::new());
        Self {
            shards: (0..SHARDS).map(|_| empty.clone()).collect(),
        }
    }
}

/// Which shard a key lives in: FNV-1a over its bytes, cheap for the short
/// keys (host names, app names) the table holds, and fixed (not
/// `RandomState`), so a key has the same shard in every clone of a map.
fn shard_of(key: &str) -> usize {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // Mix the high bits down: the low bits of FNV alone spread short
        // keys that differ only at the end less evenly.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl<V: Clone> Shards<V> {
    /// A map of these entries.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (Arc<str>, V)>) -> Self {
        let mut maps: Vec<Shard<V>> = (0..SHARDS).map(|_| HashMap::new()).collect();
        for (k, v) in entries {
            maps[shard_of(&k)].insert(k, v);
        }
        Self {
            shards: maps.into_iter().map(Arc::new).collect(),
        }
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.shards[shard_of(key)].get(key)
    }

    /// Sets (`Some`) or removes (`None`) the value of `key`, copying its
    /// shard first if another clone shares it.
    pub(crate) fn set(&mut self, key: &str, value: Option<V>) {
        let shard = Arc::make_mut(&mut self.shards[shard_of(key)]);
        match value {
            Some(v) => match shard.get_mut(key) {
                Some(slot) => *slot = v,
                None => {
                    shard.insert(key.into(), v);
                }
            },
            None => {
                shard.remove(key);
            }
        }
    }

    /// Every value.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_copies_one_shard_and_leaves_clones_as_they_were() {
        let map = Shards::from_entries((0..1000).map(|i| (format!("h{i}").into(), i)));
        let mut changed = map.clone();
        changed.set("h1", Some(-1));
        changed.set("h2", None);
        changed.set("new", Some(7));
        assert_eq!(map.get("h1"), Some(&1));
        assert_eq!(map.get("h2"), Some(&2));
        assert_eq!(map.get("new"), None);
        assert_eq!(changed.get("h1"), Some(&-1));
        assert_eq!(changed.get("h2"), None);
        assert_eq!(changed.get("new"), Some(&7));
        let shared = map
            .shards
            .iter()
            .zip(changed.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(
            shared >= SHARDS - 3,
            "only touched shards are copied: {shared}"
        );
        assert_eq!(changed.values().count(), 1000);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let map =
            Shards::from_entries((0..6400).map(|i| (format!("app-{i}.bench.test").into(), ())));
        let biggest = map.shards.iter().map(|s| s.len()).max().unwrap_or(0);
        assert!(biggest < 200, "a shard holds {biggest} of 6400 keys");
    }
}
