//! Distance metrics. Every distance is "smaller is closer".

use serde::{Deserialize, Serialize};

use crate::kernel;

/// How distance between vectors is measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Euclidean (L2) distance. The default.
    #[default]
    Euclidean,
    /// Squared Euclidean distance (same ranking as Euclidean, no square root).
    SquaredEuclidean,
    /// Cosine distance, `1 - cos(a, b)`. Zero vectors are rejected.
    Cosine,
    /// Negated inner product, `-(a . b)`.
    InnerProduct,
}

impl Metric {
    /// The exact distance between two vectors under this metric.
    pub(crate) fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Euclidean => kernel::l2sq(a, b).sqrt(),
            Metric::SquaredEuclidean => kernel::l2sq(a, b),
            Metric::Cosine => kernel::cosine_distance(a, b),
            Metric::InnerProduct => -kernel::dot(a, b),
        }
    }

    /// Whether the coarse quantizer ranks centroids by inner product (on normalized vectors
    /// for cosine) rather than by L2.
    pub(crate) fn uses_inner_product(self) -> bool {
        matches!(self, Metric::Cosine | Metric::InnerProduct)
    }
}
