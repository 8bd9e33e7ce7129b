//! Full-text and hybrid search figures on `../shared/data/wordnet-minilm-50k` (texts and
//! embeddings), each as a ratio within this one run:
//! - upsert throughput with and without `full_text`, RAM of the posting index per item, and
//!   the index folder's bytes per item with and without it;
//! - one-thread QPS of text-only and hybrid queries next to vector-only ones on the same index;
//! - recall@10 of vector-only, text-only and hybrid search on a labelled set built from
//!   WordNet: each held-out synset's first lemma is the query text (its embedding the query
//!   vector), and the relevant documents are the base synsets that share that lemma (the
//!   word's other senses).
//!
//! Run: `cargo run --release --example hybrid_bench`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use ciphervec::{Database, EncryptedIndex, IndexConfig, IndexKey, Item, Query};

#[path = "support/texmex.rs"]
mod texmex;

/// `(synset text, first lemma lowercased, all lemmas lowercased)` of each line of a texts file.
fn texts(path: &Path) -> Vec<(String, String, Vec<String>)> {
    std::fs::read_to_string(path)
        .expect("texts")
        .lines()
        .map(|l| {
            let text = l.split_once('\t').map_or(l, |(_, t)| t).to_owned();
            let lemmas: Vec<String> = text
                .split_once(':')
                .map_or("", |(l, _)| l)
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect();
            (text, lemmas.first().cloned().unwrap_or_default(), lemmas)
        })
        .collect()
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Builds an index on disk; returns it, the seconds its upserts took, and its folder's bytes.
fn build(
    root: &Path,
    name: &str,
    config: IndexConfig,
    items: &[Item],
) -> ciphervec::Result<(EncryptedIndex, f64, u64)> {
    let db = Database::open(root)?;
    let key = IndexKey::generate();
    let index = db.create_index(name, &key, config)?;
    let t = Instant::now();
    for chunk in items.chunks(5000) {
        index.upsert(chunk.to_vec())?;
    }
    let secs = t.elapsed().as_secs_f64();
    index.train()?;
    index.compact()?;
    let bytes = folder_bytes(&root.join(name));
    drop(index);
    // Reopened, to time an open (three times, best kept).
    let mut open_secs = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let reopened = db.open_index(name, &key)?;
        open_secs = open_secs.min(t.elapsed().as_secs_f64());
        drop(reopened);
    }
    println!("{name}: open {open_secs:.3} s");
    Ok((db.open_index(name, &key)?, secs, bytes))
}

fn qps(index: &EncryptedIndex, queries: &[Query]) -> ciphervec::Result<f64> {
    let t = Instant::now();
    for q in queries {
        std::hint::black_box(index.query(q)?);
    }
    Ok(queries.len() as f64 / t.elapsed().as_secs_f64())
}

fn main() -> ciphervec::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet-minilm-50k");
    if !dir.join("texts.base.tsv").exists() {
        println!("skipped: {} is not present", dir.display());
        return Ok(());
    }
    let (base, queries, _) = texmex::load(&dir);
    let base_texts = texts(&dir.join("texts.base.tsv"));
    let query_texts = texts(&dir.join("texts.query.tsv"));
    let items: Vec<Item> = base
        .iter()
        .zip(&base_texts)
        .enumerate()
        .map(|(i, (v, t))| Item::new(i.to_string(), v.clone()).with_contents(t.0.clone()))
        .collect();
    let n = items.len();

    let root = tempfile::tempdir().expect("tempdir");
    let (plain, plain_secs, plain_bytes) =
        build(root.path(), "vector", IndexConfig::ivf_flat(384), &items)?;
    let (index, text_secs, text_bytes) = build(
        root.path(),
        "text",
        IndexConfig::ivf_flat(384).full_text(true),
        &items,
    )?;
    let (indexed, skipped, heap) =
        ciphervec::internals::full_text_stats(&index).unwrap_or_default();
    println!("items {n}; indexed {indexed}, skipped (not UTF-8) {skipped}");
    println!(
        "upsert: {:.0} items/s with full_text, {:.0} without: ratio {:.2}",
        n as f64 / text_secs,
        n as f64 / plain_secs,
        plain_secs / text_secs
    );
    println!(
        "postings RAM: {:.0} bytes/item; folder: {:.0} bytes/item with full_text, {:.0} without",
        heap as f64 / n as f64,
        text_bytes as f64 / n as f64,
        plain_bytes as f64 / n as f64
    );
    drop(plain);

    // Labelled set: lemma -> base documents holding it.
    let mut by_lemma: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, _, lemmas)) in base_texts.iter().enumerate() {
        for l in lemmas {
            by_lemma.entry(l.as_str()).or_default().push(i);
        }
    }
    let labelled: Vec<(usize, &str, HashSet<String>)> = query_texts
        .iter()
        .enumerate()
        .filter_map(|(j, (_, lemma, _))| {
            let relevant = by_lemma.get(lemma.as_str())?;
            Some((
                j,
                lemma.as_str(),
                relevant.iter().map(ToString::to_string).collect(),
            ))
        })
        .collect();
    let recall = |make: &dyn Fn(usize, &str) -> Query| -> ciphervec::Result<f64> {
        let mut sum = 0.0;
        for (j, lemma, relevant) in &labelled {
            let hits = index.query(&make(*j, lemma))?;
            let found = hits.iter().filter(|h| relevant.contains(&h.id)).count();
            sum += found as f64 / relevant.len().min(10) as f64;
        }
        Ok(sum / labelled.len() as f64)
    };
    let vector = |j: usize, _: &str| Query::new(queries[j].clone());
    let text = |_: usize, w: &str| Query::text_only(w);
    let hybrid = |j: usize, w: &str| Query::new(queries[j].clone()).text(w);
    println!(
        "labelled set: {} queries (lemma shared with base synsets); recall@10 vector {:.3}, \
         text {:.3}, hybrid {:.3}",
        labelled.len(),
        recall(&vector)?,
        recall(&text)?,
        recall(&hybrid)?
    );

    // Speed: every held-out query, its first lemma as text, three rounds interleaved.
    let make = |f: &dyn Fn(usize, &str) -> Query| -> Vec<Query> {
        query_texts
            .iter()
            .enumerate()
            .map(|(j, (_, lemma, _))| f(j, lemma))
            .collect()
    };
    let (vq, tq, hq) = (make(&vector), make(&text), make(&hybrid));
    let (mut v, mut t, mut h) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        v.push(qps(&index, &vq)?);
        t.push(qps(&index, &tq)?);
        h.push(qps(&index, &hq)?);
    }
    let best = |x: &[f64]| x.iter().copied().fold(0.0, f64::max);
    println!(
        "one thread, best of 3: vector {:.0} QPS, text-only {:.0} QPS ({:.2}x), hybrid {:.0} QPS \
         ({:.2}x)",
        best(&v),
        best(&t),
        best(&t) / best(&v),
        best(&h),
        best(&h) / best(&v)
    );
    Ok(())
}
