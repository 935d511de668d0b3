#!/usr/bin/env bash
# System-library mode (no `bundled` feature): the whole test suite against a
# Paho C that is already there, the way a C user or a board image has it.
#
#   x86_64 (default): Debian's libpaho-mqtt-dev (Paho C 1.3.12, shared
#       library) from /usr, installed if missing. Checks the 1.3.12 headers'
#       struct layouts against the 1.3.16 bindings, runs every test with
#       --no-default-features, and checks the test binaries really load
#       /usr/lib/<multiarch>/libpaho-mqtt3c.so.1.
#   armv7 | aarch64: a board-style sysroot in <target dir>/paho-sysroot/<arch>:
#       Debian's <arch> packages libpaho-mqtt1.3, libpaho-mqtt-dev, libc6,
#       libc6-dev, libgcc-s1 and linux-libc-dev, downloaded through a private
#       apt view (the machine's apt and dpkg state are not changed) and
#       unpacked. The build uses it as a board SDK's sysroot is used:
#       PAHO_MQTT_C_LIB_DIR / PAHO_MQTT_C_INCLUDE_DIR point into it and the
#       linker gets --sysroot (CARGO_TARGET_<TRIPLE>_RUSTFLAGS); the layout
#       check compiles against its headers (CFLAGS_<triple>=--sysroot=...);
#       every test runs under qemu-user with the sysroot as the target's root
#       file system (-L), so its own ld.so and libc load the library.
#   --multiarch (with armv7/aarch64): use Debian multiarch instead
#       (dpkg --add-architecture; apt-get install libpaho-mqtt-dev:<arch>),
#       as root. If apt cannot install it, apt's error is shown, the added
#       architecture is removed again and the script fails.
#
# Usage: scripts/system-lib-test.sh [x86_64 | armv7 | aarch64] [--multiarch]
#   SKIP_INSTALL=1   never install or download; fail if something is missing
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
step() { printf '\n\033[1m== [system lib %s] %s (%ss)\033[0m\n' "${TARGET:-?}" "$*" $(( $(date +%s) - start )); }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh

target=x86_64 multiarch=''
for a in "$@"; do
    case "$a" in
        --multiarch) multiarch=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "system-lib-test.sh: unknown option $a" >&2; exit 2 ;;
        *) target=$a ;;
    esac
done
cross_target "$target" || exit 2
[ -z "$multiarch" ] || [ -z "$NATIVE" ] || cross_die "--multiarch is for the ARM targets"
[ -n "$NATIVE" ] || cross_install "$TARGET"   # cross gcc, qemu-user, the Rust target, ...

tmp=$(mktemp -d "${TMPDIR:-/tmp}/system-lib-test.XXXXXX")
added_arch=''
cleanup() {
    rm -rf "$tmp"
    if [ -n "$added_arch" ]; then
        echo "removing the $added_arch architecture added by this script"
        dpkg --remove-architecture "$added_arch" || true
    fi
}
trap cleanup EXIT

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# ------------------------------------------------------------------ the library
if [ -n "$NATIVE" ]; then
    step "1/4 Debian's libpaho-mqtt-dev"
    # Checked by use (scripts/lib.sh): a program with MQTTClient.h links
    # -lpaho-mqtt3c and runs.
    need "gcc libc6-dev" "a C compiler that builds and runs a program (cc)" probe_cc cc
    need libpaho-mqtt-dev "Paho C from /usr: MQTTClient.h + -lpaho-mqtt3c build a program that runs" \
        probe_c_lib cc MQTTClient.h 'MQTTClient_getVersionInfo()' -lpaho-mqtt3c
    install_needs
    dpkg-query -W -f='${Package}:${Architecture} ${Version}\n' libpaho-mqtt-dev libpaho-mqtt1.3 ||
        cross_die "libpaho-mqtt-dev is not installed"
    headers=/usr/include
    libdir=/usr/lib/$GNU_TRIPLE
    unset PAHO_MQTT_C_LIB_DIR PAHO_MQTT_C_INCLUDE_DIR
elif [ -n "$multiarch" ]; then
    step "1/4 Debian multiarch: libpaho-mqtt-dev:$DEB_ARCH"
    if ! dpkg-query -W "libpaho-mqtt1.3:$DEB_ARCH" >/dev/null 2>&1; then
        [ -z "${SKIP_INSTALL:-}" ] || cross_die "libpaho-mqtt1.3:$DEB_ARCH is not installed (SKIP_INSTALL is set)"
        [ "$(id -u)" = 0 ] || cross_die "--multiarch installs packages: run as root"
        if ! dpkg --print-foreign-architectures | grep -x "$DEB_ARCH" >/dev/null; then
            dpkg --add-architecture "$DEB_ARCH"
            added_arch=$DEB_ARCH
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq 2>&1 | tee "$tmp/apt-update.log" || true
        if ! apt-get install -y --no-install-recommends "libpaho-mqtt-dev:$DEB_ARCH" 2>&1 | tee "$tmp/apt.log" ||
            ! dpkg-query -W "libpaho-mqtt1.3:$DEB_ARCH" >/dev/null 2>&1; then
            mapfile -t why < <(grep -E '^(E:|W:| )' "$tmp/apt-update.log" "$tmp/apt.log" | cut -c1-200 | head -20)
            cross_die "apt-get install libpaho-mqtt-dev:$DEB_ARCH failed (multiarch); apt said:" "${why[@]}"
        fi
        added_arch=''   # installed: keep the architecture
    fi
    dpkg-query -W -f='${Package}:${Architecture} ${Version}\n' "libpaho-mqtt1.3:$DEB_ARCH"
    # The .so link for `-lpaho-mqtt3c` comes with the -dev package; the
    # headers are architecture independent (/usr/include).
    headers=/usr/include
    libdir=/usr/lib/$GNU_TRIPLE
    [ -e "$libdir/libpaho-mqtt3c.so" ] || cross_die "$libdir/libpaho-mqtt3c.so missing (libpaho-mqtt-dev:$DEB_ARCH)"
    # Debian's libc6:<arch> is in / now: the machine's root is the target's root.
    QEMU_SYSROOT=/
else
    step "1/4 a $DEB_ARCH sysroot from Debian packages (Paho C, libc)"
    sysroot="$target_dir/paho-sysroot/$DEB_ARCH"
    debs="$target_dir/paho-sysroot/debs-$DEB_ARCH"
    packages=(libpaho-mqtt1.3 libpaho-mqtt-dev libc6 libc6-dev libgcc-s1 linux-libc-dev)
    have_all=1
    for p in "${packages[@]}"; do
        compgen -G "$debs/${p}_*.deb" >/dev/null || have_all=''
    done
    if [ -z "$have_all" ]; then
        [ -z "${SKIP_INSTALL:-}" ] || cross_die "no $DEB_ARCH Paho C packages in $debs (SKIP_INSTALL is set)"
        # A private apt view for $DEB_ARCH: own lists, cache and (empty) dpkg
        # status, so the machine's apt and dpkg state are not touched.
        view="$tmp/apt"
        mkdir -p "$view/lists/partial" "$view/cache/archives/partial" "$debs"
        : >"$view/status"
        aptv=(-o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures::=$DEB_ARCH"
            -o "Dir::State::Lists=$view/lists" -o "Dir::State::status=$view/status"
            -o "Dir::Cache=$view/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
        # Some index (e.g. a security suite mid-sync) may fail; what counts is
        # whether the packages can be downloaded below.
        apt-get "${aptv[@]}" update 2>&1 | grep -E '^(E|W):' || true
        rm -f "$debs"/*.deb
        (cd "$debs" && apt-get "${aptv[@]}" download "${packages[@]}") ||
            cross_die "cannot download Debian's $DEB_ARCH packages ${packages[*]}"
    fi
    rm -rf "$sysroot"
    mkdir -p "$sysroot"
    for deb in "$debs"/*.deb; do
        echo "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$sysroot"
    done
    [ -e "$sysroot/lib/$GNU_TRIPLE/libc.so.6" ] || cross_die "no libc.so.6 in the sysroot"
    headers=$sysroot/usr/include
    libdir=$sysroot/usr/lib/$GNU_TRIPLE
    QEMU_SYSROOT=$sysroot
    # Link against the sysroot's libc (as against a board SDK), and compile
    # the layout program against its headers.
    # Cargo ignores CARGO_TARGET_<TARGET>_RUSTFLAGS whenever RUSTFLAGS is
    # set, even to nothing (scripts/test.sh exports it empty).
    if [ -n "${RUSTFLAGS:-}" ]; then
        rustflags_var=RUSTFLAGS
    else
        unset RUSTFLAGS
        rustflags_var="CARGO_TARGET_${TARGET_VAR_UC}_RUSTFLAGS"
    fi
    export "$rustflags_var=${!rustflags_var:+${!rustflags_var} }-C link-arg=--sysroot=$sysroot"
    export "CFLAGS_$TARGET_VAR=--sysroot=$sysroot"
    echo "linker   $rustflags_var=${!rustflags_var}"
fi
[ -f "$headers/MQTTClient.h" ] || cross_die "no MQTTClient.h in $headers"
[ -e "$libdir/libpaho-mqtt3c.so" ] || cross_die "no libpaho-mqtt3c.so in $libdir"
echo "headers  $headers"
echo "library  $(readlink -f "$libdir/libpaho-mqtt3c.so")"
if [ -z "$NATIVE" ]; then
    export PAHO_MQTT_C_LIB_DIR=$libdir PAHO_MQTT_C_INCLUDE_DIR=$headers
    # layout-check.sh and the runner take the target root from here.
    export QEMU_LD_PREFIX=$QEMU_SYSROOT
    cross_runner
    echo "runner   $RUNNER_VAR=${!RUNNER_VAR}"
fi
target_args=()
[ -n "$NATIVE" ] || target_args=(--target "$TARGET")

# ------------------------------------------------------------------ layout
step "2/4 layout: these headers vs the committed bindings"
scripts/layout-check.sh --headers "$headers" "$TARGET" -- --no-default-features

# ------------------------------------------------------------------ tests
step "3/4 the whole test suite, --no-default-features"
cargo nextest run "${target_args[@]+"${target_args[@]}"}" --no-default-features --no-fail-fast ||
    cross_die "tests failed against the system Paho C ($libdir)"
# The run above used the crate's default workarounds for the unpatched
# library; the lifecycle races again with its opt-in anchor client.
step "3/4 the lifecycle tests with the anchor client (PAHO_MQTT_SYNC_TEST_ANCHOR=1)"
PAHO_MQTT_SYNC_TEST_ANCHOR=1 cargo nextest run "${target_args[@]+"${target_args[@]}"}" \
    --no-default-features --no-fail-fast --test lifecycle --test callbacks ||
    cross_die "lifecycle tests with the anchor client failed against the system Paho C"
if [ -n "$NATIVE" ] && [ -f tests/tls.rs ] &&
    probe_c_lib cc MQTTClient.h 'MQTTClient_getVersionInfo()' -lpaho-mqtt3cs -lssl -lcrypto >/dev/null 2>&1; then
    step "3/4 TLS tests against the system libpaho-mqtt3cs (--features ssl)"
    cargo nextest run --no-default-features --features ssl --no-fail-fast --lib --test tls ||
        cross_die "TLS tests failed against the system Paho C"
fi

# ------------------------------------------------------------------ proof
step "4/4 the test binaries load the system library"
bins=$(cargo nextest list "${target_args[@]+"${target_args[@]}"}" --no-default-features \
    --message-format json 2>/dev/null | python3 -c '
import json, sys
for b in json.load(sys.stdin)["rust-suites"].values():
    print(b["binary-path"])')
[ -n "$bins" ] || cross_die "cargo nextest list found no test binaries"
checked=0
for bin in $bins; do
    # (grep without -q: it reads all input, so the writer never gets SIGPIPE,
    # which pipefail would turn into a false "not found")
    if LC_ALL=C readelf -d "$bin" | grep 'NEEDED.*\[libpaho-mqtt3c\.so\.1\]' >/dev/null; then
        checked=$((checked + 1))
    fi
done
[ "$checked" -gt 0 ] || cross_die "no test binary needs libpaho-mqtt3c.so.1: the system library was not linked"
echo "$checked test binaries need libpaho-mqtt3c.so.1 (none carries a static copy of Paho C)"
nm_cmd='nm'
[ -n "$NATIVE" ] || nm_cmd=$GNU_TRIPLE-nm
for bin in $bins; do
    syms=$(LC_ALL=C "$nm_cmd" "$bin") || cross_die "$nm_cmd cannot read $bin"
    ! grep ' [Tt] MQTTClient_create$' <<<"$syms" >/dev/null ||
        cross_die "$bin contains Paho C itself (static); expected the shared library"
done
if [ -n "$NATIVE" ]; then
    first=$(for b in $bins; do readelf -d "$b" | grep libpaho-mqtt3c >/dev/null && echo "$b" && break; done)
    ldd "$first" | grep paho || cross_die "ldd does not resolve libpaho-mqtt3c for $first"
else
    echo "runtime: libpaho-mqtt3c.so.1 resolved by the target's ld.so inside $QEMU_SYSROOT"
fi
step "all passed: system Paho C ($(basename "$(readlink -f "$libdir/libpaho-mqtt3c.so")")) on $TARGET"
