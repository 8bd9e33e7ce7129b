//! The refine code of a PQ index: a 6-bit (or, as `IndexConfig::refine_bits` asks, 8-bit)
//! scalar code of the same residual, with a bound on its own error, kept in RAM beside the
//! 4-bit PQ code.
//!
//! An index that holds codes only must decrypt a candidate's vector record to re-rank it
//! exactly, which costs far more than scoring a code. The refine code gives each candidate a
//! *lower bound* on its exact distance: by the triangle inequality the exact vector lies
//! within `error = |residual - reconstruction|` of the reconstruction, and that error is
//! stored (rounded up) with the code. Candidates are then re-ranked in order of their bound,
//! and the re-rank stops as soon as the next bound exceeds the k-th exact distance found: the
//! vectors left undecrypted provably could not have entered the results, so the answer is
//! exactly the one re-ranking every candidate gives. The error is computed per vector, so the
//! bound holds whatever the training ranges clipped. Measured on 384-d sentence embeddings
//! (`docs/DESIGN.md`): with 6-bit codes about 21 vectors decrypted per query instead of 50 at
//! top 10 and a re-rank of 5; with 8-bit codes, whose error is a quarter as large, about 13,
//! for 96 bytes more per 384-d vector in RAM.
//!
//! Code layout (`code_len(dim)` bytes): the values, one byte each (8-bit) or as a
//! little-endian bit stream (6-bit: value `d` at bits `6d..6d + 6`, `ceil(6 * dim / 8)`
//! bytes), then the error as an `f32` (little-endian), rounded up.

use super::ranges::train_ranges;
use crate::kernel;
use crate::metric::Metric;

/// How many bits each dimension's value takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// Values `0..=63`, packed four to three bytes (the default).
    Six,
    /// Values `0..=255`, one byte each.
    Eight,
}

impl Width {
    /// The highest value.
    fn levels(self) -> f32 {
        match self {
            Width::Six => 63.0,
            Width::Eight => 255.0,
        }
    }

    /// Bytes of the values of `dim` dimensions.
    fn packed_len(self, dim: usize) -> usize {
        match self {
            Width::Six => (6 * dim).div_ceil(8),
            Width::Eight => dim,
        }
    }
}

/// Trained scalar ranges of one [`Width`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Refine {
    width: Width,
    /// Minimum per dimension.
    min: Vec<f32>,
    /// Step per dimension.
    scale: Vec<f32>,
    /// `|min| + levels |scale|`: bounds the norm of every reconstruction (for rounding
    /// slack).
    range_norm: f32,
}

impl Refine {
    /// Trains the ranges (minimum and maximum per dimension) of `width` on residuals (rows of
    /// `dim`).
    pub(crate) fn train(residuals: &[f32], dim: usize, width: Width) -> Refine {
        let (min, scale) = train_ranges(residuals, dim, width.levels());
        Refine::from_parts(width, min, scale)
    }

    fn from_parts(width: Width, min: Vec<f32>, scale: Vec<f32>) -> Refine {
        let range_norm =
            kernel::norm_sq(&min).sqrt() + width.levels() * kernel::norm_sq(&scale).sqrt();
        Refine {
            width,
            min,
            scale,
            range_norm,
        }
    }

    /// The width of the values.
    pub(crate) fn width(&self) -> Width {
        self.width
    }

    /// Bytes per code of `dim` dimensions: the values and the error bound.
    pub(crate) fn code_len(&self, dim: usize) -> usize {
        self.width.packed_len(dim) + 4
    }

    /// Appends the code of `residual` and its error bound to `out`.
    pub(crate) fn encode(&self, residual: &[f32], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.width.packed_len(residual.len()), 0);
        let levels = self.width.levels();
        let mut error = 0.0f64;
        for (d, (&v, (&lo, &s))) in residual
            .iter()
            .zip(self.min.iter().zip(&self.scale))
            .enumerate()
        {
            let value = ((v - lo) / s).round().clamp(0.0, levels) as u8;
            match self.width {
                Width::Eight => out[start + d] = value,
                Width::Six => {
                    let bit = 6 * d;
                    let word = u16::from(value) << (bit % 8);
                    out[start + bit / 8] |= word as u8;
                    if let Some(next) = out.get_mut(start + bit / 8 + 1) {
                        *next |= (word >> 8) as u8;
                    }
                }
            }
            let reconstructed = f64::from(lo) + f64::from(value) * f64::from(s);
            error += (f64::from(v) - reconstructed).powi(2);
        }
        out.extend(round_up(error.sqrt()).to_le_bytes());
    }

    /// Serialized form: `min (dim f32) | scale (dim f32)`, little-endian.
    pub(crate) fn to_bytes(&self, out: &mut Vec<u8>) {
        for f in self.min.iter().chain(&self.scale) {
            out.extend(f.to_le_bytes());
        }
    }

    /// Bytes of [`to_bytes`](Self::to_bytes) for dimension `dim`.
    pub(crate) fn serialized_len(dim: usize) -> usize {
        8 * dim
    }

    /// Parses [`to_bytes`](Self::to_bytes) output of ranges of `width` (the codebook's tag
    /// tells which); `None` unless it is `8 * dim` bytes of finite ranges with positive steps.
    pub(crate) fn from_bytes(bytes: &[u8], dim: usize, width: Width) -> Option<Refine> {
        if bytes.len() != Self::serialized_len(dim) {
            return None;
        }
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (min, scale) = floats.split_at(dim);
        let valid =
            min.iter().all(|v| v.is_finite()) && scale.iter().all(|s| s.is_finite() && *s > 0.0);
        valid.then(|| Refine::from_parts(width, min.to_vec(), scale.to_vec()))
    }

    /// The lower-bound calculator of one prepared query.
    pub(crate) fn bounds<'a>(&'a self, query: &'a [f32], metric: Metric) -> Bounds<'a> {
        let l2 = matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean);
        let query_norm = kernel::norm_sq(query).sqrt();
        let dim = query.len();
        Bounds {
            refine: self,
            query,
            l2,
            cosine: metric == Metric::Cosine,
            query_norm,
            // Relative rounding of a dot product or squared distance of `dim` terms computed
            // in f32 (about `dim` units of roundoff), taken four times over for the several
            // such sums a bound and an exact distance involve.
            rounding: 4.0 * (dim as f32 + 16.0) * f32::EPSILON,
            weight: if l2 {
                Vec::new()
            } else {
                query.iter().zip(&self.scale).map(|(q, s)| q * s).collect()
            },
            query_min: if l2 {
                0.0
            } else {
                kernel::dot(query, &self.min)
            },
            target: Vec::new(),
            list_constant: 0.0,
            magnitude: 0.0,
            values: match self.width {
                Width::Six => vec![0; dim],
                Width::Eight => Vec::new(),
            },
            score: [0.0],
        }
    }
}

/// `x` as an `f32` no smaller than `x`.
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x { f.next_up() } else { f }
}

/// Lower bounds on the exact distances of one query, list by list (see the module docs).
/// Distances are the re-rank's: squared for Euclidean, minus the inner product, or one minus
/// the cosine.
pub(crate) struct Bounds<'a> {
    refine: &'a Refine,
    query: &'a [f32],
    l2: bool,
    cosine: bool,
    query_norm: f32,
    rounding: f32,
    /// Inner product: the query times the steps.
    weight: Vec<f32>,
    /// Inner product: `<query, min>`.
    query_min: f32,
    /// L2, per list: the query minus the centroid minus `min`.
    target: Vec<f32>,
    /// Inner product, per list: the distance's constant part.
    list_constant: f32,
    /// Per list: a bound on every magnitude the sums involve (for the rounding slack).
    magnitude: f32,
    values: Vec<u8>,
    score: [f32; 1],
}

impl Bounds<'_> {
    /// Prepares the bounds of rows of the list whose centroid is `centroid`.
    pub(crate) fn set_list(&mut self, centroid: &[f32]) {
        let centroid_norm = kernel::norm_sq(centroid).sqrt();
        self.magnitude = self.query_norm + centroid_norm + self.refine.range_norm;
        if self.l2 {
            self.target.clear();
            self.target.extend(
                self.query
                    .iter()
                    .zip(centroid)
                    .zip(&self.refine.min)
                    .map(|((q, c), lo)| q - c - lo),
            );
        } else {
            let one = if self.cosine { 1.0 } else { 0.0 };
            self.list_constant = one - kernel::dot(self.query, centroid) - self.query_min;
        }
    }

    /// A lower bound on the exact distance of the row whose refine code (with its error) is
    /// `code`, in the current list; minus infinity when no bound can be given.
    pub(crate) fn lower_bound(&mut self, code: &[u8]) -> f32 {
        let Some((packed, error)) = code.split_last_chunk::<4>() else {
            return f32::NEG_INFINITY;
        };
        let error = f32::from_le_bytes(*error);
        let values = match self.refine.width {
            Width::Eight => packed,
            Width::Six => {
                kernel::unpack6(packed, &mut self.values);
                &self.values
            }
        };
        let slack = self.rounding * (self.magnitude + error);
        let bound = if self.l2 {
            kernel::sq8_l2_block(values, &self.target, &self.refine.scale, &mut self.score);
            let gap = self.score[0].max(0.0).sqrt() - error - slack;
            gap.max(0.0).powi(2) * (1.0 - 2.0 * self.rounding)
        } else {
            kernel::sq8_dot_block(values, &self.weight, &mut self.score);
            let approx = self.list_constant - self.score[0];
            approx - self.query_norm * (error + slack)
        };
        if bound.is_nan() {
            f32::NEG_INFINITY
        } else {
            bound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivf::search::{exact_distance, inv_norm, prepare_query};
    use rand::{Rng as _, RngExt as _, SeedableRng, rngs::StdRng};

    fn gaussian(rng: &mut StdRng, n: usize, spread: f32) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.random::<f32>() - 0.5) * spread)
            .collect()
    }

    const WIDTHS: [Width; 2] = [Width::Six, Width::Eight];

    /// The values of `code` (of `dim` dimensions), unpacked.
    fn values_of(refine: &Refine, code: &[u8], dim: usize) -> Vec<u8> {
        let packed = &code[..code.len() - 4];
        match refine.width {
            Width::Eight => packed.to_vec(),
            Width::Six => {
                let mut out = vec![0u8; dim];
                kernel::unpack6(packed, &mut out);
                out
            }
        }
    }

    #[test]
    fn decoding_inverts_encoding_for_every_length() {
        let mut rng = StdRng::seed_from_u64(3);
        for width in WIDTHS {
            for dim in 1..40 {
                let refine = Refine::from_parts(width, vec![0.0; dim], vec![1.0; dim]);
                let top = width.levels() as u32 + 1;
                let values: Vec<f32> = (0..dim).map(|_| (rng.next_u32() % top) as f32).collect();
                let mut code = Vec::new();
                refine.encode(&values, &mut code);
                assert_eq!(code.len(), refine.code_len(dim));
                let back: Vec<f32> = values_of(&refine, &code, dim)
                    .iter()
                    .map(|&v| f32::from(v))
                    .collect();
                assert_eq!(back, values, "{width:?} dim {dim}");
                // Exact codes have no error.
                assert_eq!(&code[code.len() - 4..], &0f32.to_le_bytes());
            }
        }
        assert_eq!(
            Refine::from_parts(Width::Six, vec![0.0; 384], vec![1.0; 384]).code_len(384),
            292
        );
        assert_eq!(
            Refine::from_parts(Width::Eight, vec![0.0; 384], vec![1.0; 384]).code_len(384),
            388
        );
    }

    #[test]
    fn stored_error_is_at_least_the_reconstruction_error() {
        let mut rng = StdRng::seed_from_u64(4);
        let dim = 24;
        let train = gaussian(&mut rng, 200 * dim, 2.0);
        // Includes rows outside the trained ranges (clipped codes).
        for (width, spread) in WIDTHS
            .into_iter()
            .flat_map(|w| [1.0, 2.0, 8.0].map(|s| (w, s)))
        {
            let refine = Refine::train(&train, dim, width);
            let row = gaussian(&mut rng, dim, spread);
            let mut code = Vec::new();
            refine.encode(&row, &mut code);
            let values = values_of(&refine, &code, dim);
            let error: f64 = row
                .iter()
                .zip(&values)
                .enumerate()
                .map(|(d, (&v, &c))| {
                    let r = f64::from(refine.min[d]) + f64::from(c) * f64::from(refine.scale[d]);
                    (f64::from(v) - r).powi(2)
                })
                .sum::<f64>()
                .sqrt();
            let stored = f32::from_le_bytes(code[code.len() - 4..].try_into().unwrap());
            assert!(f64::from(stored) >= error && f64::from(stored) <= error * 1.001 + 1e-12);
        }
    }

    /// The bound never exceeds the exact distance the re-rank computes, for every metric,
    /// including rows that coincide with the query, rows far outside the trained ranges and
    /// data far from the origin (where rounding is largest).
    #[test]
    fn lower_bound_never_exceeds_the_exact_distance() {
        let mut rng = StdRng::seed_from_u64(5);
        let metrics = [
            Metric::Euclidean,
            Metric::SquaredEuclidean,
            Metric::InnerProduct,
            Metric::Cosine,
        ];
        for (width, metric) in WIDTHS.into_iter().flat_map(|w| metrics.map(|m| (w, m))) {
            for (dim, offset) in [(7usize, 0.0f32), (64, 0.0), (96, 300.0), (384, 0.0)] {
                let centroid: Vec<f32> = gaussian(&mut rng, dim, 1.0)
                    .iter()
                    .map(|v| v + offset)
                    .collect();
                let rows: Vec<Vec<f32>> = (0..60)
                    .map(|i| {
                        let spread = if i % 10 == 0 { 6.0 } else { 1.0 };
                        centroid
                            .iter()
                            .zip(gaussian(&mut rng, dim, spread))
                            .map(|(c, r)| c + r)
                            .collect()
                    })
                    .collect();
                let prepared: Vec<Vec<f32>> =
                    rows.iter().map(|r| prepare_query(r, metric)).collect();
                let residuals: Vec<f32> = prepared
                    .iter()
                    .flat_map(|r| r.iter().zip(&centroid).map(|(v, c)| v - c))
                    .collect();
                let refine = Refine::train(&residuals[..40 * dim], dim, width);
                let codes: Vec<Vec<u8>> = residuals
                    .chunks_exact(dim)
                    .map(|r| {
                        let mut code = Vec::new();
                        refine.encode(r, &mut code);
                        code
                    })
                    .collect();
                let mut queries: Vec<Vec<f32>> = (0..10)
                    .map(|_| {
                        centroid
                            .iter()
                            .zip(gaussian(&mut rng, dim, 1.5))
                            .map(|(c, r)| c + r)
                            .collect()
                    })
                    .collect();
                queries.push(rows[3].clone());
                for raw in &queries {
                    let query = prepare_query(raw, metric);
                    let mut bounds = refine.bounds(&query, metric);
                    bounds.set_list(&centroid);
                    for (row, code) in rows.iter().zip(&codes) {
                        let exact = exact_distance(&query, row, metric, inv_norm(row));
                        let bound = bounds.lower_bound(code);
                        assert!(
                            bound <= exact,
                            "{width:?} {metric:?} dim {dim}: bound {bound} > exact {exact}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn serialized_ranges_round_trip_and_reject_damage() {
        let mut rng = StdRng::seed_from_u64(6);
        let dim = 10;
        for width in WIDTHS {
            let refine = Refine::train(&gaussian(&mut rng, 50 * dim, 1.0), dim, width);
            let mut bytes = Vec::new();
            refine.to_bytes(&mut bytes);
            assert_eq!(Refine::from_bytes(&bytes, dim, width), Some(refine));
            assert_eq!(Refine::from_bytes(&bytes[1..], dim, width), None);
            assert_eq!(Refine::from_bytes(&bytes, dim + 1, width), None);
            let mut zero_step = bytes.clone();
            zero_step[4 * dim..4 * dim + 4].copy_from_slice(&0f32.to_le_bytes());
            assert_eq!(Refine::from_bytes(&zero_step, dim, width), None);
        }
    }
}
