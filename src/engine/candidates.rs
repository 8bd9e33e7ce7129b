//! The candidates of a filter from the in-memory metadata indexes: a superset of its matches
//! found by a [`Plan`] through the equality index, the range index and the pattern
//! dictionary, for filters that name exact values, numeric ranges or string patterns.

use crate::filter::Plan;
use crate::ivf::HandleSet;

use super::state::State;

/// A plan with its pattern tests already run (each distinct string tested once).
enum Node<'p> {
    /// The items holding any of these equality terms.
    Terms(&'p [String]),
    /// The items holding a number at `path` within the inclusive bounds.
    Range {
        path: &'p str,
        lo: Option<f64>,
        hi: Option<f64>,
    },
    /// These items (a pattern test's, from the dictionary).
    Slots(Vec<u64>),
    /// The items every sub-node finds (the smallest stands for all).
    All(Vec<Node<'p>>),
    /// The items any sub-node finds.
    Any(Vec<Node<'p>>),
}

/// A plan whose pattern tests have run: what [`indexed`] and [`set`] read, so that a query
/// trying one and then the other tests each dictionary string once.
pub(crate) struct Resolved<'p>(Node<'p>);

/// Runs the plan's pattern tests over the dictionary.
pub(crate) fn resolve<'p>(state: &State, plan: &'p Plan) -> Resolved<'p> {
    Resolved(resolve_node(state, plan))
}

/// A superset of the items `plan` selects, sorted and without repeats, if it holds at most
/// `limit` items by the posting lengths, range counts and pattern matches (`None` when
/// larger: the caller scans instead).
pub(crate) fn indexed(state: &State, plan: &Resolved<'_>, limit: usize) -> Option<Vec<u64>> {
    (bound(state, plan, limit) <= limit).then(|| sorted(state, plan, limit))
}

/// An upper bound on the items `plan` finds (by the posting lengths, range counts and
/// pattern matches), exact up to `limit`: past it only that it is larger (at most `limit +
/// 1` range entries are walked).
pub(crate) fn bound(state: &State, plan: &Resolved<'_>, limit: usize) -> usize {
    size(state, &plan.0, limit)
}

/// Whether counting the candidates of `plan` walks a range of the range index (one step per
/// entry) rather than summing posting lengths (one step per term).
pub(crate) fn walks_ranges(plan: &Resolved<'_>) -> bool {
    fn walks(node: &Node<'_>) -> bool {
        match node {
            Node::Range { .. } => true,
            Node::Terms(_) | Node::Slots(_) => false,
            Node::All(nodes) | Node::Any(nodes) => nodes.iter().any(walks),
        }
    }
    walks(&plan.0)
}

/// Whether [`sorted`] takes every sub-plan of `plan` (no `All` of several, of which it
/// takes only the smallest): an exact plan's [`sorted`] items are then exactly its matches.
pub(crate) fn sorted_takes_all(plan: &Resolved<'_>) -> bool {
    fn takes_all(node: &Node<'_>) -> bool {
        match node {
            Node::Terms(_) | Node::Range { .. } | Node::Slots(_) => true,
            Node::All(nodes) => nodes.len() <= 1 && nodes.iter().all(takes_all),
            Node::Any(nodes) => nodes.iter().all(takes_all),
        }
    }
    takes_all(&plan.0)
}

/// A superset of the items `plan` selects, sorted and without repeats ([`indexed`] for a
/// caller that has checked the [`bound`] at `limit`, which also caps the walks that choose
/// the smallest sub-plan of an `All`).
pub(crate) fn sorted(state: &State, plan: &Resolved<'_>, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    collect(state, &plan.0, limit, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

fn resolve_node<'p>(state: &State, plan: &'p Plan) -> Node<'p> {
    match plan {
        Plan::AnyOf(terms) => Node::Terms(terms),
        Plan::Range { path, lo, hi } => Node::Range {
            path,
            lo: *lo,
            hi: *hi,
        },
        Plan::Strings { path, test } => Node::Slots(state.pattern_index().slots(path, test)),
        Plan::All(plans) => Node::All(plans.iter().map(|p| resolve_node(state, p)).collect()),
        Plan::Any(plans) => Node::Any(plans.iter().map(|p| resolve_node(state, p)).collect()),
    }
}

/// About how many items a node finds, counting at most `limit + 1` range entries: only
/// whether a node exceeds the limit, and which sub-node of an `All` is smallest, matter.
fn size(state: &State, node: &Node<'_>, limit: usize) -> usize {
    match node {
        Node::Terms(terms) => terms
            .iter()
            .map(|t| state.meta_index().posting_len(t))
            .sum(),
        Node::Range { path, lo, hi } => state
            .range_index()
            .slots(path, *lo, *hi)
            .take(limit.saturating_add(1))
            .count(),
        Node::Slots(slots) => slots.len(),
        Node::All(nodes) => nodes
            .iter()
            .map(|n| size(state, n, limit))
            .min()
            .unwrap_or(usize::MAX),
        Node::Any(nodes) => nodes
            .iter()
            .map(|n| size(state, n, limit))
            .fold(0, usize::saturating_add),
    }
}

fn collect(state: &State, node: &Node<'_>, limit: usize, out: &mut Vec<u64>) {
    match node {
        Node::Terms(terms) => terms
            .iter()
            .for_each(|t| out.extend(state.meta_index().handles_with(t))),
        Node::Range { path, lo, hi } => out.extend(state.range_index().slots(path, *lo, *hi)),
        Node::Slots(slots) => out.extend_from_slice(slots),
        Node::All(nodes) => {
            if let Some(smallest) = nodes.iter().min_by_key(|n| size(state, n, limit)) {
                collect(state, smallest, limit, out);
            }
        }
        Node::Any(nodes) => nodes.iter().for_each(|n| collect(state, n, limit, out)),
    }
}

/// The items `plan` finds, as a set of slots for a scan to test rows against (a superset of
/// the filter's matches, as [`indexed`]'s): an `All` keeps what every sub-plan finds, an
/// `Any` what any does.
pub(crate) fn set(state: &State, plan: &Resolved<'_>) -> HandleSet {
    fill(state, &plan.0)
}

fn fill(state: &State, node: &Node<'_>) -> HandleSet {
    let mut out = HandleSet::with_bound(state.slot_bound());
    match node {
        Node::Terms(terms) => terms.iter().for_each(|t| {
            state
                .meta_index()
                .handles_with(t)
                .into_iter()
                .for_each(|s| out.insert(s));
        }),
        Node::Range { path, lo, hi } => state
            .range_index()
            .slots(path, *lo, *hi)
            .for_each(|s| out.insert(s)),
        Node::Slots(slots) => slots.iter().for_each(|&s| out.insert(s)),
        Node::All(nodes) => {
            let mut sets = nodes.iter().map(|n| fill(state, n));
            if let Some(first) = sets.next() {
                out = sets.fold(first, |mut acc, s| {
                    acc.intersect_with(&s);
                    acc
                });
            }
        }
        Node::Any(nodes) => nodes.iter().for_each(|n| out.union_with(&fill(state, n))),
    }
    out
}
