//! Conversions between the wire's words and the core's types, in one place: metric and
//! index-type names (CyborgDB's and the JS SDK's older spellings), `include` lists, items,
//! hits and records. (When the core's `Metric`/`IndexType` `FromStr` and `Item::from_json`
//! land, the parsing here gives way to them.)

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ciphervec::{Hit, Include, IndexConfig, IndexType, Metric, Record};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// A metric from its name; `None` is the default (Euclidean).
///
/// # Errors
/// 400 naming the accepted names.
pub fn metric(name: Option<&str>) -> Result<Metric, ApiError> {
    let Some(name) = name else {
        return Ok(Metric::Euclidean);
    };
    // CyborgDB's aliases; every other name is the core's to read (its canonical names).
    match name.to_ascii_lowercase().as_str() {
        "l2" => Ok(Metric::Euclidean),
        "sqeuclidean" => Ok(Metric::SquaredEuclidean),
        "ip" | "dot" => Ok(Metric::InnerProduct),
        _ => name
            .parse()
            .map_err(|e: ciphervec::Error| ApiError::bad_request(format!("unknown metric: {e}"))),
    }
}

/// The wire name of a metric: the core's.
pub fn metric_name(metric: Metric) -> &'static str {
    metric.name()
}

/// The kinds of index the wire can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IVF over full vectors.
    Flat,
    /// IVF over 8-bit scalar codes with exact re-rank.
    Sq8,
    /// IVF over 4-bit PQ codes with exact re-rank; `pq_dim` subquantizers (0: the default
    /// for the dimension).
    Pq {
        /// Subquantizers.
        pq_dim: usize,
    },
}

/// An index type from CyborgDB's names (`ivfflat`, `ivf`, `ivfpq`, ...) or ciphervec's
/// (`ivf_flat`, `ivf_sq8`, `ivf_pq`); `None` is IVF-Flat.
///
/// # Errors
/// 400 for an unknown type, or PQ with bits other than 4 or 8.
pub fn kind(
    name: Option<&str>,
    pq_dim: Option<usize>,
    pq_bits: Option<usize>,
) -> Result<Kind, ApiError> {
    let name = name.map(str::to_ascii_lowercase);
    match name.as_deref() {
        None | Some("ivfflat" | "ivf_flat" | "ivf" | "flat") => Ok(Kind::Flat),
        Some("ivfsq" | "ivf_sq8" | "ivfsq8") => Ok(Kind::Sq8),
        Some("ivfpq" | "ivf_pq") => {
            if let Some(bits) = pq_bits.filter(|&b| b != 0 && b != 4 && b != 8) {
                return Err(ApiError::bad_request(format!(
                    "pq_bits {bits} is not supported: ciphervec's PQ codes are 4-bit (fast scan) \
                     with an exact re-rank; pass 4 or 8"
                )));
            }
            Ok(Kind::Pq {
                pq_dim: pq_dim.unwrap_or(0),
            })
        }
        Some(_) => Err(ApiError::bad_request(
            "unknown index type: use ivfflat, ivf, ivfsq or ivfpq (or ivf_flat, ivf_sq8, ivf_pq)",
        )),
    }
}

impl Kind {
    /// The wire name (the JS SDK's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Flat => "ivfflat",
            Kind::Sq8 => "ivfsq",
            Kind::Pq { .. } => "ivfpq",
        }
    }

    /// The kind of an existing index.
    pub fn of(config: &IndexConfig) -> Kind {
        match config.index_type() {
            IndexType::IvfSq8 => Kind::Sq8,
            IndexType::IvfPq { n_subquantizers } => Kind::Pq {
                pq_dim: n_subquantizers,
            },
            _ => Kind::Flat,
        }
    }

    /// A configuration of this kind for `dimension`.
    ///
    /// # Errors
    /// 400 when `pq_dim` does not divide the dimension.
    pub fn config(self, dimension: usize) -> Result<IndexConfig, ApiError> {
        Ok(match self {
            Kind::Flat => IndexConfig::ivf_flat(dimension),
            Kind::Sq8 => IndexConfig::ivf_sq8(dimension),
            Kind::Pq { pq_dim } => {
                let m = if pq_dim == 0 {
                    IndexConfig::default_subquantizers(dimension)
                } else {
                    pq_dim
                };
                if m == 0 || !dimension.is_multiple_of(m) {
                    return Err(ApiError::bad_request(format!(
                        "pq_dim {m} must divide the dimension {dimension}"
                    )));
                }
                IndexConfig::ivf_pq(dimension, m)
            }
        })
    }
}

/// Which fields a `get` returns: `vector`, `contents`, `metadata` (both SDKs' names; `id` is
/// always there). `None` is every field.
///
/// # Errors
/// 400 naming an unknown field (a typo would otherwise cost the caller the field silently).
pub fn get_include(names: Option<&[String]>) -> Result<Include, ApiError> {
    let Some(names) = names else {
        return Ok(Include::ALL);
    };
    let mut include = Include::NONE;
    for name in names {
        include |= match name.as_str() {
            "vector" => Include::VECTOR,
            "contents" => Include::CONTENTS,
            "metadata" => Include::METADATA,
            "id" => Include::NONE,
            _ => return Err(unknown_field("get", name, "vector, contents, metadata")),
        };
    }
    Ok(include)
}

/// Which fields query results carry besides `id` and `distance` (always sent): `metadata`
/// and `vector`. Query results have no `contents` in either SDK's model: asking for them is
/// refused rather than ignored.
///
/// # Errors
/// 400 naming an unknown field, or `contents`.
pub fn query_include(names: Option<&[String]>) -> Result<Include, ApiError> {
    let mut include = Include::NONE;
    for name in names.unwrap_or_default() {
        include |= match name.as_str() {
            "vector" => Include::VECTOR,
            "metadata" => Include::METADATA,
            "distance" | "score" | "id" => Include::NONE,
            "contents" => {
                return Err(ApiError::bad_request(
                    "include: query results carry no contents (use /v1/vectors/get)",
                ));
            }
            _ => return Err(unknown_field("query", name, "distance, metadata, vector")),
        };
    }
    Ok(include)
}

/// An `include` name the endpoint does not know. Field names are the caller's own words,
/// never stored data, so the detail quotes it (shortened).
fn unknown_field(endpoint: &str, name: &str, known: &str) -> ApiError {
    let shown: String = name.chars().take(40).collect();
    ApiError::bad_request(format!(
        "include: unknown field {shown:?} for {endpoint} (known: {known})"
    ))
}

/// A query hit as the SDKs read it.
pub fn hit(hit: Hit, include: Include) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(hit.id));
    match hit.score {
        Some(score) => {
            out.insert("score".into(), json!(score));
        }
        None => {
            out.insert("distance".into(), json!(hit.distance));
        }
    }
    if include.contains(Include::METADATA) {
        out.insert(
            "metadata".into(),
            hit.metadata.unwrap_or_else(|| Value::Object(Map::new())),
        );
    }
    if include.contains(Include::VECTOR)
        && let Some(v) = hit.vector
    {
        out.insert("vector".into(), json!(v));
    }
    Value::Object(out)
}

/// A record of `get`: contents as base64 of the stored bytes (`""` when there are none),
/// metadata as stored (`{}` when there is none), as CyborgDB's service fills them.
pub fn record(record: Record, include: Include) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(record.id));
    if include.contains(Include::VECTOR)
        && let Some(v) = record.vector
    {
        out.insert("vector".into(), json!(v));
    }
    if include.contains(Include::CONTENTS) {
        let text = record
            .contents
            .map(|c| STANDARD.encode(c))
            .unwrap_or_default();
        out.insert("contents".into(), Value::String(text));
    }
    if include.contains(Include::METADATA) {
        out.insert(
            "metadata".into(),
            record.metadata.unwrap_or_else(|| Value::Object(Map::new())),
        );
    }
    Value::Object(out)
}

/// Little-endian `f32` rows from base64 (`vectors_b64`), `rows * dimension` of them.
///
/// # Errors
/// 400 when the text is not base64 or its length is not `rows * dimension * 4` bytes (or a
/// whole number of rows when `rows` is `None`).
pub fn rows_from_base64(
    text: &str,
    dimension: usize,
    rows: Option<usize>,
) -> Result<Vec<f32>, ApiError> {
    if dimension == 0 {
        return Err(ApiError::bad_request("dimension must be at least 1"));
    }
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::bad_request("vectors_b64 is not valid base64"))?;
    let row_bytes = dimension * 4;
    let whole = bytes.len().is_multiple_of(row_bytes) && !bytes.is_empty();
    let expected = rows.map(|r| r * row_bytes);
    if !whole || expected.is_some_and(|e| e != bytes.len()) {
        return Err(ApiError::bad_request(format!(
            "vectors_b64 holds {} bytes: expected {} ({} rows of {dimension} little-endian f32)",
            bytes.len(),
            expected.map_or_else(
                || "a multiple of 4 * dimension".to_string(),
                |e| e.to_string()
            ),
            rows.map_or_else(|| "whole".to_string(), |r| r.to_string()),
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyborgdb_and_ciphervec_type_names_map_to_the_same_kinds() {
        assert_eq!(kind(None, None, None).unwrap(), Kind::Flat);
        for name in ["ivfflat", "IVF", "ivf_flat"] {
            assert_eq!(kind(Some(name), None, None).unwrap(), Kind::Flat);
        }
        assert_eq!(
            kind(Some("ivfpq"), Some(32), Some(8)).unwrap(),
            Kind::Pq { pq_dim: 32 }
        );
        assert!(kind(Some("ivfpq"), Some(32), Some(6)).is_err());
        assert!(kind(Some("hnsw"), None, None).is_err());
        assert!(Kind::Pq { pq_dim: 5 }.config(384).is_err());
        assert_eq!(
            Kind::of(&Kind::Pq { pq_dim: 0 }.config(384).unwrap()),
            Kind::Pq { pq_dim: 96 }
        );
    }

    #[test]
    fn binary_rows_must_fill_exactly() {
        let floats = [1.0f32, -2.5, 3.25, 0.0, 5.0, 6.0];
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        let text = STANDARD.encode(&bytes);
        assert_eq!(rows_from_base64(&text, 3, Some(2)).unwrap(), floats);
        assert_eq!(rows_from_base64(&text, 3, None).unwrap(), floats);
        assert!(rows_from_base64(&text, 3, Some(3)).is_err());
        assert!(rows_from_base64(&text, 4, None).is_err());
        assert!(rows_from_base64("!!!", 3, None).is_err());
        assert!(rows_from_base64("", 3, None).is_err());
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [
            Metric::Euclidean,
            Metric::SquaredEuclidean,
            Metric::Cosine,
            Metric::InnerProduct,
        ] {
            assert_eq!(metric(Some(metric_name(m))).unwrap(), m);
        }
        assert!(metric(Some("bogus")).is_err());
    }
}
