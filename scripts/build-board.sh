#!/usr/bin/env bash
# Builds the board demo's shipping binary (examples/mqtt_client, Cargo profile
# release-small) for a board, checks it, and prints its path as the last line
# of standard output:
#
#   musl, fully static: nothing needed on the board but the kernel
#     armv7-unknown-linux-musleabihf   32-bit ARM, hard float (armv7l)
#     aarch64-unknown-linux-musl       64-bit ARM (aarch64)
#     x86_64-unknown-linux-musl        x86_64 (industrial PCs, gateways)
#   glibc, dynamic: needs glibc 2.17 or newer on the board
#     armv7-unknown-linux-gnueabihf
#     aarch64-unknown-linux-gnu
#
# C compiler and linker: zig (PyPI ziglang, through cargo-zigbuild's `zig cc`);
# the bundled Paho C 1.3.16 is compiled by it for the same target and C
# library. See scripts/board-env.sh for how, and README.md, "Which build for
# which board".
#
# Usage: scripts/build-board.sh [--ssl] [--tiny] <target>
#   --ssl           TLS too (features vendored-openssl: OpenSSL 3 built from
#                   source and linked in; the musl binary stays one static file)
#   --tiny          the smallest binary (Cargo profile release-tiny): the pinned
#                   nightly builds std from source with panics that abort at
#                   once, without a message; Thumb-2 code on armv7. README.md,
#                   "The small binary"
#   SKIP_INSTALL=1  never install; fail if something is missing
# As root it installs what is missing (Debian packages; ziglang and
# cargo-zigbuild from PyPI into a venv; the Rust target, or the nightly
# toolchain with rust-src for armv7 musl and --tiny). Exits non-zero, loudly, if the
# build fails or the binary is not what the target promises.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ssl=''
tiny=''
target=''
while [ $# -gt 0 ]; do
    case "$1" in
        --ssl) ssl=1; shift ;;
        --tiny) tiny=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-board.sh: unknown option $1" >&2; exit 2 ;;
        *) [ -z "$target" ] || { echo "build-board.sh: one target only" >&2; exit 2; }
           target=$1; shift ;;
    esac
done
[ -n "$target" ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
profile=release-small
if [ -n "$tiny" ]; then
    profile=release-tiny
    export BOARD_TINY=1
fi
# shellcheck source=scripts/board-env.sh
. scripts/board-env.sh
board_target "$target" || exit 2

# Everything but the last line goes to stderr, so `bin=$(scripts/build-board.sh T | tail -1)` works.
{
    BOARD_WANT_SSL=$ssl board_install "$target"
    board_env "$target"
    features=()
    [ -z "$ssl" ] || features=(--features vendored-openssl)
    echo "== cargo build --profile $profile --example mqtt_client --target $target ${features[*]}"
    echo "   C compiler and linker: zig $("$BOARD_TOOLS/bin/python3" -m ziglang version) -target $BOARD_ZIG${BOARD_MCPU:+ -mcpu=$BOARD_MCPU}"
    [ -z "$BOARD_BUILD_STD" ] || echo "   std built from source: $(rustc +"$BOARD_NIGHTLY" --version), -Zbuild-std"
    flags_var=CARGO_TARGET_${BOARD_VAR_UC}_RUSTFLAGS
    [ -z "$tiny" ] || echo "   rustc flags: ${!flags_var:-${RUSTFLAGS:-}}"
    cargo build --profile "$profile" --example mqtt_client --target "$target" ${features[@]+"${features[@]}"} ||
        _board_die "cargo build failed"
} >&2

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/$target/$profile/examples/mqtt_client
board_check "$target" "$bin" >&2
echo "   $bin: $(stat -c %s "$bin") bytes (stripped); $BOARD_CHECK_SUMMARY" >&2
echo "$bin"
