//! `query_metadata` against a full scan, in one process: an index of N items whose metadata
//! holds a `team` of 100 values (a filter on one matches 1%), a `code` of 1,000 values
//! (0.1%), a pattern field `title` and a number `date`; each listing is answered through
//! the metadata indexes (`query_metadata`) and by testing the filter on every item
//! (`internals::scan_metadata`, what a listing costs without them), in alternating rounds.
//! Reported: the median time of each and their ratio, per filter. Both answers are checked
//! equal first.
//!
//! ```text
//! cargo run --release --example listing_bench -- [--items 100000] [--rounds 7]
//! ```

use std::time::Instant;

use ciphervec::{
    Database, EncryptedIndex, FieldSchema, IndexConfig, IndexKey, Item, MetadataQuery,
    MetadataSchema, Order,
};
use serde_json::{Value, json};

fn main() -> ciphervec::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str, default: &str| -> String {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let n: usize = arg("--items", "100000").parse().expect("--items N");
    let rounds: usize = arg("--rounds", "7").parse().expect("--rounds N");
    let schema = MetadataSchema::new().with_field("title", FieldSchema::PATTERN);
    let index = Database::in_memory().create_index(
        "list",
        &IndexKey::generate(),
        IndexConfig::ivf_flat(8).metadata_schema(schema),
    )?;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let r = next();
            let vector: Vec<f32> = (0..8).map(|k| ((r >> (k * 8)) & 0xff) as f32).collect();
            Item::new(format!("item-{i:08}"), vector).with_metadata(json!({
                "team": format!("team-{}", r % 100),
                "code": format!("C{:04}", (r >> 20) % 1000),
                "title": format!("INV-{}", (r >> 32) % 10_000),
                "date": (r >> 40) % 3650,
            }))
        })
        .collect();
    for chunk in items.chunks(20_000) {
        index.upsert(chunk.to_vec())?;
    }
    let cases: [Case; 5] = [
        ("1% (team)", json!({"team": "team-17"}), None),
        ("0.1% (code)", json!({"code": "C0042"}), None),
        (
            "1% ordered by date, top 20",
            json!({"team": "team-17"}),
            Some(("date", Order::Descending)),
        ),
        (
            "0.1% ($regex on a pattern field)",
            json!({"title": {"$regex": "^INV-42\\d$"}}),
            None,
        ),
        (
            "1% (range)",
            json!({"date": {"$gte": 1000, "$lt": 1036}}),
            None,
        ),
    ];
    println!("{n} items, {rounds} rounds, median per listing");
    println!(
        "{:34} {:>8} {:>12} {:>12} {:>7}",
        "filter", "matches", "listing ms", "scan ms", "ratio"
    );
    for (name, filter, order) in cases {
        let mut q = MetadataQuery::new().filter(filter.clone());
        if let Some((field, o)) = order {
            q = q.order_by(field, o).top_k(20);
        }
        check(&index, &filter, order.is_none())?;
        let (mut listing, mut scan, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut matches = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            matches = index.query_metadata(&q)?.len();
            let a = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut found = ciphervec::internals::scan_metadata(&index, &filter)?;
            if order.is_some() {
                // What the listing does beyond the scan: order and cut (here by id).
                found.sort_unstable();
                found.truncate(20);
            }
            let b = t.elapsed().as_secs_f64();
            listing.push(a);
            scan.push(b);
            ratios.push(b / a);
        }
        println!(
            "{name:34} {matches:>8} {:>12.3} {:>12.3} {:>6.1}x",
            median(listing) * 1e3,
            median(scan) * 1e3,
            median(ratios)
        );
    }
    Ok(())
}

/// A listing measured: its name, filter, and ordering (with a top 20) if any.
type Case = (&'static str, Value, Option<(&'static str, Order)>);

/// The listing and the scan find the same items.
fn check(index: &EncryptedIndex, filter: &Value, whole: bool) -> ciphervec::Result<()> {
    if whole {
        let listed: Vec<String> = index
            .query_metadata(&MetadataQuery::new().filter(filter.clone()))?
            .into_iter()
            .map(|h| h.id)
            .collect();
        let mut scanned = ciphervec::internals::scan_metadata(index, filter)?;
        scanned.sort();
        assert_eq!(listed, scanned, "{filter}");
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
