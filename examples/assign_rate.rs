//! Throughput of the coarse assignment (every row to its nearest centroid, as k-means and
//! training run it) on the first `--n` rows of a `base.fvecs`, with `--k` centroids drawn from
//! the rows, in multiply-adds per CPU second (about 16 per cycle is the AVX-512 peak of one
//! core); `--rounds` rounds. Reports wall and CPU seconds (the machine is shared:
//! CPU seconds are the steadier figure).
//!
//! ```text
//! cargo run --release --example assign_rate -- --data DIR [--n 256000] [--k 1000] [--rounds 3]
//! ```

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| -> Option<String> {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    let num = |flag: &str, default: usize| -> usize {
        arg(flag).map_or(default, |v| v.parse().expect("a number"))
    };
    let dir = PathBuf::from(arg("--data").expect("--data DIR"));
    let (data, dim) = read_fvecs(&dir.join("base.fvecs"), num("--n", 256_000));
    let n = data.len() / dim;
    let k = num("--k", 1000);
    let step = n / k;
    let centers: Vec<f32> = (0..k)
        .flat_map(|c| data[c * step * dim..(c * step + 1) * dim].to_vec())
        .collect();
    for round in 0..num("--rounds", 3) {
        {
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let obj = ciphervec::internals::l2_objective(&data, &centers, dim);
            let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            let gmacs = (n * k * dim) as f64 / cpu / 1e9;
            println!(
                "round {round} n {n} k {k} seconds {secs:.3} cpu_s {cpu:.3} \
                 GMAC/cpu-s {gmacs:.1} objective {obj:.1}"
            );
        }
    }
}

/// CPU seconds this process's threads have run (`/proc/self/task/*/schedstat`, in
/// nanoseconds): on a machine shared with other jobs, what a path costs whatever share of
/// the cores it got.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// The first `n` rows of an `.fvecs` file and their dimension.
fn read_fvecs(path: &std::path::Path, n: usize) -> (Vec<f32>, usize) {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).expect("base.fvecs"));
    let mut head = [0u8; 4];
    file.read_exact(&mut head).expect("header");
    let dim = i32::from_le_bytes(head) as usize;
    let mut record = vec![0u8; 4 * dim];
    let mut data = Vec::with_capacity(n * dim);
    let mut first = true;
    while data.len() < n * dim {
        if !first && file.read_exact(&mut head).is_err() {
            break;
        }
        first = false;
        if file.read_exact(&mut record).is_err() {
            break;
        }
        data.extend(
            record
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    (data, dim)
}
