//! The item table's token index: item token -> slot, as one array of 8-byte buckets.
//!
//! A general hash map stored each 32-byte token again beside its slot (about 90 bytes per
//! item), so that at a million items every insert at open missed the cache twice in an
//! 80 MiB table. Here a bucket holds only the token's first 32 bits (its hash: tokens are
//! keyed HMAC outputs, uniformly random and out of an attacker's control) above the slot;
//! the token itself is already in the item table, which confirms a match. Linear probing at
//! a load of at most one half keeps probes short, the table a fifth of the size (16 to 32
//! bytes per item), and lets a bulk load prefetch the bucket of an item it will insert soon.

/// A bucket that holds no entry. No entry equals it: slots stay below `u32::MAX`
/// ([`super::state::MAX_ITEMS`]).
const EMPTY: u64 = u64::MAX;

/// Fewest buckets of a non-empty table.
const MIN_BUCKETS: usize = 16;

/// Most buckets: the hash has 32 bits.
const MAX_BUCKETS: usize = 1 << 32;

/// The 32-bit hash of a token: its first four bytes.
fn hash_of(token: &[u8; 32]) -> u32 {
    u32::from_le_bytes([token[0], token[1], token[2], token[3]])
}

/// Token -> slot. The tokens themselves live with the items: lookups take `token_of(slot)`,
/// the token of a live slot, to confirm a candidate.
#[derive(Default)]
pub(crate) struct TokenIndex {
    /// `EMPTY`, or `hash << 32 | slot`; a power of two of them (or none).
    buckets: Vec<u64>,
    /// Entries held.
    len: usize,
}

impl TokenIndex {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table holds.
    #[cfg(feature = "internals")]
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.capacity() * 8
    }

    /// The slot of `token`, if it has one.
    pub(crate) fn get<'a>(
        &self,
        token: &[u8; 32],
        token_of: impl Fn(u64) -> Option<&'a [u8; 32]>,
    ) -> Option<u64> {
        self.find(token, token_of)
            .map(|i| self.buckets[i] & SLOT_MASK)
    }

    /// Adds `token` at `slot`; the caller knows the token is not in the table.
    pub(crate) fn insert(&mut self, token: &[u8; 32], slot: u64) {
        debug_assert!(slot < u64::from(u32::MAX));
        self.reserve(1);
        let hash = hash_of(token);
        self.put(u64::from(hash) << 32 | slot);
        self.len += 1;
    }

    /// Removes `token`; returns its slot, if it had one.
    pub(crate) fn remove<'a>(
        &mut self,
        token: &[u8; 32],
        token_of: impl Fn(u64) -> Option<&'a [u8; 32]>,
    ) -> Option<u64> {
        let at = self.find(token, token_of)?;
        let slot = self.buckets[at] & SLOT_MASK;
        // Backward shift: each later entry of the run moves into the hole when its home
        // bucket is not between the hole and where it lies, so that every entry stays
        // reachable from its home without tombstones.
        let mask = self.buckets.len() - 1;
        let mut hole = at;
        let mut next = (at + 1) & mask;
        while self.buckets[next] != EMPTY {
            let home = self.home(self.buckets[next]);
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.buckets[hole] = self.buckets[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// Makes room for `additional` more entries at a load of at most one half.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = self.len.saturating_add(additional).saturating_mul(2);
        if wanted > self.buckets.len() && self.buckets.len() < MAX_BUCKETS {
            self.rebuild(wanted.next_power_of_two().clamp(MIN_BUCKETS, MAX_BUCKETS));
        }
    }

    /// Shrinks the table to the fewest buckets its entries need.
    pub(crate) fn shrink_to_fit(&mut self) {
        let wanted = match self.len {
            0 => 0,
            n => (n * 2).next_power_of_two().clamp(MIN_BUCKETS, MAX_BUCKETS),
        };
        if wanted < self.buckets.len() {
            self.rebuild(wanted);
        }
    }

    /// Asks for the home bucket of `token` to be brought into the cache (a bulk load calls
    /// it some items ahead).
    pub(crate) fn prefetch(&self, token: &[u8; 32]) {
        if !self.buckets.is_empty() {
            let home = hash_of(token) as usize & (self.buckets.len() - 1);
            crate::ivf::prefetch(&self.buckets[home..=home]);
        }
    }

    /// The bucket holding `token`.
    fn find<'a>(
        &self,
        token: &[u8; 32],
        token_of: impl Fn(u64) -> Option<&'a [u8; 32]>,
    ) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let hash = u64::from(hash_of(token));
        let mask = self.buckets.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let entry = self.buckets[i];
            if entry == EMPTY {
                return None;
            }
            if entry >> 32 == hash && token_of(entry & SLOT_MASK) == Some(token) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The home bucket of an entry.
    fn home(&self, entry: u64) -> usize {
        (entry >> 32) as usize & (self.buckets.len() - 1)
    }

    /// Writes `entry` into the first free bucket from its home.
    fn put(&mut self, entry: u64) {
        let mask = self.buckets.len() - 1;
        let mut i = self.home(entry);
        while self.buckets[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.buckets[i] = entry;
    }

    /// Moves every entry into a table of `buckets` buckets (their hashes are in the
    /// entries: no token is read).
    fn rebuild(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        for entry in old.into_iter().filter(|&e| e != EMPTY) {
            self.put(entry);
        }
    }
}

/// The slot bits of an entry.
const SLOT_MASK: u64 = (1 << 32) - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    use std::collections::HashMap;

    /// A token whose hash (first four bytes) is `hash` and whose other bytes are `tail`:
    /// many tokens of one hash make long runs and wrap around the table's end.
    fn token(hash: u32, tail: u64) -> [u8; 32] {
        let mut t = [0u8; 32];
        t[..4].copy_from_slice(&hash.to_le_bytes());
        t[4..12].copy_from_slice(&tail.to_le_bytes());
        t
    }

    /// Random inserts and removes, with few distinct hashes so that runs collide, wrap
    /// and shift, agree with a `HashMap` at every step.
    #[test]
    fn agrees_with_a_hash_map_under_colliding_inserts_and_removes() {
        let mut rng = StdRng::seed_from_u64(7);
        for hashes in [3u32, 40, u32::MAX] {
            let mut index = TokenIndex::default();
            let mut slots: Vec<Option<[u8; 32]>> = Vec::new();
            let mut model: HashMap<[u8; 32], u64> = HashMap::new();
            for step in 0..20_000u64 {
                let hash = match hashes {
                    u32::MAX => rng.random(),
                    n => u32::MAX - rng.random_range(0..n), // near the top: wraps
                };
                let t = token(hash, rng.random_range(0..3_000));
                let token_of = |s: u64| slots.get(s as usize).and_then(Option::as_ref);
                assert_eq!(index.get(&t, token_of), model.get(&t).copied(), "{step}");
                if rng.random_bool(0.45) {
                    let removed = index.remove(&t, |s| slots.get(s as usize)?.as_ref());
                    assert_eq!(removed, model.remove(&t));
                    if let Some(s) = removed {
                        slots[s as usize] = None;
                    }
                } else if let std::collections::hash_map::Entry::Vacant(v) = model.entry(t) {
                    let slot = slots.len() as u64;
                    slots.push(Some(t));
                    index.insert(&t, slot);
                    v.insert(slot);
                }
                assert_eq!(index.len(), model.len());
                if step % 5_000 == 0 {
                    index.shrink_to_fit();
                }
            }
            for (t, &slot) in &model {
                let token_of = |s: u64| slots.get(s as usize).and_then(Option::as_ref);
                assert_eq!(index.get(t, token_of), Some(slot));
            }
            assert!(index.buckets.len() >= 2 * index.len());
        }
    }

    #[test]
    fn empty_and_shrunk_tables_answer_none() {
        let mut index = TokenIndex::default();
        let none = |_: u64| None;
        assert_eq!(index.get(&token(1, 1), none), None);
        assert_eq!(index.remove(&token(1, 1), none), None);
        index.prefetch(&token(1, 1));
        let t = token(5, 5);
        index.insert(&t, 0);
        assert_eq!(index.get(&t, |_| Some(&t)), Some(0));
        assert_eq!(index.remove(&t, |_| Some(&t)), Some(0));
        index.shrink_to_fit();
        assert_eq!(index.bytes(), 0);
        assert_eq!(index.get(&t, |_| Some(&t)), None);
    }
}
