#!/usr/bin/env bash
# Throughput of `ciphervec serve` through CyborgDB's Python SDK against the same engine
# in-process and (with --service) against CyborgDB's own service, in one run: installs the
# SDKs (scripts/server_sdks.sh), builds the `ciphervec` wheel into the same venv and the
# release binary, with --service installs cyborgdb-service==0.18.0 into
# target/cyborgdb-service-venv (free tier, no licence key), then runs
# bench/server_throughput.py (arguments passed on). Opt-in: not part of the test run.
#
#   bench/server_throughput.sh [--service] [--rounds 5] [--n 50000]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/server_sdks.sh
venv=target/server-venv
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.7,<2"
rm -rf target/wheels-server
"$venv/bin/maturin" build --release -q -m python/Cargo.toml --out target/wheels-server
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels-server/ciphervec-*.whl
cargo build --release -q -p ciphervec-cli
for arg in "$@"; do
    if [ "$arg" = "--service" ]; then
        svc=target/cyborgdb-service-venv
        [ -x "$svc/bin/python" ] || python3 -m venv "$svc"
        "$svc/bin/pip" install -q --disable-pip-version-check "cyborgdb-service==0.18.0"
    fi
done
CIPHERVEC_BIN="$PWD/target/release/ciphervec" "$venv/bin/python" bench/server_throughput.py "$@"
