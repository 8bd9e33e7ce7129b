#!/usr/bin/env bash
# The Python package's tests: builds a venv under target/ (maturin, pytest, numpy,
# langchain-core, langchain-tests from the package index), builds the abi3 wheel of
# python/ with maturin (into the workspace's target/, so crates are built once), installs it
# and runs pytest (our tests and LangChain's standard vector-store suite). Then installs the
# same wheel into a second venv holding only numpy and runs python/examples/quickstart.py.
#
#   scripts/test_python.sh            # everything
#   scripts/test_python.sh -k filters # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyvenv
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check \
    "maturin>=1.7,<2" "pytest>=8" "numpy>=1.21" "langchain-core>=1,<2" "langchain-tests>=1,<2"
rm -rf target/wheels
"$venv/bin/maturin" build --release -q -m python/Cargo.toml --out target/wheels
wheel=$(ls target/wheels/ciphervec-*.whl)
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -m pytest -q python/tests "$@"

# The wheel in a fresh venv with only numpy: the quickstart runs.
fresh=target/pyvenv-fresh
rm -rf "$fresh"
"$python" -m venv "$fresh"
"$fresh/bin/pip" install -q --disable-pip-version-check numpy "$wheel"
(cd target && "../$fresh/bin/python" ../python/examples/quickstart.py)
