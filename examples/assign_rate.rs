//! Throughput of the coarse assignment (every row to its nearest centroid, as k-means and
//! training run it) on the first `--n` rows of a `base.fvecs`, with `--k` centroids drawn from
//! the rows, in multiply-adds per CPU second (about 16 per cycle is the AVX-512 peak of one
//! core); `--rounds` rounds. Reports wall and CPU seconds (the machine is shared:
//! CPU seconds are the steadier figure).
//!
//! ```text
//! cargo run --release --example assign_rate -- --data DIR [--n 256000] [--k 1000] [--rounds 3]
//! ```

use std::path::PathBuf;
use std::time::Instant;

#[path = "support/flags.rs"]
mod flags;
#[path = "support/flat_rows.rs"]
mod flat_rows;

fn main() {
    use flags::{arg, num};
    let dir = PathBuf::from(arg("--data").expect("--data DIR"));
    let (data, dim) = flat_rows::read_fvecs(&dir.join("base.fvecs"), num("--n", 256_000));
    let n = data.len() / dim;
    let k = num("--k", 1000);
    let step = n / k;
    let centers: Vec<f32> = (0..k)
        .flat_map(|c| data[c * step * dim..(c * step + 1) * dim].to_vec())
        .collect();
    for round in 0..num("--rounds", 3) {
        {
            let (t, cpu) = (Instant::now(), flat_rows::cpu_seconds());
            let obj = ciphervec::internals::l2_objective(&data, &centers, dim);
            let (secs, cpu) = (t.elapsed().as_secs_f64(), flat_rows::cpu_seconds() - cpu);
            let gmacs = (n * k * dim) as f64 / cpu / 1e9;
            println!(
                "round {round} n {n} k {k} seconds {secs:.3} cpu_s {cpu:.3} \
                 GMAC/cpu-s {gmacs:.1} objective {obj:.1}"
            );
        }
    }
}
