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

# ---------------------------------------------------------------- installing
need_apt=()
want() { # want <command-or-file> <debian package>
    if [[ $1 == /* ]]; then [ -e "$1" ] || need_apt+=("$2"); else command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); fi
}
want cmake cmake
want mosquitto mosquitto
want /usr/sbin/mosquitto mosquitto
want mosquitto_sub mosquitto-clients
want mosquitto_passwd mosquitto
want cc gcc
want pkg-config pkg-config
want openssl openssl
want /usr/include/openssl/ssl.h libssl-dev
want /usr/include/MQTTClient.h libpaho-mqtt-dev
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || need_apt+=(libclang-dev)
want python3 python3

if [ ${#need_apt[@]} -gt 0 ]; then
    if [ -n "${SKIP_INSTALL:-}" ]; then die "missing packages: ${need_apt[*]}"; fi
    [ "$(id -u)" = 0 ] || die "missing packages (${need_apt[*]}): run as root or install them"
    step "apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ -n "${SKIP_INSTALL:-}" ] && die "cargo not found"
    step "installing Rust with rustup"
    command -v curl >/dev/null || apt-get install -y -qq curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
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
command -v cargo-nextest >/dev/null 2>&1 || {
    [ -n "${SKIP_INSTALL:-}" ] && die "cargo-nextest not found"
    step "cargo install cargo-nextest"
    cargo install --locked cargo-nextest
}
cargo --version
mosquitto -h 2>/dev/null | head -1 || true

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
paho-mqtt-c/regenerate.sh x86_64-unknown-linux-gnu >/dev/null
git diff --exit-code -- paho-mqtt-c/bindings/ || die "paho-mqtt-c/bindings/ differ from a fresh bindgen run"

# ---------------------------------------------------------------- tests
step "unit and integration tests (bundled Paho C 1.3.16, cargo nextest)"
cargo nextest run --no-fail-fast
step "doc tests"
cargo test --doc

step "TLS tests (feature ssl)"
cargo nextest run --features ssl --no-fail-fast --lib --test tls

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

# ---------------------------------------------------------------- issue 8: board binaries, deployment
# Each installs what it needs (zig and cargo-zigbuild from PyPI, qemu, the
# nightly toolchain with rust-src for armv7 musl, busybox, systemd-analyze).
step "board binaries: 3 static musl + 2 glibc-2.17 builds, checked and driven by tests/demo.rs under qemu; static TLS build (scripts/board-test.sh)"
scripts/board-test.sh

step "armv7 musl under qemu-user, no sysroot (scripts/cross-test.sh armv7-unknown-linux-musleabihf)"
scripts/cross-test.sh armv7-unknown-linux-musleabihf

step "deployment: systemd unit (systemd-analyze verify), BusyBox init script (scripts/deploy-test.sh)"
scripts/deploy-test.sh

# ---------------------------------------------------------------- issue 3 and 5: demo, benchmark
step "the README's demo command (scripts/demo.sh)"
scripts/demo.sh

step "benchmark harness: build + smoke run (bench/run.sh --smoke)"
bench/run.sh --smoke

step "all passed in $(( $(date +%s) - start ))s"
