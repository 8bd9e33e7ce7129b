#!/usr/bin/env bash
# Import throughput of the `ciphervec` command against `upsert` from Rust, interleaved in one
# run: each round times `examples/upsert_rate` (vectors already in memory), `ciphervec import`
# of the .fvecs file, and of the same rows as JSONL, on fresh database folders.
#
#   bench/cli_import.sh [DATA_DIR] [ROUNDS] [REPEAT]
#
# defaults ../shared/data/wordnet-minilm-50k, 5 rounds, and the base vectors repeated 4 times
# (200k rows, as the kill-and-resume test): an import overlaps parsing the next batch with
# the upsert of this one, so the first batch's parse is not overlapped, and at 50k rows (five
# batches) that start-up is a fifth of the parsing.
#
# DB_ROOT=/dev/shm/x puts the databases there (memory): the disk's write-back, which makes
# every rate here vary by up to 2x between runs on a shared machine, then drops out and the
# ratios compare CPU work alone.
#
# Prints each round and the median ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wordnet-minilm-50k}
rounds=${2:-5}
repeat=${3:-4}
work=target/cli-import-bench
rm -rf "$work" && mkdir -p "$work"
db_root=${DB_ROOT:-$work}
mkdir -p "$db_root"
for _ in $(seq 1 "$repeat"); do cat "$data/base.fvecs"; done > "$work/base.fvecs"
cargo build --release -q -p ciphervec-cli
cargo build --release -q --example upsert_rate
bin=target/release/ciphervec
"$bin" keygen -o "$work/key.txt" >/dev/null
# The JSONL input: the same rows as the command's own `export` writes them (f32 text).
"$bin" create "$work/db-src" rate --dim 384 --key-file "$work/key.txt" >/dev/null
"$bin" import "$work/db-src" rate "$work/base.fvecs" --key-file "$work/key.txt" >/dev/null
"$bin" export "$work/db-src" rate --out "$work/items.jsonl" --key-file "$work/key.txt" >/dev/null
rows=$(wc -l < "$work/items.jsonl")
# Each timed run starts after `sync`, so that no run pays for writing back another's pages.
elapsed() { sync; local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
for r in $(seq 1 "$rounds"); do
    rm -rf "$db_root/db-rust" "$db_root/db-f" "$db_root/db-j"
    sync
    rust=$(target/release/examples/upsert_rate "$work/base.fvecs" "$db_root/db-rust" 10000)
    "$bin" create "$db_root/db-f" rate --dim 384 --key-file "$work/key.txt" >/dev/null
    t_fvecs=$(elapsed "$bin" import "$db_root/db-f" rate "$work/base.fvecs" --batch 10000 --key-file "$work/key.txt")
    "$bin" create "$db_root/db-j" rate --dim 384 --key-file "$work/key.txt" >/dev/null
    t_jsonl=$(elapsed "$bin" import "$db_root/db-j" rate "$work/items.jsonl" --batch 10000 --key-file "$work/key.txt")
    echo "$rows $rust $t_fvecs $t_jsonl" >> "$work/rounds.txt"
    python3 -c "
rows, rust, tf, tj = $rows, $rust, $t_fvecs, $t_jsonl
print(f'round $r: upsert {rust:,.0f}/s; import fvecs {rows/tf:,.0f}/s ({rows/tf/rust:.2f}x), jsonl {rows/tj:,.0f}/s ({rows/tj/rust:.2f}x)')"
done
python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
rounds = [list(map(float, l.split())) for l in open(sys.argv[1])]
fv = statistics.median(r[0] / r[2] / r[1] for r in rounds)
js = statistics.median(r[0] / r[3] / r[1] for r in rounds)
print(f"median over {len(rounds)} rounds: import fvecs {fv:.2f}x, jsonl {js:.2f}x of upsert from Rust")
PY
