#!/usr/bin/env bash
# The Node.js package's tests: installs node/'s npm dev dependencies (`npm ci`: @napi-rs/cli,
# TypeScript, @langchain/core, at the versions of node/package-lock.json) through a cache
# under target/npm-cache (so that a second run needs no network), builds the addon with
# `napi build` (into the workspace's target/, so crates are built once) and runs the
# `node --test` suites (test/*.test.js and *.test.mjs: the API against brute force, errors,
# the event loop, worker threads, LangChain.js, ESM, TypeScript declarations, and the
# tarball of `npm pack` installed offline into an empty folder).
#
#   scripts/test_node.sh                        # everything
#   scripts/test_node.sh test/errors.test.js    # some suites (paths relative to node/)
#
# Without Node.js 20+ and npm the tests cannot run: the script says SKIPPED and exits 0, or
# fails when CIPHERVEC_REQUIRE_NODE=1 (as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

skip() {
    echo "scripts/test_node.sh: SKIPPED: $1" >&2
    if [ "${CIPHERVEC_REQUIRE_NODE:-0}" = 1 ]; then
        echo "scripts/test_node.sh: CIPHERVEC_REQUIRE_NODE=1: failing instead" >&2
        exit 1
    fi
    exit 0
}

command -v node >/dev/null || skip "node is not installed (Node.js 20 or later is needed)"
command -v npm >/dev/null || skip "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || skip "node $(node --version) is older than 20"

cd node
npm ci --cache "$root/target/npm-cache" --prefer-offline --no-audit --no-fund --loglevel=error
npm run build
if [ $# -gt 0 ]; then
    node --test --test-concurrency=1 "$@"
else
    npm test
fi
