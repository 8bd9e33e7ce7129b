#!/usr/bin/env bash
# The server's tests through CyborgDB's own SDKs: installs them into target/
# (scripts/server_sdks.sh), builds the release `ciphervec` binary, then runs the pytest suite
# (cyborgdb==0.18.0) and the node --test suite (cyborgdb@0.14.0). Each suite starts its own
# `ciphervec serve` on a free loopback port over a temporary folder and stops it after.
# (The Rust integration tests of the server, server/tests/serve.rs, run in `cargo test`.)
#
#   scripts/test_server.sh             # both suites
#   scripts/test_server.sh -k filters  # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/server_sdks.sh
cargo build --release -q -p ciphervec-cli
export CIPHERVEC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ciphervec"
target/server-venv/bin/python -m pytest -q -rs server/tests/sdk/python "$@"
node --test server/tests/sdk/js/
