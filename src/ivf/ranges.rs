//! Scalar-quantization ranges: what the SQ8 codec and the refine codes both train, kept
//! apart so that neither codec names the other for it.

/// Scalar-quantization ranges of rows of `dim`: per dimension the minimum and the step that
/// spreads the values over `levels` steps (1 for a dimension without spread; 0 and 1 for one
/// without finite values).
pub(crate) fn train_ranges(rows: &[f32], dim: usize, levels: f32) -> (Vec<f32>, Vec<f32>) {
    let mut min = vec![f32::INFINITY; dim];
    let mut max = vec![f32::NEG_INFINITY; dim];
    for row in rows.chunks_exact(dim.max(1)) {
        for (d, &v) in row.iter().enumerate() {
            min[d] = min[d].min(v);
            max[d] = max[d].max(v);
        }
    }
    let scale = min
        .iter_mut()
        .zip(&max)
        .map(|(lo, hi)| {
            if !lo.is_finite() {
                *lo = 0.0;
            }
            let span = if hi.is_finite() { hi - *lo } else { 0.0 };
            if span > 0.0 { span / levels } else { 1.0 }
        })
        .collect();
    (min, scale)
}
