//! Index configuration and training options, and the names of index types and metrics.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::format::manifest::{StoredConfig, StoredField, StoredIndexType, StoredMetric};
use crate::format::vectors::VectorCoding;
use crate::ivf::Width;
use crate::metric::Metric;
use crate::text::Bm25;

use super::schema::{FieldSchema, MetadataSchema};

/// The kind of index.
///
/// Its names, the one vocabulary every leaf (the command line, the Python package) uses:
/// `ivf_flat`, `ivf_sq8`, `ivf_pq`. [`Display`](fmt::Display) writes them and [`FromStr`]
/// reads them, in any case. A name carries no parameter, so `"ivf_pq"` reads as
/// `IvfPq { n_subquantizers: 0 }`, which [`IndexConfig::new`] reads as "the default for the
/// dimension" ([`IndexConfig::default_subquantizers`]); [`IndexConfig::n_subquantizers`]
/// sets another.
///
/// ```
/// use ciphervec::{IndexConfig, IndexType};
/// let t: IndexType = "ivf_pq".parse().unwrap();
/// assert_eq!(t, IndexType::IvfPq { n_subquantizers: 0 });
/// let config = IndexConfig::new(384, t);
/// assert_eq!(config.index_type(), IndexType::IvfPq { n_subquantizers: 96 });
/// assert_eq!(config.index_type().to_string(), "ivf_pq");
/// assert_eq!("IVF_SQ8".parse::<IndexType>().unwrap(), IndexType::IvfSq8);
/// assert!("hnsw".parse::<IndexType>().is_err()); // InvalidArgument naming the three names
/// ```
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
        /// Subquantizers; must divide the dimension. 0 in a type read from its name: the
        /// default for the dimension, chosen by [`IndexConfig::new`].
        n_subquantizers: usize,
    },
}

impl IndexType {
    /// Every index type, in the order of the names above (`IvfPq` with 0 subquantizers, as
    /// its name reads). A new type is added here, and so reaches every leaf's parser and
    /// every test that walks this list.
    pub const ALL: [IndexType; 3] = [
        IndexType::IvfFlat,
        IndexType::IvfSq8,
        IndexType::IvfPq { n_subquantizers: 0 },
    ];

    /// The canonical name (what [`Display`](fmt::Display) writes).
    pub fn name(self) -> &'static str {
        match self {
            IndexType::IvfFlat => "ivf_flat",
            IndexType::IvfSq8 => "ivf_sq8",
            IndexType::IvfPq { .. } => "ivf_pq",
        }
    }
}

/// How an index stores the vectors it re-ranks with (and returns from
/// [`EncryptedIndex::get`](crate::EncryptedIndex::get)): `ivf_flat`'s list vectors, the
/// quantized types' per-item vector records. Fixed at creation.
///
/// A vector is rounded to the precision when it is written, and the index then holds and
/// answers with the rounded values everywhere: distances, re-ranks, `get` and
/// [`Include::VECTOR`](crate::Include::VECTOR) all see what is stored, in every process and
/// after every reopen, compaction and rotation.
///
/// ```
/// use ciphervec::StoragePrecision;
/// assert_eq!("float16".parse::<StoragePrecision>()?, StoragePrecision::Float16);
/// assert_eq!(StoragePrecision::Int8.to_string(), "int8");
/// assert_eq!(StoragePrecision::default(), StoragePrecision::Float32);
/// # Ok::<(), ciphervec::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StoragePrecision {
    /// 4 bytes per dimension: the vectors as given (the default).
    #[default]
    Float32,
    /// 2 bytes per dimension: IEEE half precision (11 significant bits, round to nearest
    /// even), through the `half` crate. A value beyond half's range (about 65,504 in
    /// magnitude) makes the write fail with
    /// [`Error::InvalidVector`](crate::Error::InvalidVector).
    Float16,
    /// 1 byte per dimension and a 4-byte scale per vector: `x_i = q_i * s` with `q_i` an
    /// integer in `[-127, 127]` and `s` the vector's largest magnitude divided by 127,
    /// rounded up to 17 significant bits (so that every `q_i * s` is exact and rounding a
    /// stored vector again changes nothing). Each value is off by at most `s / 2`.
    Int8,
}

impl StoragePrecision {
    /// Every precision, in the order of the names below. A new one is added here, and so
    /// reaches every leaf's parser.
    pub const ALL: [StoragePrecision; 3] = [
        StoragePrecision::Float32,
        StoragePrecision::Float16,
        StoragePrecision::Int8,
    ];

    /// The name [`FromStr`] reads: `"float32"`, `"float16"` or `"int8"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoragePrecision::Float32 => "float32",
            StoragePrecision::Float16 => "float16",
            StoragePrecision::Int8 => "int8",
        }
    }

    /// The byte layout the format stores vectors of this precision in.
    pub(crate) fn coding(self) -> VectorCoding {
        match self {
            StoragePrecision::Float32 => VectorCoding::F32,
            StoragePrecision::Float16 => VectorCoding::F16,
            StoragePrecision::Int8 => VectorCoding::I8,
        }
    }

    fn from_coding(coding: VectorCoding) -> StoragePrecision {
        match coding {
            VectorCoding::F32 => StoragePrecision::Float32,
            VectorCoding::F16 => StoragePrecision::Float16,
            VectorCoding::I8 => StoragePrecision::Int8,
        }
    }
}

impl fmt::Display for IndexType {
    /// The name alone: `IvfPq`'s subquantizers are a parameter of the configuration
    /// (read them from the variant), not part of the name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IndexType {
    type Err = Error;

    /// An index type by its canonical name, in any case (`ivf_pq` with 0 subquantizers:
    /// see [`IndexConfig::new`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted names.
    fn from_str(text: &str) -> Result<IndexType, Error> {
        Error::by_name("an index type", IndexType::ALL, IndexType::name, text)
    }
}

// Here rather than beside `Metric`: the `ivf` layer knows no `Error`.
impl FromStr for Metric {
    type Err = Error;

    /// A metric by its canonical name ([`Metric::name`]), in any case.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted names.
    fn from_str(text: &str) -> Result<Metric, Error> {
        Error::by_name("a metric", Metric::ALL, Metric::name, text)
    }
}

impl fmt::Display for StoragePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoragePrecision {
    type Err = Error;

    /// `"float32"`, `"float16"` or `"int8"`, in any case.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted names.
    fn from_str(text: &str) -> Result<StoragePrecision, Error> {
        Error::by_name(
            "a storage precision",
            StoragePrecision::ALL,
            StoragePrecision::as_str,
            text,
        )
    }
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
    /// [`IndexConfig::n_subquantizers`] was given for a type without them: refused at
    /// creation rather than ignored (the caller would believe the index has codes).
    stray_subquantizers: bool,
    schema: MetadataSchema,
    /// A field [`IndexConfig::text_fields`] names that the schema names otherwise (refused by
    /// [`IndexConfig::check`]).
    schema_conflict: Option<String>,
    /// BM25's `k1` and `b`, as bits (so that the configuration stays `Eq`).
    bm25: (u32, u32),
    precision: StoragePrecision,
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
            stray_subquantizers: false,
            schema: MetadataSchema::new(),
            schema_conflict: None,
            bm25: bm25_bits(Bm25::default()),
            precision: StoragePrecision::Float32,
            auto_train: true,
        }
    }

    /// An index of `index_type` (as [`ivf_flat`](Self::ivf_flat), [`ivf_sq8`](Self::ivf_sq8)
    /// or [`ivf_pq`](Self::ivf_pq)), for callers that hold the type as a value, such as one
    /// read from its name. An `IvfPq` with 0 subquantizers (as `"ivf_pq".parse()` gives)
    /// gets [`default_subquantizers`](Self::default_subquantizers) of the dimension.
    ///
    /// ```
    /// use ciphervec::{IndexConfig, IndexType, Metric};
    /// let config = IndexConfig::new(64, "ivf_sq8".parse()?).metric("cosine".parse()?);
    /// assert_eq!(config, IndexConfig::ivf_sq8(64).metric(Metric::Cosine));
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    pub fn new(dimension: usize, index_type: IndexType) -> IndexConfig {
        match index_type {
            IndexType::IvfFlat => IndexConfig::ivf_flat(dimension),
            IndexType::IvfSq8 => IndexConfig::ivf_sq8(dimension),
            IndexType::IvfPq { n_subquantizers: 0 } => {
                IndexConfig::ivf_pq(dimension, IndexConfig::default_subquantizers(dimension))
            }
            IndexType::IvfPq { n_subquantizers } => IndexConfig::ivf_pq(dimension, n_subquantizers),
        }
    }

    /// Sets the subquantizers of an `ivf_pq` index (which must divide the dimension). On
    /// any other type it is refused when the index is created
    /// ([`Error::InvalidArgument`](crate::Error::InvalidArgument) from
    /// [`Database::create_index`](crate::Database::create_index)), not ignored: the caller
    /// would believe the index had codes.
    ///
    /// ```
    /// use ciphervec::{IndexConfig, IndexType};
    /// let config = IndexConfig::new(384, "ivf_pq".parse()?).n_subquantizers(48);
    /// assert_eq!(config.index_type(), IndexType::IvfPq { n_subquantizers: 48 });
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    pub fn n_subquantizers(mut self, m: usize) -> IndexConfig {
        match &mut self.index_type {
            IndexType::IvfPq { n_subquantizers } => *n_subquantizers = m,
            IndexType::IvfFlat | IndexType::IvfSq8 => self.stray_subquantizers = true,
        }
        self
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

    /// Sets the metadata schema (see [`MetadataSchema`]): which fields the in-memory metadata
    /// indexes hold, which keep a pattern dictionary for `$regex`/`$contains`, which are text
    /// fields for BM25. Merged with [`text_fields`](Self::text_fields) in either order; a
    /// field both name differently, or an invalid schema, makes
    /// [`Database::create_index`](crate::Database::create_index) fail with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn metadata_schema(mut self, schema: MetadataSchema) -> IndexConfig {
        let text: Vec<String> = self.schema.text_fields().map(str::to_owned).collect();
        let mut merged = schema;
        for name in text {
            match merged.named(&name) {
                Some(f) if !f.full_text => {
                    self.schema_conflict.get_or_insert(name);
                }
                _ => merged = merged.with_field(&name, FieldSchema::FULL_TEXT),
            }
        }
        self.schema = merged;
        self
    }

    /// Marks metadata string fields as text fields for BM25 (shorthand for naming each
    /// [`FieldSchema::FULL_TEXT`] in the schema): text and hybrid queries search them
    /// (with the contents, when [`full_text`](Self::full_text) is on), by name through
    /// [`Query::text_fields`](crate::Query::text_fields). A text field's string (or the
    /// strings of an array there) is analyzed as contents are; it is not filterable.
    pub fn text_fields(mut self, fields: &[&str]) -> IndexConfig {
        for &name in fields {
            if self.schema.named(name).is_some_and(|f| !f.full_text) {
                self.schema_conflict.get_or_insert_with(|| name.to_owned());
            } else {
                self.schema =
                    std::mem::take(&mut self.schema).with_field(name, FieldSchema::FULL_TEXT);
            }
        }
        self
    }

    /// BM25's parameters for this index's text queries (defaults `k1` 1.2, `b` 0.75, as
    /// Lucene's; `k1` finite and at least 0, `b` in `[0, 1]`, else
    /// [`Database::create_index`](crate::Database::create_index) fails with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument)).
    /// [`Query::bm25`](crate::Query::bm25) overrides them for one query.
    pub fn bm25(mut self, k1: f32, b: f32) -> IndexConfig {
        self.bm25 = bm25_bits(Bm25 { k1, b });
        self
    }

    /// How re-rank vectors are stored (default [`StoragePrecision::Float32`]): every index
    /// type and metric takes every precision.
    pub fn storage_precision(mut self, precision: StoragePrecision) -> IndexConfig {
        self.precision = precision;
        self
    }

    /// The metadata schema (text fields included).
    pub fn schema(&self) -> &MetadataSchema {
        &self.schema
    }

    /// BM25's `(k1, b)`.
    pub fn bm25_params(&self) -> (f32, f32) {
        (f32::from_bits(self.bm25.0), f32::from_bits(self.bm25.1))
    }

    /// How re-rank vectors are stored.
    pub fn precision(&self) -> StoragePrecision {
        self.precision
    }

    /// BM25's parameters.
    pub(crate) fn bm25_defaults(&self) -> Bm25 {
        let (k1, b) = self.bm25_params();
        Bm25 { k1, b }
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
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.stray_subquantizers {
            return Err("n_subquantizers (pq_m) applies to ivf_pq only".to_string());
        }
        if let Some(name) = &self.schema_conflict {
            return Err(format!(
                "field '{name}' is a text field and named otherwise in the metadata schema"
            ));
        }
        let reason = |e: Error| match e {
            Error::InvalidArgument { reason } => reason,
            other => other.to_string(),
        };
        self.schema.check().map_err(reason)?;
        super::validate::bm25_params(self.bm25_defaults()).map_err(reason)?;
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
        .map_err(str::to_owned)
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
            schema: self
                .schema
                .fields()
                .map(|(path, f)| StoredField {
                    path: path.to_owned(),
                    filterable: f.filterable,
                    pattern: f.pattern,
                    full_text: f.full_text,
                })
                .collect(),
            bm25: self.bm25,
            vectors: self.precision.coding(),
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
            stray_subquantizers: false,
            schema: MetadataSchema::from_stored(&s.schema),
            schema_conflict: None,
            bm25: s.bm25,
            precision: StoragePrecision::from_coding(s.vectors),
            auto_train: s.auto_train,
        }
    }
}

/// BM25's parameters as the configuration keeps them.
fn bm25_bits(p: Bm25) -> (u32, u32) {
    (p.k1.to_bits(), p.b.to_bits())
}

/// Options of [`crate::EncryptedIndex::train_with`]. Training is reproducible: its random
/// choices use a fixed seed.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Number of lists; 0 uses the config's, or about `4 * sqrt(n)` if that is 0 too.
    pub n_lists: usize,
    /// Maximum k-means iterations (default 10, as FAISS's IVF trains its coarse quantizer:
    /// 20 gave the same recall@10 within 0.001 on sentence embeddings, at twice the k-means
    /// time).
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
            max_iters: 10,
            tolerance: 1e-4,
            sample_size: 0,
        }
    }
}
