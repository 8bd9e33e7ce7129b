#!/usr/bin/env bash
# How cost grows to 10M vectors: ciphervec ivf_pq (codes only) against FAISS IVFPQ fast-scan +
# RefineFlat on synthetic clustered data (96 dimensions), see bench/scale.py. Never in CI: the
# 10M size takes about an hour and 4 GB of disk for the data, more for the indexes.
# Usage: bench/scale.sh WORK_DIR [ROUNDS] [SIZES...]   (default 5 rounds, 1000000 3000000 10000000)
# Writes bench/results/scale-synth-96.md (and WORK_DIR/scale.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mkdir -p "${1:?usage: bench/scale.sh WORK_DIR [ROUNDS] [SIZES...]}" && cd "$1" && pwd)
rounds=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 3000000 10000000)
PY=$("${CIPHERVEC_SHARED:-../shared}"/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
cargo build --release --example scale_run -q
mkdir -p bench/results
out=bench/results/scale-synth-96.md
OMP_NUM_THREADS=1 "$PY" bench/scale.py "$work" "$rounds" "${CARGO_TARGET_DIR:-target}/release/examples/scale_run" "${sizes[@]}" > "$out"
cat "$out"
