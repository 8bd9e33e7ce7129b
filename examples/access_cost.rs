//! What access control costs, as an A/B in one run (`bench/access_ab.sh`): two indexes with
//! the same items, one without grants (no signatures: as before access control) and one with
//! a read and a write grant (every commit signed with Ed25519, every open verifying the
//! manifest's signature and each segment's over the digest of its bytes). Interleaved
//! rounds, the order of the two sides alternating, then medians and the ratio signed/plain of:
//!
//! - `commit_ms`: one upsert of BATCH items (durable when it returns);
//! - `open_ms`: an owner's read-only open;
//! - and on the signed index, `query_us` through a read grant's handle against the owner's.
//!
//! Usage: `cargo run --release --example access_cost -- [ROUNDS] [ITEMS] [BATCH] [DIM]`
//! (defaults 7, 20000, 1000, 128). Prints one JSON line per round, then a summary line.

use std::time::Instant;

use ciphervec::{Access, Database, EncryptedIndex, IndexConfig, IndexKey, Item, Query};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A deterministic vector (SplitMix64 of `i`), in [-1, 1).
fn vector(i: u64, dim: usize) -> Vec<f32> {
    let mut s = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn items(from: u64, n: usize, dim: usize) -> Vec<Item> {
    (from..from + n as u64)
        .map(|i| Item::new(format!("i{i}"), vector(i, dim)))
        .collect()
}

struct Side {
    name: &'static str,
    dir: tempfile::TempDir,
    key: IndexKey,
}

fn main() -> Result<(), ciphervec::Error> {
    let arg = |n: usize, default: usize| -> usize {
        std::env::args()
            .nth(n)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (rounds, n_items, batch, dim) = (arg(1, 7), arg(2, 20_000), arg(3, 1000), arg(4, 128));
    let reader_key = IndexKey::generate();
    let writer_key = IndexKey::generate();
    let mut sides = Vec::new();
    for name in ["plain", "signed"] {
        let side = Side {
            name,
            dir: tempfile::tempdir()?,
            key: IndexKey::generate(),
        };
        let db = Database::open(side.dir.path())?;
        let index = db.create_index(
            "bench",
            &side.key,
            IndexConfig::ivf_flat(dim).auto_train(false),
        )?;
        if name == "signed" {
            index.grant("reader", &reader_key, Access::Read)?;
            index.grant("writer", &writer_key, Access::ReadWrite)?;
        }
        for start in (0..n_items).step_by(batch) {
            index.upsert(items(start as u64, batch.min(n_items - start), dim))?;
        }
        index.train()?;
        sides.push(side);
    }
    let queries: Vec<Query> = (0..200)
        .map(|i| Query::new(vector(1_000_000 + i, dim)).top_k(10))
        .collect();
    let time_queries = |index: &EncryptedIndex| -> Result<f64, ciphervec::Error> {
        let mut us = Vec::with_capacity(queries.len());
        for q in &queries {
            let t = Instant::now();
            std::hint::black_box(index.query(q)?);
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(median(us))
    };
    let mut commit: [Vec<f64>; 2] = Default::default();
    let mut open: [Vec<f64>; 2] = Default::default();
    let (mut owner_q, mut user_q) = (Vec::new(), Vec::new());
    let mut next = 10_000_000u64;
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for &s in &order {
            let side = &sides[s];
            let db = Database::open(side.dir.path())?;
            let index = db.open_index("bench", &side.key)?;
            let mut ms = Vec::new();
            for _ in 0..3 {
                let batch_items = items(next, batch, dim);
                next += batch as u64;
                let t = Instant::now();
                index.upsert(batch_items)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            commit[s].push(median(ms));
            drop(index);
            drop(db);
            let mut ms = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let index =
                    Database::open(side.dir.path())?.open_index_read_only("bench", &side.key)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(index.len());
            }
            open[s].push(median(ms));
        }
        let signed = &sides[1];
        let owner =
            Database::open(signed.dir.path())?.open_index_read_only("bench", &signed.key)?;
        let user =
            Database::open(signed.dir.path())?.open_index_as("bench", "reader", &reader_key)?;
        let (o, u) = if round % 2 == 0 {
            let o = time_queries(&owner)?;
            (o, time_queries(&user)?)
        } else {
            let u = time_queries(&user)?;
            (time_queries(&owner)?, u)
        };
        owner_q.push(o);
        user_q.push(u);
        println!(
            "{{\"round\": {round}, \"commit_ms\": {{\"plain\": {:.3}, \"signed\": {:.3}}}, \
             \"open_ms\": {{\"plain\": {:.3}, \"signed\": {:.3}}}, \
             \"query_us\": {{\"owner\": {o:.1}, \"user\": {u:.1}}}}}",
            commit[0][round], commit[1][round], open[0][round], open[1][round]
        );
    }
    let (c0, c1) = (median(commit[0].clone()), median(commit[1].clone()));
    let (o0, o1) = (median(open[0].clone()), median(open[1].clone()));
    let (q0, q1) = (median(owner_q), median(user_q));
    println!(
        "{{\"summary\": true, \"items\": {n_items}, \"batch\": {batch}, \"dim\": {dim}, \
         \"rounds\": {rounds}, \"commit_ms\": [{c0:.3}, {c1:.3}], \"commit_ratio\": {:.3}, \
         \"open_ms\": [{o0:.3}, {o1:.3}], \"open_ratio\": {:.3}, \
         \"query_us\": [{q0:.1}, {q1:.1}], \"query_ratio\": {:.3}, \"sides\": [\"{}\", \"{}\"]}}",
        c1 / c0,
        o1 / o0,
        q1 / q0,
        sides[0].name,
        sides[1].name
    );
    Ok(())
}
