//! The public API, tested against its contract in `../shared/API.md` with oracles.

mod api {
    mod bad_input;
    mod cache;
    pub mod common;
    mod concurrency;
    mod corruption;
    mod durability;
    mod filters;
    mod keys;
    mod kmeans_reference;
    mod layering;
    mod lifecycle;
    mod maintenance;
    mod oracle;
    mod plaintext;
    mod quantized;
    mod real_data;
}
