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

HOST_TRIPLE=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)

cross_target() {
    case "$1" in
        armv7 | arm | armhf | armv7-unknown-linux-gnueabihf)
            TARGET=armv7-unknown-linux-gnueabihf GNU_TRIPLE=arm-linux-gnueabihf
            DEB_ARCH=armhf QEMU=qemu-arm-static ;;
        aarch64 | arm64 | aarch64-unknown-linux-gnu)
            TARGET=aarch64-unknown-linux-gnu GNU_TRIPLE=aarch64-linux-gnu
            DEB_ARCH=arm64 QEMU=qemu-aarch64-static ;;
        x86_64 | amd64 | x86_64-unknown-linux-gnu)
            TARGET=x86_64-unknown-linux-gnu GNU_TRIPLE=x86_64-linux-gnu
            DEB_ARCH=amd64 QEMU=qemu-x86_64-static ;;
        host | "")
            [ -n "$HOST_TRIPLE" ] || { echo "cannot ask rustc for the host triple" >&2; return 1; }
            cross_target "$HOST_TRIPLE"
            return ;;
        *)
            echo "unsupported target '$1' (supported: armv7-unknown-linux-gnueabihf," \
                "aarch64-unknown-linux-gnu, x86_64-unknown-linux-gnu)" >&2
            return 1 ;;
    esac
    TARGET_VAR=${TARGET//-/_}          # armv7_unknown_linux_gnueabihf
    TARGET_VAR_UC=${TARGET_VAR^^}      # ARMV7_UNKNOWN_LINUX_GNUEABIHF
    # The C compiler the cc/cmake crates use for this target: CC_<triple>,
    # else TARGET_CC when cross, else cc / the Debian cross gcc.
    local cc_var="CC_$TARGET_VAR"
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
        export "$var=$QEMU -L $QEMU_SYSROOT"
    fi
    RUNNER_VAR=$var
}

# Runs a target binary: directly when native, under qemu-user otherwise.
cross_exec() {
    if [ -n "$NATIVE" ]; then "$@"; else "$QEMU" -L "$QEMU_SYSROOT" "$@"; fi
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
