#!/usr/bin/env bash
# Differential test of `ciphervec serve` against CyborgDB's own service (opt-in, not part of
# the test run): installs cyborgdb-service==0.18.0 into target/cyborgdb-service-venv (free
# tier, no licence key), builds the release binary, then runs bench/server_vs_cyborgdb.py,
# which starts both on loopback and sends them the same calls. Exit 1 on a difference that
# server/WIRE.md does not document.
set -euo pipefail
cd "$(dirname "$0")/.."
svc=target/cyborgdb-service-venv
[ -x "$svc/bin/python" ] || python3 -m venv "$svc"
"$svc/bin/pip" install -q --disable-pip-version-check "cyborgdb-service==0.18.0"
cargo build --release -q -p ciphervec-cli
CIPHERVEC_BIN="$PWD/target/release/ciphervec" python3 bench/server_vs_cyborgdb.py "$@"
