//! The inverted lists of a [`State`]: rows held in memory by residency, sealed block
//! addresses, codes, and the changes training, splits and loads make to them.

use std::sync::OnceLock;

use crate::ivf::{self, ListRows, PackedCodes, Quantizer};

use super::cache::ListCache;
use super::coder::Coder;
use super::items::handle_of;
use super::items::slot_of;
use super::{BlockRef, ItemEntry, MemList, Relocated, Residency, State, entry_extra_bytes};

impl State {
    /// List `list` as held in memory (empty rows when not resident).
    pub(crate) fn list(&self, list: u32) -> Option<&MemList> {
        self.lists.get(list as usize)
    }

    /// The sealed blocks of `list`, oldest first.
    pub(crate) fn blocks_of(&self, list: u32) -> &[BlockRef] {
        self.blocks.get(list as usize).map_or(&[], Vec::as_slice)
    }

    /// Makes a [`Residency::Codes`] state hold every vector: `open` decrypts the vector of
    /// an entry (in parallel).
    pub(crate) fn load_vectors(
        &mut self,
        open: impl Fn(&ItemEntry) -> crate::error::Result<Vec<f32>> + Sync,
    ) -> crate::error::Result<()> {
        use rayon::prelude::*;
        if self.residency != Residency::Codes {
            return Ok(());
        }
        let items = &self.items;
        let loaded: Vec<Vec<f32>> = self
            .lists
            .par_iter()
            .map(|l| {
                let mut vectors = Vec::with_capacity(l.handles.len() * self.dim);
                for &h in &l.handles {
                    let e = items
                        .get(slot_of(h) as usize)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| crate::error::Error::corrupted("state"))?;
                    vectors.extend(open(e)?);
                }
                Ok(vectors)
            })
            .collect::<crate::error::Result<_>>()?;
        let (whole, scanned) = (self.code_len(), self.scanned_code_len());
        for (l, vectors) in self.lists.iter_mut().zip(loaded) {
            l.inv_norms = ivf::inv_norms(&vectors, self.dim);
            l.vectors = vectors;
            // With its vectors in RAM, a list needs no refine codes.
            if scanned < whole {
                l.codes = l
                    .codes
                    .chunks_exact(whole)
                    .flat_map(|c| &c[..scanned])
                    .copied()
                    .collect();
                l.packed = OnceLock::new();
            }
        }
        self.residency = Residency::All;
        Ok(())
    }

    /// Makes an [`Residency::OnDemand`] state hold every list: `lists` are its lists as
    /// decrypted from their blocks (each row an item's current version).
    pub(crate) fn install_lists(&mut self, lists: Vec<MemList>) -> crate::error::Result<()> {
        if self.residency != Residency::OnDemand {
            return Ok(());
        }
        if lists.len() != self.lists.len() {
            return Err(crate::error::Error::corrupted("state"));
        }
        for (list, l) in lists.iter().enumerate() {
            for (row, &h) in l.handles.iter().enumerate() {
                let e = self
                    .items
                    .get_mut(slot_of(h) as usize)
                    .and_then(Option::as_mut)
                    .filter(|e| e.list as usize == list)
                    .ok_or_else(|| crate::error::Error::corrupted("state"))?;
                e.row = row as u32;
            }
        }
        self.lists = lists;
        self.cache = ListCache::new(self.cache.budget());
        self.residency = Residency::All;
        Ok(())
    }

    /// Gives back the room vectors grew into while the state was built row by row (up to half
    /// of every list and of the item table), once a load or rewrite has built it.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
        self.free.shrink_to_fit();
        self.tokens.shrink_to_fit();
        for l in &mut self.lists {
            l.vectors.shrink_to_fit();
            l.handles.shrink_to_fit();
            l.inv_norms.shrink_to_fit();
            l.codes.shrink_to_fit();
        }
    }

    /// Number of lists.
    pub(crate) fn n_lists(&self) -> usize {
        self.lists.len()
    }

    /// The epoch of list labels and query tokens.
    pub(crate) fn list_epoch(&self) -> u64 {
        self.body.list_epoch
    }

    /// Live items in list `list`.
    pub(crate) fn list_len(&self, list: u32) -> usize {
        self.list_lens.get(list as usize).map_or(0, |&n| n as usize)
    }

    /// The live entries whose slots lie in `range`.
    pub(crate) fn entries_in(
        &self,
        range: std::ops::Range<u64>,
    ) -> impl Iterator<Item = (u64, &ItemEntry)> {
        let end = (range.end as usize).min(self.items.len());
        let start = (range.start as usize).min(end);
        self.items[start..end]
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| e.as_ref().map(|e| ((start + i) as u64, e)))
    }

    /// Adopts the quantizer (and coder) of a split: the same lists, in the same places, and
    /// new lists after them, each of them empty; centroids may have moved, and the items a
    /// move concerns are then relocated ([`State::relocate`]).
    pub(crate) fn set_split_lists(&mut self, quantizer: Quantizer, coder: Option<Coder>) {
        let n = quantizer.n_lists();
        debug_assert!(n >= self.lists.len());
        self.lists.resize_with(n, MemList::default);
        self.list_lens.resize(n, 0);
        self.blocks.resize(n, Vec::new());
        // Residual codes are scanned against their lists' terms, which moved with the
        // centroids: fast-scan layouts are rebuilt on first use.
        for l in &mut self.lists {
            l.packed = OnceLock::new();
        }
        self.quantizer = Some(quantizer);
        self.coder = coder;
    }

    /// Moves the live item in `slot` to list `to`, its records rewritten into segment
    /// `origin` (`fields` and `vector` there), with `vector` (needed when every vector is
    /// resident) and its `code` in the new list. Its metadata and text stay indexed as they
    /// are (its slot does not change).
    pub(crate) fn relocate(&mut self, slot: u64, to: Relocated, vector: &[f32], code: &[u8]) {
        let Some(e) = self.items.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let (from, row, handle) = (e.list, e.row, handle_of(slot, &e.id));
        let before = entry_extra_bytes(e);
        let mut new_row = 0;
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(from);
            self.cache.invalidate(to.list);
        } else {
            let dim = self.dim;
            if let Some(moved) = self.lists[from as usize].swap_remove(row as usize, dim)
                && let Some(m) = self.items[slot_of(moved) as usize].as_mut()
            {
                m.row = row;
            }
            let with_vector = self.residency == Residency::All;
            let code = if with_vector {
                &code[..self.scanned_code_len().min(code.len())]
            } else {
                code
            };
            let l = &mut self.lists[to.list as usize];
            new_row = l.handles.len() as u32;
            l.push(handle, with_vector.then_some(vector), code);
        }
        self.list_lens[from as usize] -= 1;
        self.list_lens[to.list as usize] += 1;
        if let Some(e) = self.items[slot as usize].as_mut() {
            e.list = to.list;
            e.row = new_row;
            e.fields = to.fields;
            e.vector = to.vector;
            e.origin = to.origin;
            let after = entry_extra_bytes(e);
            self.extra_bytes = self.extra_bytes - before + after;
        }
    }

    /// Makes room for `items` more items, and in list `list` (when given) for `rows` more
    /// rows with their vectors (if this state holds them) and codes: a load reserves each
    /// block's rows before inserting them, so that lists and the item table do not grow by
    /// copying (at 1M x 128 those copies and the page faults of the memory they left behind
    /// were a fifth of a resident open).
    pub(crate) fn reserve(&mut self, items: usize, list: Option<(u32, usize)>) {
        let free = self.free.len();
        self.items.reserve(items.saturating_sub(free));
        self.tokens.reserve(items);
        let Some((list, rows)) = list else {
            return;
        };
        if self.residency == Residency::OnDemand {
            return;
        }
        let (dim, code_len) = (self.dim, self.code_len());
        let with_vectors = self.residency == Residency::All;
        let code_len = if with_vectors {
            self.scanned_code_len()
        } else {
            code_len
        };
        if let Some(l) = self.lists.get_mut(list as usize) {
            l.handles.reserve(rows);
            l.codes.reserve(rows * code_len);
            // An empty list adopts its first block's vectors (`adopt_vectors`).
            if with_vectors && !l.handles.is_empty() {
                l.vectors.reserve(rows * dim);
                l.inv_norms.reserve(rows);
            }
        }
    }

    /// Whether list `list` holds no rows (in memory).
    pub(crate) fn list_is_empty(&self, list: u32) -> bool {
        self.lists
            .get(list as usize)
            .is_some_and(|l| l.handles.is_empty())
    }

    /// Gives list `list`, whose `rows` rows were just inserted without their vectors into an
    /// empty list of a state holding every vector, those vectors (`rows * dim` floats, in
    /// row order) and their inverse norms ([`ivf::inv_norms`], computed where the vectors
    /// were decrypted).
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::error::Error::Corrupted) when the list does not hold
    /// exactly those rows (a block naming one item twice: one row replaced the other).
    pub(crate) fn adopt_vectors(
        &mut self,
        list: u32,
        (vectors, inv_norms): (Vec<f32>, Vec<f32>),
        rows: usize,
    ) -> crate::error::Result<()> {
        let dim = self.dim;
        let fits = self.residency == Residency::All;
        let l = self
            .lists
            .get_mut(list as usize)
            .filter(|l| fits && l.vectors.is_empty() && l.handles.len() == rows)
            .filter(|_| vectors.len() == rows * dim && inv_norms.len() == rows)
            .ok_or_else(|| crate::error::Error::corrupted("list block"))?;
        l.inv_norms = inv_norms;
        l.vectors = vectors;
        Ok(())
    }

    /// Records a sealed block of `list`.
    pub(crate) fn add_block(&mut self, list: u32, block: BlockRef) {
        let blocks = &mut self.blocks[list as usize];
        blocks.push(block);
        let bytes: u64 = blocks.iter().map(BlockRef::read_len).sum();
        self.max_list_bytes = self.max_list_bytes.max(bytes);
        self.cache.invalidate(list);
    }

    #[cfg(feature = "internals")]
    /// Decrypted bytes held in memory: the lists' (vectors, codes, handles and norms, resident
    /// or cached) and the item table's (entries, ids, the token index; metadata values not
    /// counted).
    pub(crate) fn decrypted_bytes(&self) -> (usize, usize) {
        let lists = self.lists.iter().map(MemList::bytes).sum::<usize>() + self.cache.bytes();
        let entry = std::mem::size_of::<Option<ItemEntry>>();
        let ids: usize = self.entries().map(|(_, e)| e.id.len()).sum();
        let token_index = self.tokens.bytes();
        let items = self.items.capacity() * entry + ids + token_index + self.free.capacity() * 8;
        (lists, items)
    }

    /// The most sealed bytes reading one list can take.
    pub(crate) fn max_list_bytes(&self) -> u64 {
        self.max_list_bytes
    }

    /// The vector of a live slot, when resident (see `lists::vector_of` otherwise).
    pub(crate) fn vector(&self, slot: u64) -> Option<&[f32]> {
        if !self.is_resident() {
            return None;
        }
        let e = self.entry(slot)?;
        let list = self.lists.get(e.list as usize)?;
        let start = e.row as usize * self.dim;
        list.vectors.get(start..start + self.dim)
    }

    /// Bytes per code (0 for unquantized or untrained indexes).
    pub(crate) fn code_len(&self) -> usize {
        self.coder
            .as_ref()
            .map_or(0, |c| c.codec.code_len(self.dim))
    }

    /// The code of `vector` in list `list` (empty for unquantized or untrained indexes).
    pub(crate) fn code_of(&self, list: u32, vector: &[f32]) -> Vec<u8> {
        match (&self.coder, &self.quantizer) {
            (Some(c), Some(q)) => c.encode(q, list, vector),
            _ => Vec::new(),
        }
    }

    /// Bytes of a code that a list holding its vectors keeps: all but the refine code (PQ),
    /// which only bounds the re-rank of vectors that are not in RAM.
    pub(super) fn scanned_code_len(&self) -> usize {
        match self.coder.as_ref().and_then(|c| c.codec.refine()) {
            Some((_, refine_start)) => refine_start,
            None => self.code_len(),
        }
    }
}

impl MemList {
    /// Appends one row (`code` empty for unquantized indexes; `vector` absent when the
    /// list holds codes only).
    pub(crate) fn push(&mut self, handle: u64, vector: Option<&[f32]>, code: &[u8]) {
        if let Some(vector) = vector {
            self.vectors.extend_from_slice(vector);
            self.inv_norms.push(ivf::inv_norm(vector));
        }
        self.codes.extend_from_slice(code);
        self.packed = OnceLock::new();
        self.handles.push(handle);
    }

    /// Removes row `row` by moving the last row into its place; returns the handle of the
    /// row that moved, if one did.
    pub(crate) fn swap_remove(&mut self, row: usize, dim: usize) -> Option<u64> {
        let last = self.handles.len().checked_sub(1)?;
        self.packed = OnceLock::new();
        let code_len = self.codes.len() / self.handles.len();
        let has_vectors = !self.inv_norms.is_empty();
        let moved = (row != last).then(|| {
            if has_vectors {
                self.vectors
                    .copy_within(last * dim..(last + 1) * dim, row * dim);
                self.inv_norms[row] = self.inv_norms[last];
            }
            self.codes
                .copy_within(last * code_len..(last + 1) * code_len, row * code_len);
            self.handles[row] = self.handles[last];
            self.handles[row]
        });
        if has_vectors {
            self.vectors.truncate(last * dim);
            self.inv_norms.truncate(last);
        }
        self.codes.truncate(last * code_len);
        self.handles.truncate(last);
        moved
    }

    /// The rows as the IVF scan takes them.
    pub(crate) fn rows(&self) -> ListRows<'_> {
        ListRows {
            vectors: &self.vectors,
            handles: &self.handles,
            inv_norms: &self.inv_norms,
            codes: &self.codes,
            packed: Some(&self.packed),
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let packed = self.packed.get().map_or(0, PackedCodes::bytes);
        (self.vectors.capacity() + self.inv_norms.capacity()) * 4
            + self.handles.capacity() * 8
            + self.codes.capacity()
            + packed
    }
}
