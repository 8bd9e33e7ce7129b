#!/usr/bin/env bash
# The KMS client tests against real local servers: starts moto and OpenBao on loopback
# (scripts/kms_servers.sh), runs the `aws-kms` and `vault` feature tests and the example,
# and stops the servers whatever happens.
# Built with every service feature (aws-kms, vault, s3), the same set as scripts/test_s3.sh and
# scripts/test_kms.sh, so that CI compiles that configuration once.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/kms_servers.sh stop' EXIT
scripts/kms_servers.sh start
cargo test --release --features aws-kms,vault,s3 --lib kms::
CIPHERVEC_REQUIRE_KMS=1 cargo test --release --features aws-kms,vault,s3 --test kms -- --nocapture
CIPHERVEC_REQUIRE_KMS=1 cargo test --release -p ciphervec-cli --features aws-kms,vault,s3 --test kms_cli -- --nocapture
cargo run --release --features aws-kms,vault,s3 --example kms_envelope -- vault
cargo run --release --features aws-kms,vault,s3 --example kms_envelope -- aws
