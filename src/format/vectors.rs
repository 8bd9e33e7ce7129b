//! How vectors are stored: the one place that turns a vector of `f32`s into the bytes of its
//! stored precision and back.
//!
//! Every stored vector (a quantized type's vector record, a row of an `ivf_flat`
//! block-vectors record) is `dim` values in one of these codings, little-endian:
//!
//! ```text
//! F32   dim x f32                      4 * dim bytes
//! F16   dim x IEEE binary16            2 * dim bytes
//! I8    scale f32 | dim x i8           4 + dim bytes, x_i = q_i * scale
//! ```
//!
//! A writer first [rounds](VectorCoding::round) each new vector to what its coding holds, and
//! the index keeps and searches the rounded values; encoding a rounded vector and decoding
//! it gives it back bit for bit, so a rewrite (training, compaction, rotation) stores the
//! same values again and every reader sees what the writer saw.
//!
//! `I8`'s scale is the vector's largest magnitude divided by 127, rounded up to 17
//! significant bits: every `q * scale` with `|q| <= 127` is then exact, the largest value
//! codes as `±127`, and the scale of a rounded vector is its own scale again.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The coding of stored vectors (the variant order is the stored encoding: append only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum VectorCoding {
    /// `f32` values.
    #[default]
    F32,
    /// IEEE half-precision values.
    F16,
    /// A scale and signed bytes.
    I8,
}

/// The largest magnitude of an `I8` value.
const I8_MAX: f32 = 127.0;
/// Low mantissa bits an `I8` scale leaves zero (24 - 17): with 7-bit integers the products
/// then fit a float's 24 significant bits.
const SCALE_FREE_BITS: u32 = 7;

impl VectorCoding {
    /// Bytes one stored vector of `dim` values takes.
    pub(crate) fn vector_len(self, dim: usize) -> usize {
        match self {
            VectorCoding::F32 => dim * 4,
            VectorCoding::F16 => dim * 2,
            VectorCoding::I8 => 4 + dim,
        }
    }

    /// Rounds `v` in place to the values this coding stores; `false` (and `v` unspecified)
    /// when a value is beyond its range (`F16`: a magnitude of about 65,520 or more).
    pub(crate) fn round(self, v: &mut [f32]) -> bool {
        match self {
            VectorCoding::F32 => true,
            VectorCoding::F16 => v.iter_mut().all(|x| {
                *x = f16::from_f32(*x).to_f32();
                x.is_finite()
            }),
            VectorCoding::I8 => {
                let scale = i8_scale(v);
                for x in v.iter_mut() {
                    *x = f32::from(i8_code(*x, scale)) * scale;
                }
                true
            }
        }
    }

    /// Appends the stored bytes of `v` (rounded first, as [`round`](Self::round) would).
    pub(crate) fn encode_into(self, v: &[f32], out: &mut Vec<u8>) {
        match self {
            VectorCoding::F32 => {
                out.reserve(v.len() * 4);
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            VectorCoding::F16 => {
                out.reserve(v.len() * 2);
                for &x in v {
                    out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
                }
            }
            VectorCoding::I8 => {
                let scale = i8_scale(v);
                out.reserve(4 + v.len());
                out.extend_from_slice(&scale.to_le_bytes());
                out.extend(v.iter().map(|&x| i8_code(x, scale).to_le_bytes()[0]));
            }
        }
    }

    /// Decodes one stored vector (`bytes` exactly [`vector_len`](Self::vector_len) of
    /// `out.len()`) into `out`.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the length is not that, or an `I8` scale is not a finite
    /// number at least 0.
    pub(crate) fn decode_into(self, bytes: &[u8], out: &mut [f32]) -> Result<()> {
        if bytes.len() != self.vector_len(out.len()) {
            return Err(Error::corrupted("vector record"));
        }
        match self {
            VectorCoding::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            VectorCoding::F16 => decode_f16(bytes, out),
            VectorCoding::I8 => {
                let (scale, codes) = bytes.split_at(4);
                let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
                if !(scale.is_finite() && scale >= 0.0) {
                    return Err(Error::corrupted("vector record"));
                }
                for (o, &q) in out.iter_mut().zip(codes) {
                    *o = f32::from(q as i8) * scale;
                }
            }
        }
        Ok(())
    }

    /// Decodes `rows` stored vectors of `dim` values, back to back in `bytes`, into one
    /// row-major vector.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when `bytes` is not `rows` vectors long or a vector does not
    /// decode.
    pub(crate) fn decode_rows(self, bytes: &[u8], rows: usize, dim: usize) -> Result<Vec<f32>> {
        let corrupted = || Error::corrupted("block vectors");
        let each = self.vector_len(dim);
        if rows.checked_mul(each) != Some(bytes.len()) || rows.checked_mul(dim).is_none() {
            return Err(corrupted());
        }
        let mut out = vec![0f32; rows * dim];
        if dim == 0 {
            return Ok(out);
        }
        for (o, b) in out
            .chunks_exact_mut(dim)
            .zip(bytes.chunks_exact(each.max(1)))
        {
            self.decode_into(b, o).map_err(|_| corrupted())?;
        }
        Ok(out)
    }
}

/// Half-precision values to `f32`s through the `half` crate's slice conversion (F16C
/// instructions where the CPU has it, detected at run time): in place when the bytes are
/// aligned for `u16`s, else through a small buffer on the stack (a decryption scratch
/// buffer of bytes need not be aligned; no allocation on the re-rank's path).
fn decode_f16(bytes: &[u8], out: &mut [f32]) {
    if cfg!(target_endian = "little")
        && let Ok(bits) = bytemuck::try_cast_slice::<u8, u16>(bytes)
    {
        bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
        return;
    }
    const CHUNK: usize = 64;
    let mut halves = [f16::ZERO; CHUNK];
    for (bytes, out) in bytes.chunks(2 * CHUNK).zip(out.chunks_mut(CHUNK)) {
        let halves = &mut halves[..out.len()];
        for (h, c) in halves.iter_mut().zip(bytes.chunks_exact(2)) {
            *h = f16::from_le_bytes([c[0], c[1]]);
        }
        halves.convert_to_f32_slice(out);
    }
}

/// The `I8` scale of `v`: its largest magnitude over 127, rounded up to 17 significant bits
/// (0 for a zero vector; at least the least such positive number otherwise, so that a
/// vector of tiny values keeps its signs).
fn i8_scale(v: &[f32]) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let free = (1u32 << SCALE_FREE_BITS) - 1;
    let bits = (max / I8_MAX).to_bits();
    // Rounds up: past the free bits a carry moves into the exponent, still exact.
    let rounded = if bits & free == 0 {
        bits
    } else {
        (bits | free) + 1
    };
    f32::from_bits(rounded.max(free + 1))
}

/// The `I8` code of `x` under `scale`.
fn i8_code(x: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    (x / scale).round().clamp(-I8_MAX, I8_MAX) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> Vec<Vec<f32>> {
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut out = vec![
            vec![0.0; 5],
            vec![-0.0, 1.0, -1.0, 65504.0, 1e-8],
            vec![1e-40, -1e-42, 0.0],
            vec![3.0e18, -2.0, 7.5],
            vec![0.1, 0.2, 0.3, -0.4],
        ];
        for dim in [1, 3, 17, 384] {
            for _ in 0..20 {
                let magnitude = [1.0, 1e-3, 300.0][(next() % 3) as usize];
                out.push(
                    (0..dim)
                        .map(|_| ((next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32)
                        .map(|x| x * magnitude)
                        .collect(),
                );
            }
        }
        out
    }

    /// Rounding is what encoding then decoding gives, bit for bit, and rounding a rounded
    /// vector changes nothing: rewrites store the same values again.
    #[test]
    fn rounding_is_the_round_trip_and_is_idempotent() {
        for coding in [VectorCoding::F32, VectorCoding::F16, VectorCoding::I8] {
            for v in vectors() {
                let mut rounded = v.clone();
                if !coding.round(&mut rounded) {
                    assert_eq!(coding, VectorCoding::F16, "{v:?}");
                    continue;
                }
                let mut bytes = Vec::new();
                coding.encode_into(&v, &mut bytes);
                assert_eq!(bytes.len(), coding.vector_len(v.len()));
                let mut decoded = vec![f32::NAN; v.len()];
                coding.decode_into(&bytes, &mut decoded).unwrap();
                let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                // -0 may round to +0 (I8), which compares equal.
                assert_eq!(decoded, rounded, "{coding:?} {v:?}");
                let mut again = rounded.clone();
                assert!(coding.round(&mut again));
                assert_eq!(bits(&again), bits(&rounded), "{coding:?} drifts on {v:?}");
                let mut re = Vec::new();
                coding.encode_into(&rounded, &mut re);
                assert_eq!(re, {
                    let mut b = Vec::new();
                    coding.encode_into(&rounded, &mut b);
                    b
                });
                let mut twice = vec![0.0; v.len()];
                coding.decode_into(&re, &mut twice).unwrap();
                assert_eq!(bits(&twice), bits(&rounded));
            }
        }
    }

    /// Each value is within the documented error of its rounding.
    #[test]
    fn errors_stay_within_the_documented_bounds() {
        for v in vectors() {
            let mut h = v.clone();
            if VectorCoding::F16.round(&mut h) {
                for (a, b) in v.iter().zip(&h) {
                    // Half has 11 significant bits; below 2^-14 it is subnormal (step 2^-24).
                    assert!((a - b).abs() <= (a.abs() * 2f32.powi(-11)).max(2f32.powi(-25)));
                }
            }
            let mut q = v.clone();
            VectorCoding::I8.round(&mut q);
            let scale = i8_scale(&v);
            let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(scale >= max / 127.0);
            // Rounded up to 17 significant bits (coarser among subnormal numbers).
            if max / 127.0 >= f32::MIN_POSITIVE {
                assert!(scale <= max / 127.0 * (1.0 + 2f32.powi(-16)));
            }
            for (a, b) in v.iter().zip(&q) {
                assert!((a - b).abs() <= scale * 0.5001, "{a} {b} {scale}");
            }
        }
        assert!(!VectorCoding::F16.round(&mut [1e5]));
        assert!(VectorCoding::F16.round(&mut [65504.0]));
    }

    /// Half-precision bytes decode the same from an aligned and an unaligned start.
    #[test]
    fn half_precision_decodes_alike_at_any_alignment() {
        for v in vectors() {
            let mut bytes = vec![0u8];
            VectorCoding::F16.encode_into(&v, &mut bytes);
            let (mut a, mut b) = (vec![0f32; v.len()], vec![0f32; v.len()]);
            let aligned: Vec<u8> = bytes[1..].to_vec();
            if VectorCoding::F16.decode_into(&bytes[1..], &mut a).is_err() {
                continue;
            }
            VectorCoding::F16.decode_into(&aligned, &mut b).unwrap();
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
        }
    }

    #[test]
    fn rows_and_bad_lengths() {
        let rows = [1.0f32, -2.0, 0.5, 4.0, 0.0, -8.0];
        for coding in [VectorCoding::F32, VectorCoding::F16, VectorCoding::I8] {
            let mut bytes = Vec::new();
            for r in rows.chunks(3) {
                coding.encode_into(r, &mut bytes);
            }
            let decoded = coding.decode_rows(&bytes, 2, 3).unwrap();
            let mut expect = rows.to_vec();
            for r in expect.chunks_mut(3) {
                coding.round(r);
            }
            assert_eq!(decoded, expect);
            assert!(coding.decode_rows(&bytes, 3, 3).is_err());
            assert!(coding.decode_rows(&bytes[1..], 2, 3).is_err());
            assert!(coding.decode_into(&bytes, &mut [0.0; 2]).is_err());
        }
        let mut bad = vec![0u8; 7];
        bad[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(VectorCoding::I8.decode_into(&bad, &mut [0.0; 3]).is_err());
    }
}
