#!/usr/bin/env bash
# The Python package's tests: builds a venv under target/ (maturin, pytest, numpy,
# langchain-core, langchain-tests from the package index, pip's downloads cached in
# target/pip-cache), builds the abi3 wheel of python/ with maturin (into the workspace's
# target/, so crates are built once), installs it and runs pytest: our tests, LangChain's
# standard vector-store suite, Haystack's own document-store suites and the LlamaIndex store's
# tests (llama-index-core and haystack-ai are installed too). Then installs the same wheel
# into a second venv holding only numpy and runs python/examples/quickstart.py.
#
#   scripts/test_python.sh            # everything
#   scripts/test_python.sh -k filters # extra arguments go to pytest
#
# When pip cannot reach a package index to install llama-index-core or haystack-ai, their
# tests report themselves skipped with that reason, or the script fails when
# CIPHERVEC_REQUIRE_FRAMEWORKS=1 (as .ci/run sets). Any other install failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyvenv
python=${PYTHON:-python3}
export PIP_CACHE_DIR=$PWD/target/pip-cache PIP_DISABLE_PIP_VERSION_CHECK=1
# `python -m pip`, not bin/pip: a venv copied from another checkout keeps working.
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
pip() { "$venv/bin/python" -m pip "$@"; }
pip install -q "maturin>=1.7,<2" "pytest>=8" "pytest-asyncio>=0.23" "numpy>=1.21" \
    "langchain-core>=1,<2" "langchain-tests>=1,<2"

# The frameworks, at the versions python/pyproject.toml's extras allow (tested with
# llama-index-core 0.14.25 and haystack-ai 3.4.1).
frameworks=("llama-index-core>=0.14,<0.15" "haystack-ai>=3.4,<4")
if ! log=$(pip install -q "${frameworks[@]}" 2>&1); then
    echo "$log" >&2
    # Only an unreachable index is a reason to skip: a probe of the index itself.
    if pip index versions haystack-ai >/dev/null 2>&1; then
        echo "scripts/test_python.sh: installing ${frameworks[*]} failed with the index reachable" >&2
        exit 1
    fi
    if [ "${CIPHERVEC_REQUIRE_FRAMEWORKS:-0}" = 1 ]; then
        echo "scripts/test_python.sh: pip cannot reach a package index, CIPHERVEC_REQUIRE_FRAMEWORKS=1: failing" >&2
        exit 1
    fi
    echo "scripts/test_python.sh: SKIPPING the LlamaIndex and Haystack tests: pip cannot reach a package index" >&2
    export CIPHERVEC_FRAMEWORKS_SKIPPED="pip cannot reach a package index to install ${frameworks[*]}"
fi

rm -rf target/wheels
"$venv/bin/maturin" build --release -q -m python/Cargo.toml --out target/wheels
wheel=$(ls target/wheels/ciphervec-*.whl)
pip install -q --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -m pytest -q -rs python/tests "$@"

# The wheel in a fresh venv with only numpy: the quickstart runs.
fresh=target/pyvenv-fresh
rm -rf "$fresh"
"$python" -m venv "$fresh"
"$fresh/bin/python" -m pip install -q numpy "$wheel"
(cd target && "../$fresh/bin/python" ../python/examples/quickstart.py)
