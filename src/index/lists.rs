//! The inverted lists as the IVF search sees them: straight from memory when the index is
//! resident, else decrypted on demand from the mapped segments through the list cache.

use std::sync::Arc;

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::ivf::{ListRows, ListSource};

use super::persist;
use super::state::{MemList, State};

/// A `ListSource` over one index state.
pub(crate) struct Lists<'a> {
    /// The state.
    pub state: &'a State,
    /// The keys that open its blocks.
    pub keys: &'a Keys,
}

impl ListSource for Lists<'_> {
    type Error = Error;

    fn visit_list(&self, list: u32, visit: &mut dyn FnMut(ListRows<'_>)) -> Result<()> {
        if self.state.is_resident() {
            if let Some(l) = self.state.lists.get(list as usize) {
                visit(l.rows());
            }
            return Ok(());
        }
        let decoded = self.list(list)?;
        visit(decoded.rows());
        Ok(())
    }
}

impl Lists<'_> {
    /// A non-resident list, from the cache or decrypted from its blocks.
    pub(crate) fn list(&self, list: u32) -> Result<Arc<MemList>> {
        if let Some(l) = self.state.cache.get(list) {
            return Ok(l);
        }
        let decoded = Arc::new(decode_list(self.keys, self.state, list)?);
        self.state.cache.put(list, decoded.clone());
        Ok(decoded)
    }

    /// The vector of a live slot.
    pub(crate) fn vector_of(&self, slot: u64) -> Result<Option<Vec<f32>>> {
        if self.state.is_resident() {
            return Ok(self.state.vector(slot).map(<[f32]>::to_vec));
        }
        let Some(e) = self.state.entry(slot) else {
            return Ok(None);
        };
        let l = self.list(e.list)?;
        let dim = self.state.dim;
        Ok(l.handles
            .iter()
            .position(|&h| h == slot)
            .map(|row| l.vectors[row * dim..(row + 1) * dim].to_vec()))
    }

    /// The vectors of `slots`, in that order (one pass over the lists when not resident).
    pub(crate) fn vectors_of(&self, slots: &[u64]) -> Result<Vec<f32>> {
        let dim = self.state.dim;
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
        let position: std::collections::HashMap<u64, usize> =
            slots.iter().enumerate().map(|(i, &s)| (s, i)).collect();
        for list in 0..self.state.n_lists() as u32 {
            let l = decode_list(self.keys, self.state, list)?;
            for (row, h) in l.handles.iter().enumerate() {
                if let Some(&i) = position.get(h) {
                    out[i * dim..(i + 1) * dim]
                        .copy_from_slice(&l.vectors[row * dim..(row + 1) * dim]);
                }
            }
        }
        Ok(out)
    }
}

/// Decrypts every block of `list` and keeps the rows that are the items' current versions.
fn decode_list(keys: &Keys, state: &State, list: u32) -> Result<MemList> {
    let epoch = state.list_epoch();
    let dim = state.dim;
    let mut out = MemList::default();
    for block in state
        .blocks
        .get(list as usize)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let blob = state
            .segments
            .get(&block.segment)
            .ok_or_else(|| Error::corrupted("list segment"))?;
        let (vectors, entries) = persist::open_block(keys, blob, *block, epoch, list, dim)?;
        for (e, v) in entries.iter().zip(vectors.chunks_exact(dim.max(1))) {
            let Some(slot) = state.slot(&e.token) else {
                continue;
            };
            let current = state
                .entry(slot)
                .is_some_and(|c| c.origin == block.segment && c.list == list);
            if current {
                out.push(slot, v, &state.code_of(list, v));
            }
        }
    }
    Ok(out)
}
