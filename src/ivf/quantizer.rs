//! The coarse quantizer: trained centroids, `assign` and `probe`.

use crate::kernel::{self, CenterPanels, Neighbor};
use crate::metric::Metric;

/// Probe counts up to which the nearest lists are picked in one ordered pass rather than by a
/// selection. The pass costs a float comparison per list plus, per list it keeps (about
/// `n (1 + ln(lists / n))` of them), up to `n` moves; a selection costs the same whatever
/// `n`. Measured (A/B, one run, 11 rounds): 3 of 316 lists 1.06x per query and 1.085x in
/// `query_batch`, while 8 and 16 of 224 lists were 4-6% slower than the selection.
const FEW_PROBES: usize = 4;

/// Trained centroids and how to rank them.
#[derive(Clone, Debug)]
pub(crate) struct Quantizer {
    dim: usize,
    centroids: Vec<f32>,
    /// The centroids in the tiled kernels' layout: one query's scores, those of a batch of
    /// queries and `assign_batch` all come from the same arithmetic (bit-identical probes
    /// and assignments), and a batch reads each centroid once per tile of 8 queries.
    panels: CenterPanels,
    norms: Vec<f32>,
    inner_product: bool,
}

impl Quantizer {
    /// A quantizer over `centroids` (rows of `dim`), ranking for `metric`.
    pub(crate) fn new(dim: usize, centroids: Vec<f32>, metric: Metric) -> Quantizer {
        let norms = centroids.chunks_exact(dim).map(kernel::norm_sq).collect();
        let panels = CenterPanels::new(&centroids, dim);
        Quantizer {
            dim,
            centroids,
            panels,
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

    /// A ranking score per centroid for `x` (smaller is nearer); `out` is resized to the
    /// padded number of centroids, the scores of the real ones first.
    fn scores(&self, x: &[f32], out: &mut Vec<f32>) {
        out.resize(self.panels.k_pad(), 0.0);
        self.panels.dots_one(x, out);
        out.truncate(self.n_lists());
        self.dots_to_scores(out);
    }

    /// Turns inner products with the centroids into ranking scores.
    fn dots_to_scores(&self, out: &mut [f32]) {
        if self.inner_product {
            out.iter_mut().for_each(|s| *s = -*s);
        } else {
            // |x - c|^2 - |x|^2 = |c|^2 - 2 x.c ranks the same as L2.
            out.iter_mut()
                .zip(&self.norms)
                .for_each(|(s, n)| *s = n - 2.0 * *s);
        }
    }

    /// The list a vector belongs to, one vector at a time: the reference that
    /// [`Quantizer::assign_batch`], which writes and training use, is tested against.
    #[cfg(test)]
    pub(crate) fn assign(&self, x: &[f32]) -> u32 {
        let mut scores = Vec::new();
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
            kernel::nearest_ip_with(data, &self.panels, &mut out);
        } else {
            kernel::nearest_l2_with(data, &self.panels, &self.norms, &mut out);
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
        let mut scores = Vec::new();
        self.scores(q, &mut scores);
        self.nearest_of(q, &scores, n)
    }

    /// [`Quantizer::probe_with_distances`] of each of `queries` (`n[i]` lists for query `i`),
    /// bit for bit: the scores of 8 queries at a time come from one tile, which reads each
    /// centroid once for all 8.
    pub(crate) fn probe_many(&self, queries: &[&[f32]], n: &[usize]) -> Vec<Vec<(u32, f32)>> {
        let (dim, k, k_pad) = (self.dim, self.n_lists(), self.panels.k_pad());
        let mut tile = vec![0.0f32; 8 * dim];
        let mut dots = vec![0.0f32; 8 * k_pad];
        let mut out = Vec::with_capacity(queries.len());
        for (group, counts) in queries.chunks(8).zip(n.chunks(8)) {
            for (row, q) in tile.chunks_exact_mut(dim.max(1)).zip(group) {
                row.copy_from_slice(&q[..dim]);
            }
            self.panels.dots(&tile, &mut dots);
            for (i, (q, &count)) in group.iter().zip(counts).enumerate() {
                let scores = &mut dots[i * k_pad..i * k_pad + k];
                self.dots_to_scores(scores);
                out.push(self.nearest_of(q, scores, count));
            }
        }
        out
    }

    /// The `n` lists of least `scores` (ties by list number), nearest first, with their
    /// centroids' distances to `q`.
    fn nearest_of(&self, q: &[f32], scores: &[f32], n: usize) -> Vec<(u32, f32)> {
        // The same selection as a `TopK` (ties by list number).
        let n = n.min(scores.len());
        let candidates = scores.iter().enumerate().map(|(i, &distance)| Neighbor {
            distance,
            handle: i as u64,
        });
        let best = if n <= FEW_PROBES {
            // One pass holding the best `n` in order: each list is compared with the worst
            // of them, which few lists beat once some are in; a selection over every list
            // mispredicts its way through all of them (6-8% of a 3-probe query).
            let mut best: Vec<Neighbor> = Vec::with_capacity(n + 1);
            // The worst kept distance once `n` are kept: a plain float comparison turns most
            // lists away (a NaN score goes on to the full order, as a tie does).
            let mut worst = f32::INFINITY;
            for c in candidates {
                if n == 0 || c.distance > worst {
                    continue;
                }
                if best.len() == n {
                    if best.last().is_some_and(|w| c >= *w) {
                        continue;
                    }
                    best.pop();
                }
                best.push(c);
                let mut at = best.len() - 1;
                while at > 0 && best[at] < best[at - 1] {
                    best.swap(at, at - 1);
                    at -= 1;
                }
                if best.len() == n {
                    worst = best[n - 1].distance;
                }
            }
            best
        } else {
            // In linear time, plus a sort of the `n` kept.
            let mut best: Vec<Neighbor> = candidates.collect();
            if n > 0 && n < best.len() {
                best.select_nth_unstable(n - 1);
            }
            best.truncate(n);
            best.sort_unstable();
            best
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    /// The batched probe gives each query exactly what it gets alone, and both agree with a
    /// brute-force ranking of the centroids (within rounding, ties by list).
    #[test]
    fn batched_probes_equal_single_probes_and_brute_force() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut uniform = || rng.next_u32() as f32 / u32::MAX as f32 - 0.5;
        for (dim, k, nq) in [
            (1usize, 1usize, 1usize),
            (7, 3, 5),
            (16, 40, 9),
            (384, 205, 19),
        ] {
            let centroids: Vec<f32> = (0..k * dim).map(|_| uniform()).collect();
            let queries: Vec<Vec<f32>> = (0..nq)
                .map(|_| (0..dim).map(|_| uniform()).collect())
                .collect();
            let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
            let counts: Vec<usize> = (0..nq).map(|i| 1 + i % k).collect();
            for metric in [Metric::Euclidean, Metric::InnerProduct] {
                let q = Quantizer::new(dim, centroids.clone(), metric);
                let many = q.probe_many(&refs, &counts);
                for ((query, &n), batched) in refs.iter().zip(&counts).zip(&many) {
                    let single = q.probe_with_distances(query, n);
                    let bits = |v: &[(u32, f32)]| -> Vec<(u32, u32)> {
                        v.iter().map(|&(l, d)| (l, d.to_bits())).collect()
                    };
                    assert_eq!(bits(batched), bits(&single));
                    // Brute force: the same distances within rounding, nearest first.
                    assert_eq!(single.len(), n);
                    for &(list, d) in &single {
                        let c = q.centroid(list);
                        let want = match metric {
                            Metric::InnerProduct => -kernel::dot(query, c),
                            _ => kernel::l2sq(query, c),
                        };
                        assert!((d - want).abs() <= 1e-4 * want.abs().max(1.0), "{d} {want}");
                    }
                    let worst_kept = single.last().map_or(f32::NEG_INFINITY, |p| p.1);
                    for l in 0..k as u32 {
                        if single.iter().all(|p| p.0 != l) {
                            let c = q.centroid(l);
                            let d = match metric {
                                Metric::InnerProduct => -kernel::dot(query, c),
                                _ => kernel::l2sq(query, c),
                            };
                            assert!(d >= worst_kept - 1e-4 * d.abs().max(1.0));
                        }
                    }
                }
            }
        }
    }

    /// For every probe count, on either side of `FEW_PROBES`, the probes are the first of the
    /// full ranking (every list, sorted by score then list number): over distinct centroids,
    /// and over repeated ones, where many lists score exactly alike.
    #[test]
    fn probes_of_every_count_are_the_full_ranking_cut() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut uniform = || rng.next_u32() as f32 / u32::MAX as f32 - 0.5;
        let (dim, k) = (6usize, 24usize);
        let distinct: Vec<f32> = (0..k * dim).map(|_| uniform()).collect();
        let repeated: Vec<f32> = (0..k)
            .flat_map(|i| distinct[(i * 7 % 5) * dim..][..dim].to_vec())
            .collect();
        for (metric, centroids) in [
            (Metric::Euclidean, &distinct),
            (Metric::InnerProduct, &distinct),
            (Metric::Euclidean, &repeated),
            (Metric::InnerProduct, &repeated),
        ] {
            let q = Quantizer::new(dim, centroids.clone(), metric);
            for _ in 0..50 {
                let query: Vec<f32> = (0..dim).map(|_| uniform()).collect();
                let full = q.probe_with_distances(&query, k);
                let mut sorted = full.clone();
                sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                assert_eq!(full, sorted);
                for n in 0..=k + 1 {
                    let cut = &full[..n.min(k)];
                    assert_eq!(q.probe_with_distances(&query, n), cut, "n {n}");
                    assert_eq!(q.probe_many(&[&query], &[n])[0], cut, "n {n}");
                }
            }
        }
    }

    /// A batch assignment (what writes and training use) gives every vector the list a
    /// single assignment gives it, and that list is one with the smallest distance.
    #[test]
    fn batched_assignments_equal_single_ones_and_brute_force() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut uniform = || rng.next_u32() as f32 / u32::MAX as f32 - 0.5;
        for (dim, k, n) in [
            (1usize, 1usize, 3usize),
            (7, 3, 17),
            (384, 205, 70),
            (16, 700, 9000),
        ] {
            let centroids: Vec<f32> = (0..k * dim).map(|_| uniform()).collect();
            let data: Vec<f32> = (0..n * dim).map(|_| uniform()).collect();
            for metric in [Metric::Euclidean, Metric::InnerProduct] {
                let q = Quantizer::new(dim, centroids.clone(), metric);
                let batch = q.assign_batch(&data);
                assert_eq!(batch.len(), n);
                for (x, &list) in data.chunks_exact(dim).zip(&batch) {
                    assert_eq!(list, q.assign(x));
                    let d = |l: u32| match metric {
                        Metric::InnerProduct => -kernel::dot(x, q.centroid(l)),
                        _ => kernel::l2sq(x, q.centroid(l)),
                    };
                    let best = (0..k as u32).map(d).fold(f32::INFINITY, f32::min);
                    assert!(d(list) <= best + 1e-4 * best.abs().max(1.0));
                }
            }
        }
    }
}
