#!/usr/bin/env bash
# Runs the side-by-side benchmark (see bench.py and ../BENCHMARKS.md).
#   bench/run.sh            full run (7 rounds, ~15 min on 2 cores): writes BENCHMARKS.md, bench/chart.svg
#   bench/run.sh --smoke    100 messages per case, one round (CI); non-zero exit on any miscount
#   bench/run.sh --help     more options (--runs, --only, --out)
# Needs: cargo, gcc, binutils (strip), mosquitto, python3 (standard library only).
set -euo pipefail
# --out and --report-from paths are relative to where run.sh was started.
export BENCH_CALLER_PWD=$PWD
cd "$(dirname "$0")"
for tool in cargo gcc python3 strip; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
done
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "run.sh: mosquitto is missing (apt-get install mosquitto)" >&2; exit 1; }
exec python3 bench.py "$@"
