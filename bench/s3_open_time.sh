#!/usr/bin/env bash
# Open time, first-query latency and the ranged requests and bytes they fetch, for an index in
# S3 (moto on loopback, scripts/s3_server.sh) beside the same index in a local folder, in one
# run: examples/open_time against both locations.
#
#   bench/s3_open_time.sh [N] [ROUNDS]      # default 100000 vectors of 128 dims, 3 rounds
#
# moto keeps objects in memory and answers on loopback: its latency is far below a real
# bucket's, so requests per open and per query are the figures that carry over, not times.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
rounds=${2:-3}
trap 'scripts/s3_server.sh stop' EXIT
scripts/s3_server.sh start
source target/s3-server/env
cargo build --release -q --features s3 --example open_time
bin=target/release/examples/open_time
echo "== directory store"
"$bin" --n "$n" --rounds "$rounds"
echo "== S3 (moto)"
"$bin" --n "$n" --rounds "$rounds" --url "s3://ciphervec-test/open-time-$n"
