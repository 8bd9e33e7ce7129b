//! The inverted lists as the IVF search sees them: straight from memory when the index is
//! resident; a quantized index over its cache budget holds its codes in memory and decrypts
//! each vector its re-rank needs from that vector's record; an `ivf_flat` index over budget
//! decrypts whole lists on demand from the mapped segments through the list cache.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::ivf::{self, ListRows, ListSource};

use super::persist;
use super::state::{BlockRef, MemList, Residency, State, VectorRef, handle_of, slot_of};
use crate::format::segment;

/// How many vector records ahead of the one being decrypted the re-rank prefetches.
const PREFETCH_AHEAD: usize = 4;

/// A `ListSource` over one index state, counting the sealed bytes it reads from storage.
pub(crate) struct Lists<'a> {
    /// The state.
    pub state: &'a State,
    /// The keys that open its blocks.
    pub keys: &'a Keys,
    /// Sealed bytes read from the mapped segments so far.
    read: Cell<u64>,
    /// Reused by every vector fetch of this source: the vector and the sealed record's
    /// plaintext.
    fetch_buffers: RefCell<(Vec<f32>, Vec<u8>)>,
}

impl ListSource for Lists<'_> {
    type Error = Error;

    fn visit_list(&self, list: u32, visit: &mut dyn FnMut(ListRows<'_>)) -> Result<()> {
        if self.state.residency() != Residency::OnDemand {
            if let Some(l) = self.state.list(list) {
                visit(l.rows());
            }
            return Ok(());
        }
        let decoded = self.list(list)?;
        visit(decoded.rows());
        Ok(())
    }

    fn fetch_vectors(&self, handles: &[u64], visit: &mut dyn FnMut(u64, &[f32])) -> Result<()> {
        // Only a codes-only quantized index hands out rows without vectors, and each of its
        // items has a vector record.
        let record_of = |h: u64| -> Result<(&[u8; 32], VectorRef)> {
            let e = self
                .state
                .entry(h)
                .ok_or_else(|| Error::corrupted("state"))?;
            let at = e
                .vector
                .ok_or_else(|| Error::corrupted("vector record missing"))?;
            Ok((&e.token, at))
        };
        // Prefetch the sealed bytes a few records ahead: the records lie scattered over the
        // mapped segments, and waiting for each in turn would dominate.
        let prefetch = |h: u64| {
            if let Ok((_, at)) = record_of(h)
                && let Some(blob) = self.state.segments().get(&at.segment)
                && let Some(file) = blob.local()
                && let Ok(sealed) = segment::record_bytes(file, at.offset, at.len.get())
            {
                ivf::prefetch(sealed);
            }
        };
        // Every entry first: each names where its record lies, and finding that out for the
        // record prefetch below would otherwise wait for one scattered entry at a time.
        handles.iter().for_each(|&h| self.state.prefetch_entry(h));
        // From a remote store, every record at once (a no-op for local files).
        persist::prefetch(
            self.state.segments(),
            handles
                .iter()
                .filter_map(|&h| record_of(h).ok())
                .map(|(_, at)| (at.segment, at.offset, u64::from(at.len.get()))),
        )?;
        handles
            .iter()
            .take(PREFETCH_AHEAD)
            .for_each(|&h| prefetch(h));
        let mut buffers = self.fetch_buffers.borrow_mut();
        let (vector, scratch) = &mut *buffers;
        vector.resize(self.state.dim(), 0.0);
        for (i, &h) in handles.iter().enumerate() {
            if let Some(&next) = handles.get(i + PREFETCH_AHEAD) {
                prefetch(next);
            }
            let (token, at) = record_of(h)?;
            self.read.set(self.read.get() + u64::from(at.len.get()));
            let segments = &self.state.segments();
            let coding = self.state.coding();
            persist::open_vector_into(self.keys, segments, (token, at), coding, vector, scratch)?;
            visit(h, vector);
        }
        Ok(())
    }

    fn prepare_lists(&self, lists: &[u32]) -> Result<()> {
        if self.state.residency() != Residency::OnDemand {
            return Ok(());
        }
        // The blocks and block-vectors records of the lists not in the cache, fetched
        // together from a remote store (a no-op for local files).
        let cache = self.state.cache();
        let places = lists
            .iter()
            .filter(|&&l| !cache.contains(l))
            .flat_map(|&l| self.state.blocks_of(l))
            .flat_map(|b| {
                [
                    (b.segment, b.offset, u64::from(b.len)),
                    (b.segment, b.vectors_offset, u64::from(b.vectors_len)),
                ]
            })
            .filter(|&(_, _, len)| len > 0);
        persist::prefetch(self.state.segments(), places)
    }
}

impl<'a> Lists<'a> {
    /// The lists of `state`.
    pub(crate) fn new(state: &'a State) -> Lists<'a> {
        Lists {
            state,
            keys: state.keys(),
            read: Cell::new(0),
            fetch_buffers: RefCell::default(),
        }
    }

    /// Sealed bytes read from storage through this source so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    /// A non-resident list, from the cache or decrypted from its blocks.
    pub(crate) fn list(&self, list: u32) -> Result<Arc<MemList>> {
        if let Some(l) = self.state.cache().get(list) {
            return Ok(l);
        }
        let decoded = Arc::new(self.decode(list)?);
        self.state.cache().put(list, decoded.clone());
        Ok(decoded)
    }

    /// The vector of a live slot: borrowed where it lies when the index is resident,
    /// decrypted otherwise.
    pub(crate) fn vector_of(&self, slot: u64) -> Result<Option<Cow<'a, [f32]>>> {
        if self.state.is_resident() {
            return Ok(self.state.vector(slot).map(Cow::Borrowed));
        }
        let Some(e) = self.state.entry(slot) else {
            return Ok(None);
        };
        if let Some(at) = e.vector {
            self.read.set(self.read.get() + u64::from(at.len.get()));
            let v = persist::open_vector(
                self.keys,
                self.state.segments(),
                &e.token,
                at,
                (self.state.dim(), self.state.coding()),
            )?;
            return Ok(Some(Cow::Owned(v)));
        }
        let l = self.list(e.list)?;
        let dim = self.state.dim();
        Ok(l.handles
            .iter()
            .position(|&h| slot_of(h) == slot_of(slot))
            .map(|row| Cow::Owned(l.vectors[row * dim..(row + 1) * dim].to_vec())))
    }

    /// The vectors of `slots`, in that order (one pass over the lists when not resident).
    pub(crate) fn vectors_of(&self, slots: &[u64]) -> Result<Vec<f32>> {
        let dim = self.state.dim();
        let mut out = vec![0.0f32; slots.len() * dim];
        if self.state.is_resident() {
            for (o, &s) in out.chunks_exact_mut(dim).zip(slots) {
                o.copy_from_slice(
                    self.state
                        .vector(s)
                        .ok_or_else(|| Error::corrupted("state"))?,
                );
            }
            return Ok(out);
        }
        if self.state.residency() == Residency::Codes {
            use rayon::prelude::*;
            let state = self.state;
            out.par_chunks_exact_mut(dim.max(1))
                .zip(slots)
                .try_for_each(|(o, &s)| {
                    let e = state.entry(s).ok_or_else(|| Error::corrupted("state"))?;
                    let at = e
                        .vector
                        .ok_or_else(|| Error::corrupted("vector record missing"))?;
                    o.copy_from_slice(&persist::open_vector(
                        self.keys,
                        state.segments(),
                        &e.token,
                        at,
                        (dim, state.coding()),
                    )?);
                    Ok::<(), Error>(())
                })?;
            return Ok(out);
        }
        let position: std::collections::HashMap<u64, usize> = slots
            .iter()
            .enumerate()
            .map(|(i, &s)| (slot_of(s), i))
            .collect();
        // Only the lists the items are in.
        let mut lists: Vec<u32> = slots
            .iter()
            .map(|&s| self.state.entry(s).map(|e| e.list))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::corrupted("state"))?;
        lists.sort_unstable();
        lists.dedup();
        for list in lists {
            let l = self.decode(list)?;
            for (row, &h) in l.handles.iter().enumerate() {
                if let Some(&i) = position.get(&slot_of(h)) {
                    out[i * dim..(i + 1) * dim]
                        .copy_from_slice(&l.vectors[row * dim..(row + 1) * dim]);
                }
            }
        }
        Ok(out)
    }
}

impl Lists<'_> {
    /// The live items of `list` (their slots) and their vectors, row-major: from memory
    /// when resident, from their vector records when only codes are, else by decrypting the
    /// list alone (a walk of the item table and a pass over every list would cost the
    /// whole index).
    pub(crate) fn members_with_vectors(&self, list: u32) -> Result<(Vec<u64>, Vec<f32>)> {
        let rows = match self.state.residency() {
            Residency::OnDemand => Arc::new(self.decode(list)?),
            _ => match self.state.list(list) {
                Some(l) if self.state.is_resident() => {
                    let slots = l.handles.iter().map(|&h| slot_of(h)).collect();
                    return Ok((slots, l.vectors.clone()));
                }
                Some(l) => {
                    let slots: Vec<u64> = l.handles.iter().map(|&h| slot_of(h)).collect();
                    let vectors = self.vectors_of(&slots)?;
                    return Ok((slots, vectors));
                }
                None => return Ok((Vec::new(), Vec::new())),
            },
        };
        let slots = rows.handles.iter().map(|&h| slot_of(h)).collect();
        Ok((slots, rows.vectors.clone()))
    }

    /// Decrypts `list` from storage, counting what it reads.
    fn decode(&self, list: u32) -> Result<MemList> {
        let bytes: u64 = self
            .state
            .blocks_of(list)
            .iter()
            .map(BlockRef::read_len)
            .sum();
        self.read.set(self.read.get() + bytes);
        decode_list(self.keys, self.state, list)
    }

    /// Reads `bytes` bytes of sealed data at random places of the live segments and
    /// discards them, so that a query's reads add up to a fixed amount (see
    /// `THREAT_MODEL.md`). Storage is read a page at a time, so one byte of every page of a
    /// range brings in the same pages as every byte of it, and costs far less.
    /// Only local files are padded: an object store sees the fetches of a read cache's
    /// misses, which depend on what earlier queries fetched, not a per-query volume
    /// (`THREAT_MODEL.md` says what it learns).
    pub(crate) fn read_padding(&self, bytes: u64) {
        use rand::RngExt as _;
        let blobs: Vec<&[u8]> = self
            .state
            .segments()
            .values()
            .filter_map(|b| b.local())
            .filter(|b| !b.is_empty())
            .collect();
        if blobs.is_empty() {
            return;
        }
        let mut rng = rand::rng();
        let (mut left, mut sink) = (bytes, 0u8);
        while left > 0 {
            let blob = blobs[rng.random_range(0..blobs.len())];
            let start = rng.random_range(0..blob.len());
            let n = (blob.len() - start).min(usize::try_from(left).unwrap_or(usize::MAX));
            let range = &blob[start..start + n];
            sink ^= range.iter().step_by(PAGE).fold(range[n - 1], |a, &b| a ^ b);
            left -= n as u64;
        }
        std::hint::black_box(sink);
        self.read.set(self.read.get() + bytes);
    }
}

/// The unit storage is read in (the smallest common page size).
const PAGE: usize = 4096;

/// Decrypts every block of `list` and keeps the rows that are the items' current versions.
pub(crate) fn decode_list(keys: &Keys, state: &State, list: u32) -> Result<MemList> {
    let epoch = state.list_epoch();
    let dim = state.dim();
    let mut out = MemList::default();
    let blocks = state.blocks_of(list);
    // A background training's segment may hold an item twice in one list (as its snapshot
    // read it, and as written since, the older copy deleted by the tombstone between):
    // the later row is the current one. Only then are rows tracked by slot.
    let repeats = blocks
        .iter()
        .enumerate()
        .any(|(i, b)| blocks[..i].iter().any(|a| a.segment == b.segment));
    let mut row_of: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for block in blocks {
        let blob = state
            .segments()
            .get(&block.segment)
            .ok_or_else(|| Error::corrupted("list segment"))?;
        let in_file = |e| persist::in_file(&segment::file_name(block.segment), e);
        let decoded = persist::open_block(keys, blob, *block, epoch, list, dim).map_err(in_file)?;
        let shape = (dim, state.coding());
        let vectors =
            persist::open_block_vectors(keys, blob, (*block, &decoded), (epoch, list), shape)
                .map_err(in_file)?;
        for (e, v) in decoded.entries.iter().zip(vectors.chunks_exact(dim.max(1))) {
            let Some(slot) = state.slot(&e.token) else {
                continue;
            };
            let current = state
                .entry(slot)
                .is_some_and(|c| c.origin == block.segment && c.list == list);
            if !current {
                continue;
            }
            if repeats && let Some(&row) = row_of.get(&slot) {
                out.vectors[row * dim..(row + 1) * dim].copy_from_slice(v);
                if let Some(n) = out.inv_norms.get_mut(row) {
                    *n = ivf::inv_norm(v);
                }
                continue;
            }
            if repeats {
                row_of.insert(slot, out.handles.len());
            }
            // Lists decrypted on demand are `ivf_flat`'s: they have no codes.
            out.push(handle_of(slot, &e.id), Some(v), &[]);
        }
    }
    Ok(out)
}
