//! The metadata range index: every number in the items' metadata, by path and in order, so
//! that a range filter (`$lt`, `$lte`, `$gt`, `$gte` with a number) finds its candidates
//! without evaluating the filter on every item. Like the equality index it is derived from
//! the decrypted metadata in memory, kept in step with the item table, and never stored.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::filter::{self, Coverage};

/// Numbers by path, each with the slot holding it, ordered by value.
#[derive(Clone, Debug, Default)]
pub(crate) struct RangeIndex {
    by_path: HashMap<String, BTreeSet<(u64, u64)>>,
}

/// A key whose integer order is the order of the numbers (`-0` taken as `0`).
fn order_key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

impl RangeIndex {
    /// Adds the numbers of a slot's metadata at the paths `covered` says the index holds.
    pub(crate) fn insert(
        &mut self,
        slot: u64,
        metadata: &Value,
        covered: &dyn Fn(&str) -> Coverage,
    ) {
        for (path, x) in filter::index_numbers(metadata, covered) {
            self.by_path
                .entry(path)
                .or_default()
                .insert((order_key(x), slot));
        }
    }

    /// Removes the numbers of a slot's metadata (the document and coverage `insert` was
    /// given).
    pub(crate) fn remove(
        &mut self,
        slot: u64,
        metadata: &Value,
        covered: &dyn Fn(&str) -> Coverage,
    ) {
        for (path, x) in filter::index_numbers(metadata, covered) {
            if let Some(set) = self.by_path.get_mut(&path) {
                set.remove(&(order_key(x), slot));
                if set.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// The slots holding a number at `path` within the inclusive bounds, in value order (a
    /// slot holding several such numbers comes once per number).
    pub(crate) fn slots(
        &self,
        path: &str,
        lo: Option<f64>,
        hi: Option<f64>,
    ) -> impl Iterator<Item = u64> + '_ {
        let lo = lo.map_or(0, order_key);
        let hi = hi.map_or(u64::MAX, order_key);
        self.by_path
            .get(path)
            .filter(|_| lo <= hi)
            .into_iter()
            .flat_map(move |set| set.range((lo, 0)..=(hi, u64::MAX)))
            .map(|&(_, slot)| slot)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn order_keys_sort_as_the_numbers() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -1e-300,
            0.0,
            1e-300,
            1.0,
            2.5,
            9_007_199_254_740_992.0,
            1e300,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} {}", w[0], w[1]);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }

    #[test]
    fn slots_in_bounds_follow_inserts_and_removes() {
        let mut index = RangeIndex::default();
        let docs: Vec<Value> = (0..50)
            .map(|i| json!({"x": i, "y": [i * 2, -i], "n": {"z": f64::from(i) / 4.0}}))
            .collect();
        for (slot, d) in docs.iter().enumerate() {
            index.insert(slot as u64, d, &|_| Coverage::VALUES);
        }
        for slot in (0..50).step_by(3) {
            index.remove(slot, &docs[slot as usize], &|_| Coverage::VALUES);
        }
        let live = |i: u64| !i.is_multiple_of(3);
        let sorted = |it: &mut dyn Iterator<Item = u64>| {
            let mut v: Vec<u64> = it.collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let want: Vec<u64> = (10..=20).filter(|&i| live(i)).collect();
        assert_eq!(sorted(&mut index.slots("x", Some(10.0), Some(20.0))), want);
        let want: Vec<u64> = (0..50).filter(|&i| live(i) && i * 2 >= 90).collect();
        assert_eq!(sorted(&mut index.slots("y", Some(90.0), None)), want);
        // -i <= -4 for i >= 4; no i * 2 is that small.
        let want: Vec<u64> = (0..50).filter(|&i| live(i) && i >= 4).collect();
        assert_eq!(sorted(&mut index.slots("y", None, Some(-4.0))), want);
        let want: Vec<u64> = (0..50).filter(|&i| live(i) && i <= 2).collect();
        assert_eq!(sorted(&mut index.slots("n.z", None, Some(0.5))), want);
        assert_eq!(index.slots("x", Some(3.0), Some(2.0)).count(), 0);
        assert_eq!(index.slots("absent", None, None).count(), 0);
        for slot in 0..50 {
            if live(slot) {
                index.remove(slot, &docs[slot as usize], &|_| Coverage::VALUES);
            }
        }
        assert!(index.by_path.is_empty());
    }
}
