//! The public API, tested against its contract in `../shared/API.md` with oracles.

mod api {
    pub mod common;
    mod bad_input;
    mod concurrency;
    mod keys;
    mod lifecycle;
    mod oracle;
    mod plaintext;
    mod real_data;
}
