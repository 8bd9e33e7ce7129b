//! Readers query while a writer upserts: no panic, and every result is a consistent snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ciphervec::{Database, IndexConfig, IndexKey, Item, Query};

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
