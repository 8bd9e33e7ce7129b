#!/usr/bin/env bash
# Runs the peer engines (FAISS, hnswlib, usearch, CyborgDB's embedded core) and ciphervec on
# the same TEXMEX dataset on this machine, one thread each, in one go, and writes
#   bench/results/<dataset>.jsonl   one JSON line per engine (the peer harness schema)
#   bench/results/<dataset>.md      the harness's markdown table
#   bench/results/<dataset>.png     recall@10 vs single-thread QPS
# Usage: bench/compare.sh DATASET_DIR [PEERS]   (default peers: all five)
# Sets up the peer venv under target/ if missing (../shared/bench/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd "${1:?usage: bench/compare.sh DATASET_DIR [PEERS]}" && pwd)
peers=${2:-faiss-flat,faiss-ivfflat,hnswlib,usearch,cyborgdb}
name=$(basename "$data")
out=bench/results
mkdir -p "$out" target/bench-tmp
PY=$(../shared/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
rm -f "$out/$name.jsonl"
"$PY" ../shared/bench/bench_peers.py --data "$data" --peers "$peers" --threads 1 \
    --out "$out" --tmp target/bench-tmp --single-time-cap 10 --nprobe 8,16,32,56,64,128
cargo build --release --example ann_bench -q
for mode in "" "--cold"; do
  target/release/examples/ann_bench --data "$data" --threads 1 --probes 8,16,32,56,64,128 $mode \
      >> "$out/$name.jsonl"
done
"$PY" ../shared/bench/bench_peers.py --data "$data" --out "$out" --render-only
"$PY" bench/plot.py "$out/$name.jsonl" "$out/$name.png"
echo "wrote $out/$name.jsonl $out/$name.md $out/$name.png"
