//! Reads: queries (unfiltered, filtered, quantized), get and list_ids.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::ivf::{self, Neighbor};
use crate::model::types::JsonArg;

use super::*;
use crate::engine::lists::Lists;
use crate::engine::persist;
use crate::engine::planner::{BatchKind, CODES_GROUP, Planner, SHARED_SCAN_GROUP};
use crate::engine::state::State;
use crate::model::types::{Hit, Include, Query, Record};
use crate::model::validate;

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
        let neighbors = self
            .planner()
            .vector_neighbors(&state, query, filter.as_ref())?;
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

    /// The query planner over this index's configuration and read counter.
    pub(super) fn planner(&self) -> Planner<'_> {
        Planner::new(&self.inner.config, &self.inner.storage_reads)
    }

    /// The hits of each query's neighbors (a batch's group), in order.
    fn hits_each(
        &self,
        state: &State,
        neighbors: Vec<Vec<Neighbor>>,
        queries: &[&Query],
    ) -> Result<Vec<Vec<Hit>>> {
        neighbors
            .into_iter()
            .zip(queries)
            .map(|(n, q)| self.hits(state, n, q.include))
            .collect()
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
            let kind = Planner::batch_kind(&self.read());
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
                    match Planner::batch_kind(&state) {
                        Some(BatchKind::SharedScan) => {
                            let neighbors = self.planner().shared_scan(&state, chunk)?;
                            self.hits_each(&state, neighbors, chunk)
                        }
                        Some(BatchKind::Codes) => {
                            let neighbors = self.planner().codes_batch(&state, chunk)?;
                            self.hits_each(&state, neighbors, chunk)
                        }
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
