#!/usr/bin/env bash
# Runs the side-by-side benchmark (see bench.py and ../BENCHMARKS.md).
#   bench/run.sh            full run (7 rounds, ~15 min on 2 cores): writes BENCHMARKS.md, bench/chart.svg;
#                           then the armv7 board binaries (../scripts/tiny-size.sh: zig, a
#                           nightly toolchain; installed as root; --no-board-sizes leaves it out)
#   bench/run.sh --smoke    100 messages per case, one round (CI); non-zero exit on any miscount
#   bench/run.sh --help     more options (--runs, --only, --out)
# Needs: cargo, gcc, binutils (strip), mosquitto, python3 (standard library
# only), and cmake while the benchmark's Paho crates build Paho C with it.
# Each is checked by using it (../scripts/lib.sh); on Debian/Ubuntu, as root,
# missing packages are installed (SKIP_INSTALL=1: never).
set -euo pipefail
# --out and --report-from paths are relative to where run.sh was started.
export BENCH_CALLER_PWD=$PWD
cd "$(dirname "$0")"
for a in "$@"; do
    case "$a" in -h | --help) exec python3 bench.py "$@" ;; esac
done
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "run.sh: cargo is missing (install Rust with rustup)" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. ../scripts/lib.sh
echo "== what the benchmark needs"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
need "gcc libc6-dev" "gcc builds and runs a program (the C clients)" probe_cc gcc
need binutils "strip strips a program (size comparison)" probe_strip gcc
need python3 "python3 with the modules bench.py uses" probe_python3
need mosquitto "Mosquitto starts on 127.0.0.1 ($mosquitto_bin)" probe_mosquitto "$mosquitto_bin"
# paho-mqtt (paho-mqtt-sys) builds Paho C with CMake; bench.py reads its
# CMakeCache.txt.
if build_uses_cmake --manifest-path Cargo.toml; then
    need "cmake make" "cmake builds a C project (the cmake crate)" probe_cmake gcc
fi
install_needs
exec python3 bench.py "$@"
