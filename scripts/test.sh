#!/usr/bin/env bash
# Runs every test of the project: the contract artifacts against their
# sources, the supply chain (licences, bans, sources) and the declared MSRV,
# formatting, lints, and the whole workspace's tests with every feature
# (unit, property, fuzz-corpus replay, integration and end-to-end, against
# real anvil, broker and D-Bus processes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

./scripts/bootstrap.sh
source scripts/env.sh

echo "== contract artifacts"
node contracts/tools/compile.mjs --check

echo "== supply chain (cargo deny: licences, bans, sources; advisories need the network)"
# cargo-deny reads metadata for every platform (wasm crates too): fetch them.
cargo fetch --locked --quiet
cargo deny --offline check --hide-inclusion-graph licenses bans sources

echo "== minimum Rust version"
./scripts/msrv.sh

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "== systemd units (verify, security exposure, sysusers, tmpfiles)"
./scripts/check-units.sh

echo "== tests"
# The end-to-end tests run other packages' binaries (glyco-clinic beside
# glyco-hub); cargo test builds only the tested package's own, so build
# every binary first, or a stale one from an earlier build would be tested.
cargo build --workspace --all-features --locked --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --no-fail-fast
  cargo test --workspace --all-features --locked --doc
else
  cargo test --workspace --all-features --locked --no-fail-fast
fi
