//! The public API, tested against its contract in `../shared/API.md` with oracles.

mod api {
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
    mod full_text;
    mod hostile_files;
    mod integrity;
    mod keys;
    mod kmeans_reference;
    mod layering;
    mod leakage;
    mod lifecycle;
    mod maintenance;
    mod oracle;
    mod plaintext;
    mod quantized;
    mod real_data;
    mod rollback;
    mod store;
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
