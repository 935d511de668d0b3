#!/usr/bin/env bash
# Runs the native test suite (`cargo nextest run --no-fail-fast`, default
# features) N times in a row, to find flaky tests. Not the whole of
# scripts/test.sh: no lints, no TLS, no cross or system-library runs.
#
# Usage: scripts/repeat-suite.sh [N]     N runs (default 5)
#   Prints one line per run and a summary, e.g.
#     5 runs: 4 passed, 1 failed
#   followed by each failing test with the runs it failed in.
#   Exit status: 0 if every run passed, 1 otherwise.
#   Each run's output is kept in target/repeat-suite/run-<i>.log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-5}
case "$n" in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    '' | *[!0-9]* | 0) echo "repeat-suite.sh: N must be a positive number, not '$n'" >&2; exit 2 ;;
esac
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo nextest --version >/dev/null 2>&1 || { echo "repeat-suite.sh: cargo-nextest is missing" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
logs="$target_dir/repeat-suite"
mkdir -p "$logs"
export CARGO_TERM_COLOR=never

# Build once, so every run measures the tests and not the compiler.
echo "== building the test suite"
cargo nextest run --no-run

passed=0 failed=0
declare -A failures=()   # test name -> the runs it failed in
for i in $(seq 1 "$n"); do
    log="$logs/run-$i.log"
    t0=$(date +%s)
    set +e
    cargo nextest run --no-fail-fast >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - t0 ))
    summary=$(grep -E '^ *Summary \[' "$log" | tail -1 | sed 's/^ *//')
    # nextest's status lines: "FAIL [ 1.2s] (3/99) crate::binary test_name"
    # (also TIMEOUT, SIGSEGV, SIGABRT, ...); the later "TRY n" retries are off
    # by default.
    mapfile -t bad < <(grep -E '^ *(FAIL|TIMEOUT|SIG[A-Z]+|ABORT|LEAK-FAIL) +\[' "$log" |
        sed -E 's/^ *[A-Z-]+ +\[[^]]*\] +(\([^)]*\) +)?//' | sort -u)
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "run $i/$n: passed in ${took}s (${summary:-no summary line})"
    else
        failed=$((failed + 1))
        echo "run $i/$n: FAILED (exit $rc) in ${took}s (${summary:-no summary line}; $log)"
        if [ ${#bad[@]} -eq 0 ]; then
            bad=("(no failing test named: the run itself failed, see $log)")
        fi
        for t in "${bad[@]}"; do
            echo "    $t"
            failures[$t]="${failures[$t]:-}${failures[$t]:+, }$i"
        done
    fi
done

echo "$n runs: $passed passed, $failed failed"
if [ ${#failures[@]} -gt 0 ]; then
    echo "failing tests (runs):"
    for t in "${!failures[@]}"; do
        echo "  $t (${failures[$t]})"
    done | sort
fi
[ "$failed" = 0 ]
