//! The public API, tested against its contract in `../shared/API.md` with oracles.

mod api {
    mod access;
    mod backup_refresh;
    mod bad_input;
    mod batch;
    mod cache;
    pub mod common;
    mod concurrency;
    mod corruption;
    mod deep_json;
    mod durability;
    mod filters;
    mod format_fixture;
    mod full_text;
    mod history;
    mod hostile_files;
    mod integrity;
    mod keys;
    mod kmeans_reference;
    mod layering;
    mod leakage;
    mod lifecycle;
    mod listing;
    mod maintenance;
    mod oracle;
    mod pattern_filters;
    mod plaintext;
    mod precision;
    mod quantized;
    mod real_data;
    mod rollback;
    mod self_maintenance;
    mod self_maintenance_crash;
    mod store;
    mod ties;
    mod vocabulary;
}

mod fuzz_replay {
    //! Inputs the fuzzers found (minimized) and the seed corpora, replayed through the same
    //! entry points as the fuzz targets, so that fixed bugs stay fixed without the fuzzer.

    fn replay(dir: &str, run: fn(&[u8])) -> usize {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut count = 0;
        for base in ["tests/data/fuzz", "fuzz/seeds"] {
            let Ok(entries) = std::fs::read_dir(root.join(base).join(dir)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                if path.is_file() {
                    run(&std::fs::read(&path).unwrap());
                    count += 1;
                }
            }
        }
        count
    }

    /// Writes the seeds of `manifest_decode`, `segment_decode` and `open_directory` from a
    /// small index in the current format (the fuzzers reach past the version checks only
    /// with them). Run by hand after a format change:
    /// `cargo test --release --test api regenerate_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/seeds; run by hand after a format change"]
    fn regenerate_fuzz_seeds() {
        use ciphervec::{Database, IndexConfig, IndexKey, Item};
        let dir = tempfile::tempdir().unwrap();
        // The key and index name `fuzzing::open_directory` opens with.
        let key = IndexKey::from_bytes(&[7; 32]).unwrap();
        let index = Database::open(dir.path())
            .unwrap()
            .create_index("f", &key, IndexConfig::ivf_flat(4))
            .unwrap();
        let item = |i: usize| {
            Item::new(format!("i{i}"), vec![i as f32, 1.0, -1.0, 0.5])
                .with_metadata(serde_json::json!({"n": i}))
                .with_contents(b"text".to_vec())
        };
        index.upsert((0..6).map(item)).unwrap();
        index.train().unwrap();
        index.upsert((6..8).map(item)).unwrap();
        index.delete(&["i1"]).unwrap();
        drop(index);
        let folder = dir.path().join("f");
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let read = |name: &str| std::fs::read(folder.join(name)).unwrap();
        std::fs::write(seeds.join("manifest_decode/manifest"), read("MANIFEST")).unwrap();
        // `open_directory` input: `selector u8 | length u16 | bytes` per file, the selector
        // indexing its list of names (MANIFEST, then segments 2 to 5).
        let mut packed = Vec::new();
        let mut pack = |selector: u8, bytes: &[u8]| {
            let len = u16::try_from(bytes.len()).expect("seed files under 64 KiB");
            packed.push(selector);
            packed.extend_from_slice(&len.to_le_bytes());
            packed.extend_from_slice(bytes);
        };
        pack(0, &read("MANIFEST"));
        let mut segments = 0;
        for seq in 2u8..=5 {
            let name = format!("seg-{seq:016x}.cvs");
            if folder.join(&name).exists() {
                pack(seq - 1, &read(&name));
                std::fs::write(
                    seeds.join(format!("segment_decode/segment{seq}")),
                    read(&name),
                )
                .unwrap();
                segments += 1;
            }
        }
        assert!(segments > 0, "no segment numbered 2 to 5");
        std::fs::write(seeds.join("open_directory/whole_index"), packed).unwrap();
    }

    #[test]
    fn every_seed_and_regression_input_runs_clean() {
        use ciphervec::fuzzing as f;
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 6] = [
            ("manifest_decode", f::manifest_decode),
            ("segment_decode", f::segment_decode),
            ("key_parse", f::key_parse),
            ("filter", f::filter),
            ("open_directory", f::open_directory),
            ("operations", f::operations),
        ];
        let mut total = 0;
        for (dir, run) in targets {
            let n = replay(dir, run);
            assert!(n > 0, "no inputs for {dir}");
            total += n;
        }
        println!("replayed {total} inputs");
    }
}
