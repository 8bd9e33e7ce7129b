//! The plan of a filtered vector query whose filter matches too many items to rank them all
//! cheaply, or too few for an unfiltered probe count to find `top_k` of them: whether to
//! rank the filter's candidates exactly (from the metadata indexes' posting lists) or to
//! probe lists, and which lists to probe.
//!
//! Both choices rest on the filter's candidates as a [`HandleSet`] (a superset of its
//! matches from the equality, range and pattern indexes, built once per query): a probe
//! tests each row of a list against it before computing any distance, so its cost is the
//! candidates it meets, not the rows it passes over; and counting a list's candidates is a
//! pass over its handles, which tells the planner where the matches are before it scans.

use crate::ivf::{self, HandleSet, Quantizer};
use crate::metric::Metric;

use super::state::{Residency, State};

/// What the choice between the exact ranking and a probe weighs, in units of one row's
/// distance in a list scan (a contiguous vector read from RAM: the flat scan is
/// memory-bound).
///
/// Measured with `examples/filter_sweep.rs` on 50,000 sentence embeddings (384 dimensions,
/// `ivf_flat`, vectors resident, one thread): an unfiltered query (894 centroids, 75 lists of
/// about 56 rows) took about 1.2 ms, so about 0.2 us a scanned row; the exact ranking of a
/// 1% filter's 500 candidates about 0.27 ms with the lookups around it, about 0.5 us (2.5
/// rows) a candidate, whose entry and vector lie scattered in memory; a row a probe passes
/// over on its candidate bit costs about 1/50 of one it scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Costs {
    /// One candidate of the exact ranking: its entry, the filter on its metadata, its
    /// vector fetched from wherever it lies, its distance.
    pub exact_candidate: f64,
    /// One centroid of the coarse probe.
    pub centroid: f64,
    /// One row a probe passes over on its candidate bit.
    pub skipped_row: f64,
    /// One candidate row a probe scores.
    pub scored_row: f64,
}

/// The costs of an index whose vectors are resident (measured, see [`Costs`]). A quantized
/// index scores codes, cheaper than vectors, but its exact ranking reads vectors all the
/// same: the weights hold for it too, erring towards the exact ranking (exact results).
pub(crate) const RESIDENT: Costs = Costs {
    exact_candidate: 2.5,
    centroid: 1.0,
    skipped_row: 0.02,
    scored_row: 1.0,
};

/// The shape of a filtered query, as the planner sees it before reading any list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shape {
    /// Live items.
    pub items: usize,
    /// Lists.
    pub n_lists: usize,
    /// The query's unfiltered probe count.
    pub n_probes: usize,
    /// The estimated share of the items the filter matches (from the selectivity sample).
    pub selectivity: f64,
    /// The filter's candidates from the metadata indexes, when it has a plan there.
    pub candidates: Option<usize>,
}

/// The probe count of a filtered scan over the nearest lists: `n_probes /
/// selectivity^a` ([`widen_exponent`]; measured: with the matches spread evenly over the
/// lists, it keeps recall@10 at or above the unfiltered figure), within
/// `n_probes..=n_lists`.
pub(crate) fn widened_probes(n_probes: usize, n_lists: usize, selectivity: f64) -> usize {
    let widened =
        (n_probes as f64 * selectivity.max(1e-9).powf(-widen_exponent(selectivity))).ceil();
    (widened.min(n_lists as f64) as usize).clamp(n_probes.min(n_lists), n_lists.max(1))
}

/// The exponent `a` of the widening `n_probes / selectivity^a`: 1/2 where the scan tests
/// rows against the candidate set ([`CANDIDATE_SET_MAX`] or below: an extra list costs
/// little more than its candidates, so the widening errs towards recall), 0.3 above it,
/// where every extra list is scored in full. Measured with `examples/filter_sweep.rs`
/// (`ivf_flat`, 50,000 sentence embeddings, unfiltered recall@10 0.971): at 50% an exponent
/// of 0.3 keeps recall@10 at 0.973 (0.2: 0.969, below the unfiltered figure); at 10% 0.3
/// gave 0.965 and 0.5 gives 0.983.
fn widen_exponent(selectivity: f64) -> f64 {
    if selectivity <= CANDIDATE_SET_MAX {
        0.5
    } else {
        0.3
    }
}

/// The largest estimated selectivity for which a filtered probe builds the filter's
/// candidate set: above it, building the set (a walk over the candidates' index entries)
/// and scoring candidate rows one by one cost more than scoring every row with the block
/// kernel and evaluating the filter on those that would enter.
pub(crate) const CANDIDATE_SET_MAX: f64 = 0.3;

/// Whether ranking the candidates exactly costs less than probing, by [`Costs`]: the exact
/// ranking pays for every candidate; a probe for the centroids, every row of the widened
/// lists (passed over on a bit) and the candidates among them (scored). Without candidates
/// from the indexes the exact ranking would evaluate the filter on every item: never cheaper
/// here (the caller's rule for selective filters decides then).
pub(crate) fn exact_is_cheaper(shape: &Shape, costs: &Costs) -> bool {
    let Some(candidates) = shape.candidates else {
        return false;
    };
    if shape.n_lists <= 1 {
        return true;
    }
    let per_list = shape.items as f64 / shape.n_lists as f64;
    let lists = widened_probes(shape.n_probes, shape.n_lists, shape.selectivity) as f64;
    let rows = lists * per_list;
    let probe = shape.n_lists as f64 * costs.centroid
        + rows * costs.skipped_row
        + rows * shape.selectivity * costs.scored_row;
    candidates as f64 * costs.exact_candidate <= probe
}

/// One list in the order a filtered probe may visit them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ListInfo {
    /// The list.
    pub list: u32,
    /// Its centroid's distance to the query (what the scan of its codes adds).
    pub distance: f32,
    /// Its rows.
    pub rows: usize,
    /// Its rows among the filter's candidates.
    pub candidates: usize,
}

/// The lists a filtered probe scans, from `nearest` (lists nearest first, each with its
/// rows and candidate rows counted): nearest first as an unfiltered probe takes them, but
/// passing over the lists that hold no candidate (they cannot add a hit), and stopping once
/// both hold:
/// - it has scanned `n_probes` lists that hold candidates (never fewer than an unfiltered
///   query scans, where matches crowd around the query);
/// - it has met `selectivity^(1 - a)` ([`widen_exponent`]) times the rows of the `n_probes`
///   nearest lists in candidates: with matches spread evenly, the candidates of
///   [`widened_probes`] lists, measured to keep recall; where matches are denser than that
///   near the query, fewer lists; where they are sparser, more.
///
/// `None` when `nearest` runs out first (the caller widens its window, or scans everything).
/// `nearest` is taken no further than the plan needs: a caller counting candidates as it
/// yields lists counts no list past the last one planned.
pub(crate) fn plan_lists(
    nearest: impl IntoIterator<Item = ListInfo>,
    n_probes: usize,
    selectivity: f64,
) -> Option<Vec<(u32, f32)>> {
    let mut nearest = nearest.into_iter();
    let head: Vec<ListInfo> = nearest.by_ref().take(n_probes).collect();
    let unfiltered_rows: usize = head.iter().map(|l| l.rows).sum();
    let target = unfiltered_rows as f64
        * selectivity
            .clamp(0.0, 1.0)
            .powf(1.0 - widen_exponent(selectivity));
    let (mut met, mut scanned) = (0usize, 0usize);
    let mut out = Vec::new();
    for l in head.into_iter().chain(nearest) {
        if l.candidates == 0 {
            continue;
        }
        out.push((l.list, l.distance));
        scanned += 1;
        met += l.candidates;
        if scanned >= n_probes && met as f64 >= target {
            return Some(out);
        }
    }
    None
}

/// Counts the rows of `handles` that `candidates` holds.
pub(crate) fn count_candidates(handles: &[u64], candidates: &HandleSet) -> usize {
    handles.iter().filter(|&&h| candidates.contains(h)).count()
}

/// The lists a filtered probe of `query` scans on an index whose lists hold their handles in
/// RAM ([`plan_lists`] over the lists nearest to it, each list's candidates counted on its
/// handles), and whether they are every list holding a candidate. `None` when the lists
/// are not in RAM (counting would decrypt them): the caller probes the [`widened_probes`]
/// nearest.
pub(crate) fn lists_for(
    state: &State,
    quantizer: &Quantizer,
    (query, metric): (&[f32], Metric),
    n_probes: usize,
    selectivity: f64,
    candidates: &HandleSet,
) -> Option<(Vec<(u32, f32)>, bool)> {
    if state.residency() == Residency::OnDemand {
        return None;
    }
    let query = ivf::prepare_query(query, metric);
    let n_lists = state.n_lists();
    let info = |(list, distance): (u32, f32)| {
        let handles = state.list(list).map_or(&[][..], |l| &l.handles[..]);
        ListInfo {
            list,
            distance,
            rows: handles.len(),
            candidates: count_candidates(handles, candidates),
        }
    };
    // Twice the widened count of centroids ranked first (ranking every centroid is not
    // free), their candidates counted only as far as the plan goes; then every list.
    let window = widened_probes(n_probes, n_lists, selectivity).saturating_mul(2);
    let nearest = quantizer.probe_with_distances(&query, window.min(n_lists));
    if let Some(lists) = plan_lists(nearest.into_iter().map(info), n_probes, selectivity) {
        return Some((lists, false));
    }
    let every = quantizer.probe_with_distances(&query, n_lists);
    if window < n_lists
        && let Some(lists) = plan_lists(every.iter().copied().map(info), n_probes, selectivity)
    {
        return Some((lists, false));
    }
    let all = every.into_iter().map(info).filter(|l| l.candidates > 0);
    Some((all.map(|l| (l.list, l.distance)).collect(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(counts: &[(usize, usize)]) -> Vec<ListInfo> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &(rows, candidates))| ListInfo {
                list: i as u32,
                distance: i as f32,
                rows,
                candidates,
            })
            .collect()
    }

    fn planned(p: &[(u32, f32)]) -> Vec<u32> {
        p.iter().map(|l| l.0).collect()
    }

    #[test]
    fn even_matches_take_the_widened_lists() {
        // 100 lists of 100 rows, 25% of each a candidate: sqrt(0.25) = 0.5 of the rows of
        // 4 lists in candidates (200) takes 8 lists, as n_probes / sqrt(s) does.
        let nearest = lists(&[(100, 25); 100]);
        let plan = plan_lists(nearest.clone(), 4, 0.25).unwrap();
        assert_eq!(planned(&plan), (0..8).collect::<Vec<_>>());
        assert_eq!(widened_probes(4, 100, 0.25), 8);
        assert_eq!(plan[3], (3, 3.0));
    }

    #[test]
    fn lists_without_candidates_are_passed_over_and_never_fewer_than_n_probes() {
        // Matches crowd in lists 5..10; the first five lists hold none.
        let mut counts = vec![(100, 0); 5];
        counts.extend([(100, 100); 5]);
        counts.extend([(100, 0); 90]);
        let nearest = lists(&counts);
        // 10% overall, but dense here: n_probes non-empty lists suffice.
        let plan = plan_lists(nearest.clone(), 3, 0.1).unwrap();
        assert_eq!(planned(&plan), vec![5, 6, 7]);
        // Sparser than the estimate says: as many lists as hold the target (200 rows of
        // the two nearest lists, times sqrt(0.01)), or all there are, then `None`.
        let sparse = lists(&[(100, 1); 50]);
        let plan = plan_lists(sparse.clone(), 2, 0.01).unwrap();
        assert_eq!(planned(&plan), (0..20).collect::<Vec<_>>());
        assert_eq!(plan_lists(sparse, 2, 0.5), None);
    }

    #[test]
    fn exact_ranking_wins_for_few_candidates_and_loses_for_many() {
        let shape = |selectivity: f64| Shape {
            items: 50_000,
            n_lists: 894,
            n_probes: 75,
            selectivity,
            candidates: Some((50_000.0 * selectivity) as usize),
        };
        assert!(exact_is_cheaper(&shape(0.001), &RESIDENT));
        assert!(exact_is_cheaper(&shape(0.01), &RESIDENT));
        assert!(!exact_is_cheaper(&shape(0.1), &RESIDENT));
        assert!(!exact_is_cheaper(&shape(0.5), &RESIDENT));
        let unplanned = Shape {
            candidates: None,
            ..shape(0.001)
        };
        assert!(!exact_is_cheaper(&unplanned, &RESIDENT));
        let one_list = Shape {
            n_lists: 1,
            ..shape(0.5)
        };
        assert!(exact_is_cheaper(&one_list, &RESIDENT));
    }

    #[test]
    fn candidates_are_counted_by_slot() {
        let mut set = HandleSet::with_bound(10);
        set.insert(3);
        set.insert(7);
        let handles = [3 | (9 << 32), 4, 7 | (1 << 40), 8];
        assert_eq!(count_candidates(&handles, &set), 2);
    }
}
