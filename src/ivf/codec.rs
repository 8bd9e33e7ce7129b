//! Vector codes for the quantized index types: 8-bit scalar quantization (SQ8) of the residual
//! to the list's centroid, and 4-bit product quantization (PQ) of the residual or of the vector
//! itself, whichever ranks the index's own vectors better (`ivf::pq_choice`; PQ indexes
//! trained before the choice existed hold residual codes). A query scans codes for
//! approximate distances, then re-ranks the best candidates exactly.

use super::kmeans::{KMeansParams, kmeans};
use super::ranges::train_ranges;
use super::refine::{Refine, Width};
use crate::kernel;
use crate::metric::Metric;
use rayon::prelude::*;

/// A trained code.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Codec {
    /// Per dimension: `value = min + code * scale`, `code` in 0..=255.
    Sq8 {
        /// Minimum per dimension.
        min: Vec<f32>,
        /// Step per dimension.
        scale: Vec<f32>,
    },
    /// `m` subquantizers of `dim / m` dimensions with 16 centroids each; two 4-bit codes per
    /// byte, followed by the [`Refine`] code of the same vector (or residual).
    Pq {
        /// Number of subquantizers.
        m: usize,
        /// Whether the codes are of residuals to the list's centroid (serialized tag 2, every
        /// PQ index trained before tag 3) or of the vectors themselves (tag 3).
        residual: bool,
        /// `dim` zeros: the origin of codes of vectors (see [`Codec::origin`]).
        zeros: Vec<f32>,
        /// `m * 16 * (dim / m)` floats: subquantizer j, centroid c at `(j * 16 + c) * sub`.
        codebooks: Vec<f32>,
        /// The same coordinates by dimension (not stored; [`by_dimension`]): coordinate `d`
        /// of subquantizer `j`'s centroid `c` at `(j * sub + d) * 16 + c`, so that a query's
        /// products with a subquantizer's 16 centroids are 16 lanes of one loop.
        by_dim: Vec<f32>,
        /// The refine code's ranges (6-bit, or 8-bit as the index's configuration asks).
        refine: Refine,
    },
}

/// The serialized tag of a PQ codebook: 2 (residual codes) and 3 (codes of vectors) with
/// 6-bit refine codes (every PQ index trained before 8-bit ones existed holds one of these);
/// 4 and 5 the same with 8-bit refine codes. A reader that predates a tag refuses it as
/// corrupted.
fn pq_tag(residual: bool, width: Width) -> u8 {
    match (width, residual) {
        (Width::Six, true) => 2,
        (Width::Six, false) => 3,
        (Width::Eight, true) => 4,
        (Width::Eight, false) => 5,
    }
}

/// What a PQ tag of [`pq_tag`] says: residual codes or not, and the refine width (`None`
/// for any other tag).
fn pq_tag_parts(tag: u8) -> Option<(bool, Width)> {
    match tag {
        2 => Some((true, Width::Six)),
        3 => Some((false, Width::Six)),
        4 => Some((true, Width::Eight)),
        5 => Some((false, Width::Eight)),
        _ => None,
    }
}

/// Centroids per PQ subquantizer (4-bit codes).
const PQ_CENTROIDS: usize = 16;

/// PQ codebooks (`(j * 16 + c) * sub + d`) laid out by dimension (`(j * sub + d) * 16 + c`).
fn by_dimension(codebooks: &[f32], sub: usize) -> Vec<f32> {
    let mut out = vec![0.0; codebooks.len()];
    for (j, table) in codebooks
        .chunks_exact(PQ_CENTROIDS * sub.max(1))
        .enumerate()
    {
        for (c, entry) in table.chunks_exact(sub.max(1)).enumerate() {
            for (d, &v) in entry.iter().enumerate() {
                out[(j * sub + d) * PQ_CENTROIDS + c] = v;
            }
        }
    }
    out
}

impl Codec {
    /// Trains SQ8 ranges on residuals (rows of `dim`).
    pub(crate) fn train_sq8(residuals: &[f32], dim: usize) -> Codec {
        let (min, scale) = train_ranges(residuals, dim, 255.0);
        Codec::Sq8 { min, scale }
    }

    /// Trains PQ codebooks on vectors (rows of `dim`, `dim % m == 0`), seeded: a code of
    /// vectors (not residuals; see the module's documentation).
    pub(crate) fn train_pq(
        residuals: &[f32],
        dim: usize,
        m: usize,
        seed: u64,
        width: Width,
    ) -> Codec {
        let sub = dim / m;
        let n = residuals.len() / dim;
        // Every subquantizer's columns in one pass over the rows (a pass per subquantizer
        // read the whole sample `m` times), then the `m` k-means in parallel: each is small
        // (its sample is 256 points per centroid), too small to spread its own iterations
        // over the cores.
        let mut parts: Vec<Vec<f32>> = (0..m).map(|_| Vec::with_capacity(n * sub)).collect();
        for row in residuals.chunks_exact(dim) {
            for (part, cols) in parts.iter_mut().zip(row.chunks_exact(sub.max(1))) {
                part.extend_from_slice(cols);
            }
        }
        let codebooks: Vec<f32> = parts
            .par_iter()
            .enumerate()
            .flat_map_iter(|(j, part)| {
                let km = kmeans(
                    part,
                    sub,
                    &KMeansParams {
                        k: PQ_CENTROIDS.min(n.max(1)),
                        max_iters: 15,
                        seed: seed.wrapping_add(j as u64),
                        ..KMeansParams::default()
                    },
                );
                let mut c = km.centroids;
                c.resize(PQ_CENTROIDS * sub, 0.0);
                c
            })
            .collect();
        drop(parts);
        Codec::Pq {
            m,
            residual: false,
            zeros: vec![0.0; dim],
            by_dim: by_dimension(&codebooks, dim / m),
            codebooks,
            refine: Refine::train(residuals, dim, width),
        }
    }

    /// The same codec, coding residuals (tag 2) or vectors (PQ; SQ8 always codes residuals).
    pub(crate) fn with_residual(mut self, residual_codes: bool) -> Codec {
        if let Codec::Pq { residual, .. } = &mut self {
            *residual = residual_codes;
        }
        self
    }

    /// Whether codes are of residuals to the list's centroid (SQ8, and PQ of indexes trained
    /// before PQ coded vectors) rather than of the vectors themselves.
    pub(crate) fn is_residual(&self) -> bool {
        match self {
            Codec::Sq8 { .. } => true,
            Codec::Pq { residual, .. } => *residual,
        }
    }

    /// What a code of a vector in the list with centroid `centroid` is relative to: the
    /// centroid for a residual code, zeros for a code of the vector. Every encoding, table and
    /// bound takes this in place of the centroid.
    pub(crate) fn origin<'a>(&'a self, centroid: &'a [f32]) -> &'a [f32] {
        match self {
            Codec::Pq {
                residual: false,
                zeros,
                ..
            } => zeros,
            _ => centroid,
        }
    }

    /// Serialized form: `1 | min (dim f32) | scale (dim f32)` or
    /// `tag | m u32 | codebooks (m * 16 * dim / m f32) | refine min (dim f32) | refine scale
    /// (dim f32)`, little-endian, where the PQ tag tells the kind of code and the refine width:
    /// [`pq_tag`].
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let floats =
            |out: &mut Vec<u8>, v: &[f32]| v.iter().for_each(|f| out.extend(f.to_le_bytes()));
        let mut out = Vec::new();
        match self {
            Codec::Sq8 { min, scale } => {
                out.push(1);
                floats(&mut out, min);
                floats(&mut out, scale);
            }
            Codec::Pq {
                m,
                residual,
                codebooks,
                refine,
                ..
            } => {
                out.push(pq_tag(*residual, refine.width()));
                out.extend((*m as u32).to_le_bytes());
                floats(&mut out, codebooks);
                refine.to_bytes(&mut out);
            }
        }
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes) output for dimension `dim`; `None` if malformed.
    pub(crate) fn from_bytes(bytes: &[u8], dim: usize) -> Option<Codec> {
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            1 if rest.len() == 8 * dim => {
                let (min, scale) = rest.split_at(4 * dim);
                Some(Codec::Sq8 {
                    min: floats(min),
                    scale: floats(scale),
                })
            }
            tag => {
                let (residual, width) = pq_tag_parts(tag)?;
                let m = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                let codebooks_len = 4 * PQ_CENTROIDS * dim;
                let valid = m > 0
                    && dim.is_multiple_of(m)
                    && rest.len() - 4 == codebooks_len + Refine::serialized_len(dim);
                if !valid {
                    return None;
                }
                let (codebooks, refine) = rest[4..].split_at(codebooks_len);
                let codebooks = floats(codebooks);
                Some(Codec::Pq {
                    m,
                    residual,
                    zeros: vec![0.0; dim],
                    by_dim: by_dimension(&codebooks, dim / m),
                    codebooks,
                    refine: Refine::from_bytes(refine, dim, width)?,
                })
            }
        }
    }

    /// The re-rank factor queries use unless they set one: what the code's precision needs
    /// for the exact re-rank to recover the IVF result's recall. SQ8 gains nothing past 2.
    /// For PQ it grows with `c`, the dimensions each 4-bit code stands for: `5c/2` up to 8
    /// (on 384-d sentence embeddings, `c` 4 needs about 10 and 2 about 5), and past 8 as
    /// `5c/2 * (c/8)^1.5`, because a coarser code's distance error spreads the true
    /// neighbours over a shortlist that grows faster than `c` (there, `c` 16 and 24 reached
    /// recall@10 at most 0.94 and 0.91 at `5c/2`, and under cosine needed about 110 and 240
    /// for 0.96). The refine bound keeps the vectors a re-rank decrypts few; a larger factor
    /// costs scoring more candidates.
    pub(crate) fn default_rerank(&self, dim: usize) -> usize {
        match self {
            Codec::Sq8 { .. } => 2,
            Codec::Pq { m, .. } => {
                let m = (*m).max(1);
                if dim <= 8 * m {
                    (5 * dim).div_ceil(2 * m).max(2)
                } else {
                    let c = dim as f64 / m as f64;
                    (2.5 * c * (c / 8.0) * (c / 8.0).sqrt()).ceil() as usize
                }
            }
        }
    }

    /// Bytes per encoded vector.
    pub(crate) fn code_len(&self, dim: usize) -> usize {
        match self {
            Codec::Sq8 { .. } => dim,
            Codec::Pq { m, refine, .. } => m.div_ceil(2) + refine.code_len(dim),
        }
        .max(usize::from(dim == 0))
    }

    /// PQ only: the refine ranges and where each code's refine part starts.
    pub(crate) fn refine(&self) -> Option<(&Refine, usize)> {
        match self {
            Codec::Sq8 { .. } => None,
            Codec::Pq { m, refine, .. } => Some((refine, m.div_ceil(2))),
        }
    }

    /// Encodes `residual`: a vector minus its list's [`Codec::origin`].
    pub(crate) fn encode(&self, residual: &[f32], out: &mut Vec<u8>) {
        match self {
            Codec::Sq8 { min, scale } => {
                out.extend(
                    residual
                        .iter()
                        .zip(min.iter().zip(scale))
                        .map(|(v, (lo, s))| ((v - lo) / s).round().clamp(0.0, 255.0) as u8),
                );
            }
            Codec::Pq {
                m,
                codebooks,
                refine,
                ..
            } => {
                let sub = residual.len() / m;
                let mut nibbles = Vec::with_capacity(*m);
                for j in 0..*m {
                    let x = &residual[j * sub..(j + 1) * sub];
                    let mut best = (0u8, f32::INFINITY);
                    for c in 0..PQ_CENTROIDS {
                        let cb = &codebooks[(j * PQ_CENTROIDS + c) * sub..][..sub];
                        let d: f32 = x.iter().zip(cb).map(|(a, b)| (a - b) * (a - b)).sum();
                        if d < best.1 {
                            best = (c as u8, d);
                        }
                    }
                    nibbles.push(best.0);
                }
                out.extend(
                    nibbles
                        .chunks(2)
                        .map(|p| p[0] | p.get(1).copied().unwrap_or(0) << 4),
                );
                refine.encode(residual, out);
            }
        }
    }

    /// Decodes a code back into its approximate `x - origin` (choosing a PQ code by the
    /// distances it gives, tests).
    pub(crate) fn decode(&self, code: &[u8], dim: usize) -> Vec<f32> {
        match self {
            Codec::Sq8 { min, scale } => code
                .iter()
                .zip(min.iter().zip(scale))
                .map(|(&c, (lo, s))| lo + f32::from(c) * s)
                .collect(),
            Codec::Pq { m, codebooks, .. } => {
                let sub = dim / m;
                (0..*m)
                    .flat_map(|j| {
                        let c = (code[j / 2] >> (4 * (j % 2))) & 15;
                        codebooks[(j * PQ_CENTROIDS + c as usize) * sub..][..sub].to_vec()
                    })
                    .collect()
            }
        }
    }

    /// PQ only (else empty): for codebook entry `b` of subquantizer `j` and centroid `c`,
    /// `|b|^2 + 2 <centroid_j, b>` at `j * 16 + c` (as every fast-scan table):
    /// the list-dependent part of the L2 table of the list with centroid `centroid`,
    /// precomputed once per list (see [`Codec::pq_query_table`] for the part of the query).
    pub(crate) fn pq_list_terms(&self, centroid: &[f32]) -> Vec<f32> {
        self.pq_entries(centroid, |c, b| {
            kernel::norm_sq(b) + 2.0 * kernel::dot(c, b)
        })
    }

    /// PQ only (else empty): `<query_j, b>` for every codebook entry `b`, at `j * 16 + c`:
    /// the list-independent part of every table, once per query.
    pub(crate) fn pq_query_dots(&self, query: &[f32]) -> Vec<f32> {
        let Codec::Pq { m, by_dim, .. } = self else {
            return Vec::new();
        };
        let sub = query.len() / m;
        let mut out = vec![0.0; m * PQ_CENTROIDS];
        if sub == 0 {
            return out;
        }
        // Per subquantizer, 16 running sums over its few dimensions: a fixed-width inner
        // loop the compiler turns into vector multiply-adds (four times fewer operations than
        // one sum per centroid), each sum still taken dimension by dimension.
        let columns = by_dim.chunks_exact(PQ_CENTROIDS * sub);
        for ((q, columns), o) in query
            .chunks_exact(sub)
            .zip(columns)
            .zip(out.chunks_exact_mut(PQ_CENTROIDS))
        {
            let mut sums = [0.0f32; PQ_CENTROIDS];
            for (&x, column) in q.iter().zip(columns.chunks_exact(PQ_CENTROIDS)) {
                for (sum, &c) in sums.iter_mut().zip(column) {
                    *sum += x * c;
                }
            }
            o.copy_from_slice(&sums);
        }
        out
    }

    /// `f(x_j, b)` for every codebook entry `b` (subquantizer `j`, centroid `c`) at
    /// `j * 16 + c`; empty for SQ8.
    fn pq_entries(&self, x: &[f32], f: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
        let Codec::Pq { m, codebooks, .. } = self else {
            return Vec::new();
        };
        let sub = x.len() / m;
        let mut out = vec![0.0; m * PQ_CENTROIDS];
        for j in 0..*m {
            let part = &x[j * sub..(j + 1) * sub];
            for c in 0..PQ_CENTROIDS {
                out[j * PQ_CENTROIDS + c] =
                    f(part, &codebooks[(j * PQ_CENTROIDS + c) * sub..][..sub]);
            }
        }
        out
    }

    /// The part of the PQ table that depends on the query alone, from its codebook dot
    /// products (`pq_query_dots`): `-2 <q_j, b>` for L2, `-<q_j, b>` for the inner product.
    /// With the list's constant (`|q - c|^2`, or `-<q, c>`) and, for L2, the row's own term
    /// (its codes' [`Codec::pq_list_terms`] entries, summed), a row's entries sum to the
    /// distance [`Codec::table`] gives, up to rounding (tested):
    /// `|q - c - r|^2 = |q - c|^2 + sum_j (|r_j|^2 + 2 <c_j, r_j>) - 2 sum_j <q_j, r_j>`.
    pub(crate) fn pq_query_table(metric: Metric, query_dots: &[f32]) -> Vec<f32> {
        let l2 = matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean);
        let factor = if l2 { -2.0 } else { -1.0 };
        query_dots.iter().map(|d| factor * d).collect()
    }

    /// The approximate-distance table of one query against one list whose codes are
    /// relative to `centroid` (the list's [`Codec::origin`]): scoring a code is then a sum of
    /// table lookups.
    pub(crate) fn table(&self, query: &[f32], centroid: &[f32], metric: Metric) -> Table {
        let l2 = matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean);
        // L2 of the residual query; inner product (negated) of the query with the
        // reconstruction `centroid + residual`.
        let residual_query: Vec<f32> = query.iter().zip(centroid).map(|(q, c)| q - c).collect();
        let base = if l2 {
            0.0
        } else {
            -query.iter().zip(centroid).map(|(q, c)| q * c).sum::<f32>()
        };
        match self {
            Codec::Sq8 { min, scale } => {
                // Per dimension and code value would be 256 * dim entries; instead keep the
                // per-dimension terms and evaluate them on the fly.
                Table::Sq8 {
                    l2,
                    base,
                    target: if l2 {
                        residual_query
                            .iter()
                            .zip(min)
                            .map(|(r, lo)| r - lo)
                            .collect()
                    } else {
                        query.iter().zip(scale).map(|(q, s)| q * s).collect()
                    },
                    offset: if l2 {
                        0.0
                    } else {
                        -query.iter().zip(min).map(|(q, lo)| q * lo).sum::<f32>()
                    },
                    scale: scale.clone(),
                }
            }
            Codec::Pq { m, codebooks, .. } => {
                let sub = query.len() / m;
                let mut lut = Vec::with_capacity(m * PQ_CENTROIDS);
                for j in 0..*m {
                    for c in 0..PQ_CENTROIDS {
                        let cb = &codebooks[(j * PQ_CENTROIDS + c) * sub..][..sub];
                        let v = if l2 {
                            let r = &residual_query[j * sub..(j + 1) * sub];
                            r.iter().zip(cb).map(|(a, b)| (a - b) * (a - b)).sum()
                        } else {
                            let q = &query[j * sub..(j + 1) * sub];
                            -q.iter().zip(cb).map(|(a, b)| a * b).sum::<f32>()
                        };
                        lut.push(v);
                    }
                }
                Table::Pq { m: *m, base, lut }
            }
        }
    }
}

/// Precomputed per-query, per-list scoring terms.
pub(crate) enum Table {
    /// SQ8 terms.
    Sq8 {
        /// L2 (else negated inner product).
        l2: bool,
        /// Constant part.
        base: f32,
        /// L2: residual query minus `min`; IP: the query times `scale`.
        target: Vec<f32>,
        /// IP: constant from `min`.
        offset: f32,
        /// Step per dimension.
        scale: Vec<f32>,
    },
    /// PQ lookup table, 16 entries per subquantizer.
    Pq {
        /// Subquantizers.
        m: usize,
        /// Constant part.
        base: f32,
        /// The table.
        lut: Vec<f32>,
    },
}

impl Table {
    /// The approximate distance (smaller is closer; L2 squared, or negated inner product)
    /// of one code.
    #[cfg(test)]
    pub(crate) fn score(&self, code: &[u8]) -> f32 {
        let mut out = [0.0];
        self.score_block(code, code.len(), &mut out);
        out[0]
    }

    /// The approximate distances of the codes in `codes` (`code_len` bytes each) into `out`
    /// (SQ8 through the SIMD kernels).
    pub(crate) fn score_block(&self, codes: &[u8], code_len: usize, out: &mut [f32]) {
        match self {
            Table::Sq8 {
                l2,
                base,
                target,
                offset,
                scale,
            } => {
                if *l2 {
                    kernel::sq8_l2_block(codes, target, scale, out);
                } else {
                    kernel::sq8_dot_block(codes, target, out);
                    out.iter_mut().for_each(|d| *d = base + offset - *d);
                }
            }
            Table::Pq { m, base, lut } => {
                for (code, o) in codes.chunks_exact(code_len.max(1)).zip(out) {
                    let mut acc = *base;
                    for j in 0..*m {
                        let c = (code[j / 2] >> (4 * (j % 2))) & 15;
                        acc += lut[j * PQ_CENTROIDS + c as usize];
                    }
                    *o = acc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    fn data(n: usize, dim: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(5);
        (0..n * dim)
            .map(|_| rng.next_u32() as f32 / u32::MAX as f32 * 4.0 - 2.0)
            .collect()
    }

    #[test]
    fn default_rerank_grows_with_the_dimensions_per_code() {
        let x = data(64, 8);
        assert_eq!(Codec::train_sq8(&x, 8).default_rerank(8), 2);
        // 8, 4, 2 and 1 dimensions per 4-bit code: 5c/2 (at least 2).
        for (m, want) in [(1, 20), (2, 10), (4, 5), (8, 3)] {
            assert_eq!(
                Codec::train_pq(&x, 8, m, 1, Width::Six).default_rerank(8),
                want,
                "m {m}"
            );
        }
        // Coarser codes: 5c/2 * (c/8)^1.5 (16, 32 and 64 dimensions per code).
        let x = data(64, 64);
        for (m, want) in [(4, 114), (2, 640), (1, 3621)] {
            assert_eq!(
                Codec::train_pq(&x, 64, m, 1, Width::Six).default_rerank(64),
                want,
                "m {m}"
            );
        }
        // Growth is continuous at 8 dimensions per code.
        assert_eq!(
            Codec::train_pq(&x, 64, 8, 1, Width::Six).default_rerank(64),
            20
        );
    }

    #[test]
    fn serialized_form_round_trips_and_rejects_damage() {
        let dim = 12;
        let x = data(100, dim);
        // The tag says which: 2 for residual codes (what every PQ index held before codes of
        // vectors), 3 for codes of vectors, each with 6-bit refine codes; 4 and 5 the same
        // with 8-bit refine codes. Of the rest of the bytes, only the refine steps (the last
        // `dim` floats) differ between the widths.
        let train = |width, residual| Codec::train_pq(&x, dim, 4, 1, width).with_residual(residual);
        let pq = [
            train(Width::Six, true),
            train(Width::Six, false),
            train(Width::Eight, true),
            train(Width::Eight, false),
        ];
        let bytes = pq.each_ref().map(Codec::to_bytes);
        assert_eq!(bytes.each_ref().map(|b| b[0]), [2, 3, 4, 5]);
        let steps = bytes[0].len() - 4 * dim;
        for (i, (b, c)) in bytes.iter().zip(&pq).enumerate() {
            assert_eq!(b[1..steps], bytes[0][1..steps]);
            assert_eq!(b[1..], bytes[i / 2 * 2][1..]);
            let back = Codec::from_bytes(b, dim).unwrap();
            assert_eq!(back.is_residual(), c.is_residual());
            assert_eq!(
                back.refine().map(|r| r.0.width()),
                Some([Width::Six, Width::Eight][i / 2])
            );
        }
        // Two 4-bit codes per byte, then the refine values (9 bytes of 6 bits, or 12 of 8)
        // and the error.
        assert_eq!(pq[1].code_len(dim), 2 + 9 + 4);
        assert_eq!(pq[3].code_len(dim), 2 + 12 + 4);
        let [six_residual, six_vectors, eight_residual, eight_vectors] = pq;
        for codec in [
            Codec::train_sq8(&x, dim),
            six_residual,
            six_vectors,
            eight_residual,
            eight_vectors,
        ] {
            let bytes = codec.to_bytes();
            assert_eq!(Codec::from_bytes(&bytes, dim), Some(codec.clone()));
            assert_eq!(Codec::from_bytes(&bytes, dim + 1), None);
            for cut in 0..bytes.len() {
                assert_eq!(Codec::from_bytes(&bytes[..cut], dim), None);
            }
        }
    }

    #[test]
    fn sq8_decode_error_is_within_half_a_step() {
        let dim = 17;
        let x = data(500, dim);
        let codec = Codec::train_sq8(&x, dim);
        let Codec::Sq8 { scale, .. } = &codec else {
            unreachable!()
        };
        for row in x.chunks_exact(dim) {
            let mut code = Vec::new();
            codec.encode(row, &mut code);
            let back = codec.decode(&code, dim);
            for d in 0..dim {
                assert!((back[d] - row[d]).abs() <= scale[d] / 2.0 + 1e-5);
            }
        }
    }

    #[test]
    fn precomputed_pq_tables_equal_the_direct_ones() {
        let dim = 24;
        let x = data(600, dim);
        let codec = Codec::train_pq(&x, dim, 6, 1, Width::Six);
        let centroid = &x[dim..2 * dim];
        let query = &x[5 * dim..6 * dim];
        for metric in [Metric::SquaredEuclidean, Metric::InnerProduct] {
            let Table::Pq {
                lut: want, base, ..
            } = codec.table(query, centroid, metric)
            else {
                panic!("PQ table expected");
            };
            let lut = Codec::pq_query_table(metric, &codec.pq_query_dots(query));
            let terms = codec.pq_list_terms(centroid);
            let l2 = metric == Metric::SquaredEuclidean;
            let got_base = if l2 {
                kernel::l2sq(query, centroid)
            } else {
                -kernel::dot(query, centroid)
            };
            // The L2 forms differ per entry by the constant |q_j - c_j|^2 of each
            // subquantizer, which sums to the base; compare whole distances instead.
            for code in [[0u8, 0, 0], [0x21, 0x43, 0xf5], [0xff, 0xff, 0xff]] {
                let nibble = |j: usize| ((code[j / 2] >> (4 * (j % 2))) & 15) as usize;
                let a = base + (0..6).map(|j| want[j * 16 + nibble(j)]).sum::<f32>();
                let row_term: f32 = (0..6).map(|j| terms[j * 16 + nibble(j)]).sum();
                let b = got_base
                    + if l2 { row_term } else { 0.0 }
                    + (0..6).map(|j| lut[j * 16 + nibble(j)]).sum::<f32>();
                assert!(
                    (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                    "{metric:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn table_scores_equal_distances_to_the_reconstruction() {
        let dim = 12;
        let x = data(300, dim);
        let centroid: Vec<f32> = (0..dim).map(|d| d as f32 * 0.1).collect();
        let q: Vec<f32> = (0..dim).map(|d| 1.0 - d as f32 * 0.2).collect();
        for codec in [
            Codec::train_sq8(&x, dim),
            Codec::train_pq(&x, dim, 4, 1, Width::Six),
            Codec::train_pq(&x, dim, 3, 1, Width::Six),
        ] {
            for metric in [Metric::SquaredEuclidean, Metric::InnerProduct] {
                let table = codec.table(&q, &centroid, metric);
                for row in x.chunks_exact(dim).take(50) {
                    let mut code = Vec::new();
                    codec.encode(row, &mut code);
                    assert_eq!(code.len(), codec.code_len(dim));
                    let recon: Vec<f32> = codec
                        .decode(&code, dim)
                        .iter()
                        .zip(&centroid)
                        .map(|(r, c)| r + c)
                        .collect();
                    let want = match metric {
                        Metric::SquaredEuclidean => recon
                            .iter()
                            .zip(&q)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>(),
                        _ => -recon.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(),
                    };
                    let got = table.score(&code);
                    assert!(
                        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "{got} vs {want}"
                    );
                }
            }
        }
    }
}
