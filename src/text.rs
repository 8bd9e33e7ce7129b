//! Full-text search: the tokenizer and an in-memory BM25 index over item contents.
//!
//! The index is derived, never stored: it is built from the decrypted contents when an index
//! with full text opens (as the metadata is, for filters) and kept up to date by every write.
//! At rest the contents stay in their sealed, padded fields records and nothing else is
//! written, so the posting index adds nothing to what a copy of the files reveals.
//!
//! Tokenizer: Unicode word boundaries (UAX #29, the `unicode-segmentation` crate's
//! `unicode_words`), then Unicode lowercase; no stop words, no stemming. Tokens longer than
//! [`MAX_TOKEN_BYTES`] are dropped. Scores follow Lucene's BM25:
//! `idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))` summed over the query's tokens (a
//! repeated query token counts again), `idf(t) = ln(1 + (N - n + 0.5) / (n + 0.5))`, where `N`
//! is the number of items with UTF-8 contents, `n` those containing `t`, `dl` the item's token
//! count and `avgdl` their mean. Unlike Lucene, document lengths are exact, not rounded to a
//! byte.

use std::collections::{HashMap, HashSet};

use unicode_segmentation::UnicodeSegmentation;

/// Tokens longer than this (in UTF-8 bytes) are not indexed or searched.
pub(crate) const MAX_TOKEN_BYTES: usize = 256;

/// BM25's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bm25 {
    /// Term-frequency saturation (Lucene's default 1.2).
    pub k1: f32,
    /// Length normalization (Lucene's default 0.75).
    pub b: f32,
}

impl Default for Bm25 {
    fn default() -> Bm25 {
        Bm25 { k1: 1.2, b: 0.75 }
    }
}

/// The tokens of `text`, in order.
pub(crate) fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words()
        .filter(|w| w.len() <= MAX_TOKEN_BYTES)
        .map(str::to_lowercase)
}

/// One item's analyzed contents: its length in tokens and each distinct term's count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DocTerms {
    len: u32,
    terms: Vec<(String, u32)>,
}

/// Analyzes contents; `None` when they are not UTF-8 (such items are skipped and counted).
pub(crate) fn analyze(contents: &[u8]) -> Option<DocTerms> {
    let text = std::str::from_utf8(contents).ok()?;
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut len = 0u32;
    for token in tokenize(text) {
        len = len.saturating_add(1);
        *counts.entry(token).or_default() += 1;
    }
    Some(DocTerms {
        len,
        terms: counts.into_iter().collect(),
    })
}

/// Analyzes the strings of a metadata text field (a string, or the strings of an array) as
/// one document: their tokens in order, as if the strings were one text.
pub(crate) fn analyze_all(texts: &[&str]) -> DocTerms {
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut len = 0u32;
    for token in texts.iter().flat_map(|t| tokenize(t)) {
        len = len.saturating_add(1);
        *counts.entry(token).or_default() += 1;
    }
    DocTerms {
        len,
        terms: counts.into_iter().collect(),
    }
}

impl DocTerms {
    /// A document of distinct terms, each counted once (for indexes of exact terms, such as
    /// the metadata equality index).
    pub(crate) fn of_terms(terms: Vec<String>) -> DocTerms {
        DocTerms {
            len: u32::try_from(terms.len()).unwrap_or(u32::MAX),
            terms: terms.into_iter().map(|t| (t, 1)).collect(),
        }
    }
}

/// One entry of a posting list.
#[derive(Clone, Copy, Debug)]
struct Posting {
    doc: u32,
    tf: u32,
}

/// One indexed item.
#[derive(Clone, Copy, Debug)]
struct Doc {
    handle: u64,
    len: u32,
}

/// The posting index of the live items' contents, addressed by the caller's item handles.
///
/// Removal is lazy: a removed item's document number is cleared and its postings are skipped
/// by searches, and the postings are rebuilt once dead documents outnumber live ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct TextIndex {
    term_ids: HashMap<Box<str>, u32>,
    postings: Vec<Vec<Posting>>,
    docs: Vec<Option<Doc>>,
    doc_of: HashMap<u64, u32>,
    live_docs: usize,
    dead_docs: usize,
    total_len: u64,
    skipped: HashSet<u64>,
}

impl TextIndex {
    /// Indexes an item's analyzed contents (`None`: not UTF-8, counted as skipped),
    /// replacing what `handle` had.
    pub(crate) fn insert(&mut self, handle: u64, doc: Option<DocTerms>) {
        self.remove(handle);
        let Some(doc) = doc else {
            self.skipped.insert(handle);
            return;
        };
        let number = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
        if number == u32::MAX {
            // Four billion insertions since the last rebuild: rebuild first (it renumbers).
            self.rebuild();
            return self.insert(handle, Some(doc));
        }
        for (term, tf) in doc.terms {
            let next = self.postings.len() as u32;
            let id = *self.term_ids.entry(term.into_boxed_str()).or_insert(next);
            if id == next {
                self.postings.push(Vec::new());
            }
            self.postings[id as usize].push(Posting { doc: number, tf });
        }
        self.docs.push(Some(Doc {
            handle,
            len: doc.len,
        }));
        self.doc_of.insert(handle, number);
        self.live_docs += 1;
        self.total_len += u64::from(doc.len);
    }

    /// Removes what `handle` had indexed, if anything.
    pub(crate) fn remove(&mut self, handle: u64) {
        self.skipped.remove(&handle);
        let Some(number) = self.doc_of.remove(&handle) else {
            return;
        };
        if let Some(doc) = self.docs[number as usize].take() {
            self.live_docs -= 1;
            self.dead_docs += 1;
            self.total_len -= u64::from(doc.len);
        }
        if self.dead_docs > 1024 && self.dead_docs > self.live_docs {
            self.rebuild();
        }
    }

    /// Renumbers the live documents and drops dead postings and empty terms.
    fn rebuild(&mut self) {
        let mut renumber = vec![u32::MAX; self.docs.len()];
        let mut docs = Vec::with_capacity(self.live_docs);
        for (old, doc) in self.docs.iter().enumerate() {
            if let Some(d) = doc {
                renumber[old] = docs.len() as u32;
                docs.push(Some(*d));
            }
        }
        let mut term_ids = HashMap::with_capacity(self.term_ids.len());
        let mut postings = Vec::with_capacity(self.postings.len());
        for (term, id) in self.term_ids.drain() {
            let list: Vec<Posting> = self.postings[id as usize]
                .iter()
                .filter(|p| renumber[p.doc as usize] != u32::MAX)
                .map(|p| Posting {
                    doc: renumber[p.doc as usize],
                    tf: p.tf,
                })
                .collect();
            if !list.is_empty() {
                term_ids.insert(term, postings.len() as u32);
                postings.push(list);
            }
        }
        self.doc_of = docs
            .iter()
            .enumerate()
            .filter_map(|(n, d)| d.map(|d| (d.handle, n as u32)))
            .collect();
        self.docs = docs;
        self.term_ids = term_ids;
        self.postings = postings;
        self.dead_docs = 0;
    }

    /// The same index under new handles (`new_handle` of each old one; items it does not
    /// map are dropped), for a rewrite that renumbers the item table.
    pub(crate) fn remapped(&self, new_handle: &HashMap<u64, u64>) -> TextIndex {
        let mut out = self.clone();
        for doc in &mut out.docs {
            match doc.map(|d| new_handle.get(&d.handle)) {
                Some(Some(&h)) => {
                    if let Some(d) = doc {
                        d.handle = h;
                    }
                }
                Some(None) => {
                    *doc = None;
                }
                None => {}
            }
        }
        out.live_docs = out.docs.iter().flatten().count();
        out.total_len = out.docs.iter().flatten().map(|d| u64::from(d.len)).sum();
        out.skipped = self
            .skipped
            .iter()
            .filter_map(|h| new_handle.get(h).copied())
            .collect();
        out.dead_docs = out.docs.len() - out.live_docs;
        out.rebuild();
        out
    }

    /// The length of `term`'s posting list, dead entries included (an upper bound of the
    /// live items holding it, for planning).
    pub(crate) fn posting_len(&self, term: &str) -> usize {
        self.term_ids
            .get(term)
            .map_or(0, |&id| self.postings[id as usize].len())
    }

    /// The live items holding `term`.
    pub(crate) fn handles_with(&self, term: &str) -> Vec<u64> {
        let Some(&id) = self.term_ids.get(term) else {
            return Vec::new();
        };
        self.postings[id as usize]
            .iter()
            .filter_map(|p| self.docs[p.doc as usize].map(|d| d.handle))
            .collect()
    }

    /// Live items whose contents were not UTF-8 (not indexed).
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn skipped(&self) -> usize {
        self.skipped.len()
    }

    /// Live items indexed.
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn len(&self) -> usize {
        self.live_docs
    }

    /// Bytes the index holds (approximate: postings, documents and the term dictionary).
    #[cfg(feature = "internals")]
    pub(crate) fn heap_bytes(&self) -> usize {
        let postings: usize = self.postings.iter().map(|p| p.capacity() * 8 + 24).sum();
        let terms: usize = self.term_ids.keys().map(|t| t.len() + 16 + 8).sum();
        postings + terms + self.docs.capacity() * 24 + self.doc_of.capacity() * 16
    }

    /// The BM25 score of every live indexed item that contains a token of `query` and that
    /// `accept` takes, unordered, as `(handle, score)`.
    #[cfg(test)]
    pub(crate) fn scores(
        &self,
        query: &str,
        params: Bm25,
        accept: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        multi_field_scores(&[(self, 1.0)], query, params, false, accept)
    }

    /// The live postings of term `id`, with each one's document.
    fn live(&self, id: u32) -> impl Iterator<Item = (&Posting, Doc)> + '_ {
        self.postings[id as usize]
            .iter()
            .filter_map(|p| self.docs[p.doc as usize].map(|d| (p, d)))
    }
}

/// BM25 over several fields: the score of every item that `accept` takes and that holds a
/// token of `query` in a field of nonzero weight (with `require_all`, every distinct token
/// of `query`, each in any such field), unordered, as `(handle, score)`. An item's score is
/// `sum over fields f of weight_f * BM25_f`, each field's BM25 over that field's own
/// statistics (its indexed items `N`, the items `n` holding the token, their mean length),
/// a query token that appears twice counting twice.
pub(crate) fn multi_field_scores(
    fields: &[(&TextIndex, f32)],
    query: &str,
    params: Bm25,
    require_all: bool,
    accept: &dyn Fn(u64) -> bool,
) -> Vec<(u64, f32)> {
    // Distinct tokens in order of first appearance, with their counts in the query.
    let mut tokens: Vec<(String, u32)> = Vec::new();
    for t in tokenize(query) {
        match tokens.iter_mut().find(|(s, _)| *s == t) {
            Some((_, n)) => *n += 1,
            None => tokens.push((t, 1)),
        }
    }
    let (k1, b) = (f64::from(params.k1), f64::from(params.b));
    // Per item: score, how many distinct tokens it holds, and the last token counted.
    let mut found: HashMap<u64, (f64, usize, usize)> = HashMap::new();
    for (ti, (token, repeats)) in tokens.iter().enumerate() {
        for &(index, weight) in fields {
            if weight == 0.0 || index.live_docs == 0 {
                continue;
            }
            let Some(&id) = index.term_ids.get(token.as_str()) else {
                continue;
            };
            let df = index.live(id).count() as f64;
            if df == 0.0 {
                continue;
            }
            let n = index.live_docs as f64;
            let avgdl = (index.total_len as f64 / n).max(f64::MIN_POSITIVE);
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let scale = f64::from(weight) * f64::from(*repeats);
            for (p, d) in index.live(id) {
                let tf = f64::from(p.tf);
                let norm = k1 * (1.0 - b + b * f64::from(d.len) / avgdl);
                let entry = found.entry(d.handle).or_insert((0.0, 0, usize::MAX));
                entry.0 += scale * idf * tf / (tf + norm);
                if entry.2 != ti {
                    entry.2 = ti;
                    entry.1 += 1;
                }
            }
        }
    }
    found
        .into_iter()
        .filter(|&(h, (_, held, _))| (!require_all || held == tokens.len()) && accept(h))
        .map(|(h, (score, _, _))| (h, score as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(docs: &[&str]) -> TextIndex {
        let mut t = TextIndex::default();
        for (i, d) in docs.iter().enumerate() {
            t.insert(i as u64, analyze(d.as_bytes()));
        }
        t
    }

    fn sorted(mut s: Vec<(u64, f32)>) -> Vec<(u64, f32)> {
        s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        s
    }

    #[test]
    fn tokens_are_unicode_words_lowercased() {
        let t: Vec<String> = tokenize("Hello, WORLD! Straße x2-y3 can't ÉCOLE").collect();
        assert_eq!(
            t,
            ["hello", "world", "straße", "x2", "y3", "can't", "école"]
        );
    }

    #[test]
    fn scores_follow_the_lucene_formula() {
        let t = index(&["a b b", "b c", "c c c d"]);
        let s = sorted(t.scores("b", Bm25::default(), &|_| true));
        // N = 3, n(b) = 2, avgdl = 3; doc 0: tf 2, dl 3; doc 1: tf 1, dl 2.
        let idf = (1.0f64 + (3.0 - 2.0 + 0.5) / 2.5).ln();
        let s0 = idf * 2.0 / (2.0 + 1.2);
        let s1 = idf * 1.0 / (1.0 + 1.2 * (0.25 + 0.75 * 2.0 / 3.0));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, 0);
        assert!((f64::from(s[0].1) - s0).abs() < 1e-6);
        assert!((f64::from(s[1].1) - s1).abs() < 1e-6);
    }

    #[test]
    fn removal_and_rebuild_equal_a_fresh_index() {
        let mut t = TextIndex::default();
        for i in 0..3000u64 {
            t.insert(
                i,
                analyze(format!("w{} common w{}", i % 7, i % 11).as_bytes()),
            );
        }
        for i in (0..3000u64).filter(|i| i % 3 != 0) {
            t.remove(i);
        }
        let mut fresh = TextIndex::default();
        for i in (0..3000u64).filter(|i| i % 3 == 0) {
            fresh.insert(
                i,
                analyze(format!("w{} common w{}", i % 7, i % 11).as_bytes()),
            );
        }
        for q in ["w3", "common", "w5 w10 common"] {
            assert_eq!(
                sorted(t.scores(q, Bm25::default(), &|_| true)),
                sorted(fresh.scores(q, Bm25::default(), &|_| true))
            );
        }
        assert_eq!(t.len(), 1000);
    }

    #[test]
    fn non_utf8_contents_are_skipped_and_counted() {
        let mut t = TextIndex::default();
        t.insert(1, analyze(&[0xff, 0xfe]));
        t.insert(2, analyze(b"ok"));
        assert_eq!((t.skipped(), t.len()), (1, 1));
        t.insert(1, analyze(b"fine now"));
        assert_eq!((t.skipped(), t.len()), (0, 2));
    }
}
