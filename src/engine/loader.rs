//! Opening an index: from an authenticated manifest body to the decrypted [`State`], in the
//! steps below, each a function of its own. The residency rule ([`Residency::for_budget`]) is
//! the same one training, compaction and rotation apply.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::crypto::schedule::Keys;
use crate::error::{Error, Result};
use crate::format::RecordKind;
use crate::format::manifest::{ManifestBody, ManifestHeader, TrainedRef};
use crate::format::segment::{self, Layout, RecordRef};
use crate::format::vectors::VectorCoding;
use crate::ivf::{Codec, Quantizer};
use crate::metric::Metric;
use crate::storage::{Blob, IndexFiles};

use super::lists;
use super::persist::{self, open_block, open_block_vectors, open_fields, open_vector, prefetch};
use crate::model::config::IndexConfig;
use crate::text::{self, TextIndex};

use super::state::{BlockRef, Coder, Committed, FieldsRef, ItemEntry, Residency, State};

/// What the loader needs to know of the index's configuration.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// Vector dimension.
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Whether the index type is quantized (its vectors are records of their own).
    pub quantized: bool,
    /// How vectors are stored.
    pub coding: VectorCoding,
}

impl Shape {
    /// The shape of an index of `config`.
    pub(crate) fn of(config: &IndexConfig) -> Shape {
        Shape {
            dim: config.dimension(),
            metric: config.distance_metric(),
            quantized: config.is_quantized(),
            coding: config.precision().coding(),
        }
    }
}

/// Rebuilds the state of the live segments `body` names: segments read and checked against
/// the manifest's lengths and footer digests; their directories authenticated; centroids and
/// codebook opened; the item table built from the list blocks (entries and codes, without
/// `ivf_flat`'s vectors, which lie in records of their own) and tombstones; then every
/// vector decrypted if the residency rule says so; then the metadata decrypted for filters.
pub(crate) fn load_state(
    store: &dyn IndexFiles,
    (keys, header): (Arc<Keys>, ManifestHeader),
    shape: Shape,
    body: ManifestBody,
    cache_budget: usize,
) -> Result<State> {
    // Parallel work runs where this process has threads (`index::parallel`).
    crate::engine::parallel::install(|| {
        let blobs = read_segments(store, &body, Layout::of(keys.format)?)?;
        let mut directories = blobs
            .par_iter()
            .map(|(&seq, blob)| {
                let records = persist::segment_records(&keys, blob, seq)
                    .map_err(|e| persist::in_file(&segment::file_name(seq), e))?;
                Ok((seq, records))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        // An `ivf_flat` index without a budget keeps every vector: they are decrypted with
        // the item table. Under a budget the item table comes first, without vectors, and the
        // residency rule below then decides whether they are decrypted too.
        let first_pass = if shape.quantized {
            Residency::Codes
        } else if cache_budget == usize::MAX {
            Residency::All
        } else {
            Residency::OnDemand
        };
        // From a remote store, what the open reads next is fetched first, adjacent records
        // together: whole segments when every vector is decrypted now, else the records the
        // directory lists (list blocks, tombstones, training records), not vectors or fields.
        if first_pass == Residency::All {
            prefetch(
                &blobs,
                blobs.iter().map(|(&seq, blob)| (seq, 0, blob.len())),
            )?;
        } else {
            prefetch(
                &blobs,
                directories.iter().flat_map(|(&seq, records)| {
                    records
                        .iter()
                        .map(move |r| (seq, r.offset, u64::from(r.len)))
                }),
            )?;
        }
        let trained = match &body.trained {
            Some(t) => open_training(&keys, &blobs, &directories, t, shape)?,
            None => (None, None),
        };
        let segments = body.segments.clone();
        let committed = Committed { keys, header, body };
        let mut state = State::new(shape.dim, committed, trained, first_pass, cache_budget);
        // The item table grows to its size once, not by doubling copies: every list block's
        // sealed length bounds its entries (an overestimate costs only untouched address space,
        // given back at the end).
        let code_len = state.code_len();
        let items_at_most = directories
            .values()
            .flatten()
            .filter(|r| r.kind == RecordKind::ListBlock)
            .map(|r| segment::block_entries_at_most(r.len as usize, code_len))
            .fold(0usize, usize::saturating_add);
        state.reserve_items_exact(items_at_most.min(super::state::MAX_ITEMS as usize));
        for seg in &segments {
            let records = directories.remove(&seg.seq).unwrap_or_default();
            let blob = blobs
                .get(&seg.seq)
                .ok_or_else(|| Error::corrupted("segment"))?;
            add_segment_records(&mut state, shape, seg.seq, blob, &records)
                .map_err(|e| persist::in_file(&segment::file_name(seg.seq), e))?;
        }
        for (seq, blob) in blobs {
            state.add_segment(seq, blob);
        }
        let rule = Residency::for_budget(shape.quantized, state.len(), shape.dim, cache_budget);
        if rule == Residency::All {
            make_resident(&mut state, shape)?;
        }
        load_metadata(&mut state)?;
        state.shrink_to_fit();
        Ok(state)
    })
}

/// Reads every live segment (of `layout`) and checks its length and digest against the
/// manifest's.
fn read_segments(
    store: &dyn IndexFiles,
    body: &ManifestBody,
    layout: Layout,
) -> Result<HashMap<u64, Arc<Blob>>> {
    let mut blobs = HashMap::with_capacity(body.segments.len());
    for seg in &body.segments {
        let blob = persist::read_segment(store, seg, layout)
            .map_err(|e| persist::in_file(&segment::file_name(seg.seq), e))?;
        blobs.insert(seg.seq, Arc::new(blob));
    }
    Ok(blobs)
}

/// Opens the centroids (and, for quantized types, the codebook) that `trained` names.
fn open_training(
    keys: &Keys,
    blobs: &HashMap<u64, Arc<Blob>>,
    directories: &HashMap<u64, Vec<RecordRef>>,
    trained: &TrainedRef,
    shape: Shape,
) -> Result<(Option<Quantizer>, Option<Coder>)> {
    let seq = trained.centroids_segment;
    let (blob, records) = blobs
        .get(&seq)
        .zip(directories.get(&seq))
        .ok_or_else(|| Error::corrupted("centroids segment"))?;
    let plain = open_training_record(keys, blob, seq, records, RecordKind::Centroids)?;
    let centroids = segment::decode_centroids(&plain, shape.dim)?;
    if centroids.len() != trained.n_lists as usize * shape.dim {
        return Err(Error::corrupted("centroids"));
    }
    let quantizer = Quantizer::new(shape.dim, centroids, shape.metric);
    let coder = if trained.codebook {
        let bytes = open_training_record(keys, blob, seq, records, RecordKind::Codebook)?;
        let codec =
            Codec::from_bytes(&bytes, shape.dim).ok_or_else(|| Error::corrupted("codebook"))?;
        Some(Coder::new(codec, shape.metric, &quantizer))
    } else {
        None
    };
    Ok((Some(quantizer), coder))
}

/// Opens the first record of `kind` (centroids or codebook) of segment `seq`, whose
/// directory is `records`.
fn open_training_record(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    records: &[RecordRef],
    kind: RecordKind,
) -> Result<Vec<u8>> {
    let rec = records
        .iter()
        .find(|r| r.kind == kind)
        .ok_or_else(|| Error::corrupted("training record missing"))?;
    persist::open_training_record(keys, blob, seq, rec)
}

/// Records decrypted at a time by [`add_segment_records`]: enough to keep every core busy,
/// few enough that the decrypted vectors waiting to enter the lists (two chunks at a time)
/// stay small and that the first chunk's decryption, which nothing overlaps, is short.
const OPEN_CHUNK: usize = 64;

/// A record of a segment's directory, decrypted.
enum Opened {
    /// A list block: its list, place, contents and (when they are kept) its vectors.
    Block(u32, BlockRef, segment::Block, Option<BlockVectors>),
    /// Tokens of deleted items.
    Tombstones(Vec<[u8; 32]>),
    /// A record the item table does not need (fields, training records).
    Other,
}

/// A list block's vectors, decrypted, and their inverse norms.
type BlockVectors = (Vec<f32>, Vec<f32>);

/// Applies one segment's list blocks (items, later versions replacing earlier ones) and
/// tombstones to the item table, in directory order. Records are decrypted in parallel, a
/// chunk at a time, and applied in order; an `ivf_flat` block's vectors record is decrypted
/// too when the state keeps every vector.
fn add_segment_records(
    state: &mut State,
    shape: Shape,
    seq: u64,
    blob: &Blob,
    records: &[RecordRef],
) -> Result<()> {
    let keys = state.keys().clone();
    let list_epoch = state.list_epoch();
    let by_address = persist::list_addresses(&keys, list_epoch, state.n_lists() as u32);
    let with_vectors = !shape.quantized && state.residency() == Residency::All;
    let open = |rec: &RecordRef| -> Result<Opened> {
        match rec.kind {
            RecordKind::ListBlock => {
                let list = *by_address
                    .get(&rec.address)
                    .ok_or_else(|| Error::corrupted("list address"))?;
                let mut at = BlockRef::listed(seq, rec);
                let block = open_block(&keys, blob, at, list_epoch, list, shape.dim)?;
                (at.vectors_offset, at.vectors_len) = block.vectors_at.unwrap_or((0, 0));
                let vectors = if with_vectors {
                    let decoded = (at, &block);
                    let vectors = open_block_vectors(
                        &keys,
                        blob,
                        decoded,
                        (list_epoch, list),
                        (shape.dim, shape.coding),
                    )?;
                    // Here, on the decrypting cores, not where the items enter the table.
                    let inv_norms = crate::ivf::inv_norms(&vectors, shape.dim);
                    Some((vectors, inv_norms))
                } else {
                    None
                };
                Ok(Opened::Block(list, at, block, vectors))
            }
            RecordKind::Tombstones => Ok(Opened::Tombstones(persist::open_tombstones(
                &keys, blob, seq, rec,
            )?)),
            // Fields are read on demand, training records by `open_training`; the other
            // kinds are never listed in a directory (`RecordKind::listed_in_segment`).
            _ => Ok(Opened::Other),
        }
    };
    // While one chunk's items enter the item table (one thread: it is one table), the
    // next chunk is decrypted on the other cores.
    let decrypt = |chunk: &[RecordRef]| chunk.par_iter().map(open).collect::<Result<Vec<_>>>();
    let mut chunks = records.chunks(OPEN_CHUNK);
    let mut ready = chunks.next().map(decrypt).transpose()?;
    while let Some(opened) = ready {
        let next = chunks.next();
        let (applied, decrypted) = rayon::join(
            || apply_opened(state, shape, opened),
            || next.map(decrypt).transpose(),
        );
        applied?;
        ready = decrypted?;
    }
    Ok(())
}

/// Applies one chunk of decrypted records to the state, in order.
fn apply_opened(state: &mut State, shape: Shape, opened: Vec<Opened>) -> Result<()> {
    let items = opened
        .iter()
        .map(|o| match o {
            Opened::Block(_, _, block, _) => block.entries.len(),
            _ => 0,
        })
        .sum();
    state.reserve(items, None);
    for o in opened {
        match o {
            Opened::Block(list, at, block, vectors) => {
                state.reserve(0, Some((list, block.entries.len())));
                add_block(state, shape, (list, at), block, vectors)?;
            }
            Opened::Tombstones(tokens) => {
                for t in tokens {
                    state.remove(&t);
                }
            }
            Opened::Other => {}
        }
    }
    Ok(())
}

/// How many items ahead of its insert a load asks for an item's token bucket: enough for
/// the cache misses of that many inserts to overlap.
const TOKEN_PREFETCH_DISTANCE: usize = 8;

/// Inserts the items of one decrypted list block (with its rows' vectors, when kept). A
/// block that fills an empty list of a state holding every vector (after training or
/// compaction, each list is one block) gives its decrypted vectors to the list as they are,
/// instead of copying them row by row.
fn add_block(
    state: &mut State,
    shape: Shape,
    (list, block): (u32, BlockRef),
    decoded: segment::Block,
    vectors: Option<BlockVectors>,
) -> Result<()> {
    let dim = shape.dim;
    if decoded.vectors_at.is_some() == shape.quantized || decoded.code_len != state.code_len() {
        return Err(Error::corrupted("list block layout"));
    }
    state.add_block(list, block);
    let place = |at: Option<(u64, u32)>| {
        at.map(|at| persist::entry_place(block.segment, at))
            .transpose()
    };
    let code_len = decoded.code_len;
    let rows = decoded.entries.len();
    let adopt = vectors.is_some() && state.list_is_empty(list);
    let row_vectors = vectors.as_ref().map(|(v, _)| v).filter(|_| !adopt);
    let mut entries = decoded.entries;
    for row in 0..rows {
        if let Some(ahead) = entries.get(row + TOKEN_PREFETCH_DISTANCE) {
            state.prefetch_token(&ahead.token);
        }
        let e = &mut entries[row];
        let entry = ItemEntry {
            id: std::mem::take(&mut e.id),
            token: e.token,
            list,
            row: 0,
            fields: place(e.fields)?,
            vector: place(e.vector)?,
            metadata: None,
            origin: block.segment,
        };
        state.insert(
            entry,
            row_vectors.map(|v| &v[row * dim..(row + 1) * dim]),
            &decoded.codes[row * code_len..(row + 1) * code_len],
        );
    }
    match vectors {
        Some(vectors) if adopt => state.adopt_vectors(list, vectors, rows),
        _ => Ok(()),
    }
}

/// Brings every live vector into memory: a quantized index decrypts each vector record, an
/// `ivf_flat` index whose first pass did not keep them decrypts its lists again.
fn make_resident(state: &mut State, shape: Shape) -> Result<()> {
    match state.residency() {
        Residency::All => Ok(()),
        Residency::Codes => {
            let keys = state.keys().clone();
            let segments = state.segments().clone();
            prefetch(
                &segments,
                state
                    .entries()
                    .filter_map(|(_, e)| e.vector)
                    .map(|at| (at.segment, at.offset, u64::from(at.len.get()))),
            )?;
            state.load_vectors(|e| {
                let at = e
                    .vector
                    .ok_or_else(|| Error::corrupted("vector record missing"))?;
                open_vector(&keys, &segments, &e.token, at, (shape.dim, shape.coding))
            })
        }
        Residency::OnDemand => {
            // Every list's blocks and vectors: from a remote store, whole segments at once.
            let segments = state.segments();
            prefetch(
                segments,
                segments.iter().map(|(&seq, blob)| (seq, 0, blob.len())),
            )?;
            let decoded = (0..state.n_lists() as u32)
                .into_par_iter()
                .map(|list| lists::decode_list(state.keys(), state, list))
                .collect::<Result<Vec<_>>>()?;
            state.install_lists(decoded)
        }
    }
}

/// Decrypts the fields record of every live item that has one (in parallel) and maps each
/// with `f(slot, metadata, contents)`: the one pass over the sealed fields that open and
/// `enable_full_text` share.
fn map_fields<T: Send>(
    state: &State,
    f: impl Fn(u64, Option<Vec<u8>>, Option<Vec<u8>>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let wanted: Vec<(u64, [u8; 32], FieldsRef)> = state
        .entries()
        .filter_map(|(slot, e)| e.fields.map(|at| (slot, e.token, at)))
        .collect();
    let keys = state.keys();
    prefetch(
        state.segments(),
        wanted
            .iter()
            .map(|(_, _, at)| (at.segment, at.offset, u64::from(at.len.get()))),
    )?;
    crate::engine::parallel::install(|| {
        wanted
            .par_iter()
            .map(|(slot, token, at)| {
                let (metadata, contents) = open_fields(keys, state.segments(), token, *at)?;
                f(*slot, metadata, contents)
            })
            .collect()
    })
}

/// Decrypts the metadata of every live item, for filters, and with full text indexes its
/// contents.
fn load_metadata(state: &mut State) -> Result<()> {
    let full_text = state.text().is_some();
    let decoded = map_fields(state, |slot, metadata, contents| {
        let value = metadata
            .map(|m| serde_json::from_slice(&m).map_err(|_| Error::corrupted("metadata")))
            .transpose()?;
        let text = contents.filter(|_| full_text).map(|c| text::analyze(&c));
        Ok((slot, value.map(Arc::new), text))
    })?;
    for (slot, value, text) in decoded {
        state.set_metadata(slot, value);
        if let Some(doc) = text {
            state.index_text(slot, doc);
        }
    }
    Ok(())
}

/// The posting index of the live items' contents (for turning full text on in an index that
/// did not have it).
pub(crate) fn build_text(state: &State) -> Result<TextIndex> {
    let docs = map_fields(state, |slot, _, contents| {
        Ok(contents.map(|c| (slot, text::analyze(&c))))
    })?;
    let mut index = TextIndex::default();
    for (slot, doc) in docs.into_iter().flatten() {
        index.insert(slot, doc);
    }
    Ok(index)
}
