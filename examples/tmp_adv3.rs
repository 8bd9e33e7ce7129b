//! scratch
use ciphervec::*;
use serde_json::json;
fn main() {
    let key = IndexKey::generate();
    let db = Database::in_memory();
    let idx = db
        .create_index("f", &key, IndexConfig::ivf_flat(2))
        .unwrap();
    let items: Vec<Item> = (0..2000).map(|i| Item::new(i.to_string(), vec![i as f32 % 7.0, (i / 7) as f32]).with_metadata(json!({"i": i, "f": i as f64 + 0.5, "s": format!("s{}", i % 5), "b": i % 2 == 0, "n": null, "arr": [i % 3, "x"], "nested": {"k": i % 4}}))).collect();
    idx.upsert(items).unwrap();
    idx.train().unwrap();
    let q = vec![3.0, 100.0];
    for f in [
        json!({"i": 17}),
        json!({"i": 17.0}),
        json!({"i": {"$eq": 17.0}}),
        json!({"i": {"$in": [17.0, 18]}}),
        json!({"f": 17.5}),
        json!({"f": {"$gt": 1998}}),
        json!({"i": {"$gte": 1998.5}}),
        json!({"b": true, "i": {"$lt": 10}}),
        json!({"n": null, "i": 3}),
        json!({"missing": null, "i": 3}),
        json!({"arr": 2, "i": {"$lt": 10}}),
        json!({"arr": "x", "i": 5}),
        json!({"nested.k": 3, "i": {"$lt": 10}}),
        json!({"nested": {"k": 3}, "i": {"$lt": 10}}),
        json!({"s": {"$ne": "s1"}, "i": {"$lt": 6}}),
        json!({"s": {"$nin": ["s1", "s2"]}, "i": {"$lt": 6}}),
        json!({"i": {"$exists": true}, "s": "s1", "f": {"$lt": 20}}),
        json!({"missing": {"$exists": false}, "i": 4}),
        json!({"$or": [{"i": 1}, {"i": 1999}]}),
        json!({"$not": {"i": {"$gt": 3}}}),
        json!({"i": {"$gt": 1e300}}),
        json!({"i": -0.0}),
        json!({"i": 0}),
    ] {
        let r = idx.query(&Query::new(q.clone()).filter(f.clone()).top_k(20));
        match r {
            Ok(h) => {
                let mut ids: Vec<String> = h.into_iter().map(|h| h.id).collect();
                ids.sort();
                println!("{f} -> {ids:?}")
            }
            Err(e) => println!("{f} -> ERR {e}"),
        }
    }
}
