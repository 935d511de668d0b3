#!/usr/bin/env bash
# Measures the board binaries on armv7, as shipped and as the tiny build
# (scripts/build-board.sh --tiny), and prints the table of README.md's "The
# small binary" as Markdown, then one JSON line with the same figures:
#
#   the demo (examples/mqtt_client): profile release-small, and --tiny
#     (release-tiny: std built from source with immediate-abort panics,
#     Thumb-2 code);
#   the minimal publisher (bench/src/bin/min_sync.rs): profile minsize (what
#     BENCHMARKS.md measures on the PC), and the same tiny build (minsize-tiny);
#   the same minimal publisher in C (bench/c/min_pub.c), compiled by the same
#     `zig cc` with -Os, stripped, against the very libpaho-mqtt3c.a that
#     min_sync links (this crate's build.rs: Paho C 1.3.16 and its fixes), once
#     as for minsize (ARM code) and once with the C flags of the tiny build
#     (Thumb-2 code, no unwind tables), each against the objects of that build.
#
# Every binary is linked stripped (strip = true in the profiles, -s for C);
# the script checks that none has a symbol table left.
#
# Usage: scripts/tiny-size.sh [--readme] [TARGET...]
#   TARGET   armv7-unknown-linux-musleabihf and/or armv7-unknown-linux-gnueabihf
#            (default: both)
#   --readme also writes the table into README.md, between the lines
#            <!-- tiny-size:begin --> and <!-- tiny-size:end -->
#   SKIP_INSTALL=1  never install (see scripts/build-board.sh)
# Builds go to target/ (the demo) and target/tiny-size/ (the publishers).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

write_readme=
targets=()
for arg in "$@"; do
    case "$arg" in
        --readme) write_readme=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        armv7-unknown-linux-musleabihf | armv7-unknown-linux-gnueabihf) targets+=("$arg") ;;
        *) echo "tiny-size.sh: not an armv7 board target: $arg" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(armv7-unknown-linux-musleabihf armv7-unknown-linux-gnueabihf)

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
# shellcheck source=scripts/board-env.sh
. scripts/board-env.sh

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench_dir=$target_dir/tiny-size
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tiny-size.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

commas() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }
kb() { awk -v b="$1" 'BEGIN { printf "%.0f KB", b / 1000 }'; }
stripped_size() { # <binary>: its size; fails if it still has symbols
    [ -f "$1" ] || _board_die "no binary at $1"
    ! LC_ALL=C readelf -SW "$1" | grep -q '\.symtab' || _board_die "$1 is not stripped"
    stat -c %s "$1"
}

# min_sync for <target> with <profile> (BOARD_TINY as exported by the caller);
# then min_pub.c against the Paho C objects of that build. Prints
# "<min_sync size> <C size>".
build_publishers() ( # <target> <profile>
    local target=$1 profile=$2 json out c static
    board_env "$target"
    json=$tmp/cargo-$profile-$target.json
    echo "== min_sync: cargo build --profile $profile --target $target (bench, --no-default-features)" >&2
    CARGO_TARGET_DIR=$bench_dir cargo build --manifest-path bench/Cargo.toml --no-default-features \
        --profile "$profile" --bin min_sync --target "$target" \
        --message-format=json-render-diagnostics >"$json" || _board_die "cargo build of min_sync failed"
    out=$(python3 - "$json" <<'EOF'
import json, sys
out = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "build-script-executed" and "paho-mqtt-sync" in m["package_id"] \
            and "bench" not in m["package_id"]:
        out = m["out_dir"]
print(out or "")
EOF
    )
    [ -f "$out/libpaho-mqtt3c.a" ] || _board_die "no libpaho-mqtt3c.a from the $profile build ($out)"
    board_check "$target" "$bench_dir/$target/$profile/min_sync" >&2
    c=$tmp/min_pub-$profile-$target
    static=''
    [ "$BOARD_LIBC" != musl ] || static=-static # as rustc links the musl targets
    # shellcheck disable=SC2086  # BOARD_TINY_CFLAGS is a list of flags
    echo "== min_pub.c: zig cc -Os -s ${BOARD_TINY_CFLAGS} against $out/libpaho-mqtt3c.a" >&2
    # Compiled and linked in two steps, as Cargo does: the Thumb flag only
    # for the compile (at link time zig would build its libc with it; see
    # board_target in scripts/board-env.sh).
    # shellcheck disable=SC2086
    "$BOARD_CC" -Os $BOARD_TINY_CFLAGS -I"$out/paho-mqtt-c" -I"$out/paho-mqtt-c/src" \
        -c -o "$c.o" bench/c/min_pub.c || _board_die "zig cc min_pub.c failed"
    "$BOARD_CC" -Os -s $static -o "$c" "$c.o" "$out/libpaho-mqtt3c.a" -lpthread ||
        _board_die "zig cc could not link min_pub"
    board_check "$target" "$c" >&2
    echo "$(stripped_size "$bench_dir/$target/$profile/min_sync") $(stripped_size "$c")"
)

declare -A size
for target in "${targets[@]}"; do
    board_target "$target" || exit 2
    echo "== $target: the demo, release-small and --tiny" >&2
    bin=$(scripts/build-board.sh "$target" | tail -1) || _board_die "scripts/build-board.sh $target failed"
    size[$target.demo]=$(stripped_size "$bin")
    bin=$(scripts/build-board.sh --tiny "$target" | tail -1) || _board_die "scripts/build-board.sh --tiny $target failed"
    size[$target.demo_tiny]=$(stripped_size "$bin")
    read -r size["$target.min_sync"] size["$target.min_c"] < <(build_publishers "$target" minsize)
    read -r size["$target.min_sync_tiny"] size["$target.min_c_thumb"] < <(BOARD_TINY=1 build_publishers "$target" minsize-tiny)
    for k in min_sync min_c min_sync_tiny min_c_thumb; do
        [ -n "${size[$target.$k]:-}" ] || _board_die "$k was not measured for $target"
    done
done

board_target armv7-unknown-linux-musleabihf
nightly=$(rustc +"$BOARD_NIGHTLY" --version | cut -d' ' -f2-)
cell() { echo "$(commas "$1") B ($(kb "$1"))"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
table=$tmp/table.md
# shellcheck disable=SC2016  # backquotes for Markdown, not for the shell
{
    echo "<!-- tiny-size:begin -->"
    echo "Measured by \`scripts/tiny-size.sh\` (rustc $(rustc --version | cut -d' ' -f2) and, for std built" \
        "from source, $nightly; zig $("$BOARD_TOOLS/bin/python3" -m ziglang version);" \
        "bundled Paho C 1.3.16 linked statically; every binary linked stripped; KB = 1,000 bytes):"
    echo
    printf '| Binary |'; printf ' `%s` |' "${targets[@]}"; echo
    printf '|---|'; printf -- '---:|%.0s' "${targets[@]}"; echo
    row() { # <label> <key>
        printf '| %s |' "$1"
        for t in "${targets[@]}"; do printf ' %s |' "$(cell "${size[$t.$2]}")"; done
        echo
    }
    row 'demo, `release-small` (`scripts/build-board.sh TARGET`)' demo
    row 'demo, tiny (`scripts/build-board.sh --tiny TARGET`)' demo_tiny
    row 'minimal publisher `min_sync`, `minsize`' min_sync
    row 'minimal publisher `min_sync`, tiny (`minsize-tiny`)' min_sync_tiny
    row 'minimal publisher in C (`min_pub.c`, `zig cc -Os`), ARM code' min_c
    row 'minimal publisher in C (`min_pub.c`, `zig cc -Os`), the tiny build'"'"'s C flags' min_c_thumb
    echo
    echo "| Target (tiny builds) | This run | Met |"
    echo "|---|---|---|"
    line='' ok=yes
    for t in "${targets[@]}"; do
        line+="${line:+, }\`${t%%-*} ${t##*-}\` $(kb "${size[$t.demo_tiny]}")"
        [ "${size[$t.demo_tiny]}" -lt 300000 ] || ok='**no**'
    done
    echo "| Demo < 300 KB stripped on armv7 | $line | $ok |"
    line='' ok=yes
    for t in "${targets[@]}"; do
        r=$(ratio "${size[$t.min_sync_tiny]}" "${size[$t.min_c_thumb]}")
        line+="${line:+, }\`${t%%-*} ${t##*-}\` $r ×"
        awk -v r="$r" 'BEGIN { exit !(r <= 2) }' || ok='**no**'
    done
    echo "| Minimal publisher within 2 × C on armv7 (the same C flags) | $line | $ok |"
    echo "<!-- tiny-size:end -->"
} >"$table"
cat "$table"
python3 - "${targets[@]}" <<EOF
import json, sys
size = {$(for k in "${!size[@]}"; do printf '"%s": %s, ' "$k" "${size[$k]}"; done)}
print(json.dumps({"tiny_size": {t: {k.split(".", 1)[1]: v for k, v in sorted(size.items())
                                    if k.split(".", 1)[0] == t} for t in sys.argv[1:]},
                  "nightly": "$nightly"}))
EOF

if [ -n "$write_readme" ]; then
    grep -q '^<!-- tiny-size:begin -->$' README.md && grep -q '^<!-- tiny-size:end -->$' README.md ||
        { echo "README.md has no tiny-size markers" >&2; exit 1; }
    python3 - "$table" <<'EOF'
import sys
table = open(sys.argv[1]).read()
text = open("README.md").read()
begin = text.index("<!-- tiny-size:begin -->")
end = text.index("<!-- tiny-size:end -->") + len("<!-- tiny-size:end -->\n")
open("README.md", "w").write(text[:begin] + table + text[end:])
EOF
    echo "README.md updated" >&2
fi
