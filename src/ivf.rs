//! The IVF index structure over plaintext, in memory: k-means training, the coarse quantizer,
//! and search over inverted lists that the caller provides through [`ListSource`].
//!
//! Knows nothing of encryption or storage: `index` implements [`ListSource`] over decrypted
//! lists.

mod codec;
mod fastscan;
mod handle_set;
mod kmeans;
mod pq_choice;
mod quantizer;
mod ranges;
mod refine;
mod search;

/// What searches return and how callers merge them: a neighbour (distance, handle) and a
/// bounded best-`k` collector, both the kernel's, passed through so that callers above `ivf`
/// need not reach into the kernel.
pub(crate) use crate::kernel::{Neighbor, TopK};
pub(crate) use codec::Codec;
pub(crate) use fastscan::PackedCodes;
pub(crate) use handle_set::HandleSet;
pub(crate) use kmeans::{KMeansParams, kmeans, normalize_rows, split_in_two};
pub(crate) use pq_choice::{train_pq, training_sample};
pub(crate) use quantizer::Quantizer;
pub(crate) use refine::Width;
pub(crate) use search::{
    CodeSearch, ListRows, ListSource, SearchParams, inv_norm, inv_norms, prepare_query, search,
    search_codes_many, search_many, shortlist_len,
};

/// Asks the CPU to start loading `items` into cache (a hint, never a fault): list sources
/// call it on records they will read next, and the index on the entries of its hits, so
/// that cache misses overlap.
pub(crate) fn prefetch<T>(items: &[T]) {
    crate::kernel::prefetch(items);
}

/// A sensible number of lists for `n` vectors: about `4 * sqrt(n)` for full vectors, `sqrt(n)`
/// for PQ fast-scan codes (each probed list costs a distance table of `16 * m` entries, which
/// only pays off over longer lists), and at least 39 training points per list (below that,
/// k-means centroids are noise).
pub(crate) fn auto_n_lists(n: usize, pq: bool) -> usize {
    let by_sqrt = (lists_per_sqrt(pq) * (n as f64).sqrt()).round() as usize;
    by_sqrt.min(n / MIN_POINTS_PER_LIST).max(1)
}

/// Automatic lists per square root of the item count ([`auto_n_lists`]).
fn lists_per_sqrt(pq: bool) -> f64 {
    if pq { 1.0 } else { 4.0 }
}

/// The fewest items per list [`auto_n_lists`] allows.
const MIN_POINTS_PER_LIST: usize = 39;

/// A sensible default number of lists to probe for `n` items in `n_lists` lists: about 1/12
/// of the lists, 1/4 for PQ, whose lists are 4 times fewer and longer (so a quarter of them
/// is about the same share of the items as flat's 1/12 with 3x the margin: with 1/8,
/// recall@10 of `ivf_pq(384, 96)` on held-out sentence embeddings was about 0.92; the
/// fast-scan pays little per extra list); and at least `sqrt(400 / n')` of them
/// (`sqrt(800 / n')` for PQ), which matters below about 60,000 items (13,000 for PQ).
/// Measured on the 384-d sentence embeddings: 1/12 gives recall@10 0.969 at 50,000 items,
/// but small indexes have few, short lists (at most `n / 39`) and need a larger share: at
/// 5,000 items 1/12 gave 0.863 (flat, 128 lists) and 1/4 gave 0.945 (PQ, 71 lists); these
/// floors give about 0.97 there, and at 15,000. (Flat probed 1/16 until 2026-11-30: 0.9585
/// at 50,000 was too close to 0.95.)
///
/// `n'` is `n`, or fewer: the count for which `n_lists` is the automatic number of lists
/// ([`lists_default_up_to`]) when the index holds more. What a query needs depends on its
/// lists more than on the item count: an index trained on its first 5,000 items (128 lists)
/// and then grown to 50,000 reached recall@10 0.912 with the share of 50,000 items (12
/// probes) and 0.979 with that of 5,000 (37); where `n_lists` is the default for `n`, `n'`
/// is `n` and nothing changes. At least 1.
pub(crate) fn auto_n_probes(n_lists: usize, n: usize, pq: bool) -> usize {
    let (share, small_index) = if pq {
        (0.25, 800.0)
    } else {
        (1.0 / 12.0, 400.0)
    };
    let n = n.min(lists_default_up_to(n_lists, pq));
    let share = f64::max(share, (small_index / n.max(1) as f64).sqrt());
    ((n_lists as f64 * share).ceil() as usize).clamp(1, n_lists.max(1))
}

/// The largest item count whose automatic number of lists ([`auto_n_lists`]) is at most
/// `n_lists`: below `((n_lists + 1/2) / 4)^2` (`(n_lists + 1/2)^2` for PQ) the rounded square
/// root stays at most `n_lists`, and below `39 (n_lists + 1)` the cap of 39 training points
/// per list does; either suffices.
pub(crate) fn lists_default_up_to(n_lists: usize, pq: bool) -> usize {
    let by_sqrt = ((n_lists as f64 + 0.5) / lists_per_sqrt(pq))
        .powi(2)
        .floor() as usize;
    let by_cap = n_lists
        .saturating_add(1)
        .saturating_mul(MIN_POINTS_PER_LIST)
        - 1;
    by_sqrt.max(by_cap)
}

/// Training points per list when the caller does not say: 256 for PQ (FAISS's cap; its
/// `sqrt(n)` lists make that about as many points as flat's 64 for `4 sqrt(n)` lists, and
/// measured on sentence embeddings it gives +0.003 to +0.006 recall@10 at equal probes), 64
/// otherwise (more gains flat lists little and costs training time).
pub(crate) fn auto_train_points_per_list(pq: bool) -> usize {
    if pq { 256 } else { 64 }
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

    /// A coarse quantizer of `n_lists` trained on `data` (rows of `dim`) for `metric`.
    fn train_quantizer(data: &[f32], dim: usize, n_lists: usize, metric: Metric) -> Quantizer {
        let mut train = data.to_vec();
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
        Quantizer::new(dim, km.centroids, metric)
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
                let q = train_quantizer(&data, dim, auto_n_lists(n, false).max(4), metric);
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
                            candidates: None,
                            lists: None,
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

    /// One list of [`CodeLists`]: vectors, handles, inverse norms, codes, fast-scan layout.
    type CodeList = (
        Vec<f32>,
        Vec<u64>,
        Vec<f32>,
        Vec<u8>,
        std::sync::OnceLock<PackedCodes>,
    );

    /// The lists of a PQ index, with or without their vectors (codes only: each vector is
    /// fetched by handle, and the fetches are counted).
    struct CodeLists {
        dim: usize,
        with_vectors: bool,
        lists: Vec<CodeList>,
        data: Vec<f32>,
        fetched: std::cell::Cell<usize>,
    }

    impl ListSource for CodeLists {
        type Error = Infallible;
        fn visit_list(
            &self,
            list: u32,
            visit: &mut dyn FnMut(ListRows<'_>),
        ) -> Result<(), Infallible> {
            let (v, h, n, c, packed) = &self.lists[list as usize];
            visit(ListRows {
                vectors: if self.with_vectors { v } else { &[] },
                handles: h,
                inv_norms: if self.with_vectors { n } else { &[] },
                codes: c,
                packed: Some(packed),
            });
            Ok(())
        }

        fn fetch_vectors(
            &self,
            handles: &[u64],
            visit: &mut dyn FnMut(u64, &[f32]),
        ) -> Result<(), Infallible> {
            assert!(!self.with_vectors);
            self.fetched.set(self.fetched.get() + handles.len());
            for &h in handles {
                let i = h as usize;
                visit(h, &self.data[i * self.dim..(i + 1) * self.dim]);
            }
            Ok(())
        }
    }

    /// Codes only, the re-rank fetches candidates in order of their refine bounds and stops
    /// where the bounds prove the rest cannot enter: the results are bit for bit those of
    /// re-ranking every candidate from vectors in RAM, with far fewer vectors fetched.
    #[test]
    fn refine_bounds_give_the_full_rerank_with_fewer_fetches() {
        let mut rng = StdRng::seed_from_u64(21);
        let (n, dim, n_lists, k, rerank) = (3000usize, 32usize, 16usize, 10usize, 10usize);
        let centers: Vec<f32> = (0..40 * dim)
            .map(|_| rng.next_u32() as f32 / u32::MAX as f32 * 4.0 - 2.0)
            .collect();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = (i * 7919) % 40;
                centers[c * dim..(c + 1) * dim].to_vec()
            })
            .map(|c| c + (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 0.8)
            .collect();
        // Fetched and offered candidates with 6-bit and with 8-bit refine codes.
        let (mut fetched, mut offered) = ([0; 2], [0; 2]);
        // Codes of vectors (trained today) and of residuals (indexes trained before), with
        // 6-bit refine codes (the default) and 8-bit ones (`IndexConfig::refine_bits(8)`).
        let metrics = [
            Metric::Euclidean,
            Metric::SquaredEuclidean,
            Metric::Cosine,
            Metric::InnerProduct,
        ];
        let cases = [Width::Six, Width::Eight].into_iter().flat_map(|width| {
            [false, true]
                .into_iter()
                .flat_map(move |residual| metrics.map(|metric| (width, residual, metric)))
        });
        for (width, residual, metric) in cases {
            let w = usize::from(width == Width::Eight);
            let prepared: Vec<f32> = data
                .chunks(dim)
                .flat_map(|x| prepare_query(x, metric))
                .collect();
            let q = train_quantizer(&data, dim, n_lists, metric);
            let assign: Vec<u32> = prepared.chunks(dim).map(|x| q.assign(x)).collect();
            let residuals: Vec<f32> = prepared
                .chunks(dim)
                .zip(&assign)
                .flat_map(|(x, &l)| x.iter().zip(q.centroid(l)).map(|(v, c)| v - c))
                .collect();
            let codec = Codec::train_pq(&residuals, dim, 8, 1, width).with_residual(residual);
            let coded: Vec<f32> = prepared
                .chunks(dim)
                .zip(&assign)
                .flat_map(|(x, &l)| {
                    let origin = codec.origin(q.centroid(l));
                    x.iter().zip(origin).map(|(v, c)| v - c)
                })
                .collect();
            let sets = if residual { n_lists as u32 } else { 1 };
            let list_terms: Vec<f32> =
                if matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean) {
                    (0..sets)
                        .flat_map(|l| codec.pq_list_terms(codec.origin(q.centroid(l))))
                        .collect()
                } else {
                    Vec::new()
                };
            let build = |with_vectors: bool| {
                let mut lists = CodeLists {
                    dim,
                    with_vectors,
                    lists: (0..n_lists).map(|_| Default::default()).collect(),
                    data: data.clone(),
                    fetched: Default::default(),
                };
                // Lists with their vectors keep only the scanned part of each code, as the
                // index does.
                let keep = match (with_vectors, codec.refine()) {
                    (true, Some((_, refine_start))) => refine_start,
                    _ => codec.code_len(dim),
                };
                for (i, (x, r)) in data.chunks(dim).zip(coded.chunks(dim)).enumerate() {
                    let l = &mut lists.lists[assign[i] as usize];
                    l.0.extend_from_slice(x);
                    l.1.push(i as u64);
                    l.2.push(inv_norm(x));
                    let mut code = Vec::new();
                    codec.encode(r, &mut code);
                    l.3.extend_from_slice(&code[..keep]);
                }
                lists
            };
            let (resident, codes_only) = (build(true), build(false));
            for t in 0..30 {
                let query: Vec<f32> = data[(t * 97 % n) * dim..][..dim]
                    .iter()
                    .map(|v| v + (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 0.3)
                    .collect();
                let params = SearchParams {
                    query: &query,
                    k,
                    n_probes: 4,
                    metric,
                    accept: None,
                    candidates: None,
                    lists: None,
                    codes: Some(CodeSearch {
                        codec: &codec,
                        list_terms: &list_terms,
                        rerank,
                    }),
                };
                let want = search(Some(&q), &resident, &params).unwrap();
                let before = codes_only.fetched.get();
                let got = search(Some(&q), &codes_only, &params).unwrap();
                let bits = |h: &[crate::kernel::Neighbor]| {
                    h.iter()
                        .map(|n| (n.handle, n.distance.to_bits()))
                        .collect::<Vec<_>>()
                };
                let case = format!("{width:?} {metric:?} {residual} query {t}");
                assert_eq!(bits(&got), bits(&want), "{case}");
                assert_eq!(want.len(), k);
                assert!(codes_only.fetched.get() - before >= k);
                offered[w] += k * rerank;
            }
            fetched[w] += codes_only.fetched.get();
        }
        for w in 0..2 {
            assert!(
                fetched[w] * 2 < offered[w],
                "{} of {} candidates fetched",
                fetched[w],
                offered[w]
            );
        }
        // 8-bit codes have a quarter of the error: tighter bounds, fewer fetches.
        assert!(fetched[1] < fetched[0], "fetched {fetched:?}");
    }

    #[test]
    fn auto_parameters_are_sane() {
        assert_eq!(auto_n_lists(0, false), 1);
        assert_eq!(auto_n_lists(100, false), 2);
        assert_eq!(auto_n_lists(1_000_000, false), 4000);
        assert_eq!(auto_n_lists(1_000_000, true), 1000);
        assert_eq!(auto_n_probes(4000, 1_000_000, false), 334);
        assert_eq!(auto_n_probes(1000, 1_000_000, true), 250);
        // Small indexes probe a larger share: sqrt(400 / 5000) of 128 lists.
        assert_eq!(auto_n_probes(128, 5000, false), 37);
        assert_eq!(auto_n_probes(71, 5000, true), 29);
        assert_eq!(auto_n_probes(10, 100, false), 10);
        assert!(auto_n_probes(1, 1, false) == 1 && auto_n_probes(1, 0, true) == 1);
        // Lists fewer than the item count's own (trained early, then grown; or set by the
        // user) keep the share of the count they are the default for.
        assert_eq!(auto_n_probes(128, 50_000, false), 37);
        assert_eq!(auto_n_probes(71, 50_000, true), 29);
        assert_eq!(auto_n_probes(64, 50_000, false), 26);
        // Where the lists are the default for the count, nothing changes.
        for n in (100..2_000_000).step_by(997) {
            for pq in [false, true] {
                let lists = auto_n_lists(n, pq);
                let share = if pq { 0.25f64 } else { 1.0 / 12.0 };
                let small = if pq { 800.0 } else { 400.0 };
                let old = (lists as f64 * share.max((small / n as f64).sqrt())).ceil() as usize;
                assert_eq!(auto_n_probes(lists, n, pq), old.clamp(1, lists), "{n} {pq}");
                assert!(lists_default_up_to(lists, pq) >= n, "{n} {pq}");
            }
        }
    }
}
