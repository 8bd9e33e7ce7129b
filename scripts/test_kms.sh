#!/usr/bin/env bash
# The KMS client tests against real local servers: starts moto, OpenBao and the repository's
# Google Cloud KMS and Azure Key Vault servers on loopback (scripts/kms_servers.sh), runs the
# `aws-kms`, `vault`, `gcp-kms` and `azure-kv` feature tests of the core, the CLI and the
# Python package, and the example, and stops the servers whatever happens.
# The server tests are #[ignore]d in a plain `cargo test` (reported as ignored, never as
# passed); here they run with --include-ignored, and a missing server fails them.
# Built with every service feature, the same set as scripts/test_s3.sh, so that CI compiles
# that configuration once.
set -euo pipefail
cd "$(dirname "$0")/.."
features=aws-kms,vault,gcp-kms,azure-kv,s3
trap 'scripts/kms_servers.sh stop' EXIT
scripts/kms_servers.sh start
cargo test --release --features "$features" --lib kms::
cargo test --release --features "$features" --test kms -- --include-ignored
cargo test --release -p ciphervec-cli --features "$features" --test kms_cli -- --include-ignored
for kms in vault aws gcp azure; do
    cargo run --release --features "$features" --example kms_envelope -- "$kms"
done
# The Python classes (cv.GcpKms, cv.AzureKeyVault, cv.VaultTransit) against the same servers.
scripts/test_python.sh -k kms
# The REST server's KMS registry (`serve --kms-registry`, CyborgDB's `kms_name`), over HTTP and
# through CyborgDB's Python SDK (scripts/test_server_kms.sh).
scripts/test_server_kms.sh
