//! A set of row handles as a bitmap over their low 32 bits: the candidates of a filter,
//! built once per query from the metadata indexes, then tested for every row a search walks
//! before any distance is computed for it (one bit test where the filter itself evaluates a
//! JSON document).

/// Handles keyed by their low 32 bits (where the index keeps a row's slot: two live rows
/// never share them). A handle beyond the bitmap's bound is not in the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HandleSet {
    words: Vec<u64>,
}

/// The key of a handle: its low 32 bits.
fn key(handle: u64) -> usize {
    (handle & 0xffff_ffff) as usize
}

impl HandleSet {
    /// An empty set that holds keys below `bound` without growing.
    pub(crate) fn with_bound(bound: u64) -> HandleSet {
        HandleSet {
            words: vec![0; (bound as usize).div_ceil(64)],
        }
    }

    /// Adds a handle (growing the bitmap when its key lies beyond it).
    pub(crate) fn insert(&mut self, handle: u64) {
        let k = key(handle);
        if k / 64 >= self.words.len() {
            self.words.resize(k / 64 + 1, 0);
        }
        self.words[k / 64] |= 1 << (k % 64);
    }

    /// Whether the set holds a handle with the low 32 bits of `handle`.
    #[inline]
    pub(crate) fn contains(&self, handle: u64) -> bool {
        let k = key(handle);
        self.words
            .get(k / 64)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

    /// How many keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Keeps only the keys `other` holds too.
    pub(crate) fn intersect_with(&mut self, other: &HandleSet) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Adds every key `other` holds.
    pub(crate) fn union_with(&mut self, other: &HandleSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// The keys held, ascending.
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let bit = w.trailing_zeros();
                    w &= w - 1;
                    (i * 64) as u64 + u64::from(bit)
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn behaves_as_a_set_of_low_32_bit_keys() {
        let mut rng = 7u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut a, mut b) = (HandleSet::with_bound(100), HandleSet::default());
        let (mut sa, mut sb) = (BTreeSet::new(), BTreeSet::new());
        for _ in 0..500 {
            // High bits (an id hash) do not matter; keys past the bound grow the bitmap.
            let h = (next() << 32) | (next() % 300);
            a.insert(h);
            sa.insert(h & 0xffff_ffff);
            let h = next() % 200;
            b.insert(h);
            sb.insert(h);
        }
        for k in 0..400u64 {
            assert_eq!(a.contains(k | (k << 40)), sa.contains(&k), "{k}");
        }
        assert!(!a.contains(1 << 31));
        assert_eq!(a.len(), sa.len());
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            sa.iter().copied().collect::<Vec<_>>()
        );
        let (mut and, mut or) = (a.clone(), b.clone());
        and.intersect_with(&b);
        or.union_with(&a);
        let want_and: Vec<u64> = sa.intersection(&sb).copied().collect();
        let want_or: Vec<u64> = sa.union(&sb).copied().collect();
        assert_eq!(and.keys().collect::<Vec<_>>(), want_and);
        assert_eq!(or.keys().collect::<Vec<_>>(), want_or);
    }
}
