# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are for the sourcing scripts
# Sourced by scripts/build-board.sh, scripts/board-test.sh and (for the musl
# targets) scripts/cross-env.sh: the board builds, which run on the boards
# people own whatever their C library:
#
#   musl, fully static (no NEEDED entries, no ELF interpreter):
#     armv7-unknown-linux-musleabihf  aarch64-unknown-linux-musl  x86_64-unknown-linux-musl
#   glibc, dynamic, needing no symbol version newer than GLIBC_2.17:
#     armv7-unknown-linux-gnueabihf   aarch64-unknown-linux-gnu
#
# The C compiler and linker for all five is zig's clang (`zig cc`, from the
# PyPI package ziglang), called through cargo-zigbuild's `zig cc` wrapper
# (PyPI package cargo-zigbuild), which turns rustc's linker arguments into
# what zig understands. zig carries musl's sources and the glibc symbol
# tables of every release: `-target arm-linux-musleabihf` links musl in
# statically, `-target arm-linux-gnueabihf.2.17` links against glibc 2.17's
# symbol versions, whatever the PC's glibc is. Nothing here changes a plain
# `cargo build --target ...`: it only sets environment variables (CC_<target>,
# AR_<target>, CARGO_TARGET_<TARGET>_LINKER, ...) for the commands the
# sourcing script runs.
#
# armv7-unknown-linux-musleabihf has no prebuilt standard library that rustup
# can install here, so its std is compiled from source: the nightly
# toolchain with its rust-src component and Cargo's -Zbuild-std
# (CARGO_UNSTABLE_BUILD_STD), linked against zig's musl
# (-C link-self-contained=no: rustc's own musl start files and libc.a come
# with the prebuilt std only).
#
#   board_target <triple>   sets BOARD_* for a board target (below); fails on others
#   board_install <triple>  installs what building (and running under qemu)
#                           needs: Debian packages as root, ziglang and
#                           cargo-zigbuild from PyPI into a venv, the Rust target
#                           or the nightly toolchain with rust-src
#   board_env <triple>      exports the build environment for that target
#   board_check <triple> <binary>
#                           fails unless the binary is for the target's machine
#                           and is static (musl) or needs at most GLIBC_2.17
#
# With BOARD_TINY=1 in the environment (scripts/build-board.sh --tiny), every
# function above prepares the smallest build instead, for any board target:
# the pinned nightly compiles std from source for it (-Zbuild-std, as for
# armv7 musl) with panics that abort at once (BOARD_TINY_RUSTFLAGS below: no
# panic message, no hook, so no formatting and backtrace code from std), and
# the armv7 targets get Thumb-2 code, Rust and C alike (every ARMv7-A core
# runs it, and it is smaller than ARM code), and nothing has unwind tables.
# Nightly-only: the flags are
# unstable and their spelling has changed before (README, "The small binary").
#
# Variables set by board_target:
#   BOARD_TARGET   the Rust triple          BOARD_LIBC     musl | glibc
#   BOARD_ZIG      zig's -target            BOARD_MCPU     zig's -mcpu ('' = its default)
#   BOARD_MACHINE  readelf's machine name   BOARD_NATIVE   1 if the PC runs it directly
#   BOARD_QEMU     qemu-user program        BOARD_SYSROOT  qemu's -L ('' for musl: none)
#   BOARD_RUNNER   how to start a binary on the PC ('' = directly)
#   BOARD_BUILD_STD 1 if std is built from source (nightly)
#   BOARD_GLIBC    the newest glibc symbol version allowed (glibc targets)
#   BOARD_TINY_RUSTFLAGS  rustc flags of the tiny build (added to -Zbuild-std)
#   BOARD_TINY_CFLAGS     C compiler flags of the tiny build (board_env puts
#                  them in CFLAGS_<target> for the `cc` crate)

BOARD_TARGETS=(
    armv7-unknown-linux-musleabihf
    aarch64-unknown-linux-musl
    x86_64-unknown-linux-musl
    armv7-unknown-linux-gnueabihf
    aarch64-unknown-linux-gnu
)
BOARD_GLIBC=2.17
# Pinned: a new zig can change what it links. Tested with these.
BOARD_ZIGLANG_VERSION=${BOARD_ZIGLANG_VERSION:-0.17.1}
BOARD_ZIGBUILD_VERSION=${BOARD_ZIGBUILD_VERSION:-0.24.1}
# The nightly toolchain for the target without a prebuilt std: pinned (rustc
# 1.97.0-nightly e50aa6fba 2026-05-19), so that -Zbuild-std, unstable, does
# not change under the build from one day to the next.
BOARD_NIGHTLY=${BOARD_NIGHTLY:-nightly-2026-05-20}
# The tiny build's panic strategy: the pinned nightly spells immediate abort
# as a -C option (older nightlies had a std feature for it,
# -Zbuild-std-features=panic_immediate_abort, which this one refuses with a
# pointer to -Cpanic=immediate-abort). -Zlocation-detail=none drops the
# file/line/column data that only a panic message would show; nothing
# unwinds, so no unwind tables either (for the C code: board_target).
BOARD_TINY_RUSTFLAGS=${BOARD_TINY_RUSTFLAGS:--Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Cforce-unwind-tables=no}
# Where ziglang and cargo-zigbuild are installed (a Python venv of its own).
BOARD_TOOLS=${BOARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/paho-mqtt-sync/board-tools}

_board_die() {
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!! $(basename "$0") FAILED${BOARD_TARGET:+ for $BOARD_TARGET}:"
        printf '!!   %s\n' "$@"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 1
}

board_target() {
    BOARD_TARGET=$1 BOARD_MCPU='' BOARD_BUILD_STD='' BOARD_NATIVE='' BOARD_SYSROOT=''
    case "$1" in
        armv7-unknown-linux-musleabihf)
            BOARD_LIBC=musl BOARD_ZIG=arm-linux-musleabihf BOARD_MACHINE=ARM
            BOARD_QEMU=qemu-arm-static BOARD_BUILD_STD=1 ;;
        aarch64-unknown-linux-musl)
            BOARD_LIBC=musl BOARD_ZIG=aarch64-linux-musl BOARD_MACHINE=AArch64
            BOARD_QEMU=qemu-aarch64-static ;;
        x86_64-unknown-linux-musl)
            BOARD_LIBC=musl BOARD_ZIG=x86_64-linux-musl BOARD_MACHINE='Advanced Micro Devices X86-64'
            BOARD_QEMU=qemu-x86_64-static ;;
        armv7-unknown-linux-gnueabihf)
            BOARD_LIBC=glibc BOARD_ZIG=arm-linux-gnueabihf.$BOARD_GLIBC BOARD_MACHINE=ARM
            BOARD_QEMU=qemu-arm-static BOARD_SYSROOT=/usr/arm-linux-gnueabihf ;;
        aarch64-unknown-linux-gnu)
            BOARD_LIBC=glibc BOARD_ZIG=aarch64-linux-gnu.$BOARD_GLIBC BOARD_MACHINE=AArch64
            BOARD_QEMU=qemu-aarch64-static BOARD_SYSROOT=/usr/aarch64-linux-gnu ;;
        *)
            echo "not a board target: '$1' (one of: ${BOARD_TARGETS[*]})" >&2
            return 1 ;;
    esac
    # What Rust assumes for armv7 (and cargo-zigbuild passes): ARMv7-A, VFPv3-D16, Thumb-2.
    case "$1" in armv7-*) BOARD_MCPU=generic+v7a+vfp3-d32+thumb2-neon ;; esac
    BOARD_TINY_CFLAGS=''
    if [ -n "${BOARD_TINY:-}" ]; then
        BOARD_BUILD_STD=1
        BOARD_TINY_CFLAGS='-fno-unwind-tables -fno-asynchronous-unwind-tables'
        # Thumb-2 code for the C that is compiled (Rust: board_env). Not in
        # BOARD_MCPU, which zig also builds its libc with at link time: musl's
        # syscall code uses r7, Thumb's frame pointer, and fails to compile.
        case "$1" in armv7-*) BOARD_TINY_CFLAGS+=" -mcpu=$BOARD_MCPU+thumb_mode" ;; esac
    fi
    BOARD_VAR=${1//-/_}
    BOARD_VAR_UC=${BOARD_VAR^^}
    if [ "${1%%-*}" = "$(uname -m)" ]; then
        BOARD_NATIVE=1 BOARD_RUNNER=''
    elif [ -n "$BOARD_SYSROOT" ]; then
        BOARD_RUNNER="$BOARD_QEMU -L $BOARD_SYSROOT"
    else
        BOARD_RUNNER=$BOARD_QEMU
    fi
}

# ------------------------------------------------------------------ install

# Capability probes: each uses the tool the way the build will.
_board_probe_tmp() { mktemp -d "${TMPDIR:-/tmp}/board-probe.XXXXXX"; }

# The venv's cargo-zigbuild and zig are the pinned versions and zig builds a
# static program for the target.
board_probe_zig() (
    local t
    t=$(_board_probe_tmp) || exit 1
    trap 'rm -rf "$t"' EXIT
    [ "$("$BOARD_TOOLS/bin/python3" -m ziglang version 2>/dev/null)" = "$BOARD_ZIGLANG_VERSION" ] || exit 1
    "$BOARD_TOOLS/bin/cargo-zigbuild" --version 2>/dev/null | grep -qx "cargo-zigbuild $BOARD_ZIGBUILD_VERSION" || exit 1
    printf 'int main(void) { return 0; }\n' >"$t/p.c"
    "$BOARD_TOOLS/bin/python3" -m ziglang cc -target x86_64-linux-musl "$t/p.c" -o "$t/p" && "$t/p"
)

# qemu-user runs a static program of the target's architecture (no sysroot).
board_probe_qemu() (
    local t
    t=$(_board_probe_tmp) || exit 1
    trap 'rm -rf "$t"' EXIT
    command -v "$BOARD_QEMU" >/dev/null || exit 1
    printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$t/p.c"
    local zt
    case "$BOARD_TARGET" in
        armv7-*) zt=arm-linux-musleabihf ;;
        aarch64-*) zt=aarch64-linux-musl ;;
        *) zt=x86_64-linux-musl ;;
    esac
    "$BOARD_TOOLS/bin/python3" -m ziglang cc -target "$zt" -static "$t/p.c" -o "$t/p" || exit 2
    [ "$("$BOARD_QEMU" "$t/p")" = hello ]
)

# The target's glibc (loader and libc.so.6) is in the sysroot qemu is given:
# a dynamic glibc program from zig runs under qemu -L <sysroot>.
board_probe_glibc_runtime() (
    local t
    t=$(_board_probe_tmp) || exit 1
    trap 'rm -rf "$t"' EXIT
    printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$t/p.c"
    "$BOARD_TOOLS/bin/python3" -m ziglang cc -target "$BOARD_ZIG" "$t/p.c" -o "$t/p" || exit 2
    command -v "$BOARD_QEMU" >/dev/null || exit 2
    [ "$("$BOARD_QEMU" -L "$BOARD_SYSROOT" "$t/p")" = hello ]
)

# rustc has a usable std for the target (prebuilt, or rust-src for build-std).
board_probe_rust_std() (
    local t
    t=$(_board_probe_tmp) || exit 1
    trap 'rm -rf "$t"' EXIT
    if [ -n "$BOARD_BUILD_STD" ]; then
        rustup run "$BOARD_NIGHTLY" rustc -vV >/dev/null 2>&1 || exit 1
        rustup component list --toolchain "$BOARD_NIGHTLY" --installed 2>/dev/null | grep -qx 'rust-src' || exit 1
    else
        echo 'pub fn probe() -> String { std::env::args().collect() }' |
            rustc --edition 2021 --target "$BOARD_TARGET" --crate-type lib --emit metadata \
                --crate-name probe -o "$t/probe.rmeta" -
    fi
)

# readelf reads any ELF machine's headers (binutils).
board_probe_readelf() { readelf --version >/dev/null 2>&1; }

_board_apt() { # <packages...>
    [ -z "${SKIP_INSTALL:-}" ] || _board_die "missing Debian packages: $*" "(SKIP_INSTALL is set)"
    [ "$(id -u)" = 0 ] || _board_die "missing Debian packages: $*" "run as root, or: sudo apt-get install $*"
    command -v apt-get >/dev/null 2>&1 || _board_die "no apt-get: install the equivalent of $*"
    echo "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq || _board_die "apt-get update failed"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" ||
        _board_die "apt-get install $* failed"
}

board_install() {
    board_target "$1" || exit 2
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || _board_die "cargo not found: install Rust with rustup (https://rustup.rs)"

    # Debian: readelf, python3 with venv and pip; qemu and the glibc runtime for
    # running foreign binaries; perl and make for a vendored OpenSSL.
    local apt=()
    board_probe_readelf || apt+=(binutils)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt+=(python3 python3-venv)
    if [ -n "${BOARD_WANT_SSL:-}" ]; then
        perl -MFindBin -MIPC::Cmd -e1 >/dev/null 2>&1 || apt+=(perl)
        make --version >/dev/null 2>&1 || apt+=(make)
    fi
    [ ${#apt[@]} -eq 0 ] || _board_apt "${apt[@]}"

    # PyPI: zig and cargo-zigbuild, pinned, in a venv of their own.
    if ! board_probe_zig >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || _board_die "ziglang $BOARD_ZIGLANG_VERSION / cargo-zigbuild $BOARD_ZIGBUILD_VERSION missing in $BOARD_TOOLS (SKIP_INSTALL is set)"
        echo "pip install ziglang==$BOARD_ZIGLANG_VERSION cargo-zigbuild==$BOARD_ZIGBUILD_VERSION (venv $BOARD_TOOLS)"
        [ -x "$BOARD_TOOLS/bin/python3" ] || python3 -m venv "$BOARD_TOOLS" ||
            _board_die "python3 -m venv $BOARD_TOOLS failed"
        "$BOARD_TOOLS/bin/python3" -m pip install --quiet --disable-pip-version-check \
            "ziglang==$BOARD_ZIGLANG_VERSION" "cargo-zigbuild==$BOARD_ZIGBUILD_VERSION" ||
            _board_die "pip install ziglang cargo-zigbuild failed"
        board_probe_zig || _board_die "zig from $BOARD_TOOLS cannot build a static musl program"
    fi

    # Debian: qemu-user for foreign targets, the target's glibc for glibc ones.
    apt=()
    if [ -z "$BOARD_NATIVE" ] || [ -n "${BOARD_WANT_QEMU:-}" ]; then
        local rc=0
        board_probe_qemu >/dev/null 2>&1 || rc=$?
        [ "$rc" = 0 ] || apt+=(qemu-user-static)
    fi
    if [ "$BOARD_LIBC" = glibc ] && ! board_probe_glibc_runtime >/dev/null 2>&1; then
        case "$BOARD_TARGET" in
            armv7-*) apt+=(libc6-armhf-cross) ;;
            aarch64-*) apt+=(libc6-arm64-cross) ;;
        esac
        command -v "$BOARD_QEMU" >/dev/null 2>&1 || apt+=(qemu-user-static)
    fi
    if [ ${#apt[@]} -gt 0 ]; then
        _board_apt "${apt[@]}"
        if [ -z "$BOARD_NATIVE" ]; then
            board_probe_qemu || _board_die "$BOARD_QEMU cannot run a static $BOARD_TARGET program"
        fi
        if [ "$BOARD_LIBC" = glibc ]; then
            board_probe_glibc_runtime || _board_die "$BOARD_RUNNER cannot run a glibc $BOARD_TARGET program"
        fi
    fi

    # Rust: the prebuilt std, or the nightly toolchain with rust-src.
    if ! board_probe_rust_std >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || _board_die "the Rust standard library for $BOARD_TARGET is missing (SKIP_INSTALL is set)"
        command -v rustup >/dev/null 2>&1 || _board_die "no rustup to add the standard library for $BOARD_TARGET"
        if [ -n "$BOARD_BUILD_STD" ]; then
            echo "rustup toolchain install $BOARD_NIGHTLY --profile minimal --component rust-src"
            rustup toolchain install "$BOARD_NIGHTLY" --profile minimal --component rust-src ||
                _board_die "rustup could not install $BOARD_NIGHTLY with rust-src"
        else
            echo "rustup target add $BOARD_TARGET"
            rustup target add "$BOARD_TARGET" || _board_die "rustup target add $BOARD_TARGET failed"
        fi
        board_probe_rust_std || _board_die "rustc still has no standard library for $BOARD_TARGET"
    fi
}

# ------------------------------------------------------------------ build env

board_env() {
    board_target "$1" || exit 2
    local dir
    dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["target_directory"])')/board-tools/$BOARD_TARGET${BOARD_TINY:+-tiny}
    mkdir -p "$dir"
    local mcpu=''
    [ -z "$BOARD_MCPU" ] || mcpu="-mcpu=$BOARD_MCPU"
    # The C compiler and linker (what cargo-zigbuild's own wrapper scripts run).
    cat >"$dir/cc" <<EOF
#!/bin/sh
exec "$BOARD_TOOLS/bin/cargo-zigbuild" zig cc -- -g -fno-sanitize=all $mcpu -target $BOARD_ZIG "\$@"
EOF
    printf '#!/bin/sh\nexec "%s" -m ziglang ar "$@"\n' "$BOARD_TOOLS/bin/python3" >"$dir/ar"
    printf '#!/bin/sh\nexec "%s" -m ziglang ranlib "$@"\n' "$BOARD_TOOLS/bin/python3" >"$dir/ranlib"
    chmod +x "$dir/cc" "$dir/ar" "$dir/ranlib"
    BOARD_CC=$dir/cc
    export CARGO_ZIGBUILD_PYTHON_PATH="$BOARD_TOOLS/bin/python3"
    export "CC_$BOARD_VAR=$dir/cc" "AR_$BOARD_VAR=$dir/ar" "RANLIB_$BOARD_VAR=$dir/ranlib"
    export "CARGO_TARGET_${BOARD_VAR_UC}_LINKER=$dir/cc"
    if [ -n "$BOARD_BUILD_STD" ]; then
        export RUSTUP_TOOLCHAIN=$BOARD_NIGHTLY
        export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
        local flags=''
        [ "$BOARD_LIBC" != musl ] || flags='-C link-self-contained=no'
        if [ -n "${BOARD_TINY:-}" ]; then
            flags="${flags:+$flags }$BOARD_TINY_RUSTFLAGS"
            case "$BOARD_TARGET" in armv7-*) flags="$flags -C target-feature=+thumb-mode" ;; esac
            if [ -n "$BOARD_TINY_CFLAGS" ]; then
                local cflags_var=CFLAGS_$BOARD_VAR
                export "$cflags_var=${!cflags_var:+${!cflags_var} }$BOARD_TINY_CFLAGS"
            fi
        fi
        # A set RUSTFLAGS, even an empty one (scripts/test.sh exports it),
        # makes Cargo ignore the per-target variable: add the flags there.
        if [ -n "${RUSTFLAGS:-}" ]; then
            export RUSTFLAGS="$RUSTFLAGS $flags"
        else
            unset RUSTFLAGS
            export "CARGO_TARGET_${BOARD_VAR_UC}_RUSTFLAGS=$flags"
        fi
    fi
}

# ------------------------------------------------------------------ checks

# The newest GLIBC_x.y symbol version a binary needs ('' if none).
board_glibc_needed() {
    LC_ALL=C readelf -VW "$1" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV | tail -1
}

board_check() { # <triple> <binary>
    board_target "$1" || exit 2
    local bin=$2 machine needed interp newest
    [ -f "$bin" ] || _board_die "no binary at $bin"
    machine=$(LC_ALL=C readelf -hW "$bin" | sed -n 's/^ *Machine: *//p')
    [ "$machine" = "$BOARD_MACHINE" ] || _board_die "$bin is for '$machine', not '$BOARD_MACHINE'"
    needed=$(LC_ALL=C readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    interp=$(LC_ALL=C readelf -lW "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
    if [ "$BOARD_LIBC" = musl ]; then
        [ -z "$needed" ] || _board_die "$bin needs shared libraries: $needed (must be static)"
        [ -z "$interp" ] || _board_die "$bin asks for an ELF interpreter $interp (must be static)"
        BOARD_CHECK_SUMMARY="static: no shared libraries, no ELF interpreter"
    else
        newest=$(board_glibc_needed "$bin")
        [ -n "$newest" ] || _board_die "$bin references no GLIBC_ symbol version at all"
        [ "$(printf '%s\n%s\n' "$newest" "$BOARD_GLIBC" | sort -V | tail -1)" = "$BOARD_GLIBC" ] ||
            _board_die "$bin needs GLIBC_$newest, newer than GLIBC_$BOARD_GLIBC"
        BOARD_CHECK_SUMMARY="glibc >= $newest (newest symbol version GLIBC_$newest); needs: ${needed% }; interpreter $interp"
    fi
}
