//! AVX2+FMA and AVX-512F paths. Each `unsafe fn` requires its CPU features; the safe
//! wrappers at the bottom are only installed in the dispatch table after runtime detection.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::{SQ8_LANES, scalar};

/// Horizontal sum of an AVX register.
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps::<1>(v);
    let lo = _mm256_castps256_ps128(v);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
fn l2_step256(x: __m256, y: __m256, acc: __m256) -> __m256 {
    let d = _mm256_sub_ps(x, y);
    _mm256_fmadd_ps(d, d, acc)
}

#[target_feature(enable = "avx2,fma")]
fn dot_step256(x: __m256, y: __m256, acc: __m256) -> __m256 {
    _mm256_fmadd_ps(x, y, acc)
}

fn l2_scalar(x: f32, y: f32) -> f32 {
    (x - y) * (x - y)
}

fn dot_scalar(x: f32, y: f32) -> f32 {
    x * y
}

// The pair kernels, spelled out (a macro per metric keeps the two loops identical).
macro_rules! define_avx2 {
    ($name:ident, $block:ident, $step:ident, $scalar:ident) => {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $block(q: &[f32], block: &[f32], out: &mut [f32]) {
            for (row, o) in block.chunks_exact(q.len()).zip(out.iter_mut()) {
                // SAFETY: same features as this function.
                *o = unsafe { $name(q, row) };
            }
        }

        #[target_feature(enable = "avx2,fma")]
        unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            // SAFETY: every load reads 8 floats at offsets i..i+8 <= n, inside both slices.
            unsafe {
                while i + 16 <= n {
                    acc0 = $step(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                    acc1 = $step(
                        _mm256_loadu_ps(pa.add(i + 8)),
                        _mm256_loadu_ps(pb.add(i + 8)),
                        acc1,
                    );
                    i += 16;
                }
                if i + 8 <= n {
                    acc0 = $step(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                    i += 8;
                }
            }
            let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                sum += $scalar(a[i], b[i]);
                i += 1;
            }
            sum
        }
    };
}

define_avx2!(l2sq_avx2_impl, l2sq_block_avx2_impl, l2_step256, l2_scalar);
define_avx2!(dot_avx2_impl, dot_block_avx2_impl, dot_step256, dot_scalar);

#[target_feature(enable = "avx512f")]
fn l2_step512(x: __m512, y: __m512, acc: __m512) -> __m512 {
    let d = _mm512_sub_ps(x, y);
    _mm512_fmadd_ps(d, d, acc)
}

#[target_feature(enable = "avx512f")]
fn dot_step512(x: __m512, y: __m512, acc: __m512) -> __m512 {
    _mm512_fmadd_ps(x, y, acc)
}

macro_rules! define_avx512 {
    ($pair:ident, $block:ident, $cached:ident, $step:ident) => {
        /// One pair; the tail is handled with a masked load, so there is no scalar loop.
        #[target_feature(enable = "avx512f")]
        unsafe fn $pair(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut i = 0;
            // SAFETY: full loads read 16 floats at i..i+16 <= n; the masked load reads only
            // the n - i < 16 lanes that lie inside both slices.
            unsafe {
                while i + 32 <= n {
                    acc0 = $step(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                    acc1 = $step(
                        _mm512_loadu_ps(pa.add(i + 16)),
                        _mm512_loadu_ps(pb.add(i + 16)),
                        acc1,
                    );
                    i += 32;
                }
                if i + 16 <= n {
                    acc0 = $step(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                    i += 16;
                }
                if i < n {
                    let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
                    let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
                    let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
                    acc1 = $step(x, y, acc1);
                }
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        }

        /// `q` against each row in turn, for rows read from memory: on an AVX-512 EPYC,
        /// per-query list scans ran 1.5-1.8x faster so than four rows at once (the cached
        /// variant), with or without software prefetching of the next four rows.
        #[target_feature(enable = "avx512f")]
        unsafe fn $block(q: &[f32], block: &[f32], out: &mut [f32]) {
            for (row, o) in block.chunks_exact(q.len().max(1)).zip(out.iter_mut()) {
                // SAFETY: same features as this function.
                *o = unsafe { $pair(q, row) };
            }
        }

        /// `q` against four rows at once (the query loaded once per step for four), for
        /// rows already in cache: a batch's later queries of a list scan it faster so than
        /// row by row. The same additions in the same order as the pair kernel: the same
        /// bits.
        #[target_feature(enable = "avx512f")]
        unsafe fn $cached(q: &[f32], block: &[f32], out: &mut [f32]) {
            let d = q.len();
            let rows = (block.len() / d.max(1)).min(out.len());
            let full = d / 16 * 16;
            let mask: __mmask16 = ((1u32 << (d - full)) - 1) as u16;
            let pq = q.as_ptr();
            let mut r = 0;
            while r + 4 <= rows {
                let p = block[r * d..].as_ptr();
                // Two accumulators per row: eight independent FMA chains hide FMA latency.
                let mut acc = [_mm512_setzero_ps(); 4];
                let mut acc2 = [_mm512_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY: rows r..r+4 lie inside `block` (r + 4 <= rows); loads read lanes
                // i..i+16 <= d (or i+16..i+32 <= d) of each row, the masked load only lanes
                // below d.
                unsafe {
                    while i + 32 <= full {
                        let x = _mm512_loadu_ps(pq.add(i));
                        let y = _mm512_loadu_ps(pq.add(i + 16));
                        for j in 0..4 {
                            acc[j] = $step(x, _mm512_loadu_ps(p.add(j * d + i)), acc[j]);
                            acc2[j] = $step(y, _mm512_loadu_ps(p.add(j * d + i + 16)), acc2[j]);
                        }
                        i += 32;
                    }
                    if i < full {
                        let x = _mm512_loadu_ps(pq.add(i));
                        for (j, a) in acc.iter_mut().enumerate() {
                            *a = $step(x, _mm512_loadu_ps(p.add(j * d + i)), *a);
                        }
                        i += 16;
                    }
                    // The tail goes to the second accumulator, as in the pair kernel.
                    if mask != 0 {
                        let x = _mm512_maskz_loadu_ps(mask, pq.add(i));
                        for (j, a) in acc2.iter_mut().enumerate() {
                            *a = $step(x, _mm512_maskz_loadu_ps(mask, p.add(j * d + i)), *a);
                        }
                    }
                }
                for j in 0..4 {
                    out[r + j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j], acc2[j]));
                }
                r += 4;
            }
            while r < rows {
                // SAFETY: same features as this function.
                out[r] = unsafe { $pair(q, &block[r * d..(r + 1) * d]) };
                r += 1;
            }
        }
    };
}

define_avx512!(
    l2sq_avx512_impl,
    l2sq_block_avx512_impl,
    l2sq_block_cached_avx512_impl,
    l2_step512
);
define_avx512!(
    dot_avx512_impl,
    dot_block_avx512_impl,
    dot_block_cached_avx512_impl,
    dot_step512
);

// Safe wrappers, installed in the dispatch table only after detection.

/// AVX2+FMA squared L2.
pub(super) fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only reachable through the dispatch table, which installs it after
    // `is_x86_feature_detected!("avx2")` and `("fma")` both returned true.
    unsafe { l2sq_avx2_impl(a, b) }
}

/// AVX2+FMA inner product.
pub(super) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as for `l2sq_avx2`.
    unsafe { dot_avx2_impl(a, b) }
}

/// AVX2+FMA squared L2 of a query against a block of rows.
pub(super) fn l2sq_block_avx2(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx2`.
    unsafe { l2sq_block_avx2_impl(q, block, out) }
}

/// AVX2+FMA inner products of a query with a block of rows.
pub(super) fn dot_block_avx2(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx2`.
    unsafe { dot_block_avx2_impl(q, block, out) }
}

/// AVX-512F squared L2.
pub(super) fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only installed after `is_x86_feature_detected!("avx512f")` returned true.
    unsafe { l2sq_avx512_impl(a, b) }
}

/// AVX-512F inner product.
pub(super) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { dot_avx512_impl(a, b) }
}

/// AVX-512F squared L2 of a query against a block of rows.
pub(super) fn l2sq_block_avx512(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { l2sq_block_avx512_impl(q, block, out) }
}

/// AVX-512F inner products of a query with a block of rows.
pub(super) fn dot_block_avx512(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { dot_block_avx512_impl(q, block, out) }
}

/// AVX-512F squared L2 of a query against a block of rows in cache.
pub(super) fn l2sq_block_cached_avx512(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { l2sq_block_cached_avx512_impl(q, block, out) }
}

/// AVX-512F inner products of a query with a block of rows in cache.
pub(super) fn dot_block_cached_avx512(q: &[f32], block: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { dot_block_cached_avx512_impl(q, block, out) }
}

/// Inner products of a tile of 8 points (row-major, `dim` each) with every center of
/// `panels` (see `kernel::CenterPanels`: panels of 16 centers, coordinate-major), written to
/// `out[i * k_pad + center]`. Two panels at a time: 16 accumulators, per coordinate 2 loads,
/// 8 broadcasts and 16 FMAs.
#[target_feature(enable = "avx512f")]
unsafe fn dots_tile8_avx512_impl(points: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let n_panels = panels.len() / (16 * dim.max(1));
    let k_pad = n_panels * 16;
    assert!(points.len() >= 8 * dim && out.len() >= 8 * k_pad && n_panels.is_multiple_of(2));
    let px = points.as_ptr();
    let mut p = 0;
    while p < n_panels {
        let c0p = panels[p * 16 * dim..].as_ptr();
        let c1p = panels[(p + 1) * 16 * dim..].as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        for d in 0..dim {
            // SAFETY: panels p and p+1 hold 16 * dim floats each (p + 1 < n_panels), so
            // offsets d * 16 .. d * 16 + 16 are inside; point i's coordinate d is at
            // i * dim + d < 8 * dim <= points.len() (asserted above).
            unsafe {
                let c0 = _mm512_loadu_ps(c0p.add(d * 16));
                let c1 = _mm512_loadu_ps(c1p.add(d * 16));
                for (i, a) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*px.add(i * dim + d));
                    a[0] = _mm512_fmadd_ps(x, c0, a[0]);
                    a[1] = _mm512_fmadd_ps(x, c1, a[1]);
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let o = &mut out[i * k_pad + p * 16..i * k_pad + p * 16 + 32];
            // SAFETY: `o` is 32 floats long: two unaligned 16-float stores fit.
            unsafe {
                _mm512_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm512_storeu_ps(o.as_mut_ptr().add(16), a[1]);
            }
        }
        p += 2;
    }
}

/// One point against every panel, each pair's chain of fused multiply-adds as in
/// [`dots_tile8_avx512_impl`] (bit-identical), eight panels at a time so that eight
/// independent chains overlap.
#[target_feature(enable = "avx512f")]
unsafe fn dots_one_avx512_impl(x: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let n_panels = panels.len() / (16 * dim.max(1));
    assert!(x.len() >= dim && out.len() >= n_panels * 16);
    let mut p = 0;
    while p < n_panels {
        let group = (n_panels - p).min(8);
        let base = panels[p * 16 * dim..].as_ptr();
        let mut acc = [_mm512_setzero_ps(); 8];
        for (d, &v) in x.iter().enumerate().take(dim) {
            let xb = _mm512_set1_ps(v);
            for (g, a) in acc.iter_mut().enumerate().take(group) {
                // SAFETY: panel p + g < n_panels holds 16 * dim floats from
                // (p + g) * 16 * dim; offset d * 16 + 16 <= 16 * dim.
                *a = _mm512_fmadd_ps(
                    xb,
                    unsafe { _mm512_loadu_ps(base.add(g * 16 * dim + d * 16)) },
                    *a,
                );
            }
        }
        for (g, a) in acc.iter().enumerate().take(group) {
            let o = &mut out[(p + g) * 16..(p + g) * 16 + 16];
            // SAFETY: `o` is 16 floats long.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
        }
        p += group;
    }
}

/// AVX-512F one-point twin of the tile.
pub(super) fn dots_one_avx512(x: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { dots_one_avx512_impl(x, dim, panels, out) }
}

/// One point against every panel, each pair's chain of fused multiply-adds as in
/// [`dots_tile8_avx2_impl`] (bit-identical), four panels (eight registers) at a time so that
/// eight independent chains overlap.
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_one_avx2_impl(x: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let n_panels = panels.len() / (16 * dim.max(1));
    assert!(x.len() >= dim && out.len() >= n_panels * 16);
    let mut p = 0;
    while p < n_panels {
        let group = (n_panels - p).min(4);
        let base = panels[p * 16 * dim..].as_ptr();
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        for (d, &v) in x.iter().enumerate().take(dim) {
            let xb = _mm256_set1_ps(v);
            for (g, a) in acc.iter_mut().enumerate().take(group) {
                // SAFETY: panel p + g < n_panels holds 16 * dim floats from
                // (p + g) * 16 * dim; offsets d * 16 .. d * 16 + 16 <= 16 * dim.
                unsafe {
                    let at = base.add(g * 16 * dim + d * 16);
                    a[0] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(at), a[0]);
                    a[1] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(at.add(8)), a[1]);
                }
            }
        }
        for (g, a) in acc.iter().enumerate().take(group) {
            let o = &mut out[(p + g) * 16..(p + g) * 16 + 16];
            // SAFETY: `o` is 16 floats long: two unaligned 8-float stores fit.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), a[1]);
            }
        }
        p += group;
    }
}

/// AVX2+FMA one-point twin of the tile.
pub(super) fn dots_one_avx2(x: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx2`.
    unsafe { dots_one_avx2_impl(x, dim, panels, out) }
}

/// As the AVX-512 tile, with 256-bit registers: 4 points x 16 centers per pass (8
/// accumulators), run twice for the 8 points.
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_tile8_avx2_impl(points: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let n_panels = panels.len() / (16 * dim.max(1));
    let k_pad = n_panels * 16;
    assert!(points.len() >= 8 * dim && out.len() >= 8 * k_pad);
    let px = points.as_ptr();
    for half in 0..2 {
        for p in 0..n_panels {
            let cp = panels[p * 16 * dim..].as_ptr();
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            for d in 0..dim {
                // SAFETY: panel p holds 16 * dim floats; point (half * 4 + i) has its
                // coordinate d at an offset below 8 * dim <= points.len() (asserted).
                unsafe {
                    let c0 = _mm256_loadu_ps(cp.add(d * 16));
                    let c1 = _mm256_loadu_ps(cp.add(d * 16 + 8));
                    for (i, a) in acc.iter_mut().enumerate() {
                        let x = _mm256_set1_ps(*px.add((half * 4 + i) * dim + d));
                        a[0] = _mm256_fmadd_ps(x, c0, a[0]);
                        a[1] = _mm256_fmadd_ps(x, c1, a[1]);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let row = half * 4 + i;
                let o = &mut out[row * k_pad + p * 16..row * k_pad + p * 16 + 16];
                // SAFETY: `o` is 16 floats long: two unaligned 8-float stores fit.
                unsafe {
                    _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(o.as_mut_ptr().add(8), a[1]);
                }
            }
        }
    }
}

/// AVX-512F tile of point-center inner products.
pub(super) fn dots_tile8_avx512(points: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx512`.
    unsafe { dots_tile8_avx512_impl(points, dim, panels, out) }
}

/// AVX2+FMA tile of point-center inner products.
pub(super) fn dots_tile8_avx2(points: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    // SAFETY: as for `l2sq_avx2`.
    unsafe { dots_tile8_avx2_impl(points, dim, panels, out) }
}

/// AVX2 4-bit PQ fast-scan: two subquantizers per 256-bit register (one per 128-bit lane,
/// since `vpshufb` looks up within lanes). The looked-up bytes are added as 16-bit lanes
/// without widening: `even` gathers `row 2i + 256 * row 2i+1` and `odd` (the same shifted
/// right by 8) row `2i+1` alone, so `even - 256 * odd` is row `2i`'s sum. Everything is
/// exact modulo 2^16, and no row's true sum exceeds that (the caller's contract).
#[target_feature(enable = "avx2")]
unsafe fn pq4_scan_avx2_impl(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    let block_len = m_pad * 16;
    let low_nibbles = _mm256_set1_epi8(0x0f);
    for (block, sums) in codes.chunks_exact(block_len).zip(out.chunks_exact_mut(32)) {
        // [rows 0-15 even, rows 0-15 odd, rows 16-31 even, rows 16-31 odd]
        let mut acc = [_mm256_setzero_si256(); 4];
        for j in (0..m_pad).step_by(2) {
            // SAFETY: j + 2 <= m_pad (a multiple of 4), so 32 bytes from j * 16 lie inside the
            // block (m_pad * 16 bytes) and inside the table (m_pad * 16 bytes, checked).
            let (c, l) = unsafe {
                (
                    _mm256_loadu_si256(block.as_ptr().add(j * 16).cast()),
                    _mm256_loadu_si256(lut.as_ptr().add(j * 16).cast()),
                )
            };
            let lo = _mm256_and_si256(c, low_nibbles);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), low_nibbles);
            let rows_lo = _mm256_shuffle_epi8(l, lo);
            let rows_hi = _mm256_shuffle_epi8(l, hi);
            acc[0] = _mm256_add_epi16(acc[0], rows_lo);
            acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16::<8>(rows_lo));
            acc[2] = _mm256_add_epi16(acc[2], rows_hi);
            acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16::<8>(rows_hi));
        }
        let lanes =
            |a: __m256i| _mm_add_epi16(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
        store_pq4_sums(
            sums,
            [lanes(acc[0]), lanes(acc[1]), lanes(acc[2]), lanes(acc[3])],
        );
    }
}

/// Writes one block's 32 sums from the even/odd accumulators (see `pq4_scan_avx2_impl`).
#[target_feature(enable = "avx2")]
fn store_pq4_sums(sums: &mut [u16], acc: [__m128i; 4]) {
    for (half, chunk) in sums.chunks_exact_mut(16).enumerate() {
        let (mixed, odd) = (acc[2 * half], acc[2 * half + 1]);
        let even = _mm_sub_epi16(mixed, _mm_slli_epi16::<8>(odd));
        let first = _mm_unpacklo_epi16(even, odd);
        let second = _mm_unpackhi_epi16(even, odd);
        // SAFETY: `chunk` is 16 u16 = 32 bytes: two 16-byte stores.
        unsafe {
            _mm_storeu_si128(chunk.as_mut_ptr().cast(), first);
            _mm_storeu_si128(chunk.as_mut_ptr().add(8).cast(), second);
        }
    }
}

/// AVX-512BW 4-bit PQ fast-scan: as the AVX2 path with four subquantizers per register, two
/// blocks at a time (each table load serves both, and their additions run side by side).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pq4_scan_avx512_impl(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    let block_len = m_pad * 16;
    let pairs = codes.len() / block_len / 2;
    let (pair_codes, rest_codes) = codes.split_at(pairs * 2 * block_len);
    let (pair_out, rest_out) = out.split_at_mut(pairs * 64);
    for (blocks, sums) in pair_codes
        .chunks_exact(2 * block_len)
        .zip(pair_out.chunks_exact_mut(64))
    {
        // SAFETY: same features as this function; two whole blocks and their 64 sums.
        unsafe { pq4_scan_avx512_blocks::<2>(blocks, m_pad, lut, sums) };
    }
    for (block, sums) in rest_codes
        .chunks_exact(block_len)
        .zip(rest_out.chunks_exact_mut(32))
    {
        // SAFETY: as above, one block.
        unsafe { pq4_scan_avx512_blocks::<1>(block, m_pad, lut, sums) };
    }
}

/// `B` consecutive blocks of [`pq4_scan_avx512_impl`] (`blocks` is `B * m_pad * 16` bytes,
/// `sums` `B * 32`; `lut` `m_pad * 16` bytes, `m_pad` a multiple of 4).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pq4_scan_avx512_blocks<const B: usize>(
    blocks: &[u8],
    m_pad: usize,
    lut: &[u8],
    sums: &mut [u16],
) {
    let block_len = m_pad * 16;
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let mut acc = [[_mm512_setzero_si512(); 4]; B];
    for j in (0..m_pad).step_by(4) {
        // SAFETY: j + 4 <= m_pad (a multiple of 4): 64 bytes from j * 16 lie inside the table,
        // m_pad * 16 bytes (checked by the caller).
        let l = unsafe { _mm512_loadu_si512(lut.as_ptr().add(j * 16).cast()) };
        for (b, acc) in acc.iter_mut().enumerate() {
            // SAFETY: likewise inside block `b` of `blocks`, B * m_pad * 16 bytes.
            let c =
                unsafe { _mm512_loadu_si512(blocks.as_ptr().add(b * block_len + j * 16).cast()) };
            let lo = _mm512_and_si512(c, low_nibbles);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), low_nibbles);
            let rows_lo = _mm512_shuffle_epi8(l, lo);
            let rows_hi = _mm512_shuffle_epi8(l, hi);
            acc[0] = _mm512_add_epi16(acc[0], rows_lo);
            acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16::<8>(rows_lo));
            acc[2] = _mm512_add_epi16(acc[2], rows_hi);
            acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16::<8>(rows_hi));
        }
    }
    let lanes = |a: __m512i| {
        let halves = _mm256_add_epi16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64::<1>(a));
        _mm_add_epi16(
            _mm256_castsi256_si128(halves),
            _mm256_extracti128_si256::<1>(halves),
        )
    };
    for (acc, sums) in acc.iter().zip(sums.chunks_exact_mut(32)) {
        store_pq4_sums(
            sums,
            [lanes(acc[0]), lanes(acc[1]), lanes(acc[2]), lanes(acc[3])],
        );
    }
}

/// One block of [`pq4_scan_avx512_impl`] against `Q` tables at once (`luts`: `Q` tables of
/// `m_pad * 16` bytes, `sums` `Q` runs of 32): each load of the block's codes and each split
/// into nibbles serves all `Q` queries, and their additions run side by side.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pq4_scan_avx512_tables<const Q: usize>(
    block: &[u8],
    m_pad: usize,
    luts: &[&[u8]; Q],
    sums: &mut [[u16; 32]; Q],
) {
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let mut acc = [[_mm512_setzero_si512(); 4]; Q];
    for j in (0..m_pad).step_by(4) {
        // SAFETY: j + 4 <= m_pad (a multiple of 4): 64 bytes from j * 16 lie inside the block,
        // m_pad * 16 bytes (checked by the caller).
        let c = unsafe { _mm512_loadu_si512(block.as_ptr().add(j * 16).cast()) };
        let lo = _mm512_and_si512(c, low_nibbles);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), low_nibbles);
        for (lut, acc) in luts.iter().zip(acc.iter_mut()) {
            // SAFETY: likewise inside each table, m_pad * 16 bytes (checked by the caller).
            let l = unsafe { _mm512_loadu_si512(lut.as_ptr().add(j * 16).cast()) };
            let rows_lo = _mm512_shuffle_epi8(l, lo);
            let rows_hi = _mm512_shuffle_epi8(l, hi);
            acc[0] = _mm512_add_epi16(acc[0], rows_lo);
            acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16::<8>(rows_lo));
            acc[2] = _mm512_add_epi16(acc[2], rows_hi);
            acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16::<8>(rows_hi));
        }
    }
    let lanes = |a: __m512i| {
        let halves = _mm256_add_epi16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64::<1>(a));
        _mm_add_epi16(
            _mm256_castsi256_si128(halves),
            _mm256_extracti128_si256::<1>(halves),
        )
    };
    for (acc, sums) in acc.iter().zip(sums.iter_mut()) {
        store_pq4_sums(
            sums,
            [lanes(acc[0]), lanes(acc[1]), lanes(acc[2]), lanes(acc[3])],
        );
    }
}

/// [`pq4_scan_avx512_tables`] over every block of `codes`, for `Q` tables.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pq4_scan_multi_avx512_impl<const Q: usize>(
    codes: &[u8],
    m_pad: usize,
    luts: &[&[u8]],
    out: &mut [u16],
) {
    let Ok(luts) = <&[&[u8]; Q]>::try_from(luts) else {
        return;
    };
    let block_len = m_pad * 16;
    let rows = codes.len() / block_len * 32;
    let mut sums = [[0u16; 32]; Q];
    for (b, block) in codes.chunks_exact(block_len).enumerate() {
        // SAFETY: same features as this function; one whole block, `Q` tables (checked).
        unsafe { pq4_scan_avx512_tables::<Q>(block, m_pad, luts, &mut sums) };
        for (q, s) in sums.iter().enumerate() {
            out[q * rows + b * 32..q * rows + (b + 1) * 32].copy_from_slice(s);
        }
    }
}

/// AVX-512BW 4-bit PQ fast-scan of one list against up to 4 queries' tables at once (see
/// `kernel::pq4_scan_multi`).
pub(super) fn pq4_scan_multi_avx512(codes: &[u8], m_pad: usize, luts: &[&[u8]], out: &mut [u16]) {
    let q = super::check_pq4_multi_args(codes, m_pad, luts, out);
    // SAFETY: installed only after AVX-512F and AVX-512BW were detected; layout checked.
    unsafe {
        match q {
            1 => pq4_scan_multi_avx512_impl::<1>(codes, m_pad, luts, out),
            2 => pq4_scan_multi_avx512_impl::<2>(codes, m_pad, luts, out),
            3 => pq4_scan_multi_avx512_impl::<3>(codes, m_pad, luts, out),
            _ => pq4_scan_multi_avx512_impl::<4>(codes, m_pad, luts, out),
        }
    }
}

/// AVX2 4-bit PQ fast-scan against several tables: one scan per table.
pub(super) fn pq4_scan_multi_avx2(codes: &[u8], m_pad: usize, luts: &[&[u8]], out: &mut [u16]) {
    let q = super::check_pq4_multi_args(codes, m_pad, luts, out);
    let rows = out.len() / q;
    for (lut, out) in luts.iter().zip(out.chunks_exact_mut(rows.max(1))) {
        pq4_scan_avx2(codes, m_pad, lut, out);
    }
}

/// AVX2 4-bit PQ fast-scan.
pub(super) fn pq4_scan_avx2(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    super::check_pq4_args(codes, m_pad, lut, out);
    // SAFETY: installed only after AVX2 was detected; the layout was just checked.
    unsafe { pq4_scan_avx2_impl(codes, m_pad, lut, out) }
}

/// AVX-512BW 4-bit PQ fast-scan.
pub(super) fn pq4_scan_avx512(codes: &[u8], m_pad: usize, lut: &[u8], out: &mut [u16]) {
    super::check_pq4_args(codes, m_pad, lut, out);
    // SAFETY: installed only after AVX-512F and AVX-512BW were detected; layout checked.
    unsafe { pq4_scan_avx512_impl(codes, m_pad, lut, out) }
}

/// AVX2 table quantization: two registers hold a subquantizer's 16 entries, so its range is
/// two reductions and its 16 bytes two subtracts, multiplies, clamps and conversions (rounding
/// to nearest even, as the scalar twin), packed to bytes. The scalar code compiled for AVX2
/// was not vectorized (a serial min/max fold per subquantizer): it took 2% of a codes-only
/// batch query.
#[target_feature(enable = "avx2,fma")]
fn pq4_quantize_table_avx2_impl(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    super::scalar::with_mins(lut.len() / 16, |mins| {
        // SAFETY: same features as this function.
        unsafe { pq4_quantize_table_avx2_with(lut, out, mins) }
    })
}

/// The least lane of `lo` and the greatest of `hi`.
#[target_feature(enable = "avx2")]
fn min_max_avx2(lo: __m256, hi: __m256) -> (f32, f32) {
    let min = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps::<1>(lo));
    let min = _mm_min_ps(min, _mm_movehl_ps(min, min));
    let min = _mm_min_ps(min, _mm_shuffle_ps::<1>(min, min));
    let max = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps::<1>(hi));
    let max = _mm_max_ps(max, _mm_movehl_ps(max, max));
    let max = _mm_max_ps(max, _mm_shuffle_ps::<1>(max, max));
    (_mm_cvtss_f32(min), _mm_cvtss_f32(max))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn pq4_quantize_table_avx2_with(
    lut: &[f32],
    out: &mut [u8],
    mins: &mut [f32],
) -> (f32, f32) {
    let load = |t: &[f32]| {
        // SAFETY: callers pass chunks of exactly 16 floats.
        unsafe {
            (
                _mm256_loadu_ps(t.as_ptr()),
                _mm256_loadu_ps(t.as_ptr().add(8)),
            )
        }
    };
    let (scale, max_entry) = super::scalar::pq4_table_ranges(lut, out.len() / 16, mins, |t| {
        let (a, b) = load(t);
        min_max_avx2(_mm256_min_ps(a, b), _mm256_max_ps(a, b))
    });
    out.fill(0);
    let (zero, top, factor) = (
        _mm256_setzero_ps(),
        _mm256_set1_ps(max_entry),
        _mm256_set1_ps(scale),
    );
    for ((table, &lo), o) in lut
        .chunks_exact(16)
        .zip(mins.iter())
        .zip(out.chunks_exact_mut(16))
    {
        let (a, b) = load(table);
        let lo = _mm256_set1_ps(lo);
        let quantize = |v: __m256| {
            let x = _mm256_mul_ps(_mm256_sub_ps(v, lo), factor);
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(x, zero), top))
        };
        // Values are at most 255: the saturating packs keep them, lanes interleaved by
        // 128-bit halves, which the permute puts back in order.
        let words = _mm256_packus_epi32(quantize(a), quantize(b));
        let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(words);
        let bytes = _mm_packus_epi16(
            _mm256_castsi256_si128(words),
            _mm256_extracti128_si256::<1>(words),
        );
        // SAFETY: `o` is 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), bytes) };
    }
    (super::scalar::pq4_sum(mins), scale)
}

/// AVX-512 table quantization: one register holds a subquantizer's 16 entries, so its range
/// is two reductions and its 16 bytes are one subtract, multiply, clamp, convert (rounding to
/// nearest even, as the scalar twin) and narrowing store.
#[target_feature(enable = "avx512f,avx512bw")]
fn pq4_quantize_table_avx512_impl(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    super::scalar::with_mins(lut.len() / 16, |mins| {
        // SAFETY: same features as this function.
        unsafe { pq4_quantize_table_avx512_with(lut, out, mins) }
    })
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pq4_quantize_table_avx512_with(
    lut: &[f32],
    out: &mut [u8],
    mins: &mut [f32],
) -> (f32, f32) {
    let load = |t: &[f32]| {
        // SAFETY: callers pass chunks of exactly 16 floats.
        unsafe { _mm512_loadu_ps(t.as_ptr()) }
    };
    let (scale, max_entry) = super::scalar::pq4_table_ranges(lut, out.len() / 16, mins, |t| {
        let v = load(t);
        (_mm512_reduce_min_ps(v), _mm512_reduce_max_ps(v))
    });
    out.fill(0);
    let (zero, top, factor) = (
        _mm512_setzero_ps(),
        _mm512_set1_ps(max_entry),
        _mm512_set1_ps(scale),
    );
    for ((table, &lo), o) in lut
        .chunks_exact(16)
        .zip(mins.iter())
        .zip(out.chunks_exact_mut(16))
    {
        let x = _mm512_mul_ps(_mm512_sub_ps(load(table), _mm512_set1_ps(lo)), factor);
        let x = _mm512_min_ps(_mm512_max_ps(x, zero), top);
        let bytes = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(x));
        // SAFETY: `o` is 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), bytes) };
    }
    (super::scalar::pq4_sum(mins), scale)
}

/// PQ table quantization, AVX2 build.
pub(super) fn pq4_quantize_table_avx2(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    super::check_pq4_table_args(lut, out);
    // SAFETY: installed only after AVX2 and FMA were detected; the body is safe code.
    unsafe { pq4_quantize_table_avx2_impl(lut, out) }
}

/// PQ table quantization, AVX-512 build.
pub(super) fn pq4_quantize_table_avx512(lut: &[f32], out: &mut [u8]) -> (f32, f32) {
    super::check_pq4_table_args(lut, out);
    // SAFETY: installed only after AVX-512F and AVX-512BW were detected; lengths checked.
    unsafe { pq4_quantize_table_avx512_impl(lut, out) }
}

/// Prefetches every 64-byte line of the `len` bytes at `start` into all cache levels.
#[inline]
pub(super) fn prefetch(start: *const u8, len: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // From the start of `start`'s cache line, so that the range's last line is covered too.
    let misalign = start as usize % 64;
    let start = start.wrapping_sub(misalign);
    for offset in (0..len + misalign).step_by(64) {
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is only a hint: it
        // reads nothing into the program and never faults (the caller's range is in bounds
        // anyway; `wrapping_add` keeps even a stray address from being undefined).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast()) };
    }
}

/// Rows the SQ8 kernels score together: their accumulation chains are independent, so the
/// CPU overlaps them instead of waiting on one chain of fused multiply-adds. Each row keeps
/// its own lanes, so results do not depend on grouping.
const SQ8_ROWS: usize = 4;

/// Adds 8 lanes in the SQ8 order (`i + 4`, then `i + 2`, then `i + 1`).
#[target_feature(enable = "avx")]
fn sq8_reduce8(s8: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
}

/// One row's SQ8 sum from its 16 lanes (`lo`: lanes 0-7, `hi`: 8-15) and, when the
/// dimension has a tail, the scalar terms `tail` adds, reduced in the SQ8 order (in
/// registers when there is no tail).
#[target_feature(enable = "avx")]
fn sq8_finish(
    lo: __m256,
    hi: __m256,
    has_tail: bool,
    tail: impl FnOnce(&mut [f32; SQ8_LANES]),
) -> f32 {
    if !has_tail {
        return sq8_reduce8(_mm256_add_ps(lo, hi));
    }
    let mut lanes = [0.0f32; SQ8_LANES];
    // SAFETY: `lanes` holds 16 floats.
    unsafe {
        _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
    }
    tail(&mut lanes);
    scalar::sq8_reduce(lanes)
}

/// The low and high 8 lanes of an AVX-512 register.
#[target_feature(enable = "avx512f")]
fn halves(v: __m512) -> (__m256, __m256) {
    (
        _mm512_castps512_ps256(v),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
    )
}

/// Sixteen SQ8 codes from `p`, as floats.
#[target_feature(enable = "avx512f")]
unsafe fn sq8_load16_avx512(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) }))
}

/// SQ8 L2 of `R` consecutive rows (`codes` holds exactly `R * dim` bytes), AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn sq8_l2_rows_avx512<const R: usize>(
    codes: &[u8],
    target: &[f32],
    scale: &[f32],
    out: &mut [f32],
) {
    let dim = target.len();
    let full = dim - dim % SQ8_LANES;
    let mut acc = [_mm512_setzero_ps(); R];
    for d in (0..full).step_by(SQ8_LANES) {
        // SAFETY: d + 16 <= full <= dim = target.len() = scale.len(), and every row `r < R`
        // has `dim` bytes at `r * dim` (the caller passes whole rows).
        unsafe {
            let t = _mm512_loadu_ps(target.as_ptr().add(d));
            let s = _mm512_loadu_ps(scale.as_ptr().add(d));
            for (r, a) in acc.iter_mut().enumerate() {
                let c = sq8_load16_avx512(codes.as_ptr().add(r * dim + d));
                let diff = _mm512_fnmadd_ps(c, s, t);
                *a = _mm512_fmadd_ps(diff, diff, *a);
            }
        }
    }
    for (r, a) in acc.into_iter().enumerate() {
        let (lo, hi) = halves(a);
        let code = &codes[r * dim + full..(r + 1) * dim];
        out[r] = sq8_finish(lo, hi, full < dim, |lanes| {
            scalar::sq8_l2_lanes(lanes, full, code, &target[full..], &scale[full..]);
        });
    }
}

/// SQ8 inner product of `R` consecutive rows with `weight`, AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn sq8_dot_rows_avx512<const R: usize>(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    let dim = weight.len();
    let full = dim - dim % SQ8_LANES;
    let mut acc = [_mm512_setzero_ps(); R];
    for d in (0..full).step_by(SQ8_LANES) {
        // SAFETY: as in `sq8_l2_rows_avx512`.
        unsafe {
            let w = _mm512_loadu_ps(weight.as_ptr().add(d));
            for (r, a) in acc.iter_mut().enumerate() {
                let c = sq8_load16_avx512(codes.as_ptr().add(r * dim + d));
                *a = _mm512_fmadd_ps(c, w, *a);
            }
        }
    }
    for (r, a) in acc.into_iter().enumerate() {
        let (lo, hi) = halves(a);
        let code = &codes[r * dim + full..(r + 1) * dim];
        out[r] = sq8_finish(lo, hi, full < dim, |lanes| {
            scalar::sq8_dot_lanes(lanes, full, code, &weight[full..]);
        });
    }
}

/// Eight SQ8 codes from `p`, as floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_load8_avx2(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 8 readable bytes at `p`.
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(p.cast()) }))
}

/// SQ8 L2 of `R` consecutive rows, AVX2+FMA: lanes 0-7 and 8-15 in two registers per row.
#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_l2_rows_avx2<const R: usize>(
    codes: &[u8],
    target: &[f32],
    scale: &[f32],
    out: &mut [f32],
) {
    let dim = target.len();
    let full = dim - dim % SQ8_LANES;
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
    for d in (0..full).step_by(SQ8_LANES) {
        // SAFETY: as in `sq8_l2_rows_avx512`.
        unsafe {
            let (t, s) = (target.as_ptr().add(d), scale.as_ptr().add(d));
            let (t_lo, t_hi) = (_mm256_loadu_ps(t), _mm256_loadu_ps(t.add(8)));
            let (s_lo, s_hi) = (_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)));
            for r in 0..R {
                let p = codes.as_ptr().add(r * dim + d);
                let diff = _mm256_fnmadd_ps(sq8_load8_avx2(p), s_lo, t_lo);
                lo[r] = _mm256_fmadd_ps(diff, diff, lo[r]);
                let diff = _mm256_fnmadd_ps(sq8_load8_avx2(p.add(8)), s_hi, t_hi);
                hi[r] = _mm256_fmadd_ps(diff, diff, hi[r]);
            }
        }
    }
    for r in 0..R {
        let code = &codes[r * dim + full..(r + 1) * dim];
        out[r] = sq8_finish(lo[r], hi[r], full < dim, |lanes| {
            scalar::sq8_l2_lanes(lanes, full, code, &target[full..], &scale[full..]);
        });
    }
}

/// SQ8 inner product of `R` consecutive rows with `weight`, AVX2+FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_dot_rows_avx2<const R: usize>(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    let dim = weight.len();
    let full = dim - dim % SQ8_LANES;
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
    for d in (0..full).step_by(SQ8_LANES) {
        // SAFETY: as in `sq8_l2_rows_avx512`.
        unsafe {
            let w = weight.as_ptr().add(d);
            let (w_lo, w_hi) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
            for r in 0..R {
                let p = codes.as_ptr().add(r * dim + d);
                lo[r] = _mm256_fmadd_ps(sq8_load8_avx2(p), w_lo, lo[r]);
                hi[r] = _mm256_fmadd_ps(sq8_load8_avx2(p.add(8)), w_hi, hi[r]);
            }
        }
    }
    for r in 0..R {
        let code = &codes[r * dim + full..(r + 1) * dim];
        out[r] = sq8_finish(lo[r], hi[r], full < dim, |lanes| {
            scalar::sq8_dot_lanes(lanes, full, code, &weight[full..]);
        });
    }
}

/// Checks the SQ8 length contract, then calls `rows` on each group of [`SQ8_ROWS`] whole rows
/// of `codes` (with its outputs), then `row` on each remaining row.
fn sq8_in_groups(
    codes: &[u8],
    dim: usize,
    out: &mut [f32],
    mut rows: impl FnMut(&[u8], &mut [f32]),
    mut row: impl FnMut(&[u8], &mut [f32]),
) {
    super::check_sq8_args(codes, dim, out);
    let n = codes.len() / dim;
    let grouped = n - n % SQ8_ROWS;
    for (c, o) in codes[..grouped * dim]
        .chunks_exact(SQ8_ROWS * dim)
        .zip(out.chunks_exact_mut(SQ8_ROWS))
    {
        rows(c, o);
    }
    for (c, o) in codes[grouped * dim..]
        .chunks_exact(dim)
        .zip(out[grouped..n].chunks_exact_mut(1))
    {
        row(c, o);
    }
}

pub(super) fn sq8_l2_block_avx512(codes: &[u8], target: &[f32], scale: &[f32], out: &mut [f32]) {
    assert_eq!(scale.len(), target.len(), "sq8 scale length");
    sq8_in_groups(
        codes,
        target.len(),
        out,
        // SAFETY: installed only after AVX-512F was detected; each call gets whole rows
        // (`sq8_in_groups` checks the lengths first).
        |c, o| unsafe { sq8_l2_rows_avx512::<SQ8_ROWS>(c, target, scale, o) },
        // SAFETY: as above.
        |c, o| unsafe { sq8_l2_rows_avx512::<1>(c, target, scale, o) },
    );
}

pub(super) fn sq8_dot_block_avx512(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    sq8_in_groups(
        codes,
        weight.len(),
        out,
        // SAFETY: installed only after AVX-512F was detected; whole rows
        // (`sq8_in_groups` checks the lengths first).
        |c, o| unsafe { sq8_dot_rows_avx512::<SQ8_ROWS>(c, weight, o) },
        // SAFETY: as above.
        |c, o| unsafe { sq8_dot_rows_avx512::<1>(c, weight, o) },
    );
}

pub(super) fn sq8_l2_block_avx2(codes: &[u8], target: &[f32], scale: &[f32], out: &mut [f32]) {
    assert_eq!(scale.len(), target.len(), "sq8 scale length");
    sq8_in_groups(
        codes,
        target.len(),
        out,
        // SAFETY: installed only after AVX2 and FMA were detected; whole rows
        // (`sq8_in_groups` checks the lengths first).
        |c, o| unsafe { sq8_l2_rows_avx2::<SQ8_ROWS>(c, target, scale, o) },
        // SAFETY: as above.
        |c, o| unsafe { sq8_l2_rows_avx2::<1>(c, target, scale, o) },
    );
}

pub(super) fn sq8_dot_block_avx2(codes: &[u8], weight: &[f32], out: &mut [f32]) {
    sq8_in_groups(
        codes,
        weight.len(),
        out,
        // SAFETY: installed only after AVX2 and FMA were detected; whole rows
        // (`sq8_in_groups` checks the lengths first).
        |c, o| unsafe { sq8_dot_rows_avx2::<SQ8_ROWS>(c, weight, o) },
        // SAFETY: as above.
        |c, o| unsafe { sq8_dot_rows_avx2::<1>(c, weight, o) },
    );
}

/// Every byte's low 6 bits: where `_pdep_u64` deposits eight 6-bit values.
const SIX_BIT_LANES: u64 = 0x3f3f_3f3f_3f3f_3f3f;

/// 6-bit unpacking with BMI2: one bit deposit spreads each 48-bit group into eight bytes.
#[target_feature(enable = "bmi2")]
fn unpack6_bmi2_impl(packed: &[u8], out: &mut [u8]) {
    let whole = (out.len() / 8).min(packed.len() / 6);
    let (groups, tail) = out.split_at_mut(whole * 8);
    for (g, values) in groups.chunks_exact_mut(8).enumerate() {
        // Eight bytes when they are there (the top two are masked off), else six.
        let word = match packed.get(g * 6..g * 6 + 8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let b = &packed[g * 6..g * 6 + 6];
                u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])
            }
        };
        let spread = _pdep_u64(word & 0xffff_ffff_ffff, SIX_BIT_LANES);
        values.copy_from_slice(&spread.to_le_bytes());
    }
    scalar::unpack6_tail(&packed[whole * 6..], tail);
}

pub(super) fn unpack6_bmi2(packed: &[u8], out: &mut [u8]) {
    // SAFETY: installed only after BMI2 was detected; the function only indexes slices.
    unsafe { unpack6_bmi2_impl(packed, out) }
}
