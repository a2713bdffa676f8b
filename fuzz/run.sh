#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads device or network bytes.
#
#   fuzz/run.sh [RUNS] [TARGET...]     RUNS per target, default 10,000,000
#
# Needs the nightly toolchain and cargo-fuzz 0.13.2 (docs/FUZZING.md). It
# seeds the corpus (seeds.py), runs each target, minimises
# the corpus (cmin) and prints one line of figures per target. The corpus
# under fuzz/corpus/ is committed; the test suite replays it on stable
# (fuzz-targets/tests/corpus.rs). A crash leaves its input in
# fuzz/artifacts/<target>/ and stops the script.
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-10000000}
shift || true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/glyco/fuzz-target}
# The parsers are safe Rust (forbid(unsafe_code)), so the sanitizer would
# only slow them down; libFuzzer still catches panics, overflows (debug
# assertions on) and runaway memory or time.
fuzz=(cargo +nightly fuzz)
flags=(--sanitizer none --release --debug-assertions)

mapfile -t all < <("${fuzz[@]}" list)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

python3 seeds.py
"${fuzz[@]}" build "${flags[@]}"
mkdir -p logs
printf '| target | runs | seconds | execs/s | coverage (edges) | corpus after cmin |\n|---|---:|---:|---:|---:|---:|\n' > logs/summary.md
for target in "${targets[@]}"; do
    case $target in
        mqtt_stream) max_len=8192 ;;
        wire_reading) max_len=4200 ;;
        *) max_len=512 ;; # an ATT value is at most 512 bytes
    esac
    start=$(date +%s)
    "${fuzz[@]}" run "${flags[@]}" "$target" "corpus/$target" -- \
        -runs="$runs" -max_len="$max_len" -timeout=5 -rss_limit_mb=1024 \
        -print_final_stats=1 > "logs/$target.log" 2>&1 || {
        tail -30 "logs/$target.log"
        echo "fuzz/run.sh: $target failed; its input is in fuzz/artifacts/$target/" >&2
        exit 1
    }
    seconds=$(( $(date +%s) - start ))
    "${fuzz[@]}" cmin "${flags[@]}" "$target" "corpus/$target" > "logs/$target.cmin.log" 2>&1
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$target.log")
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$target.log")
    edges=$(grep -o 'cov: [0-9]*' "logs/$target.log" | tail -1 | cut -d' ' -f2)
    kept=$(find "corpus/$target" -type f | wc -l)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$executed" "$seconds" "$rate" "$edges" "$kept" | tee -a logs/summary.md
done
echo "figures in fuzz/logs/summary.md"
