#!/usr/bin/env bash
# Cross-compiles the crate, its whole test suite and the board demo for an ARM
# target on an x86_64 Debian/Ubuntu PC, and runs them under qemu-user against
# private Mosquitto brokers on 127.0.0.1 (started by the tests themselves):
#
#   1. installs what is missing (as root): the cross gcc and libc, qemu-user,
#      mosquitto, cmake (only while the build runs it), the Rust target,
#      cargo-nextest; each checked by using it (scripts/lib.sh)
#   2. smoke test: a C program built by the cross gcc runs under qemu
#   3. `cargo build --release --target <t> --example mqtt_client` (the demo,
#      with the bundled Paho C built by the cross gcc) and its stripped size
#   4. builds every test for the target; runs them all under qemu
#      (CARGO_TARGET_<TRIPLE>_RUNNER="qemu-<arch>-static -L /usr/<gnu triple>")
#   5. layout check: sizes/offsets seen by Rust = what the cross gcc says,
#      both on the target (scripts/layout-check.sh)
#   6. checks that the tests the issue names ran and passed under qemu, and
#      that the demo the tests drove is a binary for the target
#
# Anything missing or failing stops the script with a loud message and a
# non-zero exit; nothing is skipped quietly.
#
# Usage: scripts/cross-test.sh <target>
#   <target>: armv7-unknown-linux-gnueabihf | aarch64-unknown-linux-gnu
#             (or the short names armv7, aarch64)
#   SKIP_INSTALL=1        never install; fail if something is missing
#   CROSS_TEST_FILTER=..  a nextest filter expression (-E) for step 4
#                         (default: every test)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
step_start=$start
timings=()
step() {
    local now
    now=$(date +%s)
    [ -n "${current:-}" ] && timings+=("$(printf '%4ss  %s' $((now - step_start)) "$current")")
    current=$*
    step_start=$now
    printf '\n\033[1m== [%s] %s (%ss)\033[0m\n' "${TARGET:-?}" "$*" $((now - start))
}

[ $# -eq 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh
if [ -n "$HOST_TRIPLE" ]; then
    cross_target "$1" || exit 2
    [ -z "$NATIVE" ] || cross_die "$TARGET is this machine's own target: run scripts/test.sh instead"
fi

# ------------------------------------------------------------------ 1. install
step "1/6 tools for ${TARGET:-$1}"
cross_install "$1"
cross_runner
echo "target      $TARGET"
echo "C compiler  $(command -v "$CROSS_CC") ($("$CROSS_CC" -dumpversion 2>/dev/null))"
echo "qemu        $(command -v "$QEMU") ($("$QEMU" --version | head -1))"
echo "runner      $RUNNER_VAR=${!RUNNER_VAR}"
echo "rustc       $(rustc --version)"
echo "nextest     $(cargo nextest --version | head -1)"

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cross-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# An ELF file's machine, as readelf names it ("ARM", "AArch64").
machine_of() { LC_ALL=C readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p'; }
case "$TARGET" in
    armv7*) want_machine=ARM ;;
    aarch64*) want_machine=AArch64 ;;
esac
command -v readelf >/dev/null 2>&1 || readelf() { "$GNU_TRIPLE-readelf" "$@"; }

# ------------------------------------------------------------------ 2. smoke
step "2/6 smoke test: $CROSS_CC + $QEMU"
printf '#include <stdio.h>\nint main(void) { printf("hello from %%zu-bit C\\n", sizeof(void *) * 8); return 0; }\n' >"$tmp/hello.c"
"$CROSS_CC" "$tmp/hello.c" -o "$tmp/hello" || cross_die "$CROSS_CC cannot build a C program"
[ "$(machine_of "$tmp/hello")" = "$want_machine" ] || cross_die "$CROSS_CC did not build a $want_machine binary"
cross_exec "$tmp/hello" || cross_die "$QEMU -L $QEMU_SYSROOT cannot run a $TARGET program"

# ------------------------------------------------------------------ 3. demo
step "3/6 cargo build --release --target $TARGET --example mqtt_client"
[ -f examples/mqtt_client/main.rs ] || [ -f examples/mqtt_client.rs ] ||
    cross_die "the demo examples/mqtt_client is missing"
cargo build --release --target "$TARGET" --example mqtt_client ||
    cross_die "cross build of the demo failed"
demo="$target_dir/$TARGET/release/examples/mqtt_client"
[ "$(machine_of "$demo")" = "$want_machine" ] ||
    cross_die "$demo is not a $want_machine binary: $(machine_of "$demo")"
"$GNU_TRIPLE-strip" -o "$tmp/mqtt_client.stripped" "$demo"
printf 'demo: %s\n  %s bytes, %s bytes stripped (profile release, bundled static Paho C)\n' \
    "$demo" "$(stat -c %s "$demo")" "$(stat -c %s "$tmp/mqtt_client.stripped")"
echo "  needs: $(LC_ALL=C readelf -d "$demo" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
cross_exec "$demo" --help >/dev/null || cross_die "the cross-built demo does not run under qemu (--help)"

# ------------------------------------------------------------------ 4. tests
step "4/6 build the test suite for $TARGET"
cargo nextest run --target "$TARGET" --no-run || cross_die "cross build of the test suite failed"

step "4/6 run the test suite under $QEMU"
filter=()
[ -n "${CROSS_TEST_FILTER:-}" ] && filter=(-E "$CROSS_TEST_FILTER")
log="$tmp/nextest.log"
set +e
cargo nextest run --target "$TARGET" --no-fail-fast ${filter[@]+"${filter[@]}"} 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || cross_die "tests failed under $QEMU for $TARGET (exit $rc; the FAIL lines above)"

# ------------------------------------------------------------------ 5. layout
step "5/6 layout check (Rust bindings vs $CROSS_CC, both under qemu)"
scripts/layout-check.sh "$TARGET"

# ------------------------------------------------------------------ 6. guards
step "6/6 the required tests ran under qemu"
# What issue 4 names, by test binary and test name: extend, never remove.
required=(
    'pubsub round_trips_with_receive'                        # QoS 0/1/2 publish/subscribe
    'pubsub round_trips_with_callbacks_and_delivery_tokens'  # QoS 0/1/2 with callbacks
    'will_keepalive will_is_published_when_the_connection_is_cut'  # will at QoS 0/1/2
    'demo online_temperature_led_and_sigint'                 # the demo: temperature, LED, SIGINT
)
if [ -z "${CROSS_TEST_FILTER:-}" ]; then
    for t in "${required[@]}"; do
        grep -Eq "PASS \[.*\] .*::$t\$" "$log" || cross_die "required test '$t' did not run and pass under qemu"
        echo "  PASS under qemu: $t"
    done
else
    echo "  CROSS_TEST_FILTER is set: only what it selects ran"
fi
# tests/demo.rs builds and spawns examples/mqtt_client itself: it must have
# been the target's binary (run under qemu), not one built for this PC.
demo_debug="$target_dir/$TARGET/debug/examples/mqtt_client"
if [ -e "$demo_debug" ]; then
    m=$(machine_of "$demo_debug")
    [ "$m" = "$want_machine" ] ||
        cross_die "the demo the tests ran ($demo_debug) is a $m binary, not $want_machine:" \
            "tests/demo.rs built it for the wrong target, so the demo was NOT tested under qemu"
    echo "  demo driven by the tests: $want_machine binary"
fi

step "done"
echo "timings for $TARGET:"
printf '  %s\n' "${timings[@]}"
echo "all passed for $TARGET in $(( $(date +%s) - start ))s"
