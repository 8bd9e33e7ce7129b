//! Shared by the training benchmarks (`train_phases`, `assign_rate`): the first rows of an
//! `.fvecs` file as one flat array, and the CPU time of this process.

use std::io::Read as _;

/// CPU seconds this process's threads have run (`/proc/self/task/*/schedstat`, in
/// nanoseconds): on a machine shared with other jobs, what a phase costs whatever share of
/// the cores it got.
pub fn cpu_seconds() -> f64 {
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
pub fn read_fvecs(path: &std::path::Path, n: usize) -> (Vec<f32>, usize) {
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
