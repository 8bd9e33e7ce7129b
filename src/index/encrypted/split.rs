//! Lists that follow the data between trainings: a list grown past its bound splits in two
//! (SPFresh's split and reassign, over the encrypted state), each step one commit.
//!
//! A step, after the write that made a list too long (writer lock held): a 2-means of the
//! list's vectors gives two centroids; one replaces the list's, the other takes the slot of
//! the shortest list (whose items go to their nearest lists: a merge) or a new list number.
//! The items of the split and recycled lists are assigned to their nearest centroid, and
//! items of the lists nearest the split one move if a new centroid is now nearer
//! ([`upkeep::SPLIT_NEIGHBOURS`]). Every item that moves (and, with residual codes, every
//! item of a list whose centroid moved) is written again, with its fields, into one new
//! segment beside the new centroids (and the codebook); its commit note says that segment
//! holds the lists from now on. Nothing else is rewritten: items that stay keep their
//! blocks, whose list labels do not change (the list epoch stays); the old copies of moved
//! items are superseded by their newer versions, as an upsert supersedes, and compaction
//! reclaims them.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::maintenance::prepare_rows;
use super::*;
use crate::engine::lists::Lists;
use crate::engine::persist::{BlockItem, SegmentBuilder};
use crate::engine::state::{Coder, Relocated};
use crate::engine::upkeep;
use crate::ivf;

/// The smallest share of a list's items either half of a split must get.
const MIN_HALF_SHARE: f64 = 0.1;

/// A planned split step: the new lists and the items that move.
struct Plan {
    quantizer: Quantizer,
    coder: Option<Coder>,
    /// Lists split.
    split: usize,
    /// Lists found unsplittable, with their lengths.
    unsplittable: Vec<(u32, usize)>,
    /// The items written again: slot, new list, vector and code.
    moves: Vec<Move>,
}

/// One item written again by a split step.
struct Move {
    slot: u64,
    list: u32,
    vector: Vec<f32>,
    code: Vec<u8>,
}

impl EncryptedIndex {
    /// Splits the lists among `touched` that hold more than [`upkeep::split_above`] items
    /// (at most [`upkeep::MAX_SPLITS_PER_STEP`], the longest first), in one commit. The
    /// caller holds the writer lock.
    pub(super) fn split_overfull(&self, touched: &[u32]) -> Result<()> {
        let state = self.read();
        if state.quantizer().is_none() {
            return Ok(());
        }
        let above = upkeep::split_above(state.len(), self.is_pq());
        let mut over: Vec<u32> = touched
            .iter()
            .copied()
            .filter(|&l| state.list_len(l) > above)
            .collect();
        over.sort_unstable();
        over.dedup();
        {
            let u = self.inner.upkeep.lock();
            over.retain(|l| {
                u.unsplittable
                    .get(l)
                    .is_none_or(|&len| state.list_len(*l) >= 2 * len)
            });
        }
        if over.is_empty() {
            return Ok(());
        }
        over.sort_by_key(|&l| (Reverse(state.list_len(l)), l));
        over.truncate(upkeep::MAX_SPLITS_PER_STEP);
        let plan = self.plan_split(&state, &over)?;
        {
            let mut u = self.inner.upkeep.lock();
            u.unsplittable.extend(plan.unsplittable.iter().copied());
        }
        if plan.split == 0 {
            return Ok(());
        }
        self.commit_split(state, plan)
    }

    /// Splits each list of `over` by a 2-means of its vectors and works out which items move.
    fn plan_split(&self, state: &State, over: &[u32]) -> Result<Plan> {
        let (dim, metric) = (self.dim(), self.metric());
        let old = state.quantizer().ok_or_else(|| Error::corrupted("state"))?;
        let lists = Lists::new(state);
        let mut centroids = old.centroids().to_vec();
        let below = upkeep::recycle_below(state.len(), self.is_pq());
        let mut recyclable: Vec<u32> = (0..old.n_lists() as u32)
            .filter(|l| !over.contains(l) && state.list_len(*l) < below)
            .collect();
        recyclable.sort_by_key(|&l| (state.list_len(l), l));
        let mut recyclable = recyclable.into_iter();
        // Lists whose centroid changed (split, recycled or new), and the recycled ones.
        let mut changed: Vec<u32> = Vec::new();
        let mut recycled: Vec<u32> = Vec::new();
        let mut unsplittable = Vec::new();
        for &l in over {
            let (members, mut rows) = lists.members_with_vectors(l)?;
            prepare_rows(&mut rows, dim, metric);
            let spherical = metric == Metric::Cosine;
            let Some((a, b)) =
                ivf::split_in_two(&rows, dim, spherical, (MIN_HALF_SHARE, TRAINING_SEED))
            else {
                unsplittable.push((l, members.len()));
                continue;
            };
            let at = l as usize * dim;
            centroids[at..at + dim].copy_from_slice(&a);
            let slot = match recyclable.next() {
                Some(m) => {
                    let at = m as usize * dim;
                    centroids[at..at + dim].copy_from_slice(&b);
                    recycled.push(m);
                    m
                }
                None => {
                    centroids.extend_from_slice(&b);
                    (centroids.len() / dim - 1) as u32
                }
            };
            changed.extend([l, slot]);
        }
        let split = changed.len() / 2;
        let quantizer = Quantizer::new(dim, centroids, metric);
        let coder = state.coder().map(|c| c.for_quantizer(&quantizer));
        if split == 0 {
            return Ok(Plan {
                quantizer,
                coder,
                split,
                unsplittable,
                moves: Vec::new(),
            });
        }
        // The lists near each split one, by its old centroid.
        let own: Vec<u32> = over.iter().chain(&recycled).copied().collect();
        let mut near: Vec<u32> = Vec::new();
        for &l in over {
            for n in old.probe(old.centroid(l), upkeep::SPLIT_NEIGHBOURS + 1) {
                if !own.contains(&n) && !near.contains(&n) {
                    near.push(n);
                }
            }
        }
        let mut candidates: Vec<(u64, u32, bool)> = Vec::new();
        let mut vectors = Vec::new();
        for (&l, mine) in own
            .iter()
            .map(|l| (l, true))
            .chain(near.iter().map(|l| (l, false)))
        {
            let (members, rows) = lists.members_with_vectors(l)?;
            candidates.extend(members.into_iter().map(|s| (s, l, mine)));
            vectors.extend_from_slice(&rows);
        }
        let mut rows = vectors.clone();
        prepare_rows(&mut rows, dim, metric);
        let nearest = quantizer.assign_batch(&rows);
        let residual = coder.as_ref().is_some_and(Coder::is_residual);
        let mut moves = Vec::new();
        for (i, (&(slot, from, mine), to)) in candidates.iter().zip(nearest).enumerate() {
            let moves_here = if mine {
                to != from || residual
            } else {
                to != from && changed.contains(&to)
            };
            if moves_here {
                let vector = vectors[i * dim..(i + 1) * dim].to_vec();
                let code = match &coder {
                    Some(c) => c.encode(&quantizer, to, &vector),
                    None => Vec::new(),
                };
                moves.push(Move {
                    slot,
                    list: to,
                    vector,
                    code,
                });
            }
        }
        Ok(Plan {
            quantizer,
            coder,
            split,
            unsplittable,
            moves,
        })
    }

    /// Seals the moved items and the new centroids into one segment, commits it, and applies
    /// the step to the in-memory state.
    fn commit_split(&self, state: RwLockReadGuard<'_, State>, plan: Plan) -> Result<()> {
        let dim = self.dim();
        let keys = state.keys().clone();
        let (header, body) = (state.header().clone(), state.body().clone());
        let seq = self.inner.next_segment.load(Ordering::SeqCst);
        let mut seg = SegmentBuilder::new(&keys, &header, seq)?;
        seg.add_centroids(dim, plan.quantizer.centroids())?;
        if let Some(c) = &plan.coder {
            seg.add_codebook(&c.codec.to_bytes())?;
        }
        let mut fields = Vec::with_capacity(plan.moves.len());
        for m in &plan.moves {
            let e = state
                .entry(m.slot)
                .ok_or_else(|| Error::corrupted("state"))?;
            fields.push(match e.fields {
                Some(at) => {
                    let (meta, contents) =
                        persist::open_fields(state.keys(), state.segments(), &e.token, at)?;
                    Some(seg.add_fields(&e.token, meta.as_deref(), contents.as_deref())?)
                }
                None => None,
            });
        }
        let mut by_list: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, m) in plan.moves.iter().enumerate() {
            by_list.entry(m.list).or_default().push(i);
        }
        let blocks = by_list
            .iter()
            .map(|(&list, members)| {
                let items = members
                    .iter()
                    .map(|&i| {
                        let m = &plan.moves[i];
                        let e = state
                            .entry(m.slot)
                            .ok_or_else(|| Error::corrupted("state"))?;
                        Ok(BlockItem {
                            token: e.token,
                            id: &e.id,
                            fields: fields[i],
                            vector: &m.vector,
                            code: &m.code,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((list, items))
            })
            .collect::<Result<Vec<_>>>()?;
        let placed = seg.add_lists(
            state.list_epoch(),
            (dim, state.coding()),
            self.is_quantized(),
            &blocks,
        )?;
        let mut vector_refs = vec![None; plan.moves.len()];
        let mut new_blocks = Vec::with_capacity(by_list.len());
        for ((&list, members), (block, refs)) in by_list.iter().zip(placed) {
            for (&i, r) in members.iter().zip(refs) {
                vector_refs[i] = r;
            }
            new_blocks.push((list, block));
        }
        let n_lists = plan.quantizer.n_lists() as u32;
        let note = persist::split_note(
            &keys,
            &body,
            self.next_epoch(),
            (n_lists, plan.coder.is_some()),
        );
        let bytes = seg.finish(&note)?;
        let commit = Commit {
            keys: &keys,
            header: &header,
            body: &body,
        };
        let new_body = self.commit_segment(commit, seq, &bytes, &note)?;
        drop(state);
        let blob = persist::map_segment(&*self.inner.store, seq, bytes);
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.add_segment(seq, blob);
        state.set_split_lists(plan.quantizer, plan.coder);
        for (list, block) in new_blocks {
            state.add_block(list, block);
        }
        for (i, m) in plan.moves.iter().enumerate() {
            let to = Relocated {
                list: m.list,
                fields: fields[i],
                vector: vector_refs[i],
                origin: seq,
            };
            state.relocate(m.slot, to, &m.vector, &m.code);
        }
        state.set_committed(new_body);
        drop(state);
        self.inner.upkeep.lock().splits += plan.split as u64;
        Ok(())
    }
}
