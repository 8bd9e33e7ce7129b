#!/usr/bin/env bash
# Builds the ciphervec wheel and a venv under target/ holding it, numpy and CyborgDB's
# embedded core (closed source, free tier, offline; skipped if it cannot be installed), then
# runs bench/python_bench.py (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pybench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check numpy "maturin>=1.7,<2"
"$venv/bin/python" -c "import cyborgdb_core" 2>/dev/null || \
    "$venv/bin/pip" install -q --disable-pip-version-check cyborgdb-core==0.18.0 || \
    echo "cyborgdb-core not installed: that peer will be skipped" >&2
rm -rf target/wheels
"$venv/bin/maturin" build --release -q -m python/Cargo.toml --out target/wheels
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/ciphervec-*.whl
"$venv/bin/python" bench/python_bench.py "$@"
