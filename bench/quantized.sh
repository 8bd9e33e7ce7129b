#!/usr/bin/env bash
# The quantized index types against their peers on one dataset, one thread, in one run:
# FAISS IVFFlat, FAISS IVFPQ fast-scan with exact refine, hnswlib, and ciphervec ivf_flat,
# ivf_sq8 and ivf_pq. Writes bench/results/quantized-<dataset>.jsonl and .md.
# Usage: bench/quantized.sh DATASET_DIR [PQ_M]   (PQ_M default: dimension / 4)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd "${1:?usage: bench/quantized.sh DATASET_DIR [PQ_M]}" && pwd)
name=quantized-$(basename "$data")
out=bench/results
mkdir -p "$out" target/bench-tmp
PY=$(../shared/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
dim=$("$PY" -c "import numpy as np, sys; print(np.fromfile(sys.argv[1], dtype='int32', count=1)[0])" "$data/base.fvecs")
n=$(( $(stat -c %s "$data/base.fvecs") / (4 * (dim + 1)) ))
m=${2:-$((dim / 4))}
pq_lists=$("$PY" -c "print(round($n ** 0.5))")
jsonl=$out/$name.jsonl
rm -f "$jsonl"
# The harness names its output after the dataset directory: run it, then move the lines.
tmp_out=target/bench-tmp/quantized-out
rm -rf "$tmp_out"
"$PY" ../shared/bench/bench_peers.py --data "$data" --peers faiss-ivfflat,hnswlib --threads 1 \
    --out "$tmp_out" --tmp target/bench-tmp --single-time-cap 10 --nprobe 16,32,56,64,128
cat "$tmp_out"/*.jsonl >> "$jsonl"
OMP_NUM_THREADS=1 "$PY" bench/faiss_fastscan.py --data "$data" --nlist "$pq_lists" --pq-m "$m" \
    --refine 10 --tmp target/bench-tmp --single-time-cap 10 --nprobe 16,24,32,40,48 \
    | sed -n 's/^RESULT //p' >> "$jsonl"
cargo build --release --example ann_bench -q
target/release/examples/ann_bench --data "$data" --probes 16,32,56,64,128 >> "$jsonl"
target/release/examples/ann_bench --data "$data" --type sq8 --probes 16,32,56,64 >> "$jsonl"
target/release/examples/ann_bench --data "$data" --type "pq:$m" --probes 16,24,32,40,48 >> "$jsonl"
"$PY" bench/quantized_table.py "$jsonl" > "$out/$name.md"
cat "$out/$name.md"
