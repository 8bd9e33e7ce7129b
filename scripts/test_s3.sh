#!/usr/bin/env bash
# The S3 store's tests against moto's S3 server on loopback (scripts/s3_server.sh: moto in a
# venv under target/, shared with the KMS tests), runs `tests/s3.rs` and the
# CLI's `cli/tests/s3_cli.rs` with the AWS_* environment pointing at it, and stops the server
# whatever happens.
# Built with every service feature (aws-kms, vault, gcp-kms, azure-kv, s3), the same set as
# scripts/test_kms.sh, so that CI compiles that configuration once.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/s3_server.sh stop' EXIT
scripts/s3_server.sh start
source target/s3-server/env
export CIPHERVEC_TEST_S3_URL=s3://ciphervec-test/run-$$
cargo test --release --features aws-kms,vault,gcp-kms,azure-kv,s3 --test s3 -- --nocapture "$@"
# Alone: it pauses the server, which would fail whatever else is talking to it.
cargo test --release --features aws-kms,vault,gcp-kms,azure-kv,s3 --test s3 -- --nocapture --ignored --exact \
    a_server_that_stops_mid_use_is_unavailable_and_nothing_breaks
cargo test --release -p ciphervec-cli --features aws-kms,vault,gcp-kms,azure-kv,s3 --test s3_cli "$@"
