#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60). Installs cargo-fuzz if missing; uses
# nightly with AddressSanitizer when a nightly toolchain is present, else stable with `-s none`.
# Seeds come from fuzz/seeds/<target>; new corpus entries go to fuzz/corpus/<target> (not
# committed); crashes land in fuzz/artifacts/<target>: minimize them into
# tests/data/fuzz/<target>/, where `cargo test` replays them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly); sanitizer=address
else
  toolchain=(); sanitizer=none
fi
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v ciphervec-fuzz)
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  echo "== $t ($seconds s, sanitizer $sanitizer)"
  cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 2>&1 | tail -n 4
done
