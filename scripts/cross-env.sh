# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are for the sourcing scripts
# Sourced by scripts/cross-test.sh, scripts/layout-check.sh and
# scripts/system-lib-test.sh: what each supported target needs on a Debian
# PC, and the qemu-user runner that makes `cargo test --target ...` work.
#
#   cross_target <name>   sets TARGET (the Rust triple) from a triple or a
#                         short name (armv7, aarch64, x86_64, host), and
#                         GNU_TRIPLE, DEB_ARCH, CROSS_CC, QEMU, SYSROOT, NATIVE
#   cross_runner          exports CARGO_TARGET_<TRIPLE>_RUNNER (qemu-user) for
#                         a foreign target, unless the caller set one already
#   cross_install <name>  installs what building for and testing on an ARM
#                         target needs (Debian packages as root, Rust with
#                         rustup, the Rust target, cargo-nextest), then calls
#                         cross_target; fails loudly if it cannot. Each need
#                         is checked by using it (scripts/lib.sh).

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST_TRIPLE=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)

cross_target() {
    case "$1" in
        armv7 | arm | armhf | armv7-unknown-linux-gnueabihf)
            TARGET=armv7-unknown-linux-gnueabihf GNU_TRIPLE=arm-linux-gnueabihf
            DEB_ARCH=armhf QEMU=qemu-arm-static ;;
        aarch64 | arm64 | aarch64-unknown-linux-gnu)
            TARGET=aarch64-unknown-linux-gnu GNU_TRIPLE=aarch64-linux-gnu
            DEB_ARCH=arm64 QEMU=qemu-aarch64-static ;;
        armv7-unknown-linux-musleabihf | armv7-musl)
            # Static musl, built with zig and a from-source std (nightly):
            # scripts/board-env.sh. No sysroot: qemu runs it as it is.
            TARGET=armv7-unknown-linux-musleabihf GNU_TRIPLE=arm-linux-gnueabihf
            DEB_ARCH=armhf QEMU=qemu-arm-static ;;
        x86_64 | amd64 | x86_64-unknown-linux-gnu)
            TARGET=x86_64-unknown-linux-gnu GNU_TRIPLE=x86_64-linux-gnu
            DEB_ARCH=amd64 QEMU=qemu-x86_64-static ;;
        host | "")
            [ -n "$HOST_TRIPLE" ] || { echo "cannot ask rustc for the host triple" >&2; return 1; }
            cross_target "$HOST_TRIPLE"
            return ;;
        *)
            echo "unsupported target '$1' (supported: armv7-unknown-linux-gnueabihf," \
                "aarch64-unknown-linux-gnu, x86_64-unknown-linux-gnu, armv7-unknown-linux-musleabihf)" >&2
            return 1 ;;
    esac
    TARGET_VAR=${TARGET//-/_}          # armv7_unknown_linux_gnueabihf
    TARGET_VAR_UC=${TARGET_VAR^^}      # ARMV7_UNKNOWN_LINUX_GNUEABIHF
    # The C compiler the cc/cmake crates use for this target: CC_<triple>,
    # else TARGET_CC when cross, else cc / the Debian cross gcc.
    local cc_var="CC_$TARGET_VAR"
    if [[ $TARGET == *-musl* ]]; then
        # zig's cc for the target, and the build environment around it
        # (exported: CC_<target>, the linker, the nightly toolchain, build-std).
        # shellcheck source=scripts/board-env.sh
        . "$(dirname "${BASH_SOURCE[0]}")/board-env.sh"
        [ -n "${!cc_var:-}" ] || board_env "$TARGET"
        NATIVE=
        CROSS_CC=${!cc_var}
        SYSROOT=
        QEMU_SYSROOT=${QEMU_LD_PREFIX:-}
        return 0
    fi
    if [ "$TARGET" = "$HOST_TRIPLE" ]; then
        NATIVE=1
        CROSS_CC=${!cc_var:-cc}
        SYSROOT=/
    else
        NATIVE=
        CROSS_CC=${!cc_var:-${TARGET_CC:-$GNU_TRIPLE-gcc}}
        # Debian's libc6-dev-<arch>-cross: the target's libc and dynamic loader.
        SYSROOT=/usr/$GNU_TRIPLE
    fi
    # The sysroot qemu-user loads the target's ld.so and libc from.
    QEMU_SYSROOT=${QEMU_LD_PREFIX:-$SYSROOT}
}

cross_runner() {
    [ -n "$NATIVE" ] && return 0
    local var="CARGO_TARGET_${TARGET_VAR_UC}_RUNNER"
    if [ -z "${!var:-}" ]; then
        # (A static musl program needs no sysroot.)
        export "$var=$QEMU${QEMU_SYSROOT:+ -L $QEMU_SYSROOT}"
    fi
    RUNNER_VAR=$var
    # qemu-user passes the host's 64-bit directory offsets (getdents64) to a
    # 32-bit guest; ext4's hash offsets then overflow the guest's 32-bit
    # readdir (EOVERFLOW), and Paho C's file persistence finds an empty
    # directory (tests/persistence.rs fails). A real 32-bit kernel, or a 64-bit
    # kernel's compat path on a board, gives 32-bit offsets. tmpfs offsets are
    # small, so the 32-bit guests' temp files (brokers, persistence) go there.
    if [ "$DEB_ARCH" = armhf ] && [ -z "${CROSS_KEEP_TMPDIR:-}" ] &&
        [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
        export TMPDIR=/dev/shm/paho-mqtt-sync-tests
        mkdir -p "$TMPDIR"
        echo "TMPDIR      $TMPDIR (tmpfs: see scripts/cross-env.sh, cross_runner)"
    fi
}

# Runs a target binary: directly when native, under qemu-user otherwise.
cross_exec() {
    if [ -n "$NATIVE" ]; then
        "$@"
    elif [ -n "$QEMU_SYSROOT" ]; then
        "$QEMU" -L "$QEMU_SYSROOT" "$@"
    else
        "$QEMU" "$@"
    fi
}

# The Paho C 1.3.16 headers inside the paho-mqtt-sys package Cargo
# downloaded (what the `bundled` build compiles).
bundled_paho_headers() {
    local manifest
    manifest=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "paho-mqtt-sys":
        print(p["manifest_path"])') || true
    if [ -z "$manifest" ]; then
        echo "paho-mqtt-sys not found by cargo metadata (run cargo fetch?)" >&2
        return 1
    fi
    echo "$(dirname "$manifest")/paho.mqtt.c/src"
}

# Loud, unmissable failure banner; exits non-zero.
cross_die() {
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!! $(basename "$0") FAILED${TARGET:+ for $TARGET}:"
        printf '!!   %s\n' "$@"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 1
}

cross_install() {
    local gnu deb qemu
    case "$1" in
        armv7-unknown-linux-musleabihf | armv7-musl)
            # zig, qemu-user, the nightly toolchain with rust-src
            # (scripts/board-env.sh); arm binutils to strip; mosquitto.
            # shellcheck source=scripts/board-env.sh
            . "$(dirname "${BASH_SOURCE[0]}")/board-env.sh"
            board_install armv7-unknown-linux-musleabihf
            p=()
            arm-linux-gnueabihf-strip --version >/dev/null 2>&1 || p+=(binutils-arm-linux-gnueabihf)
            [ -x /usr/sbin/mosquitto ] || p+=(mosquitto)
            command -v mosquitto_passwd >/dev/null 2>&1 || p+=(mosquitto)
            command -v mosquitto_sub >/dev/null 2>&1 || p+=(mosquitto-clients)
            [ ${#p[@]} -eq 0 ] || _board_apt "${p[@]}"
            HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
            cross_target "$1" || exit 2
            if ! cargo nextest --version >/dev/null 2>&1; then
                [ -z "${SKIP_INSTALL:-}" ] || cross_die "cargo-nextest not found (SKIP_INSTALL is set)"
                cargo install --locked cargo-nextest || cross_die "cargo install cargo-nextest failed"
            fi
            return 0 ;;
        armv7* | arm | armhf) gnu=arm-linux-gnueabihf deb=armhf qemu=qemu-arm-static ;;
        aarch64* | arm64) gnu=aarch64-linux-gnu deb=arm64 qemu=qemu-aarch64-static ;;
        *) cross_die "unsupported target '$1' (armv7-unknown-linux-gnueabihf or aarch64-unknown-linux-gnu)" ;;
    esac
    # Each need is checked by using it (scripts/lib.sh).
    need "gcc-$gnu libc6-dev-$deb-cross" "$gnu-gcc builds a program for $deb" probe_cross_cc "$gnu-gcc"
    need qemu-user-static "$qemu runs that program (-L /usr/$gnu)" probe_qemu "$gnu-gcc" "$qemu" "/usr/$gnu"
    need "gcc libc6-dev" "a C compiler for the PC builds and runs a program (build scripts)" probe_cc cc
    need mosquitto "Mosquitto starts on 127.0.0.1 (the tests run /usr/sbin/mosquitto)" probe_mosquitto /usr/sbin/mosquitto
    need mosquitto "mosquitto_passwd writes a password file (test brokers with users)" probe_mosquitto_passwd
    need python3 "python3 (cargo metadata parsing)" probe_python3
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        need "curl ca-certificates" "curl fetches over HTTPS (to install Rust with rustup)" probe_curl
    install_needs

    if ! command -v cargo >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || cross_die "cargo not found (SKIP_INSTALL is set)"
        echo "installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal ||
            cross_die "rustup installation failed"
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
    cross_target "$1" || exit 2
    if ! probe_rust_std "$TARGET" >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || cross_die "the Rust standard library for $TARGET is missing (SKIP_INSTALL is set)"
        command -v rustup >/dev/null 2>&1 ||
            cross_die "the Rust standard library for $TARGET is missing and rustup is not there to add it"
        echo "rustup target add $TARGET"
        rustup target add "$TARGET" || cross_die "rustup target add $TARGET failed"
        probe_rust_std "$TARGET" ||
            cross_die "rustup target add $TARGET ran, but rustc still cannot use std for $TARGET"
    fi
    if ! cargo nextest --version >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || cross_die "cargo-nextest not found (SKIP_INSTALL is set)"
        echo "cargo install cargo-nextest"
        cargo install --locked cargo-nextest || cross_die "cargo install cargo-nextest failed"
    fi
    # CMake only if the build for the target still runs it (the `cmake`
    # crate in the tree); it then also builds Paho C with the cross gcc.
    if build_uses_cmake --target "$TARGET"; then
        need "cmake make" "cmake builds a C project with $CROSS_CC (the cmake crate)" probe_cmake "$CROSS_CC"
        install_needs
    fi
}
