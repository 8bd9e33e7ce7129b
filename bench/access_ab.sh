#!/usr/bin/env bash
# A/B of access control's cost (issue 43) in one run: examples/access_cost.rs times, in
# interleaved rounds, a 1,000-item upsert and an open of an index without grants (plain)
# against one with grants (every commit signed, every open verifying), and queries through a
# read grant's handle against the owner's. Prints each round and the medians with the ratios.
# Usage: bench/access_ab.sh [ROUNDS] [ITEMS] [BATCH] [DIM]   (defaults 7 20000 1000 128)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example access_cost -q
target/release/examples/access_cost "$@"
