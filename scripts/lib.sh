# shellcheck shell=bash
# Sourced by the scripts under scripts/ and by bench/run.sh: decides what to
# install on a Debian/Ubuntu machine by *using* each tool the way the script
# will, never by looking for file names. (A name pattern such as
# /usr/lib/llvm-*/lib/libclang*.so* also matches libclang-cpp.so.14, a
# different library, and then bindgen fails with "Unable to find libclang".)
#
#   need <packages> <what> <probe> [args...]
#       Runs the probe (output kept quiet unless it fails for good) and prints
#       one line. If the probe fails, <packages> (Debian packages, separated
#       by spaces) are queued for install_needs.
#   install_needs
#       Installs the queued packages (apt-get, as root, unless SKIP_INSTALL
#       is set), then runs every failed probe again; stops the script with
#       the probe's output if one still fails. Does nothing if all passed.
#   build_uses_cmake [cargo tree args]
#       Whether the `cmake` crate is in that build (it runs the cmake program).
#
# A probe returns 0 when the capability is there, 2 when it cannot tell yet
# because something it builds on is missing too (e.g. qemu needs a cross
# compiler to make a program to run; it is then installed and asked again),
# anything else when it fails. Probes print their diagnostics on stdout or
# stderr, and clean up after themselves (they run in subshells).

_NEED_PKGS=()   # packages to install
_NEED_WHAT=()   # failed checks: what they are for
_NEED_CMD=()    # failed checks: the probe command, quoted for eval
_NEED_FOR=()    # failed checks: their packages
_NEED_OUT=()    # failed checks: the probe's output

_need_die() {
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!! $(basename "$0"): the machine lacks what it needs:"
        printf '!!   %s\n' "$@"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 1
}

# Whether every Debian package named is installed.
_pkgs_installed() {
    local p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1
    done
}

need() {
    local pkgs=$1 what=$2 out rc p
    shift 2
    out=$("$@" 2>&1) && rc=0 || rc=$?
    if [ "$rc" = 0 ]; then
        printf '  [ok]      %s\n' "$what"
        return 0
    fi
    if [ "$rc" = 2 ]; then
        printf '  [later]   %s (%s; needs something else first)\n' "$what" "$pkgs"
    else
        printf '  [missing] %s (%s)\n' "$what" "$pkgs"
    fi
    _NEED_WHAT+=("$what")
    _NEED_CMD+=("$(printf '%q ' "$@")")
    _NEED_FOR+=("$pkgs")
    _NEED_OUT+=("$out")
    for p in $pkgs; do
        [[ " ${_NEED_PKGS[*]} " == *" $p "* ]] || _NEED_PKGS+=("$p")
    done
}

install_needs() {
    local i out rc failed=() missing=() p said
    [ ${#_NEED_WHAT[@]} -gt 0 ] || return 0
    for p in "${_NEED_PKGS[@]}"; do
        _pkgs_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        local lines=()
        for i in "${!_NEED_WHAT[@]}"; do lines+=("- ${_NEED_WHAT[$i]}: ${_NEED_FOR[$i]}"); done
        [ -z "${SKIP_INSTALL:-}" ] ||
            _need_die "${lines[@]}" "SKIP_INSTALL is set; install: ${missing[*]}"
        [ "$(id -u)" = 0 ] ||
            _need_die "${lines[@]}" "run as root, or: sudo apt-get install ${missing[*]}"
        command -v apt-get >/dev/null 2>&1 ||
            _need_die "${lines[@]}" "no apt-get here: install the equivalent of ${missing[*]}"
        echo "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # (Wait for another apt/dpkg run on a shared machine instead of failing.)
        apt-get -o DPkg::Lock::Timeout=600 update -qq || _need_die "apt-get update failed"
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" ||
            _need_die "apt-get install ${missing[*]} failed"
    fi
    # Again, now that everything is installed: each must work now. (With
    # nothing to install, a failure here is a broken installation.)
    for i in "${!_NEED_WHAT[@]}"; do
        out=$(eval "${_NEED_CMD[$i]}" 2>&1) && rc=0 || rc=$?
        if [ "$rc" = 0 ]; then
            printf '  [ok]      %s\n' "${_NEED_WHAT[$i]}"
        else
            mapfile -t said < <(printf '%s\n' "${out:-${_NEED_OUT[$i]}}" | tail -n 25)
            failed+=("- ${_NEED_WHAT[$i]}: still fails with ${_NEED_FOR[$i]} installed; it said:"
                "${said[@]/#/    }")
        fi
    done
    _NEED_PKGS=() _NEED_WHAT=() _NEED_CMD=() _NEED_FOR=() _NEED_OUT=()
    [ ${#failed[@]} -eq 0 ] || _need_die "${failed[@]}"
}

build_uses_cmake() {
    local tree
    if ! tree=$(cargo tree --prefix none "$@" 2>&1); then
        echo "build_uses_cmake: cargo tree $* failed, assuming CMake is needed: $tree" >&2
        return 0
    fi
    grep -q '^cmake v' <<<"$tree"
}

# ------------------------------------------------------------------ probes

# A temp dir for one probe, removed when the probe's subshell exits.
_probe_tmp() {
    _ptmp=$(mktemp -d "${TMPDIR:-/tmp}/probe.XXXXXX") || exit 1
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$_ptmp'" EXIT
}

# Builds a C program from stdin into $_ptmp/prog: <cc> [args...].
_c_build() {
    local cc=$1
    shift
    cat >"$_ptmp/prog.c"
    "$cc" "$_ptmp/prog.c" -o "$_ptmp/prog" "$@"
}

_hello() { printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'; }

# <cc>: builds a C program and runs it (the PC's compiler and C library).
probe_cc() (
    _probe_tmp
    command -v "$1" || exit 1
    _hello | _c_build "$1" && [ "$("$_ptmp/prog")" = hello ]
)

# <cc>: builds (links) a C program for another machine.
probe_cross_cc() (
    _probe_tmp
    command -v "$1" || exit 1
    _hello | _c_build "$1"
)

# <cross cc> <qemu-user> <sysroot>: a program from the cross compiler runs
# under qemu-user with the target's loader and libc from the sysroot.
probe_qemu() (
    _probe_tmp
    _hello | _c_build "$1" || exit 2
    command -v "$2" || exit 1
    [ "$("$2" -L "$3" "$_ptmp/prog")" = hello ]
)

# <cc> <header> <C expression> [cc args, libraries...]: a program that
# includes the header and evaluates the expression builds, links and runs.
probe_c_lib() (
    _probe_tmp
    local cc=$1 header=$2 expr=$3
    shift 3
    ( _probe_tmp; _hello | _c_build "$cc" ) || exit 2
    printf '#include <stdio.h>\n#include <%s>\nint main(void) { (void)(%s); puts("hello"); return 0; }\n' \
        "$header" "$expr" | _c_build "$cc" "$@" && [ "$("$_ptmp/prog")" = hello ]
)

# <cc>: OpenSSL for the `ssl` feature, found the way openssl-sys finds it
# (pkg-config), and a program using libssl builds and runs.
probe_openssl_dev() (
    ( _probe_tmp; _hello | _c_build "$1" ) || exit 2
    local flags
    flags=$(pkg-config --cflags --libs openssl) || exit 1
    # shellcheck disable=SC2086  # flags are words
    probe_c_lib "$1" openssl/ssl.h 'OPENSSL_init_ssl(0, NULL)' $flags
)

# The openssl command makes a key and a self-signed certificate (tests/tls.rs).
probe_openssl_cli() (
    _probe_tmp
    cd "$_ptmp" && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=probe \
        -keyout key.pem -out cert.pem && openssl x509 -in cert.pem -noout -subject
)

# Starts <mosquitto> on a free 127.0.0.1 port below the ephemeral range
# (never 1883) in $_ptmp; sets _port and _pid once it accepts connections.
_start_mosquitto() {
    local exe=$1 try i
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        try=$((20000 + RANDOM % 10000))
        {
            echo "listener $try 127.0.0.1"
            echo "allow_anonymous true"
            echo "persistence false"
            echo "log_dest stderr"
            # As root it would switch to the `mosquitto` user.
            [ "$(id -u)" != 0 ] || echo "user root"
        } >"$_ptmp/mosquitto.conf"
        "$exe" -c "$_ptmp/mosquitto.conf" </dev/null >"$_ptmp/mosquitto.log" 2>&1 &
        _pid=$!
        # shellcheck disable=SC2064
        trap "kill $_pid 2>/dev/null; wait $_pid 2>/dev/null; rm -rf '$_ptmp'" EXIT
        for i in $(seq 100); do
            kill -0 "$_pid" 2>/dev/null || break
            if grep -q ' running' "$_ptmp/mosquitto.log" &&
                (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then
                _port=$try
                return 0
            fi
            sleep 0.05
        done
        kill "$_pid" 2>/dev/null
        wait "$_pid" 2>/dev/null
        grep -q 'Address already in use' "$_ptmp/mosquitto.log" || break
    done
    cat "$_ptmp/mosquitto.log"
    return 1
}

# <mosquitto>: the broker starts and accepts a TCP connection on 127.0.0.1.
probe_mosquitto() (
    _probe_tmp
    command -v "$1" || exit 1
    _start_mosquitto "$1"
)

# mosquitto_passwd writes a password file (the tests' users).
probe_mosquitto_passwd() (
    _probe_tmp
    mosquitto_passwd -c -b "$_ptmp/passwd" probe secret </dev/null &&
        grep -q '^probe:' "$_ptmp/passwd"
)

# <mosquitto>: mosquitto_pub and mosquitto_sub pass a retained message
# through that broker (scripts/demo.sh).
probe_mosquitto_clients() (
    _probe_tmp
    _start_mosquitto "$1" >/dev/null || exit 2
    mosquitto_pub -h 127.0.0.1 -p "$_port" -t probe/x -m hello -r -q 1 &&
        [ "$(mosquitto_sub -h 127.0.0.1 -p "$_port" -t probe/x -C 1 -W 5)" = hello ]
)

# python3 runs with the standard library the scripts use.
probe_python3() {
    python3 -c 'import json, subprocess, sys, pathlib, statistics'
}

# <cc>: cmake configures and builds (links) a C project with that compiler,
# the PC's or a cross one (what the `cmake` crate does; Unix Makefiles, so
# make too).
probe_cmake() (
    _probe_tmp
    ( _probe_tmp; _hello | _c_build "$1" ) || exit 2
    command -v cmake || exit 1
    mkdir "$_ptmp/src"
    _hello >"$_ptmp/src/hello.c"
    printf 'cmake_minimum_required(VERSION 3.5)\nproject(probe C)\nadd_executable(hello hello.c)\n' \
        >"$_ptmp/src/CMakeLists.txt"
    CC=$1 cmake -S "$_ptmp/src" -B "$_ptmp/build" &&
        cmake --build "$_ptmp/build" && [ -s "$_ptmp/build/hello" ]
)

# <cc>: strip (binutils) strips a program.
probe_strip() (
    _probe_tmp
    _hello | _c_build "$1" || exit 2
    strip --strip-all "$_ptmp/prog" && [ "$("$_ptmp/prog")" = hello ]
)

# curl can make HTTPS requests (rustup's installer): the program runs and
# has the CA bundle it verifies servers with. (No request is made here.)
probe_curl() {
    # (grep without -q: it reads all input, so curl never gets SIGPIPE,
    # which pipefail would turn into a failure)
    curl --version | grep -i https >/dev/null && [ -s /etc/ssl/certs/ca-certificates.crt ]
}

# <target triple>: rustc has the standard library for the target (it
# type-checks a library that uses std).
probe_rust_std() (
    _probe_tmp
    echo 'pub fn probe() -> String { std::env::args().collect() }' |
        rustc --edition 2021 --target "$1" --crate-type lib --emit metadata \
            --crate-name probe -o "$_ptmp/probe.rmeta" -
)

# <target triple>: bindgen, as the build_bindgen feature runs it
# (paho-mqtt-c/regenerate.sh), loads libclang and parses the Paho C headers.
# This is the real use, not a search for a file name: libclang is found by
# clang-sys's own search (LIBCLANG_PATH, llvm-config, the usual directories;
# libclang-cpp is not libclang), and the parse also needs clang's own
# headers (stddef.h), which come with libclang-dev but not with the bare
# runtime library. It writes the target's file under paho-mqtt-c/bindings/
# as regenerate.sh always does.
probe_bindgen() {
    paho-mqtt-c/regenerate.sh "$1"
}
