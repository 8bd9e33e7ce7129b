//! The pattern dictionary: for each metadata field the schema marks `pattern`, its distinct
//! strings and the items holding each, so that a `$regex` or `$contains` tests each distinct
//! string once instead of every item's. Like the equality and range indexes it is derived
//! from the decrypted metadata in memory, kept in step with the item table, and never
//! stored.

use std::collections::HashMap;

use serde_json::Value;

use crate::filter::{self, Coverage, StringTest};

/// Distinct strings by path, each with the slots holding it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PatternIndex {
    by_path: HashMap<String, HashMap<Box<str>, Vec<u32>>>,
}

impl PatternIndex {
    /// Adds the strings of a slot's metadata at the paths `covered` gives a dictionary.
    pub(crate) fn insert(
        &mut self,
        slot: u64,
        metadata: &Value,
        covered: &dyn Fn(&str) -> Coverage,
    ) {
        let slot = slot as u32;
        for (path, s) in filter::index_strings(metadata, covered) {
            self.by_path
                .entry(path)
                .or_default()
                .entry(s.into_boxed_str())
                .or_default()
                .push(slot);
        }
    }

    /// Removes the strings of a slot's metadata (the document and coverage `insert` was
    /// given). Linear in the items holding each string: pattern fields hold titles, codes
    /// and names, whose strings few items share.
    pub(crate) fn remove(
        &mut self,
        slot: u64,
        metadata: &Value,
        covered: &dyn Fn(&str) -> Coverage,
    ) {
        let slot = slot as u32;
        for (path, s) in filter::index_strings(metadata, covered) {
            let Some(strings) = self.by_path.get_mut(&path) else {
                continue;
            };
            if let Some(slots) = strings.get_mut(s.as_str()) {
                if let Some(i) = slots.iter().position(|&x| x == slot) {
                    slots.swap_remove(i);
                }
                if slots.is_empty() {
                    strings.remove(s.as_str());
                }
            }
            if strings.is_empty() {
                self.by_path.remove(&path);
            }
        }
    }

    /// The slots holding, at `path`, a string `test` accepts (a slot holding several comes
    /// once per string).
    pub(crate) fn slots(&self, path: &str, test: &StringTest) -> Vec<u64> {
        self.by_path
            .get(path)
            .into_iter()
            .flatten()
            .filter(|(s, _)| test.accepts(s))
            .flat_map(|(_, slots)| slots.iter().map(|&s| u64::from(s)))
            .collect()
    }

    /// How many distinct strings `path` holds (what testing them all costs).
    #[cfg(test)]
    pub(crate) fn distinct(&self, path: &str) -> usize {
        self.by_path.get(path).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_enter_and_leave_with_their_items() {
        let covered = |p: &str| Coverage {
            values: true,
            strings: p == "t",
        };
        let mut index = PatternIndex::default();
        let docs = [
            json!({"t": "INV-2291", "u": "INV-1"}),
            json!({"t": ["INV-2291", "x"]}),
            json!({"t": "INV-3000"}),
        ];
        for (slot, d) in docs.iter().enumerate() {
            index.insert(slot as u64, d, &covered);
        }
        let test = StringTest::Substring("INV".to_owned());
        let mut found = index.slots("t", &test);
        found.sort_unstable();
        assert_eq!(found, [0, 1, 2]);
        assert_eq!(index.distinct("t"), 3);
        assert!(index.slots("u", &test).is_empty());
        index.remove(1, &docs[1], &covered);
        index.remove(2, &docs[2], &covered);
        assert_eq!(index.slots("t", &test), [0]);
        assert_eq!(index.distinct("t"), 1);
    }
}
