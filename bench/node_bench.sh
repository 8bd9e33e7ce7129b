#!/usr/bin/env bash
# Builds the Node.js addon (npm ci through target/npm-cache, napi build) and the Rust
# baseline (examples/node_baseline.rs), then runs bench/node_bench.js: Node vs Rust on the
# same data in the same run (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
(cd node && npm ci --cache "$root/target/npm-cache" --prefer-offline --no-audit --no-fund --loglevel=error && npm run build)
cargo build --release -q --example node_baseline
node bench/node_bench.js "$@"
