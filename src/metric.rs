//! Distance metrics. Every distance is "smaller is closer".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kernel;

/// How distance between vectors is measured.
///
/// Its names, the one vocabulary every leaf (the command line, the Python package) uses:
/// `euclidean`, `squared_euclidean`, `cosine`, `inner_product`. [`Display`](fmt::Display)
/// writes them and [`FromStr`](std::str::FromStr) reads them back, in any case.
///
/// ```
/// use ciphervec::Metric;
/// assert_eq!("inner_product".parse::<Metric>().unwrap(), Metric::InnerProduct);
/// assert_eq!("Cosine".parse::<Metric>().unwrap(), Metric::Cosine);
/// assert_eq!(Metric::SquaredEuclidean.to_string(), "squared_euclidean");
/// assert!("l2".parse::<Metric>().is_err()); // InvalidArgument naming the four names
/// ```
#[non_exhaustive]
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
    /// Every metric, in the order of the names above (a new metric is added here, and so
    /// reaches every leaf's parser and every test that walks this list).
    pub const ALL: [Metric; 4] = [
        Metric::Euclidean,
        Metric::SquaredEuclidean,
        Metric::Cosine,
        Metric::InnerProduct,
    ];

    /// The canonical name (what [`Display`](fmt::Display) writes).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::SquaredEuclidean => "squared_euclidean",
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "inner_product",
        }
    }

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

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
