#!/usr/bin/env bash
# The REST server's KMS registry (`ciphervec serve --kms-registry FILE`, CyborgDB's `kms_name`)
# against the local key services of scripts/kms_servers.sh, which must be running (as
# scripts/test_kms.sh starts them): the HTTP tests of server/tests/serve/kms.rs with every
# provider, then CyborgDB's Python SDK (server/tests/sdk/python/test_kms_sdk.py) against the
# release binary built with the same features. The servers' settings are exported from
# target/kms-servers.env; without it this fails, never passes.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=target/kms-servers.env
if [[ ! -f $env_file ]]; then
    echo "test_server_kms: $env_file missing: start the servers (scripts/kms_servers.sh start)" >&2
    exit 1
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
# moto takes any credentials; the AWS client reads them from the standard variables.
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
CIPHERVEC_REQUIRE_KMS=1
set +a
features=aws-kms,vault,gcp-kms,azure-kv
cargo test --release -p ciphervec-server --features "$features" --test serve kms:: -- --include-ignored
scripts/server_sdks.sh
cargo build --release -q -p ciphervec-cli --features "$features"
export CIPHERVEC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ciphervec"
target/server-venv/bin/python -m pytest -q -rs server/tests/sdk/python/test_kms_sdk.py
