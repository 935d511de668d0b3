#!/usr/bin/env bash
# Proves the board binaries (scripts/build-board.sh) on the PC, one target at
# a time, and measures them:
#
#   1. builds the demo's shipping binary for the target (release-small) and
#      checks it: musl builds fully static (no NEEDED entries, no ELF
#      interpreter), glibc builds needing no symbol version newer than
#      GLIBC_2.17;
#   2. runs the demo's own tests (tests/demo.rs: Online, temperature, LED
#      0/1/2, SIGINT -> Offline, kill -9 -> will, wrong password -> exit 2,
#      bad arguments -> exit 64) against that binary, started under qemu-user
#      (musl binaries with no sysroot at all; glibc ones with Debian's cross
#      glibc as -L) or directly for x86_64, through PAHO_MQTT_SYNC_DEMO_BIN;
#   3. measures its stripped size and its peak memory while it runs against
#      a private Mosquitto (1 s temperature interval, an LED command every
#      second) for DURATION seconds;
#   4. (with x86_64-unknown-linux-musl) the TLS build: the ssl demo with
#      OpenSSL built in (features vendored-openssl) must still be one static
#      file, and the crate's TLS tests (tests/tls.rs: TLS round trips against
#      a private Mosquitto with a TLS listener) pass as a static musl binary;
#   5. prints the table of README.md's "Which build for which board".
#
# Usage: scripts/board-test.sh [<target>...]    (default: all five board targets)
#   DURATION=15       seconds each demo runs for the memory figure (default 15)
#   BOARD_SKIP_SSL=1  leave out step 4
#   SKIP_INSTALL=1    never install; fail if something is missing
# Tests talk to 127.0.0.1 only. Fails loudly, non-zero, on anything missing or wrong.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
step() { printf '\n\033[1m== %s (%ss)\033[0m\n' "$*" "$(($(date +%s) - start))"; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=scripts/board-env.sh
. scripts/board-env.sh
die() { _board_die "$@"; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${BOARD_TARGETS[@]}")
for t in "${targets[@]}"; do board_target "$t" >/dev/null || exit 2; done
duration=${DURATION:-15}
MOSQUITTO=/usr/sbin/mosquitto
{ [ -x "$MOSQUITTO" ] && command -v mosquitto_pub >/dev/null 2>&1; } ||
    die "needs $MOSQUITTO and mosquitto_pub/mosquitto_sub (apt-get install mosquitto mosquitto-clients; scripts/test.sh installs them)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/board-test.XXXXXX")
pids=()
cleanup() {
    for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------------ helpers

# A private Mosquitto on a free 127.0.0.1 port (never 1883): sets $port.
start_broker() {
    local try
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        try=$((20000 + RANDOM % 10000))
        {
            echo "listener $try 127.0.0.1"
            echo "allow_anonymous true"
            echo "persistence false"
            [ "$(id -u)" != 0 ] || echo "user root"
        } >"$tmp/mosquitto.conf"
        "$MOSQUITTO" -c "$tmp/mosquitto.conf" </dev/null >"$tmp/mosquitto.log" 2>&1 &
        local pid=$!
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if mosquitto_pub -h 127.0.0.1 -p "$try" -t probe -m x 2>/dev/null; then
                port=$try
                pids+=("$pid")
                return 0
            fi
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cat "$tmp/mosquitto.log" >&2
    die "could not start mosquitto"
}

kb_of() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
# The guest's own resident memory inside a qemu-user process running a
# 32-bit program, in kB: qemu maps a 32-bit guest's address space one to one
# below 4 GiB of its own, so the guest is the sum of Rss over the mappings
# that start below 4 GiB (its code, heap, thread stacks); the rest is qemu.
guest_rss() {
    awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); low = (length(a[1]) <= 8) }
         /^Rss:/ { if (low) sum += $2 } END { print sum + 0 }' "/proc/$1/smaps" 2>/dev/null || echo 0
}

# Runs a board binary (through $BOARD_RUNNER) for $duration seconds against
# the broker with a fake sysfs; sets peak_kb (VmHWM of the process: qemu's
# when emulated) and guest_kb (the pages below 4 GiB: the whole guest only
# for a 32-bit one).
run_demo() { # <label> <binary>
    local label=$1 bin=$2 dir="$tmp/board-$1" n=0 g end pid
    mkdir -p "$dir/led"
    echo 42500 >"$dir/temp"
    echo none >"$dir/led/trigger"
    echo 0 >"$dir/led/brightness"
    # shellcheck disable=SC2086  # the runner is words
    $BOARD_RUNNER "$bin" --broker "tcp://127.0.0.1:$port" --client-id "fp-$label-$$" \
        --topic-prefix "fp/$label" --interval 1 --temp-path "$dir/temp" --led-path "$dir/led" \
        2>"$dir/log" &
    pid=$!
    pids+=("$pid")
    guest_kb=0
    end=$((SECONDS + duration))
    while [ $SECONDS -lt $end ]; do
        sleep 1
        n=$((n + 1))
        g=$(guest_rss "$pid")
        [ "$g" -le "$guest_kb" ] || guest_kb=$g
        mosquitto_pub -h 127.0.0.1 -p "$port" -t "fp/$label/led" -m $((n % 3)) -q 1
        echo $((42000 + n)) >"$dir/temp"
    done
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; die "the demo ($label) died"; }
    peak_kb=$(kb_of "$pid" VmHWM)
    kill -INT "$pid"
    wait "$pid" || { cat "$dir/log" >&2; die "the demo ($label) did not exit with 0 on SIGINT"; }
    grep -q "connected to" "$dir/log" || { cat "$dir/log" >&2; die "no connection in the $label demo's log"; }
    [ -n "$(mosquitto_sub -h 127.0.0.1 -p "$port" -t "fp/$label/temperature" -C 1 -W 5)" ] ||
        die "no retained temperature from the $label demo"
}

# Peak memory of a program that only sleeps, under the same qemu: what
# qemu itself takes (for 64-bit guests, whose pages cannot be told apart).
idle_peak() { # -> kB
    printf '#include <unistd.h>\nint main(void) { sleep(2); return 0; }\n' >"$tmp/idle.c"
    "$BOARD_TOOLS/bin/python3" -m ziglang cc -target "${BOARD_ZIG%%.*}" -Os "$tmp/idle.c" -o "$tmp/idle" ||
        die "zig cannot build the idle program for $BOARD_TARGET"
    # shellcheck disable=SC2086
    $BOARD_RUNNER "$tmp/idle" &
    local pid=$! kb
    sleep 1.5
    kb=$(kb_of "$pid" VmHWM)
    wait "$pid"
    echo "$kb"
}

kib() { awk -v b="$1" 'BEGIN { printf "%.0f KiB", b / 1024 }'; }
commas() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }

demo_filter='test(=online_temperature_led_and_sigint) | test(=kill_9_leaves_the_will) | test(=wrong_password_exits_2) | test(=help_and_bad_arguments)'
required_demo_tests=(online_temperature_led_and_sigint kill_9_leaves_the_will wrong_password_exits_2 help_and_bad_arguments)

# ------------------------------------------------------------------ per target
step "host side: the demo tests' own build (cargo nextest, this PC)"
cargo nextest run --no-run --test demo || die "cannot build tests/demo.rs for this PC"
start_broker
echo "broker: mosquitto on 127.0.0.1:$port"

rows=()
timings=()
for target in "${targets[@]}"; do
    t0=$(date +%s)
    board_target "$target"
    step "$target: scripts/build-board.sh"
    bin=$(scripts/build-board.sh "$target" | tail -1) || die "scripts/build-board.sh $target failed"
    [ -f "$bin" ] || die "build-board.sh printed '$bin', which is not a file"
    # Again, here: what the binary needs on a board (build-board.sh checked it too).
    board_check "$target" "$bin"
    echo "check: $BOARD_CHECK_SUMMARY"
    board_install "$target" >/dev/null # qemu and the glibc runtime are there (build-board.sh installed them)

    step "$target: tests/demo.rs against this binary${BOARD_RUNNER:+ under $BOARD_RUNNER}"
    log="$tmp/demo-$target.log"
    set +e
    PAHO_MQTT_SYNC_DEMO_BIN=$bin PAHO_MQTT_SYNC_DEMO_RUNNER=$BOARD_RUNNER \
        cargo nextest run --test demo --no-fail-fast -E "$demo_filter" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || die "the demo tests failed against the $target binary (exit $rc)"
    for t in "${required_demo_tests[@]}"; do
        grep -Eq "PASS \[.*\] .*demo $t\$" "$log" || die "demo test $t did not run and pass for $target"
    done

    step "$target: size and memory (${duration}s against Mosquitto${BOARD_RUNNER:+, under $BOARD_RUNNER})"
    size=$(stat -c %s "$bin")
    run_demo "$target" "$bin"
    if [ -n "$BOARD_NATIVE" ]; then
        own="$(commas "$peak_kb") kB"
        how="native, VmHWM"
    elif [[ $target == armv7-* ]] && [ "$guest_kb" -ge 256 ]; then
        own="$(commas "$guest_kb") kB"
        how="qemu, the guest's pages"
    else
        idle=$(idle_peak)
        own="≈ $(commas $((peak_kb - idle))) kB"
        how="qemu $(commas "$peak_kb") kB − idle qemu $(commas "$idle") kB"
    fi
    echo "stripped size $size bytes; peak RSS: $own ($how)"
    case "$BOARD_LIBC" in
        musl) needs="nothing (static)" ;;
        glibc) needs="glibc ≥ 2.17 (newest symbol version used: GLIBC_$(board_glibc_needed "$bin")), its loader \`$(LC_ALL=C readelf -lW "$bin" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')\`" ;;
    esac
    rows+=("| \`$target\` | $(commas "$size") bytes ($(kib "$size")) | $own | $how | $needs |")
    timings+=("$(printf '%4ss  %s' $(($(date +%s) - t0)) "$target")")
done

# ------------------------------------------------------------------ TLS, static
ssl_row=''
if [ -z "${BOARD_SKIP_SSL:-}" ] && printf '%s\n' "${targets[@]}" | grep -qx x86_64-unknown-linux-musl; then
    t0=$(date +%s)
    target=x86_64-unknown-linux-musl
    step "$target --ssl: scripts/build-board.sh --ssl (OpenSSL built from source, linked in)"
    bin=$(scripts/build-board.sh --ssl "$target" | tail -1) || die "scripts/build-board.sh --ssl $target failed"
    board_check "$target" "$bin"
    echo "check: $BOARD_CHECK_SUMMARY"
    grep -aq 'OpenSSL 3\.' "$bin" || die "$bin carries no OpenSSL 3 (no version string)"
    ssl_size=$(stat -c %s "$bin")
    ssl_row="| \`$target\`, \`--ssl\` (TLS, OpenSSL $(grep -aoE 'OpenSSL 3\.[0-9]+\.[0-9]+' "$bin" | head -1 | cut -d' ' -f2) inside) | $(commas "$ssl_size") bytes ($(kib "$ssl_size")) | (not run) | | nothing (static) |"

    step "$target --ssl: tests/tls.rs as a static musl binary with OpenSSL inside (TLS round trips)"
    log="$tmp/tls.log"
    set +e
    (
        board_env "$target"
        # The same profile as the binary above: OpenSSL is built once.
        cargo nextest run --cargo-profile release-small --target "$target" \
            --features vendored-openssl --test tls --no-fail-fast
    ) 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || die "the TLS tests failed for the static $target build (exit $rc)"
    grep -Eq 'PASS \[.*\] .*tls ' "$log" || die "no TLS test ran"
    # The test binary that made those round trips is itself static.
    tls_bin=$(
        board_env "$target"
        cargo nextest list --cargo-profile release-small --target "$target" \
            --features vendored-openssl --test tls --message-format json 2>/dev/null |
            python3 -c 'import json,sys; print(*[s["binary-path"] for s in json.load(sys.stdin)["rust-suites"].values()])'
    ) || die "cannot find the TLS test binary (cargo nextest list)"
    board_check "$target" "$tls_bin"
    echo "the TLS test binary $tls_bin: $BOARD_CHECK_SUMMARY"
    timings+=("$(printf '%4ss  %s' $(($(date +%s) - t0)) "$target --ssl + TLS tests")")
fi

# ------------------------------------------------------------------ table
step "done: the table of README.md's \"Which build for which board\""
echo "rustc $(rustc --version | cut -d' ' -f2) (armv7 musl: $(rustc +"$BOARD_NIGHTLY" --version 2>/dev/null | cut -d' ' -f2) with std built from source)," \
    "zig $("$BOARD_TOOLS/bin/python3" -m ziglang version), cargo-zigbuild $BOARD_ZIGBUILD_VERSION, qemu-user $(qemu-arm-static --version | head -1 | sed 's/.*version \([0-9.]*\).*/\1/');" \
    "each demo ran ${duration}s with --interval 1 and an LED command every second"
echo
echo "| Build (\`scripts/build-board.sh ...\`) | Stripped size | Peak RSS of the demo | Measured as | Needs on the board |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
[ -z "$ssl_row" ] || echo "$ssl_row"
echo
echo "timings:"
printf '  %s\n' "${timings[@]}"
echo "all passed in $(($(date +%s) - start))s"
