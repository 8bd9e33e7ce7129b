#!/usr/bin/env bash
# The quantized index types against their peers on one dataset, one thread, in one run:
# FAISS IVFFlat, FAISS IVFPQ fast-scan with exact refine, hnswlib, and ciphervec ivf_flat,
# ivf_sq8 and ivf_pq (vectors in RAM, and codes only). Writes
# bench/results/quantized-<dataset>.jsonl and .md.
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
# PQ with M and 2M subquantizers (4 and 2 dimensions each for the default M), each re-ranking
# 3, 5 or 10 candidates per result: the same grid for FAISS and ciphervec.
for pm in "$m" "$((2 * m))"; do
    for refine in 3 5 10; do
        OMP_NUM_THREADS=1 "$PY" bench/faiss_fastscan.py --data "$data" --nlist "$pq_lists" \
            --pq-m "$pm" --refine "$refine" --tmp target/bench-tmp --single-time-cap 10 \
            --nprobe 16,24,32,48 | sed -n 's/^RESULT //p' >> "$jsonl"
    done
done
cargo build --release --example ann_bench -q
bench() { target/release/examples/ann_bench --data "$data" "$@" >> "$jsonl"; }
bench --probes 16,32,56,64,128
# Quantized types with their vectors in RAM, then with codes only (`--cold`: each re-ranked
# vector decrypted from its own record).
for cold in "" --cold; do
    bench --type sq8 --probes 32,56,64 --rerank 2,10 $cold
    for pm in "$m" "$((2 * m))"; do
        bench --type "pq:$pm" --probes 16,24,32,48 --rerank 3,5,10 $cold
    done
done
"$PY" bench/quantized_table.py "$jsonl" > "$out/$name.md"
cat "$out/$name.md"
