//! Training an index's PQ code: codes of the vectors or of their residuals to the list
//! centroids, whichever ranks a sample of the index's own vectors better.
//!
//! Neither wins everywhere, measured one change at a time (recall@10 at re-rank 3, the same
//! coarse lists): on 384-d sentence embeddings (50k, 224 lists, 96 subquantizers) codes of
//! vectors found 0.939 of the true top 10 at 48 probes where residual codes found 0.919; on
//! a clustered synthetic set (100k x 128, Gaussian mixture with low-rank components, 32
//! subquantizers) residual codes found 0.968 at 32 probes and codes of vectors 0.941. With
//! 16 centroids per subquantizer a codebook either follows the spread of the vectors or that
//! of the residuals, and which one carries the ranking depends on the data. So training fits
//! both (PQ training is a small part of training) and keeps the one whose approximate
//! distances put more of each held-out query's exact top [`K`] among their best
//! `K * SHORTLIST`, over a pool of the index's vectors.

use super::codec::Codec;
use super::quantizer::Quantizer;
use super::refine::Width;
use crate::kernel;
use crate::metric::Metric;
use rayon::prelude::*;

/// Neighbours whose recovery is scored.
const K: usize = 10;
/// Candidates kept per neighbour before the exact re-rank (the lowest re-rank worth using).
const SHORTLIST: usize = 3;
/// Vectors the candidates are drawn from.
const POOL: usize = 16_384;
/// Held-out queries.
const QUERIES: usize = 128;

/// Trains PQ with `m` subquantizers on `data` (rows of `dim`, prepared for the metric: unit
/// length for cosine), each row in list `assignments[i]` of `quantizer`, and returns the
/// better of a code of vectors and a code of residuals (ties to vectors). `stride` thins the
/// training sample. Deterministic for a given `seed`.
pub(crate) fn train_pq(
    data: &[f32],
    assignments: &[u32],
    quantizer: &Quantizer,
    (m, width, stride, seed): (usize, Width, usize, u64),
    metric: Metric,
) -> Codec {
    let dim = quantizer.dim();
    let train = |residual| {
        let sample = training_sample(data, assignments, quantizer, stride, residual);
        Codec::train_pq(&sample, dim, m, seed, width).with_residual(residual)
    };
    let (of_vectors, of_residuals) = rayon::join(|| train(false), || train(true));
    let n = assignments.len();
    // Queries and pool are disjoint rows spread over the whole index.
    let query_rows: Vec<usize> = spread(n, QUERIES.min(n / 8));
    let mut is_query = vec![false; n];
    query_rows.iter().for_each(|&i| is_query[i] = true);
    let pool_rows: Vec<usize> = spread(n, POOL.min(n))
        .into_iter()
        .filter(|&i| !is_query[i])
        .collect();
    if query_rows.is_empty() || pool_rows.len() < K * SHORTLIST {
        return of_vectors;
    }
    let rows = |idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| &data[i * dim..(i + 1) * dim])
            .copied()
            .collect()
    };
    let (queries, pool) = (rows(&query_rows), rows(&pool_rows));
    let pool_lists: Vec<u32> = pool_rows.iter().map(|&i| assignments[i]).collect();
    let truth = exact_top(&pool, &queries, dim, metric);
    let score = |codec: &Codec| {
        shortlist_recall(
            codec,
            (&pool, &pool_lists),
            quantizer,
            (&queries, &truth),
            metric,
        )
    };
    let (residuals_score, vectors_score) =
        rayon::join(|| score(&of_residuals), || score(&of_vectors));
    if residuals_score > vectors_score {
        of_residuals
    } else {
        of_vectors
    }
}

/// Every `stride`-th row of `data` (rows of the quantizer's dimension, row `i` in list
/// `assignments[i]`), as its residual to its list's centroid or as it is: what a code is
/// trained on.
pub(crate) fn training_sample(
    data: &[f32],
    assignments: &[u32],
    quantizer: &Quantizer,
    stride: usize,
    residual: bool,
) -> Vec<f32> {
    data.chunks_exact(quantizer.dim())
        .zip(assignments)
        .step_by(stride.max(1))
        .flat_map(|(x, &l)| {
            let c = quantizer.centroid(l);
            x.iter()
                .zip(c)
                .map(move |(v, c)| if residual { v - c } else { *v })
        })
        .collect()
}

/// Each query's exact top [`K`] in `pool` (positions).
fn exact_top(pool: &[f32], queries: &[f32], dim: usize, metric: Metric) -> Vec<Vec<usize>> {
    all_distances(queries, pool, dim, metric)
        .iter()
        .map(|d| nearest(d, K))
        .collect()
}

/// Rows of the pool whose vectors stay in a core's cache while every query is scored
/// against them (256 x 384 floats: 384 KiB).
const BLOCK_ROWS: usize = 256;

/// The distances of each query to every row of `rows` ([`distances`], the same bits), a block
/// of rows at a time for all queries (blocks in parallel): each row is read from memory once,
/// not once per query (a pool of 16,384 x 384-d rows is 24 MiB).
fn all_distances(queries: &[f32], rows: &[f32], dim: usize, metric: Metric) -> Vec<Vec<f32>> {
    let dim = dim.max(1);
    let nq = queries.len() / dim;
    let blocks: Vec<Vec<f32>> = rows
        .par_chunks(BLOCK_ROWS * dim)
        .map(|block| {
            let m = block.len() / dim;
            let mut out = vec![0.0; nq * m];
            for (q, o) in queries
                .chunks_exact(dim)
                .zip(out.chunks_exact_mut(m.max(1)))
            {
                distances(q, block, metric, o);
            }
            out
        })
        .collect();
    (0..nq)
        .map(|q| {
            blocks
                .iter()
                .flat_map(|b| {
                    let m = b.len() / nq.max(1);
                    &b[q * m..(q + 1) * m]
                })
                .copied()
                .collect()
        })
        .collect()
}

/// `count` row numbers spread evenly over `0..n`.
fn spread(n: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| i * n / count.max(1)).collect()
}

/// The share of each query's exact top [`K`] in `pool` (`truth`, from [`exact_top`]) that
/// are among the `K * SHORTLIST` nearest by `codec`'s reconstructions (the distances a scan
/// of its codes estimates).
fn shortlist_recall(
    codec: &Codec,
    (pool, pool_lists): (&[f32], &[u32]),
    quantizer: &Quantizer,
    (queries, truth): (&[f32], &[Vec<usize>]),
    metric: Metric,
) -> f64 {
    let dim = quantizer.dim();
    let reconstructed: Vec<f32> = pool
        .par_chunks_exact(dim)
        .zip(pool_lists.par_iter())
        .flat_map_iter(|(x, &list)| {
            let origin = codec.origin(quantizer.centroid(list));
            let residual: Vec<f32> = x.iter().zip(origin).map(|(v, o)| v - o).collect();
            let mut code = Vec::new();
            codec.encode(&residual, &mut code);
            let decoded = codec.decode(&code, dim);
            decoded
                .into_iter()
                .zip(origin)
                .map(|(r, o)| r + o)
                .collect::<Vec<f32>>()
        })
        .collect();
    let approx = all_distances(queries, &reconstructed, dim, metric);
    let found: usize = approx
        .par_iter()
        .zip(truth.par_iter())
        .map(|(approx, truth)| {
            let shortlist = nearest(approx, K * SHORTLIST);
            truth.iter().filter(|i| shortlist.contains(i)).count()
        })
        .sum();
    let wanted: usize = truth.iter().map(Vec::len).sum();
    found as f64 / wanted.max(1) as f64
}

/// Distances of `q` to every row of `rows` as the scan orders them (smaller is nearer).
fn distances(q: &[f32], rows: &[f32], metric: Metric, out: &mut [f32]) {
    match metric {
        Metric::Euclidean | Metric::SquaredEuclidean => kernel::l2sq_block(q, rows, out),
        Metric::Cosine | Metric::InnerProduct => {
            kernel::dot_block(q, rows, out);
            out.iter_mut().for_each(|d| *d = -*d);
        }
    }
}

/// The positions of the `k` smallest values (ties to the lower position).
fn nearest(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    let k = k.min(order.len());
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, |&a, &b| {
            values[a].total_cmp(&values[b]).then(a.cmp(&b))
        });
    }
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    fn uniform(rng: &mut StdRng) -> f32 {
        rng.next_u32() as f32 / u32::MAX as f32 - 0.5
    }

    /// Tight clusters far apart: every list's residuals are small and alike, so codes of
    /// vectors spend their 16 centroids on the clusters' positions and cannot tell a
    /// cluster's members apart, while residual codes can: the choice must be residual.
    /// Spread vectors in one list: both codes see the same data (the centroid is near 0),
    /// and codes of vectors win ties.
    #[test]
    fn the_code_that_ranks_better_is_chosen() {
        let mut rng = StdRng::seed_from_u64(5);
        let (dim, n, n_lists) = (16, 4000, 20);
        let centers: Vec<f32> = (0..n_lists * dim)
            .map(|_| uniform(&mut rng) * 40.0)
            .collect();
        let mut data = Vec::with_capacity(n * dim);
        let mut assignments = Vec::with_capacity(n);
        for i in 0..n {
            let l = i % n_lists;
            data.extend((0..dim).map(|d| centers[l * dim + d] + uniform(&mut rng) * 0.5));
            assignments.push(l as u32);
        }
        let quantizer = Quantizer::new(dim, centers, Metric::Euclidean);
        let codec = train_pq(
            &data,
            &assignments,
            &quantizer,
            (4, Width::Six, 1, 1),
            Metric::Euclidean,
        );
        assert!(codec.is_residual(), "tight clusters need residual codes");
        let (of_vectors, of_residuals) = (
            Codec::train_pq(&data, dim, 4, 1, Width::Six),
            Codec::train_pq(&data, dim, 4, 1, Width::Six).with_residual(true),
        );
        let pool_lists = vec![0; n];
        let one_list = Quantizer::new(dim, vec![0.0; dim], Metric::Euclidean);
        let (queries, pool) = data.split_at(64 * dim);
        let truth = exact_top(pool, queries, dim, Metric::Euclidean);
        let score = |codec: &Codec| {
            shortlist_recall(
                codec,
                (pool, &pool_lists[64..]),
                &one_list,
                (queries, &truth),
                Metric::Euclidean,
            )
        };
        assert_eq!(score(&of_vectors), score(&of_residuals));
        let one_list_codec = train_pq(
            &data,
            &pool_lists,
            &one_list,
            (4, Width::Six, 1, 1),
            Metric::Euclidean,
        );
        assert!(!one_list_codec.is_residual());
    }
}
