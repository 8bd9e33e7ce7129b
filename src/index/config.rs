//! Index configuration and training options.

use crate::format::manifest::{StoredConfig, StoredIndexType, StoredMetric};
use crate::ivf::Width;
use crate::metric::Metric;

/// The kind of index.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexType {
    /// Inverted file over full-precision vectors (the default).
    IvfFlat,
    /// Inverted file scanning 8-bit scalar codes of the residuals, then re-ranking the best
    /// candidates exactly with the full vectors.
    IvfSq8,
    /// Inverted file scanning 4-bit product-quantization codes of the vectors
    /// (`n_subquantizers` codes per vector), then re-ranking exactly. A 6-bit (or 8-bit:
    /// [`IndexConfig::refine_bits`]) code of each vector, with a bound on its error, is kept
    /// too: an index holding only codes in RAM decrypts just the candidates whose exact
    /// distance could still make the results.
    IvfPq {
        /// Subquantizers; must divide the dimension.
        n_subquantizers: usize,
    },
}

/// The configuration of an index, fixed at creation.
///
/// ```
/// use ciphervec::{IndexConfig, Metric};
/// let config = IndexConfig::ivf_flat(384).metric(Metric::Cosine).n_probes(16);
/// assert_eq!(config.dimension(), 384);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    index_type: IndexType,
    dimension: usize,
    metric: Metric,
    n_lists: usize,
    n_probes: usize,
    full_text: bool,
    refine_bits: u8,
    auto_train: bool,
}

/// Bits per dimension of `ivf_pq`'s refine code unless [`IndexConfig::refine_bits`] says
/// otherwise.
const DEFAULT_REFINE_BITS: u8 = 6;

impl IndexConfig {
    /// An IVF-Flat index of `dimension`-dimensional vectors, Euclidean, lists and probes chosen
    /// automatically.
    pub fn ivf_flat(dimension: usize) -> IndexConfig {
        IndexConfig {
            index_type: IndexType::IvfFlat,
            dimension,
            metric: Metric::Euclidean,
            n_lists: 0,
            n_probes: 0,
            full_text: false,
            refine_bits: DEFAULT_REFINE_BITS,
            auto_train: true,
        }
    }

    /// An IVF index over 8-bit scalar codes with exact re-ranking (see [`IndexType::IvfSq8`]).
    pub fn ivf_sq8(dimension: usize) -> IndexConfig {
        IndexConfig {
            index_type: IndexType::IvfSq8,
            ..IndexConfig::ivf_flat(dimension)
        }
    }

    /// An IVF index over 4-bit product-quantization codes with exact re-ranking (see
    /// [`IndexType::IvfPq`]). `n_subquantizers` must divide `dimension`.
    pub fn ivf_pq(dimension: usize, n_subquantizers: usize) -> IndexConfig {
        IndexConfig {
            index_type: IndexType::IvfPq { n_subquantizers },
            ..IndexConfig::ivf_flat(dimension)
        }
    }

    /// The number of subquantizers the Python package and the command line give an
    /// `ivf_pq` index when none is asked for: the largest divisor of `dimension` that is at
    /// most `dimension / 4` (so 4 or more dimensions per 4-bit code: `d / 4` when 4 divides
    /// `d`, 6 for 30 dimensions, 1 for a prime), at least 1.
    ///
    /// ```
    /// use ciphervec::IndexConfig;
    /// assert_eq!(IndexConfig::default_subquantizers(384), 96);
    /// assert_eq!(IndexConfig::default_subquantizers(30), 6);
    /// assert_eq!(IndexConfig::default_subquantizers(13), 1);
    /// ```
    pub fn default_subquantizers(dimension: usize) -> usize {
        (1..=(dimension / 4).max(1))
            .rev()
            .find(|&m| dimension.is_multiple_of(m))
            .unwrap_or(1)
    }

    /// Sets the metric (default [`Metric::Euclidean`]).
    pub fn metric(mut self, metric: Metric) -> IndexConfig {
        self.metric = metric;
        self
    }

    /// Sets the number of lists trained (0, the default, chooses about `4 * sqrt(n)`, or
    /// `sqrt(n)` for `ivf_pq`).
    pub fn n_lists(mut self, n: usize) -> IndexConfig {
        self.n_lists = n;
        self
    }

    /// Sets the default number of lists a query probes (0, the default, probes about 1/12
    /// of the lists, 1/4 for `ivf_pq`, and a larger share in indexes of fewer than about
    /// 60,000 items, whose lists are few and short, or whose lists were trained for fewer
    /// items than they now hold: see `docs/DESIGN.md`, Defaults).
    pub fn n_probes(mut self, n: usize) -> IndexConfig {
        self.n_probes = n;
        self
    }

    /// Turns on full-text search over contents (default off): every item's UTF-8 contents
    /// are indexed for BM25 ([`Query::text_only`](crate::Query::text_only)) and hybrid
    /// ([`Query::text`](crate::Query::text)) queries. The posting index lives in memory only,
    /// built from the sealed contents when the index opens; see `docs/DESIGN.md`.
    pub fn full_text(mut self, on: bool) -> IndexConfig {
        self.full_text = on;
        self
    }

    /// Turns self-maintenance on or off (default on). With it on, the index trains itself
    /// in the background once it holds 10,000 items (queries are exact until then),
    /// retrains in the background when it has grown to twice (or shrunk to half) the size
    /// it was trained at, and between trainings splits lists that grew too long (when the
    /// list count is automatic), each step one crash-safe commit: an application that only
    /// upserts and queries gets a trained, balanced index without calling
    /// [`train`](crate::EncryptedIndex::train). Writes and queries go on while a training
    /// runs; the writes that trigger these steps are what runs them, so a process that
    /// exits while a training runs loses only that training (the next write starts it
    /// again). Off, the index trains only when `train` is called and its lists stay as
    /// trained. Indexes written by 0.1.0 (format 7) have it off. See
    /// [`EncryptedIndex::training_status`](crate::EncryptedIndex::training_status) and
    /// `docs/DESIGN.md` (Self-maintenance).
    ///
    /// ```
    /// use ciphervec::IndexConfig;
    /// assert!(IndexConfig::ivf_flat(8).is_auto_train());
    /// assert!(!IndexConfig::ivf_flat(8).auto_train(false).is_auto_train());
    /// ```
    pub fn auto_train(mut self, on: bool) -> IndexConfig {
        self.auto_train = on;
        self
    }

    /// Whether the index maintains itself (see [`auto_train`](Self::auto_train)).
    pub fn is_auto_train(&self) -> bool {
        self.auto_train
    }

    /// Sets the bits per dimension of `ivf_pq`'s refine code: 6 (the default) or 8. An index
    /// that holds only codes in RAM (over its cache budget) re-ranks by decrypting candidate
    /// vectors in order of a lower bound on their distance, which the refine code gives, and
    /// stops where the bound proves the rest cannot make the results. 8 bits quarter the
    /// code's error, so fewer vectors are decrypted (on 384-d sentence embeddings, 13 per
    /// query instead of 21 at `top_k` 10 and a re-rank of 5; 10% to 20% more codes-only
    /// queries per second) for one more byte in RAM per 4 dimensions (96 bytes per 384-d
    /// vector). Results
    /// are the same either way. Other index types refuse any value but the default
    /// ([`Error::InvalidArgument`](crate::Error::InvalidArgument) from
    /// [`Database::create_index`](crate::Database::create_index)), as does any other value.
    ///
    /// ```
    /// use ciphervec::IndexConfig;
    /// let config = IndexConfig::ivf_pq(384, 96).refine_bits(8);
    /// assert_eq!(config.refine_code_bits(), 8);
    /// assert_eq!(IndexConfig::ivf_pq(384, 96).refine_code_bits(), 6);
    /// ```
    pub fn refine_bits(mut self, bits: u8) -> IndexConfig {
        self.refine_bits = bits;
        self
    }

    /// The bits per dimension of `ivf_pq`'s refine code (see [`refine_bits`](Self::refine_bits)).
    pub fn refine_code_bits(&self) -> u8 {
        self.refine_bits
    }

    /// Whether the configuration is one an index can be created with, beyond the
    /// dimension: `Err` with the reason otherwise.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        match self.index_type {
            IndexType::IvfPq { n_subquantizers: m }
                if m == 0 || !self.dimension.is_multiple_of(m) =>
            {
                Err("n_subquantizers must be at least 1 and divide the dimension")
            }
            IndexType::IvfPq { .. } if !matches!(self.refine_bits, 6 | 8) => {
                Err("refine_bits must be 6 or 8")
            }
            IndexType::IvfFlat | IndexType::IvfSq8 if self.refine_bits != DEFAULT_REFINE_BITS => {
                Err("refine_bits applies to ivf_pq only")
            }
            _ => Ok(()),
        }
    }

    /// The refine code's width (valid once [`check`](Self::check) passed).
    pub(crate) fn refine_width(&self) -> Width {
        if self.refine_bits == 8 {
            Width::Eight
        } else {
            Width::Six
        }
    }

    /// Whether full-text search is on.
    pub fn is_full_text(&self) -> bool {
        self.full_text
    }

    /// The index type.
    pub fn index_type(&self) -> IndexType {
        self.index_type
    }

    /// Whether the type scans codes (`ivf_sq8`, `ivf_pq`): its vectors are then stored as
    /// records of their own, for the re-rank to decrypt one by one.
    pub(crate) fn is_quantized(&self) -> bool {
        self.index_type != IndexType::IvfFlat
    }

    /// The vector dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The metric.
    pub fn distance_metric(&self) -> Metric {
        self.metric
    }

    /// The configured number of lists (0 = automatic).
    pub fn lists(&self) -> usize {
        self.n_lists
    }

    /// The configured default probes (0 = automatic).
    pub fn probes(&self) -> usize {
        self.n_probes
    }

    pub(crate) fn to_stored(&self) -> StoredConfig {
        StoredConfig {
            index_type: match self.index_type {
                IndexType::IvfFlat => StoredIndexType::IvfFlat,
                IndexType::IvfSq8 => StoredIndexType::IvfSq8,
                IndexType::IvfPq { n_subquantizers } if self.refine_width() == Width::Eight => {
                    StoredIndexType::IvfPqRefine8(n_subquantizers as u32)
                }
                IndexType::IvfPq { n_subquantizers } => {
                    StoredIndexType::IvfPq(n_subquantizers as u32)
                }
            },
            dimension: self.dimension as u32,
            metric: match self.metric {
                Metric::Euclidean => StoredMetric::Euclidean,
                Metric::SquaredEuclidean => StoredMetric::SquaredEuclidean,
                Metric::Cosine => StoredMetric::Cosine,
                Metric::InnerProduct => StoredMetric::InnerProduct,
            },
            n_lists: self.n_lists as u32,
            n_probes: self.n_probes as u32,
            full_text: self.full_text,
            auto_train: self.auto_train,
        }
    }

    pub(crate) fn from_stored(s: &StoredConfig) -> IndexConfig {
        IndexConfig {
            index_type: match s.index_type {
                StoredIndexType::IvfFlat => IndexType::IvfFlat,
                StoredIndexType::IvfSq8 => IndexType::IvfSq8,
                StoredIndexType::IvfPq(m) | StoredIndexType::IvfPqRefine8(m) => IndexType::IvfPq {
                    n_subquantizers: m as usize,
                },
            },
            dimension: s.dimension as usize,
            metric: match s.metric {
                StoredMetric::Euclidean => Metric::Euclidean,
                StoredMetric::SquaredEuclidean => Metric::SquaredEuclidean,
                StoredMetric::Cosine => Metric::Cosine,
                StoredMetric::InnerProduct => Metric::InnerProduct,
            },
            n_lists: s.n_lists as usize,
            n_probes: s.n_probes as usize,
            full_text: s.full_text,
            refine_bits: match s.index_type {
                StoredIndexType::IvfPqRefine8(_) => 8,
                _ => DEFAULT_REFINE_BITS,
            },
            auto_train: s.auto_train,
        }
    }
}

/// Options of [`crate::EncryptedIndex::train_with`]. Training is reproducible: its random
/// choices use a fixed seed.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Number of lists; 0 uses the config's, or about `4 * sqrt(n)` if that is 0 too.
    pub n_lists: usize,
    /// Maximum k-means iterations (default 20).
    pub max_iters: usize,
    /// Stop when the objective improves by less than this fraction (default 1e-4).
    pub tolerance: f32,
    /// Train on at most this many vectors; 0 (default) means 64 per list, 256 for `ivf_pq`
    /// (FAISS warns below 39; more points per list cost training time).
    pub sample_size: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            n_lists: 0,
            max_iters: 20,
            tolerance: 1e-4,
            sample_size: 0,
        }
    }
}
