//! Re-rank vectors stored at float16 and 8 bits against float32, in one process: the same
//! base set builds one index per precision (same type, same training seed), each is opened
//! codes-only (cache budget 0: codes in RAM, every re-ranked vector decrypted from its
//! record) and answers the same queries at the same settings. Reported per precision: disk
//! bytes, recall@10 against the exact ground truth, and QPS with all queries in one call
//! (`query_batch`, every core) and one call per query (one thread), each as the median of
//! the per-round ratios to float32 (rounds alternate the precisions; the machines these run
//! on are shared and noisy).
//!
//! ```text
//! cargo run --release --example precision_bench -- [--data DIR] [--type sq8|pq:96|flat]
//!     [--probes 32] [--rerank N] [--rounds 5] [--resident] [--keep DIR]
//! ```
//! `--resident` opens the indexes without a budget instead (vectors decrypted at open).
//! `--keep DIR` builds the indexes under DIR (key in DIR/key.txt) and reuses them on later
//! runs with the same DIR, type and data; without it they go to a temporary folder, removed.

use std::time::Instant;

use ciphervec::{
    Database, DatabaseOptions, EncryptedIndex, IndexKey, Item, Query, StoragePrecision,
};

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/texmex.rs"]
mod texmex;

const PRECISIONS: [StoragePrecision; 3] = [
    StoragePrecision::Float32,
    StoragePrecision::Float16,
    StoragePrecision::Int8,
];

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str, default: &str| -> String {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let default_data = std::env::var("CIPHERVEC_SHARED_DATA")
        .unwrap_or_else(|_| "../shared/data/wordnet-minilm-50k".to_owned());
    let data = std::path::PathBuf::from(arg("--data", &default_data));
    let index_type = arg("--type", "sq8");
    let probes: usize = arg("--probes", "32").parse().expect("--probes N");
    let rerank: Option<usize> = argv
        .iter()
        .position(|a| a == "--rerank")
        .map(|_| arg("--rerank", "").parse().expect("--rerank N"));
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds N");
    let resident = argv.iter().any(|a| a == "--resident");
    let (base, queries, truth) = if data.join("base.fvecs").exists() {
        texmex::load(&data)
    } else {
        println!("{} not found: clustered synthetic data", data.display());
        texmex::synthetic(50_000, 384)
    };
    let dim = base[0].len();
    let keep = argv
        .iter()
        .position(|a| a == "--keep")
        .map(|_| std::path::PathBuf::from(arg("--keep", "")));
    let root = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ciphervec-precision-{}", std::process::id()))
    });
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    std::fs::create_dir_all(&root)?;
    let key_file = root.join("key.txt");
    let key = match IndexKey::from_base64_file(&key_file) {
        Ok(k) => k,
        Err(_) => {
            let k = IndexKey::generate();
            write_private(&key_file, k.to_base64().as_bytes())?;
            k
        }
    };
    let mut indexes = Vec::new();
    for p in PRECISIONS {
        let dir = root.join(format!("{}-{}", index_type.replace(':', "_"), p.as_str()));
        if !dir.join("bench").exists() {
            let config = bench_index::config_of(&index_type, dim).storage_precision(p);
            let index = Database::open(&dir)?.create_index("bench", &key, config)?;
            let items = base
                .iter()
                .enumerate()
                .map(|(i, v)| Item::new(i.to_string(), v.clone()));
            index.upsert(items)?;
            index.train()?;
        }
        let options = if resident {
            DatabaseOptions::default()
        } else {
            DatabaseOptions::default().cache_budget(0)
        };
        let index = Database::open_with(&dir, options)?.open_index_read_only("bench", &key)?;
        assert_eq!(index.is_resident(), resident);
        indexes.push((p, texmex::dir_bytes(&dir.join("bench")), index));
    }
    let qs: Vec<Query> = queries
        .iter()
        .map(|q| {
            let q = Query::new(q.clone()).top_k(10).n_probes(probes);
            match rerank {
                Some(r) => q.rerank(r),
                None => q,
            }
        })
        .collect();
    // (one-call QPS, per-call QPS, recall@10)
    let run = |index: &EncryptedIndex| -> ciphervec::Result<(f64, f64, f64)> {
        let t = Instant::now();
        let batch = index.query_batch(&qs)?;
        let one_call = qs.len() as f64 / t.elapsed().as_secs_f64();
        let ids: Vec<Vec<String>> = batch
            .into_iter()
            .map(|hits| hits.into_iter().map(|h| h.id).collect())
            .collect();
        let t = Instant::now();
        for q in &qs {
            index.query(q)?;
        }
        let per_call = qs.len() as f64 / t.elapsed().as_secs_f64();
        Ok((one_call, per_call, texmex::recall(&ids, &truth, 10)))
    };
    for (_, _, index) in &indexes {
        run(index)?; // warm-up
    }
    let n = indexes.len();
    let mut figures: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
    let mut ratios: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
    let mut recalls = vec![0.0; n];
    for round in 0..rounds {
        let mut this_round = vec![(0.0, 0.0); n];
        // Each round starts with another precision, so none always runs first.
        for k in 0..n {
            let i = (round + k) % n;
            let (one, per, recall) = run(&indexes[i].2)?;
            this_round[i] = (one, per);
            recalls[i] = recall;
        }
        for i in 0..n {
            figures[i].push(this_round[i]);
            ratios[i].push((
                this_round[i].0 / this_round[0].0,
                this_round[i].1 / this_round[0].1,
            ));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{index_type}, {} vectors x {dim}, n_probes {probes}, rerank {}, {}, {rounds} rounds of {} queries",
        base.len(),
        rerank.map_or("default".to_owned(), |r| r.to_string()),
        match (resident, index_type.as_str()) {
            (true, _) => "resident",
            (false, "flat") => "lists decrypted per query (cache budget 0)",
            (false, _) => "codes only (cache budget 0)",
        },
        qs.len()
    );
    println!("precision  disk MB  recall@10  one-call QPS (ratio)  per-call QPS (ratio)");
    for i in 0..n {
        let (p, bytes, _) = &indexes[i];
        println!(
            "{:9}  {:7.1}  {:9.4}  {:8.0} ({:5.2}x)       {:8.0} ({:5.2}x)",
            p.as_str(),
            *bytes as f64 / 1e6,
            recalls[i],
            median(figures[i].iter().map(|f| f.0).collect()),
            median(ratios[i].iter().map(|r| r.0).collect()),
            median(figures[i].iter().map(|f| f.1).collect()),
            median(ratios[i].iter().map(|r| r.1).collect()),
        );
    }
    drop(indexes);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}

/// Writes a file only its owner may read (as a key file must be).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
