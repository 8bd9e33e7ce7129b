//! Training, compaction and key rotation: everything that rewrites the whole index.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLockReadGuard};

use rayon::prelude::*;

use crate::crypto::key::IndexKey;
use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::manifest::ManifestHeader;
use crate::ivf::{self, Codec, KMeansParams, Quantizer};
use crate::metric::Metric;

use super::*;
use crate::engine::lists::Lists;
use crate::engine::persist::{self, BlockItem, SegmentBuilder};
use crate::engine::recovery;
use crate::engine::state::{
    BlockRef, Coder, Committed, FieldsRef, ItemEntry, Residency, State, VectorRef,
};
use crate::format::segment::CommitNote;
use crate::model::config::{IndexConfig, IndexType, TrainOptions};

impl EncryptedIndex {
    /// Trains the index with default options: k-means on the stored vectors, then every item
    /// is reassigned to its nearest list and rewritten (under fresh list labels) into one new
    /// segment. Training again retrains from scratch. While a background training runs
    /// (see [`IndexConfig::auto_train`]), waits for it to end first; when that training
    /// was the last commit and covered every item, the index is trained as this call would
    /// train it, and it returns without training again.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on an empty index; [`Error::Io`] if the write fails.
    pub fn train(&self) -> Result<()> {
        self.train_with(TrainOptions::default())
    }

    /// Trains with explicit options; see [`train`](Self::train).
    ///
    /// # Errors
    /// As [`train`](Self::train); also [`Error::InvalidArgument`] for `max_iters == 0`.
    pub fn train_with(&self, options: TrainOptions) -> Result<()> {
        if options.max_iters == 0 {
            return Err(Error::invalid_argument("max_iters must be at least 1"));
        }
        if !(options.tolerance.is_finite() && options.tolerance >= 0.0) {
            return Err(Error::invalid_argument("tolerance must be finite and >= 0"));
        }
        // A background training runs to its end first (its result is then retrained, unless
        // it already trained every item with the default options: `trained_in_background`).
        if self.is_own_writer() {
            self.inner.upkeep.wait_idle();
        }
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            // Read before the state (never the upkeep lock inside a state guard); with the
            // writer lock held, no training installs in between.
            let trained_epoch = self.inner.upkeep.lock().trained_epoch;
            let state = self.read();
            let n = state.len();
            if n == 0 {
                return Err(Error::invalid_argument("cannot train an empty index"));
            }
            if options == TrainOptions::default() && trained_in_background(trained_epoch, &state) {
                return Ok(());
            }
            let n_lists = [options.n_lists, self.inner.config.lists()]
                .into_iter()
                .find(|&l| l > 0)
                .unwrap_or_else(|| ivf::auto_n_lists(n, self.is_pq()))
                .min(n);
            let slots: Vec<u64> = state.entries().map(|(s, _)| s).collect();
            let vectors = Lists::new(&state).vectors_of(&slots)?;
            let mut data = vectors.clone();
            prepare_rows(&mut data, self.dim(), self.metric());
            let quantizer = fit(&self.inner.config, &data, n_lists, &options);
            let assignments = quantizer.assign_batch(&data);
            let coder = train_codec(
                &self.inner.config,
                &quantizer,
                &data,
                &assignments,
                TRAINING_SEED,
            );
            drop(data);
            let crypto = (state.keys().clone(), state.header().clone());
            let trained = Some(Trained {
                quantizer,
                coder,
                at_items: n as u64,
            });
            self.rewrite(state, &slots, &vectors, trained, &assignments, crypto)?;
            // List numbers name other lists now.
            self.inner.upkeep.lock().unsplittable.clear();
            Ok(())
        })
    }

    /// Compacts the index: every live item is rewritten into one new segment, dropping
    /// deleted and overwritten entries and the segments that held them; list labels and
    /// query tokens move to a new epoch (when trained), so they do not link to the old ones.
    /// Queries keep working meanwhile. Training also compacts.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails (the index stays as it was).
    pub fn compact(&self) -> Result<()> {
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            self.compact_locked()
        })
    }

    /// Compaction for a caller that holds the writer lock.
    fn compact_locked(&self) -> Result<()> {
        let state = self.read();
        let crypto = (state.keys().clone(), state.header().clone());
        self.rewrite_as_is(state, crypto)
    }

    /// After a committed write (writer lock held): compacts when the dead share of the stored
    /// bytes passes the configured threshold, or the live segments pass
    /// [`auto_compact_max_segments`]. A failure here leaves the index as it was (the write
    /// that triggered it is committed) and is retried after the next write.
    /// A background training that runs meanwhile starts over after the compaction (its
    /// snapshot no longer matches the item table): compaction is due rarely (most of the
    /// bytes dead), and what it reclaims should not wait for a training.
    pub(super) fn maybe_compact(&self) {
        if let Some(threshold) = self.inner.auto_compact {
            self.compact_if_due(threshold);
        }
    }

    /// Compacts (writer lock held) when the dead share of the stored bytes passes
    /// `threshold`, or the live segments pass [`auto_compact_max_segments`]; see
    /// [`maybe_compact`](Self::maybe_compact).
    pub(super) fn compact_if_due(&self, threshold: f64) {
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let due = {
                let state = self.read();
                let segments = &state.body().segments;
                let stored: u64 = segments.iter().map(|s| s.len).sum();
                if segments.len() > auto_compact_max_segments(state.len()) {
                    true
                } else if stored < AUTO_COMPACT_MIN_BYTES {
                    false
                } else {
                    // What each live entry takes once rewritten: its vector (inline, or a vector
                    // record and its place in the block), code and block entry, and its id and
                    // fields record (`State::extra_bytes`, kept as items come and go: walking
                    // the item table here cost 5-6 ms per write at 1M items, 20x the write).
                    let vector = if self.is_quantized() {
                        persist::vector_record_len(state.dim(), state.coding())
                            + 12
                            + state.code_len()
                    } else {
                        state.coding().vector_len(state.dim())
                    };
                    debug_assert_eq!(
                        state.extra_bytes(),
                        state
                            .entries()
                            .map(|(_, e)| crate::engine::state::entry_extra_bytes(e))
                            .sum::<u64>()
                    );
                    let live = (vector as u64 + 46) * state.len() as u64 + state.extra_bytes();
                    1.0 - live as f64 / stored as f64 > threshold
                }
            };
            if due {
                // The write that triggered this is committed; an index left uncompacted is
                // valid, and the next write tries again.
                best_effort(
                    self.compact_locked(),
                    "the triggering write is committed; compaction is retried",
                );
            }
        });
    }

    /// Rotates the data key: a fresh random data key is wrapped by the same index key, and
    /// every stored record is re-encrypted under keys derived from it, into one new segment;
    /// the old ciphertext is then removed. Queries keep working meanwhile.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails (the index stays under the old data key).
    pub fn rotate_data_key(&self) -> Result<()> {
        // A new data key is issued to every grant: the roster is an admin's.
        self.require(Need::Admin)?;
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            let state = self.read();
            let (header, keys) = persist::rotate_data_key(state.header(), state.keys())?;
            self.rewrite_as_is(state, (Arc::new(keys), header))
        })
    }

    /// Upgrades an index of an older on-disk format to this version's (a writer's open does
    /// it before any write): a data-key rotation, whose rewrite is in this format. A no-op
    /// for an index in this format.
    pub(crate) fn upgrade_format(&self) -> Result<()> {
        if self.read().keys().format == crate::format::FORMAT_VERSION {
            return Ok(());
        }
        self.rotate_data_key()
    }

    /// Replaces both keys (see [`crate::Database::rotate_keys`]): a fresh data key wrapped
    /// under `new`, every record re-encrypted under it in one rewrite, committed with the
    /// new header in one manifest replacement. `old` must open the stored index.
    pub(crate) fn rotate_keys(&self, old: &IndexKey, new: &IndexKey) -> Result<()> {
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            persist::check_key(&*self.inner.store, old, &self.inner.name)?;
            let state = self.read();
            let (header, keys) = persist::new_keys_under(state.header(), state.keys(), new)?;
            self.rewrite_as_is(state, (Arc::new(keys), header))
        })
    }

    /// Re-wraps the data key from `old` to `new` (see [`crate::Database::rotate_index_key`]),
    /// serialized with this handle's writes; the handle adopts the new header.
    pub(crate) fn rewrap_index_key(&self, old: &IndexKey, new: &IndexKey) -> Result<()> {
        let _writer = self.writer()?;
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let generation = self.read().keys().next_generation();
        let (header, keys, body) = persist::rewrap_index_key(
            &*self.inner.store,
            (old, new),
            &self.inner.name,
            epoch,
            generation,
        )?;
        self.inner.epoch.store(body.epoch, Ordering::SeqCst);
        // The data key is unchanged, so every sealed record stays valid: the handle adopts
        // the new header and keys that wrap under the new index key.
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.adopt_keys(Arc::new(keys), header, body);
        Ok(())
    }

    /// Rewrites every live item with its current list assignment under `crypto`.
    pub(super) fn rewrite_as_is(
        &self,
        state: RwLockReadGuard<'_, State>,
        crypto: (Arc<Keys>, ManifestHeader),
    ) -> Result<()> {
        let slots: Vec<u64> = state.entries().map(|(s, _)| s).collect();
        let vectors = Lists::new(&state).vectors_of(&slots)?;
        let assignments: Vec<u32> = slots
            .iter()
            .map(|&s| state.entry(s).map_or(0, |e| e.list))
            .collect();
        let trained = state.quantizer().cloned().map(|quantizer| Trained {
            quantizer,
            coder: state.coder().cloned(),
            at_items: 0,
        });
        self.rewrite(state, &slots, &vectors, trained, &assignments, crypto)
    }

    /// Writes every live item (`slots`, with `vectors` and list `assignments`) into one new
    /// segment sealed under `crypto`, with the centroids (and codebook) of `trained` and a
    /// new list epoch; commits it as the only live segment; swaps the in-memory state;
    /// removes the old segments.
    fn rewrite(
        &self,
        state: RwLockReadGuard<'_, State>,
        slots: &[u64],
        vectors: &[f32],
        trained: Option<Trained>,
        assignments: &[u32],
        crypto: (Arc<Keys>, ManifestHeader),
    ) -> Result<()> {
        // A background training begun before this rewrite no longer matches the item table.
        self.inner.upkeep.note_rewrite();
        let at_items = trained.as_ref().map_or(0, |t| t.at_items);
        let trained = match trained {
            Some(t) => (Some(t.quantizer), t.coder),
            None => (None, None),
        };
        let items = LiveItems {
            slots,
            vectors,
            assignments,
        };
        let sealed = self.seal_rewrite(
            &state,
            items,
            (trained.0.as_ref(), trained.1.as_ref()),
            (&crypto.0, &crypto.1),
            at_items,
        )?;
        let body = state.body().clone();
        let commit = Commit {
            keys: &crypto.0,
            header: &crypto.1,
            body: &body,
        };
        let new_body = self.commit_segment(commit, sealed.seq, &sealed.bytes, &sealed.note)?;
        let committed = Committed {
            keys: crypto.0,
            header: crypto.1,
            body: new_body,
        };
        let fresh = self.rewritten_state(&state, items, sealed, trained, committed)?;
        drop(state);
        self.install_rewrite(fresh);
        Ok(())
    }

    /// Seals every live item, with the training records and the history so far, into the
    /// next segment under `keys` (which `header` wraps) and a new list epoch (nothing is
    /// committed yet).
    fn seal_rewrite(
        &self,
        state: &State,
        items: LiveItems<'_>,
        (quantizer, coder): (Option<&Quantizer>, Option<&Coder>),
        (keys, header): (&Keys, &ManifestHeader),
        trained_at: u64,
    ) -> Result<SealedRewrite> {
        let LiveItems {
            slots,
            vectors,
            assignments,
        } = items;
        let dim = self.dim();
        // A new epoch for every rewrite, trained or not: labels and tokens never repeat.
        let list_epoch = state.list_epoch() + 1;
        let seq = self.inner.next_segment.load(Ordering::SeqCst);
        let mut seg = SegmentBuilder::new(keys, header, seq)?;
        if let Some(section) = &header.access {
            // A rewrite may bring new keys and grants (a first grant, a revocation, a
            // rotation): rolling it forward installs its access section too.
            seg.add_access(section)?;
        }
        // The history moves into this segment (the old one holding it is superseded).
        let history = persist::history_to_archive(state.keys(), state.body(), state.segments())?;
        if !history.is_empty() {
            seg.add_history(&history)?;
        }
        if let Some(q) = quantizer {
            seg.add_centroids(dim, q.centroids())?;
        }
        if let Some(c) = coder {
            seg.add_codebook(&c.codec.to_bytes())?;
        }
        // Item tokens under the keys being written: they change with the data key.
        let tokens: Vec<[u8; 32]> = slots
            .iter()
            .map(|&s| state.entry(s).map(|e| keys.item_token(&e.id)))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::corrupted("state"))?;
        let mut fields: Vec<Option<FieldsRef>> = Vec::with_capacity(slots.len());
        for (&s, token) in slots.iter().zip(&tokens) {
            let e = state.entry(s).ok_or_else(|| Error::corrupted("state"))?;
            fields.push(match e.fields {
                Some(at) => {
                    let (m, c) =
                        persist::open_fields(state.keys(), state.segments(), &e.token, at)?;
                    Some(seg.add_fields(token, m.as_deref(), c.as_deref())?)
                }
                None => None,
            });
        }
        let codes: Vec<Vec<u8>> = match (coder, quantizer) {
            (Some(c), Some(q)) => vectors
                .par_chunks_exact(dim)
                .zip(assignments)
                .map(|(v, &l)| c.encode(q, l, v))
                .collect(),
            _ => vec![Vec::new(); slots.len()],
        };
        let mut by_list: Vec<Vec<usize>> =
            vec![Vec::new(); quantizer.map_or(1, Quantizer::n_lists)];
        for (i, &l) in assignments.iter().enumerate() {
            by_list[l as usize].push(i);
        }
        let members_of: Vec<(u32, &Vec<usize>)> = by_list
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(list, m)| (list as u32, m))
            .collect();
        let lists = members_of
            .iter()
            .map(|&(list, members)| {
                let items = members
                    .iter()
                    .map(|&i| {
                        let e = state
                            .entry(slots[i])
                            .ok_or_else(|| Error::corrupted("state"))?;
                        Ok(BlockItem {
                            token: tokens[i],
                            id: &e.id,
                            fields: fields[i],
                            vector: &vectors[i * dim..(i + 1) * dim],
                            code: &codes[i],
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((list, items))
            })
            .collect::<Result<Vec<_>>>()?;
        let shape = (dim, state.coding());
        let placed = seg.add_lists(list_epoch, shape, self.is_quantized(), &lists)?;
        let mut blocks = Vec::with_capacity(members_of.len());
        let mut vector_refs = vec![None; slots.len()];
        for (&(list, members), (block, refs)) in members_of.iter().zip(placed) {
            for (&i, r) in members.iter().zip(refs) {
                vector_refs[i] = r;
            }
            blocks.push((list, block));
        }
        let trained = quantizer.map(|q| (q.n_lists() as u32, coder.is_some()));
        let mut note = persist::replace_note(
            keys,
            state.body(),
            (self.next_epoch(), list_epoch),
            trained,
            !history.is_empty(),
        );
        note.trained_at = trained_at;
        Ok(SealedRewrite {
            seq,
            bytes: seg.finish(&note)?,
            note,
            tokens,
            fields,
            vector_refs,
            codes,
            blocks,
        })
    }

    /// Serves `fresh`, the state a committed rewrite built (the old one is dropped outside
    /// the lock), and removes what the rewrite superseded, best effort: a leftover goes at
    /// the next open. The one install of compaction, rotation and background training.
    pub(super) fn install_rewrite(&self, fresh: State) {
        let old = std::mem::replace(
            &mut *self
                .inner
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            fresh,
        );
        drop(old);
        let committed = self.read().body().clone();
        best_effort(
            recovery::superseded(&*self.inner.store, &committed).and_then(|files| {
                recovery::remove_files(&*self.inner.store, &files, committed.next_segment)
            }),
            "a leftover old segment is removed at the next open instead",
        );
    }

    /// The in-memory state after a committed rewrite, built from the old one (`state`) and
    /// what the rewrite sealed, under the one residency rule.
    fn rewritten_state(
        &self,
        state: &State,
        items: LiveItems<'_>,
        sealed: SealedRewrite,
        trained: (Option<Quantizer>, Option<Coder>),
        committed: Committed,
    ) -> Result<State> {
        let dim = self.dim();
        let budget = self.inner.cache_budget;
        let residency = Residency::for_budget(self.is_quantized(), items.slots.len(), dim, budget);
        let mut fresh = State::new(dim, committed, trained, residency, budget);
        for (list, block) in sealed.blocks {
            fresh.add_block(list, block);
        }
        let mut new_slot = HashMap::with_capacity(items.slots.len());
        for (i, &s) in items.slots.iter().enumerate() {
            let e = state.entry(s).ok_or_else(|| Error::corrupted("state"))?;
            let entry = ItemEntry {
                id: e.id.clone(),
                token: sealed.tokens[i],
                list: items.assignments[i],
                row: 0,
                fields: sealed.fields[i],
                vector: sealed.vector_refs[i],
                metadata: e.metadata.clone(),
                origin: sealed.seq,
            };
            let vector = &items.vectors[i * dim..(i + 1) * dim];
            new_slot.insert(s, fresh.insert(entry, Some(vector), &sealed.codes[i]));
        }
        if let Some(text) = state.text() {
            fresh.set_text(text.remapped(&new_slot));
        }
        fresh.shrink_to_fit();
        let blob = persist::map_segment(&*self.inner.store, sealed.seq, sealed.bytes);
        fresh.add_segment(sealed.seq, blob);
        Ok(fresh)
    }
}

/// Normalizes rows for cosine (k-means and assignment then rank by angle).
pub(super) fn prepare_rows(data: &mut [f32], dim: usize, metric: Metric) {
    if metric == Metric::Cosine {
        ivf::normalize_rows(data, dim);
    }
}

/// The coarse lists of a training: k-means with `options` (its sample: `options.sample_size`,
/// else the default points per list) on `data` (rows prepared by [`prepare_rows`]) for
/// `n_lists` lists under `config`'s metric.
pub(super) fn fit(
    config: &IndexConfig,
    data: &[f32],
    n_lists: usize,
    options: &TrainOptions,
) -> Quantizer {
    let (dim, metric) = (config.dimension(), config.distance_metric());
    let pq = matches!(config.index_type(), IndexType::IvfPq { .. });
    let per_centroid = if options.sample_size > 0 {
        options.sample_size.div_ceil(n_lists).max(1)
    } else {
        ivf::auto_train_points_per_list(pq)
    };
    let km = ivf::kmeans(
        data,
        dim,
        &KMeansParams {
            k: n_lists,
            max_iters: options.max_iters,
            tolerance: options.tolerance,
            max_points_per_centroid: per_centroid,
            spherical: metric == Metric::Cosine,
            seed: TRAINING_SEED,
        },
    );
    Quantizer::new(dim, km.centroids, metric)
}

/// Trains the code of a quantized index type on (a sample of) the training vectors: their
/// residuals to their lists' centroids for SQ8; for PQ, a code of the vectors and one of the
/// residuals, keeping the one that ranks better (`ivf::train_pq`); `None` for `ivf_flat`.
pub(super) fn train_codec(
    config: &IndexConfig,
    quantizer: &Quantizer,
    data: &[f32],
    assignments: &[u32],
    seed: u64,
) -> Option<Coder> {
    let (dim, metric) = (config.dimension(), config.distance_metric());
    let stride = (assignments.len() / CODEC_TRAINING_SAMPLE).max(1);
    let codec = match config.index_type() {
        IndexType::IvfFlat => return None,
        IndexType::IvfSq8 => Codec::train_sq8(
            &ivf::training_sample(data, assignments, quantizer, stride, true),
            dim,
        ),
        IndexType::IvfPq { n_subquantizers } => ivf::train_pq(
            data,
            assignments,
            quantizer,
            (n_subquantizers, config.refine_width(), stride, seed),
            metric,
        ),
    };
    Some(Coder::new(codec, metric, quantizer))
}

/// The lists a rewrite writes its items into: the centroids, the code of a quantized type,
/// and, when they were trained for it, the live items they were trained at (0: kept from
/// before, as compaction and rotation keep them).
pub(super) struct Trained {
    pub quantizer: Quantizer,
    pub coder: Option<Coder>,
    pub at_items: u64,
}

/// The live items a rewrite writes: their slots in the old state, their vectors (row-major,
/// in the same order) and their lists.
#[derive(Clone, Copy)]
struct LiveItems<'a> {
    slots: &'a [u64],
    vectors: &'a [f32],
    assignments: &'a [u32],
}

/// A rewrite sealed into one segment, and where each item's records went.
struct SealedRewrite {
    seq: u64,
    bytes: Vec<u8>,
    /// What its commit does to the manifest.
    note: CommitNote,
    /// Per item: its token under the new keys, fields record, vector record and code.
    tokens: Vec<[u8; 32]>,
    fields: Vec<Option<FieldsRef>>,
    vector_refs: Vec<Option<VectorRef>>,
    codes: Vec<Vec<u8>>,
    /// The list block of each non-empty list.
    blocks: Vec<(u32, BlockRef)>,
}

/// Whether the newest commit of `state` is the one a background training installed (at
/// `trained_epoch`) and that training covered every item held now: `train()` with the default
/// options would fit the same lists again (the common case: upsert everything, then
/// `train()`, whose upserts started that training).
fn trained_in_background(trained_epoch: Option<u64>, state: &State) -> bool {
    trained_epoch == Some(state.body().epoch) && state.body().trained_at_items == state.len() as u64
}
