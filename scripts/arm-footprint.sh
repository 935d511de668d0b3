#!/usr/bin/env bash
# Measures the board demo for an ARM target on the PC: the stripped size of
# the release binary (bundled, static Paho C), and its peak memory while it
# runs under qemu-user against a private Mosquitto on 127.0.0.1, publishing
# temperatures every second and obeying LED commands, for DURATION seconds.
#
# Peak memory is VmHWM of the qemu-user process, which is the guest program
# plus the emulator itself (its translated-code cache, its own heap). For
# scale it also measures: a C program that only sleeps, under the same qemu
# (the emulator's floor), and the same demo built for this PC, run natively.
#
# Usage: scripts/arm-footprint.sh [<target>]    (default armv7-unknown-linux-gnueabihf)
#   DURATION=20      seconds the demo runs (default 20)
#   PROFILES="release release-small"   Cargo profiles to size (the ones that exist)
# Needs what scripts/cross-test.sh installs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh
cross_target "${1:-armv7}" || exit 2
[ -z "$NATIVE" ] || cross_die "give an ARM target"
duration=${DURATION:-20}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/arm-footprint.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
kib() { awk -v b="$1" 'BEGIN { printf "%.0f KiB", b / 1024 }'; }
hwm() { sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$1/status"; }
# The guest's own resident memory inside a qemu-user process, in kB: for a
# 32-bit guest qemu maps the guest address space 1:1 below 4 GiB of its own,
# so that is the sum of Rss over the mappings that start below 4 GiB (the
# program, its libraries, heap, thread stacks); everything above is qemu.
guest_rss() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); low = (length(a[1]) <= 8) }
         /^Rss:/ { if (low) sum += $2 } END { print sum + 0 }' "/proc/$1/smaps" 2>/dev/null || echo 0
}

echo "== sizes ($TARGET)"
built=()
for profile in ${PROFILES:-release release-small}; do
    if [ "$profile" != release ] && ! grep -q "^\[profile\.$profile\]" Cargo.toml; then
        echo "  profile $profile: not defined in Cargo.toml, skipped"
        continue
    fi
    cargo build --quiet --profile "$profile" --target "$TARGET" --example mqtt_client
    bin="$target_dir/$TARGET/$profile/examples/mqtt_client"
    "$GNU_TRIPLE-strip" -o "$tmp/mqtt_client.$profile" "$bin"
    printf '  %-14s %8s bytes stripped (%s), %s bytes as built; needs %s\n' "$profile" \
        "$(stat -c %s "$tmp/mqtt_client.$profile")" "$(kib "$(stat -c %s "$tmp/mqtt_client.$profile")")" \
        "$(stat -c %s "$bin")" \
        "$(LC_ALL=C readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
    built+=("$profile")
done

echo "== broker"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$tmp/mosquitto.conf"
/usr/sbin/mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -t probe -m x 2>/dev/null && break
    sleep 0.1
done
kill -0 "${pids[0]}" 2>/dev/null || { cat "$tmp/mosquitto.log"; cross_die "mosquitto did not start"; }
echo "  mosquitto on 127.0.0.1:$port"

# A fake board: thermal zone and LED class directory.
mkdir -p "$tmp/led"
echo 42500 >"$tmp/temp"
echo none >"$tmp/led/trigger"
echo 0 >"$tmp/led/brightness"

run_demo() { # run_demo <label> <command...>: runs it $duration s; peak=VmHWM
    local label=$1
    shift
    "$@" --broker "tcp://127.0.0.1:$port" --client-id "fp-$label-$$" --topic-prefix "fp/$label" \
        --interval 1 --temp-path "$tmp/temp" --led-path "$tmp/led" 2>"$tmp/$label.log" &
    local pid=$!
    pids+=("$pid")
    local end=$((SECONDS + duration)) n=0 g
    guest_peak=0
    while [ $SECONDS -lt $end ]; do
        sleep 1
        n=$((n + 1))
        g=$(guest_rss "$pid")
        [ "$g" -le "$guest_peak" ] || guest_peak=$g
        mosquitto_pub -h 127.0.0.1 -p "$port" -t "fp/$label/led" -m $((n % 3)) -q 1
        echo $((42000 + n)) >"$tmp/temp"
    done
    kill -0 "$pid" || { cat "$tmp/$label.log"; cross_die "the demo ($label) died"; }
    peak=$(hwm "$pid")
    kill -INT "$pid"
    wait "$pid" || { cat "$tmp/$label.log"; cross_die "the demo ($label) did not exit cleanly on SIGINT"; }
    grep -q "connected" "$tmp/$label.log" || { cat "$tmp/$label.log"; cross_die "no connection in the $label log"; }
}

summary=()
readme_rows=()
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
for profile in "${built[@]}"; do
    echo "== the $profile demo under $QEMU for ${duration}s (1 s temperature interval, an LED command every second)"
    run_demo "$profile" "$QEMU" -L "$QEMU_SYSROOT" "$target_dir/$TARGET/$profile/examples/mqtt_client"
    temps=$(mosquitto_sub -h 127.0.0.1 -p "$port" -t "fp/$profile/temperature" -C 1 -W 5 || true)
    [ -n "$temps" ] || cross_die "no retained temperature from the demo under qemu"
    echo "  peak RSS (VmHWM of the qemu process): $peak; last temperature: $temps; LED: $(cat "$tmp/led/trigger")/$(cat "$tmp/led/brightness")"
    guest=''
    if [ "${TARGET%%-*}" != aarch64 ]; then
        if [ "$guest_peak" -lt 256 ]; then
            # qemu put the guest somewhere else (guest_base != 0): no estimate.
            echo "  the guest's own RSS: not measurable (no guest mappings below 4 GiB)"
        else
            echo "  the guest's own RSS (mappings below 4 GiB, highest of 1 s samples): $guest_peak kB"
            guest=", the demo's own pages $guest_peak kB"
        fi
    fi
    summary+=("$(printf '%-14s %8s bytes stripped; under qemu: peak RSS %s (emulator included)%s' \
        "$profile" "$(stat -c %s "$tmp/mqtt_client.$profile")" "$peak" "$guest")")
    size=$(stat -c %s "$tmp/mqtt_client.$profile")
    label=$([ "$profile" = release ] && echo "\`--release\`, then \`$GNU_TRIPLE-strip\`" || echo "\`--profile $profile\`")
    readme_rows+=("| $label | $(commas "$size") bytes ($(kib "$size")) | $(commas "${peak% kB}") kB | $([ -z "$guest" ] || echo "$(commas "$guest_peak") kB") |")
done

echo "== baseline: a C program that only sleeps, under the same qemu"
printf '#include <unistd.h>\nint main(void) { sleep(3); return 0; }\n' >"$tmp/idle.c"
"$CROSS_CC" -O2 "$tmp/idle.c" -o "$tmp/idle"
"$QEMU" -L "$QEMU_SYSROOT" "$tmp/idle" &
idle=$!
pids+=("$idle")
sleep 2
peak_idle=$(hwm "$idle")
wait "$idle"
echo "  peak RSS: $peak_idle"

echo "== for scale: the same demo built for this PC ($HOST_TRIPLE), native"
cargo build --quiet --release --example mqtt_client
run_demo native "$target_dir/release/examples/mqtt_client"
peak_native=$peak
echo "  peak RSS: $peak_native"

echo
echo "summary: $TARGET demo (examples/mqtt_client), bundled static Paho C 1.3.16, ${duration}s run"
printf '  %s\n' "${summary[@]}"
echo "  idle C program under $QEMU: peak RSS $peak_idle (the emulator's floor)"
echo "  release demo built for $HOST_TRIPLE, native: peak RSS $peak_native"

# The rows of the README's table ("Size and memory on armv7"), to paste
# there instead of figures typed by hand.
echo
echo "README rows ($(rustc -V | awk '{print "rustc " $2}'), ${duration}s run):"
echo "| \`examples/mqtt_client\` for ${TARGET%%-*} | Stripped size | Peak RSS of the qemu process | The demo's own resident memory |"
echo "|---|---|---|---|"
printf '%s\n' "${readme_rows[@]}"
echo "| (a C program that only sleeps, same qemu) | | $(commas "${peak_idle% kB}") kB | |"
