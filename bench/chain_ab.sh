#!/usr/bin/env bash
# A/B of the history chain's cost (issue 39): examples/commit_cost.rs built at the last
# commit before the chain (format 7, BASE) and at HEAD, run in interleaved rounds; prints
# each round and the median of each figure with the ratio HEAD / BASE.
# Usage: bench/chain_ab.sh [ROUNDS] [COMMITS]   (defaults 5 and 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
commits=${2:-1000}
base=${BASE:-1fd194d}
wt=target/chain-ab-base
if [ ! -d "$wt" ]; then
    git worktree add --detach "$wt" "$base" >/dev/null
fi
cp examples/commit_cost.rs "$wt/examples/"
# One target directory: the two copies of the crate differ by path, the dependencies are
# built once.
(cd "$wt" && CARGO_TARGET_DIR="$PWD/../../target" cargo build --release --example commit_cost -q)
cp target/release/examples/commit_cost target/commit_cost-base
cargo build --release --example commit_cost -q
cp target/release/examples/commit_cost target/commit_cost-head
out=$(mktemp)
for r in $(seq "$rounds"); do
    for side in base head; do
        echo "{\"side\": \"$side\", \"round\": $r, \"result\": $(target/commit_cost-$side "$commits")}" | tee -a "$out"
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for field in ["commit_ms", "open_ms", "check_anchor_ms", "refresh_ms"]:
    med = {s: statistics.median(r["result"][field] for r in rows if r["side"] == s) for s in ("base", "head")}
    print(f"{field:16} base {med['base']:9.3f}  head {med['head']:9.3f}  head/base {med['head'] / med['base']:.3f}")
PY
