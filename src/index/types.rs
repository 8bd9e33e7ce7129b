//! Values the caller passes in and gets back: items, queries, hits, records.

use std::ops::{BitOr, BitOrAssign};

use serde_json::Value;

use crate::filter::{MAX_JSON_DEPTH, drop_iteratively, json_deeper_than};

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

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The vector.
    pub fn vector(&self) -> &[f32] {
        &self.vector
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

/// A nearest-neighbour query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub(crate) vector: Vec<f32>,
    pub(crate) top_k: usize,
    pub(crate) n_probes: Option<usize>,
    pub(crate) filter: Option<JsonArg>,
    pub(crate) include: Include,
    pub(crate) rerank: Option<usize>,
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
        }
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
    /// scan with exact distances (ignored by `ivf_flat`). Larger is slower and closer to the
    /// exact IVF result. The default follows the code's precision: 2 for `ivf_sq8`, and for
    /// `ivf_pq` 2.5 times the dimensions per subquantizer, rounded up (10 for `d / 4`
    /// subquantizers, 5 for `d / 2`), at least 2.
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
    /// Distance to the query under the index metric (smaller is closer).
    pub distance: f32,
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
