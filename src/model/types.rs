//! Values the caller passes in and gets back: items, queries, hits, records.

use std::ops::{BitOr, BitOrAssign};

use serde_json::Value;

use crate::filter::{MAX_JSON_DEPTH, drop_iteratively, json_deeper_than};
use crate::text::Bm25;

/// A JSON argument as the crate keeps it: a document, or the mark of one nested deeper than
/// [`MAX_JSON_DEPTH`], which was dropped at once (without recursion) and is refused when used.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JsonArg {
    /// A document within the depth limit.
    Value(Value),
    /// A document nested too deep.
    TooDeep,
}

impl JsonArg {
    fn new(value: Value) -> JsonArg {
        if json_deeper_than(&value, MAX_JSON_DEPTH) {
            drop_iteratively(value);
            JsonArg::TooDeep
        } else {
            JsonArg::Value(value)
        }
    }
}

/// One item to insert: an id, a vector, and optional contents and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub(crate) id: String,
    pub(crate) vector: Vec<f32>,
    pub(crate) contents: Option<Vec<u8>>,
    pub(crate) metadata: Option<JsonArg>,
}

impl Item {
    /// An item with an id and a vector.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Item {
        Item {
            id: id.into(),
            vector,
            contents: None,
            metadata: None,
        }
    }

    /// Attaches contents (opaque bytes, encrypted at rest).
    pub fn with_contents(mut self, bytes: impl Into<Vec<u8>>) -> Item {
        self.contents = Some(bytes.into());
        self
    }

    /// Attaches metadata, a JSON object (encrypted at rest, usable in filters), nested at
    /// most 64 levels deep (deeper metadata makes `upsert` fail with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument)).
    pub fn with_metadata(mut self, value: Value) -> Item {
        self.metadata = Some(JsonArg::new(value));
        self
    }

    /// Replaces the vector: for readers that hold an item's vector in another form than its
    /// JSON (a NumPy array, a float parser of their own) and read the rest with
    /// [`Item::from_json`].
    ///
    /// ```
    /// use ciphervec::Item;
    /// let item = Item::from_json(&serde_json::json!({"id": "a", "vector": []}))?.with_vector(vec![0.5, 1.0]);
    /// assert_eq!(item.vector(), &[0.5, 1.0]);
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    pub fn with_vector(mut self, vector: Vec<f32>) -> Item {
        self.vector = vector;
        self
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The vector.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    /// The contents, if any.
    pub fn contents(&self) -> Option<&[u8]> {
        self.contents.as_deref()
    }

    /// The metadata, if any (`None` too for metadata nested deeper than 64 levels, which
    /// `upsert` refuses).
    pub fn metadata(&self) -> Option<&Value> {
        match &self.metadata {
            Some(JsonArg::Value(v)) => Some(v),
            _ => None,
        }
    }
}

/// Which stored fields a read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Include(u8);

impl Include {
    /// Only ids (and distances).
    pub const NONE: Include = Include(0);
    /// The metadata.
    pub const METADATA: Include = Include(1);
    /// The contents.
    pub const CONTENTS: Include = Include(2);
    /// The vector.
    pub const VECTOR: Include = Include(4);
    /// Everything.
    pub const ALL: Include = Include(7);

    /// Whether every field of `other` is included.
    pub fn contains(self, other: Include) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Include {
    type Output = Include;
    fn bitor(self, rhs: Include) -> Include {
        Include(self.0 | rhs.0)
    }
}

impl BitOrAssign for Include {
    fn bitor_assign(&mut self, rhs: Include) {
        self.0 |= rhs.0;
    }
}

/// The text part of a query ([`Query::text`], [`Query::text_only`],
/// [`MetadataQuery::text`]): the words and where BM25 looks for them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TextSpec {
    /// The words, if the query has a text part.
    pub words: Option<String>,
    /// The text fields searched (`None`: every full-text field of the index).
    pub fields: Option<Vec<String>>,
    /// A weight per field of `fields` (or of the default list), each finite and at least 0.
    pub weights: Option<Vec<f32>>,
    /// Only items that hold every distinct token (in any searched field) match.
    pub require_all: bool,
    /// BM25's parameters for this query (`None`: the index's).
    pub bm25: Option<Bm25>,
}

/// Depth of each leg of a hybrid query, as a multiple of `top_k`, unless
/// [`Query::window_mult`] says otherwise.
pub(crate) const DEFAULT_WINDOW_MULT: usize = 3;
/// Weight of the vector leg of a hybrid query unless [`Query::hybrid_alpha`] says otherwise.
pub(crate) const DEFAULT_ALPHA: f32 = 0.5;
/// Rank offset of reciprocal rank fusion unless [`Query::rrf_k`] says otherwise (Cormack et
/// al. 2009).
pub(crate) const DEFAULT_RRF_K: f32 = 60.0;

/// A query: a nearest-neighbour query ([`Query::new`]), a full-text query
/// ([`Query::text_only`]) or both at once (a hybrid query, [`Query::text`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub(crate) vector: Vec<f32>,
    pub(crate) top_k: usize,
    pub(crate) n_probes: Option<usize>,
    pub(crate) filter: Option<JsonArg>,
    pub(crate) include: Include,
    pub(crate) rerank: Option<usize>,
    pub(crate) text: TextSpec,
    pub(crate) alpha: f32,
    pub(crate) rrf_k: f32,
    pub(crate) window_mult: usize,
}

impl Query {
    /// A query for the 10 nearest neighbours of `vector`.
    pub fn new(vector: Vec<f32>) -> Query {
        Query {
            vector,
            top_k: 10,
            n_probes: None,
            filter: None,
            include: Include::NONE,
            rerank: None,
            text: TextSpec::default(),
            alpha: DEFAULT_ALPHA,
            rrf_k: DEFAULT_RRF_K,
            window_mult: DEFAULT_WINDOW_MULT,
        }
    }

    /// A full-text query: the items whose text best matches `words` under BM25 (see
    /// `docs/DESIGN.md` for the tokenizer and the formula), best first. It searches every
    /// full-text field of the index (the contents with
    /// [`IndexConfig::full_text`](crate::IndexConfig::full_text), and each of
    /// [`IndexConfig::text_fields`](crate::IndexConfig::text_fields)) unless
    /// [`Query::text_fields`] names some. Hits carry [`Hit::score`], and `distance` is
    /// `-score`. Words that hold no token match nothing.
    pub fn text_only(words: &str) -> Query {
        Query::new(Vec::new()).text(words)
    }

    /// Makes a vector query hybrid: the vector ranking and the BM25 ranking of `words` are
    /// merged by weighted reciprocal rank fusion, an item scoring
    /// `alpha / (rrf_k + rank_vector) + (1 - alpha) / (rrf_k + rank_text)` (ranks from 1, a
    /// ranking that does not hold the item adding nothing; [`Query::hybrid_alpha`] 0.5 and
    /// [`Query::rrf_k`] 60 by default). Each ranking contributes its best
    /// `window_mult * top_k` items ([`Query::window_mult`], 3 by default). Hits carry the
    /// fused [`Hit::score`] and their vector distance.
    pub fn text(mut self, words: &str) -> Query {
        self.text.words = Some(words.to_owned());
        self
    }

    /// The text fields the text part searches, by name: `"contents"` for the contents, or a
    /// metadata field of [`IndexConfig::text_fields`](crate::IndexConfig::text_fields).
    /// Default: every full-text field of the index. A name that is not a full-text field of
    /// the index makes the query fail with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn text_fields(mut self, fields: &[&str]) -> Query {
        self.text.fields = Some(fields.iter().map(|&f| f.to_owned()).collect());
        self
    }

    /// A weight per text field (finite, at least 0; default 1 each), in the order of
    /// [`Query::text_fields`] (or, without it, of every full-text field: `contents` first,
    /// then the metadata text fields by name). An item's BM25 score is the sum over fields of
    /// `weight * BM25 of that field`; a field of weight 0 is not searched. A count that
    /// differs from the fields' makes the query fail with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn text_field_weights(mut self, weights: &[f32]) -> Query {
        self.text.weights = Some(weights.to_vec());
        self
    }

    /// Whether an item must hold every distinct word of the text (each in any searched
    /// field) to match it (default false: any word).
    pub fn require_all_terms(mut self, all: bool) -> Query {
        self.text.require_all = all;
        self
    }

    /// How deep each ranking of a hybrid query goes, as a multiple of `top_k` (default 3, at
    /// least 1; the depth is at most 100,000).
    pub fn window_mult(mut self, mult: usize) -> Query {
        self.window_mult = mult;
        self
    }

    /// The rank offset of a hybrid query's reciprocal rank fusion (default 60; finite, at
    /// least 0).
    pub fn rrf_k(mut self, rrf_k: f32) -> Query {
        self.rrf_k = rrf_k;
        self
    }

    /// The weight of the vector ranking in a hybrid query's fusion, in `[0, 1]` (default
    /// 0.5): 1 is the vector ranking alone, 0 the text ranking alone (a ranking whose weight
    /// is 0 is not computed; the hits still carry their vector distance).
    pub fn hybrid_alpha(mut self, alpha: f32) -> Query {
        self.alpha = alpha;
        self
    }

    /// BM25's parameters for the text part (default: the index's,
    /// [`IndexConfig::bm25`](crate::IndexConfig::bm25)). `k1` must be finite and at least 0,
    /// `b` in `[0, 1]`.
    pub fn bm25(mut self, k1: f32, b: f32) -> Query {
        self.text.bm25 = Some(Bm25 { k1, b });
        self
    }

    /// Number of results (default 10).
    pub fn top_k(mut self, k: usize) -> Query {
        self.top_k = k;
        self
    }

    /// Lists to probe (default: the index config's). Values above the number of lists probe
    /// every list, which makes the search exact.
    pub fn n_probes(mut self, n: usize) -> Query {
        self.n_probes = Some(n);
        self
    }

    /// A MongoDB-style metadata filter, nested at most 64 levels deep (a deeper one makes the
    /// query fail with [`Error::InvalidFilter`](crate::Error::InvalidFilter)).
    pub fn filter(mut self, filter: Value) -> Query {
        self.filter = Some(JsonArg::new(filter));
        self
    }

    /// For quantized index types: re-rank the best `factor * top_k` candidates of the code
    /// scan with exact distances (`factor * 10` for a `top_k` below 10, so that the hits of
    /// a smaller `top_k` are the first hits of a larger one; ignored by `ivf_flat`). Larger
    /// is slower and closer to the exact IVF result. The default follows the code's
    /// precision: 2 for `ivf_sq8`, and for `ivf_pq` with `c = d / m` dimensions per
    /// subquantizer `5c/2` up to 8 dimensions (10 for `d / 4` subquantizers, 5 for `d / 2`,
    /// at least 2) and `5c/2 * (c/8)^1.5` past 8 (114 at 16, 312 at 24): coarse codes need a
    /// longer shortlist for the same recall.
    pub fn rerank(mut self, factor: usize) -> Query {
        self.rerank = Some(factor);
        self
    }

    /// Which fields hits carry (default [`Include::NONE`]).
    pub fn include(mut self, include: Include) -> Query {
        self.include = include;
        self
    }
}

/// The direction of [`MetadataQuery::order_by`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Smallest first (the default).
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

/// A listing by metadata and text alone, without a vector
/// ([`EncryptedIndex::query_metadata`](crate::EncryptedIndex::query_metadata)).
///
/// Without text it lists every item its filter matches (every item without a filter), in
/// id order unless [`order_by`](Self::order_by) says otherwise. With
/// [`text`](Self::text) it lists the items whose text fields match the words under BM25,
/// best first, each hit with its score (the filter then only narrows them). `top_k`, when
/// given, keeps the first `top_k` hits of that order.
///
/// ```
/// use ciphervec::{MetadataQuery, Order};
/// let q = MetadataQuery::new()
///     .filter(serde_json::json!({"team": "billing", "title": {"$regex": "^INV-2\\d{3}"}}))
///     .order_by("date", Order::Descending)
///     .top_k(20);
/// # let _ = q;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataQuery {
    pub(crate) filter: Option<JsonArg>,
    pub(crate) text: TextSpec,
    pub(crate) order_by: Option<(String, Order)>,
    pub(crate) top_k: Option<usize>,
}

impl MetadataQuery {
    /// A listing of every item.
    pub fn new() -> MetadataQuery {
        MetadataQuery::default()
    }

    /// Lists only the items `filter` matches (the filter language of [`Query::filter`]).
    /// The index's [`MetadataSchema`](crate::MetadataSchema) is enforced: a condition on a
    /// field that is not filterable, or a `$regex`/`$contains` on a field without a pattern
    /// dictionary, is [`Error::InvalidFilter`](crate::Error::InvalidFilter).
    pub fn filter(mut self, filter: Value) -> MetadataQuery {
        self.filter = Some(JsonArg::new(filter));
        self
    }

    /// Ranks by BM25 of `words` over the text fields (as [`Query::text_only`]); hits carry
    /// their score.
    pub fn text(mut self, words: &str) -> MetadataQuery {
        self.text.words = Some(words.to_owned());
        self
    }

    /// The text fields searched (as [`Query::text_fields`]).
    pub fn text_fields(mut self, fields: &[&str]) -> MetadataQuery {
        self.text.fields = Some(fields.iter().map(|&f| f.to_owned()).collect());
        self
    }

    /// A weight per text field (as [`Query::text_field_weights`]).
    pub fn text_field_weights(mut self, weights: &[f32]) -> MetadataQuery {
        self.text.weights = Some(weights.to_vec());
        self
    }

    /// Whether a hit must hold every distinct word (as [`Query::require_all_terms`]).
    pub fn require_all_terms(mut self, all: bool) -> MetadataQuery {
        self.text.require_all = all;
        self
    }

    /// Orders the hits by the value at metadata `field` (a dotted path) instead of by id
    /// (or by score, with text). Numbers compare by value, strings by their UTF-8 bytes, and
    /// numbers come before strings (ascending; descending reverses both). Items whose value
    /// there is missing or neither a number nor a string (an array, an object, a boolean,
    /// `null`) come last in either direction. Equal values keep id order.
    pub fn order_by(mut self, field: &str, order: Order) -> MetadataQuery {
        self.order_by = Some((field.to_owned(), order));
        self
    }

    /// Keeps the first `n` hits (after ordering; `n` at least 1). Default: every hit.
    pub fn top_k(mut self, n: usize) -> MetadataQuery {
        self.top_k = Some(n);
        self
    }
}

/// One hit of [`EncryptedIndex::query_metadata`](crate::EncryptedIndex::query_metadata).
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataHit {
    /// The item id.
    pub id: String,
    /// The BM25 score (larger is better) when the listing has text, else `None`.
    pub score: Option<f32>,
}

/// One query result. Built only by the crate (`#[non_exhaustive]`), so fields may be added.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The item id.
    pub id: String,
    /// Distance to the query under the index metric (smaller is closer). For a
    /// [`Query::text_only`] query, `-score`.
    pub distance: f32,
    /// For text and hybrid queries, the BM25 or fused score (larger is better); `None` for
    /// vector queries.
    pub score: Option<f32>,
    /// Metadata, if requested and present.
    pub metadata: Option<Value>,
    /// Contents, if requested and present.
    pub contents: Option<Vec<u8>>,
    /// The vector, if requested.
    pub vector: Option<Vec<f32>>,
}

/// One stored item, as returned by [`crate::EncryptedIndex::get`]. Built only by the crate
/// (`#[non_exhaustive]`), so fields may be added.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The item id.
    pub id: String,
    /// Metadata, if requested and present.
    pub metadata: Option<Value>,
    /// Contents, if requested and present.
    pub contents: Option<Vec<u8>>,
    /// The vector, if requested.
    pub vector: Option<Vec<f32>>,
}

/// What [`EncryptedIndex::verify`](crate::EncryptedIndex::verify) checked.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Live segment files checked.
    pub segments: usize,
    /// Sealed records authenticated (the manifest body, and each segment's footer,
    /// directory, list blocks, vector, fields, tombstone and training records).
    pub records: usize,
    /// Bytes of the live files (manifest and segments), every one of them checked.
    pub bytes: u64,
}
