#!/usr/bin/env bash
# The whole test suite: installs what is missing on Debian/Ubuntu (as root),
# then runs formatting, lints, docs, and every test against private Mosquitto
# brokers on 127.0.0.1. `.ci/run` calls this script.
#
# Usage: scripts/test.sh            everything
#        SKIP_INSTALL=1 scripts/test.sh   do not call apt-get / rustup / cargo install
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)

step() { printf '\n\033[1m== %s (%ss)\033[0m\n' "$*" "$(( $(date +%s) - start ))"; }
die() { echo "test.sh: $*" >&2; exit 1; }
# The broker binary tests/common/broker.rs runs.
MOSQUITTO_BIN=/usr/sbin/mosquitto

# ---------------------------------------------------------------- installing
# What the steps below need, each checked by using it (scripts/lib.sh).
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step "what this machine needs"
need "gcc libc6-dev" "a C compiler that builds and runs a program (cc)" probe_cc cc
need python3 "python3 (scripts/check-safety.py, the other scripts)" probe_python3
need mosquitto "Mosquitto starts on 127.0.0.1 (the tests run $MOSQUITTO_BIN)" probe_mosquitto "$MOSQUITTO_BIN"
need mosquitto "mosquitto_passwd writes a password file (test brokers with users)" probe_mosquitto_passwd
need openssl "the openssl command makes a certificate (tests/tls.rs)" probe_openssl_cli
need valgrind "valgrind runs a program (the hostile-broker tests' memory check)" valgrind -q --error-exitcode=9 true
need "libssl-dev pkg-config" "OpenSSL found by pkg-config builds into a program (feature ssl)" probe_openssl_dev cc
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    need "curl ca-certificates" "curl fetches over HTTPS (to install Rust with rustup)" probe_curl
install_needs

if ! command -v cargo >/dev/null 2>&1; then
    [ -n "${SKIP_INSTALL:-}" ] && die "cargo not found"
    step "installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
for component in clippy rustfmt; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        [ -n "${SKIP_INSTALL:-}" ] && die "cargo $component not found"
        command -v rustup >/dev/null 2>&1 || die "cargo $component not found and no rustup to add it"
        step "rustup component add $component"
        rustup component add "$component"
    fi
done
cargo nextest --version >/dev/null 2>&1 || {
    [ -n "${SKIP_INSTALL:-}" ] && die "cargo-nextest not found"
    step "cargo install cargo-nextest"
    cargo install --locked cargo-nextest
}
# CMake only if this build still runs it (the `cmake` crate in the tree).
for features in "" "--features ssl"; do
    # shellcheck disable=SC2086  # features are words
    if build_uses_cmake $features; then
        need "cmake make" "cmake builds a C project (the cmake crate${features:+, $features})" probe_cmake cc
        break
    fi
done
install_needs
cargo --version
"$MOSQUITTO_BIN" -h 2>/dev/null | head -1 || true

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUSTFLAGS=${RUSTFLAGS:-}
export RUSTDOCFLAGS="-D warnings"

# ---------------------------------------------------------------- checks
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (default features, and ssl)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features ssl -- -D warnings

step "every unsafe block has a SAFETY comment"
python3 scripts/check-safety.py

step "cargo doc"
cargo doc --no-deps --features ssl

step "committed bindings are what paho-mqtt-c/regenerate.sh makes"
# Running bindgen is the libclang check (see probe_bindgen in scripts/lib.sh):
# if it fails, libclang-dev is installed and it runs again.
need libclang-dev "bindgen loads libclang and parses the Paho C headers (paho-mqtt-c/regenerate.sh)" \
    probe_bindgen x86_64-unknown-linux-gnu
install_needs
git diff --exit-code -- paho-mqtt-c/bindings/ || die "paho-mqtt-c/bindings/ differ from a fresh bindgen run"

# ---------------------------------------------------------------- tests
step "unit and integration tests (bundled Paho C 1.3.16, cargo nextest)"
cargo nextest run --no-fail-fast
step "doc tests"
cargo test --doc

step "TLS tests (feature ssl)"
cargo nextest run --features ssl --no-fail-fast --lib --test tls

# The fake-broker cases reach the C library's packet handling: run them again
# under valgrind, so a read past a buffer or a use after free fails even when
# it happens not to crash. (stray_acks_do_not_leak measures resident memory,
# which valgrind inflates; it runs natively above.)
step "hostile-broker tests under valgrind (tests/hostile.rs)"
hostile_bin=$(cargo test --no-run --test hostile --message-format json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hostile" and m.get("executable"):
        print(m["executable"])')
[ -n "$hostile_bin" ] || die "cannot find the hostile test binary"
valgrind -q --error-exitcode=99 --trace-children=yes "$hostile_bin" --test-threads=2 --skip stray_acks_do_not_leak

# ---------------------------------------------------------------- issue 4: layouts, system library, ARM
# Each script installs what it needs (unless SKIP_INSTALL) and fails loudly.
step "layout check: Rust bindings = C compiler (scripts/layout-check.sh)"
scripts/layout-check.sh

step "system library: the suite against Debian's libpaho-mqtt-dev (scripts/system-lib-test.sh)"
scripts/system-lib-test.sh x86_64

step "armv7 under qemu-user (scripts/cross-test.sh)"
scripts/cross-test.sh armv7-unknown-linux-gnueabihf

step "aarch64 under qemu-user (scripts/cross-test.sh)"
scripts/cross-test.sh aarch64-unknown-linux-gnu

step "system library on armv7: Debian's armhf Paho C in a sysroot, under qemu (scripts/system-lib-test.sh)"
scripts/system-lib-test.sh armv7

# ---------------------------------------------------------------- issue 3 and 5: demo, benchmark
step "the README's demo command (scripts/demo.sh)"
scripts/demo.sh

step "benchmark harness: build + smoke run (bench/run.sh --smoke)"
bench/run.sh --smoke

step "all passed in $(( $(date +%s) - start ))s"
