//! Distances and top-k selection over plain `&[f32]`: the hot path of every search.
//!
//! Paths: AVX-512F, AVX2+FMA, NEON and a portable scalar twin, chosen once at runtime by CPU
//! feature detection (no `target-cpu` flag needed). All paths compute the same sums in a
//! different order; they agree within a relative error of `RELATIVE_TOLERANCE` of the sum of
//! absolute terms (property-tested in `mod tests`).

#[cfg(target_arch = "aarch64")]
mod neon;
pub(crate) mod scalar;
mod topk;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

pub(crate) use topk::{Neighbor, TopK};

/// Documented agreement between SIMD and scalar paths: `|simd - scalar| <= tol * sum(|terms|)`
/// with `tol = RELATIVE_TOLERANCE` (float32 summation-order error for lengths up to ~10^4).
#[cfg(test)]
pub(crate) const RELATIVE_TOLERANCE: f32 = 1e-5;

/// The signature of [`pq4_scan_multi`]: `(codes, m_pad, luts, out)`.
pub(crate) type Pq4ScanMulti = fn(&[u8], usize, &[&[u8]], &mut [u16]);

/// The signature of [`sq8_l2_block`]: `(codes, target, scale, out)`.
pub(crate) type Sq8L2Block = fn(&[u8], &[f32], &[f32], &mut [f32]);

/// One implementation of every primitive.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    /// Name of the path, for benchmarks and reports.
    pub name: &'static str,
    /// Squared L2 of two equal-length slices.
    pub l2sq: fn(&[f32], &[f32]) -> f32,
    /// Inner product of two equal-length slices.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// Squared L2 from a query to each row of a block.
    pub l2sq_block: fn(&[f32], &[f32], &mut [f32]),
    /// Inner product of a query with each row of a block.
    pub dot_block: fn(&[f32], &[f32], &mut [f32]),
    /// [`Kernels::l2sq_block`] for a block already in cache (the same bits).
    pub l2sq_block_cached: fn(&[f32], &[f32], &mut [f32]),
    /// [`Kernels::dot_block`] for a block already in cache (the same bits).
    pub dot_block_cached: fn(&[f32], &[f32], &mut [f32]),
    /// Inner products of 8 points with every center of a [`CenterPanels`] layout.
    pub dots_tile8: fn(&[f32], usize, &[f32], &mut [f32]),
    /// The same for one point, each pair bit-identical to the tile's.
    pub dots_one: fn(&[f32], usize, &[f32], &mut [f32]),
    /// 4-bit PQ fast-scan: `(codes, m_pad, lut, out)`, see [`pq4_scan`].
    pub pq4_scan: fn(&[u8], usize, &[u8], &mut [u16]),
    /// 4-bit PQ fast-scan against up to 4 tables: `(codes, m_pad, luts, out)`, see
    /// [`pq4_scan_multi`].
    pub pq4_scan_multi: Pq4ScanMulti,
    /// PQ table quantization, see [`pq4_quantize_table`].
    pub pq4_quantize_table: fn(&[f32], &mut [u8]) -> (f32, f32),
    /// SQ8 L2 scores of a block of codes, see [`sq8_l2_block`].
    pub sq8_l2_block: Sq8L2Block,
    /// SQ8 inner products of a block of codes, see [`sq8_dot_block`].
    pub sq8_dot_block: fn(&[u8], &[f32], &mut [f32]),
    /// 6-bit unpacking, see [`unpack6`].
    pub unpack6: fn(&[u8], &mut [u8]),
}

const SCALAR: Kernels = Kernels {
    name: "scalar",
    l2sq: scalar::l2sq,
    dot: scalar::dot,
    l2sq_block: scalar::l2sq_block,
    dot_block: scalar::dot_block,
    l2sq_block_cached: scalar::l2sq_block,
    dot_block_cached: scalar::dot_block,
    dots_tile8: scalar::dots_tile8,
    dots_one: scalar::dots_one,
    pq4_scan: scalar::pq4_scan,
    pq4_scan_multi: scalar::pq4_scan_multi,
    pq4_quantize_table: scalar::pq4_quantize_table,
    sq8_l2_block: scalar::sq8_l2_block,
    sq8_dot_block: scalar::sq8_dot_block,
    unpack6: scalar::unpack6,
};

/// Every path this CPU supports, best first (the scalar twin is always last).
pub(crate) fn available() -> Vec<Kernels> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(Kernels {
                name: "avx512",
                l2sq: x86::l2sq_avx512,
                dot: x86::dot_avx512,
                l2sq_block: x86::l2sq_block_avx512,
                dot_block: x86::dot_block_avx512,
                l2sq_block_cached: x86::l2sq_block_cached_avx512,
                dot_block_cached: x86::dot_block_cached_avx512,
                dots_tile8: x86::dots_tile8_avx512,
                dots_one: x86::dots_one_avx512,
                pq4_scan: if std::arch::is_x86_feature_detected!("avx512bw") {
                    x86::pq4_scan_avx512
                } else {
                    x86::pq4_scan_avx2
                },
                pq4_scan_multi: if std::arch::is_x86_feature_detected!("avx512bw") {
                    x86::pq4_scan_multi_avx512
                } else {
                    x86::pq4_scan_multi_avx2
                },
                pq4_quantize_table: if std::arch::is_x86_feature_detected!("avx512bw") {
                    x86::pq4_quantize_table_avx512
                } else {
                    x86::pq4_quantize_table_avx2
                },
                sq8_l2_block: x86::sq8_l2_block_avx512,
                sq8_dot_block: x86::sq8_dot_block_avx512,
                unpack6: x86_unpack6(),
            });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            out.push(Kernels {
                name: "avx2+fma",
                l2sq: x86::l2sq_avx2,
                dot: x86::dot_avx2,
                l2sq_block: x86::l2sq_block_avx2,
                dot_block: x86::dot_block_avx2,
                l2sq_block_cached: x86::l2sq_block_avx2,
                dot_block_cached: x86::dot_block_avx2,
                dots_tile8: x86::dots_tile8_avx2,
                dots_one: x86::dots_one_avx2,
                pq4_scan: x86::pq4_scan_avx2,
                pq4_scan_multi: x86::pq4_scan_multi_avx2,
                pq4_quantize_table: x86::pq4_quantize_table_avx2,
                sq8_l2_block: x86::sq8_l2_block_avx2,
                sq8_dot_block: x86::sq8_dot_block_avx2,
                unpack6: x86_unpack6(),
            });
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            out.push(Kernels {
                name: "neon",
                l2sq: neon::l2sq_neon,
                dot: neon::dot_neon,
                l2sq_block: scalar_block_of_l2_neon,
                dot_block: scalar_block_of_dot_neon,
                l2sq_block_cached: scalar_block_of_l2_neon,
                dot_block_cached: scalar_block_of_dot_neon,
                dots_tile8: scalar::dots_tile8,
                dots_one: scalar::dots_one,
                pq4_scan: scalar::pq4_scan,
                pq4_scan_multi: scalar::pq4_scan_multi,
                pq4_quantize_table: scalar::pq4_quantize_table,
                sq8_l2_block: scalar::sq8_l2_block,
                sq8_dot_block: scalar::sq8_dot_block,
                unpack6: scalar::unpack6,
            });
        }
    }
    out.push(SCALAR);
    out
}

/// The 6-bit unpacking of this x86 CPU: BMI2's bit deposit when it has it.
#[cfg(target_arch = "x86_64")]
fn x86_unpack6() -> fn(&[u8], &mut [u8]) {
    if std::arch::is_x86_feature_detected!("bmi2") {
        x86::unpack6_bmi2
    } else {
        scalar::unpack6
    }
}

#[cfg(target_arch = "aarch64")]
fn scalar_block_of_l2_neon(q: &[f32], block: &[f32], out: &mut [f32]) {
    for (row, o) in block.chunks_exact(q.len()).zip(out.iter_mut()) {
        *o = neon::l2sq_neon(q, row);
    }
}

#[cfg(target_arch = "aarch64")]
fn scalar_block_of_dot_neon(q: &[f32], block: &[f32], out: &mut [f32]) {
    for (row, o) in block.chunks_exact(q.len()).zip(out.iter_mut()) {
        *o = neon::dot_neon(q, row);
    }
}

/// The best path for this CPU, detected once. `CIPHERVEC_KERNEL=NAME` forces another path
/// this CPU supports (`scalar`, `avx2+fma`, `avx512`, `neon`), for comparisons and
/// debugging; an unknown name keeps the best.
pub(crate) fn best() -> &'static Kernels {
    static BEST: OnceLock<Kernels> = OnceLock::new();
    BEST.get_or_init(|| {
        let paths = available();
        let forced = std::env::var("CIPHERVEC_KERNEL").ok();
        paths
            .iter()
            .find(|k| forced.as_deref() == Some(k.name))
            .copied()
            .unwrap_or(paths[0])
    })
}

/// Squared Euclidean distance.
#[inline]
pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    (best().l2sq)(a, b)
}

/// Inner product.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    (best().dot)(a, b)
}

/// Squared L2 norm.
#[inline]
pub(crate) fn norm_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Cosine distance `1 - cos(a, b)`; 1 when either vector is zero.
pub(crate) fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let denom = (norm_sq(a) * norm_sq(b)).sqrt();
    if denom == 0.0 {
        return 1.0;
    }
    1.0 - dot(a, b) / denom
}

/// Squared L2 from `q` to each row of `block` (rows of `q.len()` floats).
#[inline]
pub(crate) fn l2sq_block(q: &[f32], block: &[f32], out: &mut [f32]) {
    (best().l2sq_block)(q, block, out);
}

/// Inner product of `q` with each row of `block`.
#[inline]
pub(crate) fn dot_block(q: &[f32], block: &[f32], out: &mut [f32]) {
    (best().dot_block)(q, block, out);
}

/// [`l2sq_block`] for a block that is already in cache (a batch's later queries of one
/// list): bit-identical, and on some paths faster there (and slower on a block read from
/// memory).
#[inline]
pub(crate) fn l2sq_block_cached(q: &[f32], block: &[f32], out: &mut [f32]) {
    (best().l2sq_block_cached)(q, block, out);
}

/// [`dot_block`] for a block that is already in cache (see [`l2sq_block_cached`]).
#[inline]
pub(crate) fn dot_block_cached(q: &[f32], block: &[f32], out: &mut [f32]) {
    (best().dot_block_cached)(q, block, out);
}

/// Rows per 4-bit PQ fast-scan block.
pub(crate) const PQ4_BLOCK: usize = 32;
/// The subquantizer count of a fast-scan layout is padded to a multiple of this (one
/// 512-bit register holds the tables of 4 subquantizers).
pub(crate) const PQ4_M_ALIGN: usize = 4;

/// Lanes of the SQ8 kernels' fixed summation order.
pub(crate) const SQ8_LANES: usize = 16;

/// SQ8 L2 score of each row of `codes` (`target.len()` bytes per row) into `out`:
/// `sum_d (target_d - code_d * scale_d)^2`. Every path sums in one fixed order, so all return
/// the same bits: dimension `d` goes to lane `d % 16` (`diff` and `lane += diff * diff` each
/// one fused multiply-add), then the lanes are added pairwise ([`scalar::sq8_reduce`]).
#[inline]
pub(crate) fn sq8_l2_block(codes: &[u8], target: &[f32], scale: &[f32], out: &mut [f32]) {
    (best().sq8_l2_block)(codes, target, scale, out);
}

/// SQ8 inner product of each row of `codes` with `weight` into `out`:
/// `sum_d code_d * weight_d`, in the fixed order of [`sq8_l2_block`].
#[inline]
pub(crate) fn sq8_dot_block(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    (best().sq8_dot_block)(codes, weight, out);
}

/// Unpacks `out.len()` 6-bit values from the little-endian bit stream `packed` (value `i` at
/// bits `6i..6i + 6`; missing bytes read as zero), one value per byte.
#[inline]
pub(crate) fn unpack6(packed: &[u8], out: &mut [u8]) {
    (best().unpack6)(packed, out);
}

/// The length contract of the SQ8 kernels: whole rows of `dim` bytes, one output each.
fn check_sq8_args(codes: &[u8], dim: usize, out: &[f32]) {
    assert!(
        dim > 0 && codes.len().is_multiple_of(dim) && out.len() >= codes.len() / dim,
        "sq8 block lengths"
    );
}

/// Hints the CPU to start loading `items` into cache (no effect on any result), so that
/// reads of records scattered over a mapped file overlap instead of waiting one by one.
#[inline]
pub(crate) fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch(items.as_ptr().cast(), std::mem::size_of_val(items));
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// 4-bit PQ fast-scan. Layout: `codes` is a sequence of blocks of [`PQ4_BLOCK`] rows; a block
/// holds, for each of `m_pad` subquantizers (a multiple of [`PQ4_M_ALIGN`]), 16 bytes whose
/// byte `t` carries row `t`'s code in its low nibble and row `t + 16`'s in its high nibble.
/// `lut` holds 16 8-bit entries per subquantizer. `out[r]` receives row `r`'s sum of table
/// entries; callers keep `m_pad * max entry <= u16::MAX` so that no sum wraps.
#[inline]
pub(crate) fn pq4_scan(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    (best().pq4_scan)(codes, m_pad, lut, out);
}

/// Tables [`pq4_scan_multi`] takes at most.
pub(crate) const PQ4_MAX_TABLES: usize = 4;

/// [`pq4_scan`] of one list of `codes` against `q` tables at once (`luts`: `q` tables of
/// `m_pad * 16` bytes, `1 <= q <=` [`PQ4_MAX_TABLES`]): `out` holds `q` runs of sums, run `i`
/// (`out.len() / q` sums) what `pq4_scan` gives table `i`, the same integers.
/// A query batch scans each list once for several queries: the codes are loaded and split
/// into nibbles once for all of them.
#[inline]
pub(crate) fn pq4_scan_multi(codes: &[u8], m_pad: usize, luts: &[&[u8]], out: &mut [u16]) {
    (best().pq4_scan_multi)(codes, m_pad, luts, out);
}

/// The layout contract of [`pq4_scan_multi`]; returns the number of tables.
fn check_pq4_multi_args(codes: &[u8], m_pad: usize, luts: &[&[u8]], out: &[u16]) -> usize {
    let table_len = m_pad * 16;
    let q = luts.len();
    assert!(
        m_pad > 0
            && m_pad.is_multiple_of(PQ4_M_ALIGN)
            && (1..=PQ4_MAX_TABLES).contains(&q)
            && luts.iter().all(|l| l.len() == table_len)
            && codes.len().is_multiple_of(table_len)
            && out.len() == q * (codes.len() / table_len * PQ4_BLOCK),
        "pq4_scan_multi layout"
    );
    q
}

/// Quantizes a float PQ table whose entry for subquantizer `j` and centroid `c` is at
/// `j * 16 + c` into `out` (`m_pad * 16` bytes, the [`pq4_scan`] layout; padding
/// subquantizers get zeros). Entries round to the nearest integer (ties to even).
/// Each subquantizer's entries are shifted by their minimum; one scale maps the largest span
/// to the largest entry for which `m_pad` entries still sum within `u16`. Returns the sum of
/// the minima and the scale: `distance ≈ base + sum_of_mins + table_sum / scale`.
#[inline]
pub(crate) fn pq4_quantize_table(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    (best().pq4_quantize_table)(lut, out)
}

/// The length contract of [`pq4_quantize_table`].
fn check_pq4_table_args(lut: &[f32], out: &[u8]) {
    assert!(
        lut.len().is_multiple_of(16)
            && out.len().is_multiple_of(16 * PQ4_M_ALIGN)
            && out.len() >= lut.len(),
        "pq4_quantize_table lengths"
    );
}

/// The layout contract of [`pq4_scan`], checked by every path before it reads.
fn check_pq4_args(codes: &[u8], m_pad: usize, lut: &[u8], out: &[u16]) {
    assert!(
        m_pad > 0
            && m_pad.is_multiple_of(PQ4_M_ALIGN)
            && lut.len() == m_pad * 16
            && codes.len().is_multiple_of(m_pad * 16)
            && out.len() == codes.len() / (m_pad * 16) * PQ4_BLOCK,
        "pq4_scan layout"
    );
}

/// Centers laid out for the tiled kernels: panels of 16 centers, each panel coordinate-major
/// (`panel[d * 16 + lane]`), padded with zero centers to an even number of panels.
#[derive(Clone, Debug)]
pub(crate) struct CenterPanels {
    dim: usize,
    k: usize,
    data: Vec<f32>,
}

impl CenterPanels {
    /// Lays out `centers` (rows of `dim`).
    pub(crate) fn new(centers: &[f32], dim: usize) -> CenterPanels {
        let k = centers.len() / dim.max(1);
        let n_panels = k.div_ceil(32) * 2;
        let mut data = vec![0.0f32; n_panels * 16 * dim];
        for (c, row) in centers.chunks_exact(dim.max(1)).enumerate() {
            let (p, lane) = (c / 16, c % 16);
            for (d, &v) in row.iter().enumerate() {
                data[p * 16 * dim + d * 16 + lane] = v;
            }
        }
        CenterPanels { dim, k, data }
    }

    /// Padded number of centers (columns of a tile).
    pub(crate) fn k_pad(&self) -> usize {
        self.data.len() / (16 * self.dim.max(1)) * 16
    }

    /// Inner products of one point with every center (`out[j]`, `k_pad` entries), each equal
    /// bit for bit to what [`CenterPanels::dots`] gives the same point in a tile.
    pub(crate) fn dots_one(&self, point: &[f32], out: &mut [f32]) {
        (best().dots_one)(point, self.dim, &self.data, out);
    }

    /// Inner products of up to 8 points with every center: `out[i * k_pad + j]`.
    pub(crate) fn dots(&self, points: &[f32], out: &mut [f32]) {
        let dim = self.dim;
        let m = points.len() / dim.max(1);
        if m == 8 {
            (best().dots_tile8)(points, dim, &self.data, out);
        } else {
            let mut tile = vec![0.0f32; 8 * dim];
            tile[..points.len()].copy_from_slice(points);
            let mut full = vec![0.0f32; 8 * self.k_pad()];
            (best().dots_tile8)(&tile, dim, &self.data, &mut full);
            out[..m * self.k_pad()].copy_from_slice(&full[..m * self.k_pad()]);
        }
    }
}

/// For each row of `points`, the index of the nearest row of `centers` by squared L2 and that
/// distance, computed as `|x|^2 - 2 x.c + |c|^2` with precomputed `center_norms` through the
/// tiled kernel. Parallel over points with rayon when there is enough work to pay for it.
pub(crate) fn nearest_l2_batch(
    points: &[f32],
    centers: &[f32],
    center_norms: &[f32],
    dim: usize,
    out: &mut [(u32, f32)],
) {
    nearest_l2_with(points, &CenterPanels::new(centers, dim), center_norms, out);
}

/// [`nearest_l2_batch`] over centers already laid out (a caller that keeps them).
pub(crate) fn nearest_l2_with(
    points: &[f32],
    panels: &CenterPanels,
    center_norms: &[f32],
    out: &mut [(u32, f32)],
) {
    nearest_with(points, panels, Some(center_norms), out);
}

/// For each row of `points`, the center of `panels` with the largest inner product, and
/// minus that product.
pub(crate) fn nearest_ip_with(points: &[f32], panels: &CenterPanels, out: &mut [(u32, f32)]) {
    nearest_with(points, panels, None, out);
}

/// Index and value of the smallest score over `j < dots.len()`, the first one on ties: the
/// score of `dots[j]` (an inner product with center `j`) is `norms[j] - 2 dots[j]` (squared L2
/// less the point's squared norm) or, without norms, `-dots[j]`. One pass: sixteen lanes keep
/// their running minimum and where it was, so the compiler vectorizes scoring and scan
/// together. (A score pass, a minimum pass and a search for the position, as before
/// 2026-12-07, cost 3-8% more CPU time per assignment of 128,000 x 96-d points to 1,000
/// centers: `examples/assign_rate`, old and new binaries interleaved.) `(0, inf)` when no
/// score is below infinity.
fn argmin_scores(dots: &[f32], norms: Option<&[f32]>) -> (usize, f32) {
    const LANES: usize = 16;
    let mut best = [f32::INFINITY; LANES];
    let mut at = [0u32; LANES];
    let body = dots.len() / LANES * LANES;
    match norms {
        Some(norms) => {
            for (c, (d, n)) in dots[..body]
                .chunks_exact(LANES)
                .zip(norms[..body].chunks_exact(LANES))
                .enumerate()
            {
                for l in 0..LANES {
                    let s = n[l] - 2.0 * d[l];
                    let better = s < best[l];
                    best[l] = if better { s } else { best[l] };
                    at[l] = if better {
                        (c * LANES + l) as u32
                    } else {
                        at[l]
                    };
                }
            }
        }
        None => {
            for (c, d) in dots[..body].chunks_exact(LANES).enumerate() {
                for l in 0..LANES {
                    let s = -d[l];
                    let better = s < best[l];
                    best[l] = if better { s } else { best[l] };
                    at[l] = if better {
                        (c * LANES + l) as u32
                    } else {
                        at[l]
                    };
                }
            }
        }
    }
    // The lanes' minima (each the first of its lane), then the tail, in index order on ties.
    let (mut j, mut v) = (0usize, f32::INFINITY);
    for l in 0..LANES {
        if best[l] < v || (best[l] == v && v < f32::INFINITY && (at[l] as usize) < j) {
            (j, v) = (at[l] as usize, best[l]);
        }
    }
    for (t, &d) in dots.iter().enumerate().skip(body) {
        let s = match norms {
            Some(n) => n[t] - 2.0 * d,
            None => -d,
        };
        if s < v {
            (j, v) = (t, s);
        }
    }
    (j, v)
}

/// Nearest center of every row of `points` (see [`argmin_scores`] for `norms`), from the
/// tiled kernel's inner products, in parallel when there is enough work.
fn nearest_with(
    points: &[f32],
    panels: &CenterPanels,
    norms: Option<&[f32]>,
    out: &mut [(u32, f32)],
) {
    use rayon::prelude::*;
    let (dim, k, k_pad) = (panels.dim, panels.k, panels.k_pad());
    let chunk = 64;
    let run = |(pts, res): (&[f32], &mut [(u32, f32)])| {
        let mut dots = vec![0.0f32; 8 * k_pad];
        for (tile, r8) in pts.chunks(8 * dim).zip(res.chunks_mut(8)) {
            panels.dots(tile, &mut dots);
            for (i, r) in r8.iter_mut().enumerate() {
                let (j, best) = argmin_scores(&dots[i * k_pad..i * k_pad + k], norms);
                // Squared L2 is the score plus the point's squared norm (clamped: rounding).
                let distance = match norms {
                    Some(_) => (best + norm_sq(&tile[i * dim..(i + 1) * dim])).max(0.0),
                    None => best,
                };
                *r = (j as u32, distance);
            }
        }
    };
    let work = points.len() / dim.max(1) * k * dim;
    if work < 1 << 22 {
        points
            .chunks(chunk * dim)
            .zip(out.chunks_mut(chunk))
            .for_each(run);
    } else {
        points
            .par_chunks(chunk * dim)
            .zip(out.par_chunks_mut(chunk))
            .for_each(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    fn random_vec(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * scale)
            .collect()
    }

    const LENGTHS: [usize; 14] = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 128, 383, 384, 1536];

    #[test]
    fn every_path_matches_the_scalar_twin() {
        let mut rng = StdRng::seed_from_u64(1);
        let paths = available();
        assert!(paths.last().unwrap().name == "scalar");
        for trial in 0..200 {
            let n = if trial < LENGTHS.len() {
                LENGTHS[trial]
            } else {
                1 + rng.next_u32() as usize % 2000
            };
            let scale = [1e-3, 1.0, 1e3][trial % 3];
            let a = random_vec(&mut rng, n, scale);
            let b = random_vec(&mut rng, n, scale);
            let abs_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            let abs_dot: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            let want_l2 = scalar::l2sq(&a, &b);
            let want_dot = scalar::dot(&a, &b);
            for k in &paths {
                let got = (k.l2sq)(&a, &b);
                assert!(
                    (got - want_l2).abs() <= RELATIVE_TOLERANCE * abs_l2 + f32::MIN_POSITIVE,
                    "{} l2 n={n}: {got} vs {want_l2}",
                    k.name
                );
                let got = (k.dot)(&a, &b);
                assert!(
                    (got - want_dot).abs() <= RELATIVE_TOLERANCE * abs_dot + f32::MIN_POSITIVE,
                    "{} dot n={n}: {got} vs {want_dot}",
                    k.name
                );
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn block_paths_match_pairwise() {
        let mut rng = StdRng::seed_from_u64(2);
        for &d in &LENGTHS {
            for rows in [0usize, 1, 3, 4, 5, 8, 9, 13] {
                let q = random_vec(&mut rng, d, 2.0);
                let block = random_vec(&mut rng, d * rows, 2.0);
                for k in available() {
                    let mut out = vec![f32::NAN; rows];
                    (k.l2sq_block)(&q, &block, &mut out);
                    // Each path's block gives its own pair kernel's bits (so that a scan and
                    // a re-rank of the same row agree exactly), in cache or not.
                    for (r, row) in block.chunks_exact(d).enumerate() {
                        assert_eq!(out[r].to_bits(), (k.l2sq)(&q, row).to_bits(), "{}", k.name);
                    }
                    let mut cached = vec![f32::NAN; rows];
                    (k.l2sq_block_cached)(&q, &block, &mut cached);
                    assert_eq!(bits(&cached), bits(&out), "{} cached", k.name);
                    for (r, got) in out.iter().enumerate() {
                        let want = scalar::l2sq(&q, &block[r * d..(r + 1) * d]);
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{}",
                            k.name
                        );
                    }
                    (k.dot_block)(&q, &block, &mut out);
                    for (r, row) in block.chunks_exact(d).enumerate() {
                        assert_eq!(out[r].to_bits(), (k.dot)(&q, row).to_bits(), "{}", k.name);
                    }
                    let mut cached = vec![f32::NAN; rows];
                    (k.dot_block_cached)(&q, &block, &mut cached);
                    assert_eq!(bits(&cached), bits(&out), "{} cached", k.name);
                    for (r, got) in out.iter().enumerate() {
                        let want = scalar::dot(&q, &block[r * d..(r + 1) * d]);
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{}",
                            k.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_tile_path_matches_scalar_dots() {
        let mut rng = StdRng::seed_from_u64(4);
        for &(dim, k) in &[
            (1usize, 1usize),
            (3, 17),
            (16, 32),
            (33, 40),
            (128, 100),
            (384, 205),
        ] {
            let centers = random_vec(&mut rng, k * dim, 2.0);
            let points = random_vec(&mut rng, 8 * dim, 2.0);
            let panels = CenterPanels::new(&centers, dim);
            for path in available() {
                let mut out = vec![f32::NAN; 8 * panels.k_pad()];
                (path.dots_tile8)(&points, dim, &panels.data, &mut out);
                for i in 0..8 {
                    // One point alone gets its row of the tile, bit for bit.
                    let mut one = vec![f32::NAN; panels.k_pad()];
                    (path.dots_one)(&points[i * dim..(i + 1) * dim], dim, &panels.data, &mut one);
                    for (j, v) in one.iter().enumerate() {
                        let tile = out[i * panels.k_pad() + j];
                        assert_eq!(v.to_bits(), tile.to_bits(), "{} {dim} {k}", path.name);
                    }
                    for j in 0..k {
                        let want = scalar::dot(
                            &points[i * dim..(i + 1) * dim],
                            &centers[j * dim..(j + 1) * dim],
                        );
                        let got = out[i * panels.k_pad() + j];
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{} {dim} {k}",
                            path.name
                        );
                    }
                }
            }
        }
    }

    /// The batch assignment (tiled products, fused score-and-argmin) against the scalar
    /// kernel's distances to every center: the chosen center is a nearest one up to the
    /// rounding of the expanded form, for center counts below, at and across the 16 lanes
    /// of the scan and the 32 of a tile, for L2 and inner product.
    #[test]
    fn nearest_batch_matches_brute_force() {
        let mut rng = StdRng::seed_from_u64(3);
        for &(dim, n, k) in &[
            (24, 500, 37),
            (7, 300, 1),
            (16, 300, 5),
            (32, 200, 16),
            (96, 300, 300),
        ] {
            let points = random_vec(&mut rng, n * dim, 4.0);
            let centers = random_vec(&mut rng, k * dim, 4.0);
            let norms: Vec<f32> = centers.chunks(dim).map(scalar::dot_self).collect();
            let mut out = vec![(0, 0.0); n];
            nearest_l2_batch(&points, &centers, &norms, dim, &mut out);
            let panels = CenterPanels::new(&centers, dim);
            let mut by_ip = vec![(0, 0.0); n];
            nearest_ip_with(&points, &panels, &mut by_ip);
            for (i, x) in points.chunks(dim).enumerate() {
                let dists: Vec<f32> = centers.chunks(dim).map(|c| scalar::l2sq(x, c)).collect();
                let best = dists.iter().copied().fold(f32::INFINITY, f32::min);
                let (j, d) = out[i];
                assert!(dists[j as usize] <= best + 1e-3 * best.max(1.0));
                assert!((d - dists[j as usize]).abs() <= 1e-3 * best.max(1.0));
                let ips: Vec<f32> = centers.chunks(dim).map(|c| scalar::dot(x, c)).collect();
                let top = ips.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let (j, d) = by_ip[i];
                assert!(ips[j as usize] >= top - 1e-3 * top.abs().max(1.0));
                assert!((-d - ips[j as usize]).abs() <= 1e-3 * top.abs().max(1.0));
            }
        }
    }

    /// The fused scan picks exactly what a plain first-minimum scan over the same scores
    /// picks, ties included (repeated values put equal minima in several lanes and in the
    /// tail).
    #[test]
    fn argmin_scores_is_the_first_minimum() {
        let mut rng = StdRng::seed_from_u64(17);
        for len in [0usize, 1, 5, 15, 16, 17, 31, 32, 33, 100, 1000] {
            for repeat in [false, true] {
                let draw = |rng: &mut StdRng| {
                    let v = random_vec(rng, 1, 8.0)[0];
                    // Few distinct values: many ties.
                    if repeat { (v * 2.0).round() / 2.0 } else { v }
                };
                let dots: Vec<f32> = (0..len).map(|_| draw(&mut rng)).collect();
                let norms: Vec<f32> = (0..len).map(|_| draw(&mut rng).abs()).collect();
                for with_norms in [true, false] {
                    let scores: Vec<f32> = (0..len)
                        .map(|j| {
                            if with_norms {
                                norms[j] - 2.0 * dots[j]
                            } else {
                                -dots[j]
                            }
                        })
                        .collect();
                    let mut want = (0usize, f32::INFINITY);
                    for (j, &s) in scores.iter().enumerate() {
                        if s < want.1 {
                            want = (j, s);
                        }
                    }
                    let got = argmin_scores(&dots, with_norms.then_some(&norms[..]));
                    assert_eq!(
                        got.0, want.0,
                        "len {len} repeat {repeat} norms {with_norms}"
                    );
                    assert_eq!(got.1.to_bits(), want.1.to_bits());
                }
            }
        }
    }

    #[test]
    fn every_unpack6_path_equals_the_scalar_twin() {
        let mut rng = StdRng::seed_from_u64(9);
        for len in 0..80usize {
            let values: Vec<u8> = (0..len).map(|_| (rng.next_u32() % 64) as u8).collect();
            // Pack by the definition, then leave trailing garbage the unpacking must ignore.
            let mut packed = vec![0u8; (6 * len).div_ceil(8)];
            for (i, &v) in values.iter().enumerate() {
                for b in 0..6 {
                    let bit = 6 * i + b;
                    packed[bit / 8] |= ((v >> b) & 1) << (bit % 8);
                }
            }
            let mut twin = vec![0xee; len];
            scalar::unpack6(&packed, &mut twin);
            assert_eq!(twin, values, "scalar, {len} values");
            packed.extend([0xff; 5]);
            for path in available() {
                let mut got = vec![0xee; len];
                (path.unpack6)(&packed, &mut got);
                assert_eq!(got, values, "{} {len} values", path.name);
            }
        }
    }

    #[test]
    fn every_sq8_path_equals_the_scalar_twin_exactly() {
        let mut rng = StdRng::seed_from_u64(8);
        for &dim in &LENGTHS {
            let rows = 1 + rng.next_u32() as usize % 9;
            let codes: Vec<u8> = (0..rows * dim).map(|_| rng.next_u32() as u8).collect();
            let target = random_vec(&mut rng, dim, 300.0);
            let scale: Vec<f32> = random_vec(&mut rng, dim, 2.0)
                .iter()
                .map(|s| s.abs())
                .collect();
            let (mut l2, mut dot) = (vec![0.0; rows], vec![0.0; rows]);
            scalar::sq8_l2_block(&codes, &target, &scale, &mut l2);
            scalar::sq8_dot_block(&codes, &scale, &mut dot);
            // The scalar twin against the definition (in f64, so within float rounding).
            for (r, code) in codes.chunks_exact(dim).enumerate() {
                let (mut want_l2, mut want_dot, mut magnitude) = (0.0f64, 0.0f64, 0.0f64);
                for ((&c, &t), &s) in code.iter().zip(&target).zip(&scale) {
                    let diff = f64::from(t) - f64::from(c) * f64::from(s);
                    want_l2 += diff * diff;
                    want_dot += f64::from(c) * f64::from(s);
                    magnitude += f64::from(c) * f64::from(s);
                }
                let tol = 1e-5 * magnitude.max(want_l2).max(1.0);
                assert!((f64::from(l2[r]) - want_l2).abs() <= tol, "dim {dim}");
                assert!((f64::from(dot[r]) - want_dot).abs() <= tol, "dim {dim}");
            }
            for path in available() {
                let (mut got_l2, mut got_dot) = (vec![7.0; rows], vec![7.0; rows]);
                (path.sq8_l2_block)(&codes, &target, &scale, &mut got_l2);
                (path.sq8_dot_block)(&codes, &scale, &mut got_dot);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got_l2), bits(&l2), "{} l2 dim {dim}", path.name);
                assert_eq!(bits(&got_dot), bits(&dot), "{} dot dim {dim}", path.name);
            }
        }
    }

    #[test]
    fn every_pq4_scan_path_equals_the_scalar_twin_exactly() {
        let mut rng = StdRng::seed_from_u64(6);
        for trial in 0..300 {
            let m_pad = PQ4_M_ALIGN * (1 + rng.next_u32() as usize % 64);
            let blocks = rng.next_u32() as usize % 5;
            // Largest entry such that no sum can wrap, as callers guarantee.
            let max_entry = (u16::MAX as usize / m_pad).min(255) as u32;
            let lut: Vec<u8> = (0..m_pad * 16)
                .map(|_| match trial % 3 {
                    0 => max_entry as u8, // every sum at its maximum
                    _ => (rng.next_u32() % (max_entry + 1)) as u8,
                })
                .collect();
            let codes: Vec<u8> = (0..blocks * m_pad * 16)
                .map(|_| rng.next_u32() as u8)
                .collect();
            let mut want = vec![0u16; blocks * PQ4_BLOCK];
            scalar::pq4_scan(&codes, m_pad, &lut, &mut want);
            // The scalar twin itself against the definition.
            for (r, &w) in want.iter().enumerate() {
                let (b, t) = (r / PQ4_BLOCK, r % PQ4_BLOCK);
                let sum: u32 = (0..m_pad)
                    .map(|j| {
                        let byte = codes[b * m_pad * 16 + j * 16 + t % 16];
                        let code = if t < 16 { byte & 15 } else { byte >> 4 };
                        u32::from(lut[j * 16 + usize::from(code)])
                    })
                    .sum();
                assert_eq!(u32::from(w), sum);
            }
            for path in available() {
                let mut got = vec![7u16; blocks * PQ4_BLOCK];
                (path.pq4_scan)(&codes, m_pad, &lut, &mut got);
                assert_eq!(got, want, "{} m_pad={m_pad} blocks={blocks}", path.name);
            }
        }
    }

    /// Several tables at once give each table's own scan, on every path.
    #[test]
    fn every_multi_table_pq4_scan_equals_one_scan_per_table() {
        let mut rng = StdRng::seed_from_u64(16);
        for trial in 0..200 {
            let m_pad = PQ4_M_ALIGN * (1 + rng.next_u32() as usize % 40);
            let blocks = rng.next_u32() as usize % 5;
            let q = 1 + trial % PQ4_MAX_TABLES;
            let max_entry = (u16::MAX as usize / m_pad).min(255) as u32;
            let luts: Vec<u8> = (0..q * m_pad * 16)
                .map(|_| (rng.next_u32() % (max_entry + 1)) as u8)
                .collect();
            let codes: Vec<u8> = (0..blocks * m_pad * 16)
                .map(|_| rng.next_u32() as u8)
                .collect();
            let rows = blocks * PQ4_BLOCK;
            let mut want = vec![0u16; q * rows];
            let tables: Vec<&[u8]> = luts.chunks_exact(m_pad * 16).collect();
            for (lut, out) in tables.iter().zip(want.chunks_exact_mut(rows.max(1))) {
                scalar::pq4_scan(&codes, m_pad, lut, out);
            }
            for path in available() {
                let mut got = vec![7u16; q * rows];
                (path.pq4_scan_multi)(&codes, m_pad, &tables, &mut got);
                assert_eq!(
                    got, want,
                    "{} q={q} m_pad={m_pad} blocks={blocks}",
                    path.name
                );
            }
        }
    }

    #[test]
    fn every_table_quantization_path_equals_the_scalar_twin_exactly() {
        let mut rng = StdRng::seed_from_u64(9);
        for trial in 0..200 {
            let m = 1 + rng.next_u32() as usize % 200;
            let m_pad = m.div_ceil(PQ4_M_ALIGN) * PQ4_M_ALIGN;
            let scale = [1e-3, 1.0, 1e3][trial % 3];
            let lut = random_vec(&mut rng, m * 16, scale);
            let mut want = vec![0u8; m_pad * 16];
            let want_parts = scalar::pq4_quantize_table(&lut, &mut want);
            // Every entry lands within half a step of its float value.
            let (_, s) = want_parts;
            for j in 0..m {
                let lo = (0..16)
                    .map(|c| lut[j * 16 + c])
                    .fold(f32::INFINITY, f32::min);
                for c in 0..16 {
                    let exact = (lut[j * 16 + c] - lo) * s;
                    assert!((f32::from(want[j * 16 + c]) - exact).abs() <= 0.5 + 1e-3);
                }
            }
            for path in available() {
                let mut got = vec![9u8; m_pad * 16];
                let parts = (path.pq4_quantize_table)(&lut, &mut got);
                assert_eq!(got, want, "{} m={m}", path.name);
                assert_eq!(parts.0.to_bits(), want_parts.0.to_bits(), "{}", path.name);
                assert_eq!(parts.1.to_bits(), want_parts.1.to_bits(), "{}", path.name);
            }
        }
    }

    #[test]
    fn cosine_distance_of_parallel_and_orthogonal() {
        assert!(cosine_distance(&[1.0, 0.0], &[2.0, 0.0]).abs() < 1e-6);
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 3.0]) - 1.0).abs() < 1e-6);
        assert!((cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-6);
    }
}
