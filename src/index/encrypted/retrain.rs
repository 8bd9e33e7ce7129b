//! A background training, from a snapshot to one commit, without pausing writes or queries.
//!
//! 1. **Snapshot** (no writer lock): the live items, their versions (the segment holding
//!    each one's current version) and their vectors are read a chunk at a time, each chunk
//!    under a short hold of the state's read lock, so the writer's commits (and the queries
//!    queued behind them) never wait long. Writes go on meanwhile; an item written twice
//!    during the read may be read twice, and the newer read wins.
//! 2. **Fit** (no lock): k-means on a sample of the snapshot, the code of a quantized type,
//!    every snapshot item assigned to the new lists and coded.
//! 3. **Seal** (no lock): the centroids, codebook and every snapshot item (fields records
//!    re-sealed, vectors, one block per new list under the next list epoch) go into the
//!    segment being built, numbered [`SEQ_GAP`] past the numbers in use, so that the writes
//!    that go on meanwhile keep numbering theirs as always; a new in-memory state is built
//!    from them. Then up to [`CATCH_UP_PASSES`] passes, still beside the writer, add what
//!    was written since the pass before (a tombstone for an item held in an older version,
//!    then the new version), until one finds fewer than [`CATCH_UP_ENOUGH`] items.
//! 4. **Install** (writer lock, as any write): the last changes are replayed the same way
//!    (tombstones for items deleted or replaced since, then the items written since), then
//!    the history record; the segment is finished with a replace-all commit note extending
//!    the current head and committed through the normal commit path (`commit_segment`,
//!    `persist::apply_commit`), so a crash before the manifest is written rolls it forward
//!    at the next open like any rewrite after a gap in the numbering. The new state takes
//!    the same changes and replaces the old one under the state's write lock.
//!
//! Loading the segment applies its records in directory order, so it yields exactly the
//! live items; a list decrypted on demand may meet an item twice in it
//! (`lists::decode_list` keeps the later row).
//!
//! What the install costs a write that waits for it: the replay (the writes of the last
//! pass), two walks of the item table, and writing the segment, which holds every item: at
//! 50,000 384-dimension vectors 80 MB, about 1 s here. A compaction, rotation or explicit
//! training that commits first makes the snapshot stale: the training starts over (see
//! `autotrain`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rand::SeedableRng;
use rand::seq::index::sample;
use rayon::prelude::*;
use serde_json::Value;

use super::maintenance::{fit, prepare_rows, train_codec};
use super::*;
use crate::engine::lists::{self, Lists};
use crate::engine::persist::{BlockItem, SegmentBuilder};
use crate::engine::state::{
    BlockRef, Coder, Committed, FieldsRef, ItemEntry, Residency, VectorRef, slot_of,
};
use crate::engine::upkeep::{Stage, Upkeep};
use crate::format::segment::Fields;
use crate::ivf;
use crate::model::config::TrainOptions;
use crate::storage::Blob;

/// How far past the segment numbers in use a background training numbers its segment: the
/// writes during one training may use this many numbers before it must start over.
const SEQ_GAP: u64 = 1 << 20;

/// Live items (slots of the item table, or lists' items when lists are decrypted on
/// demand) read under one hold of the read lock.
const SNAPSHOT_CHUNK: usize = 4_096;

/// Lists decrypted under one hold of the read lock when lists are decrypted on demand.
const SNAPSHOT_LISTS: usize = 16;

/// Fields records re-sealed at a time (decrypted together first, on every thread).
const FIELDS_CHUNK: usize = 4_096;

/// Catch-up passes at most before the install (each reads what was written during the
/// previous one).
const CATCH_UP_PASSES: usize = 4;

/// A catch-up pass that found fewer items written than this is the last: the install
/// replays about as many under the writer lock.
const CATCH_UP_ENOUGH: usize = 2_000;

/// How an attempt ended.
pub(super) enum Attempt {
    /// New lists are committed and serving.
    Installed,
    /// Every handle was dropped, or the index deleted or made read-only.
    Gone,
    /// A rewrite, a key change or too many writes made the snapshot stale: start over.
    Stale,
}

/// One live item as the snapshot read it.
struct Snap {
    slot: u64,
    token: [u8; 32],
    id: String,
    /// The segment holding the version read.
    origin: u64,
    fields: Option<FieldsRef>,
    metadata: Option<Arc<Value>>,
}

/// What the snapshot read.
struct Snapshot {
    keys: Arc<Keys>,
    header: ManifestHeader,
    /// The committed body when the snapshot began.
    body: ManifestBody,
    /// Whole rewrites before the snapshot began (see `Upkeep::rewrites`).
    rewrites: u64,
    items: Vec<Snap>,
    /// Their vectors, row-major.
    vectors: Vec<f32>,
    /// The segments the items' fields records are in.
    segments: HashMap<u64, Arc<Blob>>,
}

impl Snapshot {
    /// Items whose version is older than this were committed before the snapshot began:
    /// if they are still current, the snapshot read them as they are.
    fn start(&self) -> u64 {
        self.body.next_segment
    }

    /// The number of the segment the training writes.
    fn seq(&self) -> u64 {
        self.start() + SEQ_GAP
    }
}

/// What stage 2 computed.
struct Fitted {
    quantizer: Quantizer,
    coder: Option<Coder>,
    /// The new list of each snapshot item.
    assignments: Vec<u32>,
    /// The code of each snapshot item (empty for `ivf_flat`).
    codes: Vec<Vec<u8>>,
}

/// One background training from snapshot to install (or to the reason it stopped).
pub(super) fn attempt(weak: &Weak<Inner>, upkeep: &Upkeep) -> Result<Attempt> {
    let Some(mut snap) = read_snapshot(weak, upkeep)? else {
        return Ok(Attempt::Gone);
    };
    if upkeep.rewrites() != snap.rewrites {
        return Ok(Attempt::Stale);
    }
    if snap.items.is_empty() {
        return Ok(Attempt::Gone);
    }
    let Some((config, budget)) =
        handle(weak).map(|index| (index.inner.config.clone(), index.inner.cache_budget))
    else {
        return Ok(Attempt::Gone);
    };
    let fitted = fit_snapshot(&config, &snap);
    let keys = snap.keys.clone();
    let mut seg = SegmentBuilder::new(&keys, &snap.header, snap.seq())?;
    let sealed = seal_snapshot(&mut seg, &config, &snap, &fitted)?;
    let mut build = Build::new(seg, &config, &mut snap, &fitted, &sealed, budget);
    drop(sealed);
    // Catch up with the writes made meanwhile, beside the writer, so that the install
    // replays only the last few.
    let mut since = snap.start();
    for _ in 0..CATCH_UP_PASSES {
        let Some(pass) = read_written_since(weak, upkeep, &snap, &build, since)? else {
            return Ok(Attempt::Gone);
        };
        if upkeep.rewrites() != snap.rewrites {
            return Ok(Attempt::Stale);
        }
        let (written, next) = pass;
        let small = written.items.len() < CATCH_UP_ENOUGH;
        build.add(&config, &fitted, written, &[])?;
        since = next;
        if small {
            break;
        }
    }
    upkeep.pause_at(Stage::Sealed);
    let Some(index) = handle(weak) else {
        return Ok(Attempt::Gone);
    };
    index.install(build, &snap, &fitted, since)
}

/// Stage 1: the live items and their vectors, a chunk at a time. `None` when every handle
/// was dropped.
fn read_snapshot(weak: &Weak<Inner>, upkeep: &Upkeep) -> Result<Option<Snapshot>> {
    let rewrites = upkeep.rewrites();
    let Some(index) = handle(weak) else {
        return Ok(None);
    };
    let (keys, header, body, bound, n_lists, on_demand) = {
        let state = index.read();
        (
            state.keys().clone(),
            state.header().clone(),
            state.body().clone(),
            state.slot_bound(),
            state.n_lists() as u32,
            state.residency() == Residency::OnDemand,
        )
    };
    drop(index);
    let mut snap = Snapshot {
        keys,
        header,
        body,
        rewrites,
        items: Vec::new(),
        vectors: Vec::new(),
        segments: HashMap::new(),
    };
    if on_demand {
        // Lists decrypted on demand: a few whole lists at a time (reading items by slot
        // would decrypt every list for every chunk).
        for first in (0..n_lists).step_by(SNAPSHOT_LISTS) {
            let Some(index) = handle(weak) else {
                return Ok(None);
            };
            let state = index.read();
            if upkeep.rewrites() != rewrites {
                return Ok(Some(snap));
            }
            for list in first..(first + SNAPSHOT_LISTS as u32).min(n_lists) {
                let rows = lists::decode_list(state.keys(), &state, list)?;
                let slots: Vec<u64> = rows.handles.iter().map(|&h| slot_of(h)).collect();
                take(&mut snap, &state, &slots);
                snap.vectors.extend_from_slice(&rows.vectors);
            }
            drop(state);
            drop(index);
            if first == 0 {
                upkeep.pause_at(Stage::Reading);
            }
        }
    } else {
        let mut start = 0;
        while start < bound {
            let Some(index) = handle(weak) else {
                return Ok(None);
            };
            let state = index.read();
            if upkeep.rewrites() != rewrites {
                return Ok(Some(snap));
            }
            let end = start + SNAPSHOT_CHUNK as u64;
            let slots: Vec<u64> = state.entries_in(start..end).map(|(s, _)| s).collect();
            take(&mut snap, &state, &slots);
            snap.vectors.extend(Lists::new(&state).vectors_of(&slots)?);
            drop(state);
            drop(index);
            if start == 0 {
                upkeep.pause_at(Stage::Reading);
            }
            start = end;
        }
    }
    dedupe(&mut snap);
    Ok(Some(snap))
}

/// The vector dimension of the snapshot's index.
fn index_dim(snap: &Snapshot) -> usize {
    snap.body.config.dimension as usize
}

/// Adds the live items in `slots` of `state` to the snapshot (their vectors are added by
/// the caller, in the same order), with the segments their fields lie in.
fn take(snap: &mut Snapshot, state: &State, slots: &[u64]) {
    take_live(state, slots, &mut snap.items, &mut snap.segments);
}

/// Appends the live items among `slots` of `state` to `items`, and the segments their
/// fields lie in to `segments` (the one reader of items for a snapshot and its catch-up).
fn take_live(
    state: &State,
    slots: &[u64],
    items: &mut Vec<Snap>,
    segments: &mut HashMap<u64, Arc<Blob>>,
) {
    for &slot in slots {
        let Some(e) = state.entry(slot) else {
            continue;
        };
        if let Some(f) = e.fields
            && !segments.contains_key(&f.segment)
            && let Some(blob) = state.segments().get(&f.segment)
        {
            segments.insert(f.segment, blob.clone());
        }
        items.push(Snap {
            slot,
            token: e.token,
            id: e.id.clone(),
            origin: e.origin,
            fields: e.fields,
            metadata: e.metadata.clone(),
        });
    }
}

/// Keeps one read of each item: the newest (an item replaced while the snapshot was read
/// may have been read at both its places).
fn dedupe(snap: &mut Snapshot) {
    let dim = index_dim(snap);
    keep_newest(&mut snap.items, &mut snap.vectors, dim);
}

/// Keeps, of the reads in `items` (and their rows in `vectors`, `dim` wide) that are of one
/// item, the newest by origin: the one rule of a snapshot and of its catch-up passes.
fn keep_newest(items: &mut Vec<Snap>, vectors: &mut Vec<f32>, dim: usize) {
    let mut newest: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        match newest.get_mut(&s.token) {
            Some(j) if s.origin > items[*j].origin => *j = i,
            Some(_) => {}
            None => {
                newest.insert(s.token, i);
            }
        }
    }
    if newest.len() == items.len() {
        return;
    }
    let keep: Vec<bool> = items
        .iter()
        .enumerate()
        .map(|(i, s)| newest.get(&s.token) == Some(&i))
        .collect();
    let mut kept = Vec::with_capacity(vectors.len());
    for (row, k) in vectors.chunks_exact(dim.max(1)).zip(&keep) {
        if *k {
            kept.extend_from_slice(row);
        }
    }
    *vectors = kept;
    let mut keep = keep.into_iter();
    items.retain(|_| keep.next().unwrap_or(false));
}

/// Stage 2: k-means on a sample of the snapshot (as `train` samples), the code, and every
/// item's list and code.
fn fit_snapshot(config: &IndexConfig, snap: &Snapshot) -> Fitted {
    let (dim, metric) = (config.dimension(), config.distance_metric());
    let n = snap.items.len();
    let pq = matches!(config.index_type(), IndexType::IvfPq { .. });
    let n_lists = match config.lists() {
        0 => ivf::auto_n_lists(n, pq),
        l => l,
    }
    .min(n);
    let wanted = n_lists
        .saturating_mul(ivf::auto_train_points_per_list(pq))
        .min(n);
    let mut rng = rand::rngs::StdRng::seed_from_u64(TRAINING_SEED);
    let mut picked = sample(&mut rng, n, wanted).into_vec();
    picked.sort_unstable();
    let mut data = Vec::with_capacity(picked.len() * dim);
    for &i in &picked {
        data.extend_from_slice(&snap.vectors[i * dim..(i + 1) * dim]);
    }
    prepare_rows(&mut data, dim, metric);
    let quantizer = fit(config, &data, n_lists, &TrainOptions::default());
    let sample_lists = quantizer.assign_batch(&data);
    let coder = train_codec(config, &quantizer, &data, &sample_lists, TRAINING_SEED);
    drop(data);
    let assignments = assign(&quantizer, &snap.vectors, dim, metric);
    let codes = encode(coder.as_ref(), &quantizer, &snap.vectors, &assignments, dim);
    Fitted {
        quantizer,
        coder,
        assignments,
        codes,
    }
}

/// The nearest list of each row of `vectors`, a chunk at a time (the batch kernel copies
/// its input).
fn assign(quantizer: &Quantizer, vectors: &[f32], dim: usize, metric: Metric) -> Vec<u32> {
    let mut out = Vec::with_capacity(vectors.len() / dim.max(1));
    for chunk in vectors.chunks(SNAPSHOT_CHUNK * dim.max(1)) {
        let mut rows = chunk.to_vec();
        prepare_rows(&mut rows, dim, metric);
        out.extend(quantizer.assign_batch(&rows));
    }
    out
}

/// The code of each row of `vectors` in its list (empty without a coder).
fn encode(
    coder: Option<&Coder>,
    quantizer: &Quantizer,
    vectors: &[f32],
    assignments: &[u32],
    dim: usize,
) -> Vec<Vec<u8>> {
    match coder {
        Some(c) => vectors
            .par_chunks_exact(dim.max(1))
            .zip(assignments)
            .map(|(v, &l)| c.encode(quantizer, l, v))
            .collect(),
        None => vec![Vec::new(); assignments.len()],
    }
}

/// Where stage 3 sealed each snapshot item.
struct Sealed {
    fields: Vec<Option<FieldsRef>>,
    vector_refs: Vec<Option<VectorRef>>,
    blocks: Vec<(u32, BlockRef)>,
}

/// Stage 3: the centroids, codebook and every snapshot item, sealed into `seg`.
fn seal_snapshot(
    seg: &mut SegmentBuilder<'_>,
    config: &IndexConfig,
    snap: &Snapshot,
    fitted: &Fitted,
) -> Result<Sealed> {
    let dim = config.dimension();
    seg.reserve(snap.vectors.len() * 4 + snap.items.len() * 128);
    seg.add_centroids(dim, fitted.quantizer.centroids())?;
    if let Some(c) = &fitted.coder {
        seg.add_codebook(&c.codec.to_bytes())?;
    }
    let fields = reseal_fields(seg, &snap.keys, &snap.segments, &snap.items)?;
    let items: Vec<ItemRef<'_>> = snap
        .items
        .iter()
        .enumerate()
        .map(|(i, s)| ItemRef {
            token: s.token,
            id: &s.id,
            fields: fields[i],
            vector: &snap.vectors[i * dim..(i + 1) * dim],
            code: &fitted.codes[i],
            list: fitted.assignments[i],
        })
        .collect();
    let (vector_refs, blocks) = seal_lists(seg, config, snap.body.list_epoch + 1, &items)?;
    Ok(Sealed {
        fields,
        vector_refs,
        blocks,
    })
}

/// One item to seal into list blocks.
struct ItemRef<'a> {
    token: [u8; 32],
    id: &'a str,
    fields: Option<FieldsRef>,
    vector: &'a [f32],
    code: &'a [u8],
    list: u32,
}

/// Seals the items, grouped by list, under `list_epoch`: each item's vector record (or its
/// place in its list's block) and each list's block.
#[allow(clippy::type_complexity)]
fn seal_lists(
    seg: &mut SegmentBuilder<'_>,
    config: &IndexConfig,
    list_epoch: u64,
    items: &[ItemRef<'_>],
) -> Result<(Vec<Option<VectorRef>>, Vec<(u32, BlockRef)>)> {
    let mut by_list: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, item) in items.iter().enumerate() {
        by_list.entry(item.list).or_default().push(i);
    }
    let lists: Vec<(u32, Vec<BlockItem<'_>>)> = by_list
        .iter()
        .map(|(&list, members)| {
            let block = members
                .iter()
                .map(|&i| BlockItem {
                    token: items[i].token,
                    id: items[i].id,
                    fields: items[i].fields,
                    vector: items[i].vector,
                    code: items[i].code,
                })
                .collect();
            (list, block)
        })
        .collect();
    let placed = seg.add_lists(
        list_epoch,
        (config.dimension(), config.precision().coding()),
        config.is_quantized(),
        &lists,
    )?;
    let mut vector_refs = vec![None; items.len()];
    let mut blocks = Vec::with_capacity(by_list.len());
    for ((&list, members), (block, refs)) in by_list.iter().zip(placed) {
        for (&i, r) in members.iter().zip(refs) {
            vector_refs[i] = r;
        }
        blocks.push((list, block));
    }
    Ok((vector_refs, blocks))
}

/// Re-seals the fields records of `items` (opened from `segments` under `keys`) into `seg`,
/// a chunk at a time: decrypted on every thread, sealed in order.
fn reseal_fields(
    seg: &mut SegmentBuilder<'_>,
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    items: &[Snap],
) -> Result<Vec<Option<FieldsRef>>> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(FIELDS_CHUNK) {
        let opened: Vec<Option<Fields>> = chunk
            .par_iter()
            .map(|s| {
                s.fields
                    .map(|at| persist::open_fields(keys, segments, &s.token, at))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        for (s, fields) in chunk.iter().zip(opened) {
            out.push(match fields {
                Some((m, c)) => Some(seg.add_fields(&s.token, m.as_deref(), c.as_deref())?),
                None => None,
            });
        }
    }
    Ok(out)
}

/// The segment and the new state being built, and which version of each item they hold.
struct Build<'k> {
    seg: SegmentBuilder<'k>,
    state: State,
    /// Per item token: the version held (the segment of the index that held it when read),
    /// its slot in the index's item table then, and its slot in the new state.
    copies: HashMap<[u8; 32], Copy>,
}

/// One item's version in a [`Build`].
#[derive(Clone, Copy)]
struct Copy {
    origin: u64,
    slot: u64,
    fresh: u64,
}

impl<'k> Build<'k> {
    /// The new state of the snapshot's items in the new lists, as `sealed` in `seg`
    /// (committed body, segment and the changes since are added later); the snapshot's
    /// vectors are given up.
    fn new(
        seg: SegmentBuilder<'k>,
        config: &IndexConfig,
        snap: &mut Snapshot,
        fitted: &Fitted,
        sealed: &Sealed,
        budget: usize,
    ) -> Build<'k> {
        let dim = config.dimension();
        let n = snap.items.len();
        let residency = Residency::for_budget(config.is_quantized(), n, dim, budget);
        let committed = Committed {
            keys: snap.keys.clone(),
            header: snap.header.clone(),
            body: snap.body.clone(),
        };
        let trained = (Some(fitted.quantizer.clone()), fitted.coder.clone());
        let mut state = State::new(dim, committed, trained, residency, budget);
        for &(list, block) in &sealed.blocks {
            state.add_block(list, block);
        }
        state.reserve(n, None);
        let mut copies = HashMap::with_capacity(n);
        let vectors = std::mem::take(&mut snap.vectors);
        for (i, s) in snap.items.iter().enumerate() {
            let entry = ItemEntry {
                id: s.id.clone(),
                token: s.token,
                list: fitted.assignments[i],
                row: 0,
                fields: sealed.fields[i],
                vector: sealed.vector_refs[i],
                metadata: s.metadata.clone(),
                origin: snap.seq(),
            };
            let vector = &vectors[i * dim..(i + 1) * dim];
            let fresh = state.insert(entry, Some(vector), &fitted.codes[i]);
            copies.insert(
                s.token,
                Copy {
                    origin: s.origin,
                    slot: s.slot,
                    fresh,
                },
            );
        }
        Build { seg, state, copies }
    }

    /// Adds to the segment and the new state: a tombstone for each of `gone` (items deleted
    /// since they were read) and for each item of `written` read before in another version,
    /// then the items of `written` (read with `segments`, assigned to the new lists).
    /// Tombstones come first: the loader applies a segment's records in order.
    fn add(
        &mut self,
        config: &IndexConfig,
        fitted: &Fitted,
        written: Written,
        gone: &[[u8; 32]],
    ) -> Result<()> {
        let (dim, metric) = (config.dimension(), config.distance_metric());
        let mut dead: Vec<[u8; 32]> = gone.to_vec();
        dead.extend(
            written
                .items
                .iter()
                .filter(|s| self.copies.contains_key(&s.token))
                .map(|s| s.token),
        );
        if !dead.is_empty() {
            self.seg.add_tombstones(&dead)?;
        }
        for token in &dead {
            self.state.remove(token);
            self.copies.remove(token);
        }
        if written.items.is_empty() {
            return Ok(());
        }
        let assignments = assign(&fitted.quantizer, &written.vectors, dim, metric);
        let codes = encode(
            fitted.coder.as_ref(),
            &fitted.quantizer,
            &written.vectors,
            &assignments,
            dim,
        );
        let keys = self.state.keys().clone();
        let fields = reseal_fields(&mut self.seg, &keys, &written.segments, &written.items)?;
        let items: Vec<ItemRef<'_>> = written
            .items
            .iter()
            .enumerate()
            .map(|(i, s)| ItemRef {
                token: s.token,
                id: &s.id,
                fields: fields[i],
                vector: &written.vectors[i * dim..(i + 1) * dim],
                code: &codes[i],
                list: assignments[i],
            })
            .collect();
        let list_epoch = self.state.list_epoch() + 1;
        let (vector_refs, blocks) = seal_lists(&mut self.seg, config, list_epoch, &items)?;
        drop(items);
        for &(list, block) in &blocks {
            self.state.add_block(list, block);
        }
        let seq = self.seg_seq();
        for (i, s) in written.items.into_iter().enumerate() {
            let entry = ItemEntry {
                id: s.id,
                token: s.token,
                list: assignments[i],
                row: 0,
                fields: fields[i],
                vector: vector_refs[i],
                metadata: s.metadata,
                origin: seq,
            };
            let vector = &written.vectors[i * dim..(i + 1) * dim];
            let fresh = self.state.insert(entry, Some(vector), &codes[i]);
            self.copies.insert(
                s.token,
                Copy {
                    origin: s.origin,
                    slot: s.slot,
                    fresh,
                },
            );
        }
        Ok(())
    }

    /// The number of the segment being built.
    fn seg_seq(&self) -> u64 {
        self.seg.seq()
    }
}

/// Items written since some point, as read, with their vectors and the segments their
/// fields lie in.
#[derive(Default)]
struct Written {
    items: Vec<Snap>,
    vectors: Vec<f32>,
    segments: HashMap<u64, Arc<Blob>>,
}

/// A catch-up pass beside the writer: the live items whose version was committed at or
/// after segment `since` and that `build` does not hold, a chunk of slots at a time under
/// the read lock; and the segment number the next pass starts from. `None` when every
/// handle was dropped.
fn read_written_since(
    weak: &Weak<Inner>,
    upkeep: &Upkeep,
    snap: &Snapshot,
    build: &Build<'_>,
    since: u64,
) -> Result<Option<(Written, u64)>> {
    let Some(index) = handle(weak) else {
        return Ok(None);
    };
    let (bound, next) = {
        let state = index.read();
        (state.slot_bound(), state.body().next_segment)
    };
    drop(index);
    let mut out = Written::default();
    let mut start = 0;
    while start < bound {
        let Some(index) = handle(weak) else {
            return Ok(None);
        };
        let state = index.read();
        if upkeep.rewrites() != snap.rewrites {
            return Ok(Some((out, next)));
        }
        let end = start + SNAPSHOT_CHUNK as u64 * 4;
        let slots = written_in(build, since, state.entries_in(start..end));
        take_written(&state, &slots, &mut out)?;
        start = end;
    }
    dedupe_written(&mut out, snap.body.config.dimension as usize);
    Ok(Some((out, next)))
}

/// The slots among `entries` whose version was committed at or after segment
/// `since` and that `build` does not hold.
fn written_in<'a>(
    build: &Build<'_>,
    since: u64,
    entries: impl Iterator<Item = (u64, &'a ItemEntry)>,
) -> Vec<u64> {
    entries
        .filter(|(_, e)| {
            e.origin >= since && build.copies.get(&e.token).map(|c| c.origin) != Some(e.origin)
        })
        .map(|(slot, _)| slot)
        .collect()
}

/// Adds the live items in `slots` of `state`, with their vectors and the segments their
/// fields lie in, to `out`.
fn take_written(state: &State, slots: &[u64], out: &mut Written) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    take_live(state, slots, &mut out.items, &mut out.segments);
    out.vectors.extend(Lists::new(state).vectors_of(slots)?);
    Ok(())
}

/// Keeps one read of each item in `written`: the newest.
fn dedupe_written(written: &mut Written, dim: usize) {
    keep_newest(&mut written.items, &mut written.vectors, dim);
}

impl EncryptedIndex {
    /// Stage 4 (see the module docs): under the writer lock, adds to `build` what changed
    /// since the last catch-up pass (which began at segment `since`): items deleted, and
    /// items written; commits the segment; swaps the new state in.
    fn install(
        &self,
        build: Build<'_>,
        snap: &Snapshot,
        fitted: &Fitted,
        since: u64,
    ) -> Result<Attempt> {
        let _writer = match self.writer() {
            Ok(w) => w,
            Err(
                Error::IndexNotFound | Error::ReadOnly | Error::Locked | Error::PermissionDenied,
            ) => {
                return Ok(Attempt::Gone);
            }
            Err(e) => return Err(e),
        };
        let mut build = build;
        let seq = snap.seq();
        let state = self.read();
        let stale = self.inner.upkeep.rewrites() != snap.rewrites
            || self.inner.next_segment.load(Ordering::SeqCst) > seq
            || state.header() != &snap.header
            || !Arc::ptr_eq(state.keys(), &snap.keys)
            || state.list_epoch() != snap.body.list_epoch;
        if stale {
            return Ok(Attempt::Stale);
        }
        // Items held in a version that is no longer current (deleted, or replaced: the
        // replacement is among the items written since).
        let gone: Vec<[u8; 32]> = build
            .copies
            .iter()
            .filter(|(token, c)| {
                state.slot(token) != Some(c.slot)
                    || state.entry(c.slot).is_none_or(|e| e.origin != c.origin)
            })
            .map(|(token, _)| *token)
            .collect();
        let mut written = Written {
            segments: state.segments().clone(),
            ..Written::default()
        };
        let slots = written_in(&build, since, state.entries());
        take_written(&state, &slots, &mut written)?;
        // Replaced items are tombstoned as they are re-added.
        let gone: Vec<[u8; 32]> = {
            let replaced: std::collections::HashSet<[u8; 32]> =
                written.items.iter().map(|s| s.token).collect();
            gone.into_iter().filter(|t| !replaced.contains(t)).collect()
        };
        build.add(&self.inner.config, fitted, written, &gone)?;
        // The history moves into this segment (the old one holding it is superseded).
        let history = persist::history_to_archive(state.keys(), state.body(), state.segments())?;
        if !history.is_empty() {
            build.seg.add_history(&history)?;
        }
        let list_epoch = snap.body.list_epoch + 1;
        let trained = Some((fitted.quantizer.n_lists() as u32, fitted.coder.is_some()));
        let mut note = persist::replace_note(
            &snap.keys,
            state.body(),
            (self.next_epoch(), list_epoch),
            trained,
            !history.is_empty(),
        );
        note.trained_at = snap.items.len() as u64;
        let Build {
            seg,
            state: mut fresh,
            copies,
        } = build;
        let bytes = seg.finish(&note)?;
        let body = state.body().clone();
        let commit = Commit {
            keys: &snap.keys,
            header: &snap.header,
            body: &body,
        };
        let new_body = self.commit_segment(commit, seq, &bytes, &note)?;
        let epoch = new_body.epoch;
        // Committed. Every current item has its copy now: the full-text postings follow
        // their slots into the new state.
        if let Some(text) = state.text() {
            let new_slot: HashMap<u64, u64> = copies.values().map(|c| (c.slot, c.fresh)).collect();
            fresh.set_text(text.remapped(&new_slot));
        }
        fresh.set_committed(new_body);
        fresh.shrink_to_fit();
        fresh.add_segment(seq, persist::map_segment(&*self.inner.store, seq, bytes));
        drop(state);
        self.inner.upkeep.note_rewrite();
        self.install_rewrite(fresh);
        self.inner.upkeep.lock().trained_epoch = Some(epoch);
        // Items deleted during the training are dead entries of the new segment.
        if let Some(threshold) = self.inner.auto_compact {
            self.compact_if_due(threshold);
        }
        Ok(Attempt::Installed)
    }
}
