//! Filtered search figures: QPS (one thread, default probes) at selectivities 50%, 10%, 1%,
//! 0.1% (each as a `$lt` range and as an `$in` of the same values) as a ratio to unfiltered
//! QPS on the same index, and recall@10 of the filtered queries against an exact oracle
//! (filter, then brute force), next to the unfiltered queries' recall@10 against theirs. A
//! last setting filters on a field that follows the vectors (the 10% of the items nearest to
//! a fixed point), where matches crowd into a few lists. Uses
//! `../shared/data/wordnet-minilm-50k` when present, else clustered synthetic data.
//!
//! Rounds alternate the settings; each ratio is the median of the per-round ratios to that
//! round's unfiltered QPS (the machines these run on are shared and noisy).
//!
//! ```text
//! cargo run --release --example filter_sweep -- [--type flat|sq8|pq:M] [--codes-only]
//!     [--rounds 3] [--queries 1000] [--only TEXT]
//! ```
//! `--only TEXT` keeps the settings whose labels contain TEXT (and the unfiltered one);
//! `--no-recall` skips the oracle (recall then reads 0), for profiling the queries alone.
//! `--keep DIR` builds the index in DIR and keeps it, or reuses the one DIR holds (marked by
//! DIR/built; a fixed bench-only key), so that a profile of the queries is not dominated by
//! the build.
//! `--type` defaults to `flat`; `pq` alone means `pq:dim/4`. `--codes-only` opens the index
//! with a cache budget of 0 (quantized types: codes in RAM, re-ranked vectors decrypted from
//! their records; `flat`: lists decrypted per query); without it every vector is resident.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use ciphervec::{Database, DatabaseOptions, EncryptedIndex, IndexKey, Item, Query};

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/texmex.rs"]
mod texmex;
use serde_json::{Value, json};

fn synthetic() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut s = 9u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..64).map(|_| next() * 3.0).collect())
        .collect();
    let mut point = |c: usize| -> Vec<f32> { centers[c].iter().map(|x| x + next()).collect() };
    let base = (0..50_000).map(|i| point(i % 200)).collect();
    let queries = (0..500).map(|i| point(i * 13 % 200)).collect();
    (base, queries)
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The ids of the 10 nearest items of `base` to `q` among those `keep` takes.
fn exact_top10(base: &[Vec<f32>], q: &[f32], keep: &dyn Fn(usize) -> bool) -> HashSet<String> {
    let mut exact: Vec<(f32, usize)> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (l2(v, q), i))
        .collect();
    exact.sort_by(|a, b| a.0.total_cmp(&b.0));
    exact.iter().take(10).map(|e| e.1.to_string()).collect()
}

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str, default: &str| flags::arg(flag).unwrap_or_else(|| default.to_owned());
    let codes_only = argv.iter().any(|a| a == "--codes-only");
    let rounds: usize = arg("--rounds", "3").parse().expect("--rounds N");
    bench_index::one_thread();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet-minilm-50k");
    let (base, mut queries) = if dir.join("base.fvecs").exists() {
        let (base, queries, _) = texmex::load(&dir);
        (base, queries)
    } else {
        synthetic()
    };
    queries.truncate(arg("--queries", "1000").parse().expect("--queries N"));
    let dim = base[0].len();
    let index_type = match arg("--type", "flat").as_str() {
        "pq" => format!("pq:{}", dim / 4),
        t => t.to_owned(),
    };
    // A field that follows the vectors: 1 for the 10% of the items nearest to the first
    // item (a region of the space), 0 for the others.
    let near: HashSet<usize> = {
        let mut by = (0..base.len())
            .map(|i| (l2(&base[i], &base[0]), i))
            .collect::<Vec<_>>();
        by.sort_by(|a, b| a.0.total_cmp(&b.0));
        by.iter().take(base.len() / 10).map(|e| e.1).collect()
    };
    let kept_dir = flags::arg("--keep").map(std::path::PathBuf::from);
    let root = kept_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ciphervec-filter-sweep-{}", std::process::id()))
    });
    let built = root.join("built");
    let reuse = kept_dir.is_some() && built.exists();
    if !reuse {
        let _ = std::fs::remove_dir_all(&root);
    }
    let key = if kept_dir.is_some() {
        IndexKey::from_bytes(&[7u8; 32])? // bench only: a kept index reopens with it
    } else {
        IndexKey::generate()
    };
    if !reuse {
        let config = bench_index::config_of(&index_type, dim);
        let index = Database::open(&root)?.create_index("filters", &key, config)?;
        index.upsert(base.iter().enumerate().map(|(i, v)| {
            Item::new(i.to_string(), v.clone())
                .with_metadata(json!({"bucket": i % 1000, "region": u8::from(near.contains(&i))}))
        }))?;
        index.train()?;
        if kept_dir.is_some() {
            std::fs::write(&built, format!("{index_type}\n"))?;
        }
    }
    let options = if codes_only {
        DatabaseOptions::default().cache_budget(0)
    } else {
        DatabaseOptions::default()
    };
    let index = Database::open_with(&root, options)?.open_index_read_only("filters", &key)?;
    println!(
        "{} x {dim}, {} queries, {index_type}, {}, default n_probes, one thread, {rounds} rounds",
        base.len(),
        queries.len(),
        if codes_only {
            "cache budget 0"
        } else {
            "resident"
        },
    );
    let run = |index: &EncryptedIndex,
               filter: Option<&Value>|
     -> ciphervec::Result<(f64, Vec<Vec<String>>)> {
        let t = Instant::now();
        let mut out = Vec::with_capacity(queries.len());
        for q in &queries {
            let mut query = Query::new(q.clone()).top_k(10);
            if let Some(f) = filter {
                query = query.filter(f.clone());
            }
            out.push(index.query(&query)?.into_iter().map(|h| h.id).collect());
        }
        Ok((queries.len() as f64 / t.elapsed().as_secs_f64(), out))
    };
    // Each selectivity as a range (`$lt`, answered by scanning) and as the same set of
    // exact values (`$in`, answered from the metadata equality index when selective); then
    // the region field.
    type Keep = Box<dyn Fn(usize) -> bool>;
    let mut settings: Vec<(String, Option<Value>, Keep)> =
        vec![("unfiltered".to_owned(), None, Box::new(|_| true))];
    for (label, below) in [("50%", 500), ("10%", 100), ("1%", 10), ("0.1%", 1)] {
        let values: Vec<usize> = (0..below).collect();
        let keep = move |i: usize| i % 1000 < below;
        settings.push((
            format!("{label:>5} ($lt)"),
            Some(json!({"bucket": {"$lt": below}})),
            Box::new(keep),
        ));
        settings.push((
            format!("{label:>5} ($in)"),
            Some(json!({"bucket": {"$in": values}})),
            Box::new(keep),
        ));
    }
    let region = near.clone();
    settings.push((
        "10% region".to_owned(),
        Some(json!({"region": 1})),
        Box::new(move |i| region.contains(&i)),
    ));
    // `--only TEXT`: the settings whose labels contain TEXT (and the unfiltered baseline).
    let only = arg("--only", "");
    // `--no-recall`: no oracle (for profiling the queries alone).
    let no_recall = argv.iter().any(|a| a == "--no-recall");
    settings.retain(|(label, filter, _)| filter.is_none() || label.contains(&only));
    let truths: Vec<Vec<HashSet<String>>> = settings
        .iter()
        .map(|(_, _, keep)| {
            if no_recall {
                return Vec::new();
            }
            queries
                .iter()
                .map(|q| exact_top10(&base, q, keep.as_ref()))
                .collect()
        })
        .collect();
    let mut qps = vec![Vec::new(); settings.len()];
    let truths: Vec<Vec<HashSet<String>>> = truths
        .into_iter()
        .map(|t| {
            if t.is_empty() {
                vec![HashSet::new(); queries.len()]
            } else {
                t
            }
        })
        .collect();
    let mut recalls = vec![0.0; settings.len()];
    run(&index, None)?; // warm-up
    for _ in 0..rounds {
        for (s, (_, filter, _)) in settings.iter().enumerate() {
            let (q, results) = run(&index, filter.as_ref())?;
            qps[s].push(q);
            let found: usize = results
                .iter()
                .zip(&truths[s])
                .map(|(got, want)| got.iter().filter(|id| want.contains(*id)).count())
                .sum();
            recalls[s] = found as f64 / (10 * queries.len()) as f64;
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (s, (label, _, _)) in settings.iter().enumerate() {
        let ratio = median((0..rounds).map(|r| qps[s][r] / qps[0][r]).collect());
        println!(
            "{label:>14}: {:>7.0} QPS = {ratio:.2}x unfiltered, recall@10 vs oracle {:.4}",
            median(qps[s].clone()),
            recalls[s],
        );
    }
    if kept_dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
