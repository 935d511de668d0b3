#!/usr/bin/env bash
# Tests the deployment files of the board demo (examples/mqtt_client/deploy/)
# with the static x86_64 musl build (scripts/build-board.sh), on the PC:
#
#   1. systemd: mqtt_client.service, installed with the binary and the
#      environment file into a scratch root, passes `systemd-analyze verify
#      --root` with no message at all (a broken copy must draw one, to show
#      the file was read); and it says what the deployment promises (restart
#      on failure but not on exit 2 or 64, credentials from a root-only
#      environment file, after the network is online). No running systemd
#      is needed: this works as root in a container.
#   2. BusyBox: S90mqtt_client, run by BusyBox's sh with BusyBox's
#      start-stop-daemon, mkfifo, ls, sleep in front of PATH (Debian's busybox
#      package), against a private Mosquitto with a password: status (stopped),
#      start -> retained Online, temperature, LED; status (running); start
#      again (no second copy); restart (a new process, Online); stop ->
#      retained Offline, process and pid file gone; the demo's log reached
#      logger; the password is not on the command line; a wrong password ->
#      start says FAIL; a config file others can read -> a warning.
#
# Usage: scripts/deploy-test.sh
#   BOARD_BIN=<path>  test this x86_64 demo binary instead of building one
#   SKIP_INSTALL=1    never install; fail if something is missing
# As root it installs what is missing (busybox, systemd's systemd-analyze,
# mosquitto, mosquitto-clients). Talks to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
step() { printf '\n\033[1m== %s (%ss)\033[0m\n' "$*" "$(($(date +%s) - start))"; }
deploy=examples/mqtt_client/deploy

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=scripts/board-env.sh
. scripts/board-env.sh
die() { _board_die "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/deploy-test.XXXXXX")
pids=()
cleanup() {
    # The demo, if a failed test left it running.
    if [ -f "$tmp/run/mqtt_client.pid" ]; then kill "$(cat "$tmp/run/mqtt_client.pid")" 2>/dev/null || true; fi
    for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------------ tools
step "tools"
# Each is checked by using it.
probe_busybox() (
    d=$(mktemp -d) && trap 'rm -rf "$d"' EXIT
    busybox start-stop-daemon -S -b -m -p "$d/pid" -x /bin/sleep -- 5 &&
        busybox sleep 0.3 && busybox start-stop-daemon -K -t -q -p "$d/pid" -x /bin/sleep &&
        busybox start-stop-daemon -K -q -p "$d/pid" -x /bin/sleep &&
        busybox mkfifo "$d/fifo" && [ -p "$d/fifo" ]
)
probe_systemd_analyze() (
    d=$(mktemp -d) && trap 'rm -rf "$d"' EXIT
    printf '[Service]\nExecStart=/bin/true\n' >"$d/probe.service"
    systemd-analyze verify "$d/probe.service"
)
# mosquitto prints its usage (and exits 3) when it runs at all; the tests
# start it as /usr/sbin/mosquitto.
probe_mosquitto() (
    d=$(mktemp -d) && trap 'rm -rf "$d"' EXIT
    grep -q '^mosquitto version' <<<"$(/usr/sbin/mosquitto -h 2>&1)" &&
        mosquitto_passwd -c -b "$d/p" u p </dev/null && grep -q '^u:' "$d/p"
)
probe_clients() {
    grep -q '^mosquitto_pub' <<<"$(mosquitto_pub --help 2>&1)" &&
        grep -q '^mosquitto_sub' <<<"$(mosquitto_sub --help 2>&1)"
}
need=()
probe_busybox >/dev/null 2>&1 || need+=(busybox)
probe_systemd_analyze >/dev/null 2>&1 || need+=(systemd)
probe_mosquitto >/dev/null 2>&1 || need+=(mosquitto)
probe_clients >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
    _board_apt "${need[@]}"
    probe_busybox || die "busybox's start-stop-daemon does not work"
    probe_systemd_analyze || die "systemd-analyze verify does not work"
    probe_mosquitto || die "mosquitto or mosquitto_passwd does not work"
    probe_clients || die "mosquitto_pub/mosquitto_sub do not work"
fi
echo "busybox: $(busybox | head -1)"
echo "systemd-analyze: $(systemd-analyze --version | head -1)"

if [ -n "${BOARD_BIN:-}" ]; then
    bin=$BOARD_BIN
else
    step "the static x86_64 build: scripts/build-board.sh x86_64-unknown-linux-musl"
    bin=$(scripts/build-board.sh x86_64-unknown-linux-musl | tail -1) || die "scripts/build-board.sh failed"
fi
[ -x "$bin" ] || die "no demo binary at $bin"
echo "demo: $bin"

# ------------------------------------------------------------------ systemd
step "systemd: systemd-analyze verify mqtt_client.service (in a scratch root)"
unit=$deploy/mqtt_client.service
sroot=$tmp/sysroot
units=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
[ -d "$units" ] || units=/usr/lib/systemd/system
[ -f "$units/multi-user.target" ] || units=/lib/systemd/system
[ -f "$units/network-online.target" ] || die "systemd's own units (network-online.target) not found in $units"
mkdir -p "$sroot/usr/lib/systemd" "$sroot/usr/local/bin" "$sroot/etc/default" "$sroot/etc/systemd/system"
cp -r "$units" "$sroot/usr/lib/systemd/system"
# What README.md's three steps install on a board.
install -m 755 "$bin" "$sroot/usr/local/bin/mqtt_client"
install -m 600 "$deploy/mqtt_client.env" "$sroot/etc/default/mqtt_client"
install -m 644 "$unit" "$sroot/etc/systemd/system/mqtt_client.service"
out=$(systemd-analyze verify --root="$sroot" mqtt_client.service 2>&1) ||
    die "systemd-analyze verify failed:" "$out"
[ -z "$out" ] || die "systemd-analyze verify has something to say:" "$out"
echo "verify: no message, exit 0"
# Control: a unit with a bad line and a missing program must draw messages.
sed -e 's/^Restart=on-failure/Restart=sometimes/' -e 's#^ExecStart=/usr/local/bin/#ExecStart=/nowhere/#' \
    "$unit" >"$sroot/etc/systemd/system/broken.service"
out=$(systemd-analyze verify --root="$sroot" broken.service 2>&1) || true
{ grep -q 'sometimes' <<<"$out" && grep -q '/nowhere/mqtt_client' <<<"$out"; } ||
    die "systemd-analyze verify did not object to a broken copy of the unit; it said:" "$out"
echo "control: a broken copy draws: $(tr '\n' ' ' <<<"$out" | cut -c1-160)..."
# What the unit promises, line by line.
# shellcheck disable=SC2016  # $MQTT_CLIENT_ARGS is systemd's, not ours
for line in 'Restart=on-failure' 'RestartPreventExitStatus=2 64' 'EnvironmentFile=/etc/default/mqtt_client' \
    'Wants=network-online.target' 'After=network-online.target' 'ExecStart=/usr/local/bin/mqtt_client $MQTT_CLIENT_ARGS' \
    'WantedBy=multi-user.target'; do
    grep -qxF "$line" "$unit" || die "$unit lacks the line: $line"
    echo "  $line"
done
# The exit codes the unit relies on (2: refused, 64: bad command line) are
# the demo's: tests/demo.rs checks them (wrong_password_exits_2,
# help_and_bad_arguments), for every board build in scripts/board-test.sh.
rc=0
"$bin" --interval 0 2>/dev/null || rc=$?
[ "$rc" = 64 ] || die "a bad command line made the demo exit $rc, not 64"

# ------------------------------------------------------------------ BusyBox
step "BusyBox: S90mqtt_client start / status / restart / stop against a private Mosquitto"
bb=$tmp/busybox-bin
mkdir -p "$bb" "$tmp/run"
busybox --install -s "$bb"
# logger: records what reaches syslog (no syslogd runs here).
rm -f "$bb/logger"
cat >"$bb/logger" <<EOF
#!/bin/sh
# logger -t TAG: each line of stdin as "TAG: line"
while IFS= read -r line; do echo "\$2: \$line"; done >>"$tmp/syslog"
EOF
chmod +x "$bb/logger"

# The broker, with a user.
mosquitto_passwd -c -b "$tmp/passwd" board 's3cret pass' </dev/null
port=''
for _ in 1 2 3 4 5 6 7 8 9 10; do
    try=$((20000 + RANDOM % 10000))
    {
        echo "listener $try 127.0.0.1"
        echo "allow_anonymous false"
        echo "password_file $tmp/passwd"
        echo "persistence false"
        [ "$(id -u)" != 0 ] || echo "user root"
    } >"$tmp/mosquitto.conf"
    /usr/sbin/mosquitto -c "$tmp/mosquitto.conf" </dev/null >"$tmp/mosquitto.log" 2>&1 &
    mpid=$!
    for _ in $(seq 100); do
        kill -0 "$mpid" 2>/dev/null || break
        if mosquitto_pub -h 127.0.0.1 -p "$try" -u board -P 's3cret pass' -t probe -m x 2>/dev/null; then
            port=$try
            break
        fi
        sleep 0.05
    done
    if [ -n "$port" ]; then pids+=("$mpid"); break; fi
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
done
[ -n "$port" ] || { cat "$tmp/mosquitto.log" >&2; die "could not start mosquitto"; }
echo "broker: 127.0.0.1:$port, user board"
sub() { mosquitto_sub -h 127.0.0.1 -p "$port" -u board -P 's3cret pass' "$@"; }
retained() { sub -t "$1" -C 1 -W 3 2>/dev/null || true; }
wait_for() { # <seconds> <command...>
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}
retained_is() { [ "$(retained "$1")" = "$2" ]; }

# The fake board and the configuration, as /etc/default/mqtt_client.
mkdir -p "$tmp/led"
echo 47000 >"$tmp/temp"
echo mmc0 >"$tmp/led/trigger"
echo 0 >"$tmp/led/brightness"
prefix=deploytest/$$
write_config() { # <password>
    cat >"$tmp/mqtt_client.conf" <<EOF
MQTT_BROKER=tcp://127.0.0.1:$port
MQTT_CLIENT_ID=deploy-$$
MQTT_USERNAME=board
MQTT_PASSWORD="$1"
MQTT_CLIENT_ARGS="--topic-prefix $prefix --interval 1 --temp-path $tmp/temp --led-path $tmp/led"
EOF
    chmod 600 "$tmp/mqtt_client.conf"
}
write_config 's3cret pass'
init() { # <command>: the init script as BusyBox init runs it, with BusyBox's tools
    env -i PATH="$bb:/usr/sbin:/usr/bin:/sbin:/bin" MQTT_CLIENT_BIN="$bin" \
        MQTT_CLIENT_CONFIG="$tmp/mqtt_client.conf" MQTT_CLIENT_PIDFILE="$tmp/run/mqtt_client.pid" \
        "$bb/sh" "$deploy/S90mqtt_client" "$1"
}
expect() { # <want rc> <command>: runs `init <command>`, prints its output, checks its exit code
    local want=$1 rc=0
    shift
    out=$(init "$1" 2>&1) || rc=$?
    echo "  S90mqtt_client $1 -> exit $rc: $out"
    [ "$rc" = "$want" ] || die "S90mqtt_client $1 exited $rc, not $want: $out" "syslog:" "$(cat "$tmp/syslog" 2>/dev/null)"
}
pid_of() { cat "$tmp/run/mqtt_client.pid"; }
# Whether a process runs (an exited one that nobody reaped, a zombie, does
# not: here PID 1 may not be an init that reaps the daemons it inherits).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }

expect 3 status
grep -q stopped <<<"$out" || die "status before start does not say stopped"
expect 0 start
grep -q 'OK$' <<<"$out" || die "start did not say OK"
wait_for 10 retained_is "$prefix/will" Online || die "no retained Online after start"
echo "  retained $prefix/will = Online"
pid1=$(pid_of)
[ "$(tr '\0' ' ' <"/proc/$pid1/cmdline" | cut -d' ' -f1)" = "$bin" ] || die "pid $pid1 in the pid file is not the demo"
if tr '\0' ' ' <"/proc/$pid1/cmdline" | grep -q 's3cret'; then die "the password is on the demo's command line"; fi
echo "  pid $pid1 is the demo; the password is not on its command line"
wait_for 10 retained_is "$prefix/temperature" 47000 || die "no temperature published"
mosquitto_pub -h 127.0.0.1 -p "$port" -u board -P 's3cret pass' -t "$prefix/led" -m 1
led_on() { [ "$(cat "$tmp/led/trigger")" = none ] && [ "$(cat "$tmp/led/brightness")" = 1 ]; }
wait_for 10 led_on || die "LED command 1 had no effect"
echo "  temperature 47000 published; LED 1 -> on"
expect 0 status
grep -q "running (pid $pid1)" <<<"$out" || die "status does not name pid $pid1"
expect 0 start
grep -q 'already running' <<<"$out" || die "a second start did not say already running"
[ "$(pgrep -c -f "^$bin " || true)" = 1 ] || die "a second start started a second demo"
expect 0 restart
pid2=$(pid_of)
[ "$pid2" != "$pid1" ] || die "restart kept the same process"
alive "$pid1" && die "the old demo (pid $pid1) still runs after restart"
wait_for 10 retained_is "$prefix/will" Online || die "no retained Online after restart"
echo "  restart: pid $pid1 -> $pid2, Online"
expect 0 stop
grep -q 'OK$' <<<"$out" || die "stop did not say OK"
alive "$pid2" && die "the demo (pid $pid2) still runs after stop"
[ ! -e "$tmp/run/mqtt_client.pid" ] || die "stop left the pid file"
will=$(retained "$prefix/will")
[ "$will" = Offline ] || die "retained will after stop is '$will', not Offline"
echo "  retained $prefix/will = Offline"
expect 3 status
expect 0 stop
grep -q 'not running' <<<"$out" || die "stop when stopped does not say not running"
grep -q '^mqtt_client: .*connected to' "$tmp/syslog" || die "the demo's log did not reach logger:" "$(cat "$tmp/syslog")"
echo "  syslog (logger -t mqtt_client) got $(wc -l <"$tmp/syslog") lines, e.g.: $(grep -m1 'connected to' "$tmp/syslog")"

# A wrong password: the broker refuses, the demo exits 2, start says FAIL.
write_config 'wrong'
expect 1 start
grep -q 'FAIL' <<<"$out" || die "start with a wrong password did not say FAIL"
grep -q 'not authorized' "$tmp/syslog" || die "the refusal is not in the log"
expect 3 status
# A configuration file others can read: a warning (and it still starts).
write_config 's3cret pass'
chmod 644 "$tmp/mqtt_client.conf"
expect 0 start
grep -q 'warning: .*others can read it' <<<"$out" || die "no warning for a world-readable config"
expect 0 stop

step "deployment tests passed in $(($(date +%s) - start))s"
