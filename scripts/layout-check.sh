#!/usr/bin/env bash
# Proves that the struct layouts the Rust bindings use for a target are the
# ones the target's C compiler uses for the Paho C headers:
#
#   1. builds paho-mqtt-c/layout/layout.c with the target's gcc against the
#      headers (default: the Paho C 1.3.16 sources that the `bundled` build
#      compiles; --headers DIR: an installed Paho C, e.g. /usr/include),
#   2. runs it on the target (under qemu-user when cross) -> sizeof/alignof/
#      offsetof table,
#   3. runs tests/layout.rs (`c_layout_matches_rust`, also on the target)
#      with PAHO_MQTT_SYNC_C_LAYOUT pointing at that table; it fails on any
#      difference.
#
# Usage: scripts/layout-check.sh [--headers DIR] [--keep FILE] [<target>] [-- <cargo args>]
#   <target>      armv7-unknown-linux-gnueabihf, aarch64-unknown-linux-gnu,
#                 x86_64-unknown-linux-gnu (or armv7, aarch64, x86_64); default: host
#   --headers DIR Paho C headers to check instead of the bundled 1.3.16 ones
#   --keep FILE   also write the C table to FILE
#   <cargo args>  passed to `cargo nextest run` (e.g. --no-default-features)
# Needs what scripts/cross-test.sh installs (cross gcc, qemu-user-static).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh

headers='' keep='' target=host
cargo_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --headers) headers=${2:?--headers needs a directory}; shift 2 ;;
        --keep) keep=${2:?--keep needs a file}; shift 2 ;;
        --) shift; cargo_args=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "layout-check.sh: unknown option $1" >&2; exit 2 ;;
        *) target=$1; shift ;;
    esac
done
cross_target "$target" || exit 2
cross_runner

if [ -z "$headers" ]; then
    headers=$(bundled_paho_headers) || cross_die "cannot find the bundled Paho C headers"
    what="bundled Paho C headers"
else
    what="installed Paho C headers"
fi
[ -f "$headers/MQTTClient.h" ] || cross_die "no MQTTClient.h in $headers"

where=''
[ -n "$NATIVE" ] || where=" under $QEMU -L $QEMU_SYSROOT"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/layout-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cflags_var="CFLAGS_$TARGET_VAR"   # the target's C flags, as the cc crate takes them
echo "== layout: C side: $CROSS_CC ${!cflags_var:-}, $what in $headers"
command -v "$CROSS_CC" >/dev/null || cross_die "C compiler $CROSS_CC for $TARGET not found"
# shellcheck disable=SC2086  # CFLAGS are words
"$CROSS_CC" ${!cflags_var:-} -std=gnu11 -Wall -Wextra -Werror -I"$headers" \
    paho-mqtt-c/layout/layout.c -o "$tmp/layout" ||
    cross_die "$CROSS_CC could not build paho-mqtt-c/layout/layout.c"
if ! cross_exec "$tmp/layout" >"$tmp/layout.txt"; then
    cross_die "the C layout program failed to run on $TARGET$where"
fi
facts=$(grep -c '^[a-z]' "$tmp/layout.txt" || true)
[ "$facts" -ge 100 ] || cross_die "the C layout program printed only $facts facts (see $tmp/layout.txt)"
head -1 "$tmp/layout.txt"
echo "   $facts facts"
[ -n "$keep" ] && cp "$tmp/layout.txt" "$keep"

echo "== layout: Rust side: tests/layout.rs for $TARGET$where"
log="$tmp/nextest.log"
set +e
target_args=(--target "$TARGET")
[ -n "$NATIVE" ] && target_args=()   # share the build with a plain `cargo nextest run`
PAHO_MQTT_SYNC_C_LAYOUT="$tmp/layout.txt" cargo nextest run ${target_args[@]+"${target_args[@]}"} \
    ${cargo_args[@]+"${cargo_args[@]}"} --test layout --run-ignored all --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || cross_die "tests/layout.rs failed for $TARGET (exit $rc): Rust and C layouts differ or the test did not build"
# Guard against the comparison being filtered out or skipped.
grep -Eq 'PASS .*layout[: ]+c_layout_matches_rust' "$log" ||
    cross_die "c_layout_matches_rust did not run and pass (see the output above)"
echo "== layout: OK for $TARGET: Rust bindings = C compiler ($facts facts, $what)"
