//! The query planner: how a vector query searches the lists of a [`State`]. How many lists
//! it probes (its own `n_probes`, the index's, or automatic), the re-rank window of a
//! quantized index, a filter's path (the equality and range indexes' candidates, the
//! filtered IVF scan widened by the estimated selectivity, or the exact pre-filter scan),
//! how plain vector queries of a batch share work, and the padding that makes every query
//! at one `n_probes` and `top_k` read the same bytes. It returns neighbors (handles and
//! distances); the facade (`EncryptedIndex::query`, `query_batch`) turns them into hits.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::filter::Filter;
use crate::ivf::{self, CodeSearch, HandleSet, Neighbor, SearchParams, TopK};
use crate::metric::Metric;
use crate::model::config::{IndexConfig, IndexType};
use crate::model::types::Query;

use super::candidates;
use super::filter_plan;
use super::lists::Lists;
use super::persist;
use super::state::{ItemEntry, Residency, State};

/// Largest estimated share of the items a filter may match for the exact pre-filter path.
const PREFILTER_SHARE: f64 = 0.05;

/// How many candidates ahead of its turn the exact ranking asks for a candidate's vector
/// (and twice that for its entry).
const EXACT_AHEAD: usize = 8;

/// The most queries that share list scans under one hold of the state's read lock (about
/// 36 queries per list at 32 of 894 probes: most of the sharing, a bounded wait for writers).
pub(crate) const SHARED_SCAN_GROUP: usize = 1024;

/// Queries per group of a quantized batch: two of `ivf::search`'s scan groups of 32, so that
/// the first group's re-ranks overlap the second group's scan (with one scan group per
/// group, the re-ranks of vectors in RAM waited for their rows: 5% fewer queries per
/// second). Small groups let the pool balance the threads: with one group per thread, a
/// batch waits for the slowest thread.
pub(crate) const CODES_GROUP: usize = 64;

/// How the plain vector queries of a batch share work (`EncryptedIndex::query_batch`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BatchKind {
    /// `ivf_flat` (or an untrained index): each probed list scanned once for all queries,
    /// from RAM, or decrypted once for all of them when the lists are not resident.
    SharedScan,
    /// A trained quantized index: probes in tiles, re-ranks after the next query's scan.
    Codes,
}

/// What narrows an IVF probe of a filtered query ([`Planner::probe_search`]).
#[derive(Clone, Copy, Default)]
struct Probe<'a> {
    /// Only handles for which this returns true are eligible.
    accept: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
    /// The filter's candidates: other rows are skipped before their distances.
    candidates: Option<&'a HandleSet>,
    /// The planned lists, nearest first, instead of the `n_probes` nearest.
    lists: Option<&'a [(u32, f32)]>,
}

/// The planner of one index's queries: its configuration, and the counter of the sealed
/// bytes its queries read from storage (`EncryptedIndex::query` makes one per query).
pub(crate) struct Planner<'a> {
    config: &'a IndexConfig,
    storage_reads: &'a AtomicU64,
}

impl<'a> Planner<'a> {
    /// The planner of an index configured by `config`, counting its reads in `storage_reads`.
    pub(crate) fn new(config: &'a IndexConfig, storage_reads: &'a AtomicU64) -> Planner<'a> {
        Planner {
            config,
            storage_reads,
        }
    }

    fn dim(&self) -> usize {
        self.config.dimension()
    }

    fn metric(&self) -> Metric {
        self.config.distance_metric()
    }

    /// Whether this is an `ivf_pq` index (whose default list and probe counts differ).
    fn is_pq(&self) -> bool {
        matches!(self.config.index_type(), IndexType::IvfPq { .. })
    }
}

impl Planner<'_> {
    /// The lists a query probes: its own `n_probes`, else the index's, else automatic.
    fn n_probes(&self, state: &State, query: &Query) -> usize {
        let n_lists = state.n_lists();
        query
            .n_probes
            .filter(|&p| p > 0)
            .or_else(|| Some(self.config.probes()).filter(|&p| p > 0))
            .unwrap_or_else(|| ivf::auto_n_probes(n_lists, state.len(), self.is_pq()))
            .min(n_lists)
    }

    /// The vector ranking of a query: its `top_k` nearest items that pass the filter.
    pub(crate) fn vector_neighbors(
        &self,
        state: &State,
        query: &Query,
        filter: Option<&Filter>,
    ) -> Result<Vec<Neighbor>> {
        let n_probes = self.n_probes(state, query);
        match filter {
            None => self.probe_search(state, query, n_probes, Probe::default()),
            Some(f) => self.filtered_search(state, query, n_probes, f),
        }
    }

    /// IVF search over the `n_probes` nearest lists (or the planned lists of `probe`),
    /// keeping only accepted handles.
    fn probe_search(
        &self,
        state: &State,
        query: &Query,
        n_probes: usize,
        probe: Probe<'_>,
    ) -> Result<Vec<Neighbor>> {
        let lists = Lists::new(state);
        let params = SearchParams {
            candidates: probe.candidates,
            lists: probe.lists,
            ..self.search_params(state, query, n_probes, probe.accept)
        };
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
            candidates: None,
            lists: None,
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
            self.storage_reads
                .fetch_add(lists.bytes_read(), Ordering::Relaxed);
        }
    }

    /// Filtered search. The filter's candidates come from the equality, range and pattern
    /// indexes when it has a plan there and its estimated selectivity is at most
    /// `filter_plan::CANDIDATE_SET_MAX` (a superset of its matches, as a set of slots); the
    /// selectivity is estimated on a fixed sample of about `state::SAMPLE_SIZE` items
    /// (the same ones in every process). An exact plan (`filter::Planned::exact`: `$eq`,
    /// `$in` and number comparisons joined by `$and`/`$or`) accepts a row on its candidate bit
    /// alone, and its set's size is the selectivity; one without a range, whose candidates
    /// are counted from posting lengths, builds its set first when they are at most that
    /// share, and takes no sample. When the candidates are at most
    /// [`PREFILTER_SHARE`] of the items (counted before any sampling), their exact
    /// distances answer; above, with vectors resident, too when that costs less than a probe
    /// by `filter_plan`'s measured costs (never, measured, for an index of many lists; the
    /// index not resident, never: the exact path's reads are unpadded, THREAT_MODEL.md). Otherwise
    /// the IVF scan runs with the filter applied inside it, each row tested against the
    /// candidates before its distance is computed, over the lists `filter_plan::lists_for`
    /// plans (lists without candidates passed over) or, with the lists not in RAM, the
    /// `filter_plan::widened_probes` nearest. A filter without candidates matching at most
    /// [`PREFILTER_SHARE`] is evaluated on every item instead, and the pre-filter path
    /// answers too when the scan yields fewer than `top_k` hits.
    fn filtered_search(
        &self,
        state: &State,
        query: &Query,
        n_probes: usize,
        filter: &Filter,
    ) -> Result<Vec<Neighbor>> {
        let matches = |e: &ItemEntry| filter.matches(e.metadata.as_deref());
        let planned = filter.planned(&|path| state.coverage(path));
        let exact_plan = planned.as_ref().is_some_and(|p| p.exact);
        let plan = planned
            .as_ref()
            .map(|planned| candidates::resolve(state, &planned.plan));
        // At most PREFILTER_SHARE candidates: their exact distances answer, found before
        // any sampling (a 0.1% filter answers in about the time the sample takes).
        let few = (PREFILTER_SHARE * state.len() as f64) as usize;
        // An exact plan's candidates are the matches: a row's bit alone then says whether
        // it matches (no filter evaluated on its metadata, a walk through memory the bit
        // test does not make), and the set's size is the selectivity. When counting them is
        // cheap (posting lengths, no range walk), one count decides both the path above and
        // whether the set is built, and no sample is taken; a range's count walks an entry
        // at a time, past `few` dearer than the sample.
        let set_max = (filter_plan::CANDIDATE_SET_MAX * state.len() as f64) as usize;
        let counted = exact_plan && plan.as_ref().is_some_and(|p| !candidates::walks_ranges(p));
        let limit = if counted { set_max.max(few) } else { few };
        let bound = plan.as_ref().map(|p| candidates::bound(state, p, limit));
        if let (Some(plan), Some(n)) = (&plan, bound)
            && n <= few
        {
            let c = candidates::sorted(state, plan, limit);
            // Exactly the matches when the plan is exact and none of it was left out.
            let check = (!(exact_plan && candidates::sorted_takes_all(plan))).then_some(filter);
            return self.exact_search(state, query, check, c.into_iter());
        }
        let n_lists = state.n_lists();
        let counted_set = plan
            .as_ref()
            .filter(|_| counted && bound.is_some_and(|n| n <= set_max))
            .map(|p| candidates::set(state, p));
        let share = |set: &HandleSet| set.len() as f64 / state.len().max(1) as f64;
        let sampled = || {
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
        let mut selectivity = counted_set.as_ref().map_or_else(sampled, share);
        let candidates = counted_set.or_else(|| {
            plan.filter(|_| selectivity <= filter_plan::CANDIDATE_SET_MAX)
                .map(|plan| candidates::set(state, &plan))
        });
        let exact_candidates = exact_plan && candidates.is_some();
        if let Some(set) = candidates.as_ref().filter(|_| exact_candidates) {
            selectivity = share(set);
        }
        let rank_exactly = match &candidates {
            Some(c) if state.residency() == Residency::All => {
                let shape = filter_plan::Shape {
                    items: state.len(),
                    n_lists,
                    n_probes,
                    selectivity,
                    candidates: Some(c.len()),
                };
                filter_plan::exact_is_cheaper(&shape, &filter_plan::RESIDENT)
            }
            _ => false,
        };
        let check = (!exact_candidates).then_some(filter);
        let exact_over_candidates =
            |c: &HandleSet| self.exact_search(state, query, check, c.keys());
        if let (true, Some(c)) = (rank_exactly, &candidates) {
            return exact_over_candidates(c);
        }
        if selectivity > PREFILTER_SHARE || n_lists == 1 || candidates.is_some() {
            // The candidate bit first: one test where the filter evaluates a document.
            let accept = |h: u64| match &candidates {
                Some(c) if exact_candidates => c.contains(h),
                _ => {
                    candidates.as_ref().is_none_or(|c| c.contains(h))
                        && state.entry(h).is_some_and(matches)
                }
            };
            let widened = filter_plan::widened_probes(n_probes, n_lists, selectivity);
            let planned = match (&candidates, state.quantizer()) {
                (Some(c), Some(q)) => {
                    let query = (&query.vector[..], self.metric());
                    filter_plan::lists_for(state, q, query, n_probes, selectivity, c)
                }
                _ => None,
            };
            let probe = Probe {
                accept: Some(&accept),
                candidates: candidates.as_ref(),
                lists: planned.as_ref().map(|p| &p.0[..]),
            };
            let probed = planned.as_ref().map_or(widened, |p| p.0.len());
            let hits = self.probe_search(state, query, probed, probe)?;
            let complete = planned.as_ref().map_or(widened >= n_lists, |p| p.1);
            if hits.len() >= query.top_k || complete {
                return Ok(hits);
            }
            if let Some(c) = &candidates {
                return exact_over_candidates(c);
            }
        }
        let every_item = state.entries().map(|(slot, _)| slot);
        self.exact_search(state, query, Some(filter), every_item)
    }

    /// The exact nearest of the items in `slots` that match `filter` (the pre-filter path;
    /// `None`: `slots` are live matches already, an exact plan's candidates).
    fn exact_search(
        &self,
        state: &State,
        query: &Query,
        filter: Option<&Filter>,
        mut slots: impl Iterator<Item = u64>,
    ) -> Result<Vec<Neighbor>> {
        let metric = self.metric();
        let lists = Lists::new(state);
        let mut top = TopK::new(query.top_k);
        // Each slot's entry and (resident) vector lie scattered in memory: both are asked
        // for ahead of their turn, the entry further ahead (the vector's place is read from
        // it), so that the misses overlap instead of coming one by one. A window holds the
        // next slots, not all of them (the fallback passes every item).
        let mut window = std::collections::VecDeque::with_capacity(2 * EXACT_AHEAD + 1);
        loop {
            while window.len() <= 2 * EXACT_AHEAD {
                let Some(next) = slots.next() else { break };
                state.prefetch_entry(next);
                window.push_back(next);
            }
            let Some(slot) = window.pop_front() else {
                break;
            };
            // `vector` is `None` unless the vectors are resident.
            if let Some(v) = window.get(EXACT_AHEAD - 1).and_then(|&s| state.vector(s)) {
                ivf::prefetch(v);
            }
            let matching = |e: &ItemEntry| filter.is_none_or(|f| f.matches(e.metadata.as_deref()));
            if !state.entry(slot).is_some_and(matching) {
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
        self.storage_reads
            .fetch_add(lists.bytes_read(), Ordering::Relaxed);
        Ok(top.into_sorted())
    }

    /// How plain vector queries of a batch share work, if they can: list scans (and list
    /// decryptions) on `ivf_flat`, probes, list scans of codes and memory waits on a trained
    /// quantized index.
    pub(crate) fn batch_kind(state: &State) -> Option<BatchKind> {
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
    pub(crate) fn shared_scan(
        &self,
        state: &State,
        queries: &[&Query],
    ) -> Result<Vec<Vec<Neighbor>>> {
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
        Ok(neighbors)
    }

    /// Plain vector queries over a trained quantized index, through
    /// [`ivf::search_codes_many`]: each query reads through its own [`Lists`], so that its
    /// reads are padded as one query's are.
    pub(crate) fn codes_batch(
        &self,
        state: &State,
        queries: &[&Query],
    ) -> Result<Vec<Vec<Neighbor>>> {
        let Some(quantizer) = state.quantizer() else {
            return queries
                .iter()
                .map(|q| self.vector_neighbors(state, q, None))
                .collect();
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
        Ok(neighbors)
    }
}
