#!/usr/bin/env bash
# Runs every test of the project: the contract artifacts against their
# sources, formatting, lints, and the whole workspace's tests (unit,
# integration and end-to-end, against real anvil, broker and D-Bus processes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

./scripts/bootstrap.sh
source scripts/env.sh

echo "== contract artifacts"
node contracts/tools/compile.mjs --check

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
