//! [`Coder`]: how a quantized index encodes a vector (the residual to its list's centroid)
//! and the per-list terms of PQ under L2.

use std::sync::Arc;

use crate::ivf::{self, Codec, Quantizer};
use crate::metric::Metric;

/// Encodes vectors for a quantized index: the residual of the (for cosine: normalized)
/// vector to its list's centroid.
#[derive(Clone)]
pub(crate) struct Coder {
    /// The trained codec.
    pub codec: Arc<Codec>,
    /// The metric (cosine codes normalized vectors).
    pub metric: Metric,
    /// PQ under L2: the precomputed list terms of every list (`Codec::pq_list_terms`),
    /// concatenated; empty otherwise.
    pub list_terms: Arc<Vec<f32>>,
}

impl Coder {
    /// A coder for `codec` under `metric` over the lists of `quantizer`.
    pub(crate) fn new(codec: Codec, metric: Metric, quantizer: &Quantizer) -> Coder {
        let list_terms = list_terms(&codec, metric, quantizer);
        Coder {
            codec: Arc::new(codec),
            metric,
            list_terms: Arc::new(list_terms),
        }
    }

    /// The same code over the lists of `quantizer` (after a split moved centroids): its
    /// per-list terms computed anew.
    pub(crate) fn for_quantizer(&self, quantizer: &Quantizer) -> Coder {
        Coder {
            codec: self.codec.clone(),
            metric: self.metric,
            list_terms: Arc::new(list_terms(&self.codec, self.metric, quantizer)),
        }
    }

    /// Whether codes depend on their list's centroid (residual codes): an item whose list's
    /// centroid moves needs a new code.
    pub(crate) fn is_residual(&self) -> bool {
        self.codec.is_residual()
    }

    /// The code of `vector` in list `list` of `quantizer`.
    pub(crate) fn encode(&self, quantizer: &Quantizer, list: u32, vector: &[f32]) -> Vec<u8> {
        let prepared = ivf::prepare_query(vector, self.metric);
        let residual: Vec<f32> = prepared
            .iter()
            .zip(self.codec.origin(quantizer.centroid(list)))
            .map(|(v, c)| v - c)
            .collect();
        let mut code = Vec::with_capacity(self.codec.code_len(vector.len()));
        self.codec.encode(&residual, &mut code);
        code
    }
}

/// PQ under L2: the precomputed list terms of every list of `quantizer`
/// (`Codec::pq_list_terms`), concatenated; empty otherwise.
fn list_terms(codec: &Codec, metric: Metric, quantizer: &Quantizer) -> Vec<f32> {
    let l2 = matches!(metric, Metric::Euclidean | Metric::SquaredEuclidean);
    // Codes of vectors share one set of terms; residual codes have a set per list.
    let sets = if codec.is_residual() {
        quantizer.n_lists() as u32
    } else {
        1
    };
    if l2 {
        (0..sets)
            .flat_map(|l| codec.pq_list_terms(codec.origin(quantizer.centroid(l))))
            .collect()
    } else {
        Vec::new()
    }
}
