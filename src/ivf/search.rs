//! Search over inverted lists provided by the caller.

use crate::kernel::{self, Neighbor, TopK};
use crate::metric::Metric;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;

use super::HandleSet;
use super::fastscan::{PackedCodes, QuantizedTable};
use super::refine::Bounds;
use super::{Codec, Quantizer};
use crate::kernel::PQ4_BLOCK;

/// The rows of one inverted list, as the caller stores them in memory.
pub(crate) struct ListRows<'a> {
    /// Row-major vectors, `handles.len() * dim` floats; empty when the caller holds codes
    /// only (the vectors then come from [`ListSource::fetch_vectors`]).
    pub vectors: &'a [f32],
    /// The caller's handle of each row.
    pub handles: &'a [u64],
    /// `1 / |row|` per row ([`inv_norm`]), with `vectors`; needed for [`Metric::Cosine`] only
    /// (may be empty otherwise).
    pub inv_norms: &'a [f32],
    /// Codes of the rows (`code_len` bytes each) for quantized indexes; empty otherwise.
    pub codes: &'a [u8],
    /// Where the caller keeps the fast-scan layout of PQ `codes`, built on first use (`None`:
    /// score codes one by one).
    pub packed: Option<&'a OnceLock<PackedCodes>>,
}

impl ListRows<'_> {
    /// Bytes per row of `codes`: the codec's whole code, or (rows with their vectors) just
    /// the part the scan reads, without the refine code the re-rank of absent vectors needs.
    pub(crate) fn code_len(&self) -> usize {
        self.codes
            .len()
            .checked_div(self.handles.len())
            .unwrap_or(0)
    }
}

/// Where the inverted lists live: `ivf` owns the trait, `index` implements it.
pub(crate) trait ListSource {
    /// The error a list fetch may fail with.
    type Error;
    /// Calls `visit` with every row of list `list`, in one or more pieces. Visits of the
    /// same list within one search (the source's contents unchanged in between, as a source
    /// borrowed for the search guarantees) deliver the same pieces with the same rows in the
    /// same order: the quantized search finds a row of its first pass again by its piece and
    /// row number.
    fn visit_list(&self, list: u32, visit: &mut dyn FnMut(ListRows<'_>))
    -> Result<(), Self::Error>;
    /// Calls `visit` with the vector of each of `handles` (rows whose [`ListRows`] came
    /// without vectors), in any order.
    fn fetch_vectors(
        &self,
        handles: &[u64],
        visit: &mut dyn FnMut(u64, &[f32]),
    ) -> Result<(), Self::Error>;
    /// Says which lists the search is about to visit, so that a source reading them from
    /// remote storage can fetch them all at once instead of one round trip each.
    fn prepare_lists(&self, lists: &[u32]) -> Result<(), Self::Error> {
        let _ = lists;
        Ok(())
    }
}

/// `1 / |v|`, or 0 for the zero vector: what [`Metric::Cosine`] scans multiply by.
pub(crate) fn inv_norm(v: &[f32]) -> f32 {
    let norm = kernel::norm_sq(v).sqrt();
    if norm > 0.0 { 1.0 / norm } else { 0.0 }
}

/// The [`inv_norm`] of every row of `rows` (row-major, `dim` floats each).
pub(crate) fn inv_norms(rows: &[f32], dim: usize) -> Vec<f32> {
    rows.chunks_exact(dim.max(1)).map(inv_norm).collect()
}

/// The exact distance of one row (`inv_norm` its [`inv_norm`]) to a prepared query, as the
/// scan and the re-rank order them (Euclidean still squared).
pub(crate) fn exact_distance(query: &[f32], v: &[f32], metric: Metric, inv_norm: f32) -> f32 {
    match metric {
        Metric::Euclidean | Metric::SquaredEuclidean => kernel::l2sq(query, v),
        Metric::InnerProduct => -kernel::dot(query, v),
        Metric::Cosine => 1.0 - kernel::dot(query, v) * inv_norm,
    }
}

/// One query's parameters.
pub(crate) struct SearchParams<'a> {
    /// The query vector.
    pub query: &'a [f32],
    /// Number of results.
    pub k: usize,
    /// Lists to probe.
    pub n_probes: usize,
    /// The metric.
    pub metric: Metric,
    /// Only handles for which this returns true are eligible.
    pub accept: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
    /// Rows whose handles this set lacks are skipped before any distance is computed for
    /// them (a filter's candidates from the metadata indexes: a superset of what `accept`
    /// takes, which still decides). Without it every row is scored and `accept` asked only
    /// of those that would enter.
    pub candidates: Option<&'a HandleSet>,
    /// The lists to probe, in this order, with their centroids' distances to the query (as
    /// [`Quantizer::probe_with_distances`] gives them), instead of the `n_probes` nearest: a
    /// filtered query's plan. Ignored without a quantizer.
    pub lists: Option<&'a [(u32, f32)]>,
    /// For quantized indexes: scan codes, then re-rank the best [`shortlist_len`] exactly.
    pub codes: Option<CodeSearch<'a>>,
}

/// Hits a quantized search sizes its shortlist for at least: a query for fewer still
/// re-ranks `rerank * SHORTLIST_MIN_K` candidates. With `rerank * k` alone, a top-1 query
/// of `ivf_pq(384, 96)` with defaults re-ranked 10 candidates and found the true nearest
/// neighbour 96.7% of the time on the 50k sentence embeddings, where `ivf_flat` found it
/// 98.7% of the time; and the first hit of a top-1 query then differs from that of a top-10
/// query.
const SHORTLIST_MIN_K: usize = 10;

/// Candidates a quantized search of `k` hits keeps from its code scan for the exact re-rank:
/// `rerank * max(k, 10)`. For `k` up to 10 the shortlist is the same, so the hits of a
/// smaller `k` are the first hits of a larger one.
pub(crate) fn shortlist_len(k: usize, rerank: usize) -> usize {
    k.max(SHORTLIST_MIN_K).saturating_mul(rerank.max(1))
}

/// How a quantized index is searched.
#[derive(Clone, Copy)]
pub(crate) struct CodeSearch<'a> {
    /// The trained codec.
    pub codec: &'a Codec,
    /// PQ under L2: every list's precomputed terms (`Codec::pq_list_terms`, concatenated; one
    /// set for all lists when the codes are of vectors, not residuals).
    pub list_terms: &'a [f32],
    /// Candidates kept per result before the exact re-rank (at least 1).
    pub rerank: usize,
}

/// Scans rows into `top`. `query` must already be prepared by [`prepare_query`]; the
/// distances offered are the metric's, except Euclidean, which stays squared until the end.
/// `cached`: the rows were just scanned for another query (the kernel's in-cache variant,
/// which gives the same bits).
pub(crate) fn scan_rows(
    rows: &ListRows<'_>,
    query: &[f32],
    metric: Metric,
    accept: Option<&(dyn Fn(u64) -> bool + Sync)>,
    scratch: &mut Vec<f32>,
    cached: bool,
    top: &mut TopK,
) {
    let n = rows.handles.len();
    if n == 0 {
        return;
    }
    scratch.resize(n, 0.0);
    let (l2sq_block, dot_block): (BlockKernel, BlockKernel) = if cached {
        (kernel::l2sq_block_cached, kernel::dot_block_cached)
    } else {
        (kernel::l2sq_block, kernel::dot_block)
    };
    match metric {
        Metric::Euclidean | Metric::SquaredEuclidean => {
            l2sq_block(query, rows.vectors, scratch);
        }
        Metric::InnerProduct => {
            dot_block(query, rows.vectors, scratch);
            scratch.iter_mut().for_each(|d| *d = -*d);
        }
        Metric::Cosine => {
            dot_block(query, rows.vectors, scratch);
            scratch
                .iter_mut()
                .zip(rows.inv_norms)
                .for_each(|(d, inv)| *d = 1.0 - *d * inv);
        }
    }
    match accept {
        None => top.push_block(scratch, rows.handles),
        Some(accept) => {
            for (&d, &h) in scratch.iter().zip(rows.handles) {
                if d <= top.threshold() && accept(h) {
                    top.push(d, h);
                }
            }
        }
    }
}

/// The share of a list's rows above which [`scan_candidate_rows`] scores all of them with
/// the block kernel: 3/5.
const BLOCK_SHARE_NUM: usize = 3;
const BLOCK_SHARE_DEN: usize = 5;

/// [`scan_rows`] of only the rows `candidates` holds: each other row is passed over on one
/// bit test, before its distance is computed (a filter matching 10% of the items scores a
/// tenth of the rows of each list it probes).
fn scan_candidate_rows(
    rows: &ListRows<'_>,
    query: &[f32],
    metric: Metric,
    candidates: &HandleSet,
    accept: Option<&(dyn Fn(u64) -> bool + Sync)>,
    scratch: &mut Vec<f32>,
    top: &mut TopK,
) {
    // Where most rows are candidates, the block kernel over all of them costs less than
    // one call per candidate (measured: a row scored alone costs about 1.7 rows of a block).
    let n = rows.handles.len();
    let held = rows
        .handles
        .iter()
        .filter(|&&h| candidates.contains(h))
        .count();
    if held * BLOCK_SHARE_DEN >= n * BLOCK_SHARE_NUM {
        let accept = |h: u64| candidates.contains(h) && accept.is_none_or(|f| f(h));
        scan_rows(rows, query, metric, Some(&accept), scratch, false, top);
        return;
    }
    let dim = query.len().max(1);
    for (i, (&h, v)) in rows
        .handles
        .iter()
        .zip(rows.vectors.chunks_exact(dim))
        .enumerate()
    {
        if !candidates.contains(h) {
            continue;
        }
        let inv_norm = rows.inv_norms.get(i).copied().unwrap_or(0.0);
        let d = exact_distance(query, v, metric, inv_norm);
        if d <= top.threshold() && accept.is_none_or(|f| f(h)) {
            top.push(d, h);
        }
    }
}

/// A kernel of a query against a block of rows.
type BlockKernel = fn(&[f32], &[f32], &mut [f32]);

/// The query as the scan wants it: unit length for cosine, unchanged otherwise.
pub(crate) fn prepare_query(query: &[f32], metric: Metric) -> Vec<f32> {
    let mut q = query.to_vec();
    if metric == Metric::Cosine {
        let n = kernel::norm_sq(&q).sqrt();
        if n > 0.0 {
            q.iter_mut().for_each(|v| *v /= n);
        }
    }
    q
}

/// Turns scan distances into the metric's distances (square root for Euclidean).
pub(crate) fn finish(mut hits: Vec<Neighbor>, metric: Metric) -> Vec<Neighbor> {
    if metric == Metric::Euclidean {
        hits.iter_mut()
            .for_each(|h| h.distance = h.distance.max(0.0).sqrt());
    }
    hits
}

/// Probes the `n_probes` nearest lists (all lists when there is no quantizer) and returns the
/// `k` nearest accepted rows, closest first.
pub(crate) fn search<S: ListSource>(
    quantizer: Option<&Quantizer>,
    lists: &S,
    params: &SearchParams<'_>,
) -> Result<Vec<Neighbor>, S::Error> {
    let query = prepare_query(params.query, params.metric);
    let probe = |q: &Quantizer| match params.lists {
        Some(planned) => planned.to_vec(),
        None => q.probe_with_distances(&query, params.n_probes.max(1)),
    };
    if let (Some(codes), Some(q)) = (params.codes, quantizer) {
        return search_codes(q, lists, params, &query, &probe(q), codes);
    }
    let probes: Vec<u32> = match quantizer {
        Some(q) => probe(q).into_iter().map(|(list, _)| list).collect(),
        None => vec![0],
    };
    lists.prepare_lists(&probes)?;
    let mut top = TopK::new(params.k);
    let mut scratch = Vec::new();
    // Rows that came without vectors (an untrained quantized index holding codes only).
    let mut absent = Vec::new();
    for list in probes {
        lists.visit_list(list, &mut |rows| {
            if rows.vectors.is_empty() {
                absent.extend_from_slice(rows.handles);
                return;
            }
            if let Some(candidates) = params.candidates {
                let (metric, accept) = (params.metric, params.accept);
                let scratch = &mut scratch;
                scan_candidate_rows(&rows, &query, metric, candidates, accept, scratch, &mut top);
                return;
            }
            scan_rows(
                &rows,
                &query,
                params.metric,
                params.accept,
                &mut scratch,
                false,
                &mut top,
            );
        })?;
    }
    absent.retain(|&h| {
        params.candidates.is_none_or(|c| c.contains(h)) && params.accept.is_none_or(|f| f(h))
    });
    lists.fetch_vectors(&absent, &mut |h, v| {
        top.push(exact_distance(&query, v, params.metric, inv_norm(v)), h);
    })?;
    Ok(finish(top.into_sorted(), params.metric))
}

/// The flat path of [`search`] for many queries at once: every probed list is visited once
/// and scanned for each query that probes it while its rows are in the CPU's cache, instead
/// of being streamed from memory once per query (the flat scan is memory-bound: a query of
/// 32 probes over 384-dimension rows reads about 2.7 MB). Each query's result equals what
/// [`search`] returns for it: a scan computes the same distances, and [`TopK`] keeps the `k`
/// least by (distance, handle) whatever the order in which they are offered.
///
/// Every query must be unfiltered (`accept` `None`) and without `codes`, all with the same
/// metric; the caller checks.
pub(crate) fn search_many<S: ListSource>(
    quantizer: Option<&Quantizer>,
    lists: &S,
    params: &[SearchParams<'_>],
) -> Result<Vec<Vec<Neighbor>>, S::Error> {
    debug_assert!(
        params
            .iter()
            .all(|p| p.accept.is_none() && p.codes.is_none())
    );
    let queries: Vec<Vec<f32>> = params
        .iter()
        .map(|p| prepare_query(p.query, p.metric))
        .collect();
    // The queries probing each list, lists in ascending order.
    let mut probing: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, (p, q)) in params.iter().zip(&queries).enumerate() {
        let probes = match quantizer {
            Some(quantizer) => quantizer.probe(q, p.n_probes.max(1)),
            None => vec![0],
        };
        for list in probes {
            probing.entry(list).or_default().push(i);
        }
    }
    lists.prepare_lists(&probing.keys().copied().collect::<Vec<_>>())?;
    let mut tops: Vec<TopK> = params.iter().map(|p| TopK::new(p.k)).collect();
    let mut absent: Vec<Vec<u64>> = vec![Vec::new(); params.len()];
    let mut scratch = Vec::new();
    for (&list, probers) in &probing {
        lists.visit_list(list, &mut |rows| {
            for (nth, &i) in probers.iter().enumerate() {
                if rows.vectors.is_empty() {
                    absent[i].extend_from_slice(rows.handles);
                } else {
                    // The first query reads the rows from memory; the others find them in
                    // cache.
                    scan_rows(
                        &rows,
                        &queries[i],
                        params[i].metric,
                        None,
                        &mut scratch,
                        nth > 0,
                        &mut tops[i],
                    );
                }
            }
        })?;
    }
    let mut out = Vec::with_capacity(params.len());
    for (i, mut top) in tops.into_iter().enumerate() {
        let (query, metric) = (&queries[i], params[i].metric);
        lists.fetch_vectors(&absent[i], &mut |h, v| {
            top.push(exact_distance(query, v, metric, inv_norm(v)), h);
        })?;
        out.push(finish(top.into_sorted(), metric));
    }
    Ok(out)
}

/// The quantized path. [`score_codes`] scores the codes of every probed list and keeps the
/// best [`shortlist_len`] rows with where they are; [`prefetch_survivors`] asks for what the
/// re-rank reads of them (vectors in RAM, or whole codes with their refine codes);
/// [`rerank_survivors`] gives survivors with
/// vectors in RAM their exact distances and bounds the others; [`fetch_while_bounds_allow`]
/// fetches those in order of their bounds until the bounds prove the rest cannot enter. The
/// best `k` by exact distance win.
///
/// The later passes find a survivor again by (list, piece, row): they rely on the
/// [`ListSource`] promise that repeated visits of a list deliver the same pieces in the same
/// order.
fn search_codes<S: ListSource>(
    quantizer: &Quantizer,
    lists: &S,
    params: &SearchParams<'_>,
    query: &[f32],
    probes: &[(u32, f32)],
    codes: CodeSearch<'_>,
) -> Result<Vec<Neighbor>, S::Error> {
    let survivors = code_candidates(quantizer, lists, params, query, probes, codes)?;
    rerank_candidates(quantizer, lists, params, query, codes, &survivors)
}

/// The first two passes of [`search_codes`]: the best [`shortlist_len`] rows by their codes,
/// grouped by list, with what the re-rank will read of them asked for.
fn code_candidates<S: ListSource>(
    quantizer: &Quantizer,
    lists: &S,
    params: &SearchParams<'_>,
    query: &[f32],
    probes: &[(u32, f32)],
    codes: CodeSearch<'_>,
) -> Result<Vec<Place>, S::Error> {
    let approx = score_codes(lists, params, query, probes, codes, quantizer)?;
    survivors_of(approx, lists, query.len(), codes)
}

/// The rows `approx` kept, grouped by list, with what the re-rank will read of them asked for.
fn survivors_of<S: ListSource>(
    approx: Reservoir,
    lists: &S,
    dim: usize,
    codes: CodeSearch<'_>,
) -> Result<Vec<Place>, S::Error> {
    let mut survivors: Vec<Place> = approx.into_best().iter().map(|n| n.1).collect();
    // Grouped by list, so that each list is visited once per pass.
    survivors.sort_unstable_by_key(|p| p.list);
    // Rows carrying whole codes carry the refine code too (see `ListRows::code_len`).
    let whole_code = codes.codec.code_len(dim);
    prefetch_survivors(lists, &survivors, dim, whole_code)?;
    Ok(survivors)
}

/// The last passes of [`search_codes`]: the exact re-rank of `survivors` (from
/// [`code_candidates`] over the same `lists`).
fn rerank_candidates<S: ListSource>(
    quantizer: &Quantizer,
    lists: &S,
    params: &SearchParams<'_>,
    query: &[f32],
    codes: CodeSearch<'_>,
    survivors: &[Place],
) -> Result<Vec<Neighbor>, S::Error> {
    let whole_code = codes.codec.code_len(query.len());
    let mut bounds = codes
        .codec
        .refine()
        .map(|(refine, start)| (refine.bounds(query, params.metric), start));
    let mut top = TopK::new(params.k);
    let absent = rerank_survivors(
        lists,
        (quantizer, codes.codec, survivors),
        (query, params.metric),
        (&mut bounds, whole_code),
        &mut top,
    )?;
    fetch_while_bounds_allow(lists, query, params.metric, absent, &mut top)?;
    Ok(finish(top.into_sorted(), params.metric))
}

/// [`search`] of many queries over a quantized index, one list source per query (`sources[i]`
/// serves `params[i]`), each result equal to what [`search`] returns for it, bit for bit.
/// The work the queries share is done once:
/// - the coarse probes of 8 queries at a time come from one tile ([`Quantizer::probe_many`],
///   bit-identical to one query's probe), a blocked product of queries by centroids;
/// - the first pass goes list by list ([`shared_first_pass`]): each probed list is visited
///   once for every query that probes it, and PQ fast-scan codes are scored against up to
///   [`kernel::PQ4_MAX_TABLES`] queries' tables at once, each block of codes loaded once;
/// - each query's exact re-rank runs after the next query's survivors were asked for, so that
///   the rows it reads have that time to arrive from memory.
///
/// Every query should come with `codes`; one without is answered by [`search`] alone.
pub(crate) fn search_codes_many<S: ListSource>(
    quantizer: &Quantizer,
    sources: &[S],
    params: &[SearchParams<'_>],
) -> Result<Vec<Vec<Neighbor>>, S::Error> {
    let queries: Vec<Vec<f32>> = params
        .iter()
        .map(|p| prepare_query(p.query, p.metric))
        .collect();
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let counts: Vec<usize> = params.iter().map(|p| p.n_probes.max(1)).collect();
    let probes = quantizer.probe_many(&refs, &counts);
    let mut scorers: Vec<Option<CodeScorer<'_>>> = params
        .iter()
        .zip(&queries)
        .map(|(p, q)| p.codes.map(|c| CodeScorer::new(p, q, c, quantizer)))
        .collect();
    let rerank = |&(j, codes, ref survivors): &(usize, CodeSearch<'_>, Vec<Place>)| {
        rerank_candidates(
            quantizer,
            &sources[j],
            &params[j],
            &queries[j],
            codes,
            survivors,
        )
    };
    // Re-ranks a group's queries one after another, asking again for what the next one reads
    // before each: the scan of the group after theirs pushed most of it out of the core's
    // cache (a survivor's whole code was mostly a cache miss when its bound was computed).
    let rerank_in_turn = |waiting: Vec<(usize, CodeSearch<'_>, Vec<Place>)>,
                          out: &mut [Option<Vec<Neighbor>>]|
     -> Result<(), S::Error> {
        for n in 0..waiting.len() {
            if let Some((j, codes, survivors)) = waiting.get(n + 1) {
                let dim = queries[*j].len();
                let whole_code = codes.codec.code_len(dim);
                prefetch_survivors(&sources[*j], survivors, dim, whole_code)?;
            }
            let i = waiting[n].0;
            out[i] = Some(rerank(&waiting[n])?);
        }
        Ok(())
    };
    let mut out: Vec<Option<Vec<Neighbor>>> = vec![None; params.len()];
    // The group whose re-ranks wait for the next group's scan, with their survivors: the
    // rows a re-rank reads were asked for at the end of its own group's scan, and arrive
    // from memory while the next group's codes are scanned.
    let mut waiting = Vec::new();
    for start in (0..params.len()).step_by(SCAN_GROUP) {
        let group = start..(start + SCAN_GROUP).min(params.len());
        shared_first_pass(
            &sources[group.clone()],
            &probes[group.clone()],
            &mut scorers[group.clone()],
        )?;
        let mut ready = Vec::with_capacity(group.len());
        for i in group {
            match (scorers[i].take(), params[i].codes) {
                (Some(scorer), Some(codes)) => {
                    let dim = queries[i].len();
                    let survivors = survivors_of(scorer.approx, &sources[i], dim, codes)?;
                    ready.push((i, codes, survivors));
                }
                _ => out[i] = Some(search(Some(quantizer), &sources[i], &params[i])?),
            }
        }
        rerank_in_turn(std::mem::replace(&mut waiting, ready), &mut out)?;
    }
    rerank_in_turn(waiting, &mut out)?;
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

/// Queries whose first passes share list visits in [`search_codes_many`]: enough that a list
/// is probed by several of them (at 40 of 224 lists, 32 queries probe each list 5 times on
/// average, past their nearest lists; with 16, 2.5 times and 3% fewer codes-only queries per
/// second), few enough that the rows their re-ranks ask for (about 75 KB per query with
/// 384-dimension vectors in RAM) still arrive in time for them: a group's re-ranks wait for
/// the next group's scan, and each query's rows are asked for again just before it.
const SCAN_GROUP: usize = 32;

/// The queries of a group that probe one list past their lead lists: the sum of the ranks
/// they probe it at, and each query with its centroid distance.
type Probers = (usize, Vec<(usize, f32)>);

/// Each query scans its nearest `1 / LEAD_SHARE` probes alone, nearest first, before the lists
/// it shares: the best rows then fill its shortlist early, and the rest of its rows are turned
/// away by a threshold close to its last (in list order, with the threshold still loose,
/// offering rows cost more than sharing the scans saved).
const LEAD_SHARE: usize = 8;

/// The first pass of many queries (`scorers[i]`, `None` for a query without codes, probing
/// `probes[i]`), list by list: each probed list is visited once (through the source of the
/// first query that probes it: under one state, every source delivers the same pieces), and
/// its pieces are scored for every query that probes it while they are in the CPU's cache.
/// Fast-scan codes are scanned against up to [`kernel::PQ4_MAX_TABLES`] tables at once.
/// Each scorer keeps what it keeps in probe order ([`CodeScorer`]).
fn shared_first_pass<S: ListSource>(
    sources: &[S],
    probes: &[Vec<(u32, f32)>],
    scorers: &mut [Option<CodeScorer<'_>>],
) -> Result<(), S::Error> {
    let mut sums = Vec::new();
    // Each query's nearest lists alone, in probe order; then, for the rest, the queries
    // probing each list with their centroid distances and the sum of the ranks they probe it
    // at (lists nearer to their probers first).
    let mut probing: std::collections::HashMap<u32, Probers> = Default::default();
    for (i, (p, scorer)) in probes.iter().zip(scorers.iter_mut()).enumerate() {
        let (Some(scorer), Some(lists)) = (scorer.as_mut(), sources.get(i)) else {
            continue;
        };
        let lead = p.len().div_ceil(LEAD_SHARE);
        for &(list, distance) in &p[..lead] {
            let mut piece = 0u32;
            lists.visit_list(list, &mut |rows| {
                scorer.score_piece((list, piece, distance), &rows, &mut sums);
                piece += 1;
            })?;
        }
        for (rank, &(list, distance)) in p.iter().enumerate().skip(lead) {
            let entry = probing.entry(list).or_default();
            entry.0 += rank;
            entry.1.push((i, distance));
        }
    }
    let mut probing: Vec<(u32, Probers)> = probing.into_iter().collect();
    probing.sort_unstable_by_key(|(list, (rank_sum, probers))| {
        (rank_sum.div_ceil(probers.len().max(1)), *list)
    });
    let probing = probing
        .into_iter()
        .map(|(list, (_, probers))| (list, probers));
    let mut fast: Vec<(usize, f32)> = Vec::new();
    for (list, probers) in probing {
        let Some(source) = sources.get(probers[0].0) else {
            continue;
        };
        let mut piece = 0u32;
        source.visit_list(list, &mut |rows| {
            // The probers whose tables fast-scan this list's packed codes, and the packing.
            fast.clear();
            let mut packed = None;
            if let Some(cell) = rows.packed {
                for &(i, distance) in &probers {
                    let Some((f, terms)) = scorers[i].as_ref().and_then(|s| s.fast_list(list))
                    else {
                        continue;
                    };
                    packed.get_or_insert_with(|| {
                        cell.get_or_init(|| {
                            PackedCodes::pack(rows.codes, rows.code_len(), f.m, terms)
                        })
                    });
                    fast.push((i, distance));
                }
            }
            for &(i, distance) in &probers {
                if fast.iter().all(|&(j, _)| j != i)
                    && let Some(scorer) = scorers[i].as_mut()
                {
                    scorer.score_piece((list, piece, distance), &rows, &mut sums);
                }
            }
            if let Some(packed) = packed {
                for chunk in fast.chunks(kernel::PQ4_MAX_TABLES) {
                    let tables: Vec<&QuantizedTable> = chunk
                        .iter()
                        .filter_map(|&(i, _)| Some(&scorers[i].as_ref()?.fast.as_ref()?.table))
                        .collect();
                    packed.scan_multi(&tables, &mut sums);
                    drop(tables);
                    let run = sums.len() / chunk.len();
                    for (k, &(i, distance)) in chunk.iter().enumerate() {
                        if let Some(scorer) = scorers[i].as_mut() {
                            let sums = &sums[k * run..(k + 1) * run];
                            scorer.offer_sums((list, piece, distance), rows.handles, packed, sums);
                        }
                    }
                }
            }
            piece += 1;
        })?;
    }
    Ok(())
}

/// First pass: approximate distances from the codes of every probed list, keeping the best
/// [`shortlist_len`] accepted rows with where they lie. PQ codes in the fast-scan layout are
/// scored 32 rows at a time by the SIMD kernel with the query's 8-bit table, other codes one
/// by one.
fn score_codes<S: ListSource>(
    lists: &S,
    params: &SearchParams<'_>,
    query: &[f32],
    probes: &[(u32, f32)],
    codes: CodeSearch<'_>,
    quantizer: &Quantizer,
) -> Result<Reservoir, S::Error> {
    let mut scorer = CodeScorer::new(params, query, codes, quantizer);
    let mut sums = Vec::new();
    for &(list, centroid_distance) in probes {
        let mut piece = 0u32;
        lists.visit_list(list, &mut |rows| {
            scorer.score_piece((list, piece, centroid_distance), &rows, &mut sums);
            piece += 1;
        })?;
    }
    Ok(scorer.approx)
}

/// One query's first pass ([`score_codes`]), fed one piece of a list at a time: alone, in
/// probe order, or (a batch, [`search_codes_many`]) list by list with other queries, its
/// fast-scan sums then computed with theirs. Either way it keeps the same rows: the
/// [`Reservoir`] keeps the best by (distance, handle) whatever order rows come in, and every
/// test that turns a row away before it is offered is exact (see [`CodeScorer::sum_limit`]).
struct CodeScorer<'a> {
    params: &'a SearchParams<'a>,
    query: &'a [f32],
    codes: CodeSearch<'a>,
    quantizer: &'a Quantizer,
    fast: Option<FastScan<'a>>,
    approx: Reservoir,
    /// `|q|^2` under L2 (what codes of vectors add for every list), else 0.
    query_distance: f32,
    scores: Vec<f32>,
}

impl<'a> CodeScorer<'a> {
    fn new(
        params: &'a SearchParams<'a>,
        query: &'a [f32],
        codes: CodeSearch<'a>,
        quantizer: &'a Quantizer,
    ) -> CodeScorer<'a> {
        let l2 = matches!(params.metric, Metric::Euclidean | Metric::SquaredEuclidean);
        CodeScorer {
            params,
            query,
            codes,
            quantizer,
            fast: FastScan::new(codes, query, params.metric),
            approx: Reservoir::new(shortlist_len(params.k, codes.rerank)),
            query_distance: if l2 { kernel::norm_sq(query) } else { 0.0 },
            scores: Vec::new(),
        }
    }

    /// What every row's approximate distance adds for its list: `|q - o|^2` (L2) or `-<q, o>`
    /// with `o` the list's origin: the centroid's distance from the probe for residual codes,
    /// the query's own for codes of vectors (the same for every list).
    fn origin_distance(&self, centroid_distance: f32) -> f32 {
        if self.codes.codec.is_residual() {
            centroid_distance
        } else {
            self.query_distance
        }
    }

    /// The fast-scan table and the row terms of `list`, when its rows can be fast-scanned.
    fn fast_list(&self, list: u32) -> Option<(&FastScan<'a>, &'a [f32])> {
        let fast = self.fast.as_ref()?;
        Some((fast, fast.list_terms(list)?))
    }

    /// Offers row `i` of a piece to `approx` if `accept` takes it; returns whether the
    /// threshold moved.
    fn offer(
        (approx, accept): (&mut Reservoir, Option<&(dyn Fn(u64) -> bool + Sync)>),
        (list, piece): (u32, u32),
        handles: &[u64],
        i: usize,
        distance: f32,
    ) -> bool {
        let handle = handles[i];
        if accept.is_some_and(|f| !f(handle)) {
            return false;
        }
        let place = Place {
            list,
            piece,
            row: i as u32,
        };
        approx.push(distance, handle, place)
    }

    /// Scores one piece of list `list` (its `piece`-th, at `centroid_distance` from the query).
    fn score_piece(
        &mut self,
        (list, piece, centroid_distance): (u32, u32, f32),
        rows: &ListRows<'_>,
        sums: &mut Vec<u16>,
    ) {
        if let (Some((fast, terms)), Some(cell)) = (self.fast_list(list), rows.packed) {
            let packed =
                cell.get_or_init(|| PackedCodes::pack(rows.codes, rows.code_len(), fast.m, terms));
            debug_assert_eq!(packed.row_terms().is_empty(), terms.is_empty());
            packed.scan(&fast.table, sums);
            self.offer_sums((list, piece, centroid_distance), rows.handles, packed, sums);
            return;
        }
        let table = self.codes.codec.table(
            self.query,
            self.codes.codec.origin(self.quantizer.centroid(list)),
            self.params.metric,
        );
        let accept = self.params.accept;
        if let Some(candidates) = self.params.candidates {
            // Only the candidates' codes are scored (SQ8 reads `dim` bytes per row).
            let code_len = rows.code_len().max(1);
            let mut one = [0.0f32];
            let codes = rows.codes.chunks_exact(code_len);
            for (i, (&h, code)) in rows.handles.iter().zip(codes).enumerate() {
                if !candidates.contains(h) {
                    continue;
                }
                table.score_block(code, code_len, &mut one);
                if one[0] <= self.approx.threshold() {
                    let at = (list, piece);
                    Self::offer((&mut self.approx, accept), at, rows.handles, i, one[0]);
                }
            }
            return;
        }
        let mut scores = std::mem::take(&mut self.scores);
        scores.resize(rows.handles.len(), 0.0);
        table.score_block(rows.codes, rows.code_len(), &mut scores);
        for (i, &a) in scores.iter().enumerate() {
            if a <= self.approx.threshold() {
                Self::offer(
                    (&mut self.approx, accept),
                    (list, piece),
                    rows.handles,
                    i,
                    a,
                );
            }
        }
        self.scores = scores;
    }

    /// The fast-scan table sums of a piece's rows (`sums`, from [`PackedCodes::scan`] or the
    /// batch's [`kernel::pq4_scan_multi`]), turned into distances and offered.
    fn offer_sums(
        &mut self,
        (list, piece, centroid_distance): (u32, u32, f32),
        handles: &[u64],
        packed: &PackedCodes,
        sums: &[u16],
    ) {
        let centroid_distance = self.origin_distance(centroid_distance);
        let accept = self.params.accept;
        let Some(fast) = self.fast.as_ref() else {
            return;
        };
        let table = &fast.table;
        let approx = &mut self.approx;
        let sums = &sums[..handles.len()];
        let row_terms = packed.row_terms();
        if row_terms.is_empty() {
            // Inner product, or L2 over codes of vectors: the table is the whole distance but
            // for the list's constant, so an integer limit on the sum decides, a kernel block
            // of sums at a time (most blocks hold no sum under the limit once the reservoir
            // has filled).
            //
            // A block's rows under the limit come as a bit mask (one vectorized comparison of
            // the block) and are visited bit by bit: a third of the blocks hold one, where a
            // branch per row mispredicted.
            let mut limit = Self::sum_limit(table, approx.threshold(), centroid_distance);
            for (b, block) in sums.chunks(PQ4_BLOCK).enumerate() {
                let Some(l) = limit else { break };
                let mut under = under_mask(block, l);
                while under != 0 {
                    let t = under.trailing_zeros() as usize;
                    under &= under - 1;
                    let sum = block[t];
                    if limit.is_some_and(|l| sum <= l)
                        && Self::offer(
                            (approx, accept),
                            (list, piece),
                            handles,
                            b * PQ4_BLOCK + t,
                            table.distance(sum) + centroid_distance,
                        )
                    {
                        limit = Self::sum_limit(table, approx.threshold(), centroid_distance);
                    }
                }
            }
        } else {
            // L2: each row adds its own list-dependent term. A kernel block's distances first
            // (a loop the compiler vectorizes), then whether any is under the threshold
            // (vectorized too: once the reservoir has filled most blocks hold none, where a
            // branch per row mispredicts whenever rows still enter often), then those few.
            let (bias, step) = table.affine();
            let base = centroid_distance + bias;
            let scores = &mut self.scores;
            let blocks = sums.chunks(PQ4_BLOCK).zip(row_terms.chunks(PQ4_BLOCK));
            for (b, (block_sums, block_terms)) in blocks.enumerate() {
                scores.clear();
                scores.extend(
                    block_sums
                        .iter()
                        .zip(block_terms)
                        .map(|(&sum, &term)| base + f32::from(sum) * step + term),
                );
                let threshold = approx.threshold();
                if !scores.iter().fold(false, |any, &d| any | (d <= threshold)) {
                    continue;
                }
                for (t, &distance) in scores.iter().enumerate() {
                    if distance <= approx.threshold() {
                        let row = b * PQ4_BLOCK + t;
                        Self::offer((approx, accept), (list, piece), handles, row, distance);
                    }
                }
            }
        }
    }

    /// The largest table sum whose distance (`table.distance(sum) + constant`, as offered)
    /// is at most `threshold`, or `None` if none is. Exact, not merely close: the estimate from
    /// [`QuantizedTable::sum_limit`] is moved by the sums next to it until the distance
    /// itself, monotone in the sum, says where the limit lies. A limit one too low would turn
    /// away a row the reservoir keeps, and only in some orders of the lists (the threshold
    /// the limit comes from depends on what was offered before), so a batch that visits them
    /// in another order would rank differently.
    fn sum_limit(table: &QuantizedTable, threshold: f32, constant: f32) -> Option<u16> {
        let fits = |sum: u16| table.distance(sum) + constant <= threshold;
        let mut limit = table.sum_limit(threshold - constant);
        loop {
            match limit {
                Some(l) if !fits(l) => limit = l.checked_sub(1),
                _ => break,
            }
        }
        loop {
            let next = limit.map_or(Some(0), |l| l.checked_add(1));
            match next {
                Some(n) if fits(n) => limit = Some(n),
                _ => return limit,
            }
        }
    }
}

/// Bit `t` set for each `block[t]` at most `limit` (a block holds at most [`PQ4_BLOCK`] = 32
/// sums).
fn under_mask(block: &[u16], limit: u16) -> u32 {
    const { assert!(PQ4_BLOCK <= 32) };
    block.iter().enumerate().fold(0u32, |mask, (t, &sum)| {
        mask | (u32::from(sum <= limit) << t)
    })
}

/// Second pass: what the re-rank reads of each survivor (its vector when its row holds one,
/// else its whole code, refine code included) lies scattered over the lists, so all of it is
/// asked for before any is read, and the cache misses overlap instead of coming one by one
/// (measured: codes-only queries 10% faster; with vectors in RAM, the exact distances of the
/// re-rank went from 15% of a query's time to 6%, with 7% now spent asking: the lines come
/// at the core's memory rate). `survivors` are grouped by list.
fn prefetch_survivors<S: ListSource>(
    lists: &S,
    survivors: &[Place],
    dim: usize,
    whole_code: usize,
) -> Result<(), S::Error> {
    for group in survivors.chunk_by(|a, b| a.list == b.list) {
        let mut piece = 0u32;
        lists.visit_list(group[0].list, &mut |rows| {
            for place in group.iter().filter(|p| p.piece == piece) {
                let i = place.row as usize;
                if let Some(v) = rows.vectors.get(i * dim..(i + 1) * dim) {
                    kernel::prefetch(v);
                } else if let Some(code) = rows.codes.get(i * whole_code..(i + 1) * whole_code) {
                    kernel::prefetch(code);
                }
            }
            piece += 1;
        })?;
    }
    Ok(())
}

/// Third pass: survivors whose rows hold their vectors get exact distances into `top`; the
/// others are returned with a lower bound on their exact distance as `distance` (from their
/// refine code with `bounds`, else minus infinity), for [`fetch_while_bounds_allow`].
/// `survivors` are grouped by list.
fn rerank_survivors<S: ListSource>(
    lists: &S,
    (quantizer, codec, survivors): (&Quantizer, &Codec, &[Place]),
    (query, metric): (&[f32], Metric),
    (bounds, whole_code): (&mut Option<(Bounds<'_>, usize)>, usize),
    top: &mut TopK,
) -> Result<Vec<Neighbor>, S::Error> {
    let dim = query.len();
    let mut absent: Vec<Neighbor> = Vec::new();
    for group in survivors.chunk_by(|a, b| a.list == b.list) {
        let list = group[0].list;
        let mut piece = 0u32;
        let mut bounds_set = false;
        lists.visit_list(list, &mut |rows| {
            for place in group.iter().filter(|p| p.piece == piece) {
                let i = place.row as usize;
                if let Some(v) = rows.vectors.get(i * dim..(i + 1) * dim) {
                    top.push(
                        exact_distance(query, v, metric, rows.inv_norms[i]),
                        rows.handles[i],
                    );
                    continue;
                }
                let refine_code = rows
                    .codes
                    .get(i * whole_code..(i + 1) * whole_code)
                    .filter(|_| rows.code_len() == whole_code);
                let bound = match (&mut *bounds, refine_code) {
                    (Some((bounds, start)), Some(code)) => {
                        if !bounds_set {
                            bounds.set_list(codec.origin(quantizer.centroid(list)));
                            bounds_set = true;
                        }
                        bounds.lower_bound(&code[*start..])
                    }
                    _ => f32::NEG_INFINITY,
                };
                absent.push(Neighbor {
                    distance: bound,
                    handle: rows.handles[i],
                });
            }
            piece += 1;
        })?;
    }
    Ok(absent)
}

/// Vectors fetched per round of [`fetch_while_bounds_allow`] once `top` is full: small, so
/// that few are fetched past the point where the bounds stop the re-rank, and enough for the
/// fetch's read-ahead to overlap a few records.
const FETCH_ROUND: usize = 4;

/// Re-ranks the `candidates` whose vectors must be fetched (each a lower bound on its exact
/// distance as `distance`, and its handle) in order of their bounds, and stops at the first
/// candidate whose bound exceeds the k-th exact distance found: that candidate and every
/// later one cannot enter `top`, so `top` ends as if every candidate had been re-ranked.
/// Minus-infinity bounds are always fetched.
fn fetch_while_bounds_allow<S: ListSource>(
    lists: &S,
    query: &[f32],
    metric: Metric,
    candidates: Vec<Neighbor>,
    top: &mut TopK,
) -> Result<(), S::Error> {
    // Usually a fifth of the candidates are fetched: a heap (built in linear time) yields
    // them in bound order for less than a full sort.
    let mut pending: BinaryHeap<Reverse<Neighbor>> = candidates.into_iter().map(Reverse).collect();
    let mut handles = Vec::new();
    loop {
        let threshold = top.threshold();
        let round = if threshold == f32::INFINITY {
            top.capacity().max(FETCH_ROUND)
        } else {
            FETCH_ROUND
        };
        handles.clear();
        while handles.len() < round
            && let Some(Reverse(next)) = pending.peek()
            && next.distance <= threshold
        {
            handles.push(next.handle);
            pending.pop();
        }
        if handles.is_empty() {
            return Ok(());
        }
        lists.fetch_vectors(&handles, &mut |h, v| {
            top.push(exact_distance(query, v, metric, inv_norm(v)), h);
        })?;
    }
}

/// The best `keep` candidates by (distance, handle), each with where it lies, collected
/// cheaply: candidates under the threshold are appended, and when twice `keep` have gathered,
/// the best `keep` are selected in linear time and the threshold tightens to the worst of
/// them. Keeps the same set as a heap would (ties broken by handle, so the same whatever
/// order rows are visited in), without a heap operation per candidate.
struct Reservoir {
    keep: usize,
    threshold: f32,
    items: Vec<(Neighbor, Place)>,
}

impl Reservoir {
    fn new(keep: usize) -> Reservoir {
        Reservoir {
            keep,
            threshold: f32::INFINITY,
            items: Vec::with_capacity(2 * keep.min(1 << 16)),
        }
    }

    /// The distance a candidate must not exceed to be kept.
    fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers a candidate; returns whether the threshold moved.
    fn push(&mut self, distance: f32, handle: u64, place: Place) -> bool {
        if self.keep == 0 || distance > self.threshold {
            return false;
        }
        self.items.push((Neighbor { distance, handle }, place));
        if self.items.len() < 2 * self.keep {
            return false;
        }
        self.shrink();
        true
    }

    /// Keeps the best `keep` and sets the threshold to the worst of them.
    fn shrink(&mut self) {
        if self.items.len() > self.keep {
            self.items
                .select_nth_unstable_by(self.keep - 1, |a, b| a.0.cmp(&b.0));
            self.items.truncate(self.keep);
        }
        if self.items.len() == self.keep {
            self.threshold = self
                .items
                .iter()
                .map(|n| n.0.distance)
                .fold(f32::MIN, f32::max);
        }
    }

    /// The best `keep`, in no particular order.
    fn into_best(mut self) -> Vec<(Neighbor, Place)> {
        self.shrink();
        self.items
    }
}

/// Where a row was seen in the first pass of [`search_codes`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct Place {
    list: u32,
    /// Which piece of the list's visit (a list may arrive in several).
    piece: u32,
    row: u32,
}

/// A query's 8-bit PQ table, built once for every list it probes. The approximate squared L2
/// distance of a row with code `r` in a list whose codes are relative to `c` (the centroid for
/// residual codes, zero for codes of vectors: [`Codec::origin`]) splits into `|q - c|^2` (the
/// list's constant), `|r|^2 + 2 <c, r>` (the row's own term) and `-2 <q, r>`, the only part
/// that depends on both the query and the row.
///
/// For residual codes the table holds just that last part, so it does not depend on the
/// list, and each row's own term is summed from its list's precomputed terms when the list's
/// fast-scan layout is built. For codes of vectors (`c = 0`) the row's term `|r|^2` is the
/// same in every list, so the table holds `|r_j|^2 - 2 <q_j, r_j>` per entry, a row's table
/// sum is its whole distance but for `|q|^2`, and rows are kept or dropped on their integer
/// sums alone (as FAISS's fast-scan does). Inner product: `-<q, c>` and the table of
/// `-<q, r>`.
struct FastScan<'a> {
    m: usize,
    table: QuantizedTable,
    /// L2 over residual codes, whose rows carry their own terms: every list's terms
    /// (`Codec::pq_list_terms`, concatenated); empty otherwise.
    list_terms: &'a [f32],
}

impl<'a> FastScan<'a> {
    /// `None` unless the codec is PQ with what its metric needs (L2: the list terms).
    fn new(codes: CodeSearch<'a>, query: &'a [f32], metric: Metric) -> Option<FastScan<'a>> {
        let Codec::Pq { m, .. } = codes.codec else {
            return None;
        };
        let l2 = matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean);
        let len = m * 16;
        if l2 && codes.list_terms.len() < len {
            return None;
        }
        let mut lut = Codec::pq_query_table(metric, &codes.codec.pq_query_dots(query));
        let row_terms = l2 && codes.codec.is_residual();
        if l2 && !row_terms {
            // Codes of vectors: the one set of terms (`|b|^2`) goes into the table.
            lut.iter_mut()
                .zip(&codes.list_terms[..len])
                .for_each(|(entry, term)| *entry += term);
        }
        Some(FastScan {
            m: *m,
            table: QuantizedTable::new(&lut, 0.0),
            list_terms: if row_terms { codes.list_terms } else { &[] },
        })
    }

    /// The terms each row of list `list` adds (L2 over residual codes; empty otherwise), or
    /// `None` if they are missing.
    fn list_terms(&self, list: u32) -> Option<&'a [f32]> {
        if self.list_terms.is_empty() {
            return Some(&[]);
        }
        let len = self.m * 16;
        let set = list as usize;
        self.list_terms.get(set * len..(set + 1) * len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Width;
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    /// Both fast-scan tables, against the distance to the code's reconstruction: codes of
    /// vectors (no row terms, the row's `|r|^2` folded into the table) and residual codes
    /// (row terms summed at packing), each within the 8-bit table's rounding.
    #[test]
    fn fast_scan_sums_give_the_distance_to_the_reconstruction() {
        let (dim, m, n) = (16, 8, 200);
        let mut rng = StdRng::seed_from_u64(5);
        let mut uniform = || rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0;
        let x: Vec<f32> = (0..n * dim).map(|_| uniform()).collect();
        let centroid: Vec<f32> = (0..dim).map(|_| uniform() * 0.5).collect();
        let q: Vec<f32> = (0..dim).map(|_| uniform()).collect();
        for residual in [false, true] {
            let codec = Codec::train_pq(&x, dim, m, 3, Width::Six).with_residual(residual);
            let origin = codec.origin(&centroid).to_vec();
            let mut codes = Vec::new();
            for row in x.chunks_exact(dim) {
                let r: Vec<f32> = row.iter().zip(&origin).map(|(a, o)| a - o).collect();
                codec.encode(&r, &mut codes);
            }
            let terms = codec.pq_list_terms(&origin);
            let search = CodeSearch {
                codec: &codec,
                list_terms: &terms,
                rerank: 1,
            };
            let fast = FastScan::new(search, &q, Metric::SquaredEuclidean).unwrap();
            let row_terms = fast.list_terms(0).unwrap();
            assert_eq!(row_terms.is_empty(), !residual);
            let code_len = codec.code_len(dim);
            let packed = PackedCodes::pack(&codes, code_len, m, row_terms);
            let mut sums = Vec::new();
            packed.scan(&fast.table, &mut sums);
            let (bias, step) = fast.table.affine();
            // The list's constant: `|q - c|^2` for residual codes, `|q|^2` for vectors.
            let constant: f32 = q.iter().zip(&origin).map(|(a, o)| (a - o) * (a - o)).sum();
            for (i, code) in codes.chunks_exact(code_len).enumerate() {
                let recon: Vec<f32> = codec
                    .decode(code, dim)
                    .iter()
                    .zip(&origin)
                    .map(|(r, o)| r + o)
                    .collect();
                let want: f32 = recon.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
                let term = packed.row_terms().get(i).copied().unwrap_or(0.0);
                let got = constant + bias + f32::from(sums[i]) * step + term;
                let tolerance = m as f32 * 0.5 * step + 1e-4;
                assert!(
                    (got - want).abs() <= tolerance,
                    "residual {residual}, row {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn reservoir_keeps_what_a_heap_keeps() {
        let mut rng = StdRng::seed_from_u64(12);
        for trial in 0..200 {
            let keep = trial % 23;
            let n = rng.next_u32() as usize % 500;
            // Few distinct distances, so that ties are common.
            let values: Vec<f32> = (0..n).map(|_| (rng.next_u32() % 40) as f32).collect();
            let mut reservoir = Reservoir::new(keep);
            let mut heap = TopK::new(keep);
            let place = Place {
                list: 0,
                piece: 0,
                row: 0,
            };
            for (h, &d) in values.iter().enumerate() {
                reservoir.push(d, h as u64, place);
                heap.push(d, h as u64);
                assert!(reservoir.threshold() >= heap.threshold() || keep == 0);
            }
            let mut kept: Vec<Neighbor> = reservoir.into_best().iter().map(|n| n.0).collect();
            kept.sort_unstable();
            assert_eq!(kept, heap.into_sorted(), "keep {keep}, n {n}");
        }
    }
}
