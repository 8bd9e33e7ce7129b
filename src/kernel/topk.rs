//! Bounded top-k selection with a deterministic tie-break.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate: a distance (smaller is closer) and a caller-defined handle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Neighbor {
    /// Distance to the query; smaller is closer.
    pub distance: f32,
    /// The caller's handle of the candidate.
    pub handle: u64,
}

impl Eq for Neighbor {}

impl Ord for Neighbor {
    /// By distance (total order on floats), then by handle: equal distances always resolve the
    /// same way, whatever order candidates arrive in.
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.handle.cmp(&other.handle))
    }
}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `k` smallest [`Neighbor`]s seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    /// An empty selection of at most `k`.
    pub(crate) fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    /// The most it keeps.
    pub(crate) fn capacity(&self) -> usize {
        self.k
    }

    /// The distance a candidate must not exceed to enter (infinity until `k` are held).
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |n| n.distance)
        }
    }

    /// Offers one candidate.
    #[inline]
    pub(crate) fn push(&mut self, distance: f32, handle: u64) {
        if self.k == 0 {
            return;
        }
        let n = Neighbor { distance, handle };
        if self.heap.len() < self.k {
            self.heap.push(n);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && n < *worst
        {
            *worst = n;
        }
    }

    /// Offers a block of candidates whose handles are `handles[i]`.
    pub(crate) fn push_block(&mut self, distances: &[f32], handles: &[u64]) {
        let mut threshold = self.threshold();
        for (&d, &h) in distances.iter().zip(handles) {
            if d <= threshold {
                self.push(d, h);
                threshold = self.threshold();
            }
        }
    }

    /// The held candidates, closest first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng, rngs::StdRng};

    #[test]
    fn equals_full_sort_with_ties() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..200 {
            let n = rng.next_u32() as usize % 300;
            let k = rng.next_u32() as usize % 40;
            // Few distinct values, so ties are common.
            let all: Vec<Neighbor> = (0..n)
                .map(|i| Neighbor {
                    distance: (rng.next_u32() % 7) as f32,
                    handle: i as u64,
                })
                .collect();
            let mut top = TopK::new(k);
            for chunk in all.chunks(13) {
                let d: Vec<f32> = chunk.iter().map(|c| c.distance).collect();
                let h: Vec<u64> = chunk.iter().map(|c| c.handle).collect();
                top.push_block(&d, &h);
            }
            let mut want = all.clone();
            want.sort();
            want.truncate(k);
            assert_eq!(top.into_sorted(), want);
        }
    }
}
