#!/usr/bin/env bash
# Interleaved rounds of ciphervec configurations, hnswlib and FAISS IVFFlat (one thread):
# see bench/interleaved.py. Writes bench/results/interleaved-<dataset>.md.
# Usage: bench/interleaved.sh DATASET_DIR [ROUNDS]   (ROUNDS default 9)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd "${1:?usage: bench/interleaved.sh DATASET_DIR [ROUNDS]}" && pwd)
PY=$("${CIPHERVEC_SHARED:-../shared}"/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
cargo build --release --example query_rounds -q
mkdir -p bench/results
out=bench/results/interleaved-$(basename "$data").md
OMP_NUM_THREADS=1 "$PY" bench/interleaved.py "$data" "${2:-9}" "${CARGO_TARGET_DIR:-target}/release/examples/query_rounds" > "$out"
cat "$out"
