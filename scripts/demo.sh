#!/usr/bin/env bash
# The board demo end to end, on any Linux PC: no board and no broker needed.
#
# Starts a private Mosquitto on a free 127.0.0.1 port (never 1883), makes a
# fake sysfs (thermal zone + LED) in a temp dir, runs examples/mqtt_client
# against both, shows the temperature messages, drives the LED with `1`, `2`,
# `0`, stops the demo with SIGINT, shows the retained `Offline`, and cleans up
# (also on failure or Ctrl-C). Exits non-zero if anything did not happen.
#
# Usage: scripts/demo.sh
#   On Debian/Ubuntu as root it installs what is missing (mosquitto,
#   mosquitto-clients, gcc, and cmake if the build still uses it), each
#   checked by using it (scripts/lib.sh); Rust itself must be there (rustup).
#   SKIP_INSTALL=1 never installs.
#   DEMO_INTERVAL=2 sets the temperature interval in seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
interval=${DEMO_INTERVAL:-2}
prefix=dt_mqtt

if [ -t 1 ]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold='' dim='' off=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
say() { printf '   %s\n' "$*"; }
die() { printf '\ndemo.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
step "1/7 Tools"
have() { command -v "$1" >/dev/null 2>&1; }
if ! have cargo; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    else
        cat >&2 <<'EOF'
demo.sh: Rust (cargo) is not installed. Install it with rustup, then run this again:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
    . "$HOME/.cargo/env"
EOF
        exit 1
    fi
fi
# Each need is checked by using it; missing packages are installed as root
# with apt-get (scripts/lib.sh).
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
need mosquitto "Mosquitto starts on 127.0.0.1 ($mosquitto_bin)" probe_mosquitto "$mosquitto_bin"
need mosquitto-clients "mosquitto_pub and mosquitto_sub pass a message through it" \
    probe_mosquitto_clients "$mosquitto_bin"
need "gcc libc6-dev" "a C compiler that builds and runs a program (cc)" probe_cc cc
# shellcheck disable=SC2119  # no cargo arguments: the default build
if build_uses_cmake; then
    need "cmake make" "cmake builds a C project (the cmake crate)" probe_cmake cc
fi
install_needs
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
say "mosquitto: $mosquitto_bin, $(cargo --version)"

# ------------------------------------------------------------------ build
step "2/7 Build: cargo build --example mqtt_client"
cargo build --quiet --example mqtt_client
bin="${CARGO_TARGET_DIR:-$root/target}/debug/examples/mqtt_client"
[ -x "$bin" ] || die "no binary at $bin"
say "$bin"

# ------------------------------------------------------------------ clean-up
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqtt-demo.XXXXXX")
pids=() # background helpers (mosquitto, mosquitto_sub)
demo=   # the demo, while it runs
cleanup() {
    local rc=$?
    # The demo first (it says Offline to a broker that is still there).
    if [ -n "$demo" ]; then kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ broker
step "3/7 A private Mosquitto on 127.0.0.1"
port=
for _ in $(seq 1 30); do
    # Below the ephemeral range, so no client's local port can take it.
    try=$(( 20000 + RANDOM % 12000 ))
    { cat >"$tmp/mosquitto.conf" <<EOF
listener $try 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
EOF
    }
    [ "$(id -u)" = 0 ] && echo "user root" >>"$tmp/mosquitto.conf"
    "$mosquitto_bin" -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.log" &
    mpid=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$mpid" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then port=$try; break; fi
        sleep 0.05
    done
    if [ -n "$port" ]; then pids+=("$mpid"); break; fi
    kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true
done
[ -n "$port" ] || { cat "$tmp/mosquitto.log" >&2; die "could not start mosquitto (its log is above)"; }
broker="tcp://127.0.0.1:$port"
say "broker: $broker (pid $mpid)"
sub() { mosquitto_sub -h 127.0.0.1 -p "$port" "$@"; }
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" "$@"; }

# ------------------------------------------------------------------ fake sysfs
step "4/7 A fake sysfs in $tmp"
mkdir -p "$tmp/thermal_zone0" "$tmp/leds/sys-led"
echo 45678 >"$tmp/thermal_zone0/temp"
echo mmc0 >"$tmp/leds/sys-led/trigger"
echo 0 >"$tmp/leds/sys-led/brightness"
led() { printf 'trigger=%s brightness=%s' "$(cat "$tmp/leds/sys-led/trigger")" "$(cat "$tmp/leds/sys-led/brightness")"; }
say "thermal_zone0/temp = 45678 (millidegrees), leds/sys-led: $(led)"

# Everything the demo publishes, as a user's phone app would see it.
# (Not through the `sub` function: `$!` must be mosquitto_sub itself.)
mosquitto_sub -h 127.0.0.1 -p "$port" -v -t "$prefix/#" -F "   ${dim}[mosquitto_sub]${off} %t %p" &
pids+=($!)
sleep 0.3

# ------------------------------------------------------------------ the demo
step "5/7 Run: mqtt_client --broker $broker --interval $interval ..."
say "(its log lines go to stderr, with timestamps; [mosquitto_sub] lines are what the broker delivers)"
"$bin" --broker "$broker" --interval "$interval" \
    --temp-path "$tmp/thermal_zone0/temp" --led-path "$tmp/leds/sys-led" 2>&1 &
demo=$!

wait_for() { # wait_for <seconds> <command...>: polls until the command succeeds
    local deadline=$(( SECONDS + $1 )); shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}
retained() { sub -t "$1" -C 1 -W 3 2>/dev/null || true; }
retained_is() { [ "$(retained "$1")" = "$2" ]; }

wait_for 10 retained_is "$prefix/will" Online || die "no retained Online"
sleep "$interval"
step "   The SoC warms up: 45678 -> 51234"
echo 51234 >"$tmp/thermal_zone0/temp"
wait_for 10 retained_is "$prefix/temperature" 51234 || die "temperature 51234 never published"
sleep 0.2

step "6/7 LED commands (mosquitto_pub -t $prefix/led -m ...)"
# shellcheck disable=SC2053 # $want_brightness may be a pattern
led_is() { [[ $(cat "$tmp/leds/sys-led/trigger") == "$want_trigger" && $(cat "$tmp/leds/sys-led/brightness") == $want_brightness ]]; }
for cmd in 1 2 0; do
    case $cmd in
        1) want_trigger=none want_brightness=1 what="on" ;;
        2) want_trigger=heartbeat want_brightness=* what="heartbeat" ;;
        0) want_trigger=none want_brightness=0 what="off" ;;
    esac
    say "${bold}LED $cmd ($what)${off}"
    pub -t "$prefix/led" -m "$cmd"
    wait_for 5 led_is || die "LED $cmd: files are $(led)"
    say "   -> $(led)"
    sleep 0.5
done
say "${bold}LED blink (not a command)${off}"
pub -t "$prefix/led" -m blink
sleep 0.5
say "   -> $(led) (unchanged)"

step "7/7 Ctrl-C: kill -INT $demo"
kill -INT "$demo"
rc=0
wait "$demo" || rc=$?
demo=
[ "$rc" = 0 ] || die "mqtt_client exited with $rc"
say "mqtt_client exited with code 0"
sleep 0.2
say "retained on the broker now (what a new subscriber gets):"
will=$(retained "$prefix/will")
temp=$(retained "$prefix/temperature")
say "   $prefix/will        = $will"
say "   $prefix/temperature = $temp"
[ "$will" = Offline ] || die "retained will is '$will', not Offline"

printf '\n%sDemo finished: OK%s (cleaning up the broker and %s)\n' "$bold" "$off" "$tmp"
