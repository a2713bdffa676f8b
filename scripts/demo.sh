#!/usr/bin/env bash
# Runs the demo on embedded defaults: a dev chain, the contracts and the
# papers' flows, narrated. Extra arguments go to glyco-demo (see --help).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

./scripts/bootstrap.sh
source scripts/env.sh
cargo build --quiet --locked -p glyco-gateway --bin glyco-hub -p glyco-clinic --bin glyco-clinic
cargo run --quiet --locked -p glyco-tests --bin glyco-demo -- "$@"
