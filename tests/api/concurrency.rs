//! Readers query while a writer upserts: no panic, and every result is a consistent snapshot.
//! Also through maintenance (compaction, rotation, training, backups) on disk, with readers
//! on the writer's handle and on read-only handles that refresh.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ciphervec::{
    Database, DatabaseOptions, EncryptedIndex, Include, IndexConfig, IndexKey, Item, Query,
};
use serde_json::json;

use super::common::distance;

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn eight_readers_and_one_writer() {
    assert_send_sync::<Database>();
    assert_send_sync::<ciphervec::EncryptedIndex>();
    let db = Database::in_memory();
    let index = db
        .create_index("c", &IndexKey::generate(), IndexConfig::ivf_flat(2))
        .unwrap();
    // Item i sits at (i, 0); batches are written whole, so a reader sees a prefix 0..n.
    index.upsert([Item::new("0", vec![0.0, 0.0])]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (index, done) = (index.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) || checks < 10 {
                    let n = index.len();
                    let hits = index.query(&Query::new(vec![1e6, 0.0]).top_k(1)).unwrap();
                    // The farthest-right item of a consistent snapshot has a whole batch.
                    let top: usize = hits[0].id.parse().unwrap();
                    assert_eq!(top % 10, 0, "half-visible batch: top {top}");
                    assert!(top < index.len().max(n));
                    checks += 1;
                }
            })
        })
        .collect();
    for batch in 0..30 {
        let items: Vec<Item> = (1..=10)
            .map(|j| {
                let i = batch * 10 + j;
                Item::new(i.to_string(), vec![i as f32, 0.0])
            })
            .collect();
        index.upsert(items).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(index.len(), 301);
}

/// Items per batch of [`maintenance_under_readers`]: each batch is written (and later deleted)
/// by one call, so a reader sees all of it or none.
const BATCH: usize = 12;
const DIM: usize = 8;

/// Batch `b` lies alone around this point (batches are 100 apart on the first axis).
fn batch_center(b: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[0] = b as f32 * 100.0 + 1.0;
    v[1] = (b % 7) as f32;
    v
}

fn batch_vector(b: usize, j: usize) -> Vec<f32> {
    let mut v = batch_center(b);
    v[2 + j % (DIM - 2)] += 0.01 * (j as f32 + 1.0);
    v
}

fn batch_items(b: usize) -> Vec<Item> {
    (0..BATCH)
        .map(|j| {
            Item::new(format!("b{b}-{j}"), batch_vector(b, j))
                .with_metadata(json!({ "batch": b }))
                .with_contents(format!("word{b} common text"))
        })
        .collect()
}

/// Every way of reading batch `b` finds all of it or none: the nearest vectors (with their
/// exact distances), a filter on its metadata, its words, `get` of its ids; a batch of
/// queries answers. Returns what went wrong.
fn check_batch(index: &EncryptedIndex, b: usize, who: &str) -> Result<(), String> {
    let whole = |what: &str, n: usize| {
        if n == 0 || n == BATCH {
            Ok(())
        } else {
            Err(format!("{who}: {what} of batch {b}: {n} of {BATCH} items"))
        }
    };
    let fail = |what: &str, e: ciphervec::Error| format!("{who}: {what} of batch {b}: {e}");
    let nearest = Query::new(batch_center(b))
        .top_k(BATCH)
        .n_probes(1000)
        .rerank(50);
    let hits = index.query(&nearest).map_err(|e| fail("query", e))?;
    let prefix = format!("b{b}-");
    let mine: Vec<_> = hits.iter().filter(|h| h.id.starts_with(&prefix)).collect();
    whole("query", mine.len())?;
    for h in mine {
        let j: usize = h.id[prefix.len()..].parse().unwrap();
        let d = distance(
            ciphervec::Metric::Euclidean,
            &batch_center(b),
            &batch_vector(b, j),
        );
        if (d - h.distance).abs() > 1e-3 {
            return Err(format!("{who}: {} at {} instead of {d}", h.id, h.distance));
        }
    }
    let filtered = Query::new(batch_center(b))
        .top_k(3 * BATCH)
        .filter(json!({ "batch": b }));
    whole(
        "filter",
        index.query(&filtered).map_err(|e| fail("filter", e))?.len(),
    )?;
    let words = Query::text_only(&format!("word{b}")).top_k(2 * BATCH);
    whole(
        "text",
        index.query(&words).map_err(|e| fail("text", e))?.len(),
    )?;
    let ids: Vec<String> = (0..BATCH).map(|j| format!("b{b}-{j}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = index
        .get(&ids, Include::default())
        .map_err(|e| fail("get", e))?;
    whole("get", got.len())?;
    let several: Vec<Query> = (b..b + 4)
        .map(|c| Query::new(batch_center(c)).top_k(BATCH).n_probes(1000))
        .collect();
    index
        .query_batch(&several)
        .map_err(|e| fail("query_batch", e))?;
    Ok(())
}

/// While a writer adds and deletes whole batches and compacts, rotates the data key,
/// retrains and takes backups, readers check batches through the writer's handle, a
/// read-only handle of the same database and one of another database (both refreshing
/// between checks): no error, every batch whole or absent, exact distances; afterwards the
/// index and every backup verify and the final state answers the same checks. For each
/// index type, resident and not. (A reader's refresh that raced a rotation was `Corrupted`.)
#[test]
fn maintenance_under_readers() {
    let configs = [
        ("ivf_flat", IndexConfig::ivf_flat(DIM), None),
        ("ivf_flat on demand", IndexConfig::ivf_flat(DIM), Some(2000)),
        ("ivf_sq8", IndexConfig::ivf_sq8(DIM), None),
        ("ivf_pq codes only", IndexConfig::ivf_pq(DIM, 4), Some(0)),
    ];
    for (label, config, budget) in configs {
        let options = budget.map_or_else(DatabaseOptions::default, |b| {
            DatabaseOptions::default().cache_budget(b)
        });
        let errors = maintenance_with_readers(config.full_text(true), options);
        assert!(errors.is_empty(), "{label}: {errors:#?}");
    }
}

/// One run of [`maintenance_under_readers`]; returns the readers' errors.
fn maintenance_with_readers(config: IndexConfig, options: DatabaseOptions) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let key = IndexKey::generate();
    let db = Database::open_with(dir.path(), options.clone()).unwrap();
    let index = db.create_index("s", &key, config).unwrap();
    for b in 0..40 {
        index.upsert(batch_items(b)).unwrap();
    }
    index.train().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let other_db = Database::open_with(dir.path(), options).unwrap();
    let readers = [
        ("writer handle", index.clone(), false),
        (
            "read-only",
            db.open_index_read_only("s", &key).unwrap(),
            true,
        ),
        (
            "other database",
            other_db.open_index_read_only("s", &key).unwrap(),
            true,
        ),
    ];
    let threads: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(t, (who, reader, refresh))| {
            let (done, errors) = (done.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut b = t;
                while !done.load(Ordering::Relaxed) {
                    let refreshed = match refresh {
                        true => reader.refresh().map(|_| ()),
                        false => Ok(()),
                    };
                    let checked = refreshed
                        .map_err(|e| format!("{who}: refresh: {e}"))
                        .and_then(|()| check_batch(&reader, b % 120, who));
                    if let Err(e) = checked {
                        errors.lock().unwrap().push(e);
                    }
                    b += 3 + t;
                }
            })
        })
        .collect();
    for b in 40..120 {
        index.upsert(batch_items(b)).unwrap();
        if b % 3 == 0 {
            let ids: Vec<String> = (0..BATCH).map(|j| format!("b{}-{j}", b - 30)).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            assert_eq!(index.delete(&ids).unwrap(), BATCH);
        }
        match b % 20 {
            5 => index.compact().unwrap(),
            9 => index.rotate_data_key().unwrap(),
            13 => index.train().unwrap(),
            17 => index.backup_to(backups.path().join(b.to_string())).unwrap(),
            _ => {}
        }
    }
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let mut errors = std::mem::take(&mut *errors.lock().unwrap());
    for b in 0..120 {
        errors.extend(check_batch(&index, b, "after").err());
    }
    index.verify().unwrap();
    for backup in std::fs::read_dir(backups.path()).unwrap() {
        let copy = Database::open(backup.unwrap().path()).unwrap();
        copy.open_index("s", &key).unwrap().verify().unwrap();
    }
    errors
}
