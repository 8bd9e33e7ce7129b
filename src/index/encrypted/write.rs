//! Writes: upsert and delete, each one durable segment and one manifest commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;
use serde_json::Value;

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::vectors::VectorCoding;
use crate::ivf::{self};

use super::*;
use crate::engine::persist::{self, BlockItem, SegmentBuilder};
use crate::engine::state::{self, ItemEntry};
use crate::filter::MAX_JSON_DEPTH;
use crate::model::types::{Item, JsonArg};
use crate::model::validate;
use crate::text::{self, DocTerms};

impl EncryptedIndex {
    /// Inserts items; an item whose id exists replaces it. When the same id appears more than
    /// once in one call, the last occurrence wins. Durable when it returns. All items are
    /// validated first: on any error nothing is written.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`], [`Error::InvalidVector`], [`Error::InvalidArgument`]
    /// (empty or overlong id, metadata that is not a JSON object, oversized contents),
    /// [`Error::Io`] if the write fails (the index stays as it was).
    pub fn upsert(&self, items: impl IntoIterator<Item = Item>) -> Result<()> {
        let items: Vec<Item> = items.into_iter().collect();
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            let keys = self.read().keys().clone();
            let prepared = self.prepare(&keys, items)?;
            if prepared.is_empty() {
                return Ok(());
            }
            if (self.read().len() as u64).saturating_add(prepared.len() as u64) > state::MAX_ITEMS {
                return Err(Error::invalid_argument(format!(
                    "an index holds at most {} items",
                    state::MAX_ITEMS
                )));
            }
            // Tokenized before the commit, outside the state lock (full text only).
            let analyzed: Vec<Option<Option<DocTerms>>> = if self.read().text().is_some() {
                prepared
                    .par_iter()
                    .map(|p| p.contents.as_deref().map(text::analyze))
                    .collect()
            } else {
                vec![None; prepared.len()]
            };
            let (body, header, assignments, codes, list_epoch) = {
                let state = self.read();
                // The nearest centroid (n_lists dot products) and the code of each vector are
                // the costly part of a write to a trained index: the assignment goes through the
                // tiled batch kernel (each centroid read once per 8 vectors, every core for large
                // batches, the same lists as one-by-one `assign`), the codes on every core.
                let assignments: Vec<u32> = match state.quantizer() {
                    Some(q) => prepared
                        .chunks(ASSIGN_CHUNK)
                        .flat_map(|chunk| {
                            let mut rows = Vec::with_capacity(chunk.len() * self.dim());
                            for p in chunk {
                                rows.extend(ivf::prepare_query(&p.vector, self.metric()));
                            }
                            q.assign_batch(&rows)
                        })
                        .collect(),
                    None => vec![0; prepared.len()],
                };
                let codes: Vec<Vec<u8>> = prepared
                    .par_iter()
                    .with_min_len(PREPARE_GRAIN)
                    .zip(&assignments)
                    .map(|(p, &l)| state.code_of(l, &p.vector))
                    .collect();
                let epoch = state.list_epoch();
                (
                    state.body().clone(),
                    state.header().clone(),
                    assignments,
                    codes,
                    epoch,
                )
            };
            let seq = self.inner.next_segment.load(Ordering::SeqCst);
            let mut seg = SegmentBuilder::new(&keys, &header, seq)?;
            // About what the records take (vectors, codes, entries, fields), so that the file
            // does not grow by copying; padding and the directory may still add a little.
            let dim = self.dim();
            seg.reserve(
                prepared
                    .iter()
                    .map(|p| {
                        dim * 4
                            + 128
                            + p.id.len()
                            + p.metadata.as_ref().map_or(0, Vec::len)
                            + p.contents.as_ref().map_or(0, Vec::len)
                    })
                    .sum(),
            );
            let mut fields = Vec::with_capacity(prepared.len());
            for p in &prepared {
                fields.push(if p.metadata.is_some() || p.contents.is_some() {
                    Some(seg.add_fields(&p.token, p.metadata.as_deref(), p.contents.as_deref())?)
                } else {
                    None
                });
            }
            let mut by_list: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, &l) in assignments.iter().enumerate() {
                by_list.entry(l).or_default().push(i);
            }
            let lists: Vec<(u32, Vec<BlockItem<'_>>)> = by_list
                .iter()
                .map(|(&list, members)| {
                    let items = members
                        .iter()
                        .map(|&i| BlockItem {
                            token: prepared[i].token,
                            id: &prepared[i].id,
                            fields: fields[i],
                            vector: &prepared[i].vector,
                            code: &codes[i],
                        })
                        .collect();
                    (list, items)
                })
                .collect();
            let shape = (self.dim(), self.inner.config.precision().coding());
            let placed = seg.add_lists(list_epoch, shape, self.is_quantized(), &lists)?;
            let mut new_blocks = Vec::with_capacity(by_list.len());
            let mut vector_refs = vec![None; prepared.len()];
            for ((&list, members), (block, refs)) in by_list.iter().zip(placed) {
                for (&i, r) in members.iter().zip(refs) {
                    vector_refs[i] = r;
                }
                new_blocks.push((list, block));
            }
            let commit = Commit {
                keys: &keys,
                header: &header,
                body: &body,
            };
            let touched: Vec<u32> = by_list.keys().copied().collect();
            self.append_segment(commit, (seq, &touched), seg, |state| {
                for (list, block) in new_blocks {
                    state.add_block(list, block);
                }
                for (i, (p, doc)) in prepared.into_iter().zip(analyzed).enumerate() {
                    let entry = ItemEntry {
                        id: p.id,
                        token: p.token,
                        list: assignments[i],
                        row: 0,
                        fields: fields[i],
                        vector: vector_refs[i],
                        metadata: p.metadata_value,
                        origin: seq,
                    };
                    let slot = state.insert(entry, Some(&p.vector), &codes[i]);
                    if let Some(doc) = doc {
                        state.index_text(slot, doc);
                    }
                }
            })
        })
    }

    /// Inserts a batch given as ids and one row-major matrix (`rows[i * d..(i + 1) * d]` is
    /// the vector of `ids[i]`, `d` the dimension), without contents or metadata: the entry
    /// point for callers that hold vectors as one array (numpy, Arrow, a memory map). Same
    /// semantics as [`EncryptedIndex::upsert`].
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `rows` holds `ids.len()` rows of another (non-zero)
    /// width (`found` is that width), [`Error::InvalidArgument`] when its length is no
    /// positive multiple of `ids.len()`, else those of [`EncryptedIndex::upsert`].
    pub fn upsert_rows<S: AsRef<str>>(&self, ids: &[S], rows: &[f32]) -> Result<()> {
        let dim = self.dim();
        if dim == 0 || Some(rows.len()) != ids.len().checked_mul(dim) {
            if !ids.is_empty() && rows.len() >= ids.len() && rows.len().is_multiple_of(ids.len()) {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    found: rows.len() / ids.len(),
                });
            }
            return Err(Error::invalid_argument(format!(
                "{} ids need {} x {dim} floats, got {}",
                ids.len(),
                ids.len(),
                rows.len()
            )));
        }
        self.upsert(
            ids.iter()
                .zip(rows.chunks_exact(dim))
                .map(|(id, row)| Item::new(id.as_ref(), row.to_vec())),
        )
    }

    /// Finishes `seg` and commits it as segment `seq`, appended to the live ones, then applies
    /// the write to the in-memory state with `apply` (under the state's write lock, so
    /// readers see all of it or none), then runs self-maintenance (`touched`: the lists the
    /// write added items to) and compaction if due.
    fn append_segment(
        &self,
        commit: Commit<'_>,
        (seq, touched): (u64, &[u32]),
        seg: SegmentBuilder<'_>,
        apply: impl FnOnce(&mut State),
    ) -> Result<()> {
        let note = persist::append_note(commit.keys, commit.body, self.next_epoch());
        let bytes = seg.finish(&note)?;
        let new_body = self.commit_segment(commit, seq, &bytes, &note)?;
        let blob = persist::map_segment(&*self.inner.store, seq, bytes);
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.add_segment(seq, blob);
        apply(&mut state);
        state.set_committed(new_body);
        drop(state);
        self.after_write(touched);
        Ok(())
    }

    /// Validates the items and computes their tokens, keeping the last occurrence of an id.
    /// The per-item work (checks, metadata encoding, the token's HMAC) runs on every core;
    /// the error reported is that of the first bad item in call order, as a serial loop would.
    fn prepare(&self, keys: &Keys, items: Vec<Item>) -> Result<Vec<Prepared>> {
        let shape = (
            self.dim(),
            self.metric(),
            self.inner.config.precision().coding(),
        );
        let checked: Vec<Result<Prepared>> = items
            .into_par_iter()
            .with_min_len(PREPARE_GRAIN)
            .map(|item| prepare_item(keys, item, shape))
            .collect();
        let mut out: Vec<Prepared> = Vec::with_capacity(checked.len());
        let mut position: HashMap<[u8; 32], usize> = HashMap::with_capacity(checked.len());
        for p in checked {
            let p = p?;
            match position.get(&p.token) {
                Some(&i) => out[i] = p,
                None => {
                    position.insert(p.token, out.len());
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Deletes items by id; returns how many existed. Unknown ids are ignored. Durable when it
    /// returns.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails (nothing is deleted then).
    pub fn delete(&self, ids: &[&str]) -> Result<usize> {
        let _writer = self.writer()?;
        let (keys, header, body, tokens) = {
            let state = self.read();
            let mut seen = HashSet::new();
            let tokens: Vec<[u8; 32]> = ids
                .iter()
                .map(|id| state.keys().item_token(id))
                .filter(|t| state.slot(t).is_some() && seen.insert(*t))
                .collect();
            (
                state.keys().clone(),
                state.header().clone(),
                state.body().clone(),
                tokens,
            )
        };
        if tokens.is_empty() {
            return Ok(0);
        }
        let seq = self.inner.next_segment.load(Ordering::SeqCst);
        let mut seg = SegmentBuilder::new(&keys, &header, seq)?;
        seg.add_tombstones(&tokens)?;
        let commit = Commit {
            keys: &keys,
            header: &header,
            body: &body,
        };
        self.append_segment(commit, (seq, &[]), seg, |state| {
            for t in &tokens {
                state.remove(t);
            }
        })?;
        Ok(tokens.len())
    }
}

/// Vectors assigned to lists together in a write: the batch kernel reads a copy of them
/// (12 MiB at 384 dimensions), so a large batch is not copied whole; each chunk still
/// spreads over every core.
const ASSIGN_CHUNK: usize = 8192;

/// Items per rayon task in `prepare`: a token costs about a microsecond, so smaller tasks
/// would cost more to schedule than they save.
const PREPARE_GRAIN: usize = 64;

/// One item checked and tokenized, its vector rounded to what the index stores (and checked
/// again: rounding may take a value out of half precision's range, or make a tiny vector
/// zero).
fn prepare_item(
    keys: &Keys,
    mut item: Item,
    (dim, metric, coding): (usize, crate::metric::Metric, VectorCoding),
) -> Result<Prepared> {
    validate::id(&item.id)?;
    validate::vector(&item.vector, dim, metric)?;
    if coding != VectorCoding::F32 {
        if !coding.round(&mut item.vector) {
            return Err(Error::InvalidVector);
        }
        validate::vector(&item.vector, dim, metric)?;
    }
    let metadata = match &item.metadata {
        None => None,
        Some(JsonArg::TooDeep) => {
            return Err(Error::invalid_argument(format!(
                "metadata may nest at most {MAX_JSON_DEPTH} levels"
            )));
        }
        Some(JsonArg::Value(value @ Value::Object(_))) => {
            let bytes = serde_json::to_vec(value)
                .map_err(|_| Error::invalid_argument("metadata cannot be encoded"))?;
            if bytes.len() > validate::MAX_METADATA_LEN {
                return Err(Error::invalid_argument("metadata too large"));
            }
            Some(bytes)
        }
        Some(_) => return Err(Error::invalid_argument("metadata must be a JSON object")),
    };
    if item
        .contents
        .as_ref()
        .is_some_and(|c| c.len() > validate::MAX_CONTENTS_LEN)
    {
        return Err(Error::invalid_argument("contents too large"));
    }
    let token = keys.item_token(&item.id);
    Ok(Prepared {
        id: item.id,
        token,
        vector: item.vector,
        metadata,
        metadata_value: match item.metadata {
            Some(JsonArg::Value(value)) => Some(Arc::new(value)),
            _ => None,
        },
        contents: item.contents,
    })
}
