//! Search over inverted lists provided by the caller.

use crate::kernel::{self, Neighbor, TopK};
use crate::metric::Metric;

use super::Quantizer;

/// The rows of one inverted list, as the caller stores them in memory.
pub(crate) struct ListRows<'a> {
    /// Row-major vectors, `handles.len() * dim` floats.
    pub vectors: &'a [f32],
    /// The caller's handle of each row.
    pub handles: &'a [u64],
    /// `1 / |row|` per row; needed for [`Metric::Cosine`] only (may be empty otherwise).
    pub inv_norms: &'a [f32],
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
