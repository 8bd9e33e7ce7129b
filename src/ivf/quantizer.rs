//! The coarse quantizer: trained centroids, `assign` and `probe`.

use crate::kernel::{self, Neighbor};
use crate::metric::Metric;

/// Trained centroids and how to rank them.
#[derive(Clone, Debug)]
pub(crate) struct Quantizer {
    dim: usize,
    centroids: Vec<f32>,
    norms: Vec<f32>,
    inner_product: bool,
}

impl Quantizer {
    /// A quantizer over `centroids` (rows of `dim`), ranking for `metric`.
    pub(crate) fn new(dim: usize, centroids: Vec<f32>, metric: Metric) -> Quantizer {
        let norms = centroids.chunks_exact(dim).map(kernel::norm_sq).collect();
        Quantizer {
            dim,
            centroids,
            norms,
            inner_product: metric.uses_inner_product(),
        }
    }

    /// The dimension of the centroids.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Number of lists.
    pub(crate) fn n_lists(&self) -> usize {
        self.norms.len()
    }

    /// The centroid coordinates, row-major.
    pub(crate) fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// The centroid of list `list`.
    pub(crate) fn centroid(&self, list: u32) -> &[f32] {
        let l = list as usize;
        &self.centroids[l * self.dim..(l + 1) * self.dim]
    }

    /// A ranking score per centroid for `x` (smaller is nearer).
    fn scores(&self, x: &[f32], out: &mut [f32]) {
        kernel::dot_block(x, &self.centroids, out);
        if self.inner_product {
            out.iter_mut().for_each(|s| *s = -*s);
        } else {
            // |x - c|^2 - |x|^2 = |c|^2 - 2 x.c ranks the same as L2.
            out.iter_mut()
                .zip(&self.norms)
                .for_each(|(s, n)| *s = n - 2.0 * *s);
        }
    }

    /// The list a vector belongs to.
    pub(crate) fn assign(&self, x: &[f32]) -> u32 {
        let mut scores = vec![0.0; self.n_lists()];
        self.scores(x, &mut scores);
        let mut best = (0u32, f32::INFINITY);
        for (i, &s) in scores.iter().enumerate() {
            if s < best.1 {
                best = (i as u32, s);
            }
        }
        best.0
    }

    /// The lists of many vectors (rows of `dim`), in parallel for large batches.
    pub(crate) fn assign_batch(&self, data: &[f32]) -> Vec<u32> {
        let rows = data.len() / self.dim.max(1);
        let mut out = vec![(0u32, 0.0f32); rows];
        if self.inner_product {
            kernel::nearest_ip_batch(data, &self.centroids, self.dim, &mut out);
        } else {
            kernel::nearest_l2_batch(data, &self.centroids, &self.norms, self.dim, &mut out);
        }
        out.into_iter().map(|(c, _)| c).collect()
    }

    /// The `n` lists nearest to `q`, nearest first.
    pub(crate) fn probe(&self, q: &[f32], n: usize) -> Vec<u32> {
        self.probe_with_distances(q, n)
            .into_iter()
            .map(|(list, _)| list)
            .collect()
    }

    /// The `n` lists nearest to `q`, nearest first, each with its centroid's distance to `q`:
    /// squared L2 (from the expanded form, clamped at 0), or minus the inner product.
    pub(crate) fn probe_with_distances(&self, q: &[f32], n: usize) -> Vec<(u32, f32)> {
        let mut scores = vec![0.0; self.n_lists()];
        self.scores(q, &mut scores);
        // The same selection as a `TopK` (ties by list number), in linear time plus a sort
        // of the `n` kept.
        let mut best: Vec<Neighbor> = scores
            .iter()
            .enumerate()
            .map(|(i, &distance)| Neighbor {
                distance,
                handle: i as u64,
            })
            .collect();
        let n = n.min(best.len());
        if n > 0 && n < best.len() {
            best.select_nth_unstable(n - 1);
        }
        best.truncate(n);
        best.sort_unstable();
        let q_norm = if self.inner_product {
            0.0
        } else {
            kernel::norm_sq(q)
        };
        best.into_iter()
            .map(|n| {
                let d = n.distance + q_norm;
                (
                    n.handle as u32,
                    if self.inner_product { d } else { d.max(0.0) },
                )
            })
            .collect()
    }
}
