//! The decrypted, in-memory state of one index: inverted lists and the item table.
//!
//! Every committed item lives in exactly one list; its row there holds the vector and a
//! handle (its slot in the item table). `State` implements `ivf::ListSource`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde_json::Value;

use crate::format::manifest::ManifestBody;
use crate::ivf::{ListRows, ListSource, Quantizer};
use crate::kernel;
use crate::storage::Blob;

/// Where an item's sealed fields record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldsRef {
    /// Segment sequence number.
    pub segment: u64,
    /// Offset of the sealed bytes in the segment file.
    pub offset: u64,
    /// Length of the sealed bytes.
    pub len: u32,
}

/// One live item.
#[derive(Clone, Debug)]
pub(crate) struct ItemEntry {
    /// The id.
    pub id: String,
    /// The item token.
    pub token: [u8; 32],
    /// List number.
    pub list: u32,
    /// Row within the list.
    pub row: u32,
    /// Its fields record, if it has metadata or contents.
    pub fields: Option<FieldsRef>,
    /// Its decrypted metadata, kept in memory for filters.
    pub metadata: Option<Arc<Value>>,
}

/// One inverted list in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct MemList {
    /// Row-major vectors.
    pub vectors: Vec<f32>,
    /// Slot of each row.
    pub handles: Vec<u64>,
    /// `1 / |v|` of each row (used by cosine).
    pub inv_norms: Vec<f32>,
}

/// The whole decrypted state.
pub(crate) struct State {
    /// Vector dimension.
    pub dim: usize,
    /// The committed manifest body this state reflects.
    pub body: ManifestBody,
    /// Trained centroids, if trained.
    pub quantizer: Option<Quantizer>,
    /// Inverted lists (one list, number 0, before training).
    pub lists: Vec<MemList>,
    /// Item table, indexed by slot.
    items: Vec<Option<ItemEntry>>,
    free: Vec<u64>,
    by_token: HashMap<[u8; 32], u64>,
    /// Mapped live segments, by sequence number.
    pub segments: HashMap<u64, Arc<Blob>>,
}

impl State {
    /// An empty state.
    pub(crate) fn new(dim: usize, body: ManifestBody, quantizer: Option<Quantizer>) -> State {
        let n_lists = quantizer.as_ref().map_or(1, |q| q.n_lists());
        State {
            dim,
            body,
            quantizer,
            lists: vec![MemList::default(); n_lists],
            items: Vec::new(),
            free: Vec::new(),
            by_token: HashMap::new(),
            segments: HashMap::new(),
        }
    }

    /// Number of live items.
    pub(crate) fn len(&self) -> usize {
        self.by_token.len()
    }

    /// The slot of a token.
    pub(crate) fn slot(&self, token: &[u8; 32]) -> Option<u64> {
        self.by_token.get(token).copied()
    }

    /// Sets the metadata of a live slot.
    pub(crate) fn set_metadata(&mut self, slot: u64, metadata: Option<Arc<Value>>) {
        if let Some(Some(e)) = self.items.get_mut(slot as usize) {
            e.metadata = metadata;
        }
    }

    /// The entry in a slot.
    pub(crate) fn entry(&self, slot: u64) -> Option<&ItemEntry> {
        self.items.get(slot as usize).and_then(Option::as_ref)
    }

    /// Every live entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, &ItemEntry)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u64, e)))
    }

    /// About `n` live entries spread evenly over the item table.
    pub(crate) fn sample(&self, n: usize) -> impl Iterator<Item = &ItemEntry> {
        let stride = (self.items.len() / n.max(1)).max(1);
        self.items.iter().step_by(stride).flatten()
    }

    /// The vector of a live slot.
    pub(crate) fn vector(&self, slot: u64) -> Option<&[f32]> {
        let e = self.entry(slot)?;
        let list = self.lists.get(e.list as usize)?;
        let start = e.row as usize * self.dim;
        list.vectors.get(start..start + self.dim)
    }

    /// Inserts an item into list `list`, replacing any item with the same token.
    pub(crate) fn insert(
        &mut self,
        id: String,
        token: [u8; 32],
        list: u32,
        fields: Option<FieldsRef>,
        metadata: Option<Arc<Value>>,
        vector: &[f32],
    ) {
        self.remove(&token);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.items.push(None);
                (self.items.len() - 1) as u64
            }
        };
        let l = &mut self.lists[list as usize];
        let row = l.handles.len() as u32;
        l.vectors.extend_from_slice(vector);
        l.handles.push(slot);
        let norm = kernel::norm_sq(vector).sqrt();
        l.inv_norms.push(if norm > 0.0 { 1.0 / norm } else { 0.0 });
        self.items[slot as usize] = Some(ItemEntry {
            id,
            token,
            list,
            row,
            fields,
            metadata,
        });
        self.by_token.insert(token, slot);
    }

    /// Removes the item with `token`; returns whether it existed.
    pub(crate) fn remove(&mut self, token: &[u8; 32]) -> bool {
        let Some(slot) = self.by_token.remove(token) else {
            return false;
        };
        let Some(entry) = self.items[slot as usize].take() else {
            return false;
        };
        self.free.push(slot);
        let dim = self.dim;
        let l = &mut self.lists[entry.list as usize];
        let row = entry.row as usize;
        let last = l.handles.len() - 1;
        if row != last {
            l.vectors
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            l.handles[row] = l.handles[last];
            l.inv_norms[row] = l.inv_norms[last];
            let moved = l.handles[row] as usize;
            if let Some(m) = self.items[moved].as_mut() {
                m.row = row as u32;
            }
        }
        l.vectors.truncate(last * dim);
        l.handles.truncate(last);
        l.inv_norms.truncate(last);
        true
    }
}

impl ListSource for State {
    type Error = Infallible;

    fn visit_list(&self, list: u32, visit: &mut dyn FnMut(ListRows<'_>)) -> Result<(), Infallible> {
        if let Some(l) = self.lists.get(list as usize) {
            visit(ListRows {
                vectors: &l.vectors,
                handles: &l.handles,
                inv_norms: &l.inv_norms,
            });
        }
        Ok(())
    }
}
