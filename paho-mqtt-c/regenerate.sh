#!/usr/bin/env bash
# Regenerates the committed FFI bindings under paho-mqtt-c/bindings/ with
# bindgen, for every target the crate ships bindings for.
#
# The headers are the Paho C 1.3.16 ones inside the `paho-mqtt-sys` package
# that Cargo has downloaded (found with `cargo metadata`), or the directory in
# PAHO_MQTT_C_INCLUDE_DIR. The generation itself is the crate's own build
# script run with the `build_bindgen` feature, so the bindgen settings live in
# one place (build.rs).
#
# Needs: libclang (Debian: libclang-dev), and for the ARM targets the cross C
# headers (libc6-dev-armhf-cross, libc6-dev-arm64-cross) plus
# `rustup target add <target>`.
#
# Usage: paho-mqtt-c/regenerate.sh [target ...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
fi

if [ -z "${PAHO_MQTT_C_INCLUDE_DIR:-}" ]; then
    manifest=$(cargo metadata --format-version 1 --locked 2>/dev/null |
        python3 -c 'import json,sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "paho-mqtt-sys":
        print(p["manifest_path"])')
    if [ -z "$manifest" ]; then
        echo "regenerate.sh: paho-mqtt-sys not found by cargo metadata" >&2
        exit 1
    fi
    PAHO_MQTT_C_INCLUDE_DIR="$(dirname "$manifest")/paho.mqtt.c/src"
fi
export PAHO_MQTT_C_INCLUDE_DIR
v="$PAHO_MQTT_C_INCLUDE_DIR/.."
version=$( { printf '%s.%s.%s' "$(cat "$v/version.major")" "$(cat "$v/version.minor")" \
    "$(cat "$v/version.patch")"; } 2>/dev/null || true)
echo "headers: $PAHO_MQTT_C_INCLUDE_DIR (Paho C ${version:-unknown version})"

# Cross C headers for clang, by target.
sysroot_for() {
    case "$1" in
        x86_64-unknown-linux-gnu) echo "" ;;
        aarch64-unknown-linux-gnu) echo /usr/aarch64-linux-gnu ;;
        armv7-unknown-linux-gnueabihf) echo /usr/arm-linux-gnueabihf ;;
        *) echo "regenerate.sh: no sysroot known for $1" >&2; return 1 ;;
    esac
}

for target in "${targets[@]}"; do
    out="$here/bindings/bindings_paho_mqtt_c_1.3.16-$target.rs"
    sysroot=$(sysroot_for "$target")
    var="BINDGEN_EXTRA_CLANG_ARGS_${target//-/_}"
    if [ -n "$sysroot" ]; then
        if [ ! -f "$sysroot/include/stdio.h" ]; then
            echo "regenerate.sh: $sysroot/include/stdio.h missing (install the cross libc headers)" >&2
            exit 1
        fi
        export "$var=--sysroot=$sysroot -I$sysroot/include"
    fi
    echo "== $target -> ${out#"$root"/}"
    # `cargo check` runs build.rs (which writes the file) and then type-checks
    # the crate against the new bindings, including bindgen's layout asserts.
    PAHO_MQTT_SYNC_WRITE_BINDINGS="$out" \
        cargo check --quiet --lib --target "$target" --no-default-features --features build_bindgen \
        --target-dir "$root/target/regenerate"
done
echo "done; review with: git diff --stat paho-mqtt-c/bindings"
