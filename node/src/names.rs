//! The names of metrics and index types, as the API spells them everywhere ("euclidean",
//! "ivf_flat", ...). Kept here alone so that it becomes a call to the core's `FromStr` and
//! `Display` of `Metric` and `IndexType` once those land.

use ciphervec::{IndexConfig, IndexType, Metric};

/// The metric named `name` (any case).
pub(crate) fn metric_of(name: &str) -> Result<Metric, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "euclidean" => Metric::Euclidean,
        "squared_euclidean" => Metric::SquaredEuclidean,
        "cosine" => Metric::Cosine,
        "inner_product" => Metric::InnerProduct,
        _ => {
            return Err(format!(
                "metric is euclidean, squared_euclidean, cosine or inner_product; not {name:?}"
            ));
        }
    })
}

/// The name of a metric.
pub(crate) fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::SquaredEuclidean => "squared_euclidean",
        Metric::Cosine => "cosine",
        Metric::InnerProduct => "inner_product",
        _ => "euclidean",
    }
}

/// The name of an index type.
pub(crate) fn index_type_name(index_type: IndexType) -> &'static str {
    match index_type {
        IndexType::IvfSq8 => "ivf_sq8",
        IndexType::IvfPq { .. } => "ivf_pq",
        _ => "ivf_flat",
    }
}

/// The configuration of an index of type `name` (any case): `pq_m` subquantizers for
/// "ivf_pq" (default [`IndexConfig::default_subquantizers`]), refused with any other type
/// (ignored, it would leave the caller believing the index has codes).
pub(crate) fn config_of(
    name: &str,
    dimension: usize,
    pq_m: Option<usize>,
) -> Result<IndexConfig, String> {
    let name = name.to_ascii_lowercase();
    if pq_m.is_some() && name != "ivf_pq" {
        return Err("pqM applies to indexType 'ivf_pq' only".to_owned());
    }
    Ok(match name.as_str() {
        "ivf_flat" => IndexConfig::ivf_flat(dimension),
        "ivf_sq8" => IndexConfig::ivf_sq8(dimension),
        "ivf_pq" => IndexConfig::ivf_pq(
            dimension,
            pq_m.unwrap_or_else(|| IndexConfig::default_subquantizers(dimension)),
        ),
        _ => {
            return Err(format!(
                "indexType is ivf_flat, ivf_sq8 or ivf_pq; not {name:?}"
            ));
        }
    })
}
