//! Full text: BM25 queries, hybrid queries (vector and BM25 rankings fused), and turning
//! full text on in an existing index.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::ivf::Neighbor;
use crate::text::{self, Bm25, TextIndex};

use super::*;
use crate::engine::lists::Lists;
use crate::engine::loader;
use crate::engine::state;
use crate::model::schema::CONTENTS_FIELD;
use crate::model::types::{Hit, Query, TextSpec};
use crate::model::validate;

/// One candidate of a hybrid query: its place in each ranking, if it has one.
#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    /// Vector distance and rank (from 1).
    vector: Option<(f32, usize)>,
    /// Rank in the text ranking (from 1).
    text: Option<usize>,
}

impl EncryptedIndex {
    /// A text-only or hybrid query (its filter parsed).
    pub(super) fn text_query(&self, query: &Query, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        validate::text(&query.text)?;
        validate::fusion(query.alpha, query.rrf_k, query.window_mult)?;
        let state = self.read();
        let sources = text_sources(&state, &query.text)?;
        if query.vector.is_empty() {
            return text_ranking(&state, &sources, &query.text, filter, query.top_k)
                .into_iter()
                .map(|(slot, score)| self.hit(&state, slot, (-score, Some(score)), query.include))
                .collect();
        }
        let depth = query
            .window_mult
            .saturating_mul(query.top_k)
            .min(validate::MAX_TOP_K);
        // A ranking of weight 0 adds nothing to any score: it is not computed.
        let by_vector = if query.alpha > 0.0 {
            let deeper = Query {
                top_k: depth,
                ..query.clone()
            };
            self.planner().vector_neighbors(&state, &deeper, filter)?
        } else {
            Vec::new()
        };
        let by_text = if query.alpha < 1.0 {
            text_ranking(&state, &sources, &query.text, filter, depth)
        } else {
            Vec::new()
        };
        let fused = fuse(&by_vector, &by_text, query.alpha, query.rrf_k);
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

/// The posting indexes a text query searches, each with its weight: the fields `text`
/// names (`"contents"` for the contents), else every full-text field of the index (the
/// contents first, then the metadata text fields by name), weighted by `text.weights` (1
/// each by default). Its BM25 parameters are the query's, else the index's.
///
/// # Errors
/// [`Error::InvalidArgument`] when the index has no full-text field, a name is not one of
/// its full-text fields (or comes twice, or none is named), or the weights are not one per
/// field.
pub(crate) fn text_sources<'s>(state: &'s State, text: &TextSpec) -> Result<TextSources<'s>> {
    let available: Vec<(&str, &TextIndex)> = state
        .text()
        .map(|t| (CONTENTS_FIELD, t))
        .into_iter()
        .chain(state.field_texts().iter().map(|(f, t)| (f.as_str(), t)))
        .collect();
    if available.is_empty() {
        return Err(Error::invalid_argument(
            "this index has no full-text field (IndexConfig::full_text or text_fields, \
             enable_full_text)",
        ));
    }
    let chosen: Vec<&TextIndex> = match &text.fields {
        None => available.iter().map(|(_, t)| *t).collect(),
        Some(names) => {
            if names.is_empty() {
                return Err(Error::invalid_argument("text_fields names no field"));
            }
            let mut chosen = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return Err(Error::invalid_argument(format!(
                        "text_fields names '{name}' twice"
                    )));
                }
                let Some((_, t)) = available.iter().find(|(f, _)| f == name) else {
                    return Err(Error::invalid_argument(format!(
                        "'{name}' is not a full-text field of this index"
                    )));
                };
                chosen.push(*t);
            }
            chosen
        }
    };
    let weights = match &text.weights {
        None => vec![1.0; chosen.len()],
        Some(w) if w.len() == chosen.len() => w.clone(),
        Some(w) => {
            return Err(Error::invalid_argument(format!(
                "{} text field weights for {} text fields",
                w.len(),
                chosen.len()
            )));
        }
    };
    let bm25 = text.bm25.unwrap_or_else(|| state.bm25());
    Ok(TextSources {
        fields: chosen.into_iter().zip(weights).collect(),
        bm25,
    })
}

/// What a text query searches: posting indexes with their weights, and BM25's parameters.
pub(crate) struct TextSources<'s> {
    /// Each searched field's posting index and weight.
    pub fields: Vec<(&'s TextIndex, f32)>,
    /// BM25's parameters.
    pub bm25: Bm25,
}

/// The BM25 ranking: the best `k` items that hold the words (all of them with
/// `require_all`) and pass the filter, as `(slot, score)`, best first (equal scores in id
/// order).
pub(crate) fn text_ranking(
    state: &State,
    sources: &TextSources<'_>,
    text: &TextSpec,
    filter: Option<&Filter>,
    k: usize,
) -> Vec<(u64, f32)> {
    let words = text.words.as_deref().unwrap_or_default();
    let accept = |slot: u64| {
        filter.is_none_or(|f| {
            state
                .entry(slot)
                .is_some_and(|e| f.matches(e.metadata.as_deref()))
        })
    };
    let mut scored = text::multi_field_scores(
        &sources.fields,
        words,
        sources.bm25,
        text.require_all,
        &accept,
    );
    let id = |slot: u64| state.entry(slot).map(|e| e.id.as_str());
    let order = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(id(a.0).cmp(&id(b.0)));
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, order);
        scored.truncate(k);
    }
    scored.sort_unstable_by(order);
    scored
}

/// Fuses a vector ranking (closest first) and a text ranking (best first) by weighted
/// reciprocal rank into `(slot, fused score, vector distance if known)`, best first: an
/// item scores `alpha / (rrf_k + vector rank) + (1 - alpha) / (rrf_k + text rank)`, a
/// ranking that does not hold it adding nothing. Equal scores go to the better vector rank,
/// then the better text rank.
fn fuse(
    by_vector: &[Neighbor],
    by_text: &[(u64, f32)],
    alpha: f32,
    rrf_k: f32,
) -> Vec<(u64, f32, Option<f32>)> {
    let mut candidates: HashMap<u64, Candidate> = HashMap::new();
    for (rank, n) in by_vector.iter().enumerate() {
        // A scan's handle holds a tie-break above the slot the text ranking names.
        let slot = state::slot_of(n.handle);
        candidates.entry(slot).or_default().vector = Some((n.distance, rank + 1));
    }
    for (rank, &(slot, _)) in by_text.iter().enumerate() {
        candidates.entry(slot).or_default().text = Some(rank + 1);
    }
    let (alpha, rrf_k) = (f64::from(alpha), f64::from(rrf_k));
    let part = |weight: f64, rank: usize| weight / (rrf_k + rank as f64);
    // (slot, fused score, vector distance, tie-break ranks)
    type Fused = (u64, f32, Option<f32>, (usize, usize));
    let mut fused: Vec<Fused> = candidates
        .into_iter()
        .map(|(slot, c)| {
            let score = c.vector.map_or(0.0, |v| part(alpha, v.1))
                + c.text.map_or(0.0, |r| part(1.0 - alpha, r));
            let tie = (
                c.vector.map_or(usize::MAX, |v| v.1),
                c.text.unwrap_or(usize::MAX),
            );
            (slot, score as f32, c.vector.map(|v| v.0), tie)
        })
        .collect();
    fused.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.3.cmp(&b.3)).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(s, f, d, _)| (s, f, d)).collect()
}
