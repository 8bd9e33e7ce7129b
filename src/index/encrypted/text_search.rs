//! Full text: BM25 queries, hybrid queries (vector and BM25 rankings fused), and turning
//! full text on in an existing index.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::ivf::Neighbor;
use crate::text::TextIndex;

use super::*;
use crate::index::lists::Lists;
use crate::index::loader;
use crate::index::state;
use crate::index::types::{Fusion, Hit, Query};
use crate::index::validate;

/// Each ranking of a hybrid query contributes its best `max(HYBRID_DEPTH_FACTOR * top_k,
/// HYBRID_MIN_DEPTH)` items.
const HYBRID_DEPTH_FACTOR: usize = 4;
/// See [`HYBRID_DEPTH_FACTOR`].
const HYBRID_MIN_DEPTH: usize = 50;

/// One candidate of a hybrid query: its place in each ranking, if it has one.
#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    /// Vector distance and rank (from 1).
    vector: Option<(f32, usize)>,
    /// BM25 score and rank (from 1).
    text: Option<(f32, usize)>,
}

impl EncryptedIndex {
    /// A text-only or hybrid query (`words` is the query's text; its filter parsed).
    pub(super) fn text_query(
        &self,
        query: &Query,
        words: &str,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        validate::text_query(words, query.bm25, query.fusion)?;
        let state = self.read();
        let Some(text) = state.text() else {
            return Err(Error::invalid_argument(
                "full text is off for this index (IndexConfig::full_text, enable_full_text)",
            ));
        };
        if query.vector.is_empty() {
            return self
                .text_ranking(&state, text, query, filter, query.top_k)
                .into_iter()
                .map(|(slot, score)| self.hit(&state, slot, (-score, Some(score)), query.include))
                .collect();
        }
        let depth =
            (HYBRID_DEPTH_FACTOR * query.top_k).clamp(HYBRID_MIN_DEPTH, validate::MAX_TOP_K);
        let deeper = Query {
            top_k: depth,
            ..query.clone()
        };
        let by_vector = self.vector_neighbors(&state, &deeper, filter)?;
        let by_text = self.text_ranking(&state, text, query, filter, depth);
        let fused = fuse(&by_vector, &by_text, query.fusion);
        let lists = Lists::new(&state);
        let mut hits = Vec::with_capacity(query.top_k.min(fused.len()));
        for (slot, score, distance) in fused.into_iter().take(query.top_k) {
            let distance = match distance {
                Some(d) => d,
                // Found by its words only: its vector distance is computed exactly.
                None => match lists.vector_of(slot)? {
                    Some(v) => self.metric().distance(&query.vector, &v),
                    None => return Err(Error::corrupted("state")),
                },
            };
            hits.push(self.hit(&state, slot, (distance, Some(score)), query.include)?);
        }
        // Not padded, as the pre-filter path (THREAT_MODEL.md).
        self.inner
            .storage_reads
            .fetch_add(lists.bytes_read(), Ordering::Relaxed);
        Ok(hits)
    }

    /// The BM25 ranking: the best `k` items that pass the filter, as `(slot, score)`, best
    /// first (equal scores in id order).
    fn text_ranking(
        &self,
        state: &State,
        text: &TextIndex,
        query: &Query,
        filter: Option<&Filter>,
        k: usize,
    ) -> Vec<(u64, f32)> {
        let words = query.text.as_deref().unwrap_or_default();
        let accept = |slot: u64| {
            filter.is_none_or(|f| {
                state
                    .entry(slot)
                    .is_some_and(|e| f.matches(e.metadata.as_deref()))
            })
        };
        let mut scored = text.scores(words, query.bm25, &accept);
        let id = |slot: u64| state.entry(slot).map(|e| e.id.as_str());
        let order =
            |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(id(a.0).cmp(&id(b.0)));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.sort_unstable_by(order);
        scored
    }

    /// Turns full-text search on for an index created without it: the posting index is built
    /// from the stored contents, then one manifest commit records the setting (so a crash
    /// leaves it off or on, never half built: the postings are never stored, see
    /// `docs/DESIGN.md`). Does nothing when it is already on.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a read-only handle, [`Error::Corrupted`] if stored contents fail
    /// authentication, [`Error::Io`] if the commit fails (full text stays off then).
    pub fn enable_full_text(&self) -> Result<()> {
        let _writer = self.writer()?;
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        let (text, header, keys, mut body) = {
            let state = self.read();
            if state.text().is_some() {
                return Ok(());
            }
            let text = loader::build_text(&state)?;
            (
                text,
                state.header().clone(),
                state.keys().clone(),
                state.body().clone(),
            )
        };
        body.config.full_text = true;
        body.epoch = self.next_epoch();
        self.inner.epoch.fetch_max(body.epoch, Ordering::SeqCst);
        persist::write_manifest(&*self.inner.store, &header, &keys, &body)?;
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.set_committed(body);
        state.set_text(text);
        self.note_full_text();
        Ok(())
    }

    /// Counts of the posting index, for tests and benchmarks: items indexed, live items
    /// whose contents were not UTF-8 (skipped), and approximate heap bytes. `None` without
    /// full text.
    #[cfg(feature = "internals")]
    pub(crate) fn full_text_stats(&self) -> Option<(usize, usize, usize)> {
        self.read()
            .text()
            .map(|t| (t.len(), t.skipped(), t.heap_bytes()))
    }
}

/// Fuses a vector ranking (closest first) and a text ranking (best first) into
/// `(slot, fused score, vector distance if known)`, best first.
fn fuse(
    by_vector: &[Neighbor],
    by_text: &[(u64, f32)],
    fusion: Fusion,
) -> Vec<(u64, f32, Option<f32>)> {
    let mut candidates: HashMap<u64, Candidate> = HashMap::new();
    for (rank, n) in by_vector.iter().enumerate() {
        // A scan's handle holds a tie-break above the slot the text ranking names.
        let slot = state::slot_of(n.handle);
        candidates.entry(slot).or_default().vector = Some((n.distance, rank + 1));
    }
    for (rank, &(slot, score)) in by_text.iter().enumerate() {
        candidates.entry(slot).or_default().text = Some((score, rank + 1));
    }
    let (d_min, d_max) = by_vector
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), n| {
            (lo.min(n.distance), hi.max(n.distance))
        });
    let s_max = by_text.first().map_or(0.0, |t| t.1);
    // (slot, fused score, vector distance, tie-break ranks)
    type Fused = (u64, f32, Option<f32>, (usize, usize));
    let mut fused: Vec<Fused> = candidates
        .into_iter()
        .map(|(slot, c)| {
            let score = match fusion {
                Fusion::Rrf { rrf_k } => {
                    let part = |r: usize| 1.0 / (f64::from(rrf_k) + r as f64);
                    (c.vector.map_or(0.0, |v| part(v.1)) + c.text.map_or(0.0, |t| part(t.1))) as f32
                }
                Fusion::Alpha(alpha) => {
                    let v = c.vector.map_or(0.0, |(d, _)| {
                        if d_max > d_min {
                            (d_max - d) / (d_max - d_min)
                        } else {
                            1.0
                        }
                    });
                    let t = c
                        .text
                        .map_or(0.0, |(s, _)| if s_max > 0.0 { s / s_max } else { 0.0 });
                    alpha * v + (1.0 - alpha) * t
                }
            };
            // Ties go to the better vector rank, then the better text rank.
            let tie = (
                c.vector.map_or(usize::MAX, |v| v.1),
                c.text.map_or(usize::MAX, |t| t.1),
            );
            (slot, score, c.vector.map(|v| v.0), tie)
        })
        .collect();
    fused.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.3.cmp(&b.3)).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(s, f, d, _)| (s, f, d)).collect()
}
