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

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::crypto::schedule::Keys;
use crate::filter::{self, Coverage};
use crate::format::manifest::{ManifestBody, ManifestHeader};
use crate::format::segment::RecordRef;
use crate::format::vectors::VectorCoding;
use crate::ivf::{self, Codec, ListRows, PackedCodes, Quantizer};
use crate::metric::Metric;
use crate::storage::Blob;
use crate::text::{self, DocTerms, TextIndex};

use super::patterns::PatternIndex;
use super::ranges::RangeIndex;
use super::tokens::TokenIndex;
use crate::model::schema::MetadataSchema;

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

/// The handle of the item in `slot` with id `id`, as lists hold it and scans rank by on
/// equal distances: the slot in the low 32 bits, a 32-bit hash of the id above them. Slots
/// follow the order in which this process inserted or loaded items (a reader numbers them in
/// stored order, a compaction anew); the id's hash depends on the id alone (not on any key,
/// so a data-key rotation, which changes every token, keeps it): items at equal distances
/// (identical vectors, or equal code sums in a quantized scan) rank alike in every process,
/// after a reopen, after compaction and after rotation. Only two tied items whose ids hash
/// alike (a chance of 2^-32) fall back to their slots. The hash lives in memory only, next to
/// the plaintext ids the item table holds anyway.
pub(crate) fn handle_of(slot: u64, id: &str) -> u64 {
    debug_assert!(slot < MAX_ITEMS);
    (u64::from(id_hash(id)) << 32) | (slot & SLOT_BITS)
}

/// FNV-1a (64 bits, folded to 32) of an id: fixed by its definition, so the same on every
/// platform and in every version.
fn id_hash(id: &str) -> u32 {
    let hash = fnv1a64(id.as_bytes());
    (hash ^ (hash >> 32)) as u32
}

/// The 64-bit FNV-1a hash.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The slot of a handle ([`handle_of`]); a plain slot is its own slot.
pub(crate) fn slot_of(handle: u64) -> u64 {
    handle & SLOT_BITS
}

/// The bits of a handle that hold its slot.
const SLOT_BITS: u64 = (1 << 32) - 1;

/// Whether the item with `token` belongs to a sample of shift `shift`: its token's first
/// eight bytes, read as a number, below `2^(64 - shift)` (tokens are keyed hashes, so that is
/// an even `2^-shift` of the items, and the same items in every process).
fn in_sample(token: &[u8; 32], shift: u32) -> bool {
    let mut word = [0u8; 8];
    word.copy_from_slice(&token[..8]);
    u64::from_le_bytes(word).leading_zeros() >= shift
}

/// The sample shift for `n` live items: the least `s` with `n >> s <= SAMPLE_SIZE`.
fn sample_shift_for(n: usize) -> u32 {
    let mut s = 0;
    while (n >> s) > SAMPLE_SIZE {
        s += 1;
    }
    s
}

/// The token of the item in `slot`, if it is live.
fn token_at(items: &[Option<ItemEntry>], slot: u64) -> Option<&[u8; 32]> {
    items.get(slot as usize)?.as_ref().map(|e| &e.token)
}

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

    /// List `list` as held in memory (empty rows when not resident).
    pub(crate) fn list(&self, list: u32) -> Option<&MemList> {
        self.lists.get(list as usize)
    }

    /// Mapped live segments, by sequence number.
    pub(crate) fn segments(&self) -> &HashMap<u64, Arc<Blob>> {
        &self.segments
    }

    /// The sealed blocks of `list`, oldest first.
    pub(crate) fn blocks_of(&self, list: u32) -> &[BlockRef] {
        self.blocks.get(list as usize).map_or(&[], Vec::as_slice)
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

    /// Makes a [`Residency::Codes`] state hold every vector: `open` decrypts the vector of
    /// an entry (in parallel).
    pub(crate) fn load_vectors(
        &mut self,
        open: impl Fn(&ItemEntry) -> crate::error::Result<Vec<f32>> + Sync,
    ) -> crate::error::Result<()> {
        use rayon::prelude::*;
        if self.residency != Residency::Codes {
            return Ok(());
        }
        let items = &self.items;
        let loaded: Vec<Vec<f32>> = self
            .lists
            .par_iter()
            .map(|l| {
                let mut vectors = Vec::with_capacity(l.handles.len() * self.dim);
                for &h in &l.handles {
                    let e = items
                        .get(slot_of(h) as usize)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| crate::error::Error::corrupted("state"))?;
                    vectors.extend(open(e)?);
                }
                Ok(vectors)
            })
            .collect::<crate::error::Result<_>>()?;
        let (whole, scanned) = (self.code_len(), self.scanned_code_len());
        for (l, vectors) in self.lists.iter_mut().zip(loaded) {
            l.inv_norms = ivf::inv_norms(&vectors, self.dim);
            l.vectors = vectors;
            // With its vectors in RAM, a list needs no refine codes.
            if scanned < whole {
                l.codes = l
                    .codes
                    .chunks_exact(whole)
                    .flat_map(|c| &c[..scanned])
                    .copied()
                    .collect();
                l.packed = OnceLock::new();
            }
        }
        self.residency = Residency::All;
        Ok(())
    }

    /// Makes an [`Residency::OnDemand`] state hold every list: `lists` are its lists as
    /// decrypted from their blocks (each row an item's current version).
    pub(crate) fn install_lists(&mut self, lists: Vec<MemList>) -> crate::error::Result<()> {
        if self.residency != Residency::OnDemand {
            return Ok(());
        }
        if lists.len() != self.lists.len() {
            return Err(crate::error::Error::corrupted("state"));
        }
        for (list, l) in lists.iter().enumerate() {
            for (row, &h) in l.handles.iter().enumerate() {
                let e = self
                    .items
                    .get_mut(slot_of(h) as usize)
                    .and_then(Option::as_mut)
                    .filter(|e| e.list as usize == list)
                    .ok_or_else(|| crate::error::Error::corrupted("state"))?;
                e.row = row as u32;
            }
        }
        self.lists = lists;
        self.cache = ListCache::new(self.cache.budget());
        self.residency = Residency::All;
        Ok(())
    }

    /// Gives back the room vectors grew into while the state was built row by row (up to half
    /// of every list and of the item table), once a load or rewrite has built it.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
        self.free.shrink_to_fit();
        self.tokens.shrink_to_fit();
        for l in &mut self.lists {
            l.vectors.shrink_to_fit();
            l.handles.shrink_to_fit();
            l.inv_norms.shrink_to_fit();
            l.codes.shrink_to_fit();
        }
    }

    /// Number of lists.
    pub(crate) fn n_lists(&self) -> usize {
        self.lists.len()
    }

    /// The epoch of list labels and query tokens.
    pub(crate) fn list_epoch(&self) -> u64 {
        self.body.list_epoch
    }

    /// Live items in list `list`.
    pub(crate) fn list_len(&self, list: u32) -> usize {
        self.list_lens.get(list as usize).map_or(0, |&n| n as usize)
    }

    /// One past the highest slot the item table has held (live or free).
    pub(crate) fn slot_bound(&self) -> u64 {
        self.items.len() as u64
    }

    /// The live entries whose slots lie in `range`.
    pub(crate) fn entries_in(
        &self,
        range: std::ops::Range<u64>,
    ) -> impl Iterator<Item = (u64, &ItemEntry)> {
        let end = (range.end as usize).min(self.items.len());
        let start = (range.start as usize).min(end);
        self.items[start..end]
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| e.as_ref().map(|e| ((start + i) as u64, e)))
    }

    /// Adopts the quantizer (and coder) of a split: the same lists, in the same places, and
    /// new lists after them, each of them empty; centroids may have moved, and the items a
    /// move concerns are then relocated ([`State::relocate`]).
    pub(crate) fn set_split_lists(&mut self, quantizer: Quantizer, coder: Option<Coder>) {
        let n = quantizer.n_lists();
        debug_assert!(n >= self.lists.len());
        self.lists.resize_with(n, MemList::default);
        self.list_lens.resize(n, 0);
        self.blocks.resize(n, Vec::new());
        // Residual codes are scanned against their lists' terms, which moved with the
        // centroids: fast-scan layouts are rebuilt on first use.
        for l in &mut self.lists {
            l.packed = OnceLock::new();
        }
        self.quantizer = Some(quantizer);
        self.coder = coder;
    }

    /// Moves the live item in `slot` to list `to`, its records rewritten into segment
    /// `origin` (`fields` and `vector` there), with `vector` (needed when every vector is
    /// resident) and its `code` in the new list. Its metadata and text stay indexed as they
    /// are (its slot does not change).
    pub(crate) fn relocate(&mut self, slot: u64, to: Relocated, vector: &[f32], code: &[u8]) {
        let Some(e) = self.items.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let (from, row, handle) = (e.list, e.row, handle_of(slot, &e.id));
        let before = entry_extra_bytes(e);
        let mut new_row = 0;
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(from);
            self.cache.invalidate(to.list);
        } else {
            let dim = self.dim;
            if let Some(moved) = self.lists[from as usize].swap_remove(row as usize, dim)
                && let Some(m) = self.items[slot_of(moved) as usize].as_mut()
            {
                m.row = row;
            }
            let with_vector = self.residency == Residency::All;
            let code = if with_vector {
                &code[..self.scanned_code_len().min(code.len())]
            } else {
                code
            };
            let l = &mut self.lists[to.list as usize];
            new_row = l.handles.len() as u32;
            l.push(handle, with_vector.then_some(vector), code);
        }
        self.list_lens[from as usize] -= 1;
        self.list_lens[to.list as usize] += 1;
        if let Some(e) = self.items[slot as usize].as_mut() {
            e.list = to.list;
            e.row = new_row;
            e.fields = to.fields;
            e.vector = to.vector;
            e.origin = to.origin;
            let after = entry_extra_bytes(e);
            self.extra_bytes = self.extra_bytes - before + after;
        }
    }

    /// Makes room for `items` more items, and in list `list` (when given) for `rows` more
    /// rows with their vectors (if this state holds them) and codes: a load reserves each
    /// block's rows before inserting them, so that lists and the item table do not grow by
    /// copying (at 1M x 128 those copies and the page faults of the memory they left behind
    /// were a fifth of a resident open).
    pub(crate) fn reserve(&mut self, items: usize, list: Option<(u32, usize)>) {
        let free = self.free.len();
        self.items.reserve(items.saturating_sub(free));
        self.tokens.reserve(items);
        let Some((list, rows)) = list else {
            return;
        };
        if self.residency == Residency::OnDemand {
            return;
        }
        let (dim, code_len) = (self.dim, self.code_len());
        let with_vectors = self.residency == Residency::All;
        let code_len = if with_vectors {
            self.scanned_code_len()
        } else {
            code_len
        };
        if let Some(l) = self.lists.get_mut(list as usize) {
            l.handles.reserve(rows);
            l.codes.reserve(rows * code_len);
            // An empty list adopts its first block's vectors (`adopt_vectors`).
            if with_vectors && !l.handles.is_empty() {
                l.vectors.reserve(rows * dim);
                l.inv_norms.reserve(rows);
            }
        }
    }

    /// Makes room in the item table for up to `items` more items, exactly, if the allocator
    /// grants it (a load that knows a bound on what it will insert: an overestimate is
    /// address space never touched, which [`State::shrink_to_fit`] gives back; where it is
    /// refused, the table grows as items come instead).
    pub(crate) fn reserve_items_exact(&mut self, items: usize) {
        let free = self.free.len();
        // A refusal is not an error: the room is an optimization.
        let _ = self.items.try_reserve_exact(items.saturating_sub(free));
    }

    /// Whether list `list` holds no rows (in memory).
    pub(crate) fn list_is_empty(&self, list: u32) -> bool {
        self.lists
            .get(list as usize)
            .is_some_and(|l| l.handles.is_empty())
    }

    /// Gives list `list`, whose `rows` rows were just inserted without their vectors into an
    /// empty list of a state holding every vector, those vectors (`rows * dim` floats, in
    /// row order) and their inverse norms ([`ivf::inv_norms`], computed where the vectors
    /// were decrypted).
    ///
    /// # Errors
    /// [`Error::Corrupted`](crate::error::Error::Corrupted) when the list does not hold
    /// exactly those rows (a block naming one item twice: one row replaced the other).
    pub(crate) fn adopt_vectors(
        &mut self,
        list: u32,
        (vectors, inv_norms): (Vec<f32>, Vec<f32>),
        rows: usize,
    ) -> crate::error::Result<()> {
        let dim = self.dim;
        let fits = self.residency == Residency::All;
        let l = self
            .lists
            .get_mut(list as usize)
            .filter(|l| fits && l.vectors.is_empty() && l.handles.len() == rows)
            .filter(|_| vectors.len() == rows * dim && inv_norms.len() == rows)
            .ok_or_else(|| crate::error::Error::corrupted("list block"))?;
        l.inv_norms = inv_norms;
        l.vectors = vectors;
        Ok(())
    }

    /// Records a sealed block of `list`.
    pub(crate) fn add_block(&mut self, list: u32, block: BlockRef) {
        let blocks = &mut self.blocks[list as usize];
        blocks.push(block);
        let bytes: u64 = blocks.iter().map(BlockRef::read_len).sum();
        self.max_list_bytes = self.max_list_bytes.max(bytes);
        self.cache.invalidate(list);
    }

    #[cfg(feature = "internals")]
    /// Decrypted bytes held in memory: the lists' (vectors, codes, handles and norms, resident
    /// or cached) and the item table's (entries, ids, the token index; metadata values not
    /// counted).
    pub(crate) fn decrypted_bytes(&self) -> (usize, usize) {
        let lists = self.lists.iter().map(MemList::bytes).sum::<usize>() + self.cache.bytes();
        let entry = std::mem::size_of::<Option<ItemEntry>>();
        let ids: usize = self.entries().map(|(_, e)| e.id.len()).sum();
        let token_index = self.tokens.bytes();
        let items = self.items.capacity() * entry + ids + token_index + self.free.capacity() * 8;
        (lists, items)
    }

    /// The most sealed bytes reading one list can take.
    pub(crate) fn max_list_bytes(&self) -> u64 {
        self.max_list_bytes
    }

    /// Number of live items.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Asks for the token index's bucket of `token` to be brought into the cache: a load
    /// calls it some items before inserting the item, so that the misses of one block's
    /// inserts overlap.
    pub(crate) fn prefetch_token(&self, token: &[u8; 32]) {
        self.tokens.prefetch(token);
    }

    /// The slot of a token.
    pub(crate) fn slot(&self, token: &[u8; 32]) -> Option<u64> {
        self.tokens.get(token, |s| token_at(&self.items, s))
    }

    /// [`entry_extra_bytes`] summed over the live items.
    pub(crate) fn extra_bytes(&self) -> u64 {
        self.extra_bytes
    }

    /// Sets the metadata of a live slot.
    pub(crate) fn set_metadata(&mut self, slot: u64, metadata: Option<Arc<Value>>) {
        let Some(Some(e)) = self.items.get_mut(slot as usize) else {
            return;
        };
        let old = std::mem::replace(&mut e.metadata, metadata.clone());
        self.unindex_metadata(slot, old.as_deref());
        if let Some(m) = &metadata {
            self.index_metadata(slot, m);
        }
    }

    /// Adds a slot's metadata to the equality, range and pattern indexes and its text
    /// fields to theirs, as the schema says.
    fn index_metadata(&mut self, slot: u64, metadata: &Value) {
        let schema = &self.schema;
        let covered = |path: &str| schema.field(path).coverage();
        self.meta.insert(
            slot,
            Some(DocTerms::of_terms(filter::index_terms(metadata, &covered))),
        );
        self.ranges.insert(slot, metadata, &covered);
        if !schema.is_plain() {
            self.patterns.insert(slot, metadata, &covered);
        }
        for (field, index) in &mut self.field_texts {
            let strings = filter::strings_at(metadata, field);
            if !strings.is_empty() {
                index.insert(slot, Some(text::analyze_all(&strings)));
            }
        }
    }

    /// Takes a slot's metadata (the document `index_metadata` was given) out of the
    /// metadata and text-field indexes.
    fn unindex_metadata(&mut self, slot: u64, metadata: Option<&Value>) {
        self.meta.remove(slot);
        let schema = &self.schema;
        let covered = |path: &str| schema.field(path).coverage();
        if let Some(m) = metadata {
            self.ranges.remove(slot, m, &covered);
            if !schema.is_plain() {
                self.patterns.remove(slot, m, &covered);
            }
        }
        for (_, index) in &mut self.field_texts {
            index.remove(slot);
        }
    }

    /// The entry in a slot (or of a list row's handle: [`slot_of`]).
    pub(crate) fn entry(&self, slot: u64) -> Option<&ItemEntry> {
        self.items
            .get(slot_of(slot) as usize)
            .and_then(Option::as_ref)
    }

    /// Hints the CPU to load the entry of a slot (or handle) into cache, without reading it.
    pub(crate) fn prefetch_entry(&self, slot: u64) {
        if let Some(e) = self.items.get(slot_of(slot) as usize) {
            ivf::prefetch(std::slice::from_ref(e));
        }
    }

    /// The handle of a live slot ([`handle_of`]): what the scans rank by on equal distances.
    pub(crate) fn handle(&self, slot: u64) -> Option<u64> {
        self.entry(slot).map(|e| handle_of(slot_of(slot), &e.id))
    }

    /// Every live entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, &ItemEntry)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u64, e)))
    }

    /// A sample of the live entries, between about half of [`SAMPLE_SIZE`] and all of it (all
    /// entries when there are fewer): those whose tokens fall below a bound set by how many
    /// items there are. It is a function of the live items alone, not of the order they were
    /// inserted in, so a writer and a reader of the same commit estimate a filter's
    /// selectivity alike and answer filtered queries alike (a sample by slot did not: slots
    /// follow insertion order, which differs between the process that trained and one that
    /// opened the result).
    pub(crate) fn sample(&self) -> impl Iterator<Item = &ItemEntry> {
        self.sample
            .iter()
            .filter_map(|&s| self.items.get(s as usize)?.as_ref())
    }

    /// Keeps the sample in step after the live count changed: a larger shift drops the
    /// entries it no longer takes; a smaller one (rare: the count fell past a power of two)
    /// looks at every item again.
    fn resample(&mut self) {
        let shift = sample_shift_for(self.tokens.len());
        if shift == self.sample_shift {
            return;
        }
        if shift > self.sample_shift {
            let items = &self.items;
            self.sample.retain(|&s| {
                items
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| in_sample(&e.token, shift))
            });
        } else {
            self.sample = self
                .items
                .iter()
                .enumerate()
                .filter_map(|(s, e)| e.as_ref().map(|e| (s as u64, e)))
                .filter(|(_, e)| in_sample(&e.token, shift))
                .map(|(s, _)| s)
                .collect();
        }
        self.sample_shift = shift;
    }

    /// The vector of a live slot, when resident (see `lists::vector_of` otherwise).
    pub(crate) fn vector(&self, slot: u64) -> Option<&[f32]> {
        if !self.is_resident() {
            return None;
        }
        let e = self.entry(slot)?;
        let list = self.lists.get(e.list as usize)?;
        let start = e.row as usize * self.dim;
        list.vectors.get(start..start + self.dim)
    }

    /// Bytes per code (0 for unquantized or untrained indexes).
    pub(crate) fn code_len(&self) -> usize {
        self.coder
            .as_ref()
            .map_or(0, |c| c.codec.code_len(self.dim))
    }

    /// The code of `vector` in list `list` (empty for unquantized or untrained indexes).
    pub(crate) fn code_of(&self, list: u32, vector: &[f32]) -> Vec<u8> {
        match (&self.coder, &self.quantizer) {
            (Some(c), Some(q)) => c.encode(q, list, vector),
            _ => Vec::new(),
        }
    }

    /// Bytes of a code that a list holding its vectors keeps: all but the refine code (PQ),
    /// which only bounds the re-rank of vectors that are not in RAM.
    fn scanned_code_len(&self) -> usize {
        match self.coder.as_ref().and_then(|c| c.codec.refine()) {
            Some((_, refine_start)) => refine_start,
            None => self.code_len(),
        }
    }

    /// Inserts an item (into `entry.list`; its `row` is assigned here), replacing any item
    /// with the same token. `vector` is needed when every vector is resident, `code` when
    /// codes are (quantized types: [`Residency::All`] or [`Residency::Codes`]). Returns the
    /// item's slot (its text, if any, is indexed by [`State::index_text`]).
    pub(crate) fn insert(
        &mut self,
        mut entry: ItemEntry,
        vector: Option<&[f32]>,
        code: &[u8],
    ) -> u64 {
        let token = entry.token;
        // Not `remove`: a replaced item leaves the count as it was, so the sample's shift
        // must not move in between (a move down looks at every item).
        self.remove_entry(&token);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.items.push(None);
                (self.items.len() - 1) as u64
            }
        };
        entry.row = 0;
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(entry.list);
        } else {
            let vector = vector.filter(|_| self.residency == Residency::All);
            let code = match vector {
                Some(_) => &code[..self.scanned_code_len().min(code.len())],
                None => code,
            };
            let l = &mut self.lists[entry.list as usize];
            entry.row = l.handles.len() as u32;
            l.push(handle_of(slot, &entry.id), vector, code);
        }
        if let Some(m) = &entry.metadata {
            self.index_metadata(slot, m);
        }
        self.extra_bytes += entry_extra_bytes(&entry);
        if let Some(len) = self.list_lens.get_mut(entry.list as usize) {
            *len += 1;
        }
        self.items[slot as usize] = Some(entry);
        self.tokens.insert(&token, slot);
        if in_sample(&token, self.sample_shift) {
            self.sample.insert(slot);
        }
        self.resample();
        slot
    }

    /// Removes the item with `token`; returns whether it existed.
    pub(crate) fn remove(&mut self, token: &[u8; 32]) -> bool {
        let removed = self.remove_entry(token);
        self.resample();
        removed
    }

    /// [`State::remove`] but for the sample's shift.
    fn remove_entry(&mut self, token: &[u8; 32]) -> bool {
        let Some(slot) = self.tokens.remove(token, |s| token_at(&self.items, s)) else {
            return false;
        };
        let Some(entry) = self.items[slot as usize].take() else {
            return false;
        };
        self.extra_bytes -= entry_extra_bytes(&entry);
        if let Some(len) = self.list_lens.get_mut(entry.list as usize) {
            *len -= 1;
        }
        self.free.push(slot);
        self.sample.remove(&slot);
        if let Some(t) = self.text.as_mut() {
            t.remove(slot);
        }
        self.unindex_metadata(slot, entry.metadata.as_deref());
        if self.residency == Residency::OnDemand {
            self.cache.invalidate(entry.list);
            return true;
        }
        let dim = self.dim;
        let l = &mut self.lists[entry.list as usize];
        if let Some(moved) = l.swap_remove(entry.row as usize, dim)
            && let Some(m) = self.items[slot_of(moved) as usize].as_mut()
        {
            m.row = entry.row;
        }
        true
    }
}

impl MemList {
    /// Appends one row (`code` empty for unquantized indexes; `vector` absent when the
    /// list holds codes only).
    pub(crate) fn push(&mut self, handle: u64, vector: Option<&[f32]>, code: &[u8]) {
        if let Some(vector) = vector {
            self.vectors.extend_from_slice(vector);
            self.inv_norms.push(ivf::inv_norm(vector));
        }
        self.codes.extend_from_slice(code);
        self.packed = OnceLock::new();
        self.handles.push(handle);
    }

    /// Removes row `row` by moving the last row into its place; returns the handle of the
    /// row that moved, if one did.
    pub(crate) fn swap_remove(&mut self, row: usize, dim: usize) -> Option<u64> {
        let last = self.handles.len().checked_sub(1)?;
        self.packed = OnceLock::new();
        let code_len = self.codes.len() / self.handles.len();
        let has_vectors = !self.inv_norms.is_empty();
        let moved = (row != last).then(|| {
            if has_vectors {
                self.vectors
                    .copy_within(last * dim..(last + 1) * dim, row * dim);
                self.inv_norms[row] = self.inv_norms[last];
            }
            self.codes
                .copy_within(last * code_len..(last + 1) * code_len, row * code_len);
            self.handles[row] = self.handles[last];
            self.handles[row]
        });
        if has_vectors {
            self.vectors.truncate(last * dim);
            self.inv_norms.truncate(last);
        }
        self.codes.truncate(last * code_len);
        self.handles.truncate(last);
        moved
    }

    /// The rows as the IVF scan takes them.
    pub(crate) fn rows(&self) -> ListRows<'_> {
        ListRows {
            vectors: &self.vectors,
            handles: &self.handles,
            inv_norms: &self.inv_norms,
            codes: &self.codes,
            packed: Some(&self.packed),
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let packed = self.packed.get().map_or(0, PackedCodes::bytes);
        (self.vectors.capacity() + self.inv_norms.capacity()) * 4
            + self.handles.capacity() * 8
            + self.codes.capacity()
            + packed
    }
}

/// Decrypted lists of a non-resident index, bounded in bytes, least recently used evicted.
pub(crate) struct ListCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    lists: HashMap<u32, (Arc<MemList>, u64)>,
    bytes: usize,
    clock: u64,
}

impl ListCache {
    /// An empty cache of at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> ListCache {
        ListCache {
            budget,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The most bytes the cache holds.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `list` is cached (without marking it used).
    pub(crate) fn contains(&self, list: u32) -> bool {
        self.lock().lists.contains_key(&list)
    }

    /// A cached list, marked as recently used.
    pub(crate) fn get(&self, list: u32) -> Option<Arc<MemList>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.lists.get_mut(&list).map(|(l, used)| {
            *used = now;
            l.clone()
        })
    }

    /// Caches a list, evicting the least recently used ones past the budget (a list larger
    /// than the whole budget is not kept).
    pub(crate) fn put(&self, list: u32, decoded: Arc<MemList>) {
        let size = decoded.bytes();
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.lists.insert(list, (decoded, now)) {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((&victim, _)) = inner.lists.iter().min_by_key(|(_, (_, used))| *used) else {
                break;
            };
            if let Some((old, _)) = inner.lists.remove(&victim) {
                inner.bytes -= old.bytes();
            }
        }
    }

    /// Drops a list whose contents changed. Takes the cache exclusively (the state's writer
    /// holds it so), which needs no lock: a load or a write calls this for every item it
    /// inserts, where a lock and a hash of the list number per item were 6% of an open.
    pub(crate) fn invalidate(&mut self, list: u32) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.lists.is_empty() {
            return;
        }
        if let Some((old, _)) = inner.lists.remove(&list) {
            inner.bytes -= old.bytes();
        }
    }

    /// Bytes held.
    #[cfg(feature = "internals")]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a test vectors (draft-eastlake-fnv), and handles that keep their
    /// slot and order by the id's hash first.
    #[test]
    fn handles_hold_the_slot_under_a_fixed_hash_of_the_id() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        for (slot, id) in [(0u64, "a"), (7, "item-7"), (MAX_ITEMS - 1, "x")] {
            let h = handle_of(slot, id);
            assert_eq!(slot_of(h), slot);
            assert_eq!(h >> 32, u64::from(id_hash(id)));
        }
        let (a, b) = (handle_of(5, "item-1"), handle_of(1, "item-2"));
        assert_eq!(a < b, id_hash("item-1") < id_hash("item-2"));
    }

    fn list(rows: usize) -> Arc<MemList> {
        let mut l = MemList::default();
        for r in 0..rows {
            l.push(r as u64, Some(&[1.0, 2.0]), &[]);
        }
        Arc::new(l)
    }

    #[test]
    fn cache_evicts_least_recently_used_within_budget() {
        let one = list(10).bytes();
        let mut cache = ListCache::new(3 * one);
        for l in 0..3 {
            cache.put(l, list(10));
        }
        assert_eq!(cache.bytes(), 3 * one);
        assert!(cache.get(0).is_some()); // 0 is now the most recent
        cache.put(3, list(10)); // evicts 1, the least recently used
        assert!(cache.get(1).is_none());
        assert!(cache.get(0).is_some() && cache.get(2).is_some() && cache.get(3).is_some());
        assert_eq!(cache.bytes(), 3 * one);
        cache.invalidate(0);
        assert!(cache.get(0).is_none());
        assert_eq!(cache.bytes(), 2 * one);
        cache.put(9, list(100)); // larger than the whole budget: not kept
        assert!(cache.get(9).is_none());
    }
}
