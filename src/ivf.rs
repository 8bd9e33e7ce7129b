//! The IVF index structure over plaintext, in memory: k-means training, the coarse quantizer,
//! and search over inverted lists that the caller provides through [`ListSource`].
//!
//! Knows nothing of encryption or storage: `index` implements [`ListSource`] over decrypted
//! lists.

mod codec;
mod fastscan;
mod kmeans;
mod quantizer;
mod search;

pub(crate) use codec::Codec;
pub(crate) use fastscan::PackedCodes;
pub(crate) use kmeans::{KMeansParams, kmeans, normalize_rows};
pub(crate) use quantizer::Quantizer;
pub(crate) use search::{
    CodeSearch, ListRows, ListSource, SearchParams, inv_norm, prepare_query, search,
};

/// A sensible number of lists for `n` vectors: about `4 * sqrt(n)` for full vectors, `sqrt(n)`
/// for PQ fast-scan codes (each probed list costs a distance table of `16 * m` entries, which
/// only pays off over longer lists), and at least 39 training points per list (below that,
/// k-means centroids are noise).
pub(crate) fn auto_n_lists(n: usize, pq: bool) -> usize {
    let factor = if pq { 1.0 } else { 4.0 };
    let by_sqrt = (factor * (n as f64).sqrt()).round() as usize;
    by_sqrt.min(n / 39).max(1)
}

/// A sensible default number of lists to probe: about 1/16 of the lists (1/8 for PQ, whose
/// lists are 4 times fewer and longer), at least 1.
pub(crate) fn auto_n_probes(n_lists: usize, pq: bool) -> usize {
    let share = if pq { 8 } else { 16 };
    n_lists.div_ceil(share).clamp(1, n_lists.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};
    use std::convert::Infallible;

    /// Lists held in plain vectors: the simplest `ListSource`.
    struct MemLists {
        dim: usize,
        lists: Vec<(Vec<f32>, Vec<u64>, Vec<f32>)>,
    }

    impl ListSource for MemLists {
        type Error = Infallible;
        fn visit_list(
            &self,
            list: u32,
            visit: &mut dyn FnMut(ListRows<'_>),
        ) -> Result<(), Infallible> {
            let (v, h, n) = &self.lists[list as usize];
            // Hand the list over in two pieces, as a segmented store would.
            let half = h.len() / 2;
            visit(ListRows {
                vectors: &v[..half * self.dim],
                handles: &h[..half],
                inv_norms: &n[..half],
                codes: &[],
                packed: None,
            });
            visit(ListRows {
                vectors: &v[half * self.dim..],
                handles: &h[half..],
                inv_norms: &n[half..],
                codes: &[],
                packed: None,
            });
            Ok(())
        }

        fn fetch_vectors(
            &self,
            handles: &[u64],
            _visit: &mut dyn FnMut(u64, &[f32]),
        ) -> Result<(), Infallible> {
            // Every row above comes with its vector.
            assert!(handles.is_empty());
            Ok(())
        }
    }

    #[test]
    fn full_probe_equals_brute_force_for_every_metric() {
        let mut rng = StdRng::seed_from_u64(11);
        for metric in [
            Metric::Euclidean,
            Metric::SquaredEuclidean,
            Metric::Cosine,
            Metric::InnerProduct,
        ] {
            for &(n, dim, k) in &[(300usize, 8usize, 10usize), (1000, 33, 25), (50, 3, 60)] {
                let data: Vec<f32> = (0..n * dim)
                    .map(|_| rng.next_u32() as f32 / u32::MAX as f32 - 0.5)
                    .collect();
                let n_lists = auto_n_lists(n, false).max(4);
                let mut train = data.clone();
                if metric == Metric::Cosine {
                    kmeans::normalize_rows(&mut train, dim);
                }
                let km = kmeans(
                    &train,
                    dim,
                    &KMeansParams {
                        k: n_lists,
                        spherical: metric == Metric::Cosine,
                        ..Default::default()
                    },
                );
                let q = Quantizer::new(dim, km.centroids, metric);
                let mut lists = MemLists {
                    dim,
                    lists: vec![(vec![], vec![], vec![]); q.n_lists()],
                };
                for (i, x) in data.chunks(dim).enumerate() {
                    let l = &mut lists.lists[q.assign(&prepare_query(x, metric)) as usize];
                    l.0.extend_from_slice(x);
                    l.1.push(i as u64);
                    l.2.push(1.0 / crate::kernel::norm_sq(x).sqrt());
                }
                for _ in 0..20 {
                    let query: Vec<f32> = (0..dim)
                        .map(|_| rng.next_u32() as f32 / u32::MAX as f32 - 0.5)
                        .collect();
                    let got = search(
                        Some(&q),
                        &lists,
                        &SearchParams {
                            query: &query,
                            k,
                            n_probes: q.n_lists(),
                            metric,
                            accept: None,
                            codes: None,
                        },
                    )
                    .unwrap();
                    let mut want: Vec<(f32, u64)> = data
                        .chunks(dim)
                        .enumerate()
                        .map(|(i, x)| (metric.distance(&query, x), i as u64))
                        .collect();
                    want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    want.truncate(k);
                    assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        // Same distances (within rounding); ids equal unless a near-tie.
                        assert!((g.distance - w.0).abs() <= 1e-4 * w.0.abs().max(1.0));
                    }
                    let got_ids: Vec<u64> = got.iter().map(|g| g.handle).collect();
                    let want_ids: Vec<u64> = want.iter().map(|w| w.1).collect();
                    if got_ids != want_ids {
                        // Only allowed where consecutive distances are within rounding.
                        for (g, w) in got.iter().zip(&want) {
                            if g.handle != w.1 {
                                assert!((g.distance - w.0).abs() <= 1e-5 * w.0.abs().max(1.0));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn auto_parameters_are_sane() {
        assert_eq!(auto_n_lists(0, false), 1);
        assert_eq!(auto_n_lists(100, false), 2);
        assert_eq!(auto_n_lists(1_000_000, false), 4000);
        assert_eq!(auto_n_lists(1_000_000, true), 1000);
        assert_eq!(auto_n_probes(4000, false), 250);
        assert_eq!(auto_n_probes(1000, true), 125);
        assert!(auto_n_probes(1, false) == 1 && auto_n_probes(1, true) == 1);
    }
}
