#!/usr/bin/env python3
"""Fails when an `unsafe` block or `unsafe impl` has no `// SAFETY:` comment.

The comment must stand in the lines just above the block (the statement that
opens it may span a few lines, e.g. `let rc = unsafe {`), or on the line itself.
Checks every .rs file tracked under src/, tests/, examples/, bench/ (generated
bindings excluded).
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNSAFE = re.compile(r"\bunsafe\s*(\{|impl\b)")
LOOKBACK = 4

files = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.rs"],
    cwd=ROOT, capture_output=True, text=True, check=True,
).stdout.split()

bad = []
for name in files:
    if name.startswith("paho-mqtt-c/bindings/") or "/target/" in name:
        continue
    lines = (ROOT / name).read_text().splitlines()
    for i, line in enumerate(lines):
        code = line.split("//", 1)[0]
        if not UNSAFE.search(code):
            continue
        window = lines[max(0, i - LOOKBACK): i + 1]
        if not any("SAFETY:" in w for w in window):
            bad.append(f"{name}:{i + 1}: {line.strip()}")

if bad:
    print("unsafe without a `// SAFETY:` comment just above:")
    print("\n".join(bad))
    sys.exit(1)
print(f"check-safety: {len(files)} files, every unsafe block has a SAFETY comment")
