//! Checks of caller input, done before anything is written.

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::model::types::TextSpec;
use crate::text::Bm25;

/// Longest text of a text or hybrid query, in bytes.
pub(crate) const MAX_QUERY_TEXT_LEN: usize = 64 << 10;

/// Longest id, in bytes.
pub(crate) const MAX_ID_LEN: usize = 1024;
/// Largest contents, in bytes.
pub(crate) const MAX_CONTENTS_LEN: usize = 64 << 20;
/// Largest metadata document (serialized JSON), in bytes.
pub(crate) const MAX_METADATA_LEN: usize = 16 << 20;
/// Largest dimension.
pub(crate) const MAX_DIMENSION: usize = 1 << 16;
/// Largest `top_k`.
pub(crate) const MAX_TOP_K: usize = 100_000;

/// Checks an index name: 1 to 128 bytes, no path separator, NUL or control character, not
/// starting with a dot or ending with a space or dot (names become directory names on every
/// platform, and must not escape the database directory).
pub(crate) fn index_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.ends_with([' ', '.'])
        && !name.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "index name must be 1-128 bytes without / \\ : * ? \" < > | or control characters, \
             not starting with '.' nor ending with '.' or a space",
        ))
    }
}

/// Checks a vector against the index dimension and metric.
pub(crate) fn vector(v: &[f32], dim: usize, metric: Metric) -> Result<()> {
    if v.is_empty() {
        return Err(Error::InvalidVector);
    }
    if v.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            found: v.len(),
        });
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(Error::InvalidVector);
    }
    // Distances are computed in f32: below the limit no squared distance or inner product of
    // two accepted vectors overflows (`|q - x|^2 <= (|q| + |x|)^2 < 2^126`), where above it
    // an item's distances could all be infinite or NaN, and it would never be found.
    let norm_sq: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if norm_sq >= MAX_NORM_SQ {
        return Err(Error::InvalidVector);
    }
    // Under cosine a vector is divided by its norm as the search computes it (in f32): one
    // whose norm is zero there (every value below about 1e-23) has no direction either.
    if metric == Metric::Cosine && crate::ivf::inv_norm(v) == 0.0 {
        return Err(Error::InvalidVector);
    }
    Ok(())
}

/// The squared Euclidean norm a vector must stay under: `2^124`, a norm of `2^62` (about
/// 4.6e18), far beyond any embedding's.
const MAX_NORM_SQ: f64 = (1u128 << 124) as f64;

/// Checks an id.
pub(crate) fn id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_argument("empty id"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid_argument(format!(
            "id longer than {MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks the text part of a query: its length, the fields' weights and BM25's parameters
/// (the fields themselves are checked against the index by the text search).
pub(crate) fn text(text: &TextSpec) -> Result<()> {
    if text
        .words
        .as_ref()
        .is_some_and(|w| w.len() > MAX_QUERY_TEXT_LEN)
    {
        return Err(Error::invalid_argument(format!(
            "query text may hold at most {MAX_QUERY_TEXT_LEN} bytes"
        )));
    }
    if let Some(weights) = &text.weights
        && !weights.iter().all(|w| w.is_finite() && *w >= 0.0)
    {
        return Err(Error::invalid_argument(
            "text field weights must be finite and at least 0",
        ));
    }
    if let Some(bm25) = text.bm25 {
        bm25_params(bm25)?;
    }
    Ok(())
}

/// Checks BM25's parameters: `k1` finite and at least 0, `b` in `[0, 1]`.
pub(crate) fn bm25_params(bm25: Bm25) -> Result<()> {
    if bm25.k1.is_finite() && bm25.k1 >= 0.0 && (0.0..=1.0).contains(&bm25.b) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "bm25 needs a finite k1 >= 0 and b in [0, 1]",
        ))
    }
}

/// Checks the fusion of a hybrid query: `alpha` in `[0, 1]`, `rrf_k` finite and at least 0,
/// `window_mult` at least 1.
pub(crate) fn fusion(alpha: f32, rrf_k: f32, window_mult: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::invalid_argument("hybrid_alpha must be in [0, 1]"));
    }
    if !(rrf_k.is_finite() && rrf_k >= 0.0) {
        return Err(Error::invalid_argument(
            "rrf_k must be finite and at least 0",
        ));
    }
    if window_mult == 0 {
        return Err(Error::invalid_argument("window_mult must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        for ok in ["docs", "my index", "a.b-c_d", "Ünïcødé", "x"] {
            assert!(index_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".", "..", ".hidden", "a/b", "a\\b", "../x", "x.", "x ", "a\0b", "t\tab",
        ] {
            assert!(index_name(bad).is_err(), "{bad:?}");
        }
        assert!(index_name(&"n".repeat(129)).is_err());
    }
}
