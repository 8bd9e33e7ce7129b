//! Hidden entry points into the crate's internals for benchmarks and fuzzing. Not part of
//! the public API: no stability promise, and nothing here touches keys the caller holds.

use crate::crypto::aead::{Binding, Sealer};
use crate::crypto::schedule::{DataKey, IndexParams, Keys};
use crate::format::{FORMAT_VERSION, RecordKind};
use crate::ivf::{self, KMeansParams};
use crate::kernel;

/// Names of the kernel paths this CPU supports, best first.
pub fn kernel_paths() -> Vec<&'static str> {
    kernel::available().iter().map(|k| k.name).collect()
}

/// Squared L2 from `q` to each row of `block` with the named path (`None` if unsupported).
pub fn l2sq_block_with(path: &str, q: &[f32], block: &[f32], out: &mut [f32]) -> Option<()> {
    let k = kernel::available().into_iter().find(|k| k.name == path)?;
    (k.l2sq_block)(q, block, out);
    Some(())
}

/// Squared L2 of two vectors with the best path.
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    kernel::l2sq(a, b)
}

/// Runs k-means (random init, Lloyd) and returns (centroids, objective, iterations).
pub fn kmeans(
    data: &[f32],
    dim: usize,
    k: usize,
    max_iters: usize,
    seed: u64,
) -> (Vec<f32>, f64, usize) {
    let r = ivf::kmeans(
        data,
        dim,
        &KMeansParams {
            k,
            max_iters,
            tolerance: 0.0,
            seed,
            ..KMeansParams::default()
        },
    );
    (r.centroids, r.inertia, r.iterations)
}

/// Times the compute of training an L2 `ivf_pq` index (`m` subquantizers, 6-bit refine) on
/// `data` (rows of `dim`) into `n_lists` lists, as `EncryptedIndex::train_with` does it but
/// without the decryption before and the encryption and writing after (their cost is the
/// rest of a build): the coarse k-means with `max_iters` iterations on the default sample,
/// the assignment of every row, the PQ training and the encoding of every row. Returns
/// `(phase, wall seconds, cpu seconds)` triples, CPU time read from `cpu_seconds` (the
/// caller's clock of its process's CPU time), and the k-means iterations run. For
/// `examples/train_phases`.
pub fn time_training(
    data: &[f32],
    dim: usize,
    (n_lists, m, max_iters): (usize, usize, usize),
    cpu_seconds: fn() -> f64,
) -> (Vec<(&'static str, f64, f64)>, usize) {
    use crate::metric::Metric;
    use std::time::Instant;
    let mut phases = Vec::new();
    let (t, c) = (Instant::now(), cpu_seconds());
    let km = ivf::kmeans(
        data,
        dim,
        &KMeansParams {
            k: n_lists,
            max_iters,
            max_points_per_centroid: ivf::auto_train_points_per_list(true),
            ..KMeansParams::default()
        },
    );
    phases.push(("kmeans", t.elapsed().as_secs_f64(), cpu_seconds() - c));
    let quantizer = ivf::Quantizer::new(dim, km.centroids, Metric::SquaredEuclidean);
    let (t, c) = (Instant::now(), cpu_seconds());
    let assignments = quantizer.assign_batch(data);
    phases.push(("assign", t.elapsed().as_secs_f64(), cpu_seconds() - c));
    let (t, c) = (Instant::now(), cpu_seconds());
    let n = assignments.len();
    let stride = (n / 65_536).max(1);
    let codec = ivf::train_pq(
        data,
        &assignments,
        &quantizer,
        (m, ivf::Width::Six, stride, 1),
        Metric::SquaredEuclidean,
    );
    phases.push(("train_pq", t.elapsed().as_secs_f64(), cpu_seconds() - c));
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut code = Vec::new();
    let mut bytes = 0usize;
    let mut residual = vec![0.0f32; dim];
    for (x, &l) in data.chunks_exact(dim).zip(&assignments) {
        let origin = codec.origin(quantizer.centroid(l));
        residual
            .iter_mut()
            .zip(x.iter().zip(origin))
            .for_each(|(r, (v, o))| *r = v - o);
        code.clear();
        codec.encode(&residual, &mut code);
        bytes += code.len();
    }
    std::hint::black_box(bytes);
    phases.push(("encode", t.elapsed().as_secs_f64(), cpu_seconds() - c));
    (phases, km.iterations)
}

/// A content sealer under a fresh random data key, for throughput benchmarks.
pub struct BenchSealer(Sealer);

impl BenchSealer {
    /// A sealer under fresh random key material.
    pub fn new() -> BenchSealer {
        let params = IndexParams::generate().expect("OS random generator");
        let dek = DataKey::generate().expect("OS random generator");
        BenchSealer(crate::crypto::schedule::derived_sealer(
            params,
            dek,
            crate::crypto::schedule::Purpose::Content,
            0,
        ))
    }

    /// Seals one record.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.0
            .seal(
                plaintext,
                &Binding::whole(FORMAT_VERSION, RecordKind::Fields as u8),
            )
            .expect("seal")
    }

    /// Opens one record; `None` if it fails authentication.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.0
            .open(
                sealed,
                &Binding::whole(FORMAT_VERSION, RecordKind::Fields as u8),
            )
            .ok()
    }
}

impl Default for BenchSealer {
    fn default() -> Self {
        BenchSealer::new()
    }
}

/// HMAC-SHA3-256 of a short message (an id's length, as item tokens are) under a fixed key,
/// for the cost of a MAC.
pub fn bench_mac(message: &[u8]) -> [u8; 32] {
    static MAC: std::sync::OnceLock<crate::crypto::mac::HmacSha3> = std::sync::OnceLock::new();
    MAC.get_or_init(|| crate::crypto::mac::HmacSha3::new(&[7u8; 32]))
        .mac(&[message])
}

/// Derives every working key of an index from fresh random material (the key-schedule cost
/// paid at every open).
pub fn derive_key_schedule() {
    let params = IndexParams::generate().expect("OS random generator");
    let dek = DataKey::generate().expect("OS random generator");
    std::hint::black_box(Keys::derive(params, &dek, 0, 0));
}

/// The number of lists a training of `n` items picks when neither the caller nor the config
/// says (`pq`: for `ivf_pq`).
pub fn auto_n_lists(n: usize, pq: bool) -> usize {
    ivf::auto_n_lists(n, pq)
}

/// Sum over `data` of the squared L2 distance to the nearest row of `centroids`.
pub fn l2_objective(data: &[f32], centroids: &[f32], dim: usize) -> f64 {
    let norms: Vec<f32> = centroids.chunks_exact(dim).map(kernel::norm_sq).collect();
    let mut out = vec![(0u32, 0.0f32); data.len() / dim];
    kernel::nearest_l2_batch(data, centroids, &norms, dim, &mut out);
    out.iter().map(|(_, d)| f64::from(*d)).sum()
}

pub use crate::storage::fs::{FaultyFs, FileSystem, FsCall, RealFs};

/// Opens a database in a directory whose file-changing calls go through `fs`.
///
/// # Errors
/// As [`crate::Database::open`].
pub fn open_database_with_fs(
    path: &std::path::Path,
    fs: std::sync::Arc<dyn FileSystem>,
) -> crate::Result<crate::Database> {
    crate::Database::open_with_fs(path, fs, crate::DatabaseOptions::default())
}

/// Sealed bytes that unfiltered queries of `index` have read from its mapped segments so far
/// (always 0 for a resident index): the instrumented view of the leakage tests.
pub fn storage_bytes_read(index: &crate::EncryptedIndex) -> u64 {
    index.storage_reads()
}

/// Ranged requests and bytes the object store of `index`'s database answered so far (through
/// its read cache; both 0 for the directory and memory stores): what an open or a query
/// costs in requests.
pub fn store_fetches(index: &crate::EncryptedIndex) -> (u64, u64) {
    index.store_fetches()
}

/// Decrypted bytes `index` holds in memory: its lists' (vectors, codes, handles and norms,
/// resident or cached) and its item table's (entries, ids and the token index, metadata
/// values not counted).
pub fn decrypted_bytes(index: &crate::EncryptedIndex) -> (usize, usize) {
    index.decrypted_bytes()
}

/// How many failed cleanups the crate ignored on purpose in this process (each is safe to
/// ignore: see `index::encrypted::best_effort`).
pub fn ignored_failures() -> u64 {
    crate::index::ignored_failures()
}

/// The posting index of an index with full text: items indexed, live items whose contents
/// were not UTF-8 (skipped), and approximate heap bytes. `None` without full text.
pub fn full_text_stats(index: &crate::EncryptedIndex) -> Option<(usize, usize, usize)> {
    index.full_text_stats()
}

/// The ids of the items whose metadata `filter` matches, found by testing every item (no
/// metadata index): the baseline `query_metadata` is measured against.
///
/// # Errors
/// [`crate::Error::InvalidFilter`] for a filter that does not parse.
pub fn scan_metadata(
    index: &crate::EncryptedIndex,
    filter: &serde_json::Value,
) -> crate::Result<Vec<String>> {
    index.scan_metadata(filter)
}

/// The tokens the full-text tokenizer makes of `text`, in order.
pub fn text_tokens(text: &str) -> Vec<String> {
    crate::text::tokenize(text).collect()
}

/// Every object under an `s3://bucket/prefix` location, as `(name below the prefix, bytes)`
/// (for tests that inspect or copy what the store holds).
///
/// # Errors
/// Any storage error.
#[cfg(feature = "s3")]
pub fn s3_objects(url: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use crate::storage::{S3Store, Store};
    let store = S3Store::open(url, std::time::Duration::from_secs(30))?;
    let mut out = Vec::new();
    for name in store.list("")? {
        let bytes = store.get(&name)?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// Replaces (or creates) one object under an `s3://bucket/prefix` location (for tests that
/// damage an index).
///
/// # Errors
/// Any storage error.
#[cfg(feature = "s3")]
pub fn s3_put(url: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
    use crate::storage::{S3Store, Store};
    S3Store::open(url, std::time::Duration::from_secs(30))?.put(name, data)
}

pub use crate::index::TrainingStage;

/// A test's hold on the background trainings of one index: each one stops at every
/// [`TrainingStage`] until [`TrainingHold::go`] (or until the hold is dropped), with no lock
/// of the index held, so a test can show that writes and queries go on meanwhile.
pub struct TrainingHold {
    reached: std::sync::mpsc::Receiver<TrainingStage>,
    go: std::sync::mpsc::Sender<()>,
}

impl TrainingHold {
    /// The next stage a background training reached (and waits at), if one does within
    /// `timeout`.
    pub fn reached(&self, timeout: std::time::Duration) -> Option<TrainingStage> {
        self.reached.recv_timeout(timeout).ok()
    }

    /// Lets the training waiting at a stage go on.
    pub fn go(&self) {
        let _ = self.go.send(());
    }
}

/// Holds the background trainings of `index` (see [`TrainingHold`]).
pub fn hold_training(index: &crate::EncryptedIndex) -> TrainingHold {
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    index.hold_training(crate::engine::upkeep_hold(reached_tx, go_rx));
    TrainingHold { reached, go }
}

/// Commits `items` through `index`, a handle opened as a user with read scope, as a holder
/// of that grant's secrets could if it changed its copy of ciphervec: with the data key the
/// grant gives, signed with a signing key of its own (it holds not the index's), without the
/// writer lock. What every opener must refuse (`tests/api/access.rs`).
///
/// # Errors
/// As [`crate::EncryptedIndex::upsert`].
pub fn forge_upsert_as_reader(
    index: &crate::EncryptedIndex,
    items: Vec<crate::Item>,
) -> crate::Result<()> {
    index.forge_upsert(items)
}

/// Whether the grant of `user` (with `user_key`) in the manifest file `manifest` opens
/// segment `seq` (its file's bytes `segment`): its footer and directory authenticated under
/// the data key that grant gives (signatures not checked). Returns the segment's record
/// count. For the revocation test: a revoked user's old grant must open nothing written
/// after the revocation.
///
/// # Errors
/// [`crate::Error::WrongKey`] if the manifest holds no such grant; [`crate::Error::Corrupted`]
/// if the segment does not open under that data key.
pub fn user_opens_segment(
    manifest: &[u8],
    (user, user_key): (&str, &crate::IndexKey),
    segment: &[u8],
    seq: u64,
) -> crate::Result<usize> {
    crate::engine::segment_as_user(manifest, (user, user_key), segment, seq)
}
