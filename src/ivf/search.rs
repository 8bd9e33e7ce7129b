//! Search over inverted lists provided by the caller.

use crate::kernel::{self, Neighbor, TopK};
use crate::metric::Metric;

use super::{Codec, Quantizer};

/// The rows of one inverted list, as the caller stores them in memory.
pub(crate) struct ListRows<'a> {
    /// Row-major vectors, `handles.len() * dim` floats.
    pub vectors: &'a [f32],
    /// The caller's handle of each row.
    pub handles: &'a [u64],
    /// `1 / |row|` per row; needed for [`Metric::Cosine`] only (may be empty otherwise).
    pub inv_norms: &'a [f32],
    /// Codes of the rows (`code_len` bytes each) for quantized indexes; empty otherwise.
    pub codes: &'a [u8],
}

/// Where the inverted lists live: `ivf` owns the trait, `index` implements it.
pub(crate) trait ListSource {
    /// The error a list fetch may fail with.
    type Error;
    /// Calls `visit` with every row of list `list` (in one or more pieces).
    fn visit_list(&self, list: u32, visit: &mut dyn FnMut(ListRows<'_>))
    -> Result<(), Self::Error>;
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
    /// For quantized indexes: scan codes, then re-rank the best `rerank * k` exactly.
    pub codes: Option<CodeSearch<'a>>,
}

/// How a quantized index is searched.
#[derive(Clone, Copy)]
pub(crate) struct CodeSearch<'a> {
    /// The trained codec.
    pub codec: &'a Codec,
    /// Candidates kept per result before the exact re-rank (at least 1).
    pub rerank: usize,
}

/// Scans rows into `top`. `query` must already be prepared by [`prepare_query`]; the
/// distances offered are the metric's, except Euclidean, which stays squared until the end.
pub(crate) fn scan_rows(
    rows: &ListRows<'_>,
    query: &[f32],
    metric: Metric,
    accept: Option<&(dyn Fn(u64) -> bool + Sync)>,
    scratch: &mut Vec<f32>,
    top: &mut TopK,
) {
    let n = rows.handles.len();
    if n == 0 {
        return;
    }
    scratch.resize(n, 0.0);
    match metric {
        Metric::Euclidean | Metric::SquaredEuclidean => {
            kernel::l2sq_block(query, rows.vectors, scratch)
        }
        Metric::InnerProduct => {
            kernel::dot_block(query, rows.vectors, scratch);
            scratch.iter_mut().for_each(|d| *d = -*d);
        }
        Metric::Cosine => {
            kernel::dot_block(query, rows.vectors, scratch);
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
    let probes: Vec<u32> = match quantizer {
        Some(q) => q.probe(&query, params.n_probes.max(1)),
        None => vec![0],
    };
    if let (Some(codes), Some(q)) = (params.codes, quantizer) {
        return search_codes(q, lists, params, &query, &probes, codes);
    }
    let mut top = TopK::new(params.k);
    let mut scratch = Vec::new();
    for list in probes {
        lists.visit_list(list, &mut |rows| {
            scan_rows(
                &rows,
                &query,
                params.metric,
                params.accept,
                &mut scratch,
                &mut top,
            )
        })?;
    }
    Ok(finish(top.into_sorted(), params.metric))
}

/// The quantized path: approximate distances from codes; a row that enters the best
/// `rerank * k` gets its exact distance at once (its vector is at hand); the best `k` by
/// exact distance win.
fn search_codes<S: ListSource>(
    quantizer: &Quantizer,
    lists: &S,
    params: &SearchParams<'_>,
    query: &[f32],
    probes: &[u32],
    codes: CodeSearch<'_>,
) -> Result<Vec<Neighbor>, S::Error> {
    let dim = query.len();
    let code_len = codes.codec.code_len(dim);
    let keep = params.k.saturating_mul(codes.rerank.max(1));
    let mut approx = TopK::new(keep);
    let mut exact: std::collections::HashMap<u64, f32> = std::collections::HashMap::new();
    for &list in probes {
        let table = codes
            .codec
            .table(query, quantizer.centroid(list), params.metric);
        lists.visit_list(list, &mut |rows| {
            for (i, &h) in rows.handles.iter().enumerate() {
                let a = table.score(&rows.codes[i * code_len..(i + 1) * code_len]);
                if a > approx.threshold() || params.accept.is_some_and(|f| !f(h)) {
                    continue;
                }
                approx.push(a, h);
                let v = &rows.vectors[i * dim..(i + 1) * dim];
                let d = match params.metric {
                    Metric::Euclidean | Metric::SquaredEuclidean => kernel::l2sq(query, v),
                    Metric::InnerProduct => -kernel::dot(query, v),
                    Metric::Cosine => 1.0 - kernel::dot(query, v) * rows.inv_norms[i],
                };
                exact.insert(h, d);
            }
        })?;
    }
    let mut top = TopK::new(params.k);
    for n in approx.into_sorted() {
        if let Some(&d) = exact.get(&n.handle) {
            top.push(d, n.handle);
        }
    }
    Ok(finish(top.into_sorted(), params.metric))
}
