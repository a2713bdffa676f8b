#!/usr/bin/env bash
# Checks the workspace's declared minimum Rust version (rust-version in
# Cargo.toml):
#  1. no dependency in the lock file declares a newer one;
#  2. the workspace builds with that version: when the active toolchain is
#     the MSRV, the test run's own build is that check; otherwise the MSRV
#     toolchain must be installed and `cargo check` runs with it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$msrv" ] || { echo "msrv: no rust-version in Cargo.toml" >&2; exit 1; }

cargo metadata --locked --format-version 1 --all-features | python3 -c '
import json, sys
msrv = tuple(int(x) for x in sys.argv[1].split("."))
newer = []
for package in json.load(sys.stdin)["packages"]:
    declared = package.get("rust_version")
    if declared and tuple(int(x) for x in declared.split("."))[: len(msrv)] > msrv:
        newer.append("%s %s needs Rust %s" % (package["name"], package["version"], declared))
if newer:
    print("msrv: dependencies newer than rust-version " + sys.argv[1] + ":", *newer, sep="\n  ", file=sys.stderr)
    sys.exit(1)
' "$msrv"

active=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
if [ "$active" = "$msrv" ]; then
  echo "msrv: Rust $msrv is the active toolchain; the test build checks it"
elif rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  echo "msrv: checking with Rust $msrv (active: $active)"
  cargo "+$msrv" check --workspace --all-targets --all-features --locked
else
  echo "msrv: Rust $msrv is neither active ($active) nor installed; install it with rustup toolchain install $msrv" >&2
  exit 1
fi
