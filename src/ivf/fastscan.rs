//! 4-bit PQ fast-scan: codes of a list rearranged into the kernel's blocks of 32 rows, and a
//! query's float distance table quantized to 8-bit entries, so that the kernel scores 32 rows
//! with a few byte shuffles per pair of subquantizers (`kernel::pq4_scan`).

use crate::kernel::{self, PQ4_BLOCK, PQ4_M_ALIGN};

/// Entries per subquantizer table (4-bit codes).
const CENTROIDS: usize = 16;

/// The PQ codes of one list in the fast-scan layout (see `kernel::pq4_scan`).
#[derive(Clone, Debug, Default)]
pub(crate) struct PackedCodes {
    /// Subquantizers, padded to a multiple of [`PQ4_M_ALIGN`] (the padding codes are 0).
    m_pad: usize,
    /// Rows held (the last block is padded with zero codes).
    rows: usize,
    /// Blocks of `m_pad * 16` bytes.
    bytes: Vec<u8>,
    /// Per row, the sum of the terms of its codes (see [`PackedCodes::pack`]); empty when
    /// packed without terms.
    row_terms: Vec<f32>,
}

impl PackedCodes {
    /// Rearranges `codes` (row-major, `code_len` bytes per row, of which the first
    /// `m.div_ceil(2)` hold two 4-bit codes per byte, subquantizer `j` in the low nibble of byte
    /// `j / 2` when `j` is even; the rest of a row is not scanned). With `terms` (`m * 16`
    /// entries, subquantizer `j`'s entry for code `c` at `j * 16 + c`), each row also gets the
    /// sum of its codes' entries ([`PackedCodes::row_terms`]).
    pub(crate) fn pack(codes: &[u8], code_len: usize, m: usize, terms: &[f32]) -> PackedCodes {
        let code_len = code_len.max(m.div_ceil(2)).max(1);
        let rows = codes.len() / code_len;
        let m_pad = padded_m(m);
        let block_len = m_pad * 16;
        let mut bytes = vec![0u8; rows.div_ceil(PQ4_BLOCK) * block_len];
        let with_terms = terms.len() == m * CENTROIDS && m > 0;
        let mut row_terms = Vec::with_capacity(if with_terms { rows } else { 0 });
        for (r, code) in codes.chunks_exact(code_len).enumerate() {
            let (block, t) = (r / PQ4_BLOCK, r % PQ4_BLOCK);
            let (byte, shift) = (t % 16, if t < 16 { 0 } else { 4 });
            let mut sum = 0.0f32;
            for j in 0..m {
                let nibble = (code[j / 2] >> (4 * (j % 2))) & 15;
                bytes[block * block_len + j * 16 + byte] |= nibble << shift;
                if with_terms {
                    sum += terms[j * CENTROIDS + usize::from(nibble)];
                }
            }
            if with_terms {
                row_terms.push(sum);
            }
        }
        PackedCodes {
            m_pad,
            rows,
            bytes,
            row_terms,
        }
    }

    /// [`PackedCodes::scan`] against several tables at once (up to
    /// [`kernel::PQ4_MAX_TABLES`]): `sums` holds one run of sums per table, each run what
    /// `scan` gives that table.
    pub(crate) fn scan_multi(&self, tables: &[&QuantizedTable], sums: &mut Vec<u16>) {
        let table_len = (self.m_pad * 16).max(1);
        let luts: [&[u8]; kernel::PQ4_MAX_TABLES] =
            std::array::from_fn(|i| tables.get(i).map_or(&[][..], |t| &t.lut[..]));
        let luts = &luts[..tables.len().min(kernel::PQ4_MAX_TABLES)];
        let tables = luts.len();
        sums.clear();
        sums.resize(tables * (self.bytes.len() / table_len * PQ4_BLOCK), 0);
        if self.rows > 0 && tables > 0 {
            kernel::pq4_scan_multi(&self.bytes, self.m_pad, luts, sums);
        }
    }

    /// Per row, the sum of the terms given to [`PackedCodes::pack`] (empty without them).
    pub(crate) fn row_terms(&self) -> &[f32] {
        &self.row_terms
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len() + 4 * self.row_terms.len()
    }

    /// The table sum of every row (`sums` is resized; padding rows follow the real ones).
    pub(crate) fn scan(&self, table: &QuantizedTable, sums: &mut Vec<u16>) {
        sums.clear();
        sums.resize(self.bytes.len() / (self.m_pad * 16).max(1) * PQ4_BLOCK, 0);
        if self.rows > 0 {
            kernel::pq4_scan(&self.bytes, self.m_pad, &table.lut, sums);
        }
    }
}

/// `m` padded to the kernel's alignment.
fn padded_m(m: usize) -> usize {
    m.div_ceil(PQ4_M_ALIGN).max(1) * PQ4_M_ALIGN
}

/// A float PQ distance table (`m * 16` entries plus a constant) quantized to 8 bits:
/// `distance ≈ bias + sum / scale`, where `sum` adds one entry per subquantizer.
pub(crate) struct QuantizedTable {
    lut: Vec<u8>,
    bias: f32,
    scale: f32,
}

impl QuantizedTable {
    /// Quantizes `lut` (entry `j * 16 + c` for subquantizer `j`, centroid `c`) with constant
    /// `base`, through `kernel::pq4_quantize_table`: each subquantizer's entries are shifted
    /// by their minimum (added to the bias), then all are scaled by one factor so that the
    /// largest span maps to the largest entry for which `m_pad` entries still sum within
    /// `u16`.
    pub(crate) fn new(lut: &[f32], base: f32) -> QuantizedTable {
        let mut table = QuantizedTable {
            lut: Vec::new(),
            bias: 0.0,
            scale: 1.0,
        };
        let m = lut.len() / CENTROIDS;
        table.lut.resize(padded_m(m) * CENTROIDS, 0);
        let (sum_of_mins, scale) = kernel::pq4_quantize_table(lut, &mut table.lut);
        table.bias = base + sum_of_mins;
        table.scale = scale;
        table
    }

    /// The approximate distance of a row with table sum `sum`.
    #[inline]
    pub(crate) fn distance(&self, sum: u16) -> f32 {
        self.bias + f32::from(sum) / self.scale
    }

    /// `(bias, step)` with `distance ≈ bias + sum * step`, for loops that add more per row
    /// (a multiplication instead of [`QuantizedTable::distance`]'s division).
    pub(crate) fn affine(&self) -> (f32, f32) {
        (self.bias, 1.0 / self.scale)
    }

    /// The largest sum whose distance is at most `threshold` (`None`: no sum qualifies).
    #[inline]
    pub(crate) fn sum_limit(&self, threshold: f32) -> Option<u16> {
        let limit = ((threshold - self.bias) * self.scale).floor();
        if limit >= f32::from(u16::MAX) || limit.is_nan() {
            Some(u16::MAX)
        } else if limit < 0.0 {
            None
        } else {
            Some(limit as u16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    /// The row-major code of `nibbles`.
    fn row_code(nibbles: &[u8]) -> Vec<u8> {
        nibbles
            .chunks(2)
            .map(|p| p[0] | p.get(1).copied().unwrap_or(0) << 4)
            .collect()
    }

    #[test]
    fn packed_scan_equals_float_table_sums_within_quantization() {
        let mut rng = StdRng::seed_from_u64(8);
        for &(m, rows) in &[
            (1usize, 1usize),
            (3, 33),
            (8, 64),
            (12, 100),
            (96, 70),
            (384, 40),
        ] {
            let nibbles: Vec<Vec<u8>> = (0..rows)
                .map(|_| (0..m).map(|_| (rng.next_u32() % 16) as u8).collect())
                .collect();
            // Rows carry 3 more bytes that the scan must skip.
            let codes: Vec<u8> = nibbles
                .iter()
                .flat_map(|n| {
                    let mut code = row_code(n);
                    code.extend([0xff, 0x5a, 0xa5]);
                    code
                })
                .collect();
            let lut: Vec<f32> = (0..m * CENTROIDS)
                .map(|_| rng.next_u32() as f32 / u32::MAX as f32 * 3.0 - 1.0)
                .collect();
            let base = 0.25;
            let packed = PackedCodes::pack(&codes, m.div_ceil(2) + 3, m, &[]);
            let table = QuantizedTable::new(&lut, base);
            let mut sums = Vec::new();
            packed.scan(&table, &mut sums);
            assert!(sums.len() >= rows);
            // Each entry is off by at most half a step after rounding.
            let tolerance = m as f32 * 0.5 / table.scale + 1e-4;
            for (r, n) in nibbles.iter().enumerate() {
                let exact: f32 = base
                    + n.iter()
                        .enumerate()
                        .map(|(j, &c)| lut[j * 16 + c as usize])
                        .sum::<f32>();
                let approx = table.distance(sums[r]);
                assert!(
                    (approx - exact).abs() <= tolerance,
                    "m={m} r={r}: {approx} vs {exact}"
                );
                // The limit agrees with the distance it stands for.
                let limit = table.sum_limit(approx + 1e-3).unwrap();
                assert!(sums[r] <= limit);
            }
        }
    }

    #[test]
    fn sum_limit_edges() {
        let table = QuantizedTable::new(&[0.0; 16 * 4], 1.0);
        assert_eq!(table.sum_limit(0.5), None);
        assert_eq!(table.sum_limit(f32::INFINITY), Some(u16::MAX));
        assert_eq!(table.sum_limit(1.0), Some(0));
    }
}
