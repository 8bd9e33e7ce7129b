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

/// How a hybrid query (a vector and words) merges its two rankings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fusion {
    /// Reciprocal rank fusion: `sum of 1 / (rrf_k + rank)` over the rankings that hold the
    /// item (ranks from 1).
    Rrf {
        /// The rank offset (60 by default, as in Cormack et al. 2009).
        rrf_k: f32,
    },
    /// `alpha * vector + (1 - alpha) * text` of min-max normalized scores.
    Alpha(f32),
}

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
    pub(crate) text: Option<String>,
    pub(crate) fusion: Fusion,
    pub(crate) bm25: Bm25,
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
            text: None,
            fusion: Fusion::Rrf { rrf_k: 60.0 },
            bm25: Bm25::default(),
        }
    }

    /// A full-text query: the items whose contents best match `words` under BM25 (see
    /// `docs/DESIGN.md` for the tokenizer and the formula), best first. Needs an index with
    /// [`IndexConfig::full_text`](crate::IndexConfig::full_text). Hits carry
    /// [`Hit::score`], and `distance` is `-score`. Words that hold no token match nothing.
    pub fn text_only(words: &str) -> Query {
        Query {
            text: Some(words.to_owned()),
            ..Query::new(Vec::new())
        }
    }

    /// Makes a vector query hybrid: the vector ranking and the BM25 ranking of `words` are
    /// merged by reciprocal rank fusion (`rrf_k` 60; see [`Query::rrf_k`] and
    /// [`Query::hybrid_alpha`]). Each ranking contributes its best `max(4 * top_k, 50)`
    /// items. Hits carry the fused [`Hit::score`] and their vector distance.
    pub fn text(mut self, words: &str) -> Query {
        self.text = Some(words.to_owned());
        self
    }

    /// Reciprocal rank fusion with this rank offset (default 60) for a hybrid query.
    pub fn rrf_k(mut self, rrf_k: f32) -> Query {
        self.fusion = Fusion::Rrf { rrf_k };
        self
    }

    /// A hybrid query fuses by weight instead of rank: `alpha * v + (1 - alpha) * t`, where
    /// `v` is the vector similarity min-max normalized over the candidates (1 for the
    /// closest, 0 for the farthest or absent) and `t` the BM25 score divided by the best one
    /// (0 when absent). `alpha` must be in `[0, 1]`.
    pub fn hybrid_alpha(mut self, alpha: f32) -> Query {
        self.fusion = Fusion::Alpha(alpha);
        self
    }

    /// BM25's parameters for the text part (defaults `k1` 1.2, `b` 0.75, as Lucene's).
    /// `k1` must be finite and at least 0, `b` in `[0, 1]`.
    pub fn bm25(mut self, k1: f32, b: f32) -> Query {
        self.bm25 = Bm25 { k1, b };
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
