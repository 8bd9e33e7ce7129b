//! Writes a small database in the current on-disk format, with its keys and the answers
//! it gives, as a fixture that every later version must open and answer the same
//! (`tests/api/format_fixture.rs`). Run once per released format, then commit the folder:
//!
//! `cargo run --release --example format_fixture -- tests/data/format-v7`
//!
//! The fixture holds every index type, metadata, contents, full text, deletes, a data-key
//! rotation, an index-key rotation, a compaction, trained and untrained indexes, and
//! several live segments. The data is generated from a fixed seed, so the expected answers
//! are what this version computed, not a separate oracle: the test holds later versions to
//! them.

use std::path::PathBuf;

use ciphervec::{Database, Include, IndexConfig, IndexKey, Item, Metric, Query};
use serde_json::{Value, json};

const DIM: usize = 16;

/// splitmix64: a fixed, dependency-free generator, so the data never changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [-1, 1) with 24 bits of the draw, so it is exact in f32.
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    fn vector(&mut self, center: &[f32]) -> Vec<f32> {
        center.iter().map(|c| c + 0.3 * self.unit()).collect()
    }
}

const WORDS: [&str; 12] = [
    "invoice",
    "overdue",
    "refund",
    "shipping",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "report",
    "quarterly",
    "urgent",
    "archive",
];

fn item(rng: &mut Rng, centers: &[Vec<f32>], i: usize) -> Item {
    let center = &centers[i % centers.len()];
    let words: Vec<&str> = (0..4)
        .map(|_| WORDS[(rng.next() % WORDS.len() as u64) as usize])
        .collect();
    let team = ["billing", "support", "sales"][i % 3];
    Item::new(format!("item-{i}"), rng.vector(center))
        .with_contents(format!("document {i}: {}", words.join(" ")))
        .with_metadata(json!({
            "team": team,
            "n": i,
            "nested": {"even": i.is_multiple_of(2)},
            "tags": [words[0], words[1]],
        }))
}

struct Spec {
    name: &'static str,
    config: IndexConfig,
    train: bool,
    /// What happens after the first load: "rotate_data_key", "compact", "rotate_keys" or "".
    maintenance: &'static str,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: format_fixture OUT_DIR")?,
    );
    if out.exists() {
        return Err(format!("{} exists; remove it first", out.display()).into());
    }
    let db_dir = out.join("db");
    let db = Database::open(&db_dir)?;
    let key = IndexKey::from_hex(&"5a".repeat(32))?;
    let rotated_key = IndexKey::from_hex(&"c3".repeat(32))?;

    let mut rng = Rng(7);
    let centers: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..DIM).map(|_| 2.0 * rng.unit()).collect())
        .collect();
    let specs = [
        Spec {
            name: "flat",
            config: IndexConfig::ivf_flat(DIM).full_text(true),
            train: true,
            maintenance: "rotate_data_key",
        },
        Spec {
            name: "sq8",
            config: IndexConfig::ivf_sq8(DIM).metric(Metric::Cosine),
            train: true,
            maintenance: "compact",
        },
        Spec {
            name: "pq",
            config: IndexConfig::ivf_pq(DIM, 4).metric(Metric::InnerProduct),
            train: true,
            maintenance: "rotate_keys",
        },
        Spec {
            name: "pq8",
            config: IndexConfig::ivf_pq(DIM, 8)
                .refine_bits(8)
                .metric(Metric::SquaredEuclidean)
                .full_text(true),
            train: true,
            maintenance: "",
        },
        Spec {
            name: "untrained",
            config: IndexConfig::ivf_flat(DIM).full_text(true),
            train: false,
            maintenance: "",
        },
    ];

    let queries: Vec<Vec<f32>> = (0..4).map(|i| rng.vector(&centers[i])).collect();
    let mut expected = serde_json::Map::new();
    for spec in &specs {
        let index = db.create_index(spec.name, &key, spec.config.clone())?;
        let n = if spec.train { 240 } else { 60 };
        // Several writes, so that several segments are live.
        for chunk in (0..n).collect::<Vec<_>>().chunks(80) {
            index.upsert(chunk.iter().map(|&i| item(&mut rng, &centers, i)))?;
        }
        if spec.train {
            index.train()?;
        }
        index.upsert((n..n + 20).map(|i| item(&mut rng, &centers, i)))?;
        let gone: Vec<String> = (0..n).step_by(17).map(|i| format!("item-{i}")).collect();
        let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
        index.delete(&gone)?;
        // A replacement: the newest version of an id wins.
        index.upsert([item(&mut rng, &centers, 3)])?;
        let mut index_key = &key;
        match spec.maintenance {
            "rotate_data_key" => index.rotate_data_key()?,
            "compact" => index.compact()?,
            "rotate_keys" => {
                drop(index);
                db.rotate_keys(spec.name, &key, &rotated_key)?;
                index_key = &rotated_key;
            }
            _ => {}
        }
        let index = db.open_index(spec.name, index_key)?;
        // A write after the maintenance, so the newest segment is an append.
        index.upsert((n + 20..n + 25).map(|i| item(&mut rng, &centers, i)))?;
        expected.insert(
            spec.name.to_string(),
            answers(&index, index_key, &queries, spec.config.is_full_text())?,
        );
    }
    let fixture = json!({
        "format_version": 7,
        "written_by": "ciphervec 0.1.0 (2026-12-07)",
        "queries": queries,
        "indexes": expected,
    });
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&fixture)? + "\n",
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

/// What the fixture's test asks of each index, and what this version answered.
fn answers(
    index: &ciphervec::EncryptedIndex,
    key: &IndexKey,
    queries: &[Vec<f32>],
    full_text: bool,
) -> ciphervec::Result<Value> {
    let mut ids = index.list_ids()?;
    ids.sort();
    let probe_all = index.n_lists().max(1);
    let hits = |q: Query| -> ciphervec::Result<Value> {
        let hits = index.query(&q.n_probes(probe_all).rerank(100))?;
        Ok(hits
            .iter()
            .map(|h| json!({"id": h.id, "distance": h.distance, "score": h.score}))
            .collect())
    };
    let mut vector = Vec::new();
    let mut filtered = Vec::new();
    for q in queries {
        vector.push(hits(Query::new(q.clone()).top_k(10))?);
        filtered.push(hits(Query::new(q.clone()).top_k(10).filter(
            json!({"team": {"$in": ["billing", "sales"]}, "n": {"$lt": 200}}),
        ))?);
    }
    let text = if full_text {
        json!([
            hits(Query::text_only("overdue refund").top_k(10))?,
            hits(Query::new(queries[0].clone()).text("invoice").top_k(10))?,
        ])
    } else {
        Value::Null
    };
    let some: Vec<&str> = ids.iter().step_by(37).map(String::as_str).collect();
    let records: Vec<Value> = index
        .get(&some, Include::ALL)?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "metadata": r.metadata,
                "contents": r.contents.map(|c| String::from_utf8(c).unwrap()),
                "vector": r.vector,
            })
        })
        .collect();
    Ok(json!({
        "key_hex": hex(key),
        "trained": index.is_trained(),
        "len": index.len(),
        "ids": ids,
        "anchor": index.anchor().to_string(),
        "vector": vector,
        "filtered": filtered,
        "text": text,
        "records": records,
    }))
}

fn hex(key: &IndexKey) -> String {
    // The fixture's keys are public test keys; write them so the test can open the indexes.
    let b64 = key.to_base64();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .expect("base64 of a key");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
