//! Lloyd's k-means, FAISS-style: random distinct initial centroids from a subsample of at most
//! `max_points_per_centroid * k` points, assignment and update parallel with rayon, and
//! empty clusters repaired by splitting the largest one. Seeded, so reproducible.

use rand::seq::index::sample;
use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use crate::kernel;

/// Options of one k-means run.
#[derive(Clone, Debug)]
pub(crate) struct KMeansParams {
    /// Number of centroids.
    pub k: usize,
    /// Maximum Lloyd iterations.
    pub max_iters: usize,
    /// Stop when the relative improvement of the objective falls below this.
    pub tolerance: f32,
    /// Train on at most this many points per centroid (FAISS uses 256).
    pub max_points_per_centroid: usize,
    /// Normalize centroids after each update (spherical k-means, for cosine).
    pub spherical: bool,
    /// RNG seed.
    pub seed: u64,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams {
            k: 1,
            max_iters: 20,
            tolerance: 1e-4,
            max_points_per_centroid: 256,
            spherical: false,
            seed: 1234,
        }
    }
}

/// The outcome of a k-means run.
#[derive(Clone, Debug)]
pub(crate) struct KMeansResult {
    /// `k * dim` centroid coordinates.
    pub centroids: Vec<f32>,
    /// Sum of squared distances of the training points to their centroids, last iteration
    /// (for tests and `internals`).
    #[cfg(any(test, feature = "internals"))]
    pub inertia: f64,
    /// Iterations run (for `internals`).
    #[cfg(feature = "internals")]
    pub iterations: usize,
}

/// Runs k-means on `data` (rows of `dim` floats). `k` is clamped to the number of points.
pub(crate) fn kmeans(data: &[f32], dim: usize, params: &KMeansParams) -> KMeansResult {
    let n_all = data.len() / dim.max(1);
    let k = params.k.clamp(1, n_all.max(1));
    let mut rng = StdRng::seed_from_u64(params.seed);

    // Subsample.
    let limit = k.saturating_mul(params.max_points_per_centroid.max(1));
    let sampled: Vec<f32>;
    let points: &[f32] = if n_all > limit {
        let mut idx = sample(&mut rng, n_all, limit).into_vec();
        idx.sort_unstable();
        sampled = idx
            .iter()
            .flat_map(|&i| &data[i * dim..(i + 1) * dim])
            .copied()
            .collect();
        &sampled
    } else {
        &data[..n_all * dim]
    };
    let n = points.len() / dim.max(1);
    if n == 0 {
        return KMeansResult {
            centroids: vec![0.0; k * dim],
            #[cfg(any(test, feature = "internals"))]
            inertia: 0.0,
            #[cfg(feature = "internals")]
            iterations: 0,
        };
    }

    // Initial centroids: k distinct random points.
    let mut centroids: Vec<f32> = sample(&mut rng, n, k)
        .into_iter()
        .flat_map(|i| &points[i * dim..(i + 1) * dim])
        .copied()
        .collect();
    if params.spherical {
        normalize_rows(&mut centroids, dim);
    }

    let mut assign = vec![(0u32, 0.0f32); n];
    // The inertia of the last iteration run.
    let mut previous = f64::INFINITY;
    #[cfg(feature = "internals")]
    let mut iterations = 0;
    for _ in 0..params.max_iters.max(1) {
        #[cfg(feature = "internals")]
        {
            iterations += 1;
        }
        let norms: Vec<f32> = centroids.chunks_exact(dim).map(kernel::norm_sq).collect();
        kernel::nearest_l2_batch(points, &centroids, &norms, dim, &mut assign);
        let inertia: f64 = assign.iter().map(|a| f64::from(a.1)).sum();
        update_centroids(points, dim, k, &assign, &mut centroids, &mut rng);
        if params.spherical {
            normalize_rows(&mut centroids, dim);
        }
        let converged =
            previous.is_finite() && previous - inertia <= f64::from(params.tolerance) * previous;
        previous = inertia;
        if converged {
            break;
        }
    }
    KMeansResult {
        centroids,
        #[cfg(any(test, feature = "internals"))]
        inertia: previous,
        #[cfg(feature = "internals")]
        iterations,
    }
}

/// New centroids as the means of their points; an empty cluster takes a perturbed copy of the
/// largest cluster's centroid and splits it (as FAISS does).
fn update_centroids(
    points: &[f32],
    dim: usize,
    k: usize,
    assign: &[(u32, f32)],
    centroids: &mut [f32],
    rng: &mut StdRng,
) {
    let chunk = 4096;
    let (sums, counts) = points
        .par_chunks(chunk * dim)
        .zip(assign.par_chunks(chunk))
        .fold(
            || (vec![0.0f64; k * dim], vec![0usize; k]),
            |(mut sums, mut counts), (pts, asg)| {
                for (x, a) in pts.chunks_exact(dim).zip(asg) {
                    let c = a.0 as usize;
                    counts[c] += 1;
                    for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                        *s += f64::from(*v);
                    }
                }
                (sums, counts)
            },
        )
        .reduce(
            || (vec![0.0f64; k * dim], vec![0usize; k]),
            |(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                (s1, c1)
            },
        );
    let mut counts = counts;
    for c in 0..k {
        if counts[c] > 0 {
            let inv = 1.0 / counts[c] as f64;
            for (dst, s) in centroids[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&sums[c * dim..(c + 1) * dim])
            {
                *dst = (*s * inv) as f32;
            }
        }
    }
    // Empty-cluster repair.
    use rand::RngExt as _;
    for c in 0..k {
        if counts[c] != 0 {
            continue;
        }
        let big = (0..k).max_by_key(|&j| counts[j]).unwrap_or(0);
        if counts[big] < 2 {
            continue;
        }
        let (src, dst) = (big * dim, c * dim);
        for i in 0..dim {
            let v = centroids[src + i];
            let eps = 1.0 / 1024.0;
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            centroids[dst + i] = v * (1.0 + sign * eps);
            centroids[src + i] = v * (1.0 - sign * eps);
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

/// The two centroids of a 2-means of `rows` (rows of `dim`, normalized for `spherical`), for
/// splitting one inverted list in two; `None` when the smaller half would hold fewer than
/// `min_share` of the rows (identical or nearly identical vectors: no split is worth
/// having).
pub(crate) fn split_in_two(
    rows: &[f32],
    dim: usize,
    spherical: bool,
    (min_share, seed): (f64, u64),
) -> Option<(Vec<f32>, Vec<f32>)> {
    let n = rows.len() / dim.max(1);
    if n < 2 {
        return None;
    }
    let km = kmeans(
        rows,
        dim,
        &KMeansParams {
            k: 2,
            max_iters: 16,
            tolerance: 1e-4,
            max_points_per_centroid: n,
            spherical,
            seed,
        },
    );
    let (a, b) = km.centroids.split_at(dim);
    let (na, nb) = (kernel::norm_sq(a), kernel::norm_sq(b));
    // Which side each row falls on: |x - a|^2 < |x - b|^2, i.e. |a|^2 - 2 x.a < |b|^2 - 2 x.b.
    let on_a = rows
        .chunks_exact(dim)
        .filter(|x| na - 2.0 * kernel::dot(x, a) < nb - 2.0 * kernel::dot(x, b))
        .count();
    let smaller = on_a.min(n - on_a);
    (smaller as f64 >= min_share * n as f64 && smaller > 0).then(|| (a.to_vec(), b.to_vec()))
}

/// Scales every row to unit length (zero rows stay zero).
pub(crate) fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let n = kernel::norm_sq(row).sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    /// Gaussian-ish blobs around `k` well-separated centers.
    fn blobs(k: usize, per: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(k * per * dim);
        for c in 0..k {
            for _ in 0..per {
                for j in 0..dim {
                    let noise = (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 0.2;
                    out.push(if j % k == c { 10.0 } else { 0.0 } + noise);
                }
            }
        }
        out
    }

    #[test]
    fn finds_separated_blobs_and_is_reproducible() {
        let (k, per, dim) = (8, 100, 16);
        let data = blobs(k, per, dim, 5);
        let params = KMeansParams {
            k,
            max_iters: 25,
            ..Default::default()
        };
        let a = kmeans(&data, dim, &params);
        let b = kmeans(&data, dim, &params);
        assert_eq!(a.centroids, b.centroids);
        // Every blob centre must have a centroid within the noise radius (after repair,
        // random init can still merge two blobs only if no repair happened; allow none).
        let per_point_noise = dim as f64 * 0.2f64.powi(2) / 12.0;
        assert!(
            a.inertia <= 3.0 * per_point_noise * (k * per) as f64,
            "inertia {} too large",
            a.inertia
        );
    }

    #[test]
    fn splits_two_blobs_and_refuses_one_point_repeated() {
        let (per, dim) = (60, 8);
        let data = blobs(2, per, dim, 9);
        let (a, b) = split_in_two(&data, dim, false, (0.1, 3)).unwrap();
        // One centroid near each blob centre (coordinate 0 is 10 in blob 0, 1 in blob 1).
        let (first, second) = if a[0] > b[0] { (a, b) } else { (b, a) };
        assert!(first[0] > 9.0 && first[1] < 1.0 && second[1] > 9.0 && second[0] < 1.0);
        let same = vec![0.5f32; 100 * dim];
        assert!(split_in_two(&same, dim, false, (0.1, 3)).is_none());
        assert!(split_in_two(&data[..dim], dim, false, (0.1, 3)).is_none());
    }

    /// Uniform noise in `[-1, 1)`, `n` rows of `dim`.
    fn noise(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n * dim)
            .map(|_| rng.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0)
            .collect()
    }

    /// Lloyd's objective never rises from one iteration to the next (same seed, so a run of
    /// `i + 1` iterations continues the run of `i`), and the final inertia is the sum of each
    /// point's squared distance to its nearest centroid, found by brute force with the
    /// scalar kernel: the assignment k-means used is the nearest centroid.
    #[test]
    fn inertia_never_rises_and_is_that_of_the_nearest_centroids() {
        let (n, dim, k) = (3000, 12, 40);
        let data = noise(n, dim, 8);
        let mut last = f64::INFINITY;
        for iters in 1..=8 {
            let r = kmeans(
                &data,
                dim,
                &KMeansParams {
                    k,
                    max_iters: iters,
                    tolerance: 0.0,
                    ..Default::default()
                },
            );
            assert!(
                r.inertia <= last * (1.0 + 1e-6),
                "iteration {iters}: {} after {last}",
                r.inertia
            );
            last = r.inertia;
        }
        // One more step's assignment of the final centroids by brute force: its objective is
        // at most the last inertia (the update moved each centroid to its points' mean).
        let r = kmeans(
            &data,
            dim,
            &KMeansParams {
                k,
                max_iters: 8,
                tolerance: 0.0,
                ..Default::default()
            },
        );
        let brute: f64 = data
            .chunks_exact(dim)
            .map(|x| {
                f64::from(
                    r.centroids
                        .chunks_exact(dim)
                        .map(|c| crate::kernel::scalar::l2sq(x, c))
                        .fold(f32::INFINITY, f32::min),
                )
            })
            .sum();
        assert!(brute <= r.inertia * (1.0 + 1e-5), "{brute} > {}", r.inertia);
    }

    /// The batch assignment k-means runs gives each point a centroid at the brute-force
    /// nearest distance (ties aside: within rounding of the expanded form).
    #[test]
    fn assignments_are_the_nearest_centroids() {
        let (n, dim, k) = (2000, 20, 50);
        let data = noise(n, dim, 12);
        let r = kmeans(
            &data,
            dim,
            &KMeansParams {
                k,
                max_iters: 5,
                ..Default::default()
            },
        );
        let norms: Vec<f32> = r.centroids.chunks_exact(dim).map(kernel::norm_sq).collect();
        let mut assign = vec![(0u32, 0.0f32); n];
        kernel::nearest_l2_batch(&data, &r.centroids, &norms, dim, &mut assign);
        for (x, &(j, d)) in data.chunks_exact(dim).zip(&assign) {
            let dists: Vec<f32> = r
                .centroids
                .chunks_exact(dim)
                .map(|c| crate::kernel::scalar::l2sq(x, c))
                .collect();
            let best = dists.iter().copied().fold(f32::INFINITY, f32::min);
            assert!(dists[j as usize] <= best + 1e-4 * best.max(1.0));
            assert!((d - dists[j as usize]).abs() <= 1e-4 * best.max(1.0));
        }
    }

    #[test]
    fn more_centroids_than_points_is_clamped() {
        let data = vec![1.0, 2.0, 3.0, 4.0];
        let r = kmeans(
            &data,
            2,
            &KMeansParams {
                k: 5,
                ..Default::default()
            },
        );
        assert_eq!(r.centroids.len(), 4);
        assert!(r.inertia.abs() < 1e-9);
    }
}
