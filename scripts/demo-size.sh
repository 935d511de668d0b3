#!/usr/bin/env bash
# Measures the stripped size of the board demo (examples/mqtt_client) and
# prints the README's size table ("The small binary") as Markdown, so the
# figures there come from a run of this script, never from hand.
#
# Usage: scripts/demo-size.sh [--readme] [TARGET...]
#   TARGET   Rust targets to build `release-small` for besides the host
#            (default: armv7-unknown-linux-gnueabihf and aarch64-unknown-linux-gnu,
#            each only if its cross gcc is installed; see scripts/cross-test.sh)
#   --readme also writes the table into README.md, between the lines
#            <!-- demo-size:begin --> and <!-- demo-size:end -->
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

write_readme=
targets=()
for arg in "$@"; do
    case "$arg" in
        --readme) write_readme=1 ;;
        -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
        *) targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu)

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
host=$(rustc -vV | sed -n 's/^host: //p')
rustc_version=$(rustc -V | awk '{print $2}')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/demo-size.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.0f KiB", b / 1024 }'; }
build() { # build <profile> [<target>] -> path of the binary
    local profile=$1 target=${2:-}
    if [ -n "$target" ]; then
        cargo build --quiet --profile "$profile" --target "$target" --example mqtt_client >&2
        echo "$target_dir/$target/$profile/examples/mqtt_client"
    else
        cargo build --quiet --profile "$profile" --example mqtt_client >&2
        echo "$target_dir/$profile/examples/mqtt_client"
    fi
}

echo "building the demo for $host (release-small, release) ..." >&2
small=$(stat -c %s "$(build release-small)")
strip -o "$tmp/release" "$(build release)"
release=$(stat -c %s "$tmp/release")

rows=()
rows+=("| \`cargo build --profile release-small --example mqtt_client\` | **$(commas "$small") bytes** ($(kib "$small")) |")
rows+=("| \`cargo build --release --example mqtt_client\`, then \`strip\` | $(commas "$release") bytes |")
for target in "${targets[@]}"; do
    gnu=$(case "$target" in
        armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;;
        aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;;
        *) echo "" ;;
    esac)
    if [ -z "$gnu" ] || ! command -v "$gnu-gcc" >/dev/null ||
        ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "skipping $target: no $gnu-gcc or no Rust target (scripts/cross-test.sh installs both)" >&2
        rows+=("| \`release-small\`, \`--target $target\` (for comparison) | not measured in this run |")
        continue
    fi
    echo "building the demo for $target (release-small) ..." >&2
    size=$(stat -c %s "$(build release-small "$target")")
    rows+=("| \`release-small\`, \`--target $target\` (for comparison) | $(commas "$size") bytes |")
done

table="$tmp/table.md"
{
    echo "<!-- demo-size:begin -->"
    echo "Measured by \`scripts/demo-size.sh\` on $host (rustc $rustc_version, glibc, Paho C"
    echo "bundled and linked statically; the binary needs only \`libc.so.6\` and \`libgcc_s.so.1\`):"
    echo
    echo "| Build | Stripped size |"
    echo "|---|---|"
    printf '%s\n' "${rows[@]}"
    echo "<!-- demo-size:end -->"
} >"$table"
cat "$table"

if [ -n "$write_readme" ]; then
    grep -q '^<!-- demo-size:begin -->$' README.md && grep -q '^<!-- demo-size:end -->$' README.md ||
        { echo "README.md has no demo-size markers" >&2; exit 1; }
    python3 - "$table" <<'EOF'
import sys
table = open(sys.argv[1]).read()
text = open("README.md").read()
begin = text.index("<!-- demo-size:begin -->")
end = text.index("<!-- demo-size:end -->") + len("<!-- demo-size:end -->\n")
open("README.md", "w").write(text[:begin] + table + text[end:])
EOF
    echo "README.md updated" >&2
fi
