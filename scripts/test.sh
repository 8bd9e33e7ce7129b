#!/usr/bin/env bash
# The test command of the README: the Rust tests of the workspace's default members (core,
# CLI and server), then the Python package's (scripts/test_python.sh: venv under target/,
# wheel, pytest, LangChain's standard suite, the quickstart in a numpy-only venv), then the
# Node.js package's (scripts/test_node.sh: npm ci through a cache under target/, napi build,
# node --test; SKIPPED without Node.js 20+), then the server's through CyborgDB's own Python
# and JavaScript SDKs (scripts/test_server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release
scripts/test_python.sh
scripts/test_node.sh
scripts/test_server.sh
