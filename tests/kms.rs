//! The KMS clients against real local servers, started on loopback by
//! `scripts/kms_servers.sh start` (which writes `target/kms-servers.env`): moto (AWS KMS API),
//! an OpenBao dev server (Vault transit API), and the repository's servers of the Google
//! Cloud KMS and Azure Key Vault REST APIs (`scripts/kms_mock/`). Run with
//! `scripts/test_kms.sh` (or `.ci/run`).
//!
//! Every test that needs a server is `#[ignore]`d, so that a plain `cargo test` reports it as
//! ignored (never as passed); the script runs them with `--include-ignored`, and there a
//! missing server fails them.
#![cfg(any(
    feature = "aws-kms",
    feature = "vault",
    feature = "gcp-kms",
    feature = "azure-kv"
))]

mod kms {
    #[cfg(feature = "aws-kms")]
    mod aws;
    #[cfg(feature = "azure-kv")]
    mod azure;
    pub mod common;
    #[cfg(feature = "gcp-kms")]
    mod gcp;
    #[cfg(any(feature = "gcp-kms", feature = "azure-kv"))]
    pub mod mock;
    mod settings;
    #[cfg(feature = "vault")]
    mod vault;
}
