//! The decrypted, in-memory state of one index: inverted lists and the item table.
//!
//! Every committed item lives in exactly one list. What is held decrypted depends on the
//! [`Residency`]: when the decrypted vectors fit the cache budget, each list's vectors (and
//! codes) are held here, row by row, with a handle (the item's slot in the item table and a
//! tie-break of its id: [`handle_of`]). A
//! quantized index over budget holds only its lists' codes and handles, and each re-ranked
//! vector is decrypted from its own record. An `ivf_flat` index over budget holds only the
//! item table and the addresses of each list's sealed blocks, and `lists::Lists` decrypts
//! lists on demand into a byte-bounded [`ListCache`].
//!
//! The item table lives in `items`, the lists in `inverted`, a quantized index's encoder in
//! `coder`, the decrypted-list cache in `cache`; the struct and its plain accessors here.

mod cache;
mod coder;
mod inverted;
mod items;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::crypto::schedule::Keys;
use crate::filter::Coverage;
use crate::format::manifest::{ManifestBody, ManifestHeader};
use crate::format::segment::RecordRef;
use crate::format::vectors::VectorCoding;
use crate::ivf::{PackedCodes, Quantizer};
use crate::model::schema::MetadataSchema;
use crate::storage::Blob;
use crate::text::{self, DocTerms, TextIndex};

use super::patterns::PatternIndex;
use super::ranges::RangeIndex;
use super::tokens::TokenIndex;

pub(crate) use cache::ListCache;
pub(crate) use coder::Coder;
pub(crate) use items::{handle_of, slot_of};

/// Where an item's sealed fields (or vector) record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldsRef {
    /// Segment sequence number.
    pub segment: u64,
    /// Offset of the sealed bytes in the segment file.
    pub offset: u64,
    /// Length of the sealed bytes (never zero: a sealed record holds at least its tag, and
    /// `Option<FieldsRef>` then needs no room of its own for `None`).
    pub len: NonZeroU32,
}

/// Where an item's sealed vector record is (quantized index types).
pub(crate) type VectorRef = FieldsRef;

/// What the decrypted state holds of the lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Residency {
    /// Every list with its vectors (and codes).
    All,
    /// Every list's codes and handles, but no vectors: each vector is decrypted from its own
    /// record when needed (quantized types over the cache budget).
    Codes,
    /// No list: lists are decrypted on demand into the cache (`ivf_flat` over the budget).
    OnDemand,
}

impl Residency {
    /// The one residency rule, used by open, training, compaction and rotation alike: every
    /// vector is kept decrypted when the live items' vectors (`4 * dim` bytes each) fit
    /// `budget`; otherwise a quantized index keeps its codes and an `ivf_flat` index only its
    /// item table.
    pub(crate) fn for_budget(
        quantized: bool,
        live_items: usize,
        dim: usize,
        budget: usize,
    ) -> Residency {
        if live_items.saturating_mul(dim).saturating_mul(4) <= budget {
            Residency::All
        } else if quantized {
            Residency::Codes
        } else {
            Residency::OnDemand
        }
    }
}

/// One live item.
#[derive(Clone, Debug)]
pub(crate) struct ItemEntry {
    /// The id.
    pub id: String,
    /// The item token.
    pub token: [u8; 32],
    /// List number.
    pub list: u32,
    /// Row within the list.
    pub row: u32,
    /// Its fields record, if it has metadata or contents.
    pub fields: Option<FieldsRef>,
    /// Its vector record, when vectors are stored apart from list blocks (quantized types).
    pub vector: Option<VectorRef>,
    /// Its decrypted metadata, kept in memory for filters.
    pub metadata: Option<Arc<Value>>,
    /// The segment whose list block holds its current version.
    pub origin: u64,
}

/// Where one sealed list block lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockRef {
    /// Segment sequence number.
    pub segment: u64,
    /// Offset of the sealed bytes.
    pub offset: u64,
    /// Length of the sealed bytes.
    pub len: u32,
    /// Length of its block-vectors record (`ivf_flat`), 0 when it has none.
    pub vectors_len: u32,
    /// Offset of its block-vectors record (0 when it has none).
    pub vectors_offset: u64,
}

impl BlockRef {
    /// The list block directory entry `rec` of segment `segment` names; the length of its
    /// vectors record is known once the block is decoded (0 until then).
    pub(crate) fn listed(segment: u64, rec: &RecordRef) -> BlockRef {
        BlockRef {
            segment,
            offset: rec.offset,
            len: rec.len,
            vectors_len: 0,
            vectors_offset: 0,
        }
    }

    /// The sealed bytes reading the block and its vectors takes.
    pub(crate) fn read_len(&self) -> u64 {
        u64::from(self.len) + u64::from(self.vectors_len)
    }
}

/// One inverted list in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct MemList {
    /// Row-major vectors.
    pub vectors: Vec<f32>,
    /// Slot of each row.
    pub handles: Vec<u64>,
    /// `1 / |v|` of each row (used by cosine).
    pub inv_norms: Vec<f32>,
    /// Codes of each row, for quantized indexes.
    pub codes: Vec<u8>,
    /// PQ codes in the fast-scan layout, built by the first query after a change.
    pub packed: OnceLock<PackedCodes>,
}

/// The whole decrypted state of an open index. Its fields are private: what may change,
/// and how, is said by its methods (a write adds a segment, blocks and items, then marks the
/// new manifest body committed; a key rotation adopts new keys; a loader builds one row by
/// row and then chooses its residency).
pub(crate) struct State {
    /// Vector dimension.
    dim: usize,
    /// The working keys (swapped, together with everything they sealed, by a data-key
    /// rotation).
    keys: Arc<Keys>,
    /// The manifest's clear header (changed by index-key and data-key rotations).
    header: ManifestHeader,
    /// The committed manifest body this state reflects.
    body: ManifestBody,
    /// Trained centroids, if trained.
    quantizer: Option<Quantizer>,
    /// Vector codes, for quantized index types once trained.
    coder: Option<Coder>,
    /// Inverted lists (one list, number 0, before training).
    lists: Vec<MemList>,
    /// Live items of each list (kept in step with the item table, whatever the residency:
    /// the split rule reads them after every write).
    list_lens: Vec<u32>,
    /// Item table, indexed by slot.
    items: Vec<Option<ItemEntry>>,
    free: Vec<u64>,
    /// [`entry_extra_bytes`] summed over the live items (kept in step with the item table,
    /// so that the dead-share estimate after every write does not walk it).
    extra_bytes: u64,
    /// Slot of each live item's token.
    tokens: TokenIndex,
    /// Mapped live segments, by sequence number.
    segments: HashMap<u64, Arc<Blob>>,
    /// Sealed blocks of each list, oldest first.
    blocks: Vec<Vec<BlockRef>>,
    /// What `lists` hold.
    residency: Residency,
    /// Decrypted lists, when not resident.
    cache: ListCache,
    /// The largest sum of sealed block bytes of any one list: what reading a list can cost.
    max_list_bytes: u64,
    /// The posting index of the contents, when the index has full text (kept in step with
    /// the item table: a removed item leaves it too).
    text: Option<TextIndex>,
    /// The metadata equality index: each item's `filter::index_terms` (kept in step with the
    /// item table), for filters that name exact values.
    meta: TextIndex,
    /// The metadata range index (kept in step with the item table), for range filters.
    ranges: RangeIndex,
    /// The pattern dictionary of the schema's pattern fields (kept in step with the item
    /// table), for `$regex` and `$contains`.
    patterns: PatternIndex,
    /// The metadata schema (from the committed configuration).
    schema: MetadataSchema,
    /// The posting index of each metadata text field of the schema, in path order (kept in
    /// step with the item table).
    field_texts: Vec<(String, TextIndex)>,
    /// How the index stores vectors (from the committed configuration).
    coding: VectorCoding,
    /// The items of the selectivity sample (see [`State::sample`]) and its shift.
    sample: HashSet<u64>,
    sample_shift: u32,
}

/// What an item adds, beyond its vector and a fixed part, to the bytes a rewrite would
/// store: its id and its fields record with the record's framing. (The dead-share estimate
/// of automatic compaction; the fixed part is the caller's.)
pub(crate) fn entry_extra_bytes(e: &ItemEntry) -> u64 {
    e.id.len() as u64 + e.fields.map_or(0, |f| u64::from(f.len.get()) + 37)
}

/// About how many items [`State::sample`] holds (between half and all of this, once the
/// index holds more).
pub(crate) const SAMPLE_SIZE: usize = 512;

/// The most items an index holds: a slot must fit the low 32 bits of a handle, below
/// `u32::MAX` (which the token index keeps for its empty buckets).
pub(crate) const MAX_ITEMS: u64 = (1 << 32) - 1;

/// Where a relocated item now lies ([`State::relocate`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Relocated {
    /// Its new list.
    pub list: u32,
    /// Its fields record, rewritten in segment `origin`.
    pub fields: Option<FieldsRef>,
    /// Its vector record, rewritten in segment `origin` (quantized types).
    pub vector: Option<VectorRef>,
    /// The segment whose list block now holds it.
    pub origin: u64,
}

/// Where a new state's keys, header and committed body come from.
pub(crate) struct Committed {
    /// The working keys.
    pub keys: Arc<Keys>,
    /// The manifest's clear header.
    pub header: ManifestHeader,
    /// The committed manifest body.
    pub body: ManifestBody,
}

impl State {
    /// An empty state with `residency` (see [`Residency::for_budget`]).
    pub(crate) fn new(
        dim: usize,
        committed: Committed,
        trained: (Option<Quantizer>, Option<Coder>),
        residency: Residency,
        cache_budget: usize,
    ) -> State {
        let (quantizer, coder) = trained;
        let n_lists = quantizer.as_ref().map_or(1, Quantizer::n_lists);
        let text = committed.body.config.full_text.then(TextIndex::default);
        let schema = MetadataSchema::from_stored(&committed.body.config.schema);
        let field_texts = schema
            .text_fields()
            .map(|f| (f.to_owned(), TextIndex::default()))
            .collect();
        let coding = committed.body.config.vectors;
        State {
            dim,
            keys: committed.keys,
            header: committed.header,
            body: committed.body,
            quantizer,
            coder,
            lists: vec![MemList::default(); n_lists],
            list_lens: vec![0; n_lists],
            items: Vec::new(),
            free: Vec::new(),
            extra_bytes: 0,
            tokens: TokenIndex::default(),
            segments: HashMap::new(),
            blocks: vec![Vec::new(); n_lists],
            residency,
            cache: ListCache::new(cache_budget),
            max_list_bytes: 0,
            text,
            meta: TextIndex::default(),
            ranges: RangeIndex::default(),
            patterns: PatternIndex::default(),
            schema,
            field_texts,
            coding,
            sample: HashSet::new(),
            sample_shift: 0,
        }
    }

    /// The metadata equality index.
    pub(crate) fn meta_index(&self) -> &TextIndex {
        &self.meta
    }

    /// The metadata range index.
    pub(crate) fn range_index(&self) -> &RangeIndex {
        &self.ranges
    }

    /// The pattern dictionary.
    pub(crate) fn pattern_index(&self) -> &PatternIndex {
        &self.patterns
    }

    /// The metadata schema.
    pub(crate) fn schema(&self) -> &MetadataSchema {
        &self.schema
    }

    /// What the metadata indexes hold of `path`.
    pub(crate) fn coverage(&self, path: &str) -> Coverage {
        self.schema.field(path).coverage()
    }

    /// The posting index, when the index has full text.
    pub(crate) fn text(&self) -> Option<&TextIndex> {
        self.text.as_ref()
    }

    /// The posting index of each metadata text field, in path order.
    pub(crate) fn field_texts(&self) -> &[(String, TextIndex)] {
        &self.field_texts
    }

    /// BM25's parameters of the index (from the committed configuration).
    pub(crate) fn bm25(&self) -> text::Bm25 {
        let (k1, b) = self.body().config.bm25;
        text::Bm25 {
            k1: f32::from_bits(k1),
            b: f32::from_bits(b),
        }
    }

    /// How the index stores vectors.
    pub(crate) fn coding(&self) -> VectorCoding {
        self.coding
    }

    /// Installs a posting index (turning full text on, or after a rewrite renumbered slots).
    pub(crate) fn set_text(&mut self, text: TextIndex) {
        self.text = Some(text);
    }

    /// Indexes the analyzed contents of a live slot (no-op without full text).
    pub(crate) fn index_text(&mut self, slot: u64, doc: Option<DocTerms>) {
        if let Some(t) = self.text.as_mut() {
            t.insert(slot, doc);
        }
    }

    /// Vector dimension.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// The working keys.
    pub(crate) fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// The manifest's clear header.
    pub(crate) fn header(&self) -> &ManifestHeader {
        &self.header
    }

    /// The committed manifest body this state reflects.
    pub(crate) fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// Trained centroids, if trained.
    pub(crate) fn quantizer(&self) -> Option<&Quantizer> {
        self.quantizer.as_ref()
    }

    /// Vector codes, for quantized index types once trained.
    pub(crate) fn coder(&self) -> Option<&Coder> {
        self.coder.as_ref()
    }

    /// Mapped live segments, by sequence number.
    pub(crate) fn segments(&self) -> &HashMap<u64, Arc<Blob>> {
        &self.segments
    }

    /// Decrypted lists, when not resident.
    pub(crate) fn cache(&self) -> &ListCache {
        &self.cache
    }

    /// Maps a newly written segment in (before its blocks and items are added).
    pub(crate) fn add_segment(&mut self, seq: u64, blob: Arc<Blob>) {
        self.segments.insert(seq, blob);
    }

    /// Marks `body` as the committed manifest this state now reflects.
    pub(crate) fn set_committed(&mut self, body: ManifestBody) {
        self.body = body;
    }

    /// Adopts the keys and header of an index-key rotation (the data key is unchanged, so
    /// every sealed record stays valid) and the body it committed.
    pub(crate) fn adopt_keys(
        &mut self,
        keys: Arc<Keys>,
        header: ManifestHeader,
        body: ManifestBody,
    ) {
        self.keys = keys;
        self.header = header;
        self.body = body;
    }

    /// Whether every decrypted vector is held in `lists`.
    pub(crate) fn is_resident(&self) -> bool {
        self.residency == Residency::All
    }

    /// What `lists` hold.
    pub(crate) fn residency(&self) -> Residency {
        self.residency
    }
}
