//! Reads: queries (unfiltered, filtered, quantized), get and list_ids.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::ivf::{self, CodeSearch, Neighbor, SearchParams, TopK};
use crate::model::types::JsonArg;

use super::*;
use crate::engine::candidates;
use crate::engine::lists::Lists;
use crate::engine::persist;
use crate::engine::state::{ItemEntry, Residency, State};
use crate::model::types::{Hit, Include, Query, Record};
use crate::model::validate;

/// The most queries that share list scans under one hold of the state's read lock (about
/// 36 queries per list at 32 of 894 probes: most of the sharing, a bounded wait for writers).
const SHARED_SCAN_GROUP: usize = 1024;

/// Queries per group of a quantized batch. Its sharing (probes in tiles of 8, each re-rank
/// after the next query's scan) needs only a few queries, and small groups let the pool
/// balance the threads: with one group per thread, a batch waits for the slowest thread.
const CODES_GROUP: usize = 32;

/// How the plain vector queries of a batch share work ([`EncryptedIndex::query_batch`]).
#[derive(Clone, Copy, Debug, PartialEq)]
enum BatchKind {
    /// `ivf_flat` (or an untrained index): each probed list scanned once for all queries,
    /// from RAM, or decrypted once for all of them when the lists are not resident.
    SharedScan,
    /// A trained quantized index: probes in tiles, re-ranks after the next query's scan.
    Codes,
}

impl EncryptedIndex {
    /// The best items for a query, best first: the nearest to its vector, or for a text
    /// ([`Query::text_only`]) or hybrid ([`Query::text`]) query the best by score.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`], [`Error::InvalidVector`], [`Error::InvalidArgument`]
    /// (`top_k` of 0 or above 100,000; a text query on an index without full text, or with
    /// invalid BM25 or fusion parameters), [`Error::InvalidFilter`], [`Error::Corrupted`] if
    /// a requested field fails authentication.
    pub fn query(&self, query: &Query) -> Result<Vec<Hit>> {
        let filter = self.checked_filter(query)?;
        if query.text.words.is_some() {
            return self.text_query(query, filter.as_ref());
        }
        let state = self.read();
        let neighbors = self.vector_neighbors(&state, query, filter.as_ref())?;
        self.hits(&state, neighbors, query.include)
    }

    /// Checks a query's vector and `top_k`; returns its parsed filter.
    fn checked_filter(&self, query: &Query) -> Result<Option<Filter>> {
        if query.text.words.is_none() || !query.vector.is_empty() {
            validate::vector(&query.vector, self.dim(), self.metric())?;
        }
        if query.top_k == 0 || query.top_k > validate::MAX_TOP_K {
            return Err(Error::invalid_argument(format!(
                "top_k must be between 1 and {}",
                validate::MAX_TOP_K
            )));
        }
        match &query.filter {
            None => Ok(None),
            Some(JsonArg::TooDeep) => Err(filter::too_deep()),
            Some(JsonArg::Value(doc)) => Ok(Some(Filter::parse(doc)?)),
        }
    }

    /// The hits of a vector ranking.
    fn hits(&self, state: &State, neighbors: Vec<Neighbor>, include: Include) -> Result<Vec<Hit>> {
        // The hits' entries, then their ids, lie scattered in memory: each is asked for
        // before any is read, so that their cache misses overlap (they were one wait after
        // another, 5% of a quantized query with vectors in RAM).
        for n in &neighbors {
            state.prefetch_entry(n.handle);
        }
        for n in &neighbors {
            if let Some(e) = state.entry(n.handle) {
                ivf::prefetch(e.id.as_bytes());
            }
        }
        neighbors
            .into_iter()
            .map(|n| self.hit(state, n.handle, (n.distance, None), include))
            .collect()
    }

    /// The lists a query probes: its own `n_probes`, else the index's, else automatic.
    fn n_probes(&self, state: &State, query: &Query) -> usize {
        let n_lists = state.n_lists();
        query
            .n_probes
            .filter(|&p| p > 0)
            .or_else(|| Some(self.inner.config.probes()).filter(|&p| p > 0))
            .unwrap_or_else(|| ivf::auto_n_probes(n_lists, state.len(), self.is_pq()))
            .min(n_lists)
    }

    /// The vector ranking of a query: its `top_k` nearest items that pass the filter.
    pub(super) fn vector_neighbors(
        &self,
        state: &State,
        query: &Query,
        filter: Option<&Filter>,
    ) -> Result<Vec<Neighbor>> {
        let n_probes = self.n_probes(state, query);
        match filter {
            None => self.probe_search(state, query, n_probes, None),
            Some(f) => self.filtered_search(state, query, n_probes, f),
        }
    }

    /// One hit: the item in `slot` with its distance and score, and the fields `include`
    /// asks for.
    pub(super) fn hit(
        &self,
        state: &State,
        slot: u64,
        (distance, score): (f32, Option<f32>),
        include: Include,
    ) -> Result<Hit> {
        let r = self.record(state, slot, include)?;
        Ok(Hit {
            id: r.id,
            distance,
            score,
            metadata: r.metadata,
            contents: r.contents,
            vector: r.vector,
        })
    }

    /// IVF search over the `n_probes` nearest lists, keeping only accepted handles.
    fn probe_search(
        &self,
        state: &State,
        query: &Query,
        n_probes: usize,
        accept: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<Neighbor>> {
        let lists = Lists::new(state);
        let params = self.search_params(state, query, n_probes, accept);
        let hits = ivf::search(state.quantizer(), &lists, &params)?;
        self.pad_reads(state, &lists, query, n_probes);
        Ok(hits)
    }

    /// What [`ivf::search`] needs for `query` over `n_probes` lists.
    fn search_params<'a>(
        &self,
        state: &'a State,
        query: &'a Query,
        n_probes: usize,
        accept: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
    ) -> SearchParams<'a> {
        SearchParams {
            query: &query.vector,
            k: query.top_k,
            n_probes,
            metric: self.metric(),
            accept,
            codes: state.coder().map(|c| CodeSearch {
                codec: &c.codec,
                list_terms: &c.list_terms,
                rerank: self.rerank(state, query),
            }),
        }
    }

    /// The re-rank factor of a query on a quantized index (1 otherwise).
    fn rerank(&self, state: &State, query: &Query) -> usize {
        let default_rerank = state
            .coder()
            .map_or(1, |c| c.codec.default_rerank(self.dim()));
        query.rerank.unwrap_or(default_rerank).max(1)
    }

    /// Tops the reads a query made through `lists` up to a fixed amount, so that every query
    /// at this `n_probes` and `top_k` reads the same number of bytes, whatever the cache held
    /// and however many candidates it found, and counts them.
    fn pad_reads(&self, state: &State, lists: &Lists<'_>, query: &Query, n_probes: usize) {
        let budget = match state.residency() {
            Residency::All => None,
            // One pass over the most expensive lists.
            Residency::OnDemand => {
                Some(n_probes.min(state.n_lists()) as u64 * state.max_list_bytes())
            }
            // One vector record per re-ranked candidate (every item when untrained).
            Residency::Codes => {
                let candidates = match state.coder() {
                    Some(_) => ivf::shortlist_len(query.top_k, self.rerank(state, query)),
                    None => state.len(),
                };
                let record = persist::vector_record_len(self.dim(), state.coding()) as u64;
                Some(candidates.min(state.len()) as u64 * record)
            }
        };
        if let Some(budget) = budget {
            lists.read_padding(budget.saturating_sub(lists.bytes_read()));
            self.inner
                .storage_reads
                .fetch_add(lists.bytes_read(), Ordering::Relaxed);
        }
    }

    /// Filtered search. The filter's selectivity is estimated on a fixed sample of
    /// about `state::SAMPLE_SIZE` items (the same ones in every process). When it matches at most [`PREFILTER_SHARE`] of the items,
    /// the pre-filter path evaluates it on every item and computes exact distances to the
    /// matches (exact results). Otherwise the IVF scan runs with the filter applied inside it
    /// and `n_probes` divided by the square root of the estimated selectivity (measured: it
    /// keeps recall@10 near the unfiltered figure). If that still yields
    /// fewer than `top_k` hits, the pre-filter path answers.
    fn filtered_search(
        &self,
        state: &State,
        query: &Query,
        n_probes: usize,
        filter: &Filter,
    ) -> Result<Vec<Neighbor>> {
        let matches = |e: &ItemEntry| filter.matches(e.metadata.as_deref());
        // A filter naming exact values or numeric ranges: its candidates come from the
        // equality and range indexes, and when they are few, the exact distances to the
        // matching ones answer.
        let few = (PREFILTER_SHARE * state.len() as f64) as usize;
        if let Some(candidates) = filter
            .plan(&|path| state.coverage(path))
            .and_then(|plan| candidates::indexed(state, &plan, few))
        {
            return self.exact_search(state, query, filter, candidates.into_iter());
        }
        let n_lists = state.n_lists();
        let selectivity = {
            let (mut seen, mut hit) = (0usize, 0usize);
            for e in state.sample() {
                seen += 1;
                hit += usize::from(matches(e));
            }
            if seen == 0 {
                1.0
            } else {
                hit as f64 / seen as f64
            }
        };
        if selectivity > PREFILTER_SHARE || n_lists == 1 {
            let accept = |h: u64| state.entry(h).is_some_and(matches);
            let widened = (n_probes as f64 / selectivity.max(1e-9).sqrt()).ceil() as usize;
            let hits = self.probe_search(
                state,
                query,
                widened.clamp(n_probes, n_lists),
                Some(&accept),
            )?;
            if hits.len() >= query.top_k || widened >= n_lists {
                return Ok(hits);
            }
        }
        self.exact_search(state, query, filter, state.entries().map(|(slot, _)| slot))
    }

    /// The exact nearest of the items in `slots` that match `filter` (the pre-filter path).
    fn exact_search(
        &self,
        state: &State,
        query: &Query,
        filter: &Filter,
        slots: impl Iterator<Item = u64>,
    ) -> Result<Vec<Neighbor>> {
        let metric = self.metric();
        let lists = Lists::new(state);
        let mut top = TopK::new(query.top_k);
        for slot in slots {
            if !state
                .entry(slot)
                .is_some_and(|e| filter.matches(e.metadata.as_deref()))
            {
                continue;
            }
            if let (Some(v), Some(handle)) = (lists.vector_of(slot)?, state.handle(slot)) {
                // By handle, not slot: equal distances rank as the scans rank them.
                top.push(metric.distance(&query.vector, &v), handle);
            }
        }
        // Not padded: a non-resident pre-filter query reads the lists (or vector records) of
        // the matching items, so its read volume follows the filter's selectivity
        // (THREAT_MODEL.md, measured by tests/api/leakage.rs).
        self.inner
            .storage_reads
            .fetch_add(lists.bytes_read(), Ordering::Relaxed);
        Ok(top.into_sorted())
    }

    /// Runs many queries in parallel; results are in the order of `queries`, each equal to
    /// what [`query`](Self::query) returns for it.
    ///
    /// Plain vector queries (no filter, no text) are split into groups that share work: on
    /// an `ivf_flat` index, one group per thread, and each probed list is scanned once for
    /// all the queries of a group that probe it, while it is in the CPU's cache (and, when
    /// the lists are not in RAM, decrypted once for all of them); on a trained quantized
    /// index, groups of [`CODES_GROUP`] that the pool's threads take in turn, where the
    /// coarse probes of 8 queries come from one blocked product with the centroids, each
    /// probed list's codes are scanned once for all the queries of the group that probe it
    /// (PQ fast-scan with 4 queries' tables at a time), and each query's exact re-rank waits
    /// for the next query's survivors to be asked for, so that the rows it reads arrive
    /// meanwhile. Other queries run one by one on the pool.
    ///
    /// # Errors
    /// The first error any query gives.
    pub fn query_batch(&self, queries: &[Query]) -> Result<Vec<Vec<Hit>>> {
        // Parallel work runs where this process has threads (`index::parallel`).
        crate::engine::parallel::install(|| {
            let shared: Vec<bool> = queries
                .iter()
                .map(|q| q.text.words.is_none() && q.filter.is_none())
                .collect();
            let kind = Self::batch_kind(&self.read());
            let (Some(kind), true) = (kind, shared.iter().filter(|&&s| s).count() > 1) else {
                return queries.par_iter().map(|q| self.query(q)).collect();
            };
            let group: Vec<&Query> = queries
                .iter()
                .zip(&shared)
                .filter_map(|(q, &s)| s.then_some(q))
                .collect();
            for q in &group {
                self.checked_filter(q)?;
            }
            // Each group holds the state's read lock while it runs: groups stay small enough that
            // a writer waits for one group, not for the whole batch. A shared scan shares more
            // the more queries a group has: one group per thread.
            let group_size = match kind {
                BatchKind::SharedScan => group
                    .len()
                    .div_ceil(rayon::current_num_threads())
                    .clamp(1, SHARED_SCAN_GROUP),
                BatchKind::Codes => CODES_GROUP,
            };
            let grouped: Vec<Vec<Hit>> = group
                .par_chunks(group_size)
                .map(|chunk| {
                    let state = self.read();
                    match Self::batch_kind(&state) {
                        Some(BatchKind::SharedScan) => self.shared_scan(&state, chunk),
                        Some(BatchKind::Codes) => self.codes_batch(&state, chunk),
                        None => {
                            // A commit in between changed what the index holds.
                            drop(state);
                            chunk.iter().map(|q| self.query(q)).collect()
                        }
                    }
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            // The others, one by one (each takes the state itself), then all in order.
            let others: Vec<Option<Result<Vec<Hit>>>> = queries
                .par_iter()
                .zip(&shared)
                .map(|(q, &s)| (!s).then(|| self.query(q)))
                .collect();
            let mut grouped = grouped.into_iter();
            others
                .into_iter()
                .map(|other| other.unwrap_or_else(|| Ok(grouped.next().unwrap_or_default())))
                .collect()
        })
    }

    /// How plain vector queries of a batch share work, if they can: list scans (and list
    /// decryptions) on `ivf_flat`, probes, list scans of codes and memory waits on a trained
    /// quantized index.
    fn batch_kind(state: &State) -> Option<BatchKind> {
        match (state.coder(), state.quantizer()) {
            (Some(_), Some(_)) => Some(BatchKind::Codes),
            (None, _) => Some(BatchKind::SharedScan),
            // An untrained quantized index: one list of codes, each query fetching vectors.
            (Some(_), None) => None,
        }
    }

    /// Plain vector queries over `ivf_flat` lists, each list scanned once for all of them
    /// (when the lists are not in RAM, decrypted once for all of them). Each query's reads
    /// are then padded as one query's are, from nothing: it counts the same bytes, and reads
    /// as many, as it does alone.
    fn shared_scan(&self, state: &State, queries: &[&Query]) -> Result<Vec<Vec<Hit>>> {
        let lists = Lists::new(state);
        let n_probes: Vec<usize> = queries.iter().map(|q| self.n_probes(state, q)).collect();
        let params: Vec<SearchParams<'_>> = queries
            .iter()
            .zip(&n_probes)
            .map(|(q, &n)| self.search_params(state, q, n, None))
            .collect();
        let neighbors = ivf::search_many(state.quantizer(), &lists, &params)?;
        if state.residency() != Residency::All {
            for (q, &n) in queries.iter().zip(&n_probes) {
                self.pad_reads(state, &Lists::new(state), q, n);
            }
        }
        neighbors
            .into_iter()
            .zip(queries)
            .map(|(n, q)| self.hits(state, n, q.include))
            .collect()
    }

    /// Plain vector queries over a trained quantized index, through
    /// [`ivf::search_codes_many`]: each query reads through its own [`Lists`], so that its
    /// reads are padded as one query's are.
    fn codes_batch(&self, state: &State, queries: &[&Query]) -> Result<Vec<Vec<Hit>>> {
        let Some(quantizer) = state.quantizer() else {
            return queries.iter().map(|q| self.query(q)).collect();
        };
        let n_probes: Vec<usize> = queries.iter().map(|q| self.n_probes(state, q)).collect();
        let sources: Vec<Lists<'_>> = queries.iter().map(|_| Lists::new(state)).collect();
        let params: Vec<SearchParams<'_>> = queries
            .iter()
            .zip(&n_probes)
            .map(|(q, &n)| self.search_params(state, q, n, None))
            .collect();
        let neighbors = ivf::search_codes_many(quantizer, &sources, &params)?;
        for ((lists, q), &n) in sources.iter().zip(queries).zip(&n_probes) {
            self.pad_reads(state, lists, q, n);
        }
        neighbors
            .into_iter()
            .zip(queries)
            .map(|(n, q)| self.hits(state, n, q.include))
            .collect()
    }

    /// The stored items with these ids (unknown ids are skipped), in the order asked.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if a requested field fails authentication.
    pub fn get(&self, ids: &[&str], include: Include) -> Result<Vec<Record>> {
        let state = self.read();
        ids.iter()
            .filter_map(|id| state.slot(&state.keys().item_token(id)))
            .map(|slot| self.record(&state, slot, include))
            .collect()
    }

    /// Every id in the index, sorted.
    ///
    /// # Errors
    /// None at present; fallible so that lazily loaded indexes can report I/O errors.
    pub fn list_ids(&self) -> Result<Vec<String>> {
        let state = self.read();
        let mut ids: Vec<String> = state.entries().map(|(_, e)| e.id.clone()).collect();
        ids.sort();
        Ok(ids)
    }

    /// Decrypts what `include` asks for, for one live slot.
    fn record(&self, state: &State, slot: u64, include: Include) -> Result<Record> {
        let e = state.entry(slot).ok_or_else(|| Error::corrupted("state"))?;
        let (mut metadata, mut contents) = (None, None);
        if include.contains(Include::METADATA) {
            metadata = e.metadata.as_deref().cloned();
        }
        if let Some(at) = e.fields.filter(|_| include.contains(Include::CONTENTS)) {
            let (_, c) = persist::open_fields(state.keys(), state.segments(), &e.token, at)?;
            contents = c;
            // Result fetches are not padded (THREAT_MODEL.md): counted as they are.
            self.inner
                .storage_reads
                .fetch_add(u64::from(at.len.get()), Ordering::Relaxed);
        }
        let vector = if include.contains(Include::VECTOR) {
            let lists = Lists::new(state);
            let v = lists.vector_of(slot)?.map(Cow::into_owned);
            self.inner
                .storage_reads
                .fetch_add(lists.bytes_read(), Ordering::Relaxed);
            v
        } else {
            None
        };
        Ok(Record {
            id: e.id.clone(),
            metadata,
            contents,
            vector,
        })
    }
}
