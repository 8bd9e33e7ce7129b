#!/usr/bin/env bash
# Installs CyborgDB's own SDKs, which the server's SDK tests drive, into target/ (nothing
# outside it): the Python SDK `cyborgdb==0.18.0` with pytest and numpy in the venv
# target/server-venv, and the JavaScript SDK `cyborgdb@0.14.0` (its npm tarball kept in
# target/cyborgdb-sdk/, installed with @langchain/core, which its bundle requires at load
# but does not declare) under target/server-node/.
#
#   scripts/server_sdks.sh        # idempotent; quick when already installed
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=target/server-venv
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check "cyborgdb==0.18.0" "pytest>=8" "numpy>=1.21"

node_dir=target/server-node
mkdir -p target/cyborgdb-sdk "$node_dir"
tarball=target/cyborgdb-sdk/cyborgdb-0.14.0.tgz
if [ ! -f "$tarball" ]; then
    (cd target/cyborgdb-sdk && npm pack --silent cyborgdb@0.14.0 >/dev/null)
fi
if [ ! -f "$node_dir/package.json" ]; then
    echo '{"name": "ciphervec-server-sdk-tests", "private": true}' > "$node_dir/package.json"
fi
if [ ! -d "$node_dir/node_modules/cyborgdb" ] || [ ! -d "$node_dir/node_modules/@langchain/core" ]; then
    npm install --silent --no-audit --no-fund --prefix "$node_dir" "./$tarball" "@langchain/core@^0.3.78"
fi
"$venv/bin/python" -c "import cyborgdb, numpy, pytest; assert cyborgdb.__version__.startswith('0.18.0'), cyborgdb.__version__" 2>/dev/null \
    || "$venv/bin/python" -c "import importlib.metadata as m; v = m.version('cyborgdb'); assert v == '0.18.0', v"
node -e "require('./$node_dir/node_modules/cyborgdb')"
