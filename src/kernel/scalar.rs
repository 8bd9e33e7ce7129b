//! The portable scalar twin of every SIMD path, and the reference the property tests use.
//!
//! Eight independent accumulators keep the loop free of one long dependency chain; the order
//! of additions differs from the SIMD paths, hence the documented tolerance in `kernel`.

use super::SQ8_LANES;

/// Squared Euclidean distance.
pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        for j in 0..8 {
            let d = a[c * 8 + j] - b[c * 8 + j];
            acc[j] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// Inner product.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += a[c * 8 + j] * b[c * 8 + j];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..n {
        sum += a[i] * b[i];
    }
    sum
}

/// Squared L2 from `q` to each row of `block` (rows of `q.len()` floats) into `out`.
pub(crate) fn l2sq_block(q: &[f32], block: &[f32], out: &mut [f32]) {
    for (row, o) in block.chunks_exact(q.len()).zip(out.iter_mut()) {
        *o = l2sq(q, row);
    }
}

/// Inner product of `q` with each row of `block` into `out`.
pub(crate) fn dot_block(q: &[f32], block: &[f32], out: &mut [f32]) {
    for (row, o) in block.chunks_exact(q.len()).zip(out.iter_mut()) {
        *o = dot(q, row);
    }
}

/// Inner products of 8 points with every center of a panel layout (see `CenterPanels`).
pub(crate) fn dots_tile8(points: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let k_pad = panels.len() / dim.max(1);
    for i in 0..8 {
        let x = &points[i * dim..(i + 1) * dim];
        for j in 0..k_pad {
            let (p, lane) = (j / 16, j % 16);
            let panel = &panels[p * 16 * dim..(p + 1) * 16 * dim];
            let mut acc = 0.0f32;
            for (d, &v) in x.iter().enumerate() {
                acc += v * panel[d * 16 + lane];
            }
            out[i * k_pad + j] = acc;
        }
    }
}

/// One point's inner products with every center of a panel layout, each pair computed as
/// [`dots_tile8`] computes it (so a point alone and in a tile get the same bits).
pub(crate) fn dots_one(x: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let k_pad = panels.len() / dim.max(1);
    for (j, o) in out.iter_mut().enumerate().take(k_pad) {
        let (p, lane) = (j / 16, j % 16);
        let panel = &panels[p * 16 * dim..(p + 1) * 16 * dim];
        let mut acc = 0.0f32;
        for (d, &v) in x.iter().enumerate().take(dim) {
            acc += v * panel[d * 16 + lane];
        }
        *o = acc;
    }
}

/// Squared norm (test helper).
#[cfg(test)]
pub(crate) fn dot_self(a: &[f32]) -> f32 {
    dot(a, a)
}

/// 4-bit PQ fast-scan over blocks of 32 codes (layout in `kernel::pq4_layout`): for each row,
/// the sum of its subquantizers' 8-bit table entries, in 16-bit integers. The SIMD paths
/// compute the same integer sums, so they must agree exactly.
pub(crate) fn pq4_scan(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    super::check_pq4_args(codes, m_pad, lut, out);
    let block_len = m_pad * 16;
    for (block, sums) in codes.chunks_exact(block_len).zip(out.chunks_exact_mut(32)) {
        sums.fill(0);
        for (j, bytes) in block.chunks_exact(16).enumerate() {
            let table = &lut[j * 16..(j + 1) * 16];
            for (t, &b) in bytes.iter().enumerate() {
                sums[t] = sums[t].wrapping_add(u16::from(table[usize::from(b & 15)]));
                sums[t + 16] = sums[t + 16].wrapping_add(u16::from(table[usize::from(b >> 4)]));
            }
        }
    }
}

/// [`pq4_scan`] of one list against several tables (see `kernel::pq4_scan_multi`): one scan
/// per table.
pub(crate) fn pq4_scan_multi(codes: &[u8], m_pad: usize, luts: &[&[u8]], out: &mut [u16]) {
    let q = super::check_pq4_multi_args(codes, m_pad, luts, out);
    let rows = out.len() / q;
    for (lut, out) in luts.iter().zip(out.chunks_exact_mut(rows.max(1))) {
        pq4_scan(codes, m_pad, lut, out);
    }
}

/// Quantizes a PQ table to 8 bits (see `kernel::pq4_quantize_table`). The SIMD paths do the
/// same float operations in the same order per entry (min and max are order-free, the sums run
/// in subquantizer order), so every path gives identical bytes.
pub(crate) fn pq4_quantize_table(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    super::check_pq4_table_args(lut, out);
    with_mins(lut.len() / 16, |mins| quantize_with(lut, out, mins))
}

fn quantize_with(lut: &[f32], out: &mut [u8], mins: &mut [f32]) -> (f32, f32) {
    let (scale, max_entry) = pq4_table_ranges(lut, out.len() / 16, mins, |t| {
        t.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (if v < lo { v } else { lo }, if v > hi { v } else { hi })
            })
    });
    out.fill(0);
    for ((table, &lo), o) in lut
        .chunks_exact(16)
        .zip(mins.iter())
        .zip(out.chunks_exact_mut(16))
    {
        for (&v, o) in table.iter().zip(o) {
            let x = (v - lo) * scale;
            let x = if x < 0.0 {
                0.0
            } else if x > max_entry {
                max_entry
            } else {
                x
            };
            // Round to nearest even by adding 2^23: the sum's low mantissa bits are the
            // rounded integer (0..=255), as the SIMD conversions round.
            *o = (x + 8_388_608.0f32).to_bits() as u8;
        }
    }
    (pq4_sum(mins), scale)
}

/// The per-subquantizer minima (into `mins`, one per subquantizer), the common scale and the
/// largest entry, from a function that gives the (min, max) of one subquantizer's 16
/// entries; shared by every path.
#[inline(always)]
pub(crate) fn pq4_table_ranges(
    lut: &[f32],
    m_pad: usize,
    mins: &mut [f32],
    min_max: impl Fn(&[f32]) -> (f32, f32),
) -> (f32, f32) {
    let max_entry = (usize::from(u16::MAX) / m_pad.max(1)).min(255) as f32;
    let mut span = 0.0f32;
    for (table, min) in lut.chunks_exact(16).zip(mins.iter_mut()) {
        let (lo, hi) = min_max(table);
        *min = lo;
        let s = hi - lo;
        span = if s > span { s } else { span };
    }
    let scale = if span > 0.0 && span.is_finite() {
        max_entry / span
    } else {
        1.0
    };
    (scale, max_entry)
}

/// Runs `f` with a zeroed scratch slice of `m` floats (on the stack when small: the table
/// quantization runs once per probed list, where a heap allocation shows).
#[inline(always)]
pub(crate) fn with_mins<T>(m: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    let mut stack = [0.0f32; 256];
    if m <= stack.len() {
        f(&mut stack[..m])
    } else {
        f(&mut vec![0.0f32; m])
    }
}

/// The sum of the minima, in subquantizer order.
pub(crate) fn pq4_sum(mins: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for lo in mins {
        sum += lo;
    }
    sum
}

/// Adds the 16 lanes of the SQ8 kernels pairwise: lane `i` gets lane `i + 8`, then `i + 4`,
/// `i + 2` and `i + 1` (the order every SQ8 path uses).
#[inline]
pub(crate) fn sq8_reduce(mut lanes: [f32; SQ8_LANES]) -> f32 {
    for half in [8, 4, 2, 1] {
        for i in 0..half {
            lanes[i] += lanes[i + half];
        }
    }
    lanes[0]
}

/// Accumulates SQ8 L2 terms of dimensions `first..` into `lanes` (dimension `d` into lane
/// `d % 16`): `diff = target - code * scale` and `lane += diff * diff`, each fused.
#[inline]
pub(crate) fn sq8_l2_lanes(
    lanes: &mut [f32; SQ8_LANES],
    first: usize,
    code: &[u8],
    target: &[f32],
    scale: &[f32],
) {
    for (i, ((&c, &t), &s)) in code.iter().zip(target).zip(scale).enumerate() {
        let lane = &mut lanes[(first + i) % SQ8_LANES];
        let diff = (-f32::from(c)).mul_add(s, t);
        *lane = diff.mul_add(diff, *lane);
    }
}

/// Accumulates SQ8 inner-product terms (`lane += code * weight`, fused) of dimensions
/// `first..` into `lanes` (dimension `d` into lane `d % 16`).
#[inline]
pub(crate) fn sq8_dot_lanes(
    lanes: &mut [f32; SQ8_LANES],
    first: usize,
    code: &[u8],
    weight: &[f32],
) {
    for (i, (&c, &w)) in code.iter().zip(weight).enumerate() {
        let lane = &mut lanes[(first + i) % SQ8_LANES];
        *lane = f32::from(c).mul_add(w, *lane);
    }
}

/// SQ8 L2 of each row of `codes` (`target.len()` bytes each), see [`super::sq8_l2_block`].
pub(crate) fn sq8_l2_block(codes: &[u8], target: &[f32], scale: &[f32], out: &mut [f32]) {
    for (code, o) in codes.chunks_exact(target.len().max(1)).zip(out) {
        let mut lanes = [0.0; SQ8_LANES];
        sq8_l2_lanes(&mut lanes, 0, code, target, scale);
        *o = sq8_reduce(lanes);
    }
}

/// SQ8 inner product of each row of `codes` with `weight`, see [`super::sq8_dot_block`].
pub(crate) fn sq8_dot_block(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    for (code, o) in codes.chunks_exact(weight.len().max(1)).zip(out) {
        let mut lanes = [0.0; SQ8_LANES];
        sq8_dot_lanes(&mut lanes, 0, code, weight);
        *o = sq8_reduce(lanes);
    }
}

/// 6-bit unpacking, see [`super::unpack6`]: eight values from each six bytes.
pub(crate) fn unpack6(packed: &[u8], out: &mut [u8]) {
    let whole = (out.len() / 8).min(packed.len() / 6);
    let (groups, tail) = out.split_at_mut(whole * 8);
    for (values, six) in groups.chunks_exact_mut(8).zip(packed.chunks_exact(6)) {
        let word = u64::from_le_bytes([six[0], six[1], six[2], six[3], six[4], six[5], 0, 0]);
        spread6(word, values);
    }
    unpack6_tail(&packed[whole * 6..], tail);
}

/// Values from the bit stream `packed` into `out`, eight at a time from zero-padded words
/// (the part of [`unpack6`] past its whole groups, shared with the SIMD paths).
pub(crate) fn unpack6_tail(packed: &[u8], out: &mut [u8]) {
    for (g, values) in out.chunks_mut(8).enumerate() {
        let mut word = [0u8; 8];
        let rest = packed.get(g * 6..).unwrap_or_default();
        let n = rest.len().min(6);
        word[..n].copy_from_slice(&rest[..n]);
        spread6(u64::from_le_bytes(word), values);
    }
}

/// The 6-bit fields of `word`, lowest first, into `values` (at most 8).
fn spread6(word: u64, values: &mut [u8]) {
    for (j, v) in values.iter_mut().enumerate() {
        *v = ((word >> (6 * j)) & 63) as u8;
    }
}
