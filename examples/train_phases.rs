//! Where the compute of training goes: times the phases of an `ivf_pq` training (coarse
//! k-means, assignment of every row, PQ training, encoding of every row) on the first `--n`
//! rows of a `base.fvecs` (e.g. from `examples/scale_run gen`), as
//! `EncryptedIndex::train_with` runs them but without decryption, encryption and writing.
//!
//! ```text
//! cargo run --release --example train_phases -- --data DIR [--n 500000] [--lists 1000]
//!     [--m DIM/4] [--iters 20] [--repeat 1]
//! ```
//! Prints one JSON line per repetition: wall and CPU seconds per phase (the machine may be
//! shared: CPU seconds are the steadier figure). Threads follow `RAYON_NUM_THREADS`.

use std::path::PathBuf;

#[path = "support/flags.rs"]
mod flags;
#[path = "support/flat_rows.rs"]
mod flat_rows;

use serde_json::json;

fn main() {
    use flags::{arg, num};
    let dir = PathBuf::from(arg("--data").expect("--data DIR"));
    let n = num("--n", 500_000);
    let (data, dim) = flat_rows::read_fvecs(&dir.join("base.fvecs"), n);
    let n = data.len() / dim;
    let (lists, m, iters) = (
        num("--lists", 1000),
        num("--m", dim / 4),
        num("--iters", 20),
    );
    for _ in 0..num("--repeat", 1) {
        let (phases, iterations) = ciphervec::internals::time_training(
            &data,
            dim,
            (lists, m, iters),
            flat_rows::cpu_seconds,
        );
        let total: f64 = phases.iter().map(|p| p.1).sum();
        let total_cpu: f64 = phases.iter().map(|p| p.2).sum();
        let mut line = json!({
            "n": n, "dim": dim, "lists": lists, "m": m, "kmeans_iters": iterations,
            "threads": rayon::current_num_threads(), "total_s": total, "total_cpu_s": total_cpu,
        });
        for (name, secs, cpu) in phases {
            line[format!("{name}_s")] = json!(secs);
            line[format!("{name}_cpu_s")] = json!(cpu);
        }
        println!("{line}");
    }
}
