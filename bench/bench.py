#!/usr/bin/env python3
"""Side-by-side MQTT client benchmark: paho-mqtt-sync vs Paho C vs paho-mqtt
vs rumqttc, against one private Mosquitto on 127.0.0.1.

    bench/run.sh            full run, writes BENCHMARKS.md and bench/chart.svg
    bench/run.sh --smoke    tiny sizes, one round; fails if any count is off

A full run also measures the armv7 board binaries, as shipped and tiny, with
scripts/tiny-size.sh (after the broker cases; --no-board-sizes leaves it out).

It builds every client (cargo for the Rust ones, gcc for the C ones; the C
programs link paho-mqtt-sys's static Paho C, the one paho-mqtt uses, and this
crate links its own build with the fixes in paho-mqtt-c/fixes/), starts the
broker on a free port, runs the cases with the clients interleaved (A B C D
A B C D ...), checks that the broker got or delivered every message of every
run, and writes the report.
Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", BENCH / "target"))
HOST = "127.0.0.1"

CFLAGS = ["-O2", "-Wall", "-Wextra"]
CFLAGS_MIN = ["-Os", "-s"]

# key -> (label, binary, mode for receive cases, mode for latency cases)
CLIENTS = {
    "c_sync": ("Paho C, synchronous (no callbacks)", "c_sync", "recv", "lat"),
    "c_cb": ("Paho C, callback mode", "c_cb", "recv", "lat"),
    "sync_rs": ("paho-mqtt-sync (this crate)", "sync_rs", "recv", "lat"),
    "sync_rs_cb": ("paho-mqtt-sync, message callback", "sync_rs", "recvcb", "latcb"),
    "sync_rs_rx": ("paho-mqtt-sync, Receiver", "sync_rs", "recvrx", "lat"),
    "paho_rs": ("paho-mqtt 0.14, sync Client", "paho_rs", "recv", "lat"),
    "rumqttc_rs": ("rumqttc 0.25, sync Client", "rumqttc_rs", "recv", "lat"),
    "c_cb_file": ("Paho C, callback mode, file persistence", "c_cb", "recv", "lat"),
    "sync_rs_file": ("paho-mqtt-sync, Persistence::File", "sync_rs", "recv", "lat"),
    "sync_rs_dir": ("paho-mqtt-sync, Persistence::User(DirStore)", "sync_rs", "recv", "lat"),
    # MQTT 5 (the pub5 cases only): publishMessage5 / publish5.
    "c_cb_v5": ("Paho C, callback mode, MQTT 5", "c_cb", "recv", "lat"),
    "sync_rs_v5": ("paho-mqtt-sync, MQTT 5", "sync_rs", "recv", "lat"),
}
SHORT = {
    "c_sync": "C sync",
    "c_cb": "C callback",
    "sync_rs": "paho-mqtt-sync",
    "sync_rs_cb": "paho-mqtt-sync (callback)",
    "sync_rs_rx": "paho-mqtt-sync (Receiver)",
    "paho_rs": "paho-mqtt",
    "rumqttc_rs": "rumqttc",
    "c_cb_file": "C callback, file store",
    "sync_rs_file": "paho-mqtt-sync, File",
    "sync_rs_dir": "paho-mqtt-sync, DirStore",
    "c_cb_v5": "C callback, MQTT 5",
    "sync_rs_v5": "paho-mqtt-sync, MQTT 5",
}
COLORS = {
    "c_sync": "#7f7f7f",
    "c_cb": "#bcbd22",
    "sync_rs": "#1f77b4",
    "sync_rs_cb": "#17becf",
    "sync_rs_rx": "#aec7e8",
    "paho_rs": "#d62728",
    "rumqttc_rs": "#ff7f0e",
    "c_cb_file": "#8c564b",
    "sync_rs_file": "#2ca02c",
    "sync_rs_dir": "#9467bd",
    "c_cb_v5": "#e377c2",
    "sync_rs_v5": "#393b79",
}
# The store each persistence client publishes with (BENCH_PERSISTENCE=KIND:DIR,
# a fresh directory under the target dir per run: on disk, not tmpfs).
PERSIST = {"c_cb_file": "file", "sync_rs_file": "file", "sync_rs_dir": "dir"}
PERSIST_CLIENTS = ["c_cb", "c_cb_file", "sync_rs", "sync_rs_file", "sync_rs_dir"]
PUB_CLIENTS = ["c_sync", "c_cb", "sync_rs", "paho_rs", "rumqttc_rs"]
RECV_CLIENTS = ["c_sync", "c_cb", "sync_rs", "sync_rs_rx", "sync_rs_cb", "paho_rs", "rumqttc_rs"]
LAT_CLIENTS = ["c_sync", "c_cb", "sync_rs", "sync_rs_cb", "paho_rs", "rumqttc_rs"]
# MQTT 5 publish cases: the MQTT 5 programs next to the same programs' MQTT
# 3.1.1 path (mode "pub"), same QoS, size and count.
PUB5_CLIENTS = ["c_cb", "c_cb_v5", "sync_rs", "sync_rs_v5"]
# Windowed publish cases (mode "pubw", window in BENCH_WINDOW): every client
# that can keep several QoS 1/2 messages in flight. Not c_sync: it can only
# learn of a completion by polling (MQTTClient_waitForCompletion, 100 ms steps).
PUBW_CLIENTS = ["c_cb", "sync_rs", "paho_rs", "rumqttc_rs"]
# case name -> in-flight window of that case
WINDOWS = {"pub_q1_w10": 10, "pub_q1_w100": 100, "pub_q2_w10": 10, "pub_q2_w100": 100}
# Mode "reconnect" of each program: one client, rounds of disconnect + connect.
RECONNECT_CLIENTS = ["c_sync", "c_cb", "sync_rs"]
# A round's disconnect or connect slower than this counts as slow in the
# report (Paho C's 100 ms sleeps around its thread's start and stop).
SLOW_MS = 50.0


def cases(smoke):
    """(name, title, kind, qos, size, count, clients, per-client counts)."""
    n = (lambda full, small: small if smoke else full)
    capped = n(50, 5)  # C sync at QoS > 0: ~10 msg/s (100 ms polling)
    return [
        ("pub_q0", "Publish QoS 0, 64 B", "pub", 0, 64, n(200_000, 100), PUB_CLIENTS, {}),
        ("pub_q1", "Publish QoS 1, 64 B, one in flight", "pub", 1, 64, n(20_000, 100), PUB_CLIENTS,
         {"c_sync": capped}),
        ("pub_q2", "Publish QoS 2, 64 B, one in flight", "pub", 2, 64, n(10_000, 100), PUB_CLIENTS,
         {"c_sync": capped}),
        ("pub_q1_16k", "Publish QoS 1, 16 KiB, one in flight", "pub", 1, 16384, n(10_000, 100),
         PUB_CLIENTS, {"c_sync": capped}),
        ("pub_q1_w10", "Publish QoS 1, 64 B, window of 10 in flight", "pubw", 1, 64,
         n(50_000, 100), PUBW_CLIENTS, {}),
        ("pub_q1_w100", "Publish QoS 1, 64 B, window of 100 in flight", "pubw", 1, 64,
         n(50_000, 100), PUBW_CLIENTS, {}),
        ("pub_q2_w10", "Publish QoS 2, 64 B, window of 10 in flight", "pubw", 2, 64,
         n(20_000, 100), PUBW_CLIENTS, {}),
        ("pub_q2_w100", "Publish QoS 2, 64 B, window of 100 in flight", "pubw", 2, 64,
         n(20_000, 100), PUBW_CLIENTS, {}),
        ("pub5_q1", "Publish QoS 1, 64 B, MQTT 5 vs 3.1.1", "pub5", 1, 64, n(20_000, 100),
         PUB5_CLIENTS, {}),
        ("pub5_q1_up", "Publish QoS 1, 64 B, MQTT 5 with a user property vs 3.1.1", "pub5u", 1, 64,
         n(20_000, 100), PUB5_CLIENTS, {}),
        ("recv_q0", "Receive QoS 0, 64 B", "recv", 0, 64, n(100_000, 100), RECV_CLIENTS, {}),
        ("recv_q1", "Receive QoS 1, 64 B", "recv", 1, 64, n(20_000, 100), RECV_CLIENTS, {}),
        ("pub_q1_persist", "Publish QoS 1, 64 B, one in flight: no store, file store, DirStore",
         "pub", 1, 64, n(2_000, 100), PERSIST_CLIENTS, {}),
        ("lat_q1", "Publish-to-receive latency, QoS 1, 64 B", "lat", 1, 64, n(5_000, 100),
         LAT_CLIENTS, {"c_sync": capped}),
        # count: disconnect-then-connect rounds per run (one process, one client)
        ("reconnect", "Reconnect: disconnect, then connect the same client again", "reconnect", 0, 0,
         n(20, 3), RECONNECT_CLIENTS, {}),
    ]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


# ---------------------------------------------------------------- building


def cargo_build(profile, bins):
    """Builds bins; returns (bin dir, paho-mqtt-sys out dir)."""
    cmd = ["cargo", "build", "--profile", profile, "--message-format=json-render-diagnostics"]
    for b in bins:
        cmd += ["--bin", b]
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    log(f"$ {' '.join(cmd)}")
    p = subprocess.run(cmd, cwd=BENCH, env=env, text=True, stdout=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit(f"cargo build failed ({p.returncode})")
    out_dir = None
    for line in p.stdout.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "build-script-executed" and "paho-mqtt-sys" in m.get("package_id", ""):
            out_dir = Path(m["out_dir"])
    if out_dir is None or not (out_dir / "lib" / "libpaho-mqtt3c.a").is_file():
        sys.exit("cannot find the Paho C library that paho-mqtt-sys built")
    pdir = "release" if profile == "release" else profile
    return TARGET / pdir, out_dir


def gcc(src, out, paho, flags):
    cmd = ["gcc", *flags, f"-I{paho / 'include'}", "-o", str(out), str(BENCH / "c" / src),
           str(paho / "lib" / "libpaho-mqtt3c.a"), "-lpthread"]
    log(f"$ {' '.join(cmd)}")
    subprocess.run(cmd, check=True)


def cmake_build_type(paho):
    cache = (paho / "build" / "CMakeCache.txt").read_text()
    bt = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", cache, re.M).group(1)
    flags = re.search(r"^CMAKE_C_FLAGS_" + bt.upper() + r":STRING=(.*)$", cache, re.M)
    base = re.search(r"^CMAKE_C_FLAGS:STRING=(.*)$", cache, re.M)
    return bt, (flags.group(1) if flags else "").strip(), (base.group(1) if base else "").strip()


def build():
    rel, paho = cargo_build("release", ["sync_rs", "paho_rs", "rumqttc_rs"])
    cdir = TARGET / "c"
    cdir.mkdir(parents=True, exist_ok=True)
    for name in ["c_sync", "c_cb"]:
        gcc(f"{name}.c", cdir / name, paho, CFLAGS)
    log(f"$ gcc -O2 -o {cdir / 'rss'} c/rss.c")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(cdir / "rss"), str(BENCH / "c" / "rss.c")], check=True)
    mins, paho_min = cargo_build("minsize", ["min_sync", "min_paho", "min_rumqttc"])
    gcc("min_pub.c", cdir / "min_c", paho_min, CFLAGS_MIN)
    bins = {
        "rss": cdir / "rss",
        "c_sync": cdir / "c_sync",
        "c_cb": cdir / "c_cb",
        "sync_rs": rel / "sync_rs",
        "paho_rs": rel / "paho_rs",
        "rumqttc_rs": rel / "rumqttc_rs",
    }
    minimal = {
        "c": cdir / "min_c",
        "sync_rs": mins / "min_sync",
        "paho_rs": mins / "min_paho",
        "rumqttc_rs": mins / "min_rumqttc",
    }
    return bins, minimal, paho, paho_min


# ---------------------------------------------------------------- broker


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


BROKER_CONFIG = """\
listener {port} {host}
allow_anonymous true
persistence false
# Never drop: the receive cases queue 100,000 messages for offline sessions,
# and the checker's session holds a whole publish run.
max_inflight_messages 1000
max_queued_messages 0
max_queued_bytes 0
queue_qos0_messages true
message_size_limit 0
sys_interval 0
log_dest stderr
log_type error
log_type warning
"""


class Broker:
    """A private Mosquitto on 127.0.0.1 and a free port."""


    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="paho-sync-bench-"))
        self.port = free_port()
        self.config = BROKER_CONFIG.format(port=self.port, host=HOST)
        (self.dir / "mosquitto.conf").write_text(self.config)
        self.log = open(self.dir / "mosquitto.log", "w")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.exe = exe
        self.proc = subprocess.Popen([exe, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"mosquitto exited: {(self.dir / 'mosquitto.log').read_text()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit("mosquitto did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- running


class Failure(Exception):
    pass


def run_client(exe, mode, qos, count, size, run, topic, client_id=None, timeout=900, env=None):
    args = [str(exe), mode, HOST, str(BROKER.port), str(qos), str(count), str(size), run, topic]
    if client_id:
        args.append(client_id)
    try:
        p = subprocess.run(args, text=True, capture_output=True, timeout=timeout,
                           env=dict(os.environ, **env) if env else None)
    except subprocess.TimeoutExpired:
        raise Failure(f"{' '.join(args)}: timed out after {timeout} s")
    if p.returncode != 0:
        raise Failure(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise Failure(f"{' '.join(args)}: no result line")
    return json.loads(lines[-1])


CHECKER_ID = "bench-checker"


def check_published(run, count):
    """The checker's persistent session (subscribed to bench/p/#) holds every
    message the broker got during the run: drain and count them."""
    r = run_client(BINS["c_cb"], "count", 2, count, 0, run, "-", CHECKER_ID)
    if r["received"] != count or r["foreign"] != 0:
        raise Failure(f"run {run}: the broker got {r['received']} of {count} messages "
                      f"({r['foreign']} foreign, first: {r.get('first_foreign', '')!r})")
    return r


def one_run(case, client, rnd, seq):
    name, _title, kind, qos, size, count, _clients, counts = case
    count = counts.get(client, count)
    _label, binary, recv_mode, lat_mode = CLIENTS[client]
    exe = BINS[binary]
    run = f"{name}.{rnd}.{seq}"
    if kind in ("pub", "pub5", "pub5u", "pubw"):
        # pub5 / pub5u: the MQTT 5 clients publish with publish(Message)5
        # (pub5u: one user property per message), the others with MQTT 3.1.1.
        # pubw: every client, with the case's window in BENCH_WINDOW.
        mode = kind if client.endswith("_v5") or kind == "pubw" else "pub"
        env = {"BENCH_WINDOW": str(WINDOWS[name])} if kind == "pubw" else None
        if client in PERSIST:
            store = TARGET / "persist" / run
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(parents=True)
            env = {"BENCH_PERSISTENCE": f"{PERSIST[client]}:{store}"}
        r = run_client(exe, mode, qos, count, size, run, f"bench/p/{run}", env=env)
        if env:
            shutil.rmtree(TARGET / "persist" / run, ignore_errors=True)
        check_published(run, count)
        r["checked"] = count
    elif kind == "recv":
        session = f"rcv-{run}"
        topic = f"bench/r/{run}"
        run_client(BINS["c_cb"], "prep", qos, 0, 0, run, topic, session)
        feed = run_client(BINS["c_cb"], "pub", qos, count, size, run, topic, f"feed-{run}")
        if feed["messages"] != count:
            raise Failure(f"feeder of {run} published {feed['messages']} of {count}")
        r = run_client(exe, recv_mode, qos, count, size, run, topic, session)
        if r["received"] != count:
            raise Failure(f"run {run} ({client}): received {r['received']} of {count}")
        r["checked"] = count
    elif kind == "reconnect":
        r = run_client(exe, "reconnect", 0, count, 0, run, f"bench/c/{run}")
        done = min(r.get("rounds", 0), len(r.get("round_connect_ms", [])),
                   len(r.get("round_disconnect_ms", [])))
        if done != count:
            raise Failure(f"run {run} ({client}): {done} of {count} reconnect rounds reported")
        r["checked"] = count
    else:
        r = run_client(exe, lat_mode, 1, count, size, run, f"bench/l/{run}")
        if r["received"] != count:
            raise Failure(f"run {run} ({client}): {r['received']} of {count} came back")
        r["checked"] = count
    r.update(case=name, key=client, round=rnd)
    return r


def run_minimal(minimal, rounds):
    """Peak RSS of the minimal publishers (ru_maxrss, through the small
    c/rss.c parent), interleaved."""
    rows = []
    for rnd in range(rounds):
        for key, exe in minimal.items():
            t0 = time.perf_counter()
            p = subprocess.run([str(BINS["rss"]), str(exe), HOST, str(BROKER.port)],
                               text=True, capture_output=True, timeout=60)
            wall = time.perf_counter() - t0
            m = re.search(r"^RSS=(\d+)$", p.stderr, re.M)
            if p.returncode != 0 or not m:
                raise Failure(f"minimal publisher {key}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
            rows.append({"case": "minimal", "key": key, "round": rnd, "peak_rss_kib": int(m.group(1)),
                         "wall_s": wall})
    return rows


def run_board_sizes():
    """The armv7 board binaries, as shipped and tiny (scripts/tiny-size.sh,
    which cross-compiles with zig and a nightly toolchain: full mode only).
    Returns the result record: the script's Markdown and its JSON line."""
    cmd = [str(REPO / "scripts" / "tiny-size.sh")]
    log(f"$ {' '.join(cmd)}")
    p = subprocess.run(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE, timeout=7200)
    if p.returncode != 0:
        raise Failure(f"scripts/tiny-size.sh: exit {p.returncode}")
    out = p.stdout
    begin, end = "<!-- tiny-size:begin -->\n", "<!-- tiny-size:end -->"
    if begin not in out or end not in out:
        raise Failure("scripts/tiny-size.sh printed no table")
    table = out[out.index(begin) + len(begin):out.index(end)].strip()
    data = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return {"case": "board_sizes", "table": table, **data}


def board_targets(board):
    """The Targets rows of the tiny board builds (from scripts/tiny-size.sh)."""
    rows = []
    sizes = board["tiny_size"]
    short = {t: f"{t.split('-')[0]} {t.split('-')[-1]}" for t in sizes}
    demo = [(t, v["demo_tiny"]) for t, v in sizes.items()]
    rows.append(("Demo < 300 KB stripped on armv7 (tiny build)",
                 ", ".join(f"{short[t]} {b / 1000:.0f} KB" for t, b in demo),
                 all(b < 300_000 for _, b in demo)))
    ratios = [(t, v["min_sync_tiny"] / v["min_c_thumb"]) for t, v in sizes.items()]
    rows.append(("Minimal publisher within 2 × C on armv7 (tiny build vs C with its C flags)",
                 ", ".join(f"{short[t]} {r:.2f} ×" for t, r in ratios),
                 all(r <= 2 for _, r in ratios)))
    return rows


def stripped_size(exe):
    tmp = TARGET / "stripped"
    tmp.mkdir(exist_ok=True)
    dst = tmp / exe.name
    shutil.copy(exe, dst)
    subprocess.run(["strip", "--strip-all", str(dst)], check=True)
    return dst.stat().st_size, exe.stat().st_size


# ---------------------------------------------------------------- statistics


def med(v):
    return statistics.median(v) if v else float("nan")


def stats(values):
    return {"median": med(values), "min": min(values), "max": max(values), "n": len(values)}


def metric(case_kind):
    return "p50_us" if case_kind == "lat" else "rate"


def headline(kind, r):
    """What the progress line shows for one run."""
    if kind == "reconnect":
        return f"{med(r['round_connect_ms']):,.2f}/{med(r['round_disconnect_ms']):,.2f} ms"
    return f"{r['p50_us'] if kind == 'lat' else r['rate']:,.0f}"


def fixes_text(fixes):
    """The fixes a run's library had, for the report (None: not recorded)."""
    if fixes is None:
        return "the fixes of that revision"
    if not fixes:
        return "no fixes (`paho-mqtt-c/fixes/` held no patch)"
    return f"{len(fixes)} fixes from `paho-mqtt-c/fixes/`: " + ", ".join(f"`{x}`" for x in fixes)


def patch_names():
    """The fixes the bundled build applies (paho-mqtt-c/fixes/*.patch)."""
    return sorted(p.name for p in (REPO / "paho-mqtt-c" / "fixes").glob("*.patch"))


def summarize(results, case_list):
    """Per case and client: medians, ranges and pair-by-pair ratios to the C programs."""
    out = {}
    for case in case_list:
        name, title, kind, qos, size, count, clients, counts = case
        rows = [r for r in results if r.get("case") == name]
        by = {c: {r["round"]: r for r in rows if r["key"] == c} for c in clients}
        entry = {"title": title, "kind": kind, "clients": {}}
        for c in clients:
            rs = by[c]
            if not rs:
                continue
            e = {"count": counts.get(c, count)}
            if kind == "reconnect":
                # Every round of every run, pooled; and the spread of the runs' medians.
                for k in ("round_connect_ms", "round_disconnect_ms"):
                    pooled = [x for r in rs.values() for x in r[k]]
                    e[k] = stats(pooled)
                    e[k]["slow"] = sum(1 for x in pooled if x > SLOW_MS)
                    e[k + "_run_median"] = stats([med(r[k]) for r in rs.values()])
                e["runs"] = len(rs)
            keys = [] if kind == "reconnect" else ["p50_us", "p99_us"] if kind == "lat" else ["rate"]
            for k in keys:
                e[k] = stats([r[k] for r in rs.values()])
            for ref in (() if kind == "reconnect" else ("c_sync", "c_cb")):
                if ref in by and ref != c:
                    pairs = [rs[i][metric(kind)] / by[ref][i][metric(kind)]
                             for i in rs if i in by[ref] and by[ref][i][metric(kind)] > 0]
                    if pairs:
                        e[f"ratio_{ref}"] = stats(pairs)
                        if kind == "lat":
                            p99 = [rs[i]["p99_us"] / by[ref][i]["p99_us"] for i in rs if i in by[ref]]
                            e[f"ratio99_{ref}"] = stats(p99)
            e["connect_ms"] = stats([r["connect_ms"] for r in rs.values()])
            e["disconnect_ms"] = stats([r["disconnect_ms"] for r in rs.values()])
            e["peak_rss_kib"] = stats([r["peak_rss_kib"] for r in rs.values()])
            entry["clients"][c] = e
        out[name] = entry
    return out


# ---------------------------------------------------------------- report


def fmt_rate(v):
    return f"{v:,.0f}"


def fmt_ratio(s):
    if not s:
        return "–"
    return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"


def fmt_range(s, f=fmt_rate):
    return f"{f(s['median'])} ({f(s['min'])}–{f(s['max'])})"


def machine_info():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    osname = ""
    try:
        osname = re.search(r'PRETTY_NAME="([^"]*)"', open("/etc/os-release").read()).group(1)
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem}; {osname}, Linux {platform.release()}"


def first_line(cmd):
    try:
        p = subprocess.run(cmd, text=True, capture_output=True)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def lock_versions():
    text = (BENCH / "Cargo.lock").read_text()
    found = {}
    for m in re.finditer(r'name = "([^"]+)"\nversion = "([^"]+)"', text):
        found.setdefault(m.group(1), m.group(2))
    return found


def paho_c_version(paho):
    try:
        t = (paho / "build" / "VersionInfo.h").read_text()
        return re.search(r'CLIENT_VERSION\s+"([^"]+)"', t).group(1)
    except (OSError, AttributeError):
        return "?"


def svg_chart(summary, case_list):
    """Grouped horizontal bars: each client's median relative to Paho C."""
    groups = []
    for case in case_list:
        name, title, kind = case[0], case[1], case[2]
        e = summary.get(name)
        if not e or kind == "reconnect":
            continue
        ref = "c_sync" if name == "pub_q0" else "c_cb"
        bars = []
        for c, v in e["clients"].items():
            r = v.get(f"ratio_{ref}")
            if c == ref:
                bars.append((c, 1.0))
            elif r:
                val = r["median"]
                if kind == "lat":
                    val = 1.0 / val  # speed: C latency / client latency
                bars.append((c, val))
        groups.append((title, ref, bars))
    bar_h, gap, left, width = 16, 22, 300, 520
    height = 60 + sum(len(b) * bar_h + gap + 18 for _, _, b in groups) + 40
    vmax = max([v for _, _, b in groups for _, v in b] + [1.0])
    vmax = min(max(1.6, vmax * 1.05), 60.0)
    scale = width / vmax
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="22" font-size="15" font-weight="bold">Speed relative to Paho C '
         f'(median of pair-by-pair ratios; higher is better)</text>',
         f'<text x="10" y="40" fill="#555">Reference: C synchronous program for QoS 0 publish, '
         f'C callback-mode program elsewhere; latency shown as C p50 / client p50.</text>']
    y = 60
    for title, ref, bars in groups:
        o.append(f'<text x="10" y="{y + 12}" font-weight="bold">{title}</text>')
        y += 18
        for c, v in bars:
            w = max(1.0, min(v, vmax) * scale)
            o.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end">{SHORT[c]}</text>')
            o.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" '
                     f'fill="{COLORS[c]}"/>')
            label = (f"{v:.2f}×" if v >= 0.1 else f"{v:.2g}×") + (" (clipped)" if v > vmax else "")
            o.append(f'<text x="{left + w + 6:.1f}" y="{y + 12}">{label}</text>')
            y += bar_h
        y += gap
    x1 = left + scale
    o.append(f'<line x1="{x1:.1f}" y1="50" x2="{x1:.1f}" y2="{y}" stroke="#333" '
             f'stroke-dasharray="4 3"/>')
    o.append(f'<text x="{x1:.1f}" y="{y + 14}" text-anchor="middle">1.0 = Paho C</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def targets(summary, sizes, rss):
    rows = []

    def get(case, c):
        return summary.get(case, {}).get("clients", {}).get(c)

    s = get("pub_q0", "sync_rs")
    if s and "ratio_c_sync" in s:
        r = s["ratio_c_sync"]["median"]
        rows.append(("QoS 0 publish ≥ 0.97 × C synchronous", f"{r:.3f} ×", r >= 0.97))
    for case, what in (("pub_q1", "QoS 1 publish"), ("pub_q2", "QoS 2 publish"),
                       ("pub_q1_w10", "QoS 1 publish, window 10,"),
                       ("pub_q1_w100", "QoS 1 publish, window 100,"),
                       ("pub_q2_w10", "QoS 2 publish, window 10,"),
                       ("pub_q2_w100", "QoS 2 publish, window 100,")):
        e = summary.get(case, {}).get("clients", {})
        if "sync_rs" not in e:
            continue
        mine = e["sync_rs"]["rate"]["median"]
        others = {c: v["rate"]["median"] for c, v in e.items() if c not in ("sync_rs", "c_sync")}
        if not others:
            continue
        best = max(others, key=others.get)
        rows.append((f"{what} faster than every other client",
                     f"{fmt_rate(mine)} msg/s vs best other {SHORT[best]} {fmt_rate(others[best])}",
                     all(mine > v for v in others.values())))
    for case in ("recv_q0", "recv_q1"):
        # The message callback does what the C program does; receive() and the
        # Receiver add a hand-over between threads.
        for c, how, want in (("sync_rs_cb", "callback", 0.97), ("sync_rs", "receive()", 0.9),
                             ("sync_rs_rx", "Receiver", 0.9)):
            s = get(case, c)
            if s and "ratio_c_cb" in s:
                r = s["ratio_c_cb"]["median"]
                rows.append((f"Receive QoS {case[-1]} ({how}) ≥ {want} × C callback-mode subscriber",
                             f"{r:.3f} ×", r >= want))
    if "sync_rs" in sizes:
        b = sizes["sync_rs"][0]
        rows.append(("Minimal publisher < 400 KB stripped", f"{b / 1000:.0f} KB", b < 400_000))
    if "sync_rs" in rss and "c" in rss:
        r = rss["sync_rs"] / rss["c"]
        rows.append(("Minimal publisher peak RSS within 10 % of C", f"{r:.3f} ×", r <= 1.10))
    return rows


def write_report(path, chart_path, summary, case_list, sizes, rss, info, failures, board=None):
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `bench/run.sh` (harness in [`bench/`](bench/)); do not edit by hand.\n")
    L.append("| | |\n|---|---|")
    for k, v in info:
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("Broker configuration (`mosquitto.conf`, port chosen at run time):\n")
    L.append("```\n" + BROKER_CONFIG.format(port="PORT", host=HOST).rstrip() + "\n```\n")
    if failures:
        L.append("## FAILURES\n")
        for f in failures:
            L.append(f"- {f}")
        L.append("")
    tgt = targets(summary, sizes, rss) + (board_targets(board) if board else [])
    if tgt:
        L.append("## Targets\n")
        L.append("| Target | This run | Met |\n|---|---|---|")
        for t, v, ok in tgt:
            L.append(f"| {t} | {v} | {'yes' if ok else '**no**'} |")
        L.append("")
    L.append(f"![Relative speed chart]({chart_path})\n")
    L.append("## Throughput\n")
    L.append("Messages per second: median (min–max) over the runs. Ratios are computed pair "
             "by pair (the client's run divided by the C program's run of the same round), "
             "then the median (min–max) of those ratios is shown; > 1 is faster than C.\n")
    for case in case_list:
        name, title, kind = case[0], case[1], case[2]
        e = summary.get(name)
        if not e or kind in ("lat", "reconnect"):
            continue
        L.append(f"### {title}\n")
        L.append("| Client | Messages | msg/s | × C sync | × C callback | Peak RSS (MiB) |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for c, v in e["clients"].items():
            L.append(f"| {CLIENTS[c][0]} | {v['count']:,} | {fmt_range(v['rate'])} | "
                     f"{fmt_ratio(v.get('ratio_c_sync')) if c != 'c_sync' else '1'} | "
                     f"{fmt_ratio(v.get('ratio_c_cb')) if c != 'c_cb' else '1'} | "
                     f"{v['peak_rss_kib']['median'] / 1024:.1f} |")
        L.append("")
    for case in case_list:
        name, title, kind = case[0], case[1], case[2]
        e = summary.get(name)
        if not e or kind != "lat":
            continue
        L.append(f"## {title}\n")
        L.append("Microseconds from the publish call until the message is back from the broker "
                 "(same client subscribed); median (min–max) over the runs of each run's "
                 "percentile. Ratio: client ÷ C callback mode, pair by pair (< 1 is faster).\n")
        L.append("| Client | Messages | p50 µs | p99 µs | p50 × C callback | p99 × C callback |")
        L.append("|---|---:|---:|---:|---:|---:|")
        f1 = (lambda x: f"{x:,.1f}")
        for c, v in e["clients"].items():
            L.append(f"| {CLIENTS[c][0]} | {v['count']:,} | {fmt_range(v['p50_us'], f1)} | "
                     f"{fmt_range(v['p99_us'], f1)} | "
                     f"{fmt_ratio(v.get('ratio_c_cb')) if c != 'c_cb' else '1'} | "
                     f"{fmt_ratio(v.get('ratio99_c_cb')) if c != 'c_cb' else '1'} |")
        L.append("")
    L.append("## Connect and disconnect\n")
    L.append("Milliseconds, median (min–max) over every run of every case (for the reconnect "
             "case: its first connect and its last disconnect): `connect` is create + connect "
             "until the CONNACK is processed; `disconnect` is disconnect + destroy/drop.\n")
    L.append("| Client | Connect ms | Disconnect ms |\n|---|---:|---:|")
    f2 = (lambda x: f"{x:,.2f}")
    for c in CLIENTS:
        con, dis = [], []
        for e in summary.values():
            v = e["clients"].get(c)
            if v:
                con.append(v["connect_ms"]["median"])
                dis.append(v["disconnect_ms"]["median"])
        if con:
            L.append(f"| {CLIENTS[c][0]} | {f2(med(con))} ({f2(min(con))}–{f2(max(con))}) | "
                     f"{f2(med(dis))} ({f2(min(dis))}–{f2(max(dis))}) |")
    L.append("")
    for case in case_list:
        name, title, kind = case[0], case[1], case[2]
        e = summary.get(name)
        if not e or kind != "reconnect":
            continue
        L.append(f"## {title}\n")
        L.append("One process, one client, clean session: after its first connect, each run does "
                 "COUNT rounds of `disconnect` (nothing in flight) followed by `connect` with the "
                 "same options, and times each call alone. Milliseconds per call, pooled over "
                 "every round of every run: median, maximum, and how many calls took longer than "
                 f"{SLOW_MS:.0f} ms; the last column is the range of the runs' own medians "
                 "(connect / disconnect). The C programs link paho-mqtt-sys's Paho C, this crate "
                 "its own build (see the Paho C rows above).\n")
        L.append("| Client | Rounds | Connect median | Connect max | Slow connects | "
                 "Disconnect median | Disconnect max | Slow disconnects | Run medians |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for c, v in e["clients"].items():
            con, dis = v["round_connect_ms"], v["round_disconnect_ms"]
            rc, rd = v["round_connect_ms_run_median"], v["round_disconnect_ms_run_median"]
            L.append(f"| {CLIENTS[c][0]} | {v['runs']} × {v['count']:,} | {f2(con['median'])} | "
                     f"{f2(con['max'])} | {con['slow']} of {con['n']} | {f2(dis['median'])} | "
                     f"{f2(dis['max'])} | {dis['slow']} of {dis['n']} | "
                     f"{f2(rc['min'])}–{f2(rc['max'])} / {f2(rd['min'])}–{f2(rd['max'])} |")
        L.append("")
    L.append("## Minimal publisher: size and memory\n")
    L.append("The same program per client (connect, publish one QoS 1 message, wait for the "
             "acknowledgement, disconnect): Rust with the `minsize` profile (opt-level \"z\", "
             "LTO, one codegen unit, stripped), C with `gcc -Os -s` on the static "
             "`libpaho-mqtt3c.a` of the same profile. Sizes after `strip --strip-all`; peak RSS "
             "is the process's `ru_maxrss` (what `/usr/bin/time` reports; measured by "
             "`bench/c/rss.c`), median of the runs.\n")
    L.append("| Client | Stripped size | Peak RSS | × C size | × C RSS |\n|---|---:|---:|---:|---:|")
    names = {"c": "Paho C", "sync_rs": "paho-mqtt-sync", "paho_rs": "paho-mqtt 0.14",
             "rumqttc_rs": "rumqttc 0.25"}
    for k in ["c", "sync_rs", "paho_rs", "rumqttc_rs"]:
        if k in sizes and k in rss:
            b = sizes[k][0]
            L.append(f"| {names[k]} | {b:,} B ({b / 1000:.0f} KB) | {rss[k] / 1024:.2f} MiB | "
                     f"{b / sizes['c'][0]:.2f} | {rss[k] / rss['c']:.2f} |")
    L.append("")
    if board:
        L.append("## Board binaries on armv7: stable vs build-std\n")
        L.append("The board demo and the minimal publisher above, cross-compiled for 32-bit ARM "
                 "with `zig cc` (README.md, \"Which build for which board\"): as shipped "
                 "(`release-small`; `minsize`), and tiny (`scripts/build-board.sh --tiny`: a "
                 "nightly toolchain builds std from source with immediate-abort panics, Thumb-2 "
                 "code, no unwind tables; README.md, \"The small binary\"). The C publisher is `bench/c/min_pub.c` "
                 "compiled by the same `zig cc` with `-Os`, linked against the same "
                 "`libpaho-mqtt3c.a` as `min_sync`. Output of `scripts/tiny-size.sh`; the "
                 "targets are in the table at the top.\n")
        L.append(board["table"].split("\n\n| Target")[0].rstrip() + "\n")
    L.append(METHOD)
    L.append(NOTES)
    Path(path).write_text("\n".join(L) + "\n")


METHOD = """## Method

- **One broker for all**: a private Mosquitto on 127.0.0.1 and a free port, started by the
  harness with the configuration shown above (persistence off, nothing ever dropped:
  `max_queued_messages 0`, `queue_qos0_messages true`, `max_inflight_messages 1000`).
- **One program per client**, each a separate binary: `sync_rs` (this crate's safe API,
  on its own build of Paho C with the fixes listed above), `c_sync` and `c_cb` (C written
  in `bench/c/`, on paho-mqtt-sys's unchanged `libpaho-mqtt3c.a`), `paho_rs` (`paho-mqtt`
  0.14 sync `Client`, default features off, `bundled`), `rumqttc_rs` (`rumqttc` sync
  `Client` + `Connection`, default features off).
- **Publish**: COUNT messages, payload `RUN:SEQ:xxx…`, one in flight at QoS 1/2 (each client
  waits for the PUBACK / PUBCOMP before the next publish: `wait_for_completion`, a condition
  variable signalled from `deliveryComplete`, `paho-mqtt`'s blocking `publish`, `rumqttc`
  driven until the ack). The time runs from the first publish to the last completion
  (QoS 0: to the last publish call returning; `rumqttc`: to the event loop having written
  the last message). The plain synchronous C program waits with
  `MQTTClient_waitForCompletion`, which polls in 100 ms steps: it runs with 50 messages.
- **Windowed publish** (`pub_q1_w10` … `pub_q2_w100`): the same at QoS 1/2 with up to N
  = 10 or 100 messages unacknowledged at any time, and the time again runs until the
  last PUBACK / PUBCOMP is in. Each client's library window is set to N and the program
  never has more than N outstanding: this crate with `max_inflight_messages(N)` and
  `reliable(false)` (`publish` waits for room), then `wait_for_completion` on the tokens;
  the C callback program with `maxInflightMessages = N`, `reliable = 0`, waiting on the
  condition variable that `deliveryComplete` signals before a publish would exceed N
  (Paho C 1.3.16's `MQTTClient_publishMessage` does not return
  `MQTTCLIENT_MAX_MESSAGES_INFLIGHT` on a full window, it sleeps 100 ms in
  `MQTTClient_yield`); `paho-mqtt` through the `AsyncClient` that its sync `Client`
  wraps (`Client::publish` waits for each acknowledgement, so the sync API has no
  window), `max_inflight(N)`, waiting for the oldest of N delivery tokens; `rumqttc` with
  `set_inflight(N)`, publishing while fewer than N are unacknowledged and otherwise
  driving the event loop on the same thread, counting acknowledgements. The plain
  synchronous C program is left out: it can learn of a completion only through
  `MQTTClient_waitForCompletion` or `MQTTClient_yield`, which poll in 100 ms steps, so it
  would measure the polling, not the window.
- **Counts, not trust**: a checker (`c_cb count`) owns a persistent session subscribed to
  `bench/p/#`; after every publish run it drains the session and must find every sequence
  number of that run exactly once, and nothing else. Receive and latency runs count
  distinct sequence numbers themselves; a run that misses one fails the benchmark.
- **Receive**: before each run a persistent session is created for the subscriber and a
  separate publisher (the C callback program) fills it with COUNT messages; the client then
  connects with that session and counts them. The rate is taken between the first and the
  last message the application sees, so it measures how fast the client delivers messages,
  not the publisher or the connect.
- **Persistence**: the QoS 1 publish case again with a store, in a fresh directory on
  the same ext4 file system as the target dir: the C callback program with the library's
  file persistence (`MQTTCLIENT_PERSISTENCE_DEFAULT`: writes each message in place, no
  `fsync`), this crate with `Persistence::File` (the same C code) and with
  `Persistence::User(DirStore)` (two `fsync`s per stored entry and one per removal, so
  each message costs several `fsync`s: the price of surviving a power cut). Ratios
  are to the C callback program without a store.
- **Latency**: the client subscribes to its own topic and, one message at a time, publishes
  at QoS 1 and waits for the message to come back (and for its PUBACK).
- **Reconnect**: one client per process connects once, then runs COUNT rounds of
  disconnect (10 s timeout, nothing in flight) and connect with the same options (clean
  session, keepalive 30 s); every call is timed on its own, and a round whose connect does
  not leave the client connected fails the run.
- **Interleaving**: for each case the clients run A B C D … A B C D …, so drift of the
  machine hits all of them; ratios are computed pair by pair within a round.
"""

NOTES = """## Why the figures look like this

These notes explain mechanisms, found with `strace -c -f`, `perf stat` and `perf record`
on this harness's programs (Paho C 1.3.16); the numbers above are what counts.

- **Connect and disconnect in callback mode.** `MQTTClient_connect` starts the library's
  callback thread (`MQTTClient_run`) when it is not running and then polls its `running`
  flag in 100 ms sleeps (`MQTTClient_connectURI`, `while (!running && ++count < 5)
  MQTTTime_sleep(100L)`); the new thread needs the mutex the connecting thread holds, so
  the first check always fails and such a connect takes at least 100 ms. Disconnecting
  the last connected client stops that thread in `MQTTClient_stop`, which sleeps in
  100 ms steps until it has exited. The C callback-mode program pays both on every run;
  the plain synchronous C program starts no thread and pays neither. This crate always
  runs in callback mode, but links its own build of Paho C with fixes 010, 011 and 014
  (`paho-mqtt-c/fixes/`): the thread is started and stopped without sleeping, a new
  connection is polled at once, and disconnect waits on a condition variable, so
  connect, disconnect and drop take well under a millisecond (the reconnect table).
  Fix 013 makes disconnect and destroy wait for a message callback that is running,
  so the crate itself no longer waits after messages were received. `paho-mqtt`'s disconnect and drop go through the async
  library's `MQTTAsync_stop`, which sleeps in 100 ms steps until its send and receive
  threads have stopped (up to about 1 s).
- **QoS 1/2, one message in flight.** Every Paho C client (C callback mode, this crate,
  `paho-mqtt`) receives the acknowledgement on the library's own thread: `poll`, then
  five `recvfrom` calls per PUBACK (the packet is read in pieces; two of the calls
  return `EAGAIN`), then `deliveryComplete`, a condition variable, and
  the publishing thread wakes up, only to wait for the library mutex that the callback
  thread still holds. That is 3-5 context switches and ~13 system calls per message.
  `rumqttc`'s synchronous client drives its event loop on the calling thread: one `writev`,
  one `epoll_wait`, one `recvfrom` and one context switch per message. On two cores with
  the broker on the same machine that difference, not the binding, decides the ranking.
  The plain synchronous C program is capped near 10 msg/s because
  `MQTTClient_waitForCompletion` polls with `MQTTClient_yield`, which runs for 100 ms.
- **QoS 1/2 with a window** (`pub_q1_w10` … `pub_q2_w100`). A window takes the wait out of
  the publishing thread, so what is left is the cost of each acknowledgement. Paho C 1.3.16
  reads one packet per turn of its thread's loop: a `poll` of the write set and one of the
  read set, one `recvfrom` for the fixed header byte, one for the remaining length, one for
  the rest, and one on its wake-up socket pair (`strace -c -f`: 5 `recvfrom` and 2 `poll`
  per PUBACK for the C callback program and `paho-mqtt`; twice that at QoS 2, with the
  PUBREC, and a second `writev` for the PUBREL). This crate's build reads ahead (fix 034):
  one `recvfrom` takes every acknowledgement that has arrived and the thread serves them
  before it polls again, so (under `strace`) `recvfrom` and `poll` come once per several
  PUBACKs with a window of 10 and once per dozens with a window of 100, and `perf stat`
  shows clearly less CPU time per message than the C callback program, most with a window of
  100. What is left for every Paho client is the hand-over between two threads: the
  library's thread waits for the library mutex that the publishing thread holds during its
  `writev`, then wakes the publisher waiting for room (5-7 `futex` calls per message for the
  C callback program, 12 for `paho-mqtt`). This crate wakes a publisher waiting for room
  only once half the window (at most 16 places) is free, or when the library's thread has
  read every acknowledgement that arrived (fix 040's idle callback), which took it from
  about 7 to about 3 `futex` calls per message with a window of 10 (`strace -c -f`); the
  rest is the library mutex. `rumqttc` runs the whole exchange on one thread, reads every waiting acknowledgement
  in one `recvfrom` (no `futex` at all) and at QoS 2 writes a PUBREL together with the next
  PUBLISH. With the read-ahead this crate's CPU time per message comes close to `rumqttc`'s,
  and what decides QoS 1 on two cores shared with the broker is that hand-over: `rumqttc` is
  ahead there in most runs, by a margin that varies widely on a loaded machine. At QoS 2,
  where every message takes four packets, this crate is ahead of the C callback program and
  `paho-mqtt` (neither reads ahead) and level with or ahead of `rumqttc`. Passing `rumqttc`
  at QoS 1 would take the library's thread and the publishing thread not trading the library
  mutex on every packet (Paho C holds it through the whole publish, `writev` included), a
  change to its locking that is not in this crate's fixes.
- **QoS 0 publish** is dominated by the kernel's TCP send path (about 80 % of the
  publisher's CPU time); the binding's own code (`Client::publish`, topic check, stack
  copy of the topic) is about 2-3 %. The wide ranges of the callback-mode clients (C
  callback program and this crate) come from the library: when the broker falls
  behind and a publish is only partly written to the socket, `MQTTClient_publish` waits
  for the rest with `MQTTClient_yield`, which in callback mode just sleeps 100 ms (the
  library's thread finishes the write much sooner); the plain synchronous C program's
  `MQTTClient_yield` does the socket work itself instead. A run with one such wait or two
  lands 20-30 % lower.
- **Receive.** With a message-arrived callback this crate does what the C callback program
  does. `Client::receive` hands messages from the library's thread to the caller through
  a queue. Waking a sleeping caller costs a `futex` call and two context switches, more
  than the library spends reading a 64-byte message, and the caller, faster than the
  library, used to sleep after every message (`strace -c -f` showed about one `futex`
  wake and one wait per message). Fix 040 gives the library an idle callback: a sleeping
  caller is now woken when the library's thread has nothing left to read, or when 64
  messages wait for it, so a backlog is handed over in batches (a few dozen `futex` calls
  per run) while a single message still goes over as soon as it is read. The queue then
  holds more messages at a time, which shows in the peak RSS. `rumqttc` reads many
  messages per system call on one thread, where every Paho C client (C, this crate,
  `paho-mqtt`) makes about six per message (`poll` twice, `recvfrom` four times: the
  wake-up pipe, the fixed header byte, the length, the body), which is why it leads here.
- **Latency** is measured where the application sees the message: in the callback for the
  two callback rows, after `receive`/`recv` returns on the publishing thread for the others
  (one more thread hand-over). The plain synchronous C program cannot publish again before
  it has read the previous PUBACK, which its `MQTTClient_receive` often returns before, so
  its next publish blocks in the library's 100 ms wait.
- **Size and memory.** A stripped Rust `println!` program is already ~290 KB with these
  settings (most of it the standard library's panic and backtrace code) and maps
  `libgcc_s` for unwinding; a C program that links the same static Paho C is ~106 KB.
  Peak RSS follows the code pages touched: the minimal Rust publishers touch more of their
  larger binaries and of `libgcc_s` than the C one does.
"""


# ---------------------------------------------------------------- main


def main():
    global BROKER, BINS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and one round (CI)")
    ap.add_argument("--runs", type=int, help="rounds per case (default 7, smoke 1)")
    ap.add_argument("--only", help="comma-separated case names (e.g. pub_q1,lat_q1)")
    ap.add_argument("--out", help="report path (default BENCHMARKS.md, smoke: target/smoke/)")
    ap.add_argument("--no-board-sizes", action="store_true",
                    help="leave out the armv7 board binaries (scripts/tiny-size.sh; never run in smoke mode)")
    ap.add_argument("--report-from", metavar="JSONL",
                    help="only rewrite the report from the raw results of an earlier run")
    a = ap.parse_args()
    caller = Path(os.environ.get("BENCH_CALLER_PWD", "."))
    if a.out:
        a.out = str(caller / a.out)
    if a.report_from:
        a.report_from = str(caller / a.report_from)
    rounds = a.runs or (1 if a.smoke else 7)
    case_list = cases(a.smoke)
    if a.only:
        wanted = set(a.only.split(","))
        case_list = [c for c in case_list if c[0] in wanted]
    started = time.time()
    command = "bench/run.sh" + ("".join(f" {x}" for x in sys.argv[1:]))
    revision = first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"])

    bins, minimal, paho, paho_min = build()
    BINS = bins
    if a.smoke:
        out = Path(a.out) if a.out else TARGET / "smoke" / "BENCHMARKS.md"
    else:
        out = Path(a.out) if a.out else REPO / "BENCHMARKS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    default_report = out.resolve() == (REPO / "BENCHMARKS.md").resolve()
    chart = out.parent / ("bench/chart.svg" if default_report else "chart.svg")
    chart.parent.mkdir(parents=True, exist_ok=True)
    raw_path = (BENCH / "results.jsonl") if default_report else out.parent / "results.jsonl"

    results, failures = [], []
    if a.report_from:
        meta = {}
        for line in open(a.report_from):
            r = json.loads(line)
            if "meta" in r:
                meta = r["meta"]
            else:
                results.append(r)
        failures = meta.get("failures", [])
        command = meta.get("command", command)
        rounds = meta.get("rounds", rounds)
        elapsed = meta.get("elapsed_s", float("nan"))
        date = meta.get("date", "?")
        revision = meta.get("revision", "?")
        fixes = meta.get("fixes")
        names = {r["case"] for r in results}
        case_list = [c for c in cases(meta.get("smoke", a.smoke)) if c[0] in names]
    else:
        BROKER = Broker()
        try:
            run_client(BINS["c_cb"], "prep", 2, 0, 0, "setup", "bench/p/#", CHECKER_ID)
            seq = 0
            fixes = patch_names()
            for case in case_list:
                log(f"== {case[0]}: {case[1]} ({rounds} rounds)")
                for rnd in range(rounds):
                    line = []
                    for client in case[6]:
                        seq += 1
                        try:
                            r = one_run(case, client, rnd, seq)
                            results.append(r)
                            line.append(f"{SHORT[client]} {headline(case[2], r)}")
                        except Failure as e:
                            failures.append(str(e))
                            log(f"FAIL: {e}")
                            line.append(f"{SHORT[client]} FAIL")
                    log(f"  round {rnd + 1}: " + " | ".join(line))
            try:
                results += run_minimal(minimal, rounds)
            except Failure as e:
                failures.append(str(e))
                log(f"FAIL: {e}")
        finally:
            BROKER.stop()
        if not a.smoke and not a.no_board_sizes:
            # After the broker runs: the cross builds would disturb the timings.
            try:
                results.append(run_board_sizes())
            except (Failure, subprocess.TimeoutExpired, ValueError) as e:
                failures.append(str(e))
                log(f"FAIL: {e}")
        elapsed = time.time() - started
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        meta = {"command": command, "rounds": rounds, "elapsed_s": elapsed, "date": date,
                "smoke": a.smoke, "failures": failures, "revision": revision, "fixes": fixes}
        with open(raw_path, "w") as f:
            f.write(json.dumps({"meta": meta}) + "\n")
            for r in results:
                f.write(json.dumps(r) + "\n")

    summary = summarize(results, case_list)
    sizes = {k: stripped_size(exe) for k, exe in minimal.items()}
    rss = {}
    for k in minimal:
        v = [r["peak_rss_kib"] for r in results if r.get("case") == "minimal" and r["key"] == k]
        if v:
            rss[k] = med(v)
    v = lock_versions()
    bt, btflags, _base = cmake_build_type(paho)
    bt_min, btflags_min, _ = cmake_build_type(paho_min)
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    info = [
        ("Command", f"`{command}` ({'smoke' if a.smoke else 'full'} mode, {rounds} rounds per case, "
                    f"{elapsed / 60:.1f} min)"),
        ("Date", date),
        ("Machine", machine_info()),
        ("Broker", f"{first_line([mosq, '-h'])}, private instance on {HOST}"),
        ("Paho C", f"{paho_c_version(paho)}, static `libpaho-mqtt3c.a` / `libpaho-mqtt3a.a` built by "
                   f"paho-mqtt-sys {v.get('paho-mqtt-sys', '?')} (CMake {bt}: `{btflags}`; "
                   f"minimal publishers: {bt_min} `{btflags_min}`), unchanged: linked by the C "
                   f"programs and paho-mqtt"),
        ("paho-mqtt-sync's Paho C", "the same 1.3.16 sources compiled by this crate's `build.rs` "
                                    f"(`cc`, feature `bundled`) with {fixes_text(fixes)}"),
        ("C programs", f"{first_line(['gcc', '--version'])}: `gcc {' '.join(CFLAGS)}` "
                       f"(minimal publisher: `gcc {' '.join(CFLAGS_MIN)}`), `-lpthread`"),
        ("Rust", f"{first_line(['rustc', '--version'])}, release profile (opt-level 3)"),
        ("Clients", f"paho-mqtt-sync {read_crate_version()} (git `{revision}`), "
                    f"paho-mqtt {v.get('paho-mqtt', '?')}, "
                    f"rumqttc {v.get('rumqttc', '?')} (tokio {v.get('tokio', '?')})"),
        ("Raw results", f"`{os.path.relpath(raw_path, out.parent)}` (one JSON line per run)"),
    ]
    board = next((r for r in results if r.get("case") == "board_sizes"), None)
    write_report(out, os.path.relpath(chart, out.parent), summary, case_list, sizes, rss, info, failures,
                 board)
    chart.write_text(svg_chart(summary, case_list))
    log(f"wrote {out} and {chart}; raw results in {raw_path}")
    if failures:
        log(f"{len(failures)} failure(s):")
        for f in failures:
            log(f"  {f}")
        sys.exit(1)


def read_crate_version():
    m = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else "?"


if __name__ == "__main__":
    main()
