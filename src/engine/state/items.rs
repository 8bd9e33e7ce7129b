//! The item table of a [`State`]: slots, handles, the token index, each item's metadata
//! and the indexes kept in step with it, and the selectivity sample.

use std::sync::Arc;

use serde_json::Value;

use crate::filter;
use crate::ivf;
use crate::text::{self, DocTerms};

use super::{ItemEntry, MAX_ITEMS, Residency, SAMPLE_SIZE, State, entry_extra_bytes};

/// The handle of the item in `slot` with id `id`, as lists hold it and scans rank by on
/// equal distances: the slot in the low 32 bits, a 32-bit hash of the id above them. Slots
/// follow the order in which this process inserted or loaded items (a reader numbers them in
/// stored order, a compaction anew); the id's hash depends on the id alone (not on any key,
/// so a data-key rotation, which changes every token, keeps it): items at equal distances
/// (identical vectors, or equal code sums in a quantized scan) rank alike in every process,
/// after a reopen, after compaction and after rotation. Only two tied items whose ids hash
/// alike (a chance of 2^-32) fall back to their slots. The hash lives in memory only, next to
/// the plaintext ids the item table holds anyway.
pub(crate) fn handle_of(slot: u64, id: &str) -> u64 {
    debug_assert!(slot < MAX_ITEMS);
    (u64::from(id_hash(id)) << 32) | (slot & SLOT_BITS)
}

/// FNV-1a (64 bits, folded to 32) of an id: fixed by its definition, so the same on every
/// platform and in every version.
fn id_hash(id: &str) -> u32 {
    let hash = fnv1a64(id.as_bytes());
    (hash ^ (hash >> 32)) as u32
}

/// The 64-bit FNV-1a hash.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The slot of a handle ([`handle_of`]); a plain slot is its own slot.
pub(crate) fn slot_of(handle: u64) -> u64 {
    handle & SLOT_BITS
}

/// The bits of a handle that hold its slot.
const SLOT_BITS: u64 = (1 << 32) - 1;

/// Whether the item with `token` belongs to a sample of shift `shift`: its token's first
/// eight bytes, read as a number, below `2^(64 - shift)` (tokens are keyed hashes, so that is
/// an even `2^-shift` of the items, and the same items in every process).
fn in_sample(token: &[u8; 32], shift: u32) -> bool {
    let mut word = [0u8; 8];
    word.copy_from_slice(&token[..8]);
    u64::from_le_bytes(word).leading_zeros() >= shift
}

/// The sample shift for `n` live items: the least `s` with `n >> s <= SAMPLE_SIZE`.
fn sample_shift_for(n: usize) -> u32 {
    let mut s = 0;
    while (n >> s) > SAMPLE_SIZE {
        s += 1;
    }
    s
}

/// The token of the item in `slot`, if it is live.
fn token_at(items: &[Option<ItemEntry>], slot: u64) -> Option<&[u8; 32]> {
    items.get(slot as usize)?.as_ref().map(|e| &e.token)
}

impl State {
    /// One past the highest slot the item table has held (live or free).
    pub(crate) fn slot_bound(&self) -> u64 {
        self.items.len() as u64
    }

    /// Makes room in the item table for up to `items` more items, exactly, if the allocator
    /// grants it (a load that knows a bound on what it will insert: an overestimate is
    /// address space never touched, which [`State::shrink_to_fit`] gives back; where it is
    /// refused, the table grows as items come instead).
    pub(crate) fn reserve_items_exact(&mut self, items: usize) {
        let free = self.free.len();
        // A refusal is not an error: the room is an optimization.
        let _ = self.items.try_reserve_exact(items.saturating_sub(free));
    }

    /// Number of live items.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Asks for the token index's bucket of `token` to be brought into the cache: a load
    /// calls it some items before inserting the item, so that the misses of one block's
    /// inserts overlap.
    pub(crate) fn prefetch_token(&self, token: &[u8; 32]) {
        self.tokens.prefetch(token);
    }

    /// The slot of a token.
    pub(crate) fn slot(&self, token: &[u8; 32]) -> Option<u64> {
        self.tokens.get(token, |s| token_at(&self.items, s))
    }

    /// [`entry_extra_bytes`] summed over the live items.
    pub(crate) fn extra_bytes(&self) -> u64 {
        self.extra_bytes
    }

    /// Sets the metadata of a live slot.
    pub(crate) fn set_metadata(&mut self, slot: u64, metadata: Option<Arc<Value>>) {
        let Some(Some(e)) = self.items.get_mut(slot as usize) else {
            return;
        };
        let old = std::mem::replace(&mut e.metadata, metadata.clone());
        self.unindex_metadata(slot, old.as_deref());
        if let Some(m) = &metadata {
            self.index_metadata(slot, m);
        }
    }

    /// Adds a slot's metadata to the equality, range and pattern indexes and its text
    /// fields to theirs, as the schema says.
    fn index_metadata(&mut self, slot: u64, metadata: &Value) {
        let schema = &self.schema;
        let covered = |path: &str| schema.field(path).coverage();
        self.meta.insert(
            slot,
            Some(DocTerms::of_terms(filter::index_terms(metadata, &covered))),
        );
        self.ranges.insert(slot, metadata, &covered);
        if !schema.is_plain() {
            self.patterns.insert(slot, metadata, &covered);
        }
        for (field, index) in &mut self.field_texts {
            let strings = filter::strings_at(metadata, field);
            if !strings.is_empty() {
                index.insert(slot, Some(text::analyze_all(&strings)));
            }
        }
    }

    /// Takes a slot's metadata (the document `index_metadata` was given) out of the
    /// metadata and text-field indexes.
    fn unindex_metadata(&mut self, slot: u64, metadata: Option<&Value>) {
        self.meta.remove(slot);
        let schema = &self.schema;
        let covered = |path: &str| schema.field(path).coverage();
        if let Some(m) = metadata {
            self.ranges.remove(slot, m, &covered);
            if !schema.is_plain() {
                self.patterns.remove(slot, m, &covered);
            }
        }
        for (_, index) in &mut self.field_texts {
            index.remove(slot);
        }
    }

    /// The entry in a slot (or of a list row's handle: [`slot_of`]).
    pub(crate) fn entry(&self, slot: u64) -> Option<&ItemEntry> {
        self.items
            .get(slot_of(slot) as usize)
            .and_then(Option::as_ref)
    }

    /// Hints the CPU to load the entry of a slot (or handle) into cache, without reading it.
    pub(crate) fn prefetch_entry(&self, slot: u64) {
        if let Some(e) = self.items.get(slot_of(slot) as usize) {
            ivf::prefetch(std::slice::from_ref(e));
        }
    }

    /// The handle of a live slot ([`handle_of`]): what the scans rank by on equal distances.
    pub(crate) fn handle(&self, slot: u64) -> Option<u64> {
        self.entry(slot).map(|e| handle_of(slot_of(slot), &e.id))
    }

    /// Every live entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, &ItemEntry)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u64, e)))
    }

    /// A sample of the live entries, between about half of [`SAMPLE_SIZE`] and all of it (all
    /// entries when there are fewer): those whose tokens fall below a bound set by how many
    /// items there are. It is a function of the live items alone, not of the order they were
    /// inserted in, so a writer and a reader of the same commit estimate a filter's
    /// selectivity alike and answer filtered queries alike (a sample by slot did not: slots
    /// follow insertion order, which differs between the process that trained and one that
    /// opened the result).
    pub(crate) fn sample(&self) -> impl Iterator<Item = &ItemEntry> {
        self.sample
            .iter()
            .filter_map(|&s| self.items.get(s as usize)?.as_ref())
    }

    /// Keeps the sample in step after the live count changed: a larger shift drops the
    /// entries it no longer takes; a smaller one (rare: the count fell past a power of two)
    /// looks at every item again.
    fn resample(&mut self) {
        let shift = sample_shift_for(self.tokens.len());
        if shift == self.sample_shift {
            return;
        }
        if shift > self.sample_shift {
            let items = &self.items;
            self.sample.retain(|&s| {
                items
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| in_sample(&e.token, shift))
            });
        } else {
            self.sample = self
                .items
                .iter()
                .enumerate()
                .filter_map(|(s, e)| e.as_ref().map(|e| (s as u64, e)))
                .filter(|(_, e)| in_sample(&e.token, shift))
                .map(|(s, _)| s)
                .collect();
        }
        self.sample_shift = shift;
    }

    /// Inserts an item (into `entry.list`; its `row` is assigned here), replacing any item
    /// with the same token. `vector` is needed when every vector is resident, `code` when
    /// codes are (quantized types: [`Residency::All`] or [`Residency::Codes`]). Returns the
    /// item's slot (its text, if any, is indexed by [`State::index_text`]).
    pub(crate) fn insert(
        &mut self,
        mut entry: ItemEntry,
        vector: Option<&[f32]>,
        code: &[u8],
    ) -> u64 {
        let token = entry.token;
        // Not `remove`: a replaced item leaves the count as it was, so the sample's shift
        // must not move in between (a move down looks at every item).
        self.remove_entry(&token);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.items.push(None);
                (self.items.len() - 1) as u64
            }
        };
        entry.row = 0;
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(entry.list);
        } else {
            let vector = vector.filter(|_| self.residency == Residency::All);
            let code = match vector {
                Some(_) => &code[..self.scanned_code_len().min(code.len())],
                None => code,
            };
            let l = &mut self.lists[entry.list as usize];
            entry.row = l.handles.len() as u32;
            l.push(handle_of(slot, &entry.id), vector, code);
        }
        if let Some(m) = &entry.metadata {
            self.index_metadata(slot, m);
        }
        self.extra_bytes += entry_extra_bytes(&entry);
        if let Some(len) = self.list_lens.get_mut(entry.list as usize) {
            *len += 1;
        }
        self.items[slot as usize] = Some(entry);
        self.tokens.insert(&token, slot);
        if in_sample(&token, self.sample_shift) {
            self.sample.insert(slot);
        }
        self.resample();
        slot
    }

    /// Removes the item with `token`; returns whether it existed.
    pub(crate) fn remove(&mut self, token: &[u8; 32]) -> bool {
        let removed = self.remove_entry(token);
        self.resample();
        removed
    }

    /// [`State::remove`] but for the sample's shift.
    fn remove_entry(&mut self, token: &[u8; 32]) -> bool {
        let Some(slot) = self.tokens.remove(token, |s| token_at(&self.items, s)) else {
            return false;
        };
        let Some(entry) = self.items[slot as usize].take() else {
            return false;
        };
        self.extra_bytes -= entry_extra_bytes(&entry);
        if let Some(len) = self.list_lens.get_mut(entry.list as usize) {
            *len -= 1;
        }
        self.free.push(slot);
        self.sample.remove(&slot);
        if let Some(t) = self.text.as_mut() {
            t.remove(slot);
        }
        self.unindex_metadata(slot, entry.metadata.as_deref());
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(entry.list);
            return true;
        }
        let dim = self.dim;
        let l = &mut self.lists[entry.list as usize];
        if let Some(moved) = l.swap_remove(entry.row as usize, dim)
            && let Some(m) = self.items[slot_of(moved) as usize].as_mut()
        {
            m.row = entry.row;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::MAX_ITEMS;

    /// The published FNV-1a test vectors (draft-eastlake-fnv), and handles that keep their
    /// slot and order by the id's hash first.
    #[test]
    fn handles_hold_the_slot_under_a_fixed_hash_of_the_id() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        for (slot, id) in [(0u64, "a"), (7, "item-7"), (MAX_ITEMS - 1, "x")] {
            let h = handle_of(slot, id);
            assert_eq!(slot_of(h), slot);
            assert_eq!(h >> 32, u64::from(id_hash(id)));
        }
        let (a, b) = (handle_of(5, "item-1"), handle_of(1, "item-2"));
        assert_eq!(a < b, id_hash("item-1") < id_hash("item-2"));
    }
}
