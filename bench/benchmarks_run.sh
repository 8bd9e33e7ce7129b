#!/usr/bin/env bash
# Regenerates docs/BENCHMARKS.md's interleaved tables from today's code in one session: the
# interleaved rounds (bench/interleaved.py: one query per call and all queries in one call,
# one thread, every engine in every round) on both data sets, the sentence embeddings of
# ../shared/data/wordnet-minilm-50k and a synthetic Gaussian mixture (100k x 128, made here
# by ../shared/bench/make_datasets.py with its default seed), then the document. Never in CI
# (about an hour on this machine).
# Usage: bench/benchmarks_run.sh [ROUNDS]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
shared=${CIPHERVEC_SHARED:-../shared}
PY=$("$shared"/bench/setup.sh "$PWD/target/peers-venv" | tail -n 1)
synth=target/synth128
if [ ! -f "$synth/groundtruth.ivecs" ]; then
    "$PY" "$shared"/bench/make_datasets.py synth --out "$synth" --n 100000 --nq 1000 --d 128
    "$PY" "$shared"/bench/make_datasets.py gt --out "$synth" --k 100 --l2-only
fi
bench/interleaved.sh "$shared"/data/wordnet-minilm-50k "$rounds"
# synth128's settings, from a sweep of both engines on it: ciphervec pq:32 reaches recall@10
# 0.95 at 3 probes with a re-rank of 5; FAISS fast-scan at (nprobe, k_factor) (4, 5) and (3, 8).
INTERLEAVED_CONFIGS='[["pq:32",3,5,null,null],["pq:32",3,5,0,null],["pq:32:8",3,5,0,null],["pq:32",4,5,0,null]]' \
FASTSCAN_SETTINGS='[[3,5],[4,5],[3,8],[4,3],[6,3]]' \
    bench/interleaved.sh "$synth" "$rounds"
date -u +"%Y-%m-%d %H:%M UTC, $(git rev-parse --short HEAD)" > bench/results/interleaved.date
python3 bench/benchmarks_doc.py > docs/BENCHMARKS.md
