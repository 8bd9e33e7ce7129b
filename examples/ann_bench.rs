//! Benchmark ciphervec on a TEXMEX dataset directory (`base.fvecs`, `query.fvecs`,
//! `groundtruth.ivecs`) or on generated clustered data, printing one JSON line in the schema
//! of the peer harness (`../shared/bench/README.md`) so the lines can be appended to its
//! results and rendered beside FAISS, hnswlib, usearch and CyborgDB.
//!
//! ```text
//! cargo run --release --example ann_bench -- --data DIR [--probes 8,16,32,64] [--threads 1]
//!     [--type flat|sq8|pq:M] [--cold] [--nq-single 1000] [--n-lists N] [--rerank 2,5,10]
//! cargo run --release --example ann_bench -- --synthetic 1000000x128 ...
//! ```
//! `--cold` reopens the index with a cache budget of 1/8 of its size: an `ivf_flat` index
//! then decrypts the lists it probes, a quantized one holds only its codes and decrypts the
//! vectors it re-ranks (the price of encryption without the decrypted cache). `--rerank`
//! sweeps re-rank factors (each with every `--probes` value; default: the library's).

use std::path::PathBuf;
use std::time::Instant;

use ciphervec::{Database, DatabaseOptions, IndexKey, Item, Query};
use serde_json::json;
use texmex::{dir_bytes, recall};

#[path = "support/bench_index.rs"]
mod bench_index;
#[path = "support/texmex.rs"]
mod texmex;

struct Args {
    data: Option<PathBuf>,
    synthetic: Option<(usize, usize)>,
    probes: Vec<usize>,
    threads: usize,
    index_type: String,
    cold: bool,
    nq_single: usize,
    n_lists: Option<usize>,
    rerank: Vec<Option<usize>>,
}

fn parse_args() -> Args {
    let mut a = Args {
        data: None,
        synthetic: None,
        probes: vec![8, 16, 32, 64],
        threads: 1,
        index_type: "flat".into(),
        cold: false,
        nq_single: 1000,
        n_lists: None,
        rerank: vec![None],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || argv.get(i + 1).cloned().expect("missing value");
        match argv[i].as_str() {
            "--data" => a.data = Some(PathBuf::from(value())),
            "--synthetic" => {
                let v = value();
                let (n, d) = v.split_once('x').expect("--synthetic NxD");
                a.synthetic = Some((n.parse().unwrap(), d.parse().unwrap()));
            }
            "--probes" => a.probes = value().split(',').map(|p| p.parse().unwrap()).collect(),
            "--threads" => a.threads = value().parse().unwrap(),
            "--type" => a.index_type = value(),
            "--nq-single" => a.nq_single = value().parse().unwrap(),
            "--n-lists" => a.n_lists = Some(value().parse().unwrap()),
            "--rerank" => {
                a.rerank = value()
                    .split(',')
                    .map(|r| Some(r.parse().unwrap()))
                    .collect();
            }
            "--cold" => {
                a.cold = true;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> ciphervec::Result<()> {
    let args = parse_args();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("rayon pool");
    let (name, base, queries, truth) = match (&args.data, args.synthetic) {
        (Some(dir), _) => {
            let (b, q, t) = texmex::load(dir);
            (
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                b,
                q,
                t,
            )
        }
        (None, Some((n, d))) => {
            let (b, q, t) = texmex::synthetic(n, d);
            (format!("synthetic-{n}x{d}"), b, q, t)
        }
        _ => panic!("--data DIR or --synthetic NxD"),
    };
    let rss_load = status_mb("VmRSS:");
    let (n, dim, k) = (base.len(), base[0].len(), 10);
    let mut config = bench_index::config_of(&args.index_type, dim);
    if let Some(n_lists) = args.n_lists {
        config = config.n_lists(n_lists);
    }
    let tmp = std::env::temp_dir().join(format!("ciphervec-ann-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let key = IndexKey::generate();
    let db = Database::open(&tmp)?;
    let index = db.create_index("bench", &key, config)?;
    let t = Instant::now();
    for (c, chunk) in base.chunks(50_000).enumerate() {
        index.upsert(
            chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Item::new((c * 50_000 + i).to_string(), v.clone())),
        )?;
    }
    let add_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.train()?;
    let train_s = t.elapsed().as_secs_f64();
    drop(index);
    let index_bytes = dir_bytes(&tmp);
    let opened = if args.cold {
        let budget = (index_bytes / 8) as usize;
        Database::open_with(&tmp, DatabaseOptions::default().cache_budget(budget))?
            .open_index("bench", &key)?
    } else {
        db.open_index("bench", &key)?
    };
    let rss_built = status_mb("VmRSS:");
    let mut rows = Vec::new();
    let settings = args
        .rerank
        .iter()
        .flat_map(|&r| args.probes.iter().map(move |&p| (p, r)));
    for (probes, rerank) in settings {
        let qs: Vec<Query> = queries
            .iter()
            .map(|q| {
                let query = Query::new(q.clone()).top_k(k).n_probes(probes);
                match rerank {
                    Some(r) => query.rerank(r),
                    None => query,
                }
            })
            .collect();
        opened.query_batch(&qs[..qs.len().min(100)])?;
        let t = Instant::now();
        let batch = opened.query_batch(&qs)?;
        let batch_s = t.elapsed().as_secs_f64();
        let ids: Vec<Vec<String>> = batch
            .iter()
            .map(|h| h.iter().map(|x| x.id.clone()).collect())
            .collect();
        let mut lat = Vec::new();
        for q in qs.iter().take(args.nq_single) {
            let t = Instant::now();
            opened.query(q)?;
            lat.push(t.elapsed().as_secs_f64());
        }
        let total: f64 = lat.iter().sum();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] * 1e3;
        let r10 = recall(&ids, &truth, k);
        let r1 = recall(&ids, &truth, 1);
        let rerank_text = rerank.map_or(String::new(), |r| format!(" rerank={r}"));
        eprintln!(
            "[ciphervec] n_probes={probes}{rerank_text} recall@10={r10:.4} qps_batch={:.0} qps_single={:.0}",
            qs.len() as f64 / batch_s,
            lat.len() as f64 / total
        );
        rows.push(json!({
            "param": "n_probes", "value": probes, "rerank": rerank,
            "recall@10": (r10 * 1e4).round() / 1e4, "recall@1": (r1 * 1e4).round() / 1e4,
            "qps_batch": (qs.len() as f64 / batch_s * 10.0).round() / 10.0, "batch_nq": qs.len(),
            "qps_single": (lat.len() as f64 / total * 10.0).round() / 10.0, "single_nq": lat.len(),
            "lat_p50_ms": (pct(0.5) * 1e3).round() / 1e3, "lat_p99_ms": (pct(0.99) * 1e3).round() / 1e3,
        }));
    }
    // Measured after the queries, which build what a query needs (fast-scan layouts) and
    // fill the list cache.
    let (list_bytes, item_bytes) = ciphervec::internals::decrypted_bytes(&opened);
    let peer = if args.cold {
        "ciphervec-cold"
    } else {
        "ciphervec"
    };
    let record = json!({
        "ts": chrono_like_now(),
        "dataset": name, "peer": peer, "threads": args.threads,
        "n_base": n, "dim": dim, "nq": queries.len(), "k": k,
        "config": {"index": args.index_type, "n_lists": opened.n_lists(), "encrypted": true,
                   "cold_cache": args.cold, "vectors_resident": opened.is_resident()},
        "train_s": (train_s * 1e3).round() / 1e3, "add_s": (add_s * 1e3).round() / 1e3,
        "build_s": ((train_s + add_s) * 1e3).round() / 1e3,
        "add_vps": (n as f64 / add_s).round(),
        "index_bytes": index_bytes,
        "ram_list_bytes_per_vector": (list_bytes as f64 / n as f64 * 10.0).round() / 10.0,
        "ram_item_bytes_per_vector": (item_bytes as f64 / n as f64 * 10.0).round() / 10.0,
        "rss_after_load_mb": (rss_load * 10.0).round() / 10.0,
        "rss_after_build_mb": (rss_built * 10.0).round() / 10.0,
        "peak_rss_mb": (status_mb("VmHWM:") * 10.0).round() / 10.0,
        "search": rows,
    });
    println!("{record}");
    drop(opened);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS`, without a date crate.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
